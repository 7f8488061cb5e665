"""Loopback HTTP server for a mirror build, answering with the real URL layouts and status codes.

Routes (``{url}`` is ``http://host:port``):

* ``{url}/seamless_interaction/{label}/{split}/...``: the CDN tree; a missing object answers 403, as the
  real bucket does (FORMAT.md 2.1).
* ``{url}/datasets/facebook/seamless-interaction/resolve/main/{path}``: the Hub. Tars (LFS files) answer
  302 to ``{target}/lfs/{path}`` with ``X-Linked-Size``/``X-Linked-Etag`` (the sha256) and no ETag; the
  target serves the bytes with its own 64-hex ETag, which is *not* the sha256 (as Xet targets do). Other
  repo files are served directly. Missing: 404 with ``X-Error-Code: EntryNotFound``.
* ``{url}/api/datasets/facebook/seamless-interaction/{revision/R, tree/R/path, paths-info/R}``: the
  Hub API's commit, listing (paginated with ``Link: rel="next"``) and paths-info endpoints.
* ``{url}/assets/{table}.csv``: the metadata tables.
* ``{url}/api/datasets/facebook/seamless-interaction/revision/main``: the Hub API's revision info
  (``{"id": ..., "sha": <commit>}``), the commit being ``MirrorServer.repo_commit``.
* ``{url}/_mirror/requests``: the request log as JSON (``DELETE`` clears it).

:class:`HubBehaviour` switches on what the real endpoints do beyond that (docs/ENDPOINTS.md): the CDN
and redirect targets on another host (e.g. ``127.0.0.2``) that refuses ``Authorization``; signed
targets that expire; a per-window quota on resolves and on API calls answered by 429 with
``RateLimit: "resolvers";r=0;t=N``; gated access; transient 403s from targets; and synthetic repo
files (listed and resolved, without bytes) for scans of thousands of archives.

Every file route supports HEAD and a single ``Range`` (206/416). ``latency_s`` delays each response's
first byte and ``bandwidth_bps`` paces each connection's body writes, for download benchmarks.

The stdlib ThreadingHTTPServer is enough here: one thread per connection over loopback, and bodies
go out with ``os.sendfile`` when unthrottled, so the server is rarely what a benchmark measures.
"""

from __future__ import annotations

import dataclasses
import email.utils
import hashlib
import hmac
import json
import logging
import math
import os
import random
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

__all__ = ["HubBehaviour", "MirrorServer", "RequestRecord", "serve"]

logger = logging.getLogger(__name__)

CDN_PREFIX = "/seamless_interaction"
REPO_ID = "facebook/seamless-interaction"
HF_PREFIX = f"/datasets/{REPO_ID}/resolve/main"
API_PREFIX = f"/api/datasets/{REPO_ID}"
LFS_PREFIX = "/lfs"
ASSETS_PREFIX = "/assets"
LOG_PATH = "/_mirror/requests"
API_REVISION_PATH = "/api/datasets/facebook/seamless-interaction/revision/main"
# The Hub stores these as LFS objects and redirects resolve requests for them.
LFS_SUFFIXES = (".tar",)
# Any fixed 40-hex value: clients read X-Repo-Commit to name their cache folders.
REPO_COMMIT = "0123456789abcdef0123456789abcdef01234567"
_CHUNK = 1 << 20
_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
_SIGN_KEY = b"mirror-signing-key"


@dataclass
class HubBehaviour:
    """Switches for the real endpoints' behaviours (all off by default but the target's own ETag).

    ``other_host``: serve the CDN and the redirect targets on this address (e.g. ``127.0.0.2``), a
    separate listener that answers 400 to any request carrying ``Authorization`` (as S3 does to a
    Bearer token). ``target_ttl_s``: redirect targets carry ``Expires``/``Signature`` in the query and
    answer 403 once expired. ``resolve_quota``/``api_quota``: resolves / API calls allowed per
    ``window_s`` window, then 429 with ``RateLimit: "<name>";r=0;t=<s>`` (plus ``Retry-After`` with
    ``retry_after``). ``gated``: resolves and API calls need a token in ``granted_tokens`` (401
    without a token, 403 ``GatedRepo`` with another). ``flaky_target_403``: chance that a target
    request gets a transient 403. ``synthetic``: extra repo files ``path -> (size, sha256)`` that are
    listed and resolved but hold no bytes. ``page_size``: tree entries per page.
    """

    other_host: str | None = None
    target_ttl_s: float | None = None
    resolve_quota: int | None = None
    api_quota: int | None = None
    window_s: float = 300.0
    retry_after: bool = False
    gated: bool = False
    granted_tokens: frozenset[str] = frozenset()
    flaky_target_403: float = 0.0
    seed: int = 0
    synthetic: dict[str, tuple[int, str]] = dataclasses.field(default_factory=dict)
    page_size: int = 1000


@dataclass(frozen=True)
class RequestRecord:
    """One answered request. ``body_bytes`` counts body bytes actually handed to the socket.

    ``host``: the listener that answered (``host:port``); ``authorization``: the header as received.
    """

    method: str
    path: str
    range: str | None
    status: int
    body_bytes: int
    host: str = ""
    authorization: str | None = dataclasses.field(default=None, repr=False)


@dataclass
class _Entry:
    """Mutable log entry, updated while the body goes out; exported as a :class:`RequestRecord`."""

    method: str
    path: str
    range: str | None
    status: int
    body_bytes: int = 0
    host: str = ""
    authorization: str | None = dataclasses.field(default=None, repr=False)

    def freeze(self) -> RequestRecord:
        return RequestRecord(self.method, self.path, self.range, self.status, self.body_bytes, self.host,
                             self.authorization)


class _BadPath(Exception):
    pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # The stdlib default of 5 drops connections when a benchmark opens many at once.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], owner: MirrorServer, role: str = "all"):
        self.owner = owner
        self.role = role  # "all": every route; "hub": Hub, API, assets; "cdn": CDN and redirect targets
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
    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s - " + format, self.client_address[0], *args)

    def do_GET(self) -> None:
        self._dispatch(head=False)

    def do_HEAD(self) -> None:
        self._dispatch(head=True)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self._dispatch(head=False, body=body)

    def do_DELETE(self) -> None:
        if self._route_path() == LOG_PATH:
            self.server.owner.clear_requests()
            self._send_bytes(200, b"", "text/plain", head=False, log=False)
        else:
            self._send_bytes(405, b"method not allowed\n", "text/plain", head=False)

    def _route_path(self) -> str:
        return urllib.parse.urlsplit(self.path).path

    def _query(self) -> dict[str, str]:
        return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))

    def _dispatch(self, head: bool, body: bytes | None = None) -> None:
        owner = self.server.owner
        role = self.server.role
        raw = self._route_path()
        if raw == LOG_PATH:
            data = json.dumps([dataclasses.asdict(r) for r in owner.requests]).encode()
            self._send_bytes(200, data, "application/json", head=head, log=False)
            return
        try:
            path = urllib.parse.unquote(raw)
            cdn_side = path.startswith((CDN_PREFIX + "/", LFS_PREFIX + "/"))
            if role != "all" and cdn_side != (role == "cdn"):
                self._send_bytes(404, b"not found\n", "text/plain", head=head)
            elif role == "cdn" and self.headers.get("Authorization"):
                # S3 and CloudFront refuse a Bearer token they do not know (400 InvalidArgument).
                self._send_bytes(400, b"<Error><Code>InvalidArgument</Code><Message>Unsupported Authorization "
                                      b"Type</Message></Error>", "application/xml", head=head)
            elif path.startswith(CDN_PREFIX + "/"):
                self._serve_file(owner.root / "cdn", path[len(CDN_PREFIX) + 1:], head, missing=403)
            elif path.startswith(HF_PREFIX + "/"):
                if self._hub_refuses("resolvers", owner.behaviour.resolve_quota, head):
                    return
                self._resolve(path[len(HF_PREFIX) + 1:], head)
            elif path.startswith(API_PREFIX + "/"):
                if self._hub_refuses("api", owner.behaviour.api_quota, head):
                    return
                self._api(path[len(API_PREFIX) + 1:], head, body)
            elif path.startswith(LFS_PREFIX + "/"):
                self._target(path[len(LFS_PREFIX) + 1:], head)
            elif path.startswith(ASSETS_PREFIX + "/"):
                self._serve_file(owner.root / "assets", path[len(ASSETS_PREFIX) + 1:], head, missing=404)
            elif path == API_REVISION_PATH:
                body = json.dumps({"id": "facebook/seamless-interaction", "sha": owner.repo_commit}).encode()
                self._send_bytes(200, body, "application/json", head=head)
            else:
                self._send_bytes(404, b"not found\n", "text/plain", head=head)
        except _BadPath as exc:
            self._send_bytes(400, f"bad path: {exc}\n".encode(), "text/plain", head=head)

    # ------------------------------------------------------------------------ Hub rules
    def _hub_refuses(self, bucket: str, quota: int | None, head: bool) -> bool:
        """Gated access and rate limits of the Hub; True when an error answer was sent."""
        owner = self.server.owner
        beh = owner.behaviour
        if beh.gated:
            auth = self.headers.get("Authorization") or ""
            token = auth[len("Bearer "):] if auth.startswith("Bearer ") else None
            if token is None or token not in beh.granted_tokens:
                status = 401 if token is None else 403
                msg = (f"Access to dataset {REPO_ID} is restricted. You must have access to it and be "
                       "authenticated to access it. Please log in." if token is None else
                       f"Access to dataset {REPO_ID} is restricted and you are not in the authorized list. "
                       f"Visit https://huggingface.co/datasets/{REPO_ID} to ask for access.")
                self._send_bytes(status, json.dumps({"error": msg}).encode(), "application/json", head=head,
                                 headers={"X-Error-Code": "GatedRepo", "X-Error-Message": msg})
                return True
        if quota is None:
            return False
        left, reset = owner.take(bucket, quota)
        headers = {"RateLimit": f'"{bucket}";r={max(left, 0)};t={reset}',
                   "RateLimit-Policy": f'"fixed window";"{bucket}";q={quota};w={int(beh.window_s)}'}
        if left >= 0:
            self._quota_headers = headers
            return False
        if beh.retry_after:
            headers["Retry-After"] = str(reset)
        self._send_bytes(429, b"Too Many Requests\n", "text/plain", head=head, headers=headers)
        return True

    def _api(self, rel: str, head: bool, body: bytes | None) -> None:
        owner = self.server.owner
        kind, _, rest = rel.partition("/")
        rev, _, sub = rest.partition("/")
        rev = urllib.parse.unquote(rev)
        if kind in ("revision", "tree", "paths-info") and rev not in ("main", owner.repo_commit):
            self._send_bytes(404, b'{"error":"Invalid rev id"}', "application/json", head=head,
                             headers={"X-Error-Code": "RevisionNotFound"})
            return
        if kind == "revision":
            data: Any = {"id": REPO_ID, "sha": owner.repo_commit, "private": False, "gated": owner.behaviour.gated}
        elif kind == "tree":
            entries = owner.listing(sub.strip("/"), self._query().get("recursive") in ("true", "1", "True"))
            if entries is None:
                self._send_bytes(404, b'{"error":"Entry not found"}', "application/json", head=head,
                                 headers={"X-Error-Code": "EntryNotFound"})
                return
            start = int(self._query().get("cursor", "0") or 0)
            page = owner.behaviour.page_size
            data = entries[start:start + page]
            extra = {}
            if start + page < len(entries):
                q = dict(self._query(), cursor=str(start + page))
                nxt = f"{API_PREFIX}/tree/{rev}/{sub}?{urllib.parse.urlencode(q)}".replace("//?", "/?")
                extra["Link"] = f'<{nxt}>; rel="next"'
            self._json(data, head, extra)
            return
        elif kind == "paths-info" and body is not None:
            ctype = self.headers.get("Content-Type", "")
            if "json" in ctype:
                paths = list(json.loads(body or b"{}").get("paths", []))
            else:
                paths = [v for k, v in urllib.parse.parse_qsl(body.decode()) if k == "paths"]
            data = [e for p in paths if (e := owner.entry(p.strip("/"))) is not None]
        else:
            self._send_bytes(404, b"not found\n", "text/plain", head=head)
            return
        self._json(data, head, {})

    def _json(self, data: Any, head: bool, headers: dict[str, str]) -> None:
        self._send_bytes(200, json.dumps(data).encode(), "application/json", head=head,
                         headers={"X-Repo-Commit": self.server.owner.repo_commit, **headers})

    def _begin(self, status: int, length: int, ctype: str, headers: dict[str, str], log: bool = True) -> _Entry:
        """Send status and headers; the log entry exists before the client can see any of it."""
        self._delay()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(length))
        for k, v in {**getattr(self, "_quota_headers", {}), **headers}.items():
            self.send_header(k, v)
        self._quota_headers: dict[str, str] = {}
        host = f"{self.server.server_address[0]}:{self.server.server_address[1]}"
        entry = _Entry(self.command, self.path, self.headers.get("Range"), status, host=host,
                       authorization=self.headers.get("Authorization"))
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
        synthetic = owner.behaviour.synthetic.get(rel)
        path = None if synthetic is not None else self._safe_file(owner.root / "hub", rel)
        if path is None and synthetic is None:
            self._send_bytes(404, b"Entry not found\n", "text/plain", head=head,
                             headers={"X-Error-Code": "EntryNotFound", "X-Repo-Commit": owner.repo_commit})
            return
        if path is not None and not rel.endswith(LFS_SUFFIXES):
            self._serve_file(owner.root / "hub", rel, head, missing=404, etag=True,
                             extra={"X-Repo-Commit": owner.repo_commit})
            return
        size, sha = synthetic if synthetic is not None else (path.stat().st_size, owner.sha256(path))  # type: ignore[union-attr]
        # The Hub's 302 for an LFS/Xet file carries X-Linked-Size and X-Linked-Etag, and no ETag.
        self._send_bytes(302, b"", "text/plain", head=head, headers={
            "Location": owner.target_url(rel, self.headers.get("Host")),
            "X-Linked-Size": str(size),
            "X-Linked-Etag": f'"{sha}"',
            "X-Repo-Commit": owner.repo_commit,
        })

    def _target(self, rel: str, head: bool) -> None:
        """A redirect target: signed and expiring, sometimes refusing, with its own (non-sha) ETag."""
        owner = self.server.owner
        beh = owner.behaviour
        refused = None
        if beh.target_ttl_s is not None and not owner.signature_ok(rel, self._query()):
            refused = b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"
        elif beh.flaky_target_403 and owner.chance(beh.flaky_target_403):
            refused = b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
        if refused is not None:
            self._send_bytes(403, refused, "application/xml", head=head)
            return
        self._serve_file(owner.root / "hub", rel, head, missing=404, etag=True, target=True)

    def _serve_file(self, base: Path, rel: str, head: bool, *, missing: int, etag: bool = False,
                    extra: dict[str, str] | None = None, target: bool = False) -> None:
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
            sha = self.server.owner.sha256(path)
            # A Xet target's ETag is 64 hex digits but not the sha256; files kept in git get their blob id.
            tag = hashlib.sha256(b"xet:" + sha.encode()).hexdigest() if target else _git_blob_id(path)
            headers["ETag"] = f'"{tag}"'
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
        """Write a file slice, paced when a bandwidth cap is set.

        Bytes are counted just before each write and taken back if it fails, so a client that has
        received the whole body always finds the full count in the log (no race with the append).
        """
        bps = self.server.owner.bandwidth_bps
        if not bps and hasattr(os, "sendfile"):
            self.wfile.flush()
            sock = self.connection.fileno()
            while length > 0:
                want = min(length, _CHUNK)
                entry.body_bytes += want
                try:
                    n = os.sendfile(sock, fh.fileno(), offset, want)
                except BaseException:
                    entry.body_bytes -= want  # a failed call sent nothing
                    raise
                entry.body_bytes -= want - n  # short write
                if n == 0:
                    raise ConnectionError("sendfile wrote nothing")
                offset += n
                length -= n
            return
        chunk = max(1024, min(_CHUNK, int(bps) // 20)) if bps else _CHUNK
        fh.seek(offset)
        t0, done = time.monotonic(), 0
        while length > 0:
            block = fh.read(min(chunk, length))
            if not block:
                raise ConnectionError(f"file shrank while serving {fh.name}")
            entry.body_bytes += len(block)
            try:
                self.wfile.write(block)
            except BaseException:
                entry.body_bytes -= len(block)
                raise
            length -= len(block)
            done += len(block)
            if bps:
                ahead = done / bps - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)


def _git_blob_id(path: Path) -> str:
    """The git blob id (sha1 of ``blob <size>\\0`` + bytes): the Hub's ETag for a file kept in git."""
    h = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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
                 bandwidth_bps: float | None = None, behaviour: HubBehaviour | None = None):
        self.root = Path(root).absolute()
        if not (self.root / "cdn").is_dir() and not (self.root / "hub").is_dir():
            raise FileNotFoundError(f"{self.root}: not a mirror build (no cdn/ or hub/ folder); "
                                    "run build_mirror() or `seamless-interaction mirror build` first")
        self.host = host
        self.port = port
        self.latency_s = float(latency_s)
        self.bandwidth_bps = bandwidth_bps
        # The Hub commit the mirror reports (X-Repo-Commit, revision API); tests change it to
        # simulate a new release.
        self.repo_commit = REPO_COMMIT
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._requests: list[_Entry] = []
        self._sha: dict[tuple[str, int, int], str] = {}
        self.behaviour = behaviour or HubBehaviour()
        self._rng = random.Random(self.behaviour.seed)
        self._t0 = time.monotonic()
        self._counts: dict[str, tuple[int, int]] = {}
        self._other: _Server | None = None
        self._other_thread: threading.Thread | None = None

    # ------------------------------------------------------------------------ lifecycle
    def _bind(self) -> _Server:
        if self._httpd is None:
            split = self.behaviour.other_host is not None
            self._httpd = _Server((self.host, self.port), self, "hub" if split else "all")
            self.port = self._httpd.server_address[1]
            if split:
                assert self.behaviour.other_host is not None
                self._other = _Server((self.behaviour.other_host, 0), self, "cdn")
        return self._httpd

    def start(self) -> MirrorServer:
        if self._thread is None:
            httpd = self._bind()
            self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                            name=f"mirror-{self.port}", daemon=True)
            self._thread.start()
            if self._other is not None:
                self._other_thread = threading.Thread(target=self._other.serve_forever, kwargs={"poll_interval": 0.1},
                                                      name=f"mirror-cdn-{self.port}", daemon=True)
                self._other_thread.start()
            logger.info("mirror serving %s at %s", self.root, self.url)
        return self

    def stop(self) -> None:
        if self._other is not None:
            if self._other_thread is not None:
                self._other.shutdown()
                self._other_thread.join()
            self._other.server_close()
            self._other, self._other_thread = None, None
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
        if self._other is not None:
            self._other_thread = threading.Thread(target=self._other.serve_forever, name="mirror-cdn", daemon=True)
            self._other_thread.start()
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
    def other_url(self) -> str:
        """Where the CDN and redirect targets are: the other listener, or this one."""
        if self._other is None:
            return self.url
        host, port = self._other.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def cdn_url(self) -> str:
        return self.other_url + CDN_PREFIX

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


    # ----------------------------------------------------------------------- Hub behaviours
    def take(self, bucket: str, quota: int) -> tuple[int, int]:
        """Count one call against ``bucket``: (calls left in this window, negative when over; seconds to reset)."""
        window = self.behaviour.window_s
        now = time.monotonic() - self._t0
        idx = int(now // window)
        with self._lock:
            w, n = self._counts.get(bucket, (idx, 0))
            if w != idx:
                n = 0
            n += 1
            self._counts[bucket] = (idx, n)
        reset = max(1, math.ceil((idx + 1) * window - now))
        return quota - n, reset

    def chance(self, p: float) -> bool:
        with self._lock:
            return self._rng.random() < p

    def _sign(self, rel: str, expires: str) -> str:
        return hmac.new(_SIGN_KEY, f"{rel}|{expires}".encode(), hashlib.sha256).hexdigest()[:32]

    def target_url(self, rel: str, host_header: str | None) -> str:
        """The redirect target of ``rel``: on the other host when split, signed when targets expire."""
        base = self.other_url if self._other is not None else f"http://{host_header or f'{self.host}:{self.port}'}"
        url = f"{base}{LFS_PREFIX}/{urllib.parse.quote(rel)}"
        if self.behaviour.target_ttl_s is not None:
            expires = str(int(time.time() + self.behaviour.target_ttl_s))
            url += f"?Expires={expires}&Signature={self._sign(rel, expires)}&Key-Pair-Id=MIRROR"
        return url

    def signature_ok(self, rel: str, query: dict[str, str]) -> bool:
        expires, sig = query.get("Expires", ""), query.get("Signature", "")
        if not expires.isdigit() or not hmac.compare_digest(sig, self._sign(rel, expires)):
            return False
        return time.time() < int(expires)

    def entry(self, path: str) -> dict[str, Any] | None:
        """The Hub API's description of one repo file (paths-info / tree), or None if absent."""
        syn = self.behaviour.synthetic.get(path)
        if syn is not None:
            size, sha = syn
            return {"type": "file", "oid": hashlib.sha1(sha.encode()).hexdigest(), "size": size, "path": path,
                    "lfs": {"oid": sha, "size": size, "pointerSize": 134}}
        try:
            file = self.root / "hub" / path
            if not path or ".." in path.split("/") or not file.is_file():
                return None
        except OSError:
            return None
        item: dict[str, Any] = {"type": "file", "oid": _git_blob_id(file), "size": file.stat().st_size, "path": path}
        if path.endswith(LFS_SUFFIXES):
            item["lfs"] = {"oid": self.sha256(file), "size": file.stat().st_size, "pointerSize": 134}
        return item

    def listing(self, prefix: str, recursive: bool) -> list[dict[str, Any]] | None:
        """The tree endpoint's entries under ``prefix`` (sorted by path), or None if it is no folder."""
        base = self.root / "hub" / prefix if prefix else self.root / "hub"
        if ".." in prefix.split("/"):
            return None
        paths: set[str] = set()
        dirs: set[str] = set()
        if base.is_dir():
            for p in (base.rglob("*") if recursive else base.iterdir()):
                rel = p.relative_to(self.root / "hub").as_posix()
                (dirs if p.is_dir() else paths).add(rel)
        pre = f"{prefix}/" if prefix else ""
        for syn in self.behaviour.synthetic:
            if syn.startswith(pre):
                rest = syn[len(pre):]
                if recursive or "/" not in rest:
                    paths.add(syn)
                else:
                    dirs.add(pre + rest.split("/", 1)[0])
        if not paths and not dirs and not base.is_dir():
            return None
        out: list[dict[str, Any]] = [{"type": "directory", "oid": "0" * 40, "size": 0, "path": d} for d in dirs]
        out += [e for p in paths if (e := self.entry(p)) is not None]
        return sorted(out, key=lambda e: e["path"])

def serve(root: Path | str, host: str = "127.0.0.1", port: int = 8000, *, latency_s: float = 0.0,
          bandwidth_bps: float | None = None, out: IO[str] | None = None) -> None:
    """Serve ``root`` until Ctrl-C, after printing the three base URLs (for ``mirror serve``)."""
    server = MirrorServer(root, host, port, latency_s=latency_s, bandwidth_bps=bandwidth_bps)
    server._bind()
    out = out or sys.stdout
    print(f"CDN:    {server.cdn_url}", file=out)
    print(f"Hub:    {server.hf_url}", file=out)
    print(f"Assets: {server.assets_url}", file=out, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
