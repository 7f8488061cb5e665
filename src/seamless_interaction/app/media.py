"""Loopback HTTP server that streams local media (mp4, wav) to the page, with byte ranges.

Browsers seek in ``<video>``/``<audio>`` with ``Range`` requests, and a 10-minute participant video
can be hundreds of MB, so media is streamed from disk rather than embedded into the page. Only files
under the served root with a media extension are reachable, and only under a random path token, so
other local users of the loopback interface cannot browse the data folder.
"""

from __future__ import annotations

import logging
import secrets
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from seamless_interaction.base.ranges import answer_range

__all__ = ["MediaServer"]

logger = logging.getLogger(__name__)

CONTENT_TYPES = {".mp4": "video/mp4", ".wav": "audio/wav"}
_CHUNK = 1 << 20


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        logger.debug("media: " + format, *args)

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_GET(self) -> None:
        self._serve(head=False)

    def _fail(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.send_header("Access-Control-Allow-Origin", "*")
        self.end_headers()

    def _serve(self, head: bool) -> None:
        path = self.server.owner.resolve(urllib.parse.unquote(urllib.parse.urlsplit(self.path).path))
        if path is None:
            self._fail(404)
            return
        size = path.stat().st_size
        answer = answer_range(self.headers.get("Range"), size)
        if answer.status == 416:
            self.send_response(416)
            self.send_header("Content-Range", str(answer.content_range))
            self.send_header("Content-Length", "0")
            self.send_header("Access-Control-Allow-Origin", "*")
            self.end_headers()
            return
        start, length = answer.start, answer.length
        self.send_response(answer.status)
        self.send_header("Content-Type", CONTENT_TYPES[path.suffix])
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Cache-Control", "no-cache")
        if answer.content_range is not None:
            self.send_header("Content-Range", answer.content_range)
        self.end_headers()
        if head:
            return
        try:
            with open(path, "rb") as fh:
                fh.seek(start)
                while length > 0:
                    block = fh.read(min(_CHUNK, length))
                    if not block:
                        break
                    self.wfile.write(block)
                    length -= len(block)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the browser cancels range requests all the time while seeking


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], owner: MediaServer):
        super().__init__(address, _Handler)
        self.owner = owner


class MediaServer:
    """Serve the media files under ``root`` at ``{url}/<relative path>`` on loopback.

    >>> with MediaServer(local_dir) as media:            # doctest: +SKIP
    ...     media.url_for(local_dir / "improvised/dev/0000/0001/V00_S0001_I00000001_P0001.mp4")
    """

    def __init__(self, root: Path | str, host: str = "127.0.0.1", port: int = 0) -> None:
        self.root = Path(root).expanduser().resolve()
        self.token = secrets.token_urlsafe(12)
        self._httpd = _Server((host, port), self)
        address = self._httpd.server_address
        self.host, self.port = str(address[0]), int(address[1])
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/{self.token}"

    def url_for(self, path: Path | str) -> str:
        """The URL of a file under the root; ``ValueError`` for one outside it or not a media file."""
        rel = Path(path).expanduser().resolve().relative_to(self.root)
        if rel.suffix not in CONTENT_TYPES:
            raise ValueError(f"{path}: only {sorted(CONTENT_TYPES)} files are served, not {rel.suffix!r}")
        return f"{self.url}/{urllib.parse.quote(rel.as_posix())}"

    def resolve(self, url_path: str) -> Path | None:
        """The file a request path names, or None (wrong token, escapes the root, not media, absent)."""
        prefix = f"/{self.token}/"
        if not url_path.startswith(prefix):
            return None
        rel = url_path[len(prefix):]
        parts = rel.split("/")
        if any(p in ("", ".", "..") for p in parts) or "\\" in rel or "\0" in rel:
            return None
        path = (self.root / Path(*parts)).resolve()
        if not path.is_relative_to(self.root) or path.suffix not in CONTENT_TYPES or not path.is_file():
            return None
        return path

    def start(self) -> MediaServer:
        if self._thread is None:
            self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                            name=f"media-{self.port}", daemon=True)
            self._thread.start()
            logger.info("serving media of %s on %s:%s", self.root, self.host, self.port)
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> MediaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"MediaServer({str(self.root)!r}, port={self.port})"

