"""One answer to a ``Range`` request header, for the two loopback servers (the app's media server and
the mirror), so that they answer every range alike (RFC 9110 section 14).

A single ``bytes=`` range is honoured (206); one that starts past the end, or a zero-length suffix, is
unsatisfiable (416 with ``Content-Range: bytes */size``); anything else (a multi-range, a unit other than
bytes, a last byte before the first, junk) is ignored and the whole file is sent (200), as RFC 9110 allows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["ByteRange", "answer_range"]

_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")


@dataclass(frozen=True)
class ByteRange:
    """What to send: ``status`` 200, 206 or 416, bytes ``[start, end]`` inclusive (``length`` of them), and
    the ``Content-Range`` header value (None for a 200)."""

    status: int
    start: int
    end: int
    size: int

    @property
    def length(self) -> int:
        return 0 if self.status == 416 else self.end - self.start + 1

    @property
    def content_range(self) -> str | None:
        if self.status == 416:
            return f"bytes */{self.size}"
        return f"bytes {self.start}-{self.end}/{self.size}" if self.status == 206 else None


def answer_range(spec: str | None, size: int) -> ByteRange:
    """The answer to ``Range: spec`` (None when the header is absent) for a file of ``size`` bytes."""
    whole = ByteRange(200, 0, size - 1, size)
    m = _RANGE_RE.match(spec.strip()) if spec else None
    if m is None or (not m.group(1) and not m.group(2)):
        return whole
    first, last = m.group(1), m.group(2)
    if not first:  # suffix range: the last n bytes
        n = int(last)
        if n == 0 or size == 0:
            return ByteRange(416, 0, -1, size)
        return ByteRange(206, max(0, size - n), size - 1, size)
    start = int(first)
    if last and int(last) < start:
        return whole
    if start >= size:
        return ByteRange(416, 0, -1, size)
    return ByteRange(206, start, min(int(last), size - 1) if last else size - 1, size)
