"""Tar headers: the one reader of ustar, PAX and GNU headers, for local files and Range reads alike.

The archives are WebDataset tars (FORMAT.md section 5): a PAX header before most members, GNU long
names possible, no central directory. :func:`iter_tar` hops from header to header through a
``read_at(offset, n)`` callback and yields one :class:`TarMember` per member, so the same code indexes
a local file (seek + read), a remote archive (one Range request per hop) and a sequential stream (the
loader, whose callback skips forward). Every header is checked (checksum, numeric fields, PAX records)
and anything that is not a tar raises :class:`~seamless_interaction.base.errors.IntegrityError` naming
the archive and the offset, never a bare ``ValueError``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from seamless_interaction.base.errors import IntegrityError

__all__ = ["BLOCK", "ReadAt", "TarMember", "iter_tar", "padded_size", "parse_pax", "tar_number"]

logger = logging.getLogger(__name__)

BLOCK = 512
# Called as read_at(offset, n): up to n bytes from offset; fewer only at the end of the archive.
ReadAt = Callable[[int, int], bytes]

_GNU_MAGIC = b"ustar  \x00"
_PAX_TYPES = (b"x", b"X")  # 'X' is the Solaris spelling of a per-member extended header
_GLOBAL_PAX = b"g"
_GNU_LONGNAME, _GNU_LONGLINK = b"L", b"K"
_EXTENDED = (*_PAX_TYPES, _GLOBAL_PAX, _GNU_LONGNAME, _GNU_LONGLINK)
# Types whose size field does not describe a body that follows (tarfile treats them the same way).
_NO_BODY_TYPES = (b"1", b"2", b"3", b"4", b"5", b"6")
# A PAX header larger than this is not one we would ever meet; refusing it bounds memory on garbage.
_MAX_EXTENDED = 1 << 20


@dataclass(frozen=True)
class TarMember:
    """One member: its final name (PAX/GNU overrides applied) and where its bytes are.

    ``header_offset`` is the first header block that belongs to the member (a PAX or GNU long-name header
    when there is one), like ``tarfile.TarInfo.offset``; ``offset_data`` is where the body starts.
    ``type`` is the one-character tar type flag (``"0"`` regular file, ``"5"`` directory, ...).
    """

    name: str
    offset_data: int
    size: int
    header_offset: int
    type: str = "0"

    @property
    def end(self) -> int:
        """One past the last body byte: the member is ``[offset_data, end)`` of the archive."""
        return self.offset_data + self.size

    @property
    def is_file(self) -> bool:
        return self.type in ("0", "7", "S")

    @property
    def next_header(self) -> int:
        """Offset of the header after this member (its body padded to whole blocks)."""
        return self.offset_data + (0 if self.type.encode("latin-1") in _NO_BODY_TYPES else padded_size(self.size))


def padded_size(size: int) -> int:
    """``size`` rounded up to whole 512-byte blocks."""
    return -(-size // BLOCK) * BLOCK


def _nts(raw: bytes) -> bytes:
    nul = raw.find(b"\x00")
    return raw if nul < 0 else raw[:nul]


def tar_number(raw: bytes) -> int:
    """A numeric header field: octal text, or base-256 (GNU) when the high bit of the first byte is set.

    Raises ValueError on a field that is neither (the caller names the archive).
    """
    if raw[:1] in (b"\x80", b"\xff"):
        n = int.from_bytes(raw[1:], "big")
        return n - 256 ** (len(raw) - 1) if raw[:1] == b"\xff" else n
    text = _nts(raw).decode("ascii").strip()
    return int(text, 8) if text else 0


def _checksum_ok(header: bytes) -> bool:
    try:
        stored = tar_number(header[148:156])
    except ValueError:
        return False
    unsigned = sum(header[:148]) + 256 + sum(header[156:])  # the checksum field itself counts as 8 spaces
    if stored == unsigned:
        return True
    # Some old tars summed signed chars; counted only when the common sum misses (it is the slow one).
    signed = unsigned - 256 * sum(1 for b in header[:148] + header[156:] if b > 127)
    return stored == signed


def _decode_name(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def parse_pax(data: bytes) -> dict[str, str]:
    """PAX records ``"<len> <key>=<value>\\n"``; ``len`` counts the whole record.

    Raises ValueError on a malformed record, including a zero or negative length (which would make a
    naive reader loop forever on the same record).
    """
    records: dict[str, str] = {}
    pos = 0
    while pos < len(data) and data[pos:pos + 1] != b"\x00":
        space = data.index(b" ", pos)
        length = int(data[pos:space])
        if length <= space - pos + 1 or pos + length > len(data):
            raise ValueError(f"bad PAX record length {length} at byte {pos}")
        key, eq, value = data[space + 1:pos + length - 1].partition(b"=")
        if not eq:
            raise ValueError(f"PAX record without '=' at byte {pos}")
        records[key.decode("utf-8")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return records


def _read_exact(read_at: ReadAt, offset: int, n: int, where: str, what: str) -> bytes:
    data = read_at(offset, n)
    if len(data) != n:
        raise IntegrityError(f"{where}: truncated tar: {what} at offset {offset} needs {n} bytes, "
                             f"got {len(data)}")
    return data


def iter_tar(read_at: ReadAt, *, where: str, total_size: int | None = None) -> Iterator[TarMember]:
    """Yield the members of a tar in archive order, reading headers only.

    ``read_at(offset, n)`` gives the archive's bytes; offsets only grow, so a sequential reader may skip
    forward to serve it, and a caller may read a member's body between two steps (the next header is read
    at ``member.next_header``). With ``total_size`` known, a member whose body runs past the end is an
    error here; without it the caller sees the short body when reading it. A missing end-of-archive
    marker is tolerated, as tarfile does.

    Raises:
        IntegrityError: a header with a bad checksum or unreadable field (not a tar, or corrupt), a
            malformed PAX record, or a truncated header or member.
    """
    global_pax: dict[str, str] = {}
    pending_pax: dict[str, str] = {}
    long_name: str | None = None
    first_header: int | None = None
    offset = 0
    while True:
        if total_size is not None and offset + BLOCK > total_size:
            if offset == 0:
                raise IntegrityError(f"{where}: {total_size} bytes, too short for a tar archive "
                                     "(truncated or not a tar)")
            if offset < total_size:
                raise IntegrityError(f"{where}: truncated tar header at offset {offset} "
                                     f"(archive is {total_size} bytes)")
            logger.debug("%s ends at %d without end-of-archive blocks", where, offset)
            return
        header = read_at(offset, BLOCK)
        if not header and total_size is None:
            if offset == 0:
                raise IntegrityError(f"{where}: empty file, not a tar archive")
            logger.debug("%s ends at %d without end-of-archive blocks", where, offset)
            return
        if len(header) != BLOCK:
            raise IntegrityError(f"{where}: truncated tar header at offset {offset} ({len(header)} of {BLOCK} bytes)")
        if header.count(0) == BLOCK:
            return  # end-of-archive marker
        if not _checksum_ok(header):
            raise IntegrityError(f"{where}: bad tar header checksum at offset {offset}; not a tar archive or corrupt")
        start = offset if first_header is None else first_header
        typeflag = header[156:157]
        try:
            size = tar_number(header[124:136])
        except ValueError:
            raise IntegrityError(f"{where}: unreadable size field in the tar header at offset {offset}") from None
        if size < 0:
            raise IntegrityError(f"{where}: negative size {size} in the tar header at offset {offset}")
        if typeflag in _EXTENDED:
            if size > _MAX_EXTENDED:
                raise IntegrityError(f"{where}: extended header of {size} bytes at offset {offset}; not a tar "
                                     "archive or corrupt")
            if total_size is not None and offset + BLOCK + size > total_size:
                raise IntegrityError(
                    f"{where}: truncated: extended header at offset {offset} needs {size} bytes past the end "
                    f"of the archive ({total_size} bytes)"
                )
            data = _read_exact(read_at, offset + BLOCK, size, where, "extended header")
            try:
                records = parse_pax(data) if typeflag in _PAX_TYPES or typeflag == _GLOBAL_PAX else {}
            except ValueError as e:
                raise IntegrityError(f"{where}: bad PAX header at offset {offset}: {e}") from None
            if typeflag == _GLOBAL_PAX:
                global_pax.update(records)
            else:
                if typeflag in _PAX_TYPES:
                    pending_pax.update(records)
                elif typeflag == _GNU_LONGNAME:
                    long_name = _decode_name(_nts(data))
                # A long link name is not kept (we keep names only), but the member starts here.
                first_header = start
            offset += BLOCK + padded_size(size)
            continue

        name = _decode_name(_nts(header[0:100]))
        prefix = _nts(header[345:500])
        if prefix and header[257:265] != _GNU_MAGIC:
            name = _decode_name(prefix) + "/" + name
        if long_name is not None:
            name = long_name
        pax = {**global_pax, **pending_pax}
        if "path" in pax:
            name = pax["path"]
        if "size" in pax:
            try:
                size = int(pax["size"])
            except ValueError:
                raise IntegrityError(f"{where}: bad PAX size {pax['size']!r} for member {name!r}") from None
            if size < 0:
                raise IntegrityError(f"{where}: negative PAX size {size} for member {name!r}")
        if typeflag == b"\x00" and name.endswith("/"):
            typeflag = b"5"  # old V7 directory spelling
        if typeflag == b"5":
            name = name.rstrip("/")
        kind = "0" if typeflag == b"\x00" else typeflag.decode("latin-1")
        member = TarMember(name, offset + BLOCK, size, start, kind)
        if total_size is not None and typeflag not in _NO_BODY_TYPES and size and member.end > total_size:
            raise IntegrityError(
                f"{where}: truncated archive: member {name!r} needs bytes [{member.offset_data}, {member.end}) "
                f"but the archive is {total_size} bytes"
            )
        pending_pax, long_name, first_header = {}, None, None
        yield member
        offset = member.next_header
