"""The one sha256-of-a-file: what the manifest records, ``verify --deep`` checks and the mirror serves.

Files are hashed in 4 MiB blocks read with ``pread`` (the descriptor's offset is left alone, so a file
being written through the same descriptor can be hashed in place).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

__all__ = ["HASH_CHUNK", "Hasher", "sha256_fd", "sha256_file", "update_from_fd"]

HASH_CHUNK = 4 << 20


class Hasher(Protocol):
    """What :func:`update_from_fd` feeds: a ``hashlib`` object."""

    def update(self, data: bytes | memoryview, /) -> None: ...


def update_from_fd(hasher: Hasher, fd: int, start: int, end: int, stop: Callable[[], bool] | None = None,
                   buf: bytearray | None = None) -> int:
    """Feed bytes ``[start, end)`` of ``fd`` to ``hasher``; returns the offset reached (``end``, or less
    at end of file or when ``stop()`` turned true between blocks).

    The bytes are read into ``buf`` (else one buffer for the call): a fresh ``bytes`` per block, as
    ``os.pread`` returns, cost a page fault per 4 KiB of every block read back (in ``bench_download``,
    a tenth of the transfer's CPU went to faulting in such buffers).
    """
    pos = start
    if pos >= end:
        return pos
    view = memoryview(buf if buf is not None else bytearray(min(HASH_CHUNK, end - pos)))
    while pos < end and not (stop is not None and stop()):
        n = _pread_into(fd, view[:min(len(view), end - pos)], pos)
        if not n:
            break
        hasher.update(view[:n])
        pos += n
    return pos


def _pread_into(fd: int, view: memoryview, pos: int) -> int:
    """Read into ``view`` at ``pos``; the bytes read."""
    if hasattr(os, "preadv"):
        return os.preadv(fd, [view], pos)
    data = os.pread(fd, len(view), pos)  # pragma: no cover - platforms without preadv (macOS before 11)
    view[:len(data)] = data  # pragma: no cover
    return len(data)  # pragma: no cover


def sha256_fd(fd: int, size: int) -> str:
    """Hex sha256 of the first ``size`` bytes of an open file descriptor (fewer if the file is shorter)."""
    h = hashlib.sha256()
    update_from_fd(h, fd, 0, size)
    return h.hexdigest()


def sha256_file(path: Path | str) -> str:
    """Hex sha256 of a whole file."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return sha256_fd(fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)
