"""Safe extraction of WebDataset archives into the local layout.

The official toolkit called ``tarfile.extractall`` on downloaded archives (path traversal, links and
devices all accepted) and treated an existing extraction folder as proof of completion, so a crash
mid-extraction was never repaired. Here every member is checked before anything is written, the whole
archive is extracted into a hidden staging folder first (a truncated tar fails there), files are then
moved into place one ``os.replace`` at a time, and completion is recorded separately.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tarfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from seamless_interaction.base.digest import sha256_file
from seamless_interaction.base.errors import IntegrityError, UnsafeArchiveError
from seamless_interaction.base.ids import ArchiveRef
from seamless_interaction.local import layout

__all__ = ["ExtractedMember", "check_member", "extraction_complete", "read_extraction_record", "safe_extract",
           "write_extraction_record"]

# Threads hashing extracted members while the next ones are copied (see safe_extract).
_HASH_THREADS = 2


@dataclass(frozen=True)
class ExtractedMember:
    name: str
    path: Path
    size: int
    sha256: str  # of the bytes written, hashed while they were copied


def check_member(member: tarfile.TarInfo, archive: str) -> str:
    """Return the member's safe relative name, or raise UnsafeArchiveError naming it."""
    name = member.name
    if not (member.isfile() or member.isdir()):
        kind = "link" if (member.issym() or member.islnk()) else "device or special file"
        raise UnsafeArchiveError(f"{archive}: member {name!r} is a {kind}; only regular files are allowed")
    p = PurePosixPath(name)
    if p.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchiveError(f"{archive}: member {name!r} has an absolute path")
    if any(part == ".." for part in p.parts) or "\\" in name:
        raise UnsafeArchiveError(f"{archive}: member {name!r} would escape the extraction folder")
    return str(p)


def safe_extract(tar_path: Path | str, dest_dir: Path | str) -> list[ExtractedMember]:
    """Extract every regular file of ``tar_path`` into ``dest_dir``; all or nothing for the members.

    Existing files in ``dest_dir`` (for example bundles fetched by the CDN route) are kept unless
    the archive holds a file of the same name, which then replaces it atomically.
    """
    tar_path, dest_dir = Path(tar_path), Path(dest_dir)
    dest_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = layout.staging_dir(dest_dir.parent, dest_dir.name, "extracting")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    extracted: list[tuple[str, int, Future[str]]] = []
    # The sha256 of each member (for the manifest) is taken from what landed on disk, hot in the page
    # cache, on other threads while the next members are copied: hashlib and the kernel copy both run
    # without the GIL, so on several cores the extraction costs little more than the copy.
    hashing = ThreadPoolExecutor(max_workers=_HASH_THREADS, thread_name_prefix="si-member-sha")
    try:
        try:
            with open(tar_path, "rb") as raw, tarfile.open(fileobj=raw, mode="r:") as tar:
                tar_fd = raw.fileno()
                for member in tar:  # streaming: each header is checked before its body is written
                    rel = check_member(member, str(tar_path))
                    if member.isdir():
                        continue
                    target = staging / rel
                    target.parent.mkdir(parents=True, exist_ok=True)
                    written = _copy_member(tar, member, tar_fd, target)
                    if written != member.size:
                        raise IntegrityError(f"{tar_path}: member {rel!r} is truncated "
                                             f"({written} of {member.size} bytes)")
                    extracted.append((rel, member.size, hashing.submit(sha256_file, target)))
        except (tarfile.TarError, EOFError) as exc:
            raise IntegrityError(f"{tar_path}: not a complete tar archive ({exc})") from exc
        digests = [(rel, size, sha.result()) for rel, size, sha in extracted]
        dest_dir.mkdir(parents=True, exist_ok=True)
        placed: list[ExtractedMember] = []
        for rel, size, digest in digests:
            final = layout.inside(dest_dir, dest_dir / rel)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / rel, final)
            placed.append(ExtractedMember(rel, final, size, digest))
        return placed
    finally:
        hashing.shutdown(wait=True, cancel_futures=True)  # no hash may still read the staging folder
        shutil.rmtree(staging, ignore_errors=True)


def _copy_member(tar: tarfile.TarFile, member: tarfile.TarInfo, tar_fd: int, target: Path) -> int:
    """Write a regular member's bytes to ``target``; the bytes written.

    A plain member's data sit contiguously at ``offset_data`` in the tar, so they are copied by
    the kernel (``copy_file_range``, then ``sendfile``) without passing through Python; sparse
    members, or a platform without either call, go through ``extractfile``.
    """
    with open(target, "wb") as out:
        if not member.issparse():
            out_fd, pos, left = out.fileno(), member.offset_data, member.size
            try:
                while left > 0:
                    n = _kernel_copy(tar_fd, out_fd, pos, left)
                    if n == 0:
                        break  # the tar ends early: the size check below reports it
                    pos += n
                    left -= n
                return member.size - left
            except OSError as exc:
                if (exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP)
                        or pos != member.offset_data):
                    raise
        src = tar.extractfile(member)
        assert src is not None
        with src:
            out.seek(0)
            out.truncate()
            shutil.copyfileobj(src, out, 1 << 20)
            return out.tell()


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
