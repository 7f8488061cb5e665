"""Loopback HTTP server for a mirror build, answering with the real URL layouts and status codes.

Routes (``{url}`` is ``http://host:port``):

* ``{url}/seamless_interaction/{label}/{split}/...``: the CDN tree; a missing object answers 403, as the
  real bucket does (FORMAT.md 2.1).
* ``{url}/datasets/facebook/seamless-interaction/resolve/main/{path}``: the Hub. Tars (LFS files) answer
  302 to ``{url}/lfs/{path}`` with ``X-Linked-Size``/``X-Linked-Etag``; the target serves the bytes with
  ``ETag: "<sha256>"``. Other repo files are served directly. Missing: 404.
* ``{url}/assets/{table}.csv``: the metadata tables.
* ``{url}/_mirror/requests``: the request log as JSON (``DELETE`` clears it).

Every file route supports HEAD and a single ``Range`` (206/416). ``latency_s`` delays each response's
first byte, ``bandwidth_bps`` paces each connection's body writes and ``total_bps`` the whole server's,
for download benchmarks.

The stdlib ThreadingHTTPServer is enough here: one thread per connection over loopback, and bodies
go out with ``os.sendfile`` (paced or not), so the server is rarely what a benchmark measures.
"""

from __future__ import annotations

import dataclasses
import email.utils
import json
import logging
import os
import re
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

from seamless_interaction.mirror.generate import sha256_file

__all__ = ["MirrorServer", "RequestRecord", "serve"]

logger = logging.getLogger(__name__)

CDN_PREFIX = "/seamless_interaction"
HF_PREFIX = "/datasets/facebook/seamless-interaction/resolve/main"
LFS_PREFIX = "/lfs"
ASSETS_PREFIX = "/assets"
LOG_PATH = "/_mirror/requests"
# The Hub stores these as LFS objects and redirects resolve requests for them.
LFS_SUFFIXES = (".tar",)
# Any fixed 40-hex value: clients read X-Repo-Commit to name their cache folders.
REPO_COMMIT = "0123456789abcdef0123456789abcdef01234567"
_CHUNK = 1 << 20
_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")


@dataclass(frozen=True)
class RequestRecord:
    """One answered request. ``body_bytes`` counts body bytes actually handed to the socket."""

    method: str
    path: str
    range: str | None
    status: int
    body_bytes: int


@dataclass
class _Entry:
    """Mutable log entry, updated while the body goes out; exported as a :class:`RequestRecord`."""

    method: str
    path: str
    range: str | None
    status: int
    body_bytes: int = 0

    def freeze(self) -> RequestRecord:
        return RequestRecord(self.method, self.path, self.range, self.status, self.body_bytes)


class _BadPath(Exception):
    pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # The stdlib default of 5 drops connections when a benchmark opens many at once.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], owner: MirrorServer):
        self.owner = owner
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that hang up mid-body are normal (aborted downloads); keep them off stderr.
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            logger.debug("client %s went away: %s", client_address, exc)
        else:
            logger.exception("mirror server error for %s", client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # headers and body leave in separate writes; with Nagle on, each small response stalls ~40 ms
    disable_nagle_algorithm = True
    server: _Server
    server_version = "SeamlessMirror/1"

    # --------------------------------------------------------------------------- plumbing
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        logger.debug("%s - " + format, self.client_address[0], *args)

    def do_GET(self) -> None:
        self._dispatch(head=False)

    def do_HEAD(self) -> None:
        self._dispatch(head=True)

    def do_DELETE(self) -> None:
        if self._route_path() == LOG_PATH:
            self.server.owner.clear_requests()
            self._send_bytes(200, b"", "text/plain", head=False, log=False)
        else:
            self._send_bytes(405, b"method not allowed\n", "text/plain", head=False)

    def _route_path(self) -> str:
        return urllib.parse.urlsplit(self.path).path

    def _dispatch(self, head: bool) -> None:
        owner = self.server.owner
        raw = self._route_path()
        if raw == LOG_PATH:
            body = json.dumps([dataclasses.asdict(r) for r in owner.requests]).encode()
            self._send_bytes(200, body, "application/json", head=head, log=False)
            return
        try:
            path = urllib.parse.unquote(raw)
            if path.startswith(CDN_PREFIX + "/"):
                self._serve_file(owner.root / "cdn", path[len(CDN_PREFIX) + 1:], head, missing=403)
            elif path.startswith(HF_PREFIX + "/"):
                self._resolve(path[len(HF_PREFIX) + 1:], head)
            elif path.startswith(LFS_PREFIX + "/"):
                self._serve_file(owner.root / "hub", path[len(LFS_PREFIX) + 1:], head, missing=404, etag=True)
            elif path.startswith(ASSETS_PREFIX + "/"):
                self._serve_file(owner.root / "assets", path[len(ASSETS_PREFIX) + 1:], head, missing=404)
            else:
                self._send_bytes(404, b"not found\n", "text/plain", head=head)
        except _BadPath as exc:
            self._send_bytes(400, f"bad path: {exc}\n".encode(), "text/plain", head=head)

    def _begin(self, status: int, length: int, ctype: str, headers: dict[str, str], log: bool = True) -> _Entry:
        """Send status and headers; the log entry exists before the client can see any of it."""
        self._delay()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(length))
        for k, v in headers.items():
            self.send_header(k, v)
        entry = _Entry(self.command, self.path, self.headers.get("Range"), status)
        if log:
            self.server.owner._log(entry)
        self.end_headers()
        return entry

    def _delay(self) -> None:
        if self.server.owner.latency_s > 0:
            time.sleep(self.server.owner.latency_s)

    def _send_bytes(self, status: int, body: bytes, ctype: str, *, head: bool, log: bool = True,
                    headers: dict[str, str] | None = None) -> None:
        entry = self._begin(status, len(body), ctype, headers or {}, log)
        if not head and body:
            entry.body_bytes += len(body)
            try:
                self.wfile.write(body)
            except BaseException:
                entry.body_bytes -= len(body)
                raise

    # ----------------------------------------------------------------------------- routes
    def _safe_file(self, base: Path, rel: str) -> Path | None:
        parts = rel.split("/")
        if any(p in ("", ".", "..") for p in parts) or "\\" in rel or "\0" in rel:
            raise _BadPath(rel)
        path = base / Path(*parts)
        try:
            resolved = path.resolve()
            if not resolved.is_relative_to(base.resolve()):
                raise _BadPath(rel)
        except OSError:
            return None
        return resolved if resolved.is_file() else None

    def _resolve(self, rel: str, head: bool) -> None:
        owner = self.server.owner
        path = self._safe_file(owner.root / "hub", rel)
        if path is None:
            self._send_bytes(404, b"Entry not found\n", "text/plain", head=head,
                             headers={"X-Error-Code": "EntryNotFound", "X-Repo-Commit": REPO_COMMIT})
            return
        if not rel.endswith(LFS_SUFFIXES):
            self._serve_file(owner.root / "hub", rel, head, missing=404, etag=True,
                             extra={"X-Repo-Commit": REPO_COMMIT})
            return
        host = self.headers.get("Host") or f"{owner.host}:{owner.port}"
        location = f"http://{host}{LFS_PREFIX}/{urllib.parse.quote(rel)}"
        sha = owner.sha256(path)
        self._send_bytes(302, b"", "text/plain", head=head, headers={
            "Location": location,
            "X-Linked-Size": str(path.stat().st_size),
            "X-Linked-Etag": f'"{sha}"',
            "ETag": f'"{sha}"',
            "X-Repo-Commit": REPO_COMMIT,
        })

    def _serve_file(self, base: Path, rel: str, head: bool, *, missing: int, etag: bool = False,
                    extra: dict[str, str] | None = None) -> None:
        path = self._safe_file(base, rel)
        if path is None:
            body = (b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code>"
                    b"<Message>Access Denied</Message></Error>") if missing == 403 else b"not found\n"
            self._send_bytes(missing, body, "application/xml" if missing == 403 else "text/plain", head=head)
            return
        size = path.stat().st_size
        headers = {"Accept-Ranges": "bytes", "Last-Modified": email.utils.formatdate(path.stat().st_mtime,
                                                                                     usegmt=True)}
        if etag:
            headers["ETag"] = f'"{self.server.owner.sha256(path)}"'
        headers.update(extra or {})
        start, end, status = 0, size - 1, 200
        spec = self.headers.get("Range")
        if spec is not None:
            parsed = _parse_range(spec, size)
            if parsed == "unsatisfiable":
                headers["Content-Range"] = f"bytes */{size}"
                self._send_bytes(416, b"", "text/plain", head=head, headers=headers)
                return
            if parsed is not None:  # an unparsable or multi-range header is ignored, as RFC 9110 allows
                start, end = parsed
                status = 206
                headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        length = end - start + 1
        entry = self._begin(status, length, "application/octet-stream", headers)
        if not head and length > 0:
            with open(path, "rb") as fh:
                self._stream(fh, start, length, entry)

    def _stream(self, fh: IO[bytes], offset: int, length: int, entry: _Entry) -> None:
        """Write a file slice, paced when a per-connection or server-wide cap is set.

        Bytes are counted just before each write and taken back if it fails, so a client that has
        received the whole body always finds the full count in the log (no race with the append).
        Paced or not, the bytes go out with ``os.sendfile`` where it exists, so that serving costs
        little CPU and a benchmark measures its client, not the server.
        """
        owner = self.server.owner
        bps, pacer = owner.bandwidth_bps, owner.pacer
        if bps or pacer is not None:
            # A slice of 50 ms at the connection's rate (10 ms of the server's): paced smoothly.
            rates = [r for r in (bps and bps / 20, pacer and pacer.bps / 100) if r]
            chunk = max(16 << 10, min(_CHUNK, int(min(rates))))
        else:
            chunk = _CHUNK
        sendfile = hasattr(os, "sendfile")
        if sendfile:
            self.wfile.flush()
            sock = self.connection.fileno()
        else:
            fh.seek(offset)
        t0, done = time.monotonic(), 0
        while length > 0:
            want = min(length, chunk)
            if pacer is not None:
                pacer.wait(want)
            entry.body_bytes += want
            try:
                if sendfile:
                    n = os.sendfile(sock, fh.fileno(), offset, want)
                else:
                    block = fh.read(want)
                    if not block:
                        raise ConnectionError(f"file shrank while serving {fh.name}")
                    self.wfile.write(block)
                    n = len(block)
            except BaseException:
                entry.body_bytes -= want  # a failed call sent nothing
                raise
            entry.body_bytes -= want - n  # short write
            if n == 0:
                raise ConnectionError("sendfile wrote nothing")
            offset += n
            length -= n
            done += n
            if bps:
                ahead = done / bps - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)


class _Pacer:
    """A server-wide byte rate shared by every connection: each write books its slot on one timeline."""

    def __init__(self, bps: float) -> None:
        if bps <= 0:
            raise ValueError(f"total_bps must be > 0, got {bps}")
        self.bps = float(bps)
        self._lock = threading.Lock()
        self._next = 0.0

    def wait(self, n: int) -> None:
        """Sleep until ``n`` more bytes fit under the rate (bursts of idle time are not saved up)."""
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + n / self.bps
        if start > now:
            time.sleep(start - now)


def _parse_range(spec: str, size: int) -> tuple[int, int] | str | None:
    """(start, end) inclusive, "unsatisfiable", or None for a header to ignore."""
    m = _RANGE_RE.match(spec.strip())
    if m is None or (not m.group(1) and not m.group(2)):
        return None
    first, last = m.group(1), m.group(2)
    if not first:  # suffix range: the last n bytes
        n = int(last)
        if n == 0 or size == 0:
            return "unsatisfiable"
        return max(0, size - n), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if last and int(last) < start:
        return None
    if start >= size:
        return "unsatisfiable"
    return start, end


class MirrorServer:
    """Serve a mirror build on loopback in a background thread.

    >>> with MirrorServer(info.root) as srv:             # doctest: +SKIP
    ...     httpx.get(f"{srv.cdn_url}/improvised/dev/audio/{fid}.wav")
    """

    def __init__(self, root: Path | str, host: str = "127.0.0.1", port: int = 0, *, latency_s: float = 0.0,
                 bandwidth_bps: float | None = None, total_bps: float | None = None):
        self.root = Path(root).absolute()
        if not (self.root / "cdn").is_dir() and not (self.root / "hub").is_dir():
            raise FileNotFoundError(f"{self.root}: not a mirror build (no cdn/ or hub/ folder); "
                                    "run build_mirror() or `seamless-interaction mirror build` first")
        self.host = host
        self.port = port
        self.latency_s = float(latency_s)
        self.bandwidth_bps = bandwidth_bps
        self.total_bps = total_bps
        self.pacer = _Pacer(total_bps) if total_bps else None
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._requests: list[_Entry] = []
        self._sha: dict[tuple[str, int, int], str] = {}

    # ------------------------------------------------------------------------ lifecycle
    def _bind(self) -> _Server:
        if self._httpd is None:
            self._httpd = _Server((self.host, self.port), self)
            self.port = self._httpd.server_address[1]
        return self._httpd

    def start(self) -> MirrorServer:
        if self._thread is None:
            httpd = self._bind()
            self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                            name=f"mirror-{self.port}", daemon=True)
            self._thread.start()
            logger.info("mirror serving %s at %s", self.root, self.url)
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            if self._thread is not None:
                self._httpd.shutdown()
                self._thread.join()
            self._httpd.server_close()
        self._httpd = None
        self._thread = None

    def serve_forever(self) -> None:
        """Block serving requests in the calling thread until interrupted."""
        httpd = self._bind()
        try:
            httpd.serve_forever(poll_interval=0.2)
        finally:
            httpd.server_close()
            self._httpd = None

    def __enter__(self) -> MirrorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --------------------------------------------------------------------------- urls
    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def cdn_url(self) -> str:
        return self.url + CDN_PREFIX

    @property
    def hf_url(self) -> str:
        return self.url + HF_PREFIX

    @property
    def assets_url(self) -> str:
        return self.url + ASSETS_PREFIX

    # ---------------------------------------------------------------------- request log
    @property
    def requests(self) -> list[RequestRecord]:
        """A snapshot of the request log, oldest first."""
        with self._lock:
            return [e.freeze() for e in self._requests]

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def _log(self, record: _Entry) -> None:
        with self._lock:
            self._requests.append(record)

    def sha256(self, path: Path) -> str:
        """sha256 hex of a served file, computed once per (path, size, mtime)."""
        st = path.stat()
        key = (str(path), st.st_size, st.st_mtime_ns)
        with self._lock:
            cached = self._sha.get(key)
        if cached is None:
            cached = sha256_file(path)
            with self._lock:
                self._sha[key] = cached
        return cached


def serve(root: Path | str, host: str = "127.0.0.1", port: int = 8000, *, latency_s: float = 0.0,
          bandwidth_bps: float | None = None, total_bps: float | None = None, out: IO[str] | None = None) -> None:
    """Serve ``root`` until Ctrl-C, after printing the three base URLs (for ``mirror serve``)."""
    server = MirrorServer(root, host, port, latency_s=latency_s, bandwidth_bps=bandwidth_bps, total_bps=total_bps)
    server._bind()
    out = out or sys.stdout
    print(f"CDN:    {server.cdn_url}", file=out)
    print(f"Hub:    {server.hf_url}", file=out)
    print(f"Assets: {server.assets_url}", file=out, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
