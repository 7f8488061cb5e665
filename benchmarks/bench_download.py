"""Download benchmark (issue 4): our transfer engine against the limit, aria2c and the official toolkit's approach.

One command: ``.venv/bin/python benchmarks/bench_download.py`` (``--help`` for the knobs).

It builds a mirror whose file ids have realistic proportions (mostly video: ``MirrorSpec.video_padding_bytes``
and ``duration_s``), serves it on loopback with ``--latency-ms`` before each response's first byte and a
``--bandwidth-mbps`` cap per connection, and in the same run fetches:

* the file-id set by the CDN route: ``--ids`` file ids x 33 URLs (no movement_v4; absent objects answer
  403 and count as requests), by (1) ``Transfer.fetch_many`` over the URL list in its natural order (per
  file id: audio, video, features...), (2) the full CDN route as users run it (``cdn.gather_many``, what
  ``download_batch_from_s3`` and the app call: the same requests plus npz/json assembly), (3) ``aria2c -j16``
  over the same list, (4) the official toolkit's approach: per file id, a ``multiprocessing.Pool`` of its default size
  ``min(10, max(1, cpu_count - 2))`` (upstream fs.py) running one urllib GET per URL, and the same with 16;
* the archives holding those ids by the Hub route (resolve URL -> 302 -> LFS target): ours
  (``hub.download_archive(extract=False)``) against ``aria2c`` with the same concurrency.

The limit. The server caps each connection, so C connections give C x cap in aggregate, and each request
holds its connection for the latency before its first byte. Every request therefore occupies one of the C
connections for at least ``latency + bytes/cap``, whence the lower bound
``L = (requests x latency + total bytes / cap) / C``; it is never below the issue's
``max(total bytes / (C x cap), requests x latency / C)``, which is also printed. Requests counts the fewest
a client can make (one per URL; two per archive for the redirect), so segmenting, which adds requests,
cannot beat it.

The server runs in a child process, as it would be remote: aria2c and the official approach run in
their own processes anyway, and an in-process server would make only our client share its GIL with the
server's 16 pacing threads.

Caveat: the server and the client share this machine's cores (2 here, shared with other work), and the
server paces each connection in Python; the ratios are what matter, all measured in the same run.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from seamless_interaction.catalog.tables import Catalog
from seamless_interaction.routes.cdn import gather_many
from seamless_interaction.routes.hub import download_archive
from seamless_interaction.mirror import MirrorServer, MirrorSpec, build_mirror
from seamless_interaction.remote.transfer import Job, Transfer
from seamless_interaction.remote.urls import cdn_parts, hub_archive_url

MB = 1_000_000
ARIA2C = shutil.which("aria2c") or "/usr/bin/aria2c"
OFFICIAL_DEFAULT_WORKERS = min(10, max(1, (os.cpu_count() or 1) - 2))  # upstream fs.py _num_workers


def _official_get(job: tuple[str, str]) -> int:
    """One URL as the official worker does it (wget there; urllib here): whole body, 403 logged and skipped."""
    url, dest = job
    try:
        urllib.request.urlretrieve(url, dest)
    except urllib.error.HTTPError as e:
        if e.code not in (403, 404):
            raise
        return 0
    return os.path.getsize(dest)


def official(ids: list[str], urls: dict[str, list[str]], out: Path, workers: int) -> float:
    """Per file id, a fresh process pool over its URLs, file ids one after another (upstream's loop)."""
    out.mkdir(parents=True)
    t0 = time.perf_counter()
    for fid in ids:
        jobs = [(u, str(out / f"{i:03d}_{fid}_{Path(u).name}")) for i, u in enumerate(urls[fid])]
        with mp.get_context("fork").Pool(processes=workers) as pool:
            pool.map(_official_get, jobs, chunksize=1)
    return time.perf_counter() - t0


class _Urls:
    """The base URLs of a mirror served elsewhere (what the benchmark needs of a MirrorServer)."""

    def __init__(self, url: str, cdn_url: str, hf_url: str, assets_url: str) -> None:
        self.url, self.cdn_url, self.hf_url, self.assets_url = url, cdn_url, hf_url, assets_url


def _serve(root: Path, latency_s: float, bandwidth_bps: float, conn: object, stop: object) -> None:
    with MirrorServer(root, latency_s=latency_s, bandwidth_bps=bandwidth_bps) as srv:
        conn.send((srv.url, srv.cdn_url, srv.hf_url, srv.assets_url))  # type: ignore[attr-defined]
        stop.wait()  # type: ignore[attr-defined]


@contextmanager
def served(root: Path, latency_s: float, bandwidth_bps: float) -> Iterator[_Urls]:
    """The mirror served by a child process until the block ends."""
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe()
    stop = ctx.Event()
    proc = ctx.Process(target=_serve, args=(root, latency_s, bandwidth_bps, child, stop), daemon=True)
    proc.start()
    try:
        if not parent.poll(30):
            raise RuntimeError("the mirror server did not start")
        yield _Urls(*parent.recv())
    finally:
        stop.set()
        proc.join(10)
        if proc.is_alive():
            proc.kill()


def aria2(url_list: list[str], out: Path, conc: int, per_file: int) -> float:
    out.mkdir(parents=True)
    listing = out / "urls.txt"
    listing.write_text("".join(f"{u}\n  out={i:03d}_{Path(u).name}\n" for i, u in enumerate(url_list)))
    cmd = [ARIA2C, "-i", str(listing), "-d", str(out), f"-j{conc}", f"-x{per_file}", f"-s{per_file}", "-k1M",
           "--max-tries=1", "--file-allocation=none", "--allow-overwrite=true", "--auto-file-renaming=false",
           "--console-log-level=error", "--summary-interval=0", "--download-result=hide", "-q"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def _bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and p.suffix != ".txt")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ids", type=int, default=4, help="file ids in the CDN set")
    ap.add_argument("--video-mb", type=float, default=55.0, help="MP4 padding per file id (MB)")
    ap.add_argument("--duration-s", type=float, default=20.0, help="seconds per file id (WAV 192 kB/s)")
    ap.add_argument("--latency-ms", type=float, default=50.0)
    ap.add_argument("--bandwidth-mbps", type=float, default=20.0, help="MB/s per connection")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--skip-official", action="store_true", help="skip the slow official-approach runs")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "si-bench-download")
    args = ap.parse_args(argv)
    if not Path(ARIA2C).exists():
        print("aria2c not found: apt-get install aria2", file=sys.stderr)
        return 2

    spec = MirrorSpec(duration_s=args.duration_s, video_padding_bytes=int(args.video_mb * MB))
    t0 = time.perf_counter()
    info = build_mirror(args.workdir / "mirror", spec)  # reused across runs with the same spec
    print(f"mirror ready in {time.perf_counter() - t0:.1f}s at {info.root}")
    hub_archives = [a for a in info.archives if a != info.missing_archive]
    ids = [f for a in hub_archives for f in info.archive_ids(*a)][: args.ids]
    archives = sorted({(info.files[f].label, info.files[f].split, info.files[f].batch, info.files[f].archive)
                       for f in ids})
    runs = args.workdir / "runs"
    lat, cap, conc = args.latency_ms / 1000, args.bandwidth_mbps * MB, args.concurrency
    rows: list[tuple[str, str, float, float]] = []

    with served(info.root, lat, cap) as srv:
        catalog = Catalog.load(srv.assets_url, args.workdir / "cache")
        urls = {f: [p.url for p in cdn_parts(srv.cdn_url, info.files[f].label, info.files[f].split, f,
                                             movement_v4=False)] for f in ids}
        url_list = [u for f in ids for u in urls[f]]
        present = [u for u in url_list if _exists(info.root, srv.cdn_url, u)]
        total = sum((info.root / "cdn" / u[len(srv.cdn_url) + 1:]).stat().st_size for u in present)
        limit = (len(url_list) * lat + total / cap) / conc
        issue_limit = max(total / (conc * cap), len(url_list) * lat / conc)
        print(f"CDN set: {len(ids)} file ids, {len(url_list)} URLs ({len(url_list) - len(present)} answer 403), "
              f"{total / MB:.1f} MB; latency {args.latency_ms:.0f} ms, {args.bandwidth_mbps:.0f} MB/s per "
              f"connection, concurrency {conc}")

        def fresh(name: str) -> Path:
            d = runs / name
            shutil.rmtree(d, ignore_errors=True)
            return d

        def ours_engine() -> float:
            d = fresh("ours-engine")
            jobs = [Job(u, d / f"{i:03d}_{Path(u).name}", optional=True) for i, u in enumerate(url_list)]
            with Transfer(max_connections=conc) as t:
                s = time.perf_counter()
                t.fetch_many(jobs)
                return time.perf_counter() - s

        def ours_route() -> float:
            d = fresh("ours-route")
            with Transfer(max_connections=conc) as t:
                s = time.perf_counter()
                gather_many(t, catalog, srv.cdn_url, d, ids, movement_v4=False)
                return time.perf_counter() - s

        ours = ours_engine()
        rows.append(("CDN set", "ours: Transfer.fetch_many (engine)", ours, ours / limit))
        t_route = ours_route()
        rows.append(("CDN set", "ours: CDN route (gather_many + npz/json)", t_route, t_route / limit))
        for per_file in (1, 16):
            t_aria = aria2(url_list, fresh(f"aria2c-x{per_file}"), conc, per_file)
            note = "" if per_file == 1 else f" (<= {conc * per_file} conns)"
            rows.append(("CDN set", f"aria2c -j{conc} -x{per_file} -s{per_file} -k1M{note}", t_aria, t_aria / limit))
        if not args.skip_official:
            for w in (OFFICIAL_DEFAULT_WORKERS, 16):
                t_off = official(ids, urls, fresh(f"official-{w}"), w)
                tag = "default" if w == OFFICIAL_DEFAULT_WORKERS else "num_workers"
                rows.append(("CDN set", f"official approach, Pool({w}) ({tag}) + urllib", t_off, t_off / limit))

        # Hub route: the archives holding those ids.
        a_urls = [hub_archive_url(srv.hf_url, *a) for a in archives]
        a_total = sum((info.root / "hub" / a[0] / a[1] / f"{a[2]:04d}" / f"{a[3]:04d}.tar").stat().st_size
                      for a in archives)
        a_limit = (2 * len(archives) * lat + a_total / cap) / conc
        a_limit = max(a_limit, 2 * lat + max(1, a_total // len(archives)) / (cap * conc))
        d = fresh("ours-hub")
        with Transfer(max_connections=conc) as t:
            s = time.perf_counter()
            with ThreadPoolExecutor(max_workers=len(archives)) as pool:
                list(pool.map(lambda a: download_archive(t, srv.hf_url, d, *a, extract=False), archives))
            t_hub = time.perf_counter() - s
        rows.append(("Hub archives", "ours: hub.download_archive(extract=False)", t_hub, t_hub / a_limit))
        for per_file in (1, 16):
            t_aria = aria2(a_urls, fresh(f"aria2c-hub-x{per_file}"), conc, per_file)
            note = "" if per_file == 1 else f" (<= {conc * per_file} conns)"
            rows.append(("Hub archives", f"aria2c -j{conc} -x{per_file} -s{per_file} -k1M{note}", t_aria,
                         t_aria / a_limit))
        print(f"Hub set: {len(archives)} archives, {a_total / MB:.1f} MB (HEAD not counted in the limit)")

    print(f"\nlimit, CDN set: {limit:.2f}s = ({len(url_list)} x {lat:.3f}s + {total / MB:.1f} MB / "
          f"{args.bandwidth_mbps:.0f} MB/s) / {conc}   [issue's max(bytes/(C x cap), requests x latency / C) = "
          f"{issue_limit:.2f}s]")
    print(f"limit, Hub set: {a_limit:.2f}s\n")
    print(f"{'set':13} {'client':50} {'wall s':>7} {'x limit':>8}")
    for group, name, wall, ratio in rows:
        print(f"{group:13} {name:50} {wall:7.2f} {ratio:8.2f}")
    # Same concurrency as ours: -j16 with one connection per file (the issue's "aria2c -j16").
    same = next(w for g, n, w, _ in rows if g == "CDN set" and n.startswith(f"aria2c -j{conc} -x1 "))
    print(f"\nCDN set: ours {ours:.2f}s; aria2c -j{conc} (same concurrency) / ours = {same / ours:.2f}x; "
          f"{ours / limit:.2f}x the limit ({ours / issue_limit:.2f}x the issue's formula)")
    print(f"CDN route (gather_many, what users run): {t_route:.2f}s, {t_route / limit:.2f}x the limit; "
          f"aria2c -j{conc} / route = {same / t_route:.2f}x")
    off = [w for g, n, w, _ in rows if "official" in n]
    if off:
        print(f"official approach (default workers) / ours = {off[0] / ours:.1f}x (/ route = {off[0] / t_route:.1f}x)")
    hub_aria = next(w for g, n, w, _ in rows if g == "Hub archives" and n.startswith(f"aria2c -j{conc} -x1 "))
    print(f"Hub set: ours {t_hub:.2f}s; aria2c -j{conc} / ours = {hub_aria / t_hub:.2f}x; "
          f"{t_hub / a_limit:.2f}x the limit")
    return 0


def _exists(root: Path, cdn_url: str, url: str) -> bool:
    return (root / "cdn" / url[len(cdn_url) + 1:]).is_file()


if __name__ == "__main__":
    sys.exit(main())
