"""Download benchmark (issue 12): whole commands in fresh processes, against aria2c, plain httpx and the limit.

One command: ``python benchmarks/bench_download.py`` (``--help`` for the knobs; ``--profile`` adds
pyinstrument profiles of our two commands). A few minutes on 2 cores.

The mirror (``seamless_interaction.mirror``) is served by a child process, as a remote server would
be, with ``--latency-ms`` before each response's first byte (403s included), ``--conn-mbps`` per
connection and ``--total-mbps`` for the whole server (defaults: 50 ms, 20 MB/s, 200 MB/s). Two sets:

* CDN set: the first ``--ids`` file ids, every CDN URL of each (as the route asks; the optional objects
  the mirror lacks answer 403 and count as requests);
* Hub set: every archive of the batch ``--hub-batch`` (default improvised/dev/0), extracted.

Each client runs as the command a user runs, in a fresh process timed from outside (``wait4``): wall
time from spawn to exit, CPU = user + sys from the child's rusage (children included: aria2c's
``tar``, the official approach's pool). Clients run ``--runs`` times, interleaved, and the table
shows medians (the spread is printed too). Outputs are removed between runs, outside the timing.

CDN set clients:

* ours: ``SeamlessInteractionFS(local_dir=...).download_batch_from_s3(ids)`` (catalog cached, as on any
  second use; the cold load is the ``start-up`` rows). The process also reports its phases: start-up
  (import + catalog), the download call, and the npz/json building inside it (thread CPU of the
  bundle encoder), so the transfer's own CPU is download - building;
* plain httpx + sha256: 16 threads streaming every URL through sha256, nothing written (the CPU
  floor of moving these bytes in Python);
* ``aria2c -j16 -x8 -s8`` over the URL list (up to 8 connections per file, what users reach for);
* the official approach (upstream ``gather_file_id_data_from_s3``): per file id, a process pool of its
  default size ``min(10, max(1, cpu_count - 2))`` fetching each URL (urllib for wget), npy arrays and
  JSONL records gathered in ``Manager`` dicts, then ``np.savez`` (uncompressed, float64 -> float32) and
  ``json.dump(indent=4)``, media moved into the layout.

Hub set clients: ours, ``seamless-interaction download --batch L/S/B``; ``aria2c -j4 -x8 -s8`` then
``tar -x`` of each archive into its folder (one shell command).

The limit is the issue's: bytes / server total rate. The targets (issue 12) are checked at the end.
Our CDN route hashes the media as they stream (the CDN publishes no checksum to check, but the manifest
records one for `verify --deep`), the httpx floor hashes every byte as the issue defines it; the Hub route
verifies every archive's sha256, aria2c verifies nothing.
The server paces in Python on the same cores as the clients: absolute figures are noisy on a shared
machine, the ratios within one run are what matter. To emulate a small machine on a larger one, pin
the run: ``taskset -c 0,1 python benchmarks/bench_download.py`` (thread pools follow the pinning).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _served import served  # noqa: E402

MB = 1_000_000
GB = 1_000_000_000
ARIA2C = shutil.which("aria2c") or "/usr/bin/aria2c"
# upstream fs.py _num_workers, with the cores this process may use (taskset) as the core count
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
OFFICIAL_DEFAULT_WORKERS = min(10, max(1, CORES - 2))
HERE = Path(__file__).resolve()

# ours, CDN route: exactly the user's call; the phases go to BENCH_REPORT. The bundle encoder is
# wrapped to sum its thread CPU (it runs on worker threads, so process CPU cannot separate it).
OURS_CDN = r"""
import json, os, resource, sys, threading, time
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
t0, c0 = time.perf_counter(), cpu()
from seamless_interaction.fs import SeamlessInteractionFS
from seamless_interaction.routes import cdn
fs = SeamlessInteractionFS(local_dir=sys.argv[1])
fs.catalog
t1, c1 = time.perf_counter(), cpu()
build = [0.0]
lock = threading.Lock()
def wrap(fn):
    def timed(*a, **k):
        s = time.thread_time()
        try:
            return fn(*a, **k)
        finally:
            with lock:
                build[0] += time.thread_time() - s
    return timed
for name in ("_encode",):
    if hasattr(cdn, name):
        setattr(cdn, name, wrap(getattr(cdn, name)))
fs.download_batch_from_s3(sys.argv[2:])
t2, c2 = time.perf_counter(), cpu()
fs.close()
with open(os.environ["BENCH_REPORT"], "w") as f:
    json.dump({"startup_wall": t1 - t0, "startup_cpu": c1 - c0, "dl_wall": t2 - t1, "dl_cpu": c2 - c1,
               "build_cpu": build[0]}, f)
"""

STARTUP = r"""
from seamless_interaction.fs import SeamlessInteractionFS
SeamlessInteractionFS().catalog
"""


# --------------------------------------------------------------------------------------- children


def child_httpx(report: str, urls: list[str], threads: int) -> None:
    """Plain httpx: every URL streamed through sha256, nothing written; 403 skipped."""
    import hashlib
    import resource
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    def cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    t0, c0 = time.perf_counter(), cpu()
    with httpx.Client(limits=httpx.Limits(max_connections=threads, max_keepalive_connections=threads),
                      headers={"Accept-Encoding": "identity"}, timeout=60) as client:

        def one(url: str) -> int:
            h, n = hashlib.sha256(), 0
            with client.stream("GET", url) as r:
                if r.status_code in (403, 404):
                    return 0
                r.raise_for_status()
                for chunk in r.iter_raw():
                    h.update(chunk)
                    n += len(chunk)
            h.hexdigest()
            return n

        with ThreadPoolExecutor(threads) as pool:
            total = sum(pool.map(one, urls))
    Path(report).write_text(json.dumps({"dl_wall": time.perf_counter() - t0, "dl_cpu": cpu() - c0, "bytes": total}))


def _official_worker(job: tuple) -> None:
    """One URL as upstream's worker handles it (wget there, urllib here), into the shared dicts."""
    import io
    import urllib.error
    import urllib.request

    import numpy as np

    url, tmp_dir, target_dir, np_data, json_data = job
    name = url.rsplit("/", 1)[1]
    dest = os.path.join(tmp_dir, name)
    try:
        urllib.request.urlretrieve(url, dest)
    except urllib.error.HTTPError as e:
        if e.code not in (403, 404):
            raise
        return
    kind = url.rsplit("/", 2)[-2]
    if name.endswith((".wav", ".mp4")):
        os.replace(dest, os.path.join(target_dir, name))
    elif name.endswith(".npy"):
        arr = np.load(io.BytesIO(Path(dest).read_bytes()))
        if arr.dtype == np.float64:
            arr = arr.astype(np.float32)
        np_data[f"{kind}:{name[:-4]}"] = arr
    elif name.endswith((".jsonl", ".json")):
        lines = [json.loads(x) for x in Path(dest).read_text().splitlines() if x.strip()]
        json_data[f"metadata:{kind}"] = lines


def child_official(report: str, out: str, urls_by_id: dict[str, list[str]], workers: int) -> None:
    import numpy as np

    t0 = time.perf_counter()
    for fid, urls in urls_by_id.items():
        target = Path(out) / fid
        tmp = Path(out) / f".tmp-{fid}"
        target.mkdir(parents=True)
        tmp.mkdir()
        with mp.Manager() as manager:
            np_data, json_data = manager.dict(), manager.dict()
            jobs = [(u, str(tmp), str(target), np_data, json_data) for u in urls]
            with mp.get_context("fork").Pool(processes=workers) as pool:
                pool.map(_official_worker, jobs, chunksize=1)
            arrays = {k: np_data[k] for k in sorted(np_data.keys())}
            doc = {"id": fid, **dict(json_data)}
        np.savez(target / f"{fid}.npz", **arrays)
        with open(target / f"{fid}.json", "w") as f:
            json.dump(doc, f, indent=4)
        shutil.rmtree(tmp)
    Path(report).write_text(json.dumps({"dl_wall": time.perf_counter() - t0}))


# ------------------------------------------------------------------------------------ measurement


class Run:
    def __init__(self, wall: float, cpu: float, report: dict) -> None:
        self.wall, self.cpu, self.report = wall, cpu, report


def timed(cmd: list[str], env: dict[str, str], log: Path, report: Path | None = None, check: bool = True) -> Run:
    """Spawn ``cmd``; wall time from spawn to exit and user+sys CPU of it and its children (wait4)."""
    if report is not None:
        report.unlink(missing_ok=True)
        env = {**env, "BENCH_REPORT": str(report)}
    with open(log, "ab") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=err, stderr=err)
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0 and check:
        raise RuntimeError(f"{' '.join(cmd[:4])}...: exit {proc.returncode}; see {log}")
    data = json.loads(report.read_text()) if report is not None and report.exists() else {}
    return Run(wall, ru.ru_utime + ru.ru_stime, data)


def aria2_cmd(listing: Path, out: Path, j: int, x: int) -> list[str]:
    return [ARIA2C, "-i", str(listing), "-d", str(out), f"-j{j}", f"-x{x}", f"-s{x}", "--max-tries=1",
            "--file-allocation=none", "--allow-overwrite=true", "--auto-file-renaming=false",
            "--console-log-level=error", "--summary-interval=0", "--download-result=hide", "-q"]


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def spread(xs: list[float]) -> str:
    return f"{min(xs):.2f}-{max(xs):.2f}" if xs else ""


# ------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ids", type=int, default=4, help="file ids in the CDN set")
    ap.add_argument("--video-mb", type=float, default=55.0, help="MP4 padding per file id (MB)")
    ap.add_argument("--duration-s", type=float, default=20.0, help="seconds per file id (WAV 192 kB/s)")
    ap.add_argument("--latency-ms", type=float, default=50.0)
    ap.add_argument("--conn-mbps", type=float, default=20.0, help="MB/s per connection")
    ap.add_argument("--total-mbps", type=float, default=200.0, help="MB/s for the whole server")
    ap.add_argument("--hub-batch", default="improvised/dev/0", help="LABEL/SPLIT/BATCH for the Hub set")
    ap.add_argument("--runs", type=int, default=3, help="runs per client (medians reported)")
    ap.add_argument("--skip-official", action="store_true", help="skip the slow official-approach runs")
    ap.add_argument("--only", choices=("cdn", "hub"), help="run one set")
    ap.add_argument("--profile", action="store_true", help="also profile our two commands (pyinstrument)")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "si-bench-download")
    args = ap.parse_args(argv)
    if not Path(ARIA2C).exists():
        print("aria2c not found: apt-get install aria2", file=sys.stderr)
        return 2

    from seamless_interaction.mirror import MirrorSpec, build_mirror
    from seamless_interaction.remote.urls import cdn_parts, hub_archive_url

    spec = MirrorSpec(duration_s=args.duration_s, video_padding_bytes=int(args.video_mb * MB))
    t0 = time.perf_counter()
    info = build_mirror(args.workdir / "mirror", spec)  # reused across runs with the same spec
    print(f"mirror ready in {time.perf_counter() - t0:.1f}s at {info.root}", flush=True)
    hub_archives = [a for a in info.archives if a != info.missing_archive]
    ids = [f for a in hub_archives for f in info.archive_ids(*a)][: args.ids]
    label, split, batch = args.hub_batch.split("/")
    batch_archives = sorted(a for a in hub_archives if a[:3] == (label, split, int(batch)))
    runs, logs = args.workdir / "runs", args.workdir / "logs"
    shutil.rmtree(runs, ignore_errors=True)
    runs.mkdir(parents=True)
    logs.mkdir(parents=True, exist_ok=True)
    lat, conn_bps, total_bps = args.latency_ms / 1000, args.conn_mbps * MB, args.total_mbps * MB
    py = sys.executable
    cli = str(Path(py).parent / "seamless-interaction")
    cli_cmd = [cli] if Path(cli).exists() else [py, "-m", "seamless_interaction"]

    with served(info.root, latency_s=lat, bandwidth_bps=conn_bps, total_bps=total_bps) as (cdn_url, hf_url, assets_url):
        # Thread pools sized by the cores this run may use (numpy's OpenBLAS and Arrow read these), as
        # they would be on a machine of that size rather than on a larger one restricted by taskset.
        threads = {k: os.environ.get(k, str(CORES)) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
        env = {**os.environ, **threads,
               "SEAMLESS_INTERACTION_CDN_URL": cdn_url, "SEAMLESS_INTERACTION_HF_URL": hf_url,
               "SEAMLESS_INTERACTION_ASSETS": assets_url,
               "SEAMLESS_INTERACTION_CACHE": str(args.workdir / "cache")}
        # The URLs the CDN route asks for (movement_v4 included, as by default).
        urls = {f: [p.url for p in cdn_parts(cdn_url, info.files[f].label, info.files[f].split, f)] for f in ids}
        url_list = [u for f in ids for u in urls[f]]
        present = [u for u in url_list if (info.root / "cdn" / u[len(cdn_url) + 1:]).is_file()]
        cdn_bytes = sum((info.root / "cdn" / u[len(cdn_url) + 1:]).stat().st_size for u in present)
        hub_bytes = sum((info.root / "hub" / a[0] / a[1] / f"{a[2]:04d}" / f"{a[3]:04d}.tar").stat().st_size
                        for a in batch_archives)
        listing = args.workdir / "cdn-urls.txt"
        listing.write_text("".join(f"{u}\n  out={i:03d}_{Path(u).name}\n" for i, u in enumerate(url_list)))
        hub_listing = args.workdir / "hub-urls.txt"
        hub_listing.write_text("".join(f"{hub_archive_url(hf_url, *a)}\n  out={a[3]:04d}.tar\n"
                                       for a in batch_archives))
        # The mirror hashes each archive on its first resolve (the Hub's X-Linked-Etag), which a real
        # Hub has precomputed: ask once, untimed, so that no client pays for it.
        import httpx

        for a in batch_archives:
            r = httpx.head(hub_archive_url(hf_url, *a), timeout=120)
            if r.status_code >= 400:
                raise RuntimeError(f"the mirror answers HTTP {r.status_code} for archive {a}")
        # Warm the catalog cache once (the cold parse is what the first start-up run measures).
        shutil.rmtree(args.workdir / "cache", ignore_errors=True)
        cold = timed([py, "-c", STARTUP], env, logs / "startup.log")

        def fresh(name: str) -> Path:
            d = runs / name
            shutil.rmtree(d, ignore_errors=True)
            return d

        rep = args.workdir / "report.json"
        cdn_clients = {
            "ours: download_batch_from_s3(ids)": lambda d: timed([py, "-c", OURS_CDN, str(d), *ids], env,
                                                                 logs / "ours-cdn.log", rep),
            "plain httpx + sha256, 16 threads, no writes": lambda d: timed(
                [py, str(HERE), "--child", "httpx", str(rep), json.dumps(url_list)], env, logs / "httpx.log", rep),
            "aria2c -j16 -x8 -s8": lambda d: (d.mkdir(parents=True), timed(
                aria2_cmd(listing, d, 16, 8), env, logs / "aria2c-cdn.log", check=False))[1],  # 403s: exit 3
        }
        if not args.skip_official:
            cdn_clients[f"official approach: Pool({OFFICIAL_DEFAULT_WORKERS}) + npz/json"] = lambda d: timed(
                [py, str(HERE), "--child", "official", str(rep), str(d), json.dumps(urls)], env,
                logs / "official.log", rep)
        tar_x = 'for t in {d}/*.tar; do mkdir -p "${t%.tar}" && tar -xf "$t" -C "${t%.tar}" && rm "$t"; done'
        hub_clients = {
            f"ours: seamless-interaction download --batch {args.hub_batch}": lambda d: timed(
                [*cli_cmd, "download", "--batch", args.hub_batch, "--local-dir", str(d)], env, logs / "ours-hub.log"),
            "aria2c -j4 -x8 -s8, then tar -x each": lambda d: (d.mkdir(parents=True), timed(
                ["sh", "-c", " ".join(aria2_cmd(hub_listing, d, 4, 8)) + " && " + tar_x.replace("{d}", str(d))], env,
                logs / "aria2c-hub.log"))[1],
        }
        results: dict[str, list[Run]] = {}
        startup: list[Run] = [cold]
        sets = [("cdn", cdn_clients), ("hub", hub_clients)]
        for r in range(args.runs):
            startup.append(timed([py, "-c", STARTUP], env, logs / "startup.log"))
            for set_name, clients in sets:
                if args.only and args.only != set_name:
                    continue
                for name, fn in clients.items():
                    d = fresh("out")
                    run = fn(d)
                    results.setdefault(f"{set_name}|{name}", []).append(run)
                    print(f"  run {r + 1}: {set_name} {name}: {run.wall:.2f} s wall, {run.cpu:.2f} s CPU", flush=True)
                    shutil.rmtree(d, ignore_errors=True)
        if args.profile:
            profile(args, py, env, ids, logs)

    cdn_limit, hub_limit = cdn_bytes / total_bps, hub_bytes / total_bps
    print(f"\nserver: {args.latency_ms:.0f} ms to first byte, {args.conn_mbps:.0f} MB/s per connection, "
          f"{args.total_mbps:.0f} MB/s in all; {args.runs} runs per client, medians (min-max); "
          f"machine: {CORES} cores, load {os.getloadavg()[0]:.1f}")
    print(f"CDN set: {len(ids)} file ids, {len(url_list)} URLs ({len(url_list) - len(present)} answer 403), "
          f"{cdn_bytes / MB:.1f} MB; limit {cdn_limit:.2f} s")
    print(f"Hub set: {args.hub_batch}, {len(batch_archives)} archives, {hub_bytes / MB:.1f} MB; "
          f"limit {hub_limit:.2f} s\n")
    print(f"{'set':4} {'client':55} {'wall s':>7} {'(min-max)':>11} {'CPU s':>6} {'x limit':>8}")
    print(f"{'-':4} {'start-up: import + catalog, cold cache':55} {cold.wall:7.2f} {'':>11} {cold.cpu:6.2f}")
    warm = startup[1:]
    print(f"{'-':4} {'start-up: import + catalog, cached':55} {med([r.wall for r in warm]):7.2f} "
          f"{spread([r.wall for r in warm]):>11} {med([r.cpu for r in warm]):6.2f}")
    for key, rs in results.items():
        set_name, name = key.split("|", 1)
        limit = cdn_limit if set_name == "cdn" else hub_limit
        walls = [r.wall for r in rs]
        print(f"{set_name:4} {name:55} {med(walls):7.2f} {spread(walls):>11} {med([r.cpu for r in rs]):6.2f} "
              f"{med(walls) / limit:8.2f}")

    ours = results.get(f"cdn|{next(iter(cdn_clients))}")
    base = results.get("cdn|plain httpx + sha256, 16 threads, no writes")
    checks: list[tuple[str, bool]] = []
    if ours and base:
        ph = {k: med([r.report.get(k, float("nan")) for r in ours]) for k in ours[0].report}
        transfer = ph["dl_cpu"] - ph["build_cpu"]
        base_cpu = med([r.report["dl_cpu"] for r in base])
        gb = cdn_bytes / GB
        print(f"\nours, CDN phases (in-process, medians): start-up {ph['startup_wall']:.2f} s wall / "
              f"{ph['startup_cpu']:.2f} s CPU; download call {ph['dl_wall']:.2f} s wall / {ph['dl_cpu']:.2f} s CPU, "
              f"of which npz/json building {ph['build_cpu']:.2f} s CPU")
        print(f"{'transfer CPU per GB':30} {'ours':>8} {'httpx+sha256':>13} {'ratio':>6} {'npz/json build CPU':>19}")
        print(f"{'':30} {transfer / gb:8.2f} {base_cpu / gb:13.2f} {transfer / base_cpu:6.2f} "
              f"{ph['build_cpu']:17.2f} s")
        checks.append((f"CDN transfer CPU per GB <= 1.5x plain httpx+sha256 ({transfer / base_cpu:.2f}x)",
                       transfer <= 1.5 * base_cpu))
    def whole_command(route: str, mine: list | None, theirs: list | None, baseline: str, limit: float) -> None:
        # The two wall-time targets of a route: no slower than aria2c, within 1.25 x (limit + 0.3 s).
        if mine and theirs:
            w, a = med([r.wall for r in mine]), med([r.wall for r in theirs])
            checks.append((f"{route} whole command {w:.2f} s <= {baseline} {a:.2f} s", w <= a))
            checks.append((f"{route} whole command {w:.2f} s <= 1.25 x (limit + 0.3 s) = {1.25 * (limit + 0.3):.2f} s",
                           w <= 1.25 * (limit + 0.3)))

    whole_command("CDN", ours, results.get("cdn|aria2c -j16 -x8 -s8"), "aria2c -j16 -x8 -s8", cdn_limit)
    whole_command("Hub", results.get(f"hub|{next(iter(hub_clients))}"),
                  results.get("hub|aria2c -j4 -x8 -s8, then tar -x each"), "aria2c -j4 -x8 -s8 + tar -x", hub_limit)
    warm_wall = med([r.wall for r in warm])
    checks.append((f"start-up with a cached catalog {warm_wall:.2f} s < 0.3 s", warm_wall < 0.3))
    print("\ntargets (issue 12):")
    for text, ok in checks:
        print(f"  [{'met' if ok else 'MISSED'}] {text}")
    return 0


def profile(args: argparse.Namespace, py: str, env: dict[str, str], ids: list[str],
            logs: Path) -> None:
    """pyinstrument over our two commands (one run each, outside the timings); text reports in logs/."""
    out = args.workdir / "runs" / "profile"
    for name, cmd in (
        ("cdn", [py, "-m", "pyinstrument", "-r", "text", "-o", str(logs / "profile-cdn.txt"), "-c",
                 OURS_CDN, str(out), *ids]),
        ("hub", [py, "-m", "pyinstrument", "-r", "text", "-o", str(logs / "profile-hub.txt"), "-m",
                 "seamless_interaction", "download", "--batch", args.hub_batch, "--local-dir", str(out)]),
    ):
        if args.only and args.only != name:
            continue
        shutil.rmtree(out, ignore_errors=True)
        timed(cmd, env, logs / f"profile-{name}.log", args.workdir / "report.json")
        print(f"profile of ours ({name}): {logs / f'profile-{name}.txt'}")
    shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        kind, rest = sys.argv[2], sys.argv[3:]
        if kind == "httpx":
            child_httpx(rest[0], json.loads(rest[1]), 16)
        elif kind == "official":
            child_official(rest[0], rest[1], json.loads(rest[2]), OFFICIAL_DEFAULT_WORKERS)
        sys.exit(0)
    sys.exit(main())
