"""Advisory file locks (``flock``) where the platform has them.

``fcntl`` exists on Linux and macOS only. Elsewhere the locks are no-ops: one process stays safe (its own
threads are serialised by the callers' thread locks), but two processes writing into the same dataset
folder at once are then not coordinated (README, "Supported platforms").
"""

from __future__ import annotations

import logging
import os
from typing import IO, Any

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["HAVE_FLOCK", "held", "lock", "unlock"]

logger = logging.getLogger(__name__)

HAVE_FLOCK = fcntl is not None


def lock(f: IO[Any] | int, *, shared: bool = False, blocking: bool = True) -> bool:
    """Lock the open file ``f``; False when ``blocking=False`` and another holder has it.

    Where flock is missing this always succeeds.
    """
    if fcntl is None:
        return True
    flags = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    if not blocking:
        flags |= fcntl.LOCK_NB
    try:
        fcntl.flock(f, flags)
    except BlockingIOError:
        return False
    return True


def unlock(f: IO[Any] | int) -> None:
    if fcntl is not None:
        fcntl.flock(f, fcntl.LOCK_UN)


def held(path: str | Any) -> bool:
    """Whether some process holds an exclusive lock on the file at ``path`` (False without flock)."""
    if fcntl is None:
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        return not lock(fd, blocking=False)
    finally:
        os.close(fd)  # closing drops our lock, if we got it
