"""The engine's HTTP client: one pooled connection set, the token's scope, the Hub's rules and retries.

Every request of the package goes through :meth:`HttpClient.send` (redirects followed hop by hop,
so the token's scope is decided for each host, and Hub 429s wait at the engine's
:class:`~seamless_interaction.remote.transfer.hub.RateGate`), and every read through
:meth:`HttpClient.open`, which resolves Hub URLs once (shared by all readers), re-resolves when a
redirect target refuses, and sorts answers into bytes, absent files, retries and typed errors.
"""

from __future__ import annotations

import functools
import logging
import os
import ssl
import threading
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from seamless_interaction.base.errors import (
    MissingPartError,
    TransferCancelled,
    TransferError,
)
from seamless_interaction.remote.transfer.hub import (
    HubListing,
    HubRepo,
    RateGate,
    ResolveCache,
    Resolved,
    hub_error,
    rate_limit_wait,
)
from seamless_interaction.remote.transfer.policy import (
    RETRY_EXCEPTIONS,
    RETRY_STATUSES,
    Absent,
    CancelLike,
    Retryable,
    RetryPolicy,
    Stopped,
    TokenScope,
    clean_etag,
    parse_content_range,
    parse_url,
    remote_sha256,
    retry_after_s,
    sha_from_etag,
    url_origin,
)
from seamless_interaction.remote.transfer.records import RemoteInfo

__all__ = ["Answer", "HttpClient", "cancellable_sleep", "check_cancel", "drain", "remote_info"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

MAX_REDIRECTS = 10
# A failed attempt that still moved this many bytes does not use up the retry budget.
ATTEMPT_RESET_BYTES = 1 << 20
# Error bodies up to this size are read before the response closes, so that its connection goes
# back to the pool: an absent optional object (403) then costs one round trip, not a new connection.
DRAIN_MAX_BYTES = 64 << 10
# Connections per httpx pool (see HttpClient.__init__).
_CONNECTIONS_PER_POOL = 8
# 429s with a wait to honour, per request, before giving up (each wait is bounded by the gate).
_MAX_RATE_WAITS = 50
# What a redirect target answers when its signature expired or it refuses the request.
_TARGET_REFUSALS = frozenset({401, 403, 404, 410})


@dataclass(frozen=True)
class Answer:
    """An open response (2xx or 416) and, for a Hub resolve URL, what the resolve said."""

    resp: httpx.Response
    resolved: Resolved | None


@functools.lru_cache(maxsize=4)
def _tls_context(cafile: str | None, capath: str | None) -> ssl.SSLContext:
    """The TLS context of every pool of every engine in this process, per CA setting.

    Loading the CA bundle costs ~15 ms of CPU, once per context: a Ray worker makes an engine per
    task, and a client a pool per 8 connections. A context is shared safely (never changed after
    this). httpx makes it, so SSL_CERT_FILE / SSL_CERT_DIR are honoured; they are the cache key.
    """
    del cafile, capath  # read again by httpx from the environment, which they mirror
    return httpx.create_ssl_context()


class HttpClient:
    """One pooled ``httpx.Client`` with at most ``max_connections`` requests in flight.

    ``hub``: the Hub repository (its API and resolve URLs); ``transport`` replaces the network
    (``httpx.MockTransport`` in unit tests); ``cache_dir`` keeps Hub listings per commit.
    """

    def __init__(
        self,
        *,
        headers: dict[str, str] | None,
        scope: TokenScope,
        policy: RetryPolicy,
        timeout_s: float,
        max_connections: int,
        transport: httpx.BaseTransport | None = None,
        hub: HubRepo | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        self.scope = scope
        self.policy = policy
        self.max_connections = max_connections
        self.timeout_s = timeout_s
        self.hub = hub
        base_headers = {"Accept-Encoding": "identity"}  # byte ranges must address the stored bytes
        base_headers.update(headers or {})
        # httpcore's pool rescans every connection it holds (the idle ones quadratically) on each
        # request and each response closed: with a few dozen connections that costs more CPU than
        # the requests themselves. So the threads share a few small pools, each thread always the
        # same one (its keep-alive connection is then there for its next request).
        pools = max(1, -(-max_connections // _CONNECTIONS_PER_POOL))
        keep = -(-max_connections // pools)
        tls = _tls_context(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
        self._clients = [
            httpx.Client(
                headers=base_headers,
                timeout=httpx.Timeout(timeout_s),
                # The slots below bound the requests; a pool is not a second, tighter bound:
                # streams (Transfer.stream) take no slot, and a loader reading a member by Range while
                # its shard streams would otherwise wait on a pool that its own stream fills.
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=keep),
                follow_redirects=False,  # followed hop by hop in send(): the token's scope is per host
                transport=transport,
                verify=tls,
            )
            for _ in range(pools)
        ]
        # A slot per request in flight, shared by every download of the engine.
        self.slots = threading.BoundedSemaphore(max_connections)
        self.gate = RateGate(has_token=scope.has_token)
        self.resolves = ResolveCache()
        self.listing = HubListing(hub, self._get_json, cache_dir) if hub is not None else None

    def __repr__(self) -> str:
        return f"HttpClient(max_connections={self.max_connections}, {self.scope!r})"

    def close(self) -> None:
        for client in self._clients:
            client.close()

    def _pool(self) -> httpx.Client:
        """The calling thread's pool."""
        return self._clients[threading.get_native_id() % len(self._clients)]

    # -- where a URL belongs ------------------------------------------------------------------

    def is_hub(self, url: str | httpx.URL) -> bool:
        """A request to the Hub itself (resolve or API), as opposed to a CDN or a redirect target."""
        path = parse_url(url).path
        if "/resolve/" in path:
            return True
        return self.hub is not None and url_origin(url) == url_origin(self.hub.endpoint) and path.startswith("/api/")

    @staticmethod
    def resolvable(url: str) -> bool:
        """A Hub resolve URL: answered by a redirect to where the bytes are (or by the bytes)."""
        return "/resolve/" in parse_url(url).path

    def _page(self) -> str | None:
        return self.hub.page if self.hub is not None else None

    # -- one request --------------------------------------------------------------------------

    def send(
        self, method: str, url: str, headers: dict[str, str], *, origin: str, follow: bool = True,
        cancel: CancelLike | None = None,
    ) -> httpx.Response:
        """Send one streaming request for ``origin``; redirects followed hop by hop (unless ``follow``
        is False), the token only where its scope allows, Hub 429s waited out at the gate."""
        hops: list[httpx.Response] = []
        rate_waits = 0
        while True:
            hub = self.is_hub(url)
            if hub:
                self.gate.wait(cancel)
            hdrs = dict(headers)
            hdrs.update(self.scope.headers(url, origin))
            try:
                client = self._pool()
                resp = client.send(client.build_request(method, parse_url(url), headers=hdrs), stream=True)
            except (httpx.UnsupportedProtocol, httpx.LocalProtocolError, httpx.ProxyError) as e:
                raise TransferError(f"{method} {origin}: {e}", origin) from e
            except RETRY_EXCEPTIONS as e:
                raise Retryable(f"{type(e).__name__}: {e or 'no detail'}") from e
            if resp.status_code == 429 and hub:
                wait, name = rate_limit_wait(resp)
                resp.close()
                if wait is None or rate_waits >= _MAX_RATE_WAITS:
                    raise Retryable("HTTP 429", status=429, retry_after=wait)
                rate_waits += 1
                self.gate.hit(wait, name)  # a wait, not a retry: the budget stays whole
                continue
            if follow and resp.is_redirect and "location" in resp.headers:
                resp.close()
                if len(hops) >= MAX_REDIRECTS:
                    raise TransferError(f"{method} {origin}: redirect loop (more than {MAX_REDIRECTS} redirects)",
                                        origin)
                hops.append(resp)
                url = str(parse_url(url).join(resp.headers["location"]))
                continue
            resp.history = hops
            return resp

    def check_status(self, method: str, url: str, resp: httpx.Response, optional: bool) -> bool:
        """True for 2xx; False for an absent optional file; raises otherwise.

        Absent: 403/404 from a CDN (S3 without ListBucket answers 403 for a missing key), 404
        ``EntryNotFound`` from the Hub. The Hub's other refusals are typed errors with a hint.
        """
        status = resp.status_code
        if status < 300:
            return True
        drain(resp)
        if self.is_hub(resp.url):
            err = hub_error(method, url, resp, has_token=self.scope.has_token, page=self._page())
            if err is None and status == 404:
                err = MissingPartError(f"{method} {url}: HTTP 404, the file is absent on the Hub", url, status)
            if isinstance(err, MissingPartError) and optional:
                logger.debug("%s %s: HTTP %d, optional file absent", method, url, status)
                return False
            if err is not None:
                raise err
        elif status in (403, 404):
            if optional:
                logger.debug("%s %s: HTTP %d, optional file absent", method, url, status)
                return False
            raise MissingPartError(f"{method} {url}: HTTP {status}, the file is absent on the remote", url, status)
        if status >= 500 or status in RETRY_STATUSES:
            raise Retryable(f"HTTP {status}", status=status, retry_after=retry_after_s(resp.headers.get("retry-after")))
        raise TransferError(f"{method} {url}: HTTP {status}", url, status)

    def retrying(
        self,
        method: str,
        url: str,
        attempt: Callable[[], _T],
        moved: Callable[[], int] = lambda: 0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> _T:
        """Run ``attempt`` until it succeeds, raises a final error, or the retry budget is spent."""
        failures = 0
        while True:
            before = moved()
            try:
                return attempt()
            except Retryable as e:
                if moved() - before >= ATTEMPT_RESET_BYTES:
                    failures = 0
                failures += 1
                if failures > self.policy.retries:
                    raise TransferError(
                        f"{method} {url}: {e} (gave up after {failures} attempts)", url, e.status
                    ) from e
                delay = self.policy.delay(failures, e.retry_after)
                logger.info("%s %s: %s; retry %d/%d in %.2fs", method, url, e, failures, self.policy.retries, delay)
                sleep(delay)

    # -- Hub resolves -------------------------------------------------------------------------

    def resolve(self, url: str, *, optional: bool = False, cancel: CancelLike | None = None, fresh: bool = False,
                ) -> Resolved | None:
        """Where the bytes of the resolve URL ``url`` are; asked once per engine and shared.

        A HEAD that does not follow the redirect, as huggingface_hub does: the 302 carries the
        size (``X-Linked-Size``) and sha256 (``X-Linked-Etag``); a relative redirect (a renamed
        repo) is followed on the Hub's own host. None when ``optional`` and the file is absent.
        ``fresh``: ask again even if an answer is kept (a metadata check), and keep the new one.
        """

        def ask() -> Resolved:
            def attempt() -> Resolved:
                where = url
                for _ in range(MAX_REDIRECTS):
                    with closing(self.send("HEAD", where, {}, origin=url, follow=False, cancel=cancel)) as resp:
                        if resp.is_redirect and "location" in resp.headers:
                            nxt = str(parse_url(where).join(resp.headers["location"]))
                            if url_origin(nxt) == url_origin(where) and self.resolvable(nxt):
                                where = nxt  # relative redirect on the Hub: still a resolve URL
                                continue
                            size = resp.headers.get("x-linked-size", "")
                            return Resolved(url, nxt, int(size) if size.isdigit() else None,
                                            sha_from_etag(resp.headers.get("x-linked-etag")), None,
                                            resp.headers.get("x-repo-commit"), time.monotonic())
                        if not self.check_status("HEAD", url, resp, optional):
                            raise Absent()
                        length = resp.headers.get("x-linked-size") or resp.headers.get("content-length", "")
                        return Resolved(url, where, int(length) if length.isdigit() else None,
                                        sha_from_etag(resp.headers.get("x-linked-etag")),
                                        clean_etag(resp.headers.get("etag")), resp.headers.get("x-repo-commit"),
                                        time.monotonic())
                raise TransferError(f"HEAD {url}: redirect loop (more than {MAX_REDIRECTS} redirects)", url)

            return self.retrying("HEAD", url, attempt, sleep=self._sleeper(cancel))

        try:
            return self.resolves.get(url, ask, fresh=fresh)
        except Absent:
            return None

    def open(
        self, method: str, url: str, headers: dict[str, str], *, optional: bool, cancel: CancelLike | None = None,
    ) -> Answer | None:
        """One request for the bytes of ``url``: a 2xx or 416 :class:`Answer`, or None if optional and absent.

        A resolve URL is read at its (shared) redirect target, without the token; a target that
        refuses (401/403/404/410: an expired signature, or a transient refusal) is forgotten and
        the attempt fails as retryable, so the next one resolves again. Call inside ``retrying``.
        """
        resolved: Resolved | None = None
        target = url
        if self.resolvable(url):
            resolved = self.resolve(url, optional=optional, cancel=cancel)
            if resolved is None:
                return None
            target = resolved.target
        resp = self.send(method, target, headers, origin=url, cancel=cancel)
        try:
            if resolved is not None and resolved.redirected and resp.status_code in _TARGET_REFUSALS:
                self.resolves.drop(url, target)
                raise Retryable(f"HTTP {resp.status_code} from the redirect target (expired or refused); "
                                "resolving again", status=resp.status_code)
            if resp.status_code == 416 or self.check_status(method, url, resp, optional):
                return Answer(resp, resolved)
        except BaseException:
            resp.close()
            raise
        resp.close()
        return None

    # -- metadata -----------------------------------------------------------------------------

    def head(self, url: str, *, optional: bool = False, cancel: CancelLike | None = None) -> RemoteInfo | None:
        """Size, validator and (for Hub files) sha256 of ``url``; None if optional and absent.

        A Hub file is looked up in the Hub's listing first (no request per file), then resolved;
        anything else gets a HEAD that follows redirects.
        """
        try:
            return self._head(url, optional, cancel)
        except Stopped:
            raise TransferCancelled(f"HEAD {url}: cancelled") from None

    def _head(self, url: str, optional: bool, cancel: CancelLike | None) -> RemoteInfo | None:
        path = self.hub.path_of(url) if self.hub is not None and self.listing is not None else None
        if path is not None and self.listing is not None:
            hit = self.listing.lookup(path)
            if hit is False:
                if optional:
                    return None
                raise MissingPartError(f"HEAD {url}: no such file in the repository (HTTP 404 EntryNotFound, "
                                       f"from the Hub's listing at commit {self.listing.commit})", url, 404)
            if hit is not None and hit is not True:
                return RemoteInfo(url, url, hit.size, None, hit.sha256, accept_ranges=True)
        if self.resolvable(url):
            r = self.resolve(url, optional=optional, cancel=cancel, fresh=True)
            if r is None:
                return None
            size = r.size
            if size is None and r.redirected:
                info = self._head_direct(r.target, optional, cancel, origin=url)
                size = info.size if info is not None else None
            return RemoteInfo(url, r.target, size, r.etag, r.sha256, accept_ranges=True)
        return self._head_direct(url, optional, cancel)

    def _head_direct(self, url: str, optional: bool, cancel: CancelLike | None, origin: str | None = None,
                     ) -> RemoteInfo | None:
        def attempt() -> RemoteInfo | None:
            check_cancel(cancel, "HEAD", url)
            with self.slots, closing(self.send("HEAD", url, {}, origin=origin or url, cancel=cancel)) as resp:
                if not self.check_status("HEAD", url, resp, optional):
                    return None
                return remote_info(origin or url, resp)

        return self.retrying("HEAD", url, attempt, sleep=self._sleeper(cancel))

    def _get_json(self, url: str) -> tuple[Any, str | None]:
        """GET a Hub API URL: (parsed JSON, the next page's URL from ``Link`` or None)."""

        def attempt() -> tuple[Any, str | None]:
            with self.slots, closing(self.send("GET", url, {"Accept": "application/json"}, origin=url)) as resp:
                self.check_status("GET", url, resp, optional=False)
                resp.read()
                nxt = resp.links.get("next", {}).get("url")
                return resp.json(), (str(httpx.URL(url).join(nxt)) if nxt else None)

        return self.retrying("GET", url, attempt)

    @staticmethod
    def _sleeper(cancel: CancelLike | None) -> Callable[[float], None]:
        def sleep(seconds: float) -> None:
            deadline = time.monotonic() + seconds
            while True:
                if cancel is not None and cancel.is_set():
                    raise Stopped()
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                time.sleep(min(left, 0.1))

        return sleep


def drain(resp: httpx.Response) -> None:
    """Read a short error body so that closing the response keeps its connection alive."""
    length = resp.headers.get("content-length", "")
    if length.isdigit() and int(length) <= DRAIN_MAX_BYTES:
        try:
            resp.read()
        except (httpx.HTTPError, httpx.StreamError):
            pass  # the connection is dropped on close, as it would have been


def check_cancel(cancel: CancelLike | None, method: str, url: str) -> None:
    if cancel is not None and cancel.is_set():
        raise TransferCancelled(f"{method} {url}: cancelled")


def cancellable_sleep(cancel: CancelLike | None, method: str, url: str) -> Callable[[float], None]:
    """A ``sleep`` that wakes up every 0.1 s to raise :class:`TransferCancelled` once ``cancel`` is set."""

    def sleep(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while True:
            check_cancel(cancel, method, url)
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.1))

    return sleep


def remote_info(url: str, resp: httpx.Response) -> RemoteInfo:
    size: int | None = None
    for r in resp.history:
        linked = r.headers.get("x-linked-size")
        if linked and linked.isdigit():
            size = int(linked)
            break
    if size is None:
        if resp.status_code == 206:
            size = parse_content_range(resp.headers.get("content-range"))[2]
        elif resp.headers.get("content-length", "").isdigit():
            size = int(resp.headers["content-length"])
    return RemoteInfo(
        url=url,
        final_url=str(resp.url),
        size=size,
        etag=clean_etag(resp.headers.get("etag")),
        sha256=remote_sha256(resp),
        accept_ranges=resp.headers.get("accept-ranges", "").lower() == "bytes" or resp.status_code == 206,
    )
