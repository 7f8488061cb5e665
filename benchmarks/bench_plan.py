"""Download plans on a throttled mirror: the plan's estimate against the best single route, and against
the time its execution takes.

Run: ``.venv/bin/python benchmarks/bench_plan.py [--latency 0.03] [--bandwidth 1e6] [--keep DIR]``

Generates a mirror with the corpus' member proportions (three file ids per archive, padded MP4s),
serves it with a per-response latency and a per-connection bandwidth cap, builds the index, and for
three researcher selections (SQL over the index) prints the plan: per archive the route chosen among
whole tar, Range members and CDN objects, and the totals against each single-route strategy. Each plan
is then executed into an empty folder through the same engine and timed. Pass: for every selection the
plan's estimate is no more than the best single route's, and execution takes at most 1.25x the estimate.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from seamless_interaction.base.config import DatasetConfig
from seamless_interaction.fs import SeamlessInteractionFS
from seamless_interaction.mirror import MirrorServer, MirrorSpec, build_mirror
from seamless_interaction.operations.plan import ROUTES, LinkModel

SELECTIONS = [
    ("features of every talkative improvised V00 file (npz+json)",
     "SELECT file_id FROM file_stats WHERE vendor = 'V00' AND label = 'improvised' AND speech_ratio > 0.3",
     ("npz", "json")),
    ("everything of two whole archives",
     "SELECT file_id FROM file_stats WHERE label = 'improvised' AND split = 'dev' AND batch = 0 AND archive < 2",
     ("json", "mp4", "npz", "wav")),
    ("everything of naturalistic/test, where one archive is missing from the Hub",
     "SELECT file_id FROM files WHERE label = 'naturalistic' AND split = 'test'", ("json", "mp4", "npz", "wav")),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latency", type=float, default=0.03, help="seconds before each response's first byte")
    ap.add_argument("--bandwidth", type=float, default=1e6, help="bytes/s per connection")
    ap.add_argument("--seconds", type=float, default=2.0, help="duration of each file id")
    ap.add_argument("--keep", type=Path, help="build (or reuse) the mirror here")
    args = ap.parse_args()
    total = args.seconds * 48_000 * 4 / 0.22
    spec = MirrorSpec(seed=3, duration_s=args.seconds, extra_interactions=3, samples_per_archive=3,
                      batch_max_files=12, video_padding_bytes=int(0.70 * total))
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-plan-"))
    ok = True
    try:
        info = build_mirror(work / "mirror", spec)
        with MirrorServer(info.root, latency_s=args.latency, bandwidth_bps=args.bandwidth) as srv:
            cfg = DatasetConfig(local_dir=work / "data", cdn_url=srv.cdn_url, hf_url=srv.hf_url,
                                assets=srv.assets_url, cache_dir=work / "cache")
            shutil.rmtree(work / "cache", ignore_errors=True)
            with SeamlessInteractionFS(cfg, quiet=True) as fs:
                fs.build_index()
                link = LinkModel(args.latency, args.bandwidth, fs.config.num_workers)
                print(f"mirror: {len(info.file_ids)} file ids; link {args.latency * 1e3:.0f} ms, "
                      f"{args.bandwidth / 1e6:.1f} MB/s per connection x {link.connections}\n")
                for title, sql, modalities in SELECTIONS:
                    ids = fs.query(sql)["file_id"].to_pylist()
                    plan = fs.plan_download(ids, modalities=modalities, link=link)
                    print(f"== {title}: {len(ids)} file ids\n{plan.summary()}")
                    shutil.rmtree(work / "data", ignore_errors=True)
                    t0 = time.perf_counter()
                    fs.execute_plan(plan)
                    took = time.perf_counter() - t0
                    est = plan.total().seconds
                    singles = {r: t.seconds for r in ROUTES if (t := plan.total(r)) is not None}
                    best = min(singles, key=singles.get)
                    fine = est <= singles[best] + 1e-9 and took <= 1.25 * est
                    ok &= fine
                    print(f"estimate {est:.2f} s (best single route: {best}, {singles[best]:.2f} s, "
                          f"{singles[best] / est:.2f}x the plan); executed in {took:.2f} s = {took / est:.2f}x the "
                          f"estimate {'ok' if fine else 'FAIL'}\n")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print("PASS" if ok else "FAIL", "(plan <= best single route; execution <= 1.25x the estimate)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
