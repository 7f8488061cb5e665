"""Safe extraction of WebDataset archives into the local layout.

The official toolkit called ``tarfile.extractall`` on downloaded archives (path traversal, links and
devices all accepted) and treated an existing extraction folder as proof of completion, so a crash
mid-extraction was never repaired. Here every member is checked before its bytes are written, the whole
archive is extracted into a hidden staging folder first (a truncated tar fails there), files are then
moved into place one ``os.replace`` at a time, and completion is recorded separately. Headers are read
by the package's one tar reader (:mod:`seamless_interaction.base.tarfmt`), and an archive being
downloaded can be extracted into staging as its bytes land (:class:`Extraction`).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from seamless_interaction.base.digest import sha256_file
from seamless_interaction.base.errors import IntegrityError, UnsafeArchiveError
from seamless_interaction.base.tarfmt import TarMember, iter_tar
from seamless_interaction.base.ids import ArchiveRef
from seamless_interaction.local import layout

__all__ = ["ExtractedMember", "Extraction", "check_member", "extraction_complete", "read_extraction_record",
           "safe_extract", "write_extraction_record"]

# Threads hashing extracted members while the next ones are copied (see safe_extract).
_HASH_THREADS = 2
# How far past a member's header the bytes must have landed before it is read (see Extraction.advance).
_LOOKAHEAD = 64 << 10


@dataclass(frozen=True)
class ExtractedMember:
    name: str
    path: Path
    size: int
    sha256: str  # of the bytes written, hashed while they were copied


def check_member(member: TarMember, archive: str) -> str:
    """Return the member's safe relative name, or raise UnsafeArchiveError naming it."""
    name = member.name
    if not (member.is_file or member.type == "5"):
        kind = "link" if member.type in ("1", "2") else "device or special file"
        raise UnsafeArchiveError(f"{archive}: member {name!r} is a {kind}; only regular files are allowed")
    if member.type == "S":
        raise UnsafeArchiveError(f"{archive}: member {name!r} is a GNU sparse file; only plain files are allowed")
    p = PurePosixPath(name)
    if p.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchiveError(f"{archive}: member {name!r} has an absolute path")
    if any(part == ".." for part in p.parts) or "\\" in name:
        raise UnsafeArchiveError(f"{archive}: member {name!r} would escape the extraction folder")
    if not p.parts or p.parts == (".",):
        raise UnsafeArchiveError(f"{archive}: member {name!r} has an empty name")
    return str(p)


class _NotYet(Exception):
    """The walk needs bytes of the archive that have not landed yet."""


@dataclass
class _Staged:
    size: int
    sha256: Future[str]


class Extraction:
    """One archive's safe extraction, fed as its bytes land on disk.

    :meth:`advance` checks and copies into a hidden staging folder every member whose bytes lie in
    the archive's prefix already on disk, so an archive being downloaded is mostly extracted by the
    time its last byte arrives; :meth:`commit`, called once the caller has verified the whole tar,
    extracts the rest and moves the members into place. Nothing reaches ``dest_dir`` before the
    commit, and an error or :meth:`abort` removes the staging folder. :func:`safe_extract` is the
    two in one.

    Not thread-safe: one thread at a time (the downloading route hands it from its follower thread
    to the one that commits).
    """

    def __init__(self, tar_path: Path | str, dest_dir: Path | str) -> None:
        self.tar_path, self.dest_dir = Path(tar_path), Path(dest_dir)
        self._where = str(self.tar_path)
        self._staging: Path | None = None
        self._staged: dict[str, _Staged] = {}
        self._hashing: ThreadPoolExecutor | None = None
        self._walk: Iterator[TarMember] | None = None
        self._fd, self._upto, self._final = -1, 0, False
        self._next = 0  # header offset of the next member
        self._skip = 0  # a restarted walk passes the members before this offset: they are staged
        self._held: tuple[TarMember, str] | None = None  # walked and checked, its body not yet on disk
        self._ended = False

    # The walk's reads: never past what has landed, unless this is the final pass over the whole tar.
    def _read_at(self, offset: int, n: int) -> bytes:
        if not self._final and offset + n > self._upto:
            raise _NotYet
        return os.pread(self._fd, n, offset)

    def advance(self, fd: int, upto: int, *, final: bool = False, stop: Callable[[], bool] | None = None) -> None:
        """Stage every member whose bytes lie in ``[0, upto)`` of ``fd``; with ``final``, every member.

        ``stop()`` is asked before each member: once true, the call returns, and a later call goes on.

        Raises:
            UnsafeArchiveError: a member that may not be extracted (nothing of the archive is placed).
            IntegrityError: not a tar, or truncated (checked with ``final``).
        """
        self._fd, self._upto, self._final = fd, upto, final
        while not self._ended and not (stop is not None and stop()):
            if self._held is None:
                # A header is read with its PAX record: wait until a generous slice past it has
                # landed rather than restart the walk for each header that straddles ``upto``.
                if not final and upto < self._next + _LOOKAHEAD:
                    return
                if self._walk is None:
                    self._walk = iter_tar(self._read_at, where=self._where)
                try:
                    member = next(self._walk)
                except _NotYet:  # the generator is spent: walk again later, passing what is staged
                    self._walk, self._skip = None, self._next
                    return
                except StopIteration:
                    self._ended = True
                    return
                if member.header_offset < self._skip:
                    continue
                self._next = member.next_header
                rel = check_member(member, self._where)
                if member.type == "5":
                    continue
                self._held = (member, rel)
            member, rel = self._held
            if not final and member.end > upto:
                return
            self._held = None
            self._stage(member, rel)

    def _stage(self, member: TarMember, rel: str) -> None:
        if self._staging is None:
            self.dest_dir.parent.mkdir(parents=True, exist_ok=True)
            self._staging = layout.staging_dir(self.dest_dir.parent, self.dest_dir.name, "extracting")
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging.mkdir()
            # The sha256 of each member (for the manifest) is taken from what landed on disk, hot in
            # the page cache, on other threads while the next members are copied: hashlib and the
            # kernel copy both run without the GIL.
            self._hashing = ThreadPoolExecutor(max_workers=_HASH_THREADS, thread_name_prefix="si-member-sha")
        assert self._hashing is not None
        earlier = self._staged.pop(rel, None)
        if earlier is not None:  # the same name twice: the later one wins, as with tar -x
            earlier.sha256.result()
        target = self._staging / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        written = _copy_range(self._fd, member.offset_data, member.size, target)
        if written != member.size:
            raise IntegrityError(f"{self._where}: member {rel!r} is truncated ({written} of {member.size} bytes)")
        self._staged[rel] = _Staged(member.size, self._hashing.submit(sha256_file, target))

    def commit(self, fd: int) -> list[ExtractedMember]:
        """Stage what is left of the whole tar in ``fd``, then move every member into ``dest_dir``.

        ``fd`` must hold the same bytes that earlier :meth:`advance` calls saw (the caller verified
        them); the staging folder is removed in any case.
        """
        try:
            self.advance(fd, os.fstat(fd).st_size, final=True)
            digests = [(rel, st.size, st.sha256.result()) for rel, st in self._staged.items()]
            self.dest_dir.mkdir(parents=True, exist_ok=True)
            placed: list[ExtractedMember] = []
            for rel, size, digest in digests:
                assert self._staging is not None
                final = layout.inside(self.dest_dir, self.dest_dir / rel)
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(self._staging / rel, final)
                placed.append(ExtractedMember(rel, final, size, digest))
            return placed
        finally:
            self.abort()

    @property
    def staged_bytes(self) -> int:
        return sum(st.size for st in self._staged.values())

    def abort(self) -> None:
        """Drop whatever was staged (idempotent)."""
        if self._hashing is not None:
            self._hashing.shutdown(wait=True, cancel_futures=True)  # no hash may still read the staging folder
            self._hashing = None
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None
        self._staged.clear()


def safe_extract(tar_path: Path | str, dest_dir: Path | str) -> list[ExtractedMember]:
    """Extract every regular file of ``tar_path`` into ``dest_dir``; all or nothing for the members.

    Existing files in ``dest_dir`` (for example bundles fetched by the CDN route) are kept unless
    the archive holds a file of the same name, which then replaces it atomically.
    """
    extraction = Extraction(tar_path, dest_dir)
    with open(tar_path, "rb") as raw:
        return extraction.commit(raw.fileno())


def _copy_range(src_fd: int, offset: int, size: int, target: Path) -> int:
    """Write bytes ``[offset, offset + size)`` of ``src_fd`` to ``target``; the bytes written.

    The kernel copies them (``copy_file_range``, then ``sendfile``) without passing through
    Python; where neither works, they go through ``pread``.
    """
    with open(target, "wb") as out:
        out_fd, pos, left = out.fileno(), offset, size
        try:
            while left > 0:
                n = _kernel_copy(src_fd, out_fd, pos, left)
                if n == 0:
                    break  # the tar ends early: the caller's size check reports it
                pos += n
                left -= n
            return size - left
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP) or pos != offset:
                raise
        while left > 0:
            block = os.pread(src_fd, min(left, 1 << 20), pos)
            if not block:
                break
            out.write(block)
            pos += len(block)
            left -= len(block)
        return size - left


def _kernel_copy(src_fd: int, dst_fd: int, offset: int, count: int) -> int:
    count = min(count, 1 << 30)
    if hasattr(os, "copy_file_range"):
        return os.copy_file_range(src_fd, dst_fd, count, offset)
    if hasattr(os, "sendfile"):
        return os.sendfile(dst_fd, src_fd, offset, count)
    raise OSError(errno.ENOSYS, "no kernel copy on this platform")


def write_extraction_record(local_dir: Path, ref: ArchiveRef, members: list[ExtractedMember], source: str,
                            sha256: str | None) -> Path:
    path = layout.inside(local_dir, layout.extraction_record(local_dir, ref))
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"source": source, "sha256": sha256, "time": time.time(),
           "members": {m.name: m.size for m in members}}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    os.replace(tmp, path)
    return path


def read_extraction_record(local_dir: Path, ref: ArchiveRef) -> dict[str, Any] | None:
    try:
        doc = json.loads(layout.extraction_record(local_dir, ref).read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def extraction_complete(local_dir: Path, dest_dir: Path, ref: ArchiveRef) -> bool:
    """True when a completion record exists and every member it lists is on disk at its size."""
    record = read_extraction_record(local_dir, ref)
    if not record:
        return False
    for name, size in record.get("members", {}).items():
        try:
            if (Path(dest_dir) / name).stat().st_size != size:
                return False
        except OSError:
            return False
    return True
