"""One file's download into its part: a single stream, or segments over several connections.

:class:`PartDownload` owns ``<dest>.part`` for one attempt of :meth:`Transfer.fetch`: it resumes from
the sidecar, plans segments, streams each range (hashing what arrives in order), lets idle
connections split the range with the most time left, and verifies and renames the finished part.
What it needs from the engine comes in a :class:`PartContext`; a fetch_many batch shares its idle
connections through a :class:`Batch`.
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import httpx

from seamless_interaction.base.digest import sha256_fd, update_from_fd
from seamless_interaction.base.errors import (
    InsufficientSpaceError,
    IntegrityError,
    TransferError,
)
from seamless_interaction.local import layout
from seamless_interaction.remote.transfer.body import BufferPool, iter_body
from seamless_interaction.remote.transfer.client import HttpClient
from seamless_interaction.remote.transfer.disk import (
    PartState,
    check_free_space,
    fsync_dir,
    gaps,
    merge,
    preallocate,
    unlink,
    write_atomic,
)
from seamless_interaction.remote.transfer.hub import Resolved
from seamless_interaction.remote.transfer.policy import (
    RETRY_EXCEPTIONS,
    Absent,
    CancelLike,
    Restart,
    Retryable,
    Stopped,
    clean_etag,
    parse_content_range,
    remote_sha256,
)
from seamless_interaction.remote.transfer.records import FetchResult, Progress

__all__ = ["Batch", "PartContext", "PartDownload"]

logger = logging.getLogger(__name__)

# How often a segmented download records its progress in the sidecar (a crash loses at most this).
_STATE_SAVE_INTERVAL_S = 1.0
# A range in flight is split only if both halves keep at least this much, and only once its rate
# has been observed for this long.
_MIN_SPLIT_BYTES = 1 << 20
_MIN_RATE_WINDOW_S = 0.05
# A stream reports its bytes to the progress at least this often (bytes or seconds, whichever
# comes first): the bar stays live without a locked update per network chunk.
_PROGRESS_BYTES = 1 << 20
_PROGRESS_INTERVAL_S = 0.1
# A single-stream file smaller than this gets no sidecar (no resume across runs): writing and
# renaming it costs more than fetching the file again.
_SIDECAR_MIN_BYTES = 256 << 10
# Read-back buffer per segmented download (see PartDownload.hash_buf).
_HASH_BUF_BYTES = 1 << 20


class _SlotLike(Protocol):
    def __enter__(self) -> object: ...

    def __exit__(self, *exc: object) -> object: ...


class _Acquire:
    """Take a semaphore slot on entry, release it on exit."""

    def __init__(self, sem: threading.BoundedSemaphore) -> None:
        self.sem = sem

    def __enter__(self) -> None:
        self.sem.acquire()

    def __exit__(self, *exc: object) -> None:
        self.sem.release()


class _Taken:
    """A semaphore slot already acquired: entering is free, leaving releases it."""

    def __init__(self, sem: threading.BoundedSemaphore) -> None:
        self.sem = sem

    def __enter__(self) -> None:
        pass

    def __exit__(self, *exc: object) -> None:
        self.sem.release()


@dataclass(frozen=True)
class PartContext:
    """What a part download uses of its engine."""

    http: HttpClient
    progress: Progress
    segment_bytes: int
    segments_per_file: int
    # Runs a callable on a segment helper thread (used outside fetch_many batches).
    spawn: Callable[[Callable[[], None]], object]
    # Receive buffers of direct body reads, shared by the engine's threads.
    buffers: BufferPool = field(default_factory=BufferPool)


class Batch:
    """The segmented downloads of one fetch_many batch, where its idle connections look for work."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Insertion ordered: planned segments are taken from the download that started first,
        # so the batch's files complete one after another rather than all at the end.
        self._members: dict[PartDownload, None] = {}

    def add(self, dl: PartDownload) -> None:
        with self._lock:
            self._members[dl] = None

    def discard(self, dl: PartDownload) -> None:
        with self._lock:
            self._members.pop(dl, None)

    def snapshot(self) -> list[PartDownload]:
        with self._lock:
            return list(self._members)

    def take_segment(self) -> bool:
        """Fetch one planned, not yet started segment of a member; False if none waits."""
        return any(dl.take_segment() for dl in self.snapshot() if dl.queue)

    def steal(self) -> bool:
        """Take over the tail of the range whose split saves the most time; False if none pays."""
        best: tuple[float, PartDownload] | None = None
        for dl in self.snapshot():
            left = dl.stealable_s()
            if left > 0 and (best is None or left > best[0]):
                best = (left, dl)
        return best is not None and best[1].steal()


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


class PartDownload:
    """One fetch of ``url`` into ``dest.part``: the owner thread plus segment helpers."""

    def __init__(
        self, ctx: PartContext, url: str, dest: Path, expected_size: int | None, sha256: str | None,
        optional: bool, cancel: CancelLike | None, batch: Batch | None = None, digest: bool = True,
        durable: bool = True, watch: Callable[[int], None] | None = None,
    ) -> None:
        self.ctx = ctx
        self.http = ctx.http
        # Where an idle connection of the same batch looks for work to take over (see steal()).
        self.batch = batch
        self.url = url
        self.dest = dest
        self.part = layout.part_path(dest)
        self.side = layout.sidecar_path(dest)
        self.expected_size = expected_size
        self.sha256 = sha256
        self.optional = optional
        self.cancel = cancel
        self.abort = threading.Event()
        self.lock = threading.Condition()
        self.save_lock = threading.Lock()
        # sha256 of the part's bytes [0, hashed), fed while streaming by whichever range is
        # writing at ``hashed`` (the whole file for a single stream, the first segment otherwise);
        # _finish reads back only the rest. -1: no hashing (``digest=False`` and no sha256 known
        # to check: the hash would verify nothing and cost a CPU pass over every byte).
        self.digest = digest
        # False: the file is consumed and removed soon after (a tar about to be extracted), so it
        # is not flushed to disk before the rename; a crash leaves it to the size and sha256
        # checks of the next run, which fetch it again if it is not whole.
        self.durable = durable
        self.watch = watch  # see Job.watch
        self.hasher = hashlib.sha256()
        self.hashed = 0 if self._hashing() else -1
        self.hash_lock = threading.Lock()
        # Where _follow_hash reads back what landed (under hash_lock): one buffer for the download.
        self.hash_buf: bytearray | None = None
        self.state: PartState | None = None
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
        if self.hashed < 0 and self._hashing():
            self._reset_hash()  # an earlier run learnt the remote's sha256: check it
        self.fd = os.open(self.part, os.O_RDWR | os.O_CREAT, 0o666)  # the umask decides, as for any new file
        try:
            for _ in range(3):
                try:
                    self._download()
                    return self._finish()
                except Absent:
                    unlink(self.part, self.side)
                    return None
                except Restart as e:
                    logger.warning("GET %s: %s; discarding the partial download", self.url, e)
                    self._discard()
            raise TransferError(f"GET {self.url}: the remote file kept changing during the download", self.url)
        except IntegrityError:
            unlink(self.part, self.side)
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
                if os.fstat(self.fd).st_size == 0 or not self.side.exists():
                    unlink(self.part, self.side)  # nothing worth resuming (a part without sidecar never is)
                os.close(self.fd)
                self.fd = -1

    def _load_state(self) -> PartState | None:
        """The sidecar of an existing part if it can be trusted; otherwise a clean slate."""
        if not self.part.exists():
            unlink(self.side)
            return None
        try:
            state = PartState.from_json(self.side.read_text())
        except (OSError, ValueError, KeyError, TypeError) as e:
            logger.info("%s: no usable sidecar (%s); starting over", self.part, e)
            unlink(self.part, self.side)
            return None
        have = self.part.stat().st_size
        if (
            (self.expected_size is not None and state.size is not None and state.size != self.expected_size)
            or (state.etag is None and state.last_modified is None and state.size is None)
            or (not state.segmented and state.size is not None and have > state.size)
            or (state.segmented and (state.size is None or have != state.size))
        ):
            logger.info("%s: partial download does not match the remote; starting over", self.part)
            unlink(self.part, self.side)
            return None
        return state

    def _hashing(self) -> bool:
        st = getattr(self, "state", None)
        return self.digest or self.sha256 is not None or (st is not None and st.sha256 is not None)

    def _reset_hash(self) -> None:
        with self.hash_lock:
            self.hasher, self.hashed = hashlib.sha256(), 0 if self._hashing() else -1
            if self.watch is not None:
                self.watch(0)

    def _discard(self) -> None:
        os.ftruncate(self.fd, 0)
        self._reset_hash()
        unlink(self.side)
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
                self.ctx.progress.advance(start)
                return
            if start:
                self.resumed = True
                self.ctx.progress.advance(start)
            end = None
            if st is None and self.expected_size:
                # Known size: ask for exactly the first segment, so nothing needs cutting short.
                end = self._plan(self.expected_size)[0][1]
            owner = _Piece(start, end, start)
        else:
            assert st.size is not None
            self.resumed = bool(st.done)
            self.ctx.progress.advance(sum(b - a for a, b in merge(st.done)))
            pieces = self._split(gaps(st.done, st.size))
            if not pieces:
                self.resumed = True
                return
            owner = pieces[0]
            with self.lock:
                self.pieces = list(pieces)
                self.queue = pieces[1:]
            self._register()
            self._spawn_helpers(len(self.queue))
        try:
            self._run_piece(owner)
            while self.take_segment():
                pass
            while self.steal():
                pass
        except BaseException as e:  # noqa: BLE001 - handed to the owner thread, which re-raises it
            self._fail(e)
        self._stop_helpers()
        if self.error is not None:
            self._save(force=True)  # keep every finished byte for the next run
            raise self.error

    def _plan(self, size: int) -> list[tuple[int, int]]:
        """Segment boundaries for a file of ``size`` bytes (one segment when it is small)."""
        n = min(self.ctx.segments_per_file, size // self.ctx.segment_bytes)
        if n < 2:
            return [(0, size)]
        bounds = [size * i // n for i in range(n + 1)]
        return list(itertools.pairwise(bounds))

    def _split(self, ranges: list[tuple[int, int]]) -> list[_Piece]:
        """Pieces covering ``ranges``, about ``segments_per_file`` of them, none under a segment."""
        remaining = sum(b - a for a, b in ranges)
        target = max(self.ctx.segment_bytes, -(-remaining // self.ctx.segments_per_file))
        pieces = []
        for a, b in ranges:
            n = max(1, round((b - a) / target))
            bounds = [a + (b - a) * i // n for i in range(n + 1)]
            pieces += [_Piece(x, y, x) for x, y in itertools.pairwise(bounds)]
        return pieces

    def _spawn_helpers(self, n: int) -> None:
        if self.batch is not None:
            return  # the batch's free workers take the segments (Transfer.fetch_many)
        for _ in range(min(n, self.ctx.segments_per_file - 1)):
            self.ctx.spawn(self._helper)

    def _helper(self) -> None:
        # Wait for a free connection slot before taking a piece, so that no piece sits with a
        # helper stuck behind other downloads while the owner could have fetched it.
        with self.http.slots, self.lock:
            if self.closed or self.abort.is_set() or not self.queue:
                return
        # Then the owner's own loop: each planned segment counted while it runs, then splits.
        while self.take_segment():
            pass
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
        self._run_counted(piece)
        return True

    def _run_counted(self, piece: _Piece, slot_held: bool = False) -> None:
        """Fetch ``piece``, which the caller counted in ``active``; an error goes to the owner thread."""
        try:
            self._run_piece(piece, slot_held=slot_held)
        except BaseException as e:  # noqa: BLE001 - handed to the owner thread, which re-raises it
            self._fail(e)
        finally:
            with self.lock:
                self.active -= 1
                self.lock.notify_all()

    def _register(self) -> None:
        if self.batch is not None:
            self.batch.add(self)

    def _unregister(self) -> None:
        if self.batch is not None:
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
        if not self.http.slots.acquire(blocking=False):
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
            held = False  # the piece's request releases the slot from here on
            self._run_counted(piece, slot_held=True)
            return self.error is None
        finally:
            if held:
                self.http.slots.release()

    def _fail(self, e: BaseException) -> None:
        with self.lock:
            # The first real error wins; a Stopped only fills an empty slot.
            if self.error is None or (isinstance(self.error, Stopped) and not isinstance(e, Stopped)):
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
            slot: _SlotLike = _Taken(self.http.slots) if held[0] else _Acquire(self.http.slots)
            held[0] = False
            self._attempt(piece, slot)

        try:
            self.http.retrying("GET", self.url, attempt, lambda: piece.pos, self._sleep)
        finally:
            if held[0]:
                self.http.slots.release()
        self._follow_hash()

    def _follow_hash(self) -> None:
        """Hash the bytes now contiguous after ``hashed``, from disk, holding no connection.

        Called as each segment ends: segments end at different times, so most of a segmented file
        is hashed while its last segments still stream, and _finish has little left to read.
        """
        st = self.state
        if st is None or not st.segmented or self.hashed < 0 or not self.hash_lock.acquire(blocking=False):
            return  # someone else is hashing: they will take these bytes too, or _finish will
        try:
            with self.lock:
                written = merge(st.done + [(p.start, p.pos) for p in self.pieces])
            end = next((b for a, b in written if a <= self.hashed < b), self.hashed)
            if end > self.hashed and self.hash_buf is None:
                self.hash_buf = bytearray(_HASH_BUF_BYTES)
            self.hashed = update_from_fd(self.hasher, self.fd, self.hashed, end, self.abort.is_set, self.hash_buf)
            if self.watch is not None:
                self.watch(self.hashed)  # under the lock: the watcher sees the prefix only grow
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
            raise Stopped()

    def _attempt(self, piece: _Piece, slot: _SlotLike) -> None:
        if self.abort.is_set() or (self.cancel is not None and self.cancel.is_set()):
            with slot:
                raise Stopped()
        headers = {"Range": f"bytes={piece.pos}-" + (str(piece.end - 1) if piece.end is not None else "")}
        st = self.state
        if st is not None and st.last_modified and not st.etag:
            headers["If-Range"] = str(st.last_modified)
        elif st is not None and st.etag and ":" not in st.etag:
            # A Hub file's validator is its sha256 (checked against the resolve answer instead);
            # any other ETag is the server's own, which If-Range understands.
            headers["If-Range"] = f'"{st.etag}"'
        with slot:
            try:
                piece.sent_at, piece.first_at = time.monotonic(), None
                answer = self.http.open("GET", self.url, headers, optional=self.optional, cancel=self.cancel)
                if answer is None:
                    raise Absent()
                with closing(answer.resp) as resp:
                    piece.first_pos, piece.first_at = piece.pos, time.monotonic()
                    if resp.status_code == 416:
                        self._on_416(piece, resp)
                        return
                    self._on_response(piece, resp, answer.resolved)
                    self._stream(piece, resp)
            except RETRY_EXCEPTIONS as e:
                raise Retryable(f"{type(e).__name__}: {e or 'no detail'} at byte {piece.pos}") from e
        if piece.end is not None and piece.pos < piece.end:
            raise Retryable(f"body ended at byte {piece.pos}, expected {piece.end}")
        total = self.state.size if self.state is not None else None
        if piece.end is None and total is not None and piece.pos < total:
            raise Retryable(f"body ended at byte {piece.pos} of {total}")

    def _on_416(self, piece: _Piece, resp: httpx.Response) -> None:
        """Range not satisfiable: fine only when there was nothing left to fetch (e.g. an empty file)."""
        total = parse_content_range(resp.headers.get("content-range"))[2]
        st = self.state
        if total is None or total != piece.pos or (st is not None and st.size not in (None, total)):
            raise Restart(f"HTTP 416 for bytes from {piece.pos} (remote size {total})")
        if st is None:
            self.state = PartState(self.url, total, clean_etag(resp.headers.get("etag")),
                                   resp.headers.get("last-modified"), None, segmented=False)
        piece.end = piece.pos

    def _on_response(self, piece: _Piece, resp: httpx.Response, resolved: Resolved | None) -> None:
        """Check a 200/206 against the part state; set up the state on the first response.

        For a Hub file the validator is the resolve answer's (sha256, size), whichever redirect
        target serves the bytes: a target's own ETag changes with the target, the sha256 does not.
        """
        hub_validator = resolved.validator if resolved is not None else None
        etag = hub_validator or clean_etag(resp.headers.get("etag"))
        last_modified = None if hub_validator else resp.headers.get("last-modified")
        if resp.status_code == 206:
            first, _, total = parse_content_range(resp.headers.get("content-range"))
            if first != piece.pos:
                got = resp.headers.get("content-range")
                raise Restart(f"asked for bytes from {piece.pos}, got Content-Range {got!r}")
        else:
            if resp.status_code != 200:
                raise TransferError(f"GET {self.url}: unexpected HTTP {resp.status_code}", self.url, resp.status_code)
            piece.end = None  # the whole body follows, whatever range was asked for
            length = resp.headers.get("content-length", "")
            total = int(length) if length.isdigit() else None
        if self.expected_size is not None and total is not None and total != self.expected_size:
            raise IntegrityError(f"GET {self.url}: remote size {total} bytes, expected {self.expected_size}")

        with self.lock:
            st = self.state
            if st is not None and resp.status_code == 206:
                size_changed = st.size is not None and total is not None and st.size != total
                if (st.etag and etag and st.etag != etag) or size_changed:
                    raise Restart("the remote file changed since the partial download started")
                return
            if st is not None and st.segmented:
                raise Restart("HTTP 200 to a range request (Range ignored or file changed)")
            if st is not None and piece.pos > 0:
                logger.info("GET %s: HTTP 200 to a resume request; restarting from byte 0", self.url)
                self.ctx.progress.advance(-piece.pos)
                os.ftruncate(self.fd, 0)
                piece.start = piece.pos = 0
                self._reset_hash()
            self.resumed = False
            segmented = (
                resp.status_code == 206 and total is not None and piece.start == 0 and len(self._plan(total)) > 1
            )
            fresh = st is None
            self.state = PartState(
                url=self.url, size=total, etag=etag, last_modified=last_modified,
                sha256=resolved.sha256 if resolved is not None else remote_sha256(resp), segmented=segmented,
            )
        if self.hashed < 0 and self._hashing():
            self._reset_hash()  # the remote publishes a sha256: check it (nothing was written yet)
        if fresh and self.expected_size is None and total is not None:
            add_total = getattr(self.ctx.progress, "add_total", None)
            if add_total is not None:
                add_total(total)
        if total is not None:
            try:
                check_free_space(self.part, total - piece.pos)
            except InsufficientSpaceError as e:
                raise InsufficientSpaceError(f"GET {self.url}: {e}") from None
        if segmented:
            assert total is not None
            preallocate(self.fd, total, f"GET {self.url}: {self.part}")
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

    def _digest(self, size: int) -> str | None:
        """sha256 of the finished part: the streamed prefix plus the rest read back from disk.

        None when the download does not hash (see ``hashed``).
        """
        with self.hash_lock:  # held throughout: the buffer is _follow_hash's too
            h, pos = self.hasher.copy(), self.hashed
            if pos < 0:
                return None
            if pos > size:  # cannot happen with the bytes checked above; be safe rather than wrong
                return sha256_fd(self.fd, size)
            update_from_fd(h, self.fd, pos, size, buf=self.hash_buf)
        return h.hexdigest()

    def _stream(self, piece: _Piece, resp: httpx.Response) -> None:
        """Write the body at ``piece.pos``, hashing what lands at ``hashed``; the per-chunk path.

        It runs for every chunk of every download, so it does only what the chunk needs: the
        piece lock only where a split can move ``piece.end`` (segmented downloads), and progress
        reported per MiB or per 0.1 s rather than per chunk.
        """
        st = self.state
        segmented = st is not None and st.segmented
        abort, cancel, fd, lock = self.abort, self.cancel, self.fd, self.lock
        advance = self.ctx.progress.advance
        pending, reported = 0, time.monotonic()

        def wanted() -> int | None:  # a split may move piece.end while the body streams
            end = piece.end
            return None if end is None else end - piece.pos

        try:
            for chunk in iter_body(resp, self.http.timeout_s, wanted=wanted, buffers=self.ctx.buffers):
                if abort.is_set() or (cancel is not None and cancel.is_set()):
                    raise Stopped()
                if not chunk:
                    continue  # a wake-up without data (a slow link): the checks above ran
                if segmented:
                    with lock:  # a concurrent split may move piece.end, never below piece.claimed
                        if piece.end is not None:
                            chunk = chunk[: max(0, piece.end - piece.pos)]
                        piece.claimed = piece.pos + len(chunk)
                elif piece.end is not None and piece.pos + len(chunk) > piece.end:
                    chunk = chunk[: max(0, piece.end - piece.pos)]
                at = piece.pos
                n = os.pwrite(fd, chunk, at)
                if n < len(chunk):
                    view = memoryview(chunk)
                    while n < len(chunk):
                        n += os.pwrite(fd, view[n:], at + n)
                piece.pos = at + n
                if self.hashed == at:  # unlocked pre-check; decided under the lock below
                    with self.hash_lock:
                        if self.hashed == at:
                            self.hasher.update(chunk)
                            self.hashed += n
                            if self.watch is not None:
                                self.watch(self.hashed)
                pending += n
                if pending >= _PROGRESS_BYTES:
                    advance(pending)
                    pending, reported = 0, time.monotonic()
                elif pending:
                    now = time.monotonic()
                    if now - reported >= _PROGRESS_INTERVAL_S:
                        advance(pending)
                        pending, reported = 0, now
                if segmented:
                    self._save()
                if piece.end is not None and piece.pos >= piece.end:
                    break
        finally:
            if pending:
                advance(pending)

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
                    st.done = merge(st.done + written)
            with self.lock:
                text = st.to_json()
            write_atomic(self.side, text)

    # -- verification and rename ------------------------------------------------------------

    def _finish(self) -> FetchResult:
        st = self.state
        if self.durable:
            os.fsync(self.fd)
        size = os.fstat(self.fd).st_size
        if st is not None and st.segmented:
            with self.lock:
                missing = gaps(st.done + [(p.start, p.pos) for p in self.pieces], size)
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
        unlink(self.side)
        if self.durable:
            fsync_dir(self.dest.parent)
        return FetchResult(self.url, self.dest, size, digest, resumed=self.resumed, skipped=False)
