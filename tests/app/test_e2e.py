"""End to end: ``streamlit run`` on loopback over the mirror, driven by headless Chromium (Playwright).

Uses the system Chromium (``/usr/bin/chromium``; Playwright's own browser downloads are not needed).
Screenshots go to ``test-artifacts/app/`` at the repository root.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest

from seamless_interaction.app.launch import streamlit_command
from seamless_interaction.mirror import MirrorServer

playwright_api = pytest.importorskip("playwright.sync_api")


def chromium_path() -> str | None:
    for path in (os.environ.get("CHROMIUM_PATH"), "/usr/bin/chromium", "/usr/bin/chromium-browser"):
        if path and Path(path).exists():
            return path
    return None


CHROMIUM = chromium_path()
# One app and one browser for the whole module (about a minute): slow.
pytestmark = [pytest.mark.skipif(CHROMIUM is None, reason="no system Chromium (apt-get install chromium)"),
              pytest.mark.slow]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "app"
# Without the background-networking switches Chromium keeps trying to reach Google services.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--autoplay-policy=no-user-gesture-required", "--mute-audio"]
# Throttled so that the Download page's progress bar is seen moving (a 7 MB archive takes ~2 s).
MIRROR_BPS = 4_000_000
PLAYER = 'iframe[title="seamless-player"]'


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def served(app_setup, tmp_path_factory):
    base = tmp_path_factory.mktemp("e2e")
    local = base / "data"
    shutil.copytree(app_setup.local_dir, local)
    with MirrorServer(app_setup.mirror.root, bandwidth_bps=MIRROR_BPS) as mirror:
        port = _free_port()
        env = dict(os.environ, **app_setup.env(local))
        env.update({"SEAMLESS_INTERACTION_CDN_URL": mirror.cdn_url, "SEAMLESS_INTERACTION_HF_URL": mirror.hf_url,
                    "SEAMLESS_INTERACTION_ASSETS": mirror.assets_url})
        log = open(base / "streamlit.log", "wb")
        cmd = streamlit_command(port=port, headless=True, address="127.0.0.1") + [
            "--server.fileWatcherType", "none"]
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                        break
                except OSError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"streamlit did not start: {(base / 'streamlit.log').read_text()[-2000:]}")
                time.sleep(0.2)
            yield SimpleNamespace(url=url, local=local, setup=app_setup, mirror=app_setup.mirror, server=mirror)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()


@pytest.fixture(scope="module")
def page(served, tmp_path_factory):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with playwright_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1400, "height": 1000})
        # Every request to another origin than the app's is refused and recorded: the app must work
        # as it does through an SSH tunnel or a proxy, where only the app's own port is reachable.
        blocked: list[str] = []
        origin = served.url

        def gate(route):
            url = route.request.url
            if url == origin or url.startswith((origin + "/", "data:", "blob:", "about:")):
                route.continue_()
            else:
                blocked.append(url)
                route.abort()

        context.route("**/*", gate)
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.blocked = blocked
        yield page
        context.close()


def open_page(page, url: str, title: str) -> None:
    page.goto(url)
    page.get_by_role("heading", name=title, level=1).wait_for()
    wait_idle(page)


def wait_idle(page, settle_s: float = 0.6) -> None:
    """Until the script run finished (no "running" status widget) and stayed so for ``settle_s``."""
    quiet_since = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        running = page.locator('[data-testid="stStatusWidget"]').count() > 0
        now = time.monotonic()
        if running:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = now
        elif now - quiet_since >= settle_s:
            return
        time.sleep(0.1)
    raise AssertionError("the app kept running for 30 s")


def assert_no_exception(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0, page.locator(
        '[data-testid="stException"]').first.inner_text()
    errors = page.locator('[data-testid="stAlertContentError"]')
    assert errors.count() == 0, errors.first.inner_text()


def screenshot(page, name: str) -> Path:
    """The whole page (Streamlit scrolls an inner container, so the viewport is stretched to fit)."""
    height = page.evaluate("Math.max(...[...document.querySelectorAll('[data-testid=stMain], section')]"
                           ".map(e => e.scrollHeight), 600)")
    page.set_viewport_size({"width": 1400, "height": min(int(height) + 40, 8000)})
    page.wait_for_timeout(400)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    page.set_viewport_size({"width": 1400, "height": 1000})
    return path


def player_frame(page):
    handle = page.locator(PLAYER).element_handle()
    frame = handle.content_frame()
    frame.wait_for_function("document.body && document.body.dataset.ready === '1'")
    return frame


def video_times(frame) -> list[float]:
    return frame.evaluate("[...document.querySelectorAll('video')].map(v => v.currentTime)")


def wait_seeked(frame) -> None:
    frame.wait_for_function("[...document.querySelectorAll('video')].every(v => !v.seeking && v.readyState >= 2)")


PAGES = [("", "Seamless Interaction", "01-welcome"), ("overview", "Overview", "02-overview"),
         ("download", "Download", "03-download"), ("viewer", "Interaction viewer", "04-viewer"),
         ("files", "File management", "05-files")]


@pytest.mark.parametrize("path,title,shot", PAGES, ids=[p[2] for p in PAGES])
def test_page_renders_without_exception(served, page, path, title, shot):
    open_page(page, f"{served.url}/{path}", title)
    if path == "overview":
        page.locator(".js-plotly-plot").nth(6).wait_for()
    if path == "viewer":
        player_frame(page)
    assert_no_exception(page)
    screenshot(page, shot)


def test_viewer_plays_both_videos_in_sync_and_the_timeline_follows(served, page):
    key = served.setup.key
    open_page(page, f"{served.url}/viewer?interaction={key}", "Interaction viewer")
    frame = player_frame(page)
    assert frame.evaluate("[...document.querySelectorAll('video')].map(v => v.dataset.fileId)") == sorted(
        served.setup.pair)
    frame.wait_for_function("[...document.querySelectorAll('video')].every(v => v.readyState >= 2)")
    payload = frame.evaluate("window.seamlessPlayer.payload")
    duration = payload["duration"]

    frame.locator("#play").click()
    frame.wait_for_function("document.querySelector('#video0').currentTime > 1.5")
    a, b = video_times(frame)
    assert not frame.evaluate("document.querySelector('#video0').paused")
    assert abs(a - b) < 0.1, (a, b)
    lanes_t = float(frame.locator("#lanes").get_attribute("data-t"))
    assert lanes_t > 1.0  # the cursor moves with playback, without a Streamlit rerun

    # Seek while playing, by clicking the VAD lanes at 70 % of the time axis.
    box = frame.locator("#lanes").bounding_box()
    width = box["width"]
    x = 44 + (width - 44 - 8) * 0.7
    frame.locator("#lanes").click(position={"x": x, "y": 10})
    wait_seeked(frame)
    page.wait_for_timeout(300)
    a, b = video_times(frame)
    assert abs(a - b) < 0.1, (a, b)
    assert abs(a - 0.7 * duration) < 1.0, (a, duration)
    frame.locator("#play").click()  # pause
    frame.wait_for_function("document.querySelector('#video0').paused && document.querySelector('#video1').paused")
    a, b = video_times(frame)
    assert abs(a - b) < 0.1, (a, b)

    # Transcript and plots follow the clock: two words of participant 0 at two times.
    words = payload["participants"][0]["words"]
    first, second = words[len(words) // 4], words[3 * len(words) // 4]
    seen = []
    for word in (first, second):
        t = (word[0] + word[1]) / 2
        frame.evaluate(f"window.seamlessPlayer.seek({t})")
        wait_seeked(frame)
        frame.wait_for_function(f"Math.abs(document.body.dataset.t - {t}) < 0.05")
        a, b = video_times(frame)
        assert abs(a - t) < 0.05 and abs(b - t) < 0.1, (a, b, t)
        current = frame.locator("#tx0 .w.cur")
        assert current.count() == 1 and current.inner_text() == word[2]
        # The transcript box scrolled so that the highlighted word is in view.
        assert current.evaluate("el => { const r = el.getBoundingClientRect(), "
                                "q = el.closest('.txcol').getBoundingClientRect(); "
                                "return r.top >= q.top && r.bottom <= q.bottom; }")
        assert int(frame.locator("#tx0").get_attribute("data-word")) == words.index(word)
        chart = frame.locator("#chart-valence")
        cw = chart.evaluate("e => e.clientWidth")
        expected_x = 44 + (cw - 44 - 8) * a / duration
        assert abs(float(chart.get_attribute("data-cursor-x")) - expected_x) < 1.0
        cursor_left = chart.locator(".cursor").evaluate("e => parseFloat(e.style.left)")
        assert abs(cursor_left + 1 - expected_x) < 1.0
        seen.append((current.inner_text(), float(chart.get_attribute("data-cursor-x"))))
    assert seen[0][1] < seen[1][1]  # the cursor moved right with time
    screenshot(page, "06-viewer-after-seek")

    # The link button gives a URL that reopens the viewer at this interaction and time.
    frame.locator("#link").click()
    link = frame.locator("#linktext").input_value()
    assert f"/viewer?interaction={key}&t=" in link
    t_link = float(link.rsplit("=", 1)[1])
    page.goto(link)
    frame = player_frame(page)
    wait_seeked(frame)
    a, b = video_times(frame)
    assert abs(a - t_link) < 0.1 and abs(b - t_link) < 0.1, (a, b, t_link)


def _select(page, label: str, option: str) -> None:
    page.locator('[data-testid="stSelectbox"]').filter(has_text=label).first.click()
    page.get_by_role("option", name=option, exact=True).click()
    wait_idle(page)


def test_download_an_archive_then_find_it_in_file_management(served, page):
    label, split, batch, archive = next(a for a in served.mirror.archives if a[:3] == ("improvised", "dev", 1))
    ids = served.mirror.archive_ids(label, split, batch, archive)
    name = f"{label}/{split}/{batch:04d}/{archive:04d}.tar"
    open_page(page, f"{served.url}/download", "Download")
    _select(page, "Batch", f"{batch:04d}")
    _select(page, "Archive", f"{archive:04d}")
    size = (served.mirror.root / "hub" / name).stat().st_size
    from seamless_interaction.app.progress import format_bytes

    assert page.locator('[data-testid="stMetric"]').filter(has_text="Archive size").inner_text().endswith(
        format_bytes(size))
    page.get_by_role("button", name=f"Download {name}").click()
    texts = []
    progress = page.locator('[data-testid="stProgress"]')
    deadline = time.monotonic() + 60
    shot = False
    while time.monotonic() < deadline:
        if page.get_by_text(f"Downloaded {name}").count():
            break
        if progress.count():
            try:
                texts.append(progress.first.inner_text(timeout=500))
            except playwright_api.Error:
                pass
            if not shot and texts and "/s" in texts[-1]:
                page.screenshot(path=str(ARTIFACTS / "07-download-progress.png"))
                shot = True
        time.sleep(0.1)
    page.get_by_text(f"Downloaded {name}").wait_for()
    wait_idle(page)
    assert_no_exception(page)
    assert any("MiB/s" in t or "KiB/s" in t for t in texts), texts  # a live rate was shown
    assert any("left" in t for t in texts), texts  # and a time left
    screenshot(page, "08-download-done")

    open_page(page, f"{served.url}/files", "File management")
    metric = page.locator('[data-testid="stMetric"]').filter(has_text="Complete").first.inner_text()
    assert metric.splitlines()[-1] == str(len(served.setup.pair) + len(ids))
    _select(page, "File id", ids[0])
    assert_no_exception(page)
    screenshot(page, "09-files-after-download")
    for fid in ids:
        assert any(served.local.rglob(f"{fid}.mp4"))


def test_media_come_from_the_apps_origin_with_ranges_and_a_token(served, page):
    key = served.setup.key
    open_page(page, f"{served.url}/viewer?interaction={key}", "Interaction viewer")
    frame = player_frame(page)
    srcs = frame.evaluate("[...document.querySelectorAll('video, audio')].map(e => e.src)")
    assert len(srcs) == 4 and all(s.startswith(served.url + "/seamless-media/") for s in srcs), srcs
    frame.locator("#play").click()
    frame.wait_for_function("document.querySelector('#video0').currentTime > 1.0 && "
                            "document.querySelector('#audio0').currentTime > 1.0")
    frame.locator("#play").click()
    assert page.blocked == [], page.blocked  # nothing was fetched from elsewhere (no CDN, no fonts, no icons)
    video = next(s for s in srcs if s.endswith(".mp4"))
    size = next(served.local.rglob(video.rsplit("/", 1)[1])).stat().st_size
    part = page.request.get(video, headers={"Range": "bytes=100-199"})
    assert part.status == 206 and part.headers["content-range"] == f"bytes 100-199/{size}"
    assert part.body() == next(served.local.rglob(video.rsplit("/", 1)[1])).read_bytes()[100:200]
    token = video.split("/seamless-media/", 1)[1].split("/", 1)[0]
    assert len(token) >= 20
    assert page.request.get(video.replace(token, "x" * len(token))).status == 404  # another token
    assert page.request.get(video.replace(".mp4", ".npz")).status == 404  # not a media file
    assert page.request.get(video.rsplit("/", 1)[0] + "/..%2F..%2Fetc%2Fpasswd").status in (400, 404)


SAMPLE_JS = """async (ms) => { const out = [], v = document.querySelector('#video0'), A = window.seamlessPlayer.audio;
  const t0 = performance.now(); while (performance.now() - t0 < ms) {
    out.push({t: v.currentTime, mix: A.level(), levels: A.levels(),
              drift: [...document.querySelectorAll('audio')].map(a => a.currentTime - v.currentTime)});
    await new Promise(r => setTimeout(r, 40)); } return out; }"""


def _inside(t: float, segments, margin: float = 0.15) -> bool:
    return any(s + margin <= t <= e - margin for s, e in segments)


def test_both_participants_are_heard_on_the_video_clock_with_mute_and_solo(served, page):
    key = served.setup.key
    open_page(page, f"{served.url}/viewer?interaction={key}", "Interaction viewer")
    frame = player_frame(page)
    payload = frame.evaluate("window.seamlessPlayer.payload")
    vad0 = payload["participants"][0]["vad"]
    frame.locator("#play").click()
    frame.wait_for_function("document.querySelector('#video0').currentTime > 0.3")
    samples = frame.evaluate(SAMPLE_JS, 3500)
    # While participant 0's test tone plays (inside its VAD segments), the output analyser reads it.
    speaking = [x for x in samples if _inside(x["t"], vad0)]
    assert len(speaking) >= 3, (vad0, [x["t"] for x in samples])
    assert all(x["levels"][0] > 0.02 and x["mix"] > 0.01 for x in speaking), speaking
    # Both audio clocks stay within 40 ms of the video's.
    assert all(abs(d) <= 0.040 for x in samples for d in x["drift"]), [x["drift"] for x in samples]
    # Solo participant 1: participant 0's voice leaves the mix; then mute, then half volume.
    frame.locator("#actl1 .solo").click()
    assert frame.locator("#actl0").get_attribute("data-gain") == "0.00"
    page.wait_for_timeout(150)
    assert all(x["levels"][0] == 0 for x in frame.evaluate(SAMPLE_JS, 400))
    frame.locator("#actl1 .solo").click()
    frame.locator("#actl0 .mute").click()
    page.wait_for_timeout(150)
    assert all(x["levels"][0] == 0 for x in frame.evaluate(SAMPLE_JS, 400))
    frame.locator("#actl0 .mute").click()
    frame.locator("#actl0 .vol").fill("0.5")
    assert frame.locator("#actl0").get_attribute("data-gain") == "0.50"
    frame.evaluate(f"window.seamlessPlayer.seek({vad0[0][0] + 0.05})")
    frame.wait_for_function("window.seamlessPlayer.audio.levels()[0] > 0.01", timeout=5000)
    screenshot(page, "10-viewer-audio")
    frame.locator("#play").click()


def test_timeline_zooms_pans_and_keys_work_from_the_page(served, page):
    key = served.setup.key
    open_page(page, f"{served.url}/viewer?interaction={key}", "Interaction viewer")
    frame = player_frame(page)
    duration = frame.evaluate("window.seamlessPlayer.payload.duration")
    assert frame.evaluate("window.seamlessPlayer.view()") == [0, duration]
    lanes = frame.locator("#lanes")
    box = lanes.bounding_box()
    # Wheel over the middle of the timeline: the window narrows around the pointer's time.
    lanes.hover(position={"x": 44 + (box["width"] - 52) * 0.5, "y": 20})
    for _ in range(4):
        page.mouse.wheel(0, -300)
    page.wait_for_timeout(200)
    v0, v1 = frame.evaluate("window.seamlessPlayer.view()")
    assert v1 - v0 < duration / 2 and v0 < duration / 2 < v1, (v0, v1)
    # The cursor of every panel follows the same window.
    t = (v0 + v1) / 2
    frame.evaluate(f"window.seamlessPlayer.seek({t})")
    wait_seeked(frame)
    chart = frame.locator("#chart-valence")
    cw = chart.evaluate("e => e.clientWidth")
    expected = 44 + (cw - 52) * (t - v0) / (v1 - v0)
    assert abs(float(chart.get_attribute("data-cursor-x")) - expected) < 1.5
    # Drag to the left pans later in time.
    box = lanes.bounding_box()
    y = box["y"] + 20
    page.mouse.move(box["x"] + box["width"] * 0.6, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.4, y, steps=5)
    page.mouse.up()
    p0, p1 = frame.evaluate("window.seamlessPlayer.view()")
    assert p0 > v0 and abs((p1 - p0) - (v1 - v0)) < 1e-6, (v0, v1, p0, p1)
    screenshot(page, "11-viewer-zoomed")
    frame.locator("#zfit").click()
    assert frame.evaluate("window.seamlessPlayer.view()") == [0, duration]
    # Keys pressed on Streamlit's page (outside the player) drive the player: frame steps and play/pause.
    frame.evaluate("window.seamlessPlayer.seek(2.0)")
    wait_seeked(frame)
    page.locator("h1").first.click()
    page.keyboard.press("ArrowRight")
    wait_seeked(frame)
    fps = frame.evaluate("(window.seamlessPlayer.payload.participants.find(p => p.fps) || {}).fps || 30")
    assert abs(frame.evaluate("window.seamlessPlayer.time()") - (round(2.0 * fps) + 1) / fps) < 0.01
    assert frame.locator("#frame").inner_text() == f"frame {round(2.0 * fps) + 1}"
    page.keyboard.press("k")
    frame.wait_for_function("!document.querySelector('#video0').paused")
    page.keyboard.press("k")
    frame.wait_for_function("document.querySelector('#video0').paused")
    page.keyboard.press("?")
    assert frame.locator("#help").evaluate("e => getComputedStyle(e).display") == "flex"
    page.keyboard.press("Escape")
    # N jumps to the next transcript segment's start (of either participant) in the merged transcript.
    payload = frame.evaluate("window.seamlessPlayer.payload")
    starts = sorted(seg[0] for p in payload["participants"] for seg in p["segments"])
    frame.evaluate("window.seamlessPlayer.seek(0)")
    wait_seeked(frame)
    page.keyboard.press("n")
    wait_seeked(frame)
    expected = next(s0 for s0 in starts if s0 > 0.05)
    assert abs(frame.evaluate("window.seamlessPlayer.time()") - expected) < 0.01


def _progress_texts(page, until, timeout_s: float = 60) -> list[str]:
    texts: list[str] = []
    bar = page.locator('[data-testid="stProgress"]')
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not until(texts):
        if bar.count():
            try:
                texts.append(bar.first.inner_text(timeout=500))
            except playwright_api.Error:
                pass
        time.sleep(0.1)
    return texts


def test_header_stop_cancels_a_running_download_and_keeps_the_partial_file(served, page):
    # An archive not downloaded by the other tests; the throttled mirror makes it take seconds.
    label, split, batch, archive = next(a for a in served.mirror.archives
                                        if a != served.mirror.missing_archive and a[:3] != ("improvised", "dev", 1))
    name = f"{label}/{split}/{batch:04d}/{archive:04d}.tar"
    open_page(page, f"{served.url}/download", "Download")
    _select(page, "Label", label)
    _select(page, "Split", split)
    _select(page, "Batch", f"{batch:04d}")
    _select(page, "Archive", f"{archive:04d}")
    page.get_by_role("button", name=f"Download {name}").click()
    texts = _progress_texts(page, lambda t: any("/s" in x for x in t))
    assert any("/s" in x for x in texts), texts
    page.locator('[data-testid="stStatusWidget"]').get_by_role("button", name="Stop").click()
    wait_idle(page)
    def served_bytes() -> int:
        return sum(r.body_bytes for r in served.server.requests if r.path.endswith(name))

    before = served_bytes()
    time.sleep(1.5)  # had the transfer gone on in the background, the mirror would have sent more
    assert served_bytes() == before
    size = (served.mirror.root / "hub" / name).stat().st_size
    assert 0 < before < size, (before, size)  # stopped midway
    assert not (served.local / name).exists()
    # The next run of the page (any widget) tells what happened, on the tab the download was started from.
    page.get_by_text("Extract after download").click()
    wait_idle(page)
    screenshot(page, "12-download-stopped")
    page.get_by_text(f"{name} stopped after").wait_for()
    assert "Archives" in page.get_by_role("tab", selected=True).inner_text()
    screenshot(page, "12-download-stopped")


def test_cdn_pair_download_shows_bytes_and_time_left_and_stays_on_its_tab(served, page):
    local = {p.stem for p in served.local.rglob("*.mp4")}
    key = next(p[0][:19] for p in served.mirror.pairs if not set(p) & local)
    open_page(page, f"{served.url}/download", "Download")
    page.get_by_role("tab", name="Files, pairs and sessions (CDN)").click()
    wait_idle(page)
    fid = next(p for p in served.mirror.pairs if p[0][:19] == key)[0]
    rec = served.mirror.files[fid]
    page.locator('[data-testid="stSelectbox"]').filter(has_text="Label").nth(1).click()
    page.get_by_role("option", name=rec.label, exact=True).click()
    wait_idle(page)
    page.locator('[data-testid="stSelectbox"]').filter(has_text="Split").nth(1).click()
    page.get_by_role("option", name=rec.split, exact=True).click()
    wait_idle(page)
    page.locator('[data-testid="stSelectbox"]').filter(has_text="Interaction").first.click()
    page.get_by_role("option", name=key, exact=True).click()
    wait_idle(page)
    page.get_by_role("button", name="Download", exact=True).click()
    texts = _progress_texts(page, lambda t: bool(page.get_by_text(f"Downloaded pair {key}").count()))
    page.get_by_text(f"Downloaded pair {key}").wait_for()
    wait_idle(page)
    assert_no_exception(page)
    # Bytes against an estimate, and a time left, while the ids were still incomplete.
    assert any(" / ~" in x and "left" in x and x.startswith(f"pair {key} · 0 of 2") for x in texts), texts
    assert "Files, pairs" in page.get_by_role("tab", selected=True).inner_text()
    assert page.get_by_text("Already complete on disk.").count() == 1
