"""HTTP transfer engine: one pooled client, retries, byte-level resume, segments, locks, verification.

Every download route (per-file CDN, Hub archives, tar range reads) goes through :class:`Transfer`.
A fetch streams into ``<dest>.part`` next to the destination, with a ``<dest>.part.json`` sidecar
holding the remote validator (ETag / Last-Modified, total size) and, for segmented downloads, the
byte ranges already written. An interrupted fetch (dropped connection, Ctrl-C, kill -9) resumes
from there with ``Range`` + ``If-Range``. The finished part is fsynced, checked against the size and
any known sha256, and renamed into place, so nothing half-written ever sits at a final path.
"""

from __future__ import annotations

import collections
import email.utils
import errno
import fcntl
import hashlib
import json
import logging
import os
import random
import re
import shutil
import threading
import time
from contextlib import closing
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, TypeVar
from collections.abc import Callable

import httpx

from seamless_interaction.base.digest import sha256_fd, sha256_file, update_from_fd
from seamless_interaction.base.errors import IntegrityError, InsufficientSpaceError, MissingPartError, TransferError

if TYPE_CHECKING:
    from seamless_interaction.local.manifest import Manifest

__all__ = [
    "FetchResult",
    "Job",
    "NullProgress",
    "Progress",
    "RemoteInfo",
    "TqdmProgress",
    "Transfer",
    "check_free_space",
]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

# The Hub's LFS ETag (and X-Linked-Etag) is the object's sha256 in hex.
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_CONTENT_RANGE_RE = re.compile(r"^bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)$")
_MAX_REDIRECTS = 10
# A failed attempt that still moved this many bytes does not use up the retry budget.
_ATTEMPT_RESET_BYTES = 1 << 20
# How often a segmented download records its progress in the sidecar (a crash loses at most this).
_STATE_SAVE_INTERVAL_S = 1.0
_LOCK_POLL_S = 0.05
# A range in flight is split only if both halves keep at least this much, and only once its rate
# has been observed for this long.
_MIN_SPLIT_BYTES = 1 << 20
_MIN_RATE_WINDOW_S = 0.05
# A single-stream file smaller than this gets no sidecar (no resume across runs): writing and
# renaming it costs more than fetching the file again.
_SIDECAR_MIN_BYTES = 256 << 10
# How often an idle fetch_many worker looks for a range to split.
_IDLE_POLL_S = 0.02
# Statuses worth retrying besides 5xx.
_RETRY_STATUSES = frozenset({408, 425, 429})
_RETRY_EXCEPTIONS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


# ---------------------------------------------------------------------------------------------
# Records


@dataclass(frozen=True)
class RemoteInfo:
    """What a HEAD tells about a remote file. ``sha256`` comes from a 64-hex (X-Linked-)ETag."""

    url: str
    final_url: str
    size: int | None
    etag: str | None
    sha256: str | None
    accept_ranges: bool


@dataclass(frozen=True)
class FetchResult:
    """A file now complete at ``path``. ``skipped``: it already was; ``resumed``: an earlier run's part was reused."""

    url: str
    path: Path
    size: int
    sha256: str
    resumed: bool
    skipped: bool


@dataclass(frozen=True)
class Job:
    """One file for :meth:`Transfer.fetch_many`."""

    url: str
    dest: Path
    expected_size: int | None = None
    sha256: str | None = None
    optional: bool = False


# ---------------------------------------------------------------------------------------------
# Progress


class Progress(Protocol):
    """Byte progress of a fetch or a batch. Called from several threads."""

    def start(self, total_bytes: int | None, desc: str) -> None: ...

    def advance(self, n: int) -> None: ...

    def close(self) -> None: ...


class NullProgress:
    """Progress that shows nothing."""

    def start(self, total_bytes: int | None, desc: str) -> None:
        pass

    def advance(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


class TqdmProgress:
    """A tqdm bar in bytes (rate and ETA included); ``disable=True`` for quiet runs.

    Starts nest: while a bar is open (say for a batch of file ids), a further ``start`` from a
    concurrent fetch adds its bytes to the same bar instead of replacing it, and the bar closes
    with the outermost ``close``. Concurrent downloads therefore share one honest bar.
    """

    def __init__(self, *, disable: bool = False) -> None:
        self._disable = disable
        self._lock = threading.Lock()
        self._bar: object | None = None
        self._depth = 0

    def start(self, total_bytes: int | None, desc: str) -> None:
        from tqdm.auto import tqdm

        with self._lock:
            self._depth += 1
            if self._bar is None:
                self._bar = tqdm(
                    total=total_bytes, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
                    disable=self._disable, dynamic_ncols=True, smoothing=0.1,
                )
            elif total_bytes and self._bar.total is not None:  # type: ignore[attr-defined]
                self._bar.total += total_bytes  # type: ignore[attr-defined]
                self._bar.refresh()  # type: ignore[attr-defined]

    def advance(self, n: int) -> None:
        with self._lock:
            if self._bar is not None:
                self._bar.update(n)  # type: ignore[attr-defined]

    def close(self) -> None:
        with self._lock:
            self._depth = max(0, self._depth - 1)
            if self._depth == 0 and self._bar is not None:
                self._bar.close()  # type: ignore[attr-defined]
                self._bar = None


# ---------------------------------------------------------------------------------------------
# Helpers


def check_free_space(path: Path | str, needed_bytes: int) -> None:
    """Raise :class:`InsufficientSpaceError` unless the filesystem of ``path`` has ``needed_bytes`` free.

    ``path`` need not exist yet: its nearest existing ancestor is measured.
    """
    p = Path(os.path.abspath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    free = shutil.disk_usage(p).free
    if needed_bytes > free:
        raise InsufficientSpaceError(
            f"not enough free space for {path}: {needed_bytes} bytes needed, {free} bytes free on {p}"
        )


class _Retryable(Exception):
    """An attempt failed in a way worth retrying (network error, 5xx, 429, short body)."""

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class _Restart(Exception):
    """The remote file changed or stopped honouring ranges: the part must be discarded."""


class _Cancelled(Exception):
    """A sibling failed (fail-fast batch or another segment): stop quietly."""


class _Absent(Exception):
    """An optional file the remote does not have (403/404)."""


def _clean_etag(value: str | None) -> str | None:
    if not value:
        return None
    value = value.strip()
    if value.startswith("W/"):
        value = value[2:]
    return value.strip('"') or None


def _sha_from_etag(value: str | None) -> str | None:
    tag = _clean_etag(value)
    return tag.lower() if tag and _SHA256_RE.match(tag.lower()) else None


def _retry_after_s(value: str | None) -> float | None:
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


def _parse_content_range(value: str | None) -> tuple[int | None, int | None, int | None]:
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


def _remote_sha256(resp: httpx.Response) -> str | None:
    # The Hub's resolve URL answers with a redirect carrying X-Linked-Etag; the LFS ETag is the sha256.
    for r in (*resp.history, resp):
        sha = _sha_from_etag(r.headers.get("x-linked-etag"))
        if sha:
            return sha
    return _sha_from_etag(resp.headers.get("etag"))


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on directories; the rename is still atomic
    finally:
        os.close(fd)


def _unlink(*paths: Path) -> None:
    for p in paths:
        try:
            p.unlink()
        except FileNotFoundError:
            pass


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(r for r in ranges if r[1] > r[0]):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _gaps(done: list[tuple[int, int]], size: int) -> list[tuple[int, int]]:
    gaps, pos = [], 0
    for a, b in _merge(done):
        if a > pos:
            gaps.append((pos, a))
        pos = max(pos, b)
    if pos < size:
        gaps.append((pos, size))
    return gaps


class _SlotLike(Protocol):
    def __enter__(self) -> object: ...

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None, /) -> object: ...


class _Taken:
    """A semaphore slot already acquired: entering is free, leaving releases it."""

    def __init__(self, sem: threading.BoundedSemaphore) -> None:
        self.sem = sem

    def __enter__(self) -> _Taken:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sem.release()


class _FileLock:
    """Exclusive ``flock`` on ``path``; the file is removed on release.

    Removal happens while the lock is still held, so a waiter that then gets the lock on the
    removed inode notices (its inode no longer matches the path) and starts over.
    """

    def __init__(self, path: Path, cancel: threading.Event | None) -> None:
        self.path = path
        self.cancel = cancel
        self.fd: int | None = None

    def __enter__(self) -> _FileLock:
        logged = False
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if self.cancel is not None and self.cancel.is_set():
                            raise _Cancelled() from None
                        if not logged:
                            logger.info("waiting for another download of %s", self.path.with_suffix(""))
                            logged = True
                        time.sleep(_LOCK_POLL_S)
                try:
                    same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
                except FileNotFoundError:
                    same = False
            except BaseException:
                os.close(fd)
                raise
            if same:
                self.fd = fd
                return self
            os.close(fd)

    def __exit__(self, *exc: object) -> None:
        assert self.fd is not None
        try:
            _unlink(self.path)
        finally:
            os.close(self.fd)
            self.fd = None


# ---------------------------------------------------------------------------------------------
# The engine


class Transfer:
    """Downloads over one pooled HTTP client with bounded global concurrency.

    >>> with Transfer(max_connections=16, progress=TqdmProgress()) as t:
    ...     t.fetch("https://dl.fbaipublicfiles.com/.../x.wav", Path("x.wav"))

    Args:
        headers: extra headers for every request (User-Agent and so on).
        token: sent as ``Authorization: Bearer`` to the host of the URL asked for, never to a
            redirect target on another host.
        timeout_s: connect and per-read timeout; a stalled body fails after this long.
        max_connections: bound on simultaneous requests across every download of this object.
        retries: retries after the first attempt, per request or segment.
        backoff_s, max_backoff_s: exponential backoff with full jitter between attempts.
        segment_bytes, segments_per_file: files of at least ``2 * segment_bytes`` on servers that
            accept ranges are fetched over up to ``segments_per_file`` connections. 8 MiB keeps
            each request's latency small against its transfer time on real links (8 MiB at
            20 MB/s is 0.4 s per 50 ms of latency); 16 per file lets one large archive use every
            connection of the default pool. In a :meth:`fetch_many` batch and among one file's
            segments, a connection left idle also splits the range with the most time left,
            when the measured rate and latency say the split pays off (see ``_victim``), so
            the connections finish together whatever the initial plan.
        progress: byte progress; :class:`NullProgress` when None.
        manifest: where completed files under its root are recorded, and trusted from.
    """

    def __init__(
        self,
        *,
        headers: dict[str, str] | None = None,
        token: str | None = None,
        timeout_s: float = 60.0,
        max_connections: int = 16,
        retries: int = 5,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        segment_bytes: int = 8 << 20,
        segments_per_file: int = 16,
        progress: Progress | None = None,
        manifest: Manifest | None = None,
    ) -> None:
        if max_connections < 1 or segments_per_file < 1 or segment_bytes < 1 or retries < 0:
            raise ValueError("max_connections, segments_per_file and segment_bytes must be >= 1, retries >= 0")
        self.timeout_s = timeout_s
        self.max_connections = max_connections
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.segment_bytes = segment_bytes
        self.segments_per_file = segments_per_file
        self.progress: Progress = progress if progress is not None else NullProgress()
        self.manifest = manifest
        self._token = token
        base_headers = {"Accept-Encoding": "identity"}  # byte ranges must address the stored bytes
        base_headers.update(headers or {})
        self._client = httpx.Client(
            headers=base_headers,
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            follow_redirects=True,
            max_redirects=_MAX_REDIRECTS,
        )
        self._slots = threading.BoundedSemaphore(max_connections)
        self._helpers: ThreadPoolExecutor | None = None
        self._helpers_lock = threading.Lock()
        self._rng = random.Random()

    def __repr__(self) -> str:
        token = ", token=***" if self._token else ""
        return f"Transfer(max_connections={self.max_connections}, retries={self.retries}{token})"

    def __enter__(self) -> Transfer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool and the segment helper threads."""
        with self._helpers_lock:
            if self._helpers is not None:
                self._helpers.shutdown(wait=True, cancel_futures=True)
                self._helpers = None
        self._client.close()

    # -- public operations ------------------------------------------------------------------

    def head(self, url: str, *, optional: bool = False) -> RemoteInfo | None:
        """Size, validator and (when the remote publishes one) sha256 of ``url``.

        Returns None when ``optional`` and the remote answers 403 or 404.
        """

        def attempt() -> RemoteInfo | None:
            with self._slots:
                with closing(self._send("HEAD", url, {}, origin=url)) as resp:
                    if not self._check_status("HEAD", url, resp, optional):
                        return None
                    return self._remote_info(url, resp)

        return self._retrying("HEAD", url, attempt)

    def fetch(
        self,
        url: str,
        dest: Path | str,
        *,
        expected_size: int | None = None,
        sha256: str | None = None,
        optional: bool = False,
    ) -> FetchResult | None:
        """Download ``url`` to ``dest`` (atomically, resuming, verified); None if optional and absent."""
        self.progress.start(expected_size, Path(dest).name)
        try:
            return self._fetch(url, Path(dest), expected_size, sha256, optional, None)
        finally:
            self.progress.close()

    def fetch_bytes(
        self, url: str, *, optional: bool = False, start: int | None = None, end: int | None = None
    ) -> bytes | None:
        """The bytes ``[start, end)`` of ``url`` (the whole object by default), in memory.

        Meant for small objects and tar index reads. A server that ignores ``Range`` is handled by
        slicing its full answer. Returns None when ``optional`` and the remote answers 403 or 404.
        """
        if start is None and end is not None:
            start = 0
        if start is not None and start < 0 or end is not None and start is not None and end < start:
            raise ValueError(f"bad byte range [{start}, {end}) for {url}")
        if start is not None and end is not None and end == start:
            return b""
        buf = bytearray()

        def attempt() -> bytes | None:
            pos = (start or 0) + len(buf)
            headers = {}
            if start is not None or buf:
                headers["Range"] = f"bytes={pos}-" + (str(end - 1) if end is not None else "")
            with self._slots:
                try:
                    with closing(self._send("GET", url, headers, origin=url)) as resp:
                        if not self._check_status("GET", url, resp, optional):
                            return None
                        if resp.status_code == 200 and "Range" in headers:
                            # Range ignored: the body is the whole object.
                            data = resp.read()
                            buf[:] = data[start or 0 : end]
                        else:
                            if resp.status_code == 206:
                                first, _, _ = _parse_content_range(resp.headers.get("content-range"))
                                if first != pos:
                                    raise TransferError(
                                        f"GET {url}: asked for bytes from {pos}, got Content-Range "
                                        f"{resp.headers.get('content-range')!r}", url, 206,
                                    )
                            for chunk in resp.iter_raw():
                                buf.extend(chunk)
                except _RETRY_EXCEPTIONS as e:
                    raise _Retryable(f"{type(e).__name__}: {e}") from e
            if end is not None and len(buf) < end - (start or 0):
                raise _Retryable(f"body ended after {len(buf)} of {end - (start or 0)} bytes")
            return bytes(buf)

        return self._retrying("GET", url, attempt, lambda: len(buf))

    def fetch_many(
        self,
        jobs: list[Job],
        *,
        fail_fast: bool = True,
        on_result: Callable[[int, FetchResult | None], None] | None = None,
    ) -> list[FetchResult | None]:
        """Fetch ``jobs`` concurrently; results in job order (None: optional and absent).

        Jobs with a known ``expected_size`` start largest first, ahead of the others, which keep the
        caller's order (so a caller without sizes should list its large files first): long transfers
        then overlap the many short ones instead of trailing behind them. A connection that finds no
        job left helps finish the batch's segmented downloads by splitting their largest remaining
        range, so the connections finish together.

        ``on_result(index, result)`` is called from a worker thread as each job completes.
        With ``fail_fast`` the first error cancels the rest (their parts stay, resumable) and is
        raised; without it every job runs to its end, then the first error is raised, the
        others logged.
        """
        if not jobs:
            return []
        cancel = threading.Event()
        sizes = [j.expected_size for j in jobs]
        total = sum(s for s in sizes if s is not None) if any(s is not None for s in sizes) else None
        order = sorted(range(len(jobs)), key=lambda i: (sizes[i] is None, -(sizes[i] or 0), i))
        pending = collections.deque(order)
        results: list[FetchResult | None] = [None] * len(jobs)
        errors: list[BaseException] = []
        batch: set[_PartDownload] = set()
        state = threading.Lock()
        busy = [0]  # workers with a job in hand

        def worker() -> None:
            # A free connection takes, in turn: a planned segment of a download in flight (so a
            # large file spreads over the connections as they free up), the next job, or a split
            # of the range with the most time left; it waits while another worker still has a
            # job (whose download may yet become splittable).
            while not cancel.is_set():
                if self._take_segment(batch):
                    continue
                with state:
                    i = pending.popleft() if pending else None
                    if i is not None:
                        busy[0] += 1
                if i is not None:
                    try:
                        run(i)
                    finally:
                        with state:
                            busy[0] -= 1
                    continue
                if self._steal(batch):
                    continue
                with state:
                    if not busy[0]:
                        return
                cancel.wait(_IDLE_POLL_S)

        def run(i: int) -> None:
            j = jobs[i]
            try:
                res = self._fetch(j.url, Path(j.dest), j.expected_size, j.sha256, j.optional, cancel, batch)
                results[i] = res
                if on_result is not None:
                    on_result(i, res)
            except _Cancelled:
                pass
            except BaseException as e:
                with state:
                    errors.append(e)
                if fail_fast or not isinstance(e, Exception):
                    cancel.set()

        # A few more workers than connections: a worker verifying and renaming a finished file
        # (hash, fsync) holds no connection, and another one can use it meanwhile. Not capped by
        # the number of jobs: workers without a job fetch the segments of the others' files.
        n_workers = self.max_connections + max(2, self.max_connections // 4)
        self.progress.start(total, f"{len(jobs)} files")
        try:
            with ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="si-fetch") as pool:
                futures = [pool.submit(worker) for _ in range(n_workers)]
                try:
                    for fut in futures:
                        fut.result()
                except BaseException:
                    cancel.set()  # Ctrl-C: stop the workers, keep their parts for a resume
                    raise
        finally:
            self.progress.close()
        if errors:
            for e in errors[1:]:
                logger.error("also failed: %s", e)
            raise errors[0]
        return results

    def _take_segment(self, batch: set[_PartDownload]) -> bool:
        """Fetch one planned, not yet started segment of a download in ``batch``; False if none waits."""
        with self._helpers_lock:
            candidates = [dl for dl in batch if dl.queue]
        return any(dl.take_segment() for dl in candidates)

    def _steal(self, batch: set[_PartDownload]) -> bool:
        """Take over the tail of the range in ``batch`` whose split saves the most time; False if none pays."""
        with self._helpers_lock:
            candidates = list(batch)
        best: tuple[float, _PartDownload] | None = None
        for dl in candidates:
            left = dl.stealable_s()
            if left > 0 and (best is None or left > best[0]):
                best = (left, dl)
        return best is not None and best[1].steal()

    # -- internals: requests and retries ----------------------------------------------------

    def _send(self, method: str, url: str, headers: dict[str, str], *, origin: str) -> httpx.Response:
        """Send one streaming request; the token goes only to the origin's host."""
        hdrs = dict(headers)
        if self._token and httpx.URL(url).host == httpx.URL(origin).host:
            hdrs["Authorization"] = f"Bearer {self._token}"
        try:
            return self._client.send(self._client.build_request(method, url, headers=hdrs), stream=True)
        except httpx.TooManyRedirects as e:
            raise TransferError(f"{method} {origin}: redirect loop (more than {_MAX_REDIRECTS} redirects)",
                                origin) from e
        except (httpx.UnsupportedProtocol, httpx.LocalProtocolError, httpx.ProxyError) as e:
            raise TransferError(f"{method} {origin}: {e}", origin) from e
        except _RETRY_EXCEPTIONS as e:
            raise _Retryable(f"{type(e).__name__}: {e or 'no detail'}") from e

    def _check_status(self, method: str, url: str, resp: httpx.Response, optional: bool) -> bool:
        """True for 2xx; False for an absent optional file; raises otherwise."""
        status = resp.status_code
        if status < 300:
            return True
        if status in (403, 404):
            if optional:
                logger.debug("%s %s: HTTP %d, optional file absent", method, url, status)
                return False
            raise MissingPartError(f"{method} {url}: HTTP {status}, the file is absent on the remote", url, status)
        if status >= 500 or status in _RETRY_STATUSES:
            raise _Retryable(f"HTTP {status}", status=status,
                             retry_after=_retry_after_s(resp.headers.get("retry-after")))
        raise TransferError(f"{method} {url}: HTTP {status}", url, status)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_backoff_s)
        return self._rng.uniform(0, min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1)))

    def _retrying(
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
            except _Retryable as e:
                if moved() - before >= _ATTEMPT_RESET_BYTES:
                    failures = 0
                failures += 1
                if failures > self.retries:
                    raise TransferError(
                        f"{method} {url}: {e} (gave up after {failures} attempts)", url, e.status
                    ) from e
                delay = self._backoff(failures, e.retry_after)
                logger.info("%s %s: %s; retry %d/%d in %.2fs", method, url, e, failures, self.retries, delay)
                sleep(delay)

    def _remote_info(self, url: str, resp: httpx.Response) -> RemoteInfo:
        size: int | None = None
        for r in resp.history:
            linked = r.headers.get("x-linked-size")
            if linked and linked.isdigit():
                size = int(linked)
                break
        if size is None:
            if resp.status_code == 206:
                size = _parse_content_range(resp.headers.get("content-range"))[2]
            elif resp.headers.get("content-length", "").isdigit():
                size = int(resp.headers["content-length"])
        return RemoteInfo(
            url=url,
            final_url=str(resp.url),
            size=size,
            etag=_clean_etag(resp.headers.get("etag")),
            sha256=_remote_sha256(resp),
            accept_ranges=resp.headers.get("accept-ranges", "").lower() == "bytes" or resp.status_code == 206,
        )

    def _helper_pool(self) -> ThreadPoolExecutor:
        with self._helpers_lock:
            if self._helpers is None:
                self._helpers = ThreadPoolExecutor(max_workers=self.max_connections, thread_name_prefix="si-segment")
            return self._helpers

    # -- internals: one file ------------------------------------------------------------------

    def _fetch(
        self,
        url: str,
        dest: Path,
        expected_size: int | None,
        sha256: str | None,
        optional: bool,
        cancel: threading.Event | None,
        batch: set[_PartDownload] | None = None,
    ) -> FetchResult | None:
        if cancel is not None and cancel.is_set():
            raise _Cancelled()
        sha256 = sha256.lower() if sha256 else None
        dest.parent.mkdir(parents=True, exist_ok=True)
        with _FileLock(dest.with_name(dest.name + ".lock"), cancel):
            done = self._complete_locally(url, dest, expected_size, sha256)
            if done is not None:
                self.progress.advance(done.size)
                return done
            for scratch in (0, 1):
                try:
                    result = _PartDownload(self, url, dest, expected_size, sha256, optional, cancel, batch).run()
                    break
                except IntegrityError as e:
                    if scratch:
                        raise
                    logger.warning("%s; fetching it again from scratch", e)
            if result is None:
                return None
            self._record(result)
            return result

    def _complete_locally(
        self, url: str, dest: Path, expected_size: int | None, sha256: str | None
    ) -> FetchResult | None:
        """A FetchResult(skipped=True) if ``dest`` is already complete, else None."""
        try:
            size = dest.stat().st_size
        except FileNotFoundError:
            return None
        if expected_size is not None and size != expected_size:
            return None
        if self.manifest is not None and self.manifest.contains(dest):
            entry = self.manifest.get(dest)
            if entry is not None and entry.size == size and (sha256 is None or entry.sha256 == sha256):
                # An entry written without a hash (older manifests) gets one now: the result always has it.
                digest = entry.sha256 or sha256_file(dest)
                return FetchResult(url, dest, size, digest, resumed=False, skipped=True)
        if expected_size is None:
            # No size to compare with: ask the remote (one HEAD beats a refetch).
            info = self.head(url, optional=True)
            if info is None or info.size != size:
                return None
            sha256 = sha256 or info.sha256
        digest = sha256_file(dest)
        if sha256 is not None and digest != sha256:
            logger.warning("%s: sha256 %s, expected %s; fetching it again", dest, digest, sha256)
            return None
        result = FetchResult(url, dest, size, digest, resumed=False, skipped=True)
        self._record(result)
        return result

    def _record(self, result: FetchResult) -> None:
        if self.manifest is not None and self.manifest.contains(result.path):
            self.manifest.record(result.path, result.url, result.size, result.sha256)


@dataclass
class _PartState:
    """The sidecar next to a part: the remote's validator and, if segmented, the bytes written."""

    url: str
    size: int | None
    etag: str | None
    last_modified: str | None
    sha256: str | None
    segmented: bool
    done: list[tuple[int, int]] = field(default_factory=list)

    def to_json(self) -> str:
        d = dict(self.__dict__)
        d["done"] = [list(r) for r in self.done]
        return json.dumps(d)

    @classmethod
    def from_json(cls, text: str) -> _PartState:
        d = json.loads(text)
        return cls(
            url=str(d["url"]), size=d["size"], etag=d["etag"], last_modified=d["last_modified"],
            sha256=d.get("sha256"), segmented=bool(d["segmented"]), done=[(int(a), int(b)) for a, b in d["done"]],
        )


@dataclass
class _Piece:
    start: int
    end: int | None  # None: to the end of the body
    pos: int
    # Bytes up to here are being written; a split never moves ``end`` below it.
    claimed: int = 0
    # When the current request went out, when its headers came back and ``pos`` then: the
    # piece's latency and rate, which decide whether splitting it pays off.
    sent_at: float | None = None
    first_at: float | None = None
    first_pos: int = 0


class _PartDownload:
    """One fetch of ``url`` into ``dest.part``: the owner thread plus segment helpers."""

    def __init__(
        self, t: Transfer, url: str, dest: Path, expected_size: int | None, sha256: str | None,
        optional: bool, cancel: threading.Event | None, batch: set[_PartDownload] | None = None,
    ) -> None:
        self.t = t
        # Where an idle connection of the same batch looks for work to take over (see steal()).
        self.batch = batch
        self.url = url
        self.dest = dest
        self.part = dest.with_name(dest.name + ".part")
        self.side = dest.with_name(dest.name + ".part.json")
        self.expected_size = expected_size
        self.sha256 = sha256
        self.optional = optional
        self.cancel = cancel
        self.abort = threading.Event()
        self.lock = threading.Condition()
        self.save_lock = threading.Lock()
        # sha256 of the part's bytes [0, hashed), fed while streaming by whichever range is
        # writing at ``hashed`` (the whole file for a single stream, the first segment otherwise);
        # _finish reads back only the rest.
        self.hasher = hashlib.sha256()
        self.hashed = 0
        self.hash_lock = threading.Lock()
        self.state: _PartState | None = None
        self.final_url: str | None = None
        self.fd = -1
        self.queue: list[_Piece] = []
        self.pieces: list[_Piece] = []
        self.active = 0
        self.closed = False
        self.error: BaseException | None = None
        self.resumed = False
        self.last_save = 0.0

    # -- orchestration ----------------------------------------------------------------------

    def run(self) -> FetchResult | None:
        self.state = self._load_state()
        self.fd = os.open(self.part, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            for _ in range(3):
                try:
                    self._download()
                    return self._finish()
                except _Absent:
                    _unlink(self.part, self.side)
                    return None
                except _Restart as e:
                    logger.warning("GET %s: %s; discarding the partial download", self.url, e)
                    self._discard()
            raise TransferError(f"GET {self.url}: the remote file kept changing during the download", self.url)
        except IntegrityError:
            _unlink(self.part, self.side)
            raise
        except (TransferError, InsufficientSpaceError):
            raise
        except OSError as e:
            if e.errno == errno.ENOSPC:
                raise InsufficientSpaceError(f"GET {self.url}: no space left writing {self.part}") from e
            raise TransferError(f"GET {self.url}: writing {self.part}: {e}", self.url) from e
        finally:
            self._stop_helpers()
            if self.fd >= 0:
                if os.fstat(self.fd).st_size == 0:
                    _unlink(self.part, self.side)  # nothing worth resuming
                os.close(self.fd)
                self.fd = -1

    def _load_state(self) -> _PartState | None:
        """The sidecar of an existing part if it can be trusted; otherwise a clean slate."""
        if not self.part.exists():
            _unlink(self.side)
            return None
        try:
            state = _PartState.from_json(self.side.read_text())
        except (OSError, ValueError, KeyError, TypeError) as e:
            logger.info("%s: no usable sidecar (%s); starting over", self.part, e)
            _unlink(self.part, self.side)
            return None
        have = self.part.stat().st_size
        if (
            (self.expected_size is not None and state.size is not None and state.size != self.expected_size)
            or (state.etag is None and state.last_modified is None and state.size is None)
            or (not state.segmented and state.size is not None and have > state.size)
            or (state.segmented and (state.size is None or have != state.size))
        ):
            logger.info("%s: partial download does not match the remote; starting over", self.part)
            _unlink(self.part, self.side)
            return None
        return state

    def _reset_hash(self) -> None:
        with self.hash_lock:
            self.hasher, self.hashed = hashlib.sha256(), 0

    def _discard(self) -> None:
        os.ftruncate(self.fd, 0)
        self._reset_hash()
        _unlink(self.side)
        self.state = None
        self.resumed = False
        self.queue, self.pieces = [], []
        self.abort.clear()
        self.error = None
        self.closed = False

    def _download(self) -> None:
        st = self.state
        if st is None or not st.segmented:
            start = 0 if st is None else os.fstat(self.fd).st_size
            if st is not None and st.size is not None and start == st.size:
                self.resumed = True
                self.t.progress.advance(start)
                return
            if start:
                self.resumed = True
                self.t.progress.advance(start)
            end = None
            if st is None and self.expected_size:
                # Known size: ask for exactly the first segment, so nothing needs cutting short.
                end = self._plan(self.expected_size)[0][1]
            owner = _Piece(start, end, start)
        else:
            assert st.size is not None
            self.resumed = bool(st.done)
            self.t.progress.advance(sum(b - a for a, b in _merge(st.done)))
            gaps = self._split(_gaps(st.done, st.size))
            if not gaps:
                self.resumed = True
                return
            owner = gaps[0]
            with self.lock:
                self.pieces = list(gaps)
                self.queue = gaps[1:]
            self._register()
            self._spawn_helpers(len(self.queue))
        try:
            self._run_piece(owner)
            while self.take_segment():
                pass
            while self.steal():
                pass
        except BaseException as e:
            self._fail(e)
        self._stop_helpers()
        if self.error is not None:
            self._save(force=True)  # keep every finished byte for the next run
            raise self.error

    def _plan(self, size: int) -> list[tuple[int, int]]:
        """Segment boundaries for a file of ``size`` bytes (one segment when it is small)."""
        n = min(self.t.segments_per_file, size // self.t.segment_bytes)
        if n < 2:
            return [(0, size)]
        bounds = [size * i // n for i in range(n + 1)]
        return list(zip(bounds[:-1], bounds[1:]))

    def _split(self, gaps: list[tuple[int, int]]) -> list[_Piece]:
        """Pieces covering ``gaps``, about ``segments_per_file`` of them, none under a segment."""
        remaining = sum(b - a for a, b in gaps)
        target = max(self.t.segment_bytes, -(-remaining // self.t.segments_per_file))
        pieces = []
        for a, b in gaps:
            n = max(1, round((b - a) / target))
            bounds = [a + (b - a) * i // n for i in range(n + 1)]
            pieces += [_Piece(x, y, x) for x, y in zip(bounds[:-1], bounds[1:])]
        return pieces

    def _spawn_helpers(self, n: int) -> None:
        if self.batch is not None:
            return  # the batch's free workers take the segments (Transfer.fetch_many)
        pool = self.t._helper_pool()
        for _ in range(min(n, self.t.segments_per_file - 1)):
            pool.submit(self._helper)

    def _helper(self) -> None:
        # Wait for a free connection slot before taking a piece, so that no piece sits with a
        # helper stuck behind other downloads while the owner could have fetched it.
        with self.t._slots:
            with self.lock:
                if self.closed or self.abort.is_set() or not self.queue:
                    return
                self.active += 1
        try:
            while True:
                with self.lock:
                    if self.closed or self.abort.is_set() or not self.queue:
                        break
                    piece = self.queue.pop(0)
                self._run_piece(piece)
        except BaseException as e:
            self._fail(e)
        finally:
            with self.lock:
                self.active -= 1
                self.lock.notify_all()
        while self.steal():
            pass

    # -- splitting ranges in flight ---------------------------------------------------------

    def take_segment(self) -> bool:
        """Fetch the next planned segment on this thread; False if none is left."""
        with self.lock:
            if self.closed or self.abort.is_set() or not self.queue:
                return False
            piece = self.queue.pop(0)
            self.active += 1
        try:
            self._run_piece(piece)
        except BaseException as e:
            self._fail(e)
        finally:
            with self.lock:
                self.active -= 1
                self.lock.notify_all()
        return True

    def _register(self) -> None:
        if self.batch is not None:
            with self.t._helpers_lock:
                self.batch.add(self)

    def _unregister(self) -> None:
        if self.batch is not None:
            with self.t._helpers_lock:
                self.batch.discard(self)

    def _victim(self, now: float) -> tuple[float, _Piece, int] | None:
        """(seconds saved, piece, split offset) for the range most worth splitting; call with the lock held.

        A range streaming at rate r with ``rem`` bytes left ends in rem/r; handing its tail to a new
        request that first waits the observed latency ``lat`` makes both end in about
        (rem/r + lat)/2, so a split pays when rem/r exceeds 2 x lat (margin for the estimates). No
        split leaves either side under ``_MIN_SPLIT_BYTES``.
        """
        st = self.state
        if self.closed or self.abort.is_set() or st is None or not st.segmented:
            return None
        best: tuple[float, _Piece, int] | None = None
        for p in self.pieces:
            if p.end is None or p.first_at is None or p.sent_at is None:
                continue
            base = max(p.pos, p.claimed)
            rem = p.end - base
            elapsed = now - p.first_at
            if rem < 2 * _MIN_SPLIT_BYTES or elapsed < _MIN_RATE_WINDOW_S or p.pos <= p.first_pos:
                continue
            rate = (p.pos - p.first_pos) / elapsed
            lat = p.first_at - p.sent_at
            left_s = rem / rate
            if left_s <= 2 * lat:
                continue
            keep = int((rem + lat * rate) / 2)
            keep = min(max(keep, _MIN_SPLIT_BYTES), rem - _MIN_SPLIT_BYTES)
            saved = left_s - (left_s + lat) / 2
            if best is None or saved > best[0]:
                best = (saved, p, base + keep)
        return best

    def stealable_s(self) -> float:
        """Seconds a split of this download would save now (0: none worth it)."""
        with self.lock:
            v = self._victim(time.monotonic())
        return v[0] if v else 0.0

    def steal(self) -> bool:
        """Split the range most worth it and fetch its tail on this thread; False if none pays off.

        Runs only with a connection slot free (taken before the split, so the tail never waits
        behind other downloads while its former owner has already stopped short).
        """
        if not self.t._slots.acquire(blocking=False):
            return False
        held = True
        try:
            with self.lock:
                v = self._victim(time.monotonic())
                if v is None:
                    return False
                _, victim, mid = v
                piece = _Piece(mid, victim.end, mid, claimed=mid)
                victim.end = mid
                self.pieces.append(piece)
                self.active += 1
            try:
                held = False
                self._run_piece(piece, slot_held=True)
            except BaseException as e:
                self._fail(e)
            finally:
                with self.lock:
                    self.active -= 1
                    self.lock.notify_all()
            return self.error is None
        finally:
            if held:
                self.t._slots.release()

    def _fail(self, e: BaseException) -> None:
        with self.lock:
            if self.error is None or isinstance(self.error, _Cancelled):
                if not (isinstance(e, _Cancelled) and self.error is not None):
                    self.error = e
            self.abort.set()
            self.lock.notify_all()

    def _stop_helpers(self) -> None:
        """Wait until no helper touches the part any more; later helpers find it closed."""
        with self.lock:
            while self.active:
                self.lock.wait()
            self.closed = True
        self._unregister()

    # -- one range, with retries ------------------------------------------------------------

    def _run_piece(self, piece: _Piece, slot_held: bool = False) -> None:
        """``slot_held``: the caller took a connection slot, which the first attempt uses and releases."""
        held = [slot_held]

        def attempt() -> None:
            slot: _SlotLike = _Taken(self.t._slots) if held[0] else self.t._slots
            held[0] = False
            self._attempt(piece, slot)

        try:
            self.t._retrying("GET", self.url, attempt, lambda: piece.pos, self._sleep)
        finally:
            if held[0]:
                self.t._slots.release()
        self._follow_hash()

    def _follow_hash(self) -> None:
        """Hash the bytes now contiguous after ``hashed``, from disk, holding no connection.

        Called as each segment ends: segments end at different times, so most of a segmented file
        is hashed while its last segments still stream, and _finish has little left to read.
        """
        st = self.state
        if st is None or not st.segmented or not self.hash_lock.acquire(blocking=False):
            return  # someone else is hashing: they will take these bytes too, or _finish will
        try:
            with self.lock:
                written = _merge(st.done + [(p.start, p.pos) for p in self.pieces])
            end = next((b for a, b in written if a <= self.hashed < b), self.hashed)
            self.hashed = update_from_fd(self.hasher, self.fd, self.hashed, end, self.abort.is_set)
        finally:
            self.hash_lock.release()

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while True:
            self._check_cancel()
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.abort.wait(min(left, 0.1))

    def _check_cancel(self) -> None:
        if self.abort.is_set() or (self.cancel is not None and self.cancel.is_set()):
            raise _Cancelled()

    def _attempt(self, piece: _Piece, slot: _SlotLike) -> None:
        if self.abort.is_set() or (self.cancel is not None and self.cancel.is_set()):
            with slot:
                raise _Cancelled()
        # The first try of a range goes straight to the redirect target; retries start over at the URL.
        target = self.final_url or self.url
        headers = {"Range": f"bytes={piece.pos}-" + (str(piece.end - 1) if piece.end is not None else "")}
        st = self.state
        if st is not None and (st.etag or st.last_modified):
            headers["If-Range"] = f'"{st.etag}"' if st.etag else str(st.last_modified)
        with slot:
            try:
                piece.sent_at, piece.first_at = time.monotonic(), None
                with closing(self.t._send("GET", target, headers, origin=self.url)) as resp:
                    piece.first_pos, piece.first_at = piece.pos, time.monotonic()
                    if target != self.url and resp.status_code in (401, 403, 404, 410):
                        # A signed redirect target may have expired: resolve the URL again.
                        self.final_url = None
                        raise _Retryable(f"HTTP {resp.status_code} from redirect target {target}")
                    if resp.status_code == 416:
                        self._on_416(piece, resp)
                        return
                    if not self.t._check_status("GET", self.url, resp, self.optional):
                        raise _Absent()
                    self._on_response(piece, resp)
                    self._stream(piece, resp)
            except _RETRY_EXCEPTIONS as e:
                raise _Retryable(f"{type(e).__name__}: {e or 'no detail'} at byte {piece.pos}") from e
        if piece.end is not None and piece.pos < piece.end:
            raise _Retryable(f"body ended at byte {piece.pos}, expected {piece.end}")
        total = self.state.size if self.state is not None else None
        if piece.end is None and total is not None and piece.pos < total:
            raise _Retryable(f"body ended at byte {piece.pos} of {total}")

    def _on_416(self, piece: _Piece, resp: httpx.Response) -> None:
        """Range not satisfiable: fine only when there was nothing left to fetch (e.g. an empty file)."""
        total = _parse_content_range(resp.headers.get("content-range"))[2]
        st = self.state
        if total is None or total != piece.pos or (st is not None and st.size not in (None, total)):
            raise _Restart(f"HTTP 416 for bytes from {piece.pos} (remote size {total})")
        if st is None:
            self.state = _PartState(self.url, total, _clean_etag(resp.headers.get("etag")),
                                    resp.headers.get("last-modified"), None, segmented=False)
        piece.end = piece.pos

    def _on_response(self, piece: _Piece, resp: httpx.Response) -> None:
        """Check a 200/206 against the part state; set up the state on the first response."""
        etag = _clean_etag(resp.headers.get("etag"))
        last_modified = resp.headers.get("last-modified")
        if resp.status_code == 206:
            first, _, total = _parse_content_range(resp.headers.get("content-range"))
            if first != piece.pos:
                got = resp.headers.get("content-range")
                raise _Restart(f"asked for bytes from {piece.pos}, got Content-Range {got!r}")
        else:
            if resp.status_code != 200:
                raise TransferError(f"GET {self.url}: unexpected HTTP {resp.status_code}", self.url, resp.status_code)
            piece.end = None  # the whole body follows, whatever range was asked for
            length = resp.headers.get("content-length", "")
            total = int(length) if length.isdigit() else None
        if self.final_url is None and str(resp.url) != self.url:
            self.final_url = str(resp.url)
        if self.expected_size is not None and total is not None and total != self.expected_size:
            raise IntegrityError(f"GET {self.url}: remote size {total} bytes, expected {self.expected_size}")

        with self.lock:
            st = self.state
            if st is not None and resp.status_code == 206:
                size_changed = st.size is not None and total is not None and st.size != total
                if (st.etag and etag and st.etag != etag) or size_changed:
                    raise _Restart("the remote file changed since the partial download started")
                return
            if st is not None and st.segmented:
                raise _Restart("HTTP 200 to a range request (Range ignored or file changed)")
            if st is not None and piece.pos > 0:
                logger.info("GET %s: HTTP 200 to a resume request; restarting from byte 0", self.url)
                self.t.progress.advance(-piece.pos)
                os.ftruncate(self.fd, 0)
                piece.start = piece.pos = 0
                self._reset_hash()
            self.resumed = False
            segmented = (
                resp.status_code == 206 and total is not None and piece.start == 0 and len(self._plan(total)) > 1
            )
            self.state = _PartState(
                url=self.url, size=total, etag=etag, last_modified=last_modified,
                sha256=_remote_sha256(resp), segmented=segmented,
            )
        if total is not None:
            try:
                check_free_space(self.part, total - piece.pos)
            except InsufficientSpaceError as e:
                raise InsufficientSpaceError(f"GET {self.url}: {e}") from None
        if segmented:
            assert total is not None
            self._preallocate(total)
            plan = self._plan(total)
            piece.end = plan[0][1]
            rest = [_Piece(a, b, a) for a, b in plan[1:]]
            with self.lock:
                self.pieces = [piece, *rest]
                self.queue = list(rest)
            self._save(force=True)
            self._register()
            self._spawn_helpers(len(rest))
        else:
            self._save(force=True)

    def _digest(self, size: int) -> str:
        """sha256 of the finished part: the streamed prefix plus the rest read back from disk."""
        with self.hash_lock:
            h, pos = self.hasher.copy(), self.hashed
        if pos > size:  # cannot happen with the bytes checked above; be safe rather than wrong
            return sha256_fd(self.fd, size)
        update_from_fd(h, self.fd, pos, size)
        return h.hexdigest()

    def _preallocate(self, size: int) -> None:
        try:
            os.posix_fallocate(self.fd, 0, size)
        except OSError as e:
            if e.errno == errno.ENOSPC:
                raise InsufficientSpaceError(
                    f"GET {self.url}: not enough free space for {size} bytes at {self.part}"
                ) from e
            os.ftruncate(self.fd, size)  # filesystem without fallocate: a sparse file will do

    def _stream(self, piece: _Piece, resp: httpx.Response) -> None:
        for chunk in resp.iter_raw():
            self._check_cancel()
            with self.lock:  # a concurrent split may move piece.end, never below piece.claimed
                if piece.end is not None:
                    chunk = chunk[: max(0, piece.end - piece.pos)]
                piece.claimed = piece.pos + len(chunk)
            at = piece.pos
            view = memoryview(chunk)
            while view:
                n = os.pwrite(self.fd, view, piece.pos)
                piece.pos += n
                view = view[n:]
            if self.hashed == at:  # unlocked pre-check; decided under the lock below
                with self.hash_lock:
                    if self.hashed == at:
                        self.hasher.update(chunk)
                        self.hashed += len(chunk)
            self.t.progress.advance(len(chunk))
            if self.state is not None and self.state.segmented:
                self._save()
            if piece.end is not None and piece.pos >= piece.end:
                break

    def _save(self, force: bool = False) -> None:
        """Write the sidecar; for segments, at most every ``_STATE_SAVE_INTERVAL_S``."""
        now = time.monotonic()
        if not force and now - self.last_save < _STATE_SAVE_INTERVAL_S:
            return  # unlocked fast path: this runs for every chunk received
        with self.save_lock:  # one saver at a time; the writers keep going meanwhile
            with self.lock:
                st = self.state
                if st is None or (not force and now - self.last_save < _STATE_SAVE_INTERVAL_S):
                    return
                if not st.segmented and st.size is not None and st.size < _SIDECAR_MIN_BYTES:
                    # A small file is cheaper to fetch again than to track: without a sidecar a
                    # later run discards its part (_load_state) and starts over, always correct.
                    return
                self.last_save = now
                written = [(p.start, p.pos) for p in self.pieces]
            if st.segmented:
                # Only ranges already on disk may be recorded as done: sync what was written
                # before the snapshot (outside the lock, so that no segment stalls on the disk).
                os.fdatasync(self.fd)
                with self.lock:
                    st.done = _merge(st.done + written)
            with self.lock:
                text = st.to_json()
            tmp = self.side.with_name(self.side.name + ".tmp")
            tmp.write_text(text)
            os.replace(tmp, self.side)

    # -- verification and rename ------------------------------------------------------------

    def _finish(self) -> FetchResult:
        st = self.state
        os.fsync(self.fd)
        size = os.fstat(self.fd).st_size
        if st is not None and st.segmented:
            with self.lock:
                missing = _gaps(st.done + [(p.start, p.pos) for p in self.pieces], size)
            if missing:
                raise TransferError(f"GET {self.url}: segments incomplete, missing {missing[:3]}", self.url)
        expected = self.expected_size if self.expected_size is not None else (st.size if st else None)
        if expected is not None and size != expected:
            raise IntegrityError(f"GET {self.url}: got {size} bytes, expected {expected}")
        digest = self._digest(size)
        want = self.sha256 or (st.sha256 if st else None)
        if want is not None and digest != want:
            raise IntegrityError(f"GET {self.url}: sha256 {digest}, expected {want}")
        os.replace(self.part, self.dest)
        _unlink(self.side)
        _fsync_dir(self.dest.parent)
        return FetchResult(self.url, self.dest, size, digest, resumed=self.resumed, skipped=False)
