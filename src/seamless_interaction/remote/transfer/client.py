"""The engine's HTTP client: one pooled connection set, the token's scope, status rules and retries.

Every request of the package goes through :meth:`HttpClient.send` (a connection slot held by the
caller bounds the requests in flight), so the token's scope and the retry policy are decided once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import closing
from typing import TypeVar

import httpx

from seamless_interaction.base.errors import (
    MissingPartError,
    TransferCancelled,
    TransferError,
)
from seamless_interaction.remote.transfer.policy import (
    RETRY_EXCEPTIONS,
    RETRY_STATUSES,
    CancelLike,
    Retryable,
    RetryPolicy,
    TokenScope,
    clean_etag,
    parse_content_range,
    remote_sha256,
    retry_after_s,
)
from seamless_interaction.remote.transfer.records import RemoteInfo

__all__ = ["HttpClient"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

MAX_REDIRECTS = 10
# A failed attempt that still moved this many bytes does not use up the retry budget.
ATTEMPT_RESET_BYTES = 1 << 20
# Error bodies up to this size are read before the response closes, so that its connection goes
# back to the pool: an absent optional object (403) then costs one round trip, not a new connection.
DRAIN_MAX_BYTES = 64 << 10


class HttpClient:
    """One pooled ``httpx.Client`` with at most ``max_connections`` requests in flight.

    ``transport`` replaces the network (``httpx.MockTransport`` in unit tests).
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
    ) -> None:
        self.scope = scope
        self.policy = policy
        self.max_connections = max_connections
        base_headers = {"Accept-Encoding": "identity"}  # byte ranges must address the stored bytes
        base_headers.update(headers or {})
        self._client = httpx.Client(
            headers=base_headers,
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            follow_redirects=True,
            max_redirects=MAX_REDIRECTS,
            transport=transport,
        )
        # A slot per request in flight, shared by every download of the engine.
        self.slots = threading.BoundedSemaphore(max_connections)

    def __repr__(self) -> str:
        return f"HttpClient(max_connections={self.max_connections}, {self.scope!r})"

    def close(self) -> None:
        self._client.close()

    def send(self, method: str, url: str, headers: dict[str, str], *, origin: str) -> httpx.Response:
        """Send one streaming request for ``origin``; the token only where its scope allows."""
        hdrs = dict(headers)
        hdrs.update(self.scope.headers(url, origin))
        try:
            return self._client.send(self._client.build_request(method, url, headers=hdrs), stream=True)
        except httpx.TooManyRedirects as e:
            raise TransferError(f"{method} {origin}: redirect loop (more than {MAX_REDIRECTS} redirects)", origin) from e
        except (httpx.UnsupportedProtocol, httpx.LocalProtocolError, httpx.ProxyError) as e:
            raise TransferError(f"{method} {origin}: {e}", origin) from e
        except RETRY_EXCEPTIONS as e:
            raise Retryable(f"{type(e).__name__}: {e or 'no detail'}") from e

    def check_status(self, method: str, url: str, resp: httpx.Response, optional: bool) -> bool:
        """True for 2xx; False for an absent optional file; raises otherwise."""
        status = resp.status_code
        if status < 300:
            return True
        drain(resp)
        if status in (403, 404):
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

    def head(self, url: str, *, optional: bool = False, cancel: CancelLike | None = None) -> RemoteInfo | None:
        """Size, validator and (when the remote publishes one) sha256 of ``url``; None if optional and absent."""

        def attempt() -> RemoteInfo | None:
            check_cancel(cancel, "HEAD", url)
            with self.slots, closing(self.send("HEAD", url, {}, origin=url)) as resp:
                if not self.check_status("HEAD", url, resp, optional):
                    return None
                return remote_info(url, resp)

        return self.retrying("HEAD", url, attempt, sleep=cancellable_sleep(cancel, "HEAD", url))


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
