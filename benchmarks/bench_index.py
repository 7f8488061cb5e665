"""Index cost: bytes read to build the conversation index of a >=100-archive split, against its full bytes.

Run: ``.venv/bin/python benchmarks/bench_index.py [--ids 104] [--seconds 5] [--keep DIR]``

It generates one split (improvised/dev) with the mirror generator: real encodings (x264 MP4, float WAV,
savez_compressed npz, bundle json), one file id per archive (the worst case for per-archive overhead),
and member proportions near the corpus' (FORMAT.md 9: mp4 ~70 %, wav ~22 %, npz ~8 %, json <1 %; the MP4s
are padded with a ``free`` box). It serves the mirror on loopback, builds the index with the library, and
takes the bytes the server sent from its request log. Baselines in the same run: the split's whole
archives (what downloading it reads) and its npz+json members (the cheapest way to get the stats by
downloading). Pass: index bytes <= 1 % of the split's bytes. A rerun (nothing changed) is measured too.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from seamless_interaction.base.config import DatasetConfig
from seamless_interaction.fs import SeamlessInteractionFS
from seamless_interaction.mirror import MirrorServer, MirrorSpec, build_mirror
from seamless_interaction.remote.urls import hub_archive_path

LABEL, SPLIT = "improvised", "dev"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ids", type=int, default=104, help="extra file ids in the split (one archive each)")
    ap.add_argument("--seconds", type=float, default=5.0, help="duration of each file id")
    ap.add_argument("--keep", type=Path, help="build (or reuse) the mirror here instead of a temp folder")
    args = ap.parse_args()

    wav = args.seconds * 48_000 * 4
    total = wav / 0.22  # the WAV's share of a real file id
    spec = MirrorSpec(seed=7, duration_s=args.seconds, extra_interactions=args.ids // 2, extra_splits=f"{LABEL}/{SPLIT}",
                      samples_per_archive=1, batch_max_files=64, video_padding_bytes=int(0.70 * total))
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-index-"))
    try:
        t0 = time.perf_counter()
        info = build_mirror(work / "mirror", spec)
        print(f"mirror: {len(info.file_ids)} file ids built in {time.perf_counter() - t0:.0f} s")
        archives = [a for a in info.archives if a[:2] == (LABEL, SPLIT) and a != tuple(info.missing_archive)]
        split_bytes = features_bytes = 0
        shares = {"json": 0, "mp4": 0, "npz": 0, "wav": 0}
        for a in archives:
            path = info.hub_dir / hub_archive_path(*a)
            split_bytes += path.stat().st_size
            with tarfile.open(path) as tar:
                for m in tar.getmembers():
                    ext = m.name.partition(".")[2]
                    shares[ext] += m.size
                    features_bytes += m.size if ext in ("npz", "json") else 0
        members = sum(shares.values())
        print(f"split {LABEL}/{SPLIT}: {len(archives)} archives, {split_bytes / 1e6:.1f} MB; member shares "
              + ", ".join(f"{k} {100 * v / members:.1f} %" for k, v in shares.items()))
        with MirrorServer(info.root) as srv:
            cfg = DatasetConfig(local_dir=work / "data", cdn_url=srv.cdn_url, hf_url=srv.hf_url,
                                assets=srv.assets_url, cache_dir=work / "cache")
            shutil.rmtree(work / "cache", ignore_errors=True)
            with SeamlessInteractionFS(cfg, quiet=True) as fs:
                fs.catalog  # noqa: B018 - the tables are not part of the index's cost
                srv.clear_requests()
                t0 = time.perf_counter()
                report = fs.build_index(label=LABEL, split=SPLIT)
                took = time.perf_counter() - t0
                log = srv.requests
                srv.clear_requests()
                t1 = time.perf_counter()
                again = fs.build_index(label=LABEL, split=SPLIT)
                took_again = time.perf_counter() - t1
                log_again = srv.requests
        sent = sum(r.body_bytes for r in log)
        ratio = sent / split_bytes
        print(report.summary())
        print(f"index build: {sent} bytes in {len(log)} requests, {took:.1f} s")
        print(f"  = {100 * ratio:.3f} % of the split's archive bytes ({split_bytes}): {1 / ratio:.0f}x less than "
              f"downloading the split; {features_bytes / sent:.1f}x less than its npz+json members "
              f"({features_bytes} bytes)")
        print(f"rerun (nothing changed): {sum(r.body_bytes for r in log_again)} bytes in {len(log_again)} requests "
              f"(HEADs), {took_again:.2f} s; {again.skipped} archives unchanged")
        ok = ratio <= 0.01 and not report.failed
        print("PASS" if ok else "FAIL", "(index bytes <= 1 % of the split's bytes)")
        return 0 if ok else 1
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
