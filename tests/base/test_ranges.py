"""One Range answer for both loopback servers: the unit, then the media server and the mirror side by side."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from seamless_interaction.base.ranges import answer_range

SIZE = 1000


@pytest.mark.parametrize("spec, status, start, end", [
    (None, 200, 0, SIZE - 1),
    ("bytes=0-99", 206, 0, 99),
    ("bytes=990-", 206, 990, SIZE - 1),
    ("bytes=990-5000", 206, 990, SIZE - 1),
    ("bytes=-10", 206, SIZE - 10, SIZE - 1),
    ("bytes=-5000", 206, 0, SIZE - 1),
    ("bytes=1000-", 416, None, None),
    ("bytes=-0", 416, None, None),
    ("bytes=5-3", 200, 0, SIZE - 1),       # last byte before the first: the header is ignored
    ("bytes=0-1,5-6", 200, 0, SIZE - 1),   # multi-range: ignored
    ("items=0-5", 200, 0, SIZE - 1),
    ("bytes=-", 200, 0, SIZE - 1),
    ("junk", 200, 0, SIZE - 1),
])
def test_answer_range(spec, status, start, end) -> None:
    a = answer_range(spec, SIZE)
    assert a.status == status
    if status == 416:
        assert a.length == 0 and a.content_range == f"bytes */{SIZE}"
    else:
        assert (a.start, a.end, a.length) == (start, end, end - start + 1)
        assert a.content_range == (f"bytes {start}-{end}/{SIZE}" if status == 206 else None)


def test_empty_file() -> None:
    assert answer_range(None, 0).length == 0
    assert answer_range("bytes=0-", 0).status == 416
    assert answer_range("bytes=-3", 0).status == 416


SPECS = [None, "bytes=0-99", "bytes=990-", "bytes=-10", "bytes=1000-", "bytes=5-3", "bytes=-0",
         "bytes=0-1,5-6", "junk"]


@contextmanager
def _media_route(root: Path) -> Iterator[str]:
    """The app's media route (the Starlette route the Streamlit server mounts) on a loopback uvicorn."""
    import uvicorn
    from starlette.applications import Starlette

    from seamless_interaction.app.media import MediaRegistry, media_routes

    reg = MediaRegistry()
    site = reg.site(root)
    server = uvicorn.Server(uvicorn.Config(Starlette(routes=media_routes(reg)), host="127.0.0.1", port=0,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
            time.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}{site.url_for(root / 'x.mp4')}"
    finally:
        server.should_exit = True
        thread.join(10)


def test_media_route_and_mirror_answer_every_range_alike(tmp_path: Path) -> None:
    from seamless_interaction.mirror import MirrorServer

    data = os.urandom(SIZE)
    (tmp_path / "media").mkdir()
    (tmp_path / "media" / "x.mp4").write_bytes(data)
    (tmp_path / "mirror" / "hub").mkdir(parents=True)
    (tmp_path / "mirror" / "hub" / "x.mp4").write_bytes(data)
    with _media_route(tmp_path / "media") as media_url, MirrorServer(tmp_path / "mirror") as mirror, \
            httpx.Client() as client:
        urls = [media_url, f"{mirror.url}/lfs/x.mp4"]
        for spec in SPECS:
            headers = {"Range": spec} if spec else {}
            answers = []
            for url in urls:
                r = client.get(url, headers=headers)
                answers.append((r.status_code, r.headers.get("content-range"), r.content))
            assert answers[0] == answers[1], spec
            a = answer_range(spec, SIZE)
            assert answers[0] == (a.status, a.content_range, data[a.start:a.end + 1] if a.length else b"")
        head = client.head(media_url, headers={"Range": "bytes=10-19"})
        assert (head.status_code, head.headers["content-length"], head.content) == (206, "10", b"")
