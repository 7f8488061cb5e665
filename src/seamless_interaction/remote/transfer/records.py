"""What the transfer engine takes and gives back: jobs, remote metadata, results, progress."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

__all__ = ["FetchResult", "Job", "NullProgress", "Progress", "RemoteInfo", "TqdmProgress"]


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
    """A file now complete at ``path``. ``skipped``: it already was; ``resumed``: an earlier run's part was reused.

    For an in-memory :class:`Job` (no ``dest``), ``path`` is None and ``data`` holds the bytes.
    ``sha256`` is None for a job with ``digest=False`` whose remote published no sha256.
    """

    url: str
    path: Path | None
    size: int
    sha256: str | None
    resumed: bool
    skipped: bool
    data: bytes | None = None


@dataclass(frozen=True)
class Job:
    """One file for :meth:`Transfer.fetch_many`.

    ``dest=None`` fetches into memory (``FetchResult.data``): for small objects that are consumed
    at once, with no part file, lock, sidecar or fsync (and so no resume across runs).
    ``digest=False`` skips the sha256 of the bytes unless there is one to check (``sha256`` or
    the remote's): a CDN object has none, and hashing it would verify nothing. ``durable=False``
    skips the fsync before the rename, for a file consumed and removed right after (a tar to
    extract): whether it is whole is then settled by its size and sha256, not by the flush.
    ``watch(n)``, when given, is called as the prefix of the part file that is on disk and hashed
    grows to ``n`` bytes (from any download thread; keep it cheap), and with a smaller ``n`` when
    the download starts over: a consumer may read that prefix while the rest still arrives.
    """

    url: str
    dest: Path | None
    expected_size: int | None = None
    sha256: str | None = None
    optional: bool = False
    digest: bool = True
    durable: bool = True
    watch: Callable[[int], None] | None = None


class Progress(Protocol):
    """Byte progress of a fetch or a batch. Called from several threads."""

    def start(self, total_bytes: int | None, desc: str) -> None: ...

    def advance(self, n: int) -> None: ...

    def close(self) -> None: ...


class NullProgress:
    """Progress that shows nothing."""

    def start(self, total_bytes: int | None, desc: str) -> None:
        pass

    def add_total(self, n: int) -> None:
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
        # tqdm.auto picks the notebook widget inside Jupyter, and imports asyncio to do so (~20 ms of
        # every command's start-up); a terminal gets the plain bar either way.
        if "ipykernel" in sys.modules:
            from tqdm.auto import tqdm
        else:
            from tqdm.std import tqdm

        with self._lock:
            self._depth += 1
            if self._bar is None:
                self._bar = tqdm(
                    total=total_bytes, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
                    disable=self._disable, dynamic_ncols=True, smoothing=0.1,
                )
            elif total_bytes:  # a nested start (one archive of several) grows the one bar's total
                self._bar.total = (self._bar.total or 0) + total_bytes  # type: ignore[attr-defined]
                self._bar.refresh()  # type: ignore[attr-defined]

    def add_total(self, n: int) -> None:
        """Grow the total by a file whose size became known while the bar runs (a CDN response).

        Optional in the :class:`Progress` protocol: the engine calls it where a progress has it,
        so that the bar shows a total and the time left even when no size was known up front.
        """
        with self._lock:
            if self._bar is not None and n > 0:
                self._bar.total = (self._bar.total or 0) + n  # type: ignore[attr-defined]

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
