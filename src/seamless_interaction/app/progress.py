"""Download progress for the app: a thread-safe recorder of bytes and a text line with rate and time left.

:class:`Transfer` reports progress from its worker threads, which must not call Streamlit. The
recorder here only counts; the page's script thread polls :meth:`ProgressRecorder.snapshot` and draws
the bar (see ``views/download.py``). Kept free of Streamlit so the arithmetic is testable.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

__all__ = ["ProgressRecorder", "ProgressSnapshot", "format_bytes", "format_duration"]

# Rate is measured over this trailing window, so it reacts to stalls within a few seconds.
RATE_WINDOW_S = 3.0


@dataclass(frozen=True)
class ProgressSnapshot:
    desc: str
    done_bytes: int  # of the current phase (one fetch or one batch of fetches)
    total_bytes: int | None
    all_bytes: int  # over every phase since the recorder was made
    phases: int
    rate_bps: float
    elapsed_s: float
    finished: bool
    phase_closed: bool = False  # the transfer of this phase ended; post-processing (extraction) runs
    units_done: int = 0
    units_total: int | None = None  # items (file ids) when byte totals are unknown up front
    unit_name: str = "file ids"
    expected_bytes: int | None = None  # the whole operation's estimated bytes (HEADs of its big parts)

    @property
    def fraction(self) -> float | None:
        if self.expected_bytes:
            # Bytes move smoothly; items jump (a pair's two ids complete at the very end).
            by_bytes = min(0.99, self.all_bytes / self.expected_bytes) if not self.finished else 1.0
            by_units = self.units_done / self.units_total if self.units_total else 0.0
            return min(1.0, max(by_bytes, by_units))
        if self.units_total:
            return min(1.0, self.units_done / self.units_total)
        if not self.total_bytes:
            return None
        return min(1.0, self.done_bytes / self.total_bytes)

    @property
    def eta_s(self) -> float | None:
        if self.finished:
            return None
        if self.expected_bytes and self.rate_bps > 0:
            return max(0.0, (self.expected_bytes - self.all_bytes) / self.rate_bps)
        if self.units_total:
            # Byte totals of CDN parts are not known before they arrive: extrapolate from items done.
            f = self.fraction or 0.0
            return self.elapsed_s * (1 - f) / f if f > 0 else None
        if not self.total_bytes or self.rate_bps <= 0:
            return None
        return max(0.0, (self.total_bytes - self.done_bytes) / self.rate_bps)

    def text(self, *, with_desc: bool = True) -> str:
        """``"0003.tar: 12.0 MiB / 48.0 MiB · 6.1 MiB/s · 6.0 s left"`` (without the name: ``with_desc=False``)."""
        parts = []
        if self.units_total:
            parts.append(f"{self.units_done} of {self.units_total} {self.unit_name}")
            size = format_bytes(self.all_bytes)
            if self.expected_bytes:
                size += f" / ~{format_bytes(self.expected_bytes)}"
            parts.append(size)
        else:
            size = format_bytes(self.done_bytes)
            if self.total_bytes:
                size += f" / {format_bytes(self.total_bytes)}"
            parts.append(f"{self.desc}: {size}" if self.desc and with_desc else size)
        if self.rate_bps > 0:
            parts.append(f"{format_bytes(self.rate_bps)}/s")
        eta = self.eta_s
        if self.finished:
            parts.append(f"done in {format_duration(self.elapsed_s)}")
        elif self.phase_closed and not self.units_total:
            parts.append("verifying and extracting…")
        elif eta is not None:
            parts.append(f"{format_duration(eta)} left")
        return " · ".join(parts)


class ProgressRecorder:
    """Implements the :class:`~seamless_interaction.remote.transfer.Progress` protocol by counting bytes."""

    def __init__(self, clock=time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._t0 = clock()
        self._desc = ""
        self._total: int | None = None
        self._done = 0
        self._all = 0
        self._phases = 0
        self._finished = False
        self._closed = False
        self._units_done = 0
        self._units_total: int | None = None
        self._unit_name = "file ids"
        self._expected: int | None = None
        self._samples: deque[tuple[float, int]] = deque([(self._t0, 0)])

    def start(self, total_bytes: int | None, desc: str) -> None:
        with self._lock:
            self._desc, self._total, self._done = desc, total_bytes, 0
            self._phases += 1
            self._closed = False

    def advance(self, n: int) -> None:
        now = self._clock()
        with self._lock:
            self._done += n
            self._all += n
            self._samples.append((now, self._all))
            while len(self._samples) > 2 and now - self._samples[0][0] > RATE_WINDOW_S:
                self._samples.popleft()

    def close(self) -> None:
        # One phase ended; the operation may have more (or post-processing): finish() ends it.
        with self._lock:
            self._closed = True

    def expect_units(self, total: int, name: str = "file ids") -> None:
        """Measure completion in items (``unit_done``) instead of bytes."""
        with self._lock:
            self._units_total, self._unit_name = total, name

    def expect_bytes(self, total: int | None) -> None:
        """The operation's estimated total bytes, when its own phases do not know theirs."""
        with self._lock:
            self._expected = total or None

    def unit_done(self) -> None:
        with self._lock:
            self._units_done += 1

    def finish(self) -> None:
        with self._lock:
            self._finished = True

    def snapshot(self) -> ProgressSnapshot:
        now = self._clock()
        with self._lock:
            t_first, b_first = self._samples[0]
            span = now - t_first
            rate = (self._all - b_first) / span if span > 1e-3 else 0.0
            if self._finished:  # the average over the whole run, not the last window's
                elapsed = now - self._t0
                rate = self._all / elapsed if elapsed > 1e-3 else 0.0
            return ProgressSnapshot(self._desc, self._done, self._total, self._all, self._phases, rate,
                                    now - self._t0, self._finished, self._closed, self._units_done,
                                    self._units_total, self._unit_name, self._expected)


def format_bytes(n: float) -> str:
    """Binary units: ``1536 -> "1.5 KiB"``."""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def format_duration(seconds: float) -> str:
    """``75 -> "1 min 15 s"``, ``3 -> "3.0 s"``."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    if h:
        return f"{h} h {m} min"
    if m:
        return f"{m} min {sec} s"
    return f"{sec} s"
