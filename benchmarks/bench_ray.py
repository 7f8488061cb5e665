"""Ray front end against one process: windows/s through ``read_windows`` and a download through Ray tasks.

One command: ``.venv/bin/python benchmarks/bench_ray.py [--dir DIR] [--interactions N] [--duration-s S] [--skip-windows]
[--repeat N] [--cpus 2]``

Data: a generated mirror (``MirrorSpec``: real npz keys and shapes, real mp4/wav members, partners in
different archives), kept in ``--dir`` and reused by the next run.

Windows: ``WindowDataset`` iterated in this process (its default two inflate threads) against
``read_windows`` on a local Ray with ``--cpus`` CPUs, consumed on the driver as a user would
(``iter_batches`` + ``batch_to_items``), same shards, modalities and windows. ``ray.init`` and the time
to the first window are reported apart; the rates are in steady state (windows after the first over
the time after the first) over ``--epochs`` epochs back to back (``read_windows(epochs=...)``: one Ray
execution), the median of ``--repeat`` runs taken round-robin. Two ways to take the windows: the
blocks as the read tasks made them (``batch_size=None``, the loader's item stream) and batches of 64
rows (Ray re-cuts and concatenates blocks on the driver; shown for its cost). CPU ms/w counts this
process and every Ray process. Target: Ray's time per window (blocks as made) at most 1.3x the single
process's.

Download: the mirror served by a child process (``--latency-ms``, ``--bandwidth-mbps`` per connection);
the CLI (``seamless-interaction download --batch ...``, in process) against ``download --ray`` on the
same local Ray, whole archives and features-only (``--only npz,json``). Target: at most 1.2x the CLI.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _served import served  # noqa: E402

WINDOW_S, HOP_S = 4.0, None  # training-sized windows, no overlap: every window copied once


def build(root: Path, interactions: int, duration_s: float):
    from seamless_interaction.catalog.tables import Catalog
    from seamless_interaction.mirror.generate import MirrorSpec, build_mirror

    info = build_mirror(root / "mirror", MirrorSpec(duration_s=duration_s, extra_interactions=interactions))
    catalog = Catalog.load(str(info.root / "assets"), root / "catalog-cache")
    tars = sorted(str(p) for p in (info.root / "hub").rglob("*.tar"))
    return info, catalog, tars


def run_loader(tars, catalog, modalities, epochs: int) -> tuple[int, float, float, float]:
    from seamless_interaction.access.loader import ShardWarning, WindowDataset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ShardWarning)
        c0 = time.process_time()
        t0 = time.perf_counter()
        n, first = 0, 0.0
        ds = WindowDataset(tars, modalities=modalities, window_s=WINDOW_S, hop_s=HOP_S, catalog=catalog)
        for epoch in range(epochs):
            ds.set_epoch(epoch)
            for _ in ds:
                n += 1
                if n == 1:
                    first = time.perf_counter() - t0
        return n, first, time.perf_counter() - t0, time.process_time() - c0


def run_ray(tars, catalog, modalities, epochs: int, batch_size: int | None) -> tuple[int, float, float, float]:
    """``epochs`` back to back in one dataset (one execution), as a training job streams them."""
    from seamless_interaction.ray import batch_to_items, read_windows

    c0 = cpu_seconds()
    t0 = time.perf_counter()
    ds = read_windows(tars, modalities, window_s=WINDOW_S, hop_s=HOP_S, catalog=catalog, epochs=epochs)
    n, first = 0, 0.0
    for batch in ds.iter_batches(batch_format="numpy", batch_size=batch_size):
        n += len(batch_to_items(batch))
        if not first:
            first = time.perf_counter() - t0
    return n, first, time.perf_counter() - t0, cpu_seconds() - c0


def cpu_seconds() -> float:
    """CPU time of this process plus every Ray process on this machine (workers, raylet, GCS; all
    threads). Ray renames its workers (``ray::IDLE``, ``ray::ReadSeamlessWindows``), so they are found
    by name, not by their command line's script."""
    import psutil

    total = time.process_time()
    for p in psutil.process_iter(["cmdline", "name"]):
        try:
            cmd = p.info["cmdline"] or [p.info["name"] or ""]
            ray_proc = cmd[0].startswith("ray::") or "/ray/" in cmd[0] or "ray/_private" in " ".join(cmd)
            if ray_proc and p.pid != os.getpid():
                t = p.cpu_times()
                total += t.user + t.system
        except (psutil.NoSuchProcess, psutil.AccessDenied, IndexError):
            continue
    return total


def steady(n: int, first: float, total: float, *_: float) -> float:
    return (n - 1) / max(total - first, 1e-9)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "si-bench-ray")
    ap.add_argument("--interactions", type=int, default=6, help="extra pairs per label/split in the mirror")
    ap.add_argument("--duration-s", type=float, default=60.0, help="seconds per file id")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=6, help="epochs per timed run (steady state)")
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--latency-ms", type=float, default=20.0)
    ap.add_argument("--bandwidth-mbps", type=float, default=50.0, help="MB/s per connection")
    ap.add_argument("--skip-download", action="store_true")
    ap.add_argument("--skip-windows", action="store_true")
    args = ap.parse_args(argv)

    t = time.perf_counter()
    info, catalog, tars = build(args.dir, args.interactions, args.duration_s)
    size = sum(os.path.getsize(p) for p in tars)
    print(f"data: {len(tars)} archives, {len(info.file_ids)} file ids, {size / 1e6:.0f} MB "
          f"(ready in {time.perf_counter() - t:.1f} s)")

    import ray

    t = time.perf_counter()
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    init_s = time.perf_counter() - t
    print(f"ray.init (local, {args.cpus} CPUs): {init_s:.2f} s (not in any rate below)\n")

    ok = True
    print(f"{'windows (' + str(WINDOW_S) + ' s, hop ' + str(HOP_S) + ' s)':34} {'windows':>8} {'first s':>8} "
          f"{'steady w/s':>11} {'ratio':>6} {'CPU ms/w':>9} {'ratio':>6}")
    for modalities in () if args.skip_windows else (("features",), ("features", "audio", "vad", "words")):
        runs: dict[str, list[tuple[int, float, float, float]]] = {"loader": [], "ray": [], "ray64": []}
        for _ in range(args.repeat):
            runs["loader"].append(run_loader(tars, catalog, modalities, args.epochs))
            runs["ray"].append(run_ray(tars, catalog, modalities, args.epochs, None))
            runs["ray64"].append(run_ray(tars, catalog, modalities, args.epochs, 64))
        counts = {r[0] for rs in runs.values() for r in rs}
        if len(counts) != 1:
            print(f"  window counts differ: {counts}")
            ok = False
        rates = {k: statistics.median(steady(*r) for r in rs) for k, rs in runs.items()}
        firsts = {k: statistics.median(r[1] for r in rs) for k, rs in runs.items()}
        cpu = {k: 1000 * statistics.median(r[3] / r[0] for r in rs) for k, rs in runs.items()}
        name = "+".join(modalities)
        print(f"  {'WindowDataset, 1 process':32} {runs['loader'][0][0]:8d} {firsts['loader']:8.2f} "
              f"{rates['loader']:11.0f} {'1.00':>6} {cpu['loader']:9.2f} {'1.00':>6}   [{name}]")
        for k, label, note in (("ray", "read_windows, blocks as made", "(wall ratio target <= 1.3)"),
                               ("ray64", "read_windows, batches of 64", "(re-batched on the driver)")):
            ratio = rates["loader"] / rates[k]
            print(f"  {label:32} {runs[k][0][0]:8d} {firsts[k]:8.2f} {rates[k]:11.0f} "
                  f"{ratio:6.2f} {cpu[k]:9.2f} {cpu[k] / cpu['loader']:6.2f}   {note}")
        ok &= rates["loader"] / rates["ray"] <= 1.3

    if not args.skip_download:
        from seamless_interaction.cli import main as cli

        hub = info.root / "hub"  # the archives the Hub has (the mirror also lists a CDN-only one)
        archives = [p.relative_to(hub).with_suffix("").as_posix() for p in map(Path, tars)]
        with served(info.root, latency_s=args.latency_ms / 1000,
                    bandwidth_bps=args.bandwidth_mbps * 1e6) as (cdn_url, hf_url, assets):
            os.environ["SEAMLESS_INTERACTION_CACHE"] = str(args.dir / "dl-cache")
            common = ["--hf-url", hf_url, "--cdn-url", cdn_url, "--assets", assets, "-q"]
            sel = [x for a in archives for x in ("--archive", "/".join(str(int(v)) if v.isdigit() else v
                                                                         for v in a.split("/")))]
            print(f"\ndownload ({len(archives)} archives, {size / 1e6:.0f} MB of archives, "
                  f"{args.latency_ms:.0f} ms, {args.bandwidth_mbps:.0f} MB/s per connection)")
            for label, extra in (("whole archives", []), ("--only npz,json", ["--only", "npz,json"])):
                times: dict[str, list[float]] = {"cli": [], "ray": []}
                for _ in range(args.repeat):
                    for how in ("cli", "ray"):
                        dest = args.dir / f"dl-{how}"
                        shutil.rmtree(dest, ignore_errors=True)
                        t = time.perf_counter()
                        rc = cli(["download", *sel, *extra, "--local-dir", str(dest), *common,
                                  *(["--ray"] if how == "ray" else [])])
                        times[how].append(time.perf_counter() - t)
                        if rc != 0:
                            print(f"  {how}: exit {rc}")
                            ok = False
                cli_s, ray_s = statistics.median(times["cli"]), statistics.median(times["ray"])
                print(f"  {label:18} CLI {cli_s:6.2f} s   Ray {ray_s:6.2f} s   ratio {ray_s / cli_s:5.2f} "
                      "(target <= 1.2)")
                ok &= ray_s / cli_s <= 1.2
    ray.shutdown()
    print("\nall targets met" if ok else "\nsome targets missed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
