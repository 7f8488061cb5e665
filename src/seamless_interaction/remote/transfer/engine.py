"""The transfer engine: :class:`Transfer`, its public operations and the fetch_many scheduler."""

from __future__ import annotations

import collections
import hashlib
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpx

from seamless_interaction.base.errors import (
    IntegrityError,
    TransferCancelled,
    TransferError,
)
from seamless_interaction.local import layout
from seamless_interaction.remote.transfer.client import (
    ATTEMPT_RESET_BYTES,
    HttpClient,
    cancellable_sleep,
    check_cancel,
)
from seamless_interaction.remote.transfer.disk import FileLock, sha256_file
from seamless_interaction.remote.transfer.hub import HubRepo
from seamless_interaction.remote.transfer.part import Batch, PartContext, PartDownload
from seamless_interaction.remote.transfer.policy import (
    RETRY_EXCEPTIONS,
    AnyOf,
    CancelLike,
    Retryable,
    RetryPolicy,
    Stopped,
    TokenScope,
    parse_content_range,
)
from seamless_interaction.remote.transfer.records import (
    FetchResult,
    Job,
    NullProgress,
    Progress,
    RemoteInfo,
)

if TYPE_CHECKING:
    from typing_extensions import Self

    from seamless_interaction.base.config import DatasetConfig
    from seamless_interaction.local.manifest import Manifest

__all__ = ["Transfer"]

logger = logging.getLogger(__name__)

# How often an idle fetch_many worker looks for a range to split.
_IDLE_POLL_S = 0.02


class Transfer:
    """Downloads over one pooled HTTP client with bounded global concurrency.

    >>> with Transfer(max_connections=16, progress=TqdmProgress()) as t:
    ...     t.fetch("https://dl.fbaipublicfiles.com/.../x.wav", Path("x.wav"))

    A fetch streams into ``<dest>.part`` next to the destination, with a ``<dest>.part.json``
    sidecar holding the remote validator and, for segmented downloads, the byte ranges already
    written; an interrupted fetch (dropped connection, Ctrl-C, kill -9, a cancel token) resumes
    from there with ``Range`` + ``If-Range``. The finished part is fsynced, checked against the size
    and any known sha256, and renamed into place, so nothing half-written ever sits at a final path.

    Args:
        headers: extra headers for every request (User-Agent and so on).
        token: the HF token, sent as ``Authorization: Bearer`` only to ``token_origin`` (scheme,
            host and port), which defaults to the Hub of ``hub_url``; with neither, to the host of
            the URL asked for. Never to a redirect target or CDN elsewhere, never in a repr.
        hub_url: the Hub resolve base (``.../datasets/{repo}/resolve/{revision}``): names the
            Hub's API for listings (sizes and sha256s of many files at once), and the token's origin.
        cache_dir: where Hub listings are kept per commit (none on disk when None).
        timeout_s: connect and per-read timeout; a stalled body fails after this long.
        max_connections: bound on simultaneous requests across every download of this object.
        retries: retries after the first attempt, per request or segment.
        backoff_s, max_backoff_s: exponential backoff with full jitter between attempts.
        segment_bytes, segments_per_file: files of at least ``2 * segment_bytes`` on servers that
            accept ranges are fetched over up to ``segments_per_file`` connections. 8 MiB keeps
            each request's latency small against its transfer time on real links (8 MiB at
            20 MB/s is 0.4 s per 50 ms of latency); up to 64 per file lets one large archive use
            every connection of the default pool, and in a batch of several files the segments of
            the first are taken first, so files complete one after another (each can be verified
            and extracted while the next still streams) instead of all at the very end. In a
            :meth:`fetch_many` batch and among one file's segments, a connection left idle also
            splits the range with the most time left, when the measured rate and latency say the
            split pays off, so the connections finish together whatever the initial plan.
        progress: byte progress; :class:`NullProgress` when None.
        manifest: where completed files under its root are recorded, and trusted from.
        cancel: a token (a :class:`threading.Event`) that stops every operation of this engine
            between two chunks with :class:`TransferCancelled`; each call also takes its own.
        transport: the httpx transport (``httpx.MockTransport`` in unit tests); the network by default.
    """

    def __init__(
        self,
        *,
        headers: dict[str, str] | None = None,
        token: str | None = None,
        token_origin: str | None = None,
        timeout_s: float = 60.0,
        max_connections: int = 16,
        retries: int = 5,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        segment_bytes: int = 8 << 20,
        segments_per_file: int = 64,
        progress: Progress | None = None,
        manifest: Manifest | None = None,
        cancel: CancelLike | None = None,
        transport: httpx.BaseTransport | None = None,
        hub_url: str | None = None,
        cache_dir: Path | str | None = None,
    ) -> None:
        if max_connections < 1 or segments_per_file < 1 or segment_bytes < 1 or retries < 0:
            raise ValueError("max_connections, segments_per_file and segment_bytes must be >= 1, retries >= 0")
        self.timeout_s = timeout_s
        self.max_connections = max_connections
        self.policy = RetryPolicy(retries=retries, backoff_s=backoff_s, max_backoff_s=max_backoff_s)
        self.segment_bytes = segment_bytes
        self.segments_per_file = segments_per_file
        self.progress: Progress = progress if progress is not None else NullProgress()
        self.manifest = manifest
        self.cancel = cancel
        hub = HubRepo.parse(hub_url) if hub_url else None
        if token_origin is None and hub is not None:
            token_origin = hub.endpoint
        self.http = HttpClient(
            headers=headers, scope=TokenScope(token, token_origin), policy=self.policy,
            timeout_s=timeout_s, max_connections=max_connections, transport=transport, hub=hub,
            cache_dir=Path(cache_dir) if cache_dir is not None else None,
        )
        self._helpers: ThreadPoolExecutor | None = None
        self._helpers_lock = threading.Lock()
        self._ctx = PartContext(
            http=self.http, progress=self.progress, segment_bytes=segment_bytes,
            segments_per_file=segments_per_file, spawn=self._spawn,
        )

    @property
    def retries(self) -> int:
        return self.policy.retries

    @retries.setter
    def retries(self, value: int) -> None:
        self.policy.retries = value

    def __repr__(self) -> str:
        token = ", token=***" if self.http.scope.has_token else ""
        return f"Transfer(max_connections={self.max_connections}, retries={self.retries}{token})"

    def __enter__(self) -> Self:
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
        self.http.close()

    @classmethod
    def from_config(cls, config: DatasetConfig, **kw: Any) -> Transfer:
        """An engine for a :class:`DatasetConfig`: its token, Hub, timeout, connection budget and cache."""
        cfg = config if config.hf_url and config.num_workers else config.resolved()
        opts: dict[str, Any] = {
            "token": cfg.hf_token, "hub_url": cfg.hf_url, "timeout_s": cfg.timeout_s,
            "cache_dir": cfg.cache_dir,
        }
        # num_workers is the official "file ids or archives at once"; connections have their own budget.
        if cfg.max_connections is not None:
            opts["max_connections"] = cfg.max_connections
        opts.update(kw)
        return cls(**opts)

    def lock(self, path: Path | str, *, cancel: CancelLike | None = None) -> FileLock:
        """An exclusive lock (threads and processes) named ``path``, for work bigger than one file.

        Two identical downloads of an archive serialise on it, and the second then finds the
        first's work done.
        """
        return FileLock(Path(path), self._stop(cancel))

    def _stop(self, cancel: CancelLike | None) -> AnyOf:
        return AnyOf(self.cancel, cancel)

    # -- public operations ------------------------------------------------------------------

    def head(self, url: str, *, optional: bool = False, cancel: CancelLike | None = None) -> RemoteInfo | None:
        """Size, validator and (when the remote publishes one) sha256 of ``url``.

        Returns None when ``optional`` and the remote answers 403 or 404.
        """
        return self.http.head(url, optional=optional, cancel=self._stop(cancel))

    def fetch(
        self,
        url: str,
        dest: Path | str,
        *,
        expected_size: int | None = None,
        sha256: str | None = None,
        optional: bool = False,
        cancel: CancelLike | None = None,
        watch: Callable[[int], None] | None = None,
    ) -> FetchResult | None:
        """Download ``url`` to ``dest`` (atomically, resuming, verified); None if optional and absent.

        ``watch`` is :attr:`Job.watch`. Raises :class:`TransferCancelled` once ``cancel`` (or the
        engine's token) is set; the partial download stays for a later call to resume.
        """
        stop = self._stop(cancel)
        self.progress.start(expected_size, Path(dest).name)
        try:
            return self._fetch(url, Path(dest), expected_size, sha256, optional, stop, watch=watch)
        except Stopped:
            raise TransferCancelled(f"GET {url}: cancelled; the partial download is kept for a resume") from None
        finally:
            self.progress.close()

    def fetch_bytes(
        self, url: str, *, optional: bool = False, start: int | None = None, end: int | None = None,
        cancel: CancelLike | None = None,
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
        return self._fetch_bytes(url, optional, start, end, self._stop(cancel))

    def _fetch_bytes(
        self, url: str, optional: bool, start: int | None, end: int | None, stop: CancelLike,
    ) -> bytes | None:
        buf = bytearray()

        def attempt() -> bytes | None:
            check_cancel(stop, "GET", url)
            pos = (start or 0) + len(buf)
            headers = {}
            if start is not None or buf:
                headers["Range"] = f"bytes={pos}-" + (str(end - 1) if end is not None else "")
            with self.http.slots:
                try:
                    answer = self.http.open("GET", url, headers, optional=optional, cancel=stop)
                    if answer is None:
                        return None
                    with closing(answer.resp) as resp:
                        if resp.status_code == 416:
                            total = parse_content_range(resp.headers.get("content-range"))[2]
                            if total is not None and pos >= total and end is None:
                                return bytes(buf)  # nothing left past the end
                            raise TransferError(f"GET {url}: HTTP 416 for bytes from {pos} (size {total})", url, 416)
                        if resp.status_code == 200 and "Range" in headers:
                            # Range ignored: the body is the whole object.
                            data = resp.read()
                            buf[:] = data[start or 0 : end]
                        else:
                            if resp.status_code == 206:
                                first, _, _ = parse_content_range(resp.headers.get("content-range"))
                                if first != pos:
                                    raise TransferError(
                                        f"GET {url}: asked for bytes from {pos}, got Content-Range "
                                        f"{resp.headers.get('content-range')!r}", url, 206,
                                    )
                            for chunk in resp.iter_raw():
                                check_cancel(stop, "GET", url)
                                buf.extend(chunk)
                except RETRY_EXCEPTIONS as e:
                    raise Retryable(f"{type(e).__name__}: {e}") from e
                except Stopped:
                    raise TransferCancelled(f"GET {url}: cancelled") from None
            if end is not None and len(buf) < end - (start or 0):
                raise Retryable(f"body ended after {len(buf)} of {end - (start or 0)} bytes")
            return bytes(buf)

        return self.http.retrying("GET", url, attempt, lambda: len(buf), cancellable_sleep(stop, "GET", url))

    def stream(self, url: str, *, start: int = 0, cancel: CancelLike | None = None) -> Iterator[bytes]:
        """The bytes of ``url`` from ``start`` on, as they arrive (for sequential readers of big files).

        A dropped connection or an expired redirect target is resumed at the byte reached, with the
        engine's retries and backoff; a server that ignores ``Range`` is read up to ``start``. Takes
        no connection slot: the reader decides how long the stream stays open.
        """
        stop = self._stop(cancel)
        pos = start
        failures = 0
        sleep = cancellable_sleep(stop, "GET", url)
        while True:
            check_cancel(stop, "GET", url)
            moved = 0
            try:
                headers = {"Range": f"bytes={pos}-"} if pos else {}
                answer = self.http.open("GET", url, headers, optional=False, cancel=stop)
                assert answer is not None  # not optional: absence raises
                with closing(answer.resp) as resp:
                    if resp.status_code == 416:
                        return  # at the end already
                    skip = pos if (pos and resp.status_code == 200) else 0
                    total = parse_content_range(resp.headers.get("content-range"))[2] if resp.status_code == 206 \
                        else (int(resp.headers["content-length"]) if resp.headers.get("content-length", "").isdigit()
                              else None)
                    for chunk in resp.iter_raw():
                        check_cancel(stop, "GET", url)
                        if skip:
                            cut = min(skip, len(chunk))
                            chunk, skip = chunk[cut:], skip - cut
                            if not chunk:
                                continue
                        pos += len(chunk)
                        moved += len(chunk)
                        yield chunk
                    if total is not None and pos < total:
                        raise Retryable(f"body ended at byte {pos} of {total}")
                return
            except RETRY_EXCEPTIONS as e:
                err: Retryable = Retryable(f"{type(e).__name__}: {e or 'no detail'} at byte {pos}")
            except Retryable as e:
                err = e
            except Stopped:
                raise TransferCancelled(f"GET {url}: cancelled") from None
            failures = 1 if moved >= ATTEMPT_RESET_BYTES else failures + 1
            if failures > self.policy.retries:
                raise TransferError(f"GET {url}: {err} (gave up after {failures} attempts)", url, err.status) from err
            delay = self.policy.delay(failures, err.retry_after)
            logger.info("GET %s: %s; retry %d/%d in %.2fs", url, err, failures, self.policy.retries, delay)
            sleep(delay)

    def fetch_many(
        self,
        jobs: list[Job],
        *,
        fail_fast: bool = True,
        on_result: Callable[[int, FetchResult | None], None] | None = None,
        cancel: CancelLike | None = None,
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
        others logged. Once ``cancel`` (or the engine's token) is set, the running jobs stop
        between two chunks and :class:`TransferCancelled` is raised.
        """
        if not jobs:
            return []
        halt = threading.Event()
        user = self._stop(cancel)
        stop = AnyOf(halt, user)
        sizes = [j.expected_size for j in jobs]
        total = sum(s for s in sizes if s is not None) if any(s is not None for s in sizes) else None
        order = sorted(range(len(jobs)), key=lambda i: (sizes[i] is None, -(sizes[i] or 0), i))
        pending = collections.deque(order)
        results: list[FetchResult | None] = [None] * len(jobs)
        finished: set[int] = set()
        errors: list[BaseException] = []
        batch = Batch()
        state = threading.Lock()
        busy = [0]  # workers with a job in hand

        # While jobs are waiting, only this many workers take planned segments: together with the
        # large files' own streams they fill the link, and the other connections keep going
        # through the jobs (the many small requests, each a round trip, overlap the large
        # streams instead of waiting behind their segments, or starving them).
        seg_quota = max(2, self.max_connections // 4)
        segs = [0]  # workers fetching a planned segment

        def segment() -> bool:
            with state:
                segs[0] += 1
            try:
                return batch.take_segment()
            finally:
                with state:
                    segs[0] -= 1

        def worker() -> None:
            # A free connection takes, in turn: a planned segment of a download in flight while
            # fewer than ``seg_quota`` are being fetched (so a large file spreads over the
            # connections as they free up), the next job, any planned segment, or a split of the
            # range with the most time left; it waits while another worker still has a job
            # (whose download may yet become splittable).
            while not stop.is_set():
                with state:
                    room = segs[0] < seg_quota
                if room and segment():
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
                if segment():
                    continue
                if batch.steal():
                    continue
                with state:
                    if not busy[0]:
                        return
                halt.wait(_IDLE_POLL_S)

        def run(i: int) -> None:
            j = jobs[i]
            try:
                if j.dest is None:
                    res = self._fetch_memory(j, stop)
                else:
                    res = self._fetch(j.url, Path(j.dest), j.expected_size, j.sha256, j.optional, stop, batch,
                                      digest=j.digest, durable=j.durable, watch=j.watch)
                results[i] = res
                with state:
                    finished.add(i)
                if on_result is not None:
                    on_result(i, res)
            except (Stopped, TransferCancelled):
                pass
            except BaseException as e:  # noqa: BLE001 - collected and raised by fetch_many
                with state:
                    errors.append(e)
                if fail_fast or not isinstance(e, Exception):
                    halt.set()

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
                    halt.set()  # Ctrl-C: stop the workers, keep their parts for a resume
                    raise
        finally:
            self.progress.close()
        if errors:
            for e in errors[1:]:
                logger.error("also failed: %s", e)
            raise errors[0]
        if user.is_set() and len(finished) < len(jobs):
            raise TransferCancelled(
                f"cancelled after {len(finished)} of {len(jobs)} files; partial downloads are kept for a resume"
            )
        return results

    # -- internals ----------------------------------------------------------------------------

    def _spawn(self, fn: Callable[[], None]) -> object:
        with self._helpers_lock:
            if self._helpers is None:
                self._helpers = ThreadPoolExecutor(max_workers=self.max_connections, thread_name_prefix="si-segment")
            return self._helpers.submit(fn)

    def _fetch(
        self,
        url: str,
        dest: Path,
        expected_size: int | None,
        sha256: str | None,
        optional: bool,
        cancel: CancelLike | None,
        batch: Batch | None = None,
        *,
        digest: bool = True,
        durable: bool = True,
        watch: Callable[[int], None] | None = None,
    ) -> FetchResult | None:
        if cancel is not None and cancel.is_set():
            raise Stopped()
        sha256 = sha256.lower() if sha256 else None
        dest.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(layout.lock_path(dest), cancel):
            done = self._complete_locally(url, dest, expected_size, sha256)
            if done is not None:
                self.progress.advance(done.size)
                return done
            for scratch in (0, 1):
                try:
                    result = PartDownload(self._ctx, url, dest, expected_size, sha256, optional, cancel, batch,
                                          digest=digest, durable=durable, watch=watch).run()
                    break
                except IntegrityError as e:
                    if scratch:
                        raise
                    logger.warning("%s; fetching it again from scratch", e)
            if result is None:
                return None
            self._record(result)
            return result

    def _fetch_memory(self, job: Job, stop: CancelLike) -> FetchResult | None:
        """An in-memory job: the whole body, checked against the job's size and sha256."""
        data = self._fetch_bytes(job.url, job.optional, None, None, stop)
        if data is None:
            return None
        if job.expected_size is not None and len(data) != job.expected_size:
            raise IntegrityError(f"GET {job.url}: got {len(data)} bytes, expected {job.expected_size}")
        digest = hashlib.sha256(data).hexdigest() if job.digest or job.sha256 is not None else None
        if job.sha256 is not None and digest != job.sha256.lower():
            raise IntegrityError(f"GET {job.url}: sha256 {digest}, expected {job.sha256}")
        if job.expected_size is None:
            add_total = getattr(self.progress, "add_total", None)
            if add_total is not None:
                add_total(len(data))
        self.progress.advance(len(data))
        return FetchResult(job.url, None, len(data), digest, resumed=False, skipped=False, data=data)

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
        if self.manifest is not None and result.path is not None and self.manifest.contains(result.path):
            self.manifest.record(result.path, result.url, result.size, result.sha256)
