"""A loopback HTTP server with scripted faults, for transfer tests.

Each path serves a :class:`Resource` (bytes with an ETag, honouring ``Range`` and ``If-Range`` like
a CDN) or a :class:`Redirect`. A resource carries a script of :class:`Fault` s consumed one per GET
(then ``always``, if set). Every request is logged with its headers and the body bytes sent.
"""

from __future__ import annotations

import hashlib
import re
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

_RANGE_RE = re.compile(r"^bytes=(\d+)-(\d*)$")


def tls_context(folder: Path) -> tuple[ssl.SSLContext, Path]:
    """A server context with a fresh self-signed certificate for 127.0.0.1, and the certificate's
    path (for the client to trust, e.g. as ``SSL_CERT_FILE``). Needs the ``openssl`` command."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx, cert


@dataclass(frozen=True)
class Fault:
    """What goes wrong with one response.

    kind: ``status`` (answer ``code`` with ``headers``), ``drop`` (send ``after`` body bytes, then
    close the connection), ``stall`` (send ``after`` bytes, then go silent for ``seconds``),
    ``corrupt`` (flip one byte of the body), ``ignore_range`` (answer 200 with the whole body),
    ``throttle`` (send ``chunk`` bytes every ``seconds``), ``chunked`` (no Content-Length).
    """

    kind: str
    code: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    after: int = 0
    seconds: float = 0.0
    chunk: int = 0

    @classmethod
    def status(cls, code: int, headers: dict[str, str] | None = None) -> Fault:
        return cls("status", code=code, headers=headers or {})

    @classmethod
    def drop(cls, after: int) -> Fault:
        return cls("drop", after=after)

    @classmethod
    def stall(cls, after: int, seconds: float) -> Fault:
        return cls("stall", after=after, seconds=seconds)

    @classmethod
    def corrupt(cls) -> Fault:
        return cls("corrupt")

    @classmethod
    def ignore_range(cls) -> Fault:
        return cls("ignore_range")

    @classmethod
    def throttle(cls, chunk: int, seconds: float) -> Fault:
        return cls("throttle", chunk=chunk, seconds=seconds)

    @classmethod
    def chunked(cls) -> Fault:
        return cls("chunked")


@dataclass
class Resource:
    data: bytes
    etag: str | None = None  # default: md5 of the data, as S3 would
    last_modified: str = "Wed, 01 Jan 2025 00:00:00 GMT"
    accept_ranges: bool = True
    headers: dict[str, str] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    always: Fault | None = None

    def __post_init__(self) -> None:
        if self.etag is None:
            self.etag = hashlib.md5(self.data).hexdigest()


@dataclass
class Redirect:
    location: str  # a path on this server or an absolute URL
    status: int = 302
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Record:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    status: int = 0
    sent: int = 0  # body bytes written
    # Counted in FaultServer.in_flight until the server starts its last write: a client can only
    # see the whole response (and reuse its connection slot) after that, so the count never
    # races ahead of the client's own concurrency.
    flying: bool = True


class FaultServer:
    """Threaded HTTP/1.1 server on 127.0.0.1 with an ephemeral port; use as a context manager.

    ``tls``: serve HTTPS with this server-side context (see :func:`tls_context`).
    """

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.routes: dict[str, Resource | Redirect] = {}
        self.log: list[Record] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.in_flight = 0
        self.max_in_flight = 0
        app = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                app._handle(self, "GET")

            def do_HEAD(self) -> None:
                app._handle(self, "HEAD")

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.scheme = "http"
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
            self.scheme = "https"
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> FaultServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def add(self, path: str, data: bytes, **kw: object) -> Resource:
        res = Resource(data, **kw)  # type: ignore[arg-type]
        self.routes[path] = res
        return res

    def redirect(self, path: str, location: str, **kw: object) -> Redirect:
        red = Redirect(location, **kw)  # type: ignore[arg-type]
        self.routes[path] = red
        return red

    def requests(self, path: str | None = None, method: str | None = "GET") -> list[Record]:
        with self.lock:
            return [r for r in self.log if (path is None or r.path == path) and (method is None or r.method == method)]

    # -- request handling -------------------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        path = urlsplit(h.path).path
        rec = Record(method, path, {k.lower(): v for k, v in h.headers.items()})
        with self.lock:
            self.log.append(rec)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            route = self.routes.get(path)
            fault = None
            if isinstance(route, Resource):
                fault = route.faults.pop(0) if route.faults else route.always
        try:
            self._respond(h, method, rec, route, fault)
        except (BrokenPipeError, ConnectionResetError):
            h.close_connection = True
        finally:
            self._land(rec)

    def _land(self, rec: Record) -> None:
        """The request leaves ``in_flight`` (once), just before its last bytes go out."""
        with self.lock:
            if rec.flying:
                rec.flying = False
                self.in_flight -= 1

    def _head(self, h: BaseHTTPRequestHandler, rec: Record, status: int, headers: dict[str, str]) -> None:
        rec.status = status
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.end_headers()

    def _respond(
        self, h: BaseHTTPRequestHandler, method: str, rec: Record, route: Resource | Redirect | None,
        fault: Fault | None,
    ) -> None:
        if route is None:
            body = b"not found"
            self._land(rec)
            self._head(h, rec, 404, {"Content-Length": str(len(body))})
            if method == "GET":
                h.wfile.write(body)
            return
        if isinstance(route, Redirect):
            loc = route.location if "://" in route.location else self.url(route.location)
            self._land(rec)
            self._head(h, rec, route.status, {"Location": loc, "Content-Length": "0", **route.headers})
            return
        if fault is not None and fault.kind == "status":
            body = b"fault"
            self._land(rec)
            self._head(h, rec, fault.code, {"Content-Length": str(len(body)), **fault.headers})
            if method == "GET":
                h.wfile.write(body)
            return

        data = route.data
        if fault is not None and fault.kind == "corrupt" and data:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        headers = {"ETag": f'"{route.etag}"', "Last-Modified": route.last_modified, **route.headers}
        if route.accept_ranges:
            headers["Accept-Ranges"] = "bytes"
        status, body = 200, data
        rng = h.headers.get("Range")
        honour = rng is not None and route.accept_ranges and not (fault is not None and fault.kind == "ignore_range")
        if_range = h.headers.get("If-Range")
        if honour and if_range is not None and if_range not in (f'"{route.etag}"', route.last_modified):
            honour = False  # the client's copy is stale: send the whole new body
        if honour:
            m = _RANGE_RE.match(rng or "")
            if m:
                first = int(m.group(1))
                last = int(m.group(2)) if m.group(2) else len(data) - 1
                if first >= len(data):
                    self._land(rec)
                    self._head(h, rec, 416, {"Content-Range": f"bytes */{len(data)}", "Content-Length": "0", **headers})
                    return
                last = min(last, len(data) - 1)
                status, body = 206, data[first : last + 1]
                headers["Content-Range"] = f"bytes {first}-{last}/{len(data)}"
        chunked = fault is not None and fault.kind == "chunked"
        if chunked:
            headers["Transfer-Encoding"] = "chunked"
        else:
            headers["Content-Length"] = str(len(body))
        if method == "HEAD" or not body:
            self._land(rec)
        self._head(h, rec, status, headers)
        if method == "HEAD":
            return

        if fault is None or fault.kind in ("corrupt", "ignore_range"):
            self._land(rec)
            self._write(h, rec, body)
        elif chunked:
            for i in range(0, len(body), 65536):
                piece = body[i : i + 65536]
                h.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                rec.sent += len(piece)
            h.wfile.write(b"0\r\n\r\n")
        elif fault.kind == "drop":
            self._write(h, rec, body[: fault.after])
            self._close(h)
        elif fault.kind == "stall":
            self._write(h, rec, body[: fault.after])
            self.stopping.wait(fault.seconds)
            self._close(h)
        elif fault.kind == "throttle":
            for i in range(0, len(body), fault.chunk):
                if i:
                    time.sleep(fault.seconds)
                if self.stopping.is_set():
                    self._close(h)
                    return
                if i + fault.chunk >= len(body):
                    self._land(rec)
                self._write(h, rec, body[i : i + fault.chunk])
        else:
            raise ValueError(f"unknown fault {fault.kind}")

    @staticmethod
    def _write(h: BaseHTTPRequestHandler, rec: Record, data: bytes) -> None:
        h.wfile.write(data)
        h.wfile.flush()
        rec.sent += len(data)

    @staticmethod
    def _close(h: BaseHTTPRequestHandler) -> None:
        h.wfile.flush()
        h.close_connection = True
        try:
            h.connection.shutdown(socket.SHUT_WR)  # a clean FIN: the client sees a short body
        except OSError:
            pass
