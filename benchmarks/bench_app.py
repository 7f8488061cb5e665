"""Page timings of the browser app: navigation to a marker element that appears last, median of fresh sessions.

Run: ``.venv/bin/python benchmarks/bench_app.py [--rows 130000] [--runs 3] [--baseline-rev 11fce58]``

Two data sets, each served by ``streamlit run`` on loopback and opened in headless Chromium
(``/usr/bin/chromium``), every timed visit in a fresh browser (a new Streamlit session; the server's
caches stay warm after one untimed visit per page, as for a user who has the app open):

* the mirror sample (21 files, one pair on disk): every page;
* the generated full-size catalog (``_catalog_gen``, 130,000 rows): the Overview, the Viewer and the Download page.

A visit ends when the page's last element is on screen, every Plotly chart is drawn and the script
has finished (no "running" indicator). With ``--baseline-rev`` the same visits are made on the app of
that git revision (exported with ``git archive``), in the same run, and the ratios are printed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _catalog_gen import generate_rows, write_catalog

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--mute-audio"]
# (url path, marker): the marker is the page's last element in the old and the new app alike.
PAGES = {
    "welcome": ("", "text=This session's settings"),
    "overview": ("overview", "text=Batches and archives per label and split"),
    "download": ("download", "text=Random pair"),
    "viewer": ("viewer", "text=/^NPZ · /"),
    "files": ("files", 'button:has-text("Delete")'),
}
FULL_PAGES = ("overview", "viewer")  # the Download page asks the Hub for sizes: measured on the sample
# With nothing on disk the viewer ends on the file columns' "not on disk" notes instead of the NPZ previews.
FULL_MARKERS = {"viewer": 'text="not on disk"'}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class App:
    """``streamlit run`` of the app found under ``src`` (serve.py when present, else Welcome.py)."""

    def __init__(self, src: Path, env: dict[str, str], log: Path) -> None:
        app_dir = src / "seamless_interaction" / "app"
        entry = app_dir / "serve.py" if (app_dir / "serve.py").exists() else app_dir / "Welcome.py"
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = dict(os.environ, **env, PYTHONPATH=str(src))
        self._log = open(log, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(entry), "--server.port", str(self.port),
             "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none"], env=full_env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        while True:
            try:
                if urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2).read() == b"ok":
                    return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


ARTIFACTS = REPO / "test-artifacts" / "app"


def visit(pw, url: str, marker: str, shot: str) -> float | None:
    """Seconds from navigation to the marker, charts drawn and the script run finished, in a fresh browser.

    None when the marker never appears (the page failed); a screenshot of it is kept under test-artifacts/app/.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        try:
            return _timed(page, url, marker)
        except PlaywrightTimeout:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"bench-failed-{shot}.png"), full_page=True)
            print(f"  {shot}: the marker {marker!r} did not appear", file=sys.stderr)
            return None
    finally:
        browser.close()


def _timed(page, url: str, marker: str) -> float:
    if True:
        t0 = time.perf_counter()
        page.goto(url)
        page.locator(marker).first.wait_for(state="attached")
        page.wait_for_function(
            "(() => { const c = [...document.querySelectorAll('[data-testid=stPlotlyChart]')];"
            " return c.every(e => e.querySelector('.main-svg'))"
            " && !document.querySelector('[data-testid=stStatusWidget]'); })()",
            polling=20)
        return time.perf_counter() - t0


def measure(src: Path, env: dict[str, str], pages: tuple[str, ...], runs: int, log: Path,
            markers: dict[str, str] | None = None) -> dict[str, float | None]:
    from playwright.sync_api import sync_playwright

    app = App(src, env, log)
    try:
        out = {}
        with sync_playwright() as pw:
            for name in pages:
                path, marker = PAGES[name]
                marker = (markers or {}).get(name, marker)
                shot = f"{log.stem}-{name}"
                if visit(pw, f"{app.url}/{path}", marker, shot) is None:  # warms the server's caches
                    out[name] = None
                    continue
                times = [visit(pw, f"{app.url}/{path}", marker, shot) for _ in range(runs)]
                out[name] = statistics.median(times) if None not in times else None
                print(f"  {log.stem} {name}: {out[name]}", file=sys.stderr)
        return out
    finally:
        app.close()


def _sample(work: Path) -> dict[str, str]:
    """The mirror sample and a local folder holding one downloaded pair (the mirror stays up while measured)."""
    from seamless_interaction.base.config import DatasetConfig
    from seamless_interaction.fs import SeamlessInteractionFS
    from seamless_interaction.mirror import MirrorServer, MirrorSpec, build_mirror

    info = build_mirror(work / "mirror", MirrorSpec(duration_s=10.0))
    server = MirrorServer(info.root).start()
    pair = next(p for p in info.split_pairs if p[0] in info.movement and p[1] in info.movement)
    cfg = DatasetConfig(local_dir=work / "data", cdn_url=server.cdn_url, hf_url=server.hf_url,
                        assets=server.assets_url, cache_dir=work / "cache")
    with SeamlessInteractionFS(cfg, quiet=True) as fs:
        fs.download_batch_from_s3(list(pair))
    _sample.server = server  # type: ignore[attr-defined]  # closed in main
    return {"SEAMLESS_INTERACTION_CDN_URL": server.cdn_url, "SEAMLESS_INTERACTION_HF_URL": server.hf_url,
            "SEAMLESS_INTERACTION_ASSETS": server.assets_url, "SEAMLESS_INTERACTION_CACHE": str(work / "cache"),
            "SEAMLESS_INTERACTION_LOCAL_DIR": str(work / "data")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=130_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--baseline-rev", default=None, help="git revision of the app to compare with (e.g. 11fce58)")
    ap.add_argument("--only", choices=("sample", "full"), default=None)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-app-"))
    try:
        trees = {"now": REPO / "src"}
        if args.baseline_rev:
            base = work / "baseline"
            base.mkdir()
            tar = subprocess.run(["git", "-C", str(REPO), "archive", args.baseline_rev, "src"], check=True,
                                 capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", str(base)], input=tar, check=True)
            trees = {"baseline": base / "src", **trees}
        results: dict[tuple[str, str, str], float | None] = {}
        sets = []
        if args.only in (None, "sample"):
            sets.append(("sample", _sample(work), tuple(PAGES), {}))
        if args.only in (None, "full"):
            anchor = Path("/work/shared/data/anchor/assets")
            assets = write_catalog(work / "full", generate_rows(args.rows, seed=0),
                                   anchor_assets=anchor if anchor.is_dir() else None)
            env = {"SEAMLESS_INTERACTION_ASSETS": str(assets), "SEAMLESS_INTERACTION_CACHE": str(work / "cache-full"),
                   "SEAMLESS_INTERACTION_LOCAL_DIR": str(work / "data-full"),
                   "SEAMLESS_INTERACTION_CDN_URL": "http://127.0.0.1:9/cdn", "SEAMLESS_INTERACTION_HF_URL": "http://127.0.0.1:9/hf"}
            sets.append((f"full {args.rows:,} rows", env, FULL_PAGES, FULL_MARKERS))
        for set_name, env, pages, markers in sets:
            for tree, src in trees.items():
                got = measure(src, env, pages, args.runs, work / f"{tree}-{set_name.split()[0]}.log", markers)
                for page, secs in got.items():
                    results[(set_name, page, tree)] = secs
        print(f"median of {args.runs} fresh browser sessions, navigation to the page's last element (s)")
        ratio = "     ratio" if len(trees) > 1 else ""
        print(f"{'data':<22}{'page':<10}" + "".join(f"{t:>10}" for t in trees) + ratio)
        for set_name, _env, pages, _markers in sets:
            for page in pages:
                row = [results[(set_name, page, t)] for t in trees]
                line = f"{set_name:<22}{page:<10}" + "".join(f"{v:>10.2f}" if v is not None else f"{'failed':>10}"
                                                               for v in row)
                if len(row) > 1 and None not in row:
                    line += f"{row[0] / row[1]:>9.1f}x"
                print(line)
    finally:
        server = getattr(_sample, "server", None)
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
