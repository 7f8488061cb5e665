"""HTTP policy of the transfer engine: what a response means, when to retry, where the token goes.

Pure functions and small records, no I/O: header parsing (ETag, Content-Range, Retry-After), the retry
policy (exponential backoff with full jitter), the token's scope, and the internal signals that the
download code raises between its layers.
"""

from __future__ import annotations

import email.utils
import functools
import random
import re
import time
from dataclasses import dataclass, field
from typing import Protocol

import httpx

__all__ = [
    "Absent",
    "AnyOf",
    "CancelLike",
    "RETRY_EXCEPTIONS",
    "RETRY_STATUSES",
    "Restart",
    "RetryPolicy",
    "Retryable",
    "Stopped",
    "TokenScope",
    "clean_etag",
    "parse_content_range",
    "parse_url",
    "remote_sha256",
    "retry_after_s",
    "sha_from_etag",
    "url_origin",
]

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_CONTENT_RANGE_RE = re.compile(r"^bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)$")

# Statuses worth retrying besides 5xx.
RETRY_STATUSES = frozenset({408, 425, 429})
RETRY_EXCEPTIONS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


class CancelLike(Protocol):
    """Anything with ``is_set()``: a :class:`threading.Event` is the usual cancel token."""

    def is_set(self) -> bool: ...


class AnyOf:
    """Set when any of its events is: a caller's cancel token joined with a batch's own stop."""

    def __init__(self, *events: CancelLike | None) -> None:
        self.events = tuple(e for e in events if e is not None)

    def is_set(self) -> bool:
        return any(e.is_set() for e in self.events)


# -- internal signals between the layers ---------------------------------------------------------


class Retryable(Exception):
    """An attempt failed in a way worth retrying (network error, 5xx, 429, short body)."""

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class Restart(Exception):
    """The remote file changed or stopped honouring ranges: the part must be discarded."""


class Stopped(Exception):
    """A sibling failed (fail-fast batch or another segment) or a cancel token was set: stop quietly."""


class Absent(Exception):
    """An optional file the remote does not have (403/404)."""


# -- header parsing ------------------------------------------------------------------------------


def clean_etag(value: str | None) -> str | None:
    """An ETag without its weak marker and quotes; None if empty."""
    if not value:
        return None
    value = value.strip()
    value = value.removeprefix("W/")
    return value.strip('"') or None


def sha_from_etag(value: str | None) -> str | None:
    """The lowercase hex sha256 in an ETag-like header, or None if it is not 64 hex digits."""
    tag = clean_etag(value)
    return tag.lower() if tag and _SHA256_RE.match(tag.lower()) else None


def retry_after_s(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date); None if absent."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def parse_content_range(value: str | None) -> tuple[int | None, int | None, int | None]:
    """``bytes a-b/total`` as (a, b + 1, total); unknown parts are None."""
    m = _CONTENT_RANGE_RE.match((value or "").strip())
    if not m:
        return None, None, None
    first, last, total = m.groups()
    return (
        int(first) if first is not None else None,
        int(last) + 1 if last is not None else None,
        int(total) if total not in (None, "*") else None,
    )


def remote_sha256(resp: httpx.Response) -> str | None:
    """The sha256 a response chain publishes: the Hub's ``X-Linked-Etag`` only.

    A redirect target's own ETag is never taken for one: for Xet-stored files it is 64 hex digits
    too, but not the sha256 (docs/ENDPOINTS.md).
    """
    for r in (*resp.history, resp):
        sha = sha_from_etag(r.headers.get("x-linked-etag"))
        if sha:
            return sha
    return None


# -- retries -------------------------------------------------------------------------------------


@dataclass
class RetryPolicy:
    """Retries after the first attempt, with exponential backoff and full jitter.

    A server's ``Retry-After`` wins over the computed delay, capped at ``max_backoff_s``.
    """

    retries: int = 5
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        if retry_after is not None:
            return min(retry_after, self.max_backoff_s)
        return self.rng.uniform(0, min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1)))


# -- token scope ---------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _parse(url: str) -> httpx.URL:
    return httpx.URL(url)


def parse_url(url: str | httpx.URL) -> httpx.URL:
    """``url`` parsed, each distinct string once: a download asks a URL's host, path and scope
    several times per request (and again per segment), and httpx's parse is pure Python at a few
    dozen microseconds each. ``httpx.URL`` is immutable, so a parsed one is shared safely."""
    return url if isinstance(url, httpx.URL) else _parse(url)


def url_origin(url: str | httpx.URL) -> tuple[str, str, int | None]:
    """``(scheme, host, port)``: what the token's scope and the Hub's own requests are compared on."""
    u = parse_url(url)
    return u.scheme, u.host, u.port


class TokenScope:
    """Where the HF token may go: only to the scheme, host and port of ``origin``.

    Without an ``origin`` the token goes to the host of the URL asked for (never to a redirect
    target elsewhere). The token never appears in a repr.
    """

    def __init__(self, token: str | None, origin: str | None = None) -> None:
        self._token = token or None
        self._origin = url_origin(origin) if origin else None

    @property
    def has_token(self) -> bool:
        return self._token is not None

    def allows(self, url: str | httpx.URL, asked: str | httpx.URL | None = None) -> bool:
        """True if a request to ``url`` (made for ``asked``) may carry the token."""
        if self._token is None:
            return False
        if self._origin is not None:
            return url_origin(url) == self._origin
        return parse_url(url).host == parse_url(asked if asked is not None else url).host

    def headers(self, url: str | httpx.URL, asked: str | httpx.URL | None = None) -> dict[str, str]:
        """``{"Authorization": ...}`` for a request to ``url`` that may carry it, else ``{}``."""
        if not self.allows(url, asked):
            return {}
        return {"Authorization": f"Bearer {self._token}"}

    def __repr__(self) -> str:
        return f"TokenScope(token={'***' if self._token else None})"
