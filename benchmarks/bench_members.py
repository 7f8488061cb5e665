"""Features-only fetch (npz+json via tar index + Range reads) against downloading whole Hub archives.

One command: ``.venv/bin/python benchmarks/bench_members.py`` (``--help`` for the knobs).

It writes a split of WebDataset tars with the corpus' proportions (FORMAT.md 9: mp4 70%, wav 22%,
npz 7.6%, json 0.04%; member order json, mp4, npz, wav; a PAX header per member as WebDataset writes),
serves it through the loopback mirror with injected latency and a per-connection bandwidth cap, and in the
same run, through the same kind of ``Transfer``, fetches (a) only the npz+json of every file id and (b) every
whole archive. Bytes come from the server's request log. The transfer's connection limit times the
per-connection cap models the user's link (default 4 x 10 MB/s = 40 MB/s).
"""

from __future__ import annotations

import argparse
import io
import os
import random
import shutil
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from seamless_interaction.catalog.tables import Catalog
from seamless_interaction.routes.members import fetch_file_ids
from seamless_interaction.mirror import MirrorServer
from seamless_interaction.remote.transfer import Job, Transfer
from seamless_interaction.remote.urls import hub_archive_path, hub_archive_url

MB = 1_000_000
LABEL, SPLIT = "improvised", "dev"


def write_split(root: Path, *, archives: int, samples: int, sample_mb: float, seed: int) -> list[tuple[str, int, int]]:
    """Write ``archives`` tars of ``samples`` file ids each under root/hub; returns (file_id, batch, archive)."""
    rng = random.Random(seed)
    # One random block reused at varying offsets: realistic sizes without minutes of random generation.
    pool = os.urandom(int(sample_mb * MB * 0.9) + 1024)
    rows = []
    for a in range(archives):
        path = root / "hub" / hub_archive_path(LABEL, SPLIT, 0, a)
        path.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
            for s in range(samples):
                fid = f"V00_S{a:04d}_I{s:08d}_P{rng.randrange(10_000):04d}"
                jitter = rng.uniform(0.8, 1.2)
                sizes = {"json": rng.randrange(2_000, 30_000), "mp4": int(sample_mb * MB * 0.70 * jitter),
                         "npz": int(sample_mb * MB * 0.076 * jitter), "wav": int(sample_mb * MB * 0.22 * jitter)}
                for ext in ("json", "mp4", "npz", "wav"):
                    info = tarfile.TarInfo(f"{fid}.{ext}")
                    info.size, info.mtime, info.mode = sizes[ext], time.time(), 0o444
                    start = rng.randrange(0, len(pool) - sizes[ext])
                    tar.addfile(info, io.BytesIO(pool[start:start + sizes[ext]]))
                rows.append((fid, 0, a))
    return rows


def write_filelist(path: Path, rows: list[tuple[str, int, int]]) -> None:
    lines = ["file_id,label,split,batch_idx,archive_idx,has_imitator_movement,has_annotation_1p,has_annotation_3p"]
    lines += [f"{fid},{LABEL},{SPLIT},{b},{a},1,0,0" for fid, b, a in rows]
    path.write_text("\n".join(lines) + "\n")


def sent_bytes(server: MirrorServer) -> int:
    return sum(r.body_bytes for r in server.requests)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archives", type=int, default=4)
    ap.add_argument("--samples", type=int, default=3, help="file ids per archive")
    ap.add_argument("--sample-mb", type=float, default=36.0, help="MB of one file id's four members")
    ap.add_argument("--latency-ms", type=float, default=30.0)
    ap.add_argument("--bandwidth-mbps", type=float, default=10.0, help="MB/s per connection")
    ap.add_argument("--connections", type=int, default=4, help="transfer connection limit (both runs)")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args(argv)

    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_members_"))
    try:
        t0 = time.perf_counter()
        rows = write_split(work / "mirror", archives=args.archives, samples=args.samples,
                           sample_mb=args.sample_mb, seed=0)
        write_filelist(work / "filelist.csv", rows)
        catalog = Catalog.from_paths({"filelist": work / "filelist.csv"})
        total = sum(p.stat().st_size for p in (work / "mirror" / "hub").rglob("*.tar"))
        print(f"split: {args.archives} archives x {args.samples} file ids, {total / MB:.0f} MB "
              f"(written in {time.perf_counter() - t0:.1f} s); latency {args.latency_ms:.0f} ms, "
              f"{args.bandwidth_mbps:.0f} MB/s per connection, {args.connections} connections")

        with MirrorServer(work / "mirror", latency_s=args.latency_ms / 1000,
                          bandwidth_bps=args.bandwidth_mbps * MB) as server:
            def transfer() -> Transfer:
                return Transfer(max_connections=args.connections, retries=2)

            server.clear_requests()
            with transfer() as t:
                t0 = time.perf_counter()
                paths = fetch_file_ids(t, catalog, server.hf_url, work / "features", [r[0] for r in rows],
                                       ("npz", "json"), cache_dir=work / "cache")
                feat_s = time.perf_counter() - t0
            feat_bytes = sent_bytes(server)
            feat_payload = sum(p.stat().st_size for p in paths)
            assert len(paths) == 2 * len(rows)

            server.clear_requests()
            with transfer() as t:
                t0 = time.perf_counter()
                refs = sorted({(b, a) for _, b, a in rows})
                jobs = [Job(hub_archive_url(server.hf_url, LABEL, SPLIT, b, a),
                            work / "whole" / hub_archive_path(LABEL, SPLIT, b, a)) for b, a in refs]
                t.fetch_many(jobs)
                whole_s = time.perf_counter() - t0
            whole_bytes = sent_bytes(server)

        print(f"{'':24}{'bytes sent':>14}{'wall s':>10}")
        print(f"{'features (npz+json)':24}{feat_bytes:>14,}{feat_s:>10.2f}   payload {feat_payload:,} "
              f"({feat_payload / total:.1%} of the archives)")
        print(f"{'whole archives':24}{whole_bytes:>14,}{whole_s:>10.2f}")
        print(f"ratios: {whole_bytes / feat_bytes:.1f}x fewer bytes, {whole_s / feat_s:.1f}x less time "
              f"(targets >= 10x and >= 5x)")
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
