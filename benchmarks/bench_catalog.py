"""Catalog lookups: ours (indexed pyarrow catalog) against a plain pandas scan as the official toolkit does it.

Run: ``.venv/bin/python benchmarks/bench_catalog.py [--rows 130000] [--keep DIR]``

Both sides answer the same questions on the same generated catalog, in one run:
  * CDN URL lists of 1,000 file ids (official: ``df.loc[df.file_id == fid, ["label", "split"]]`` per id),
  * metadata of 100 interaction keys (official: label/split mask + ``str.startswith`` + joins per key),
  * pairs of 100 interaction keys (official: one label/split mask, then ``str.startswith`` per key),
  * archives of 200 batches (official: ``df.loc[label & split & batch].archive_idx.unique()`` per batch),
  * load time (official: ``pd.read_csv``; ours: ``Catalog.load`` from its warm on-disk cache).
Keys for metadata and pairs come from improvised/dev, the official default config.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _catalog_gen import generate_rows, write_catalog  # noqa: E402

from seamless_interaction.catalog.tables import Catalog  # noqa: E402
from seamless_interaction.constants import DEFAULT_CDN_URL  # noqa: E402
from seamless_interaction.remote.urls import cdn_urls  # noqa: E402


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def find_anchor() -> Path | None:
    env = os.environ.get("SEAMLESS_INTERACTION_SHARED")
    for base in ([Path(env)] if env else []) + [Path(__file__).resolve().parents[2] / "shared"]:
        if (base / "data/anchor/assets/interactions.csv").is_file():
            return base / "data/anchor/assets"
    return None


# ---------------------------------------------------------------------- the official approach (pandas)


class Official:
    """What upstream fs.py does with its cached DataFrame (no indexes)."""

    def __init__(self, folder: Path):
        self.df = pd.read_csv(folder / "filelist.csv")
        # Joins read as str so zeros survive (upstream had no joins; this is the kindest version of one).
        self.interactions = pd.read_csv(folder / "interactions.csv", dtype=str, keep_default_na=False)
        self.participants = pd.read_csv(folder / "participants.csv", dtype=str)
        self.relationships = pd.read_csv(folder / "relationships.csv", dtype=str)

    def candidates(self, label: str, split: str) -> pd.DataFrame:
        df = self.df
        return df[(df["label"] == label) & (df["split"] == split)]

    def urls(self, file_id: str) -> list:
        label, split = self.df.loc[self.df["file_id"] == file_id, ["label", "split"]].values[0]
        return cdn_urls(DEFAULT_CDN_URL, label, split, file_id)

    def label_split(self, file_id: str) -> tuple:
        return tuple(self.df.loc[self.df["file_id"] == file_id, ["label", "split"]].values[0])

    def metadata(self, key: str, label: str, split: str) -> dict:
        candidates = self.candidates(label, split)
        files = candidates[candidates["file_id"].str.startswith(key)]
        first = files.iloc[0]
        vendor, session, prompt = key[1:3], key[5:9], key[11:19]
        prompt_row = self.interactions.loc[self.interactions["prompt_hash"] == prompt].to_dict("records")
        rel = self.relationships.loc[(self.relationships["vendor_id"] == "V" + vendor)
                                     & (self.relationships["session_id"] == session)].to_dict("records")
        people = []
        for fid in files["file_id"]:
            pid = fid[21:]
            people.append(self.participants.loc[(self.participants["vendor_id"] == vendor)
                                                & (self.participants["participant_id"] == pid)].to_dict("records"))
        return {"key": key, "label": first["label"], "split": first["split"], "batch_idx": first["batch_idx"],
                "archive_idx": first["archive_idx"], "file_ids": files["file_id"].tolist(),
                "prompt": prompt_row, "relationship": rel, "participants": people}

    def pairs(self, keys: list[str], label: str, split: str) -> list[list[str]]:
        candidates = self.candidates(label, split)
        out = []
        for key in keys:
            ids = candidates[candidates["file_id"].str.startswith(key)]["file_id"].tolist()
            if len(ids) >= 2:
                out.append(ids[:2])
        return out

    def archives(self, label: str, split: str, batch: int) -> list[int]:
        df = self.df
        archives = df.loc[(df["label"] == label) & (df["split"] == split) & (df["batch_idx"] == batch),
                          "archive_idx"].unique().tolist()
        archives.sort()
        return archives


# ---------------------------------------------------------------------- run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=130_000)
    parser.add_argument("--keep", type=Path, help="write the generated catalog here instead of a temp dir")
    args = parser.parse_args()

    anchor = find_anchor()
    if args.keep is None:
        with tempfile.TemporaryDirectory(prefix="bench_catalog_") as tmp:
            return run(args.rows, Path(tmp), anchor)
    return run(args.rows, args.keep, anchor)


def run(n_rows: int, work: Path, anchor: Path | None) -> None:
    t0 = time.perf_counter()
    rows = generate_rows(n_rows, anchor_assets=anchor)
    folder = write_catalog(work / "assets", rows, anchor_assets=anchor)
    suffixed = sum(r[0][-1].isalpha() for r in rows) / len(rows)
    train_batches = len({(r[1], r[3]) for r in rows if r[2] == "train"})
    print(f"generated {len(rows):,} rows in {time.perf_counter() - t0:.1f}s "
          f"({suffixed:.1%} suffixed, {train_batches} train batches; join tables: "
          f"{'anchor' if anchor else 'synthetic'}) at {folder}")

    cache = work / "cache"
    t0 = time.perf_counter()
    Catalog.load(str(folder), cache)  # cold: parse the CSVs and write the Arrow cache
    cold = time.perf_counter() - t0

    results: list[tuple[str, float, float]] = []
    t_pd = best_of(lambda: pd.read_csv(folder / "filelist.csv"), 3)
    t_ours = best_of(lambda: Catalog.load(str(folder), cache), 5)
    results.append(("load (pandas read_csv vs warm cache)", t_pd, t_ours))

    official = Official(folder)
    cat = Catalog.load(str(folder), cache)
    rng = random.Random(0)
    ids = rng.sample(cat.file_ids(), 1000)
    dev_keys = rng.sample(cat.interaction_keys("improvised", "dev"), 100)
    train_batches_list = [(label, "train", b) for label in ("improvised", "naturalistic")
                          for b in cat.batches(label, "train")][:200]

    def ours_pairs():
        out = []
        for key in dev_keys:
            files = cat.interaction_file_ids(key)
            if len(files) >= 2:
                out.append(files[:2])
        return out

    def ours_urls():
        for fid in ids:
            rec = cat.record(fid)
            cdn_urls(DEFAULT_CDN_URL, rec.label, rec.split, fid)

    def ours_lookup():
        for fid in ids:
            rec = cat.record(fid)
            _ = (rec.label, rec.split)

    # Both sides must give the same answers before their times mean anything.
    assert [official.label_split(f) for f in ids[:50]] == [(cat.record(f).label, cat.record(f).split) for f in ids[:50]]
    assert [sorted(p) for p in official.pairs(dev_keys, "improvised", "dev")] == ours_pairs()
    some_batches = train_batches_list[:20]
    assert [official.archives(*b) for b in some_batches] == [cat.archives(*b) for b in some_batches]
    assert official.metadata(dev_keys[0], "improvised", "dev")["file_ids"] == cat.interaction_metadata(dev_keys[0])[
        "file_ids"]

    results.append(("URL lists, 1,000 file ids (incl. cdn_urls)",
                    best_of(lambda: [official.urls(f) for f in ids], 2), best_of(ours_urls, 5)))
    results.append(("  of which the filelist lookup, 1,000 ids",
                    best_of(lambda: [official.label_split(f) for f in ids], 2), best_of(ours_lookup, 5)))
    results.append(("metadata, 100 interaction keys",
                    best_of(lambda: [official.metadata(k, "improvised", "dev") for k in dev_keys], 2),
                    best_of(lambda: [cat.interaction_metadata(k) for k in dev_keys], 5)))
    results.append(("pairs, 100 interaction keys",
                    best_of(lambda: official.pairs(dev_keys, "improvised", "dev"), 3), best_of(ours_pairs, 5)))
    fresh = Catalog.load(str(folder), cache)  # the archive index is built at load (included in its time)
    t0 = time.perf_counter()
    [fresh.archives(*b) for b in train_batches_list]
    first = time.perf_counter() - t0
    t_pd = best_of(lambda: [official.archives(*b) for b in train_batches_list], 2)
    results.append(("archives of 200 batches (first call after load)", t_pd, first))
    results.append(("archives of 200 batches (warm)", t_pd,
                    best_of(lambda: [cat.archives(*b) for b in train_batches_list], 5)))

    print(f"\ncold Catalog.load (parse CSVs + write cache): {cold * 1e3:.0f} ms\n")
    width = max(len(r[0]) for r in results)
    print(f"{'operation':<{width}}  {'official (pandas)':>17}  {'ours':>10}  {'speed-up':>9}")
    for name, base, ours in results:
        print(f"{name:<{width}}  {_fmt(base):>17}  {_fmt(ours):>10}  {_ratio(base / ours):>9}")


def _ratio(x: float) -> str:
    return f"{x:.0f}x" if x >= 10 else f"{x:.2f}x"


def _fmt(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms" if seconds < 1 else f"{seconds:.2f} s"


if __name__ == "__main__":
    main()
