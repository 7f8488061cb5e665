"""Disk side of a transfer: free space, hashing, fsync, the download lock and the part's sidecar.

A fetch streams into ``<dest>.part`` with a ``<dest>.part.json`` sidecar (:class:`PartState`) holding
the remote validator and, for segmented downloads, the byte ranges already on disk; ``<dest>.lock``
keeps two downloads of one file (threads or processes) from writing the same part.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import threading
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from seamless_interaction.base.errors import InsufficientSpaceError
from seamless_interaction.local import filelock
from seamless_interaction.base.digest import sha256_file  # the one file hash, re-exported for the engine
from seamless_interaction.remote.transfer.policy import CancelLike, Stopped


if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = [
    "FileLock",
    "PartState",
    "check_free_space",
    "fsync_dir",
    "gaps",
    "merge",
    "preallocate",
    "sha256_file",
    "unlink",
    "write_atomic",
]

logger = logging.getLogger(__name__)

_LOCK_POLL_S = 0.05


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


def fsync_dir(path: Path) -> None:
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


def unlink(*paths: Path) -> None:
    for p in paths:
        try:
            p.unlink()
        except FileNotFoundError:
            pass


def preallocate(fd: int, size: int, what: str) -> None:
    """Reserve ``size`` bytes for ``fd``; a sparse file where the filesystem cannot preallocate."""
    fallocate = getattr(os, "posix_fallocate", None)
    if fallocate is None:  # not on macOS or Windows
        os.ftruncate(fd, size)
        return
    try:
        fallocate(fd, 0, size)
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise InsufficientSpaceError(f"{what}: not enough free space for {size} bytes") from e
        os.ftruncate(fd, size)  # filesystem without fallocate: a sparse file will do


def merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, non-overlapping union of half-open byte ranges."""
    out: list[tuple[int, int]] = []
    for a, b in sorted(r for r in ranges if r[1] > r[0]):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def gaps(done: list[tuple[int, int]], size: int) -> list[tuple[int, int]]:
    """The ranges of ``[0, size)`` not covered by ``done``."""
    out, pos = [], 0
    for a, b in merge(done):
        if a > pos:
            out.append((pos, a))
        pos = max(pos, b)
    if pos < size:
        out.append((pos, size))
    return out


class FileLock:
    """Exclusive ``flock`` on ``path``; the file is removed on release.

    Removal happens while the lock is still held, so a waiter that then gets the lock on the
    removed inode notices (its inode no longer matches the path) and starts over.
    """

    def __init__(self, path: Path, cancel: CancelLike | None) -> None:
        self.path = path
        self.cancel = cancel
        self.fd: int | None = None
        self.waited = False  # another download held the lock first

    def __enter__(self) -> Self:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                # Without flock (Windows) a download takes no cross-process lock (local.filelock).
                while not filelock.lock(fd, blocking=False):
                    if self.cancel is not None and self.cancel.is_set():
                        raise Stopped() from None
                    if not self.waited:
                        logger.info("waiting for another download of %s", self.path.with_suffix(""))
                        self.waited = True
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
            unlink(self.path)
        finally:
            os.close(self.fd)
            self.fd = None


@dataclass
class PartState:
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
    def from_json(cls, text: str) -> PartState:
        d = json.loads(text)
        return cls(
            url=str(d["url"]), size=d["size"], etag=d["etag"], last_modified=d["last_modified"],
            sha256=d.get("sha256"), segmented=bool(d["segmented"]), done=[(int(a), int(b)) for a, b in d["done"]],
        )


def write_atomic(path: Path, text: str, *, shared: bool = False) -> None:
    """Replace ``path`` with ``text`` in one rename (a reader sees the old or the new file).

    ``shared``: other threads or processes may write the same file at once (a cache), so the temp
    name is unique to this writer; otherwise it is ``path`` + ``.tmp``, a name the layout knows
    (one owner writes a download's sidecar, under the download's lock).
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_native_id()}.tmp" if shared
                         else path.name + ".tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
