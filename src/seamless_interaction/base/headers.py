"""Header-only readers: what an npz, a WAV or an MP4 holds, from a few of their bytes.

Each reader takes a ``read_at(offset, n) -> bytes`` callable over one file (a local file, or HTTP
Range reads of a tar member) and reads only headers: an npz's zip central directory and the npy
headers of chosen members (shapes and dtypes, no array bytes), a WAV's chunk headers, an MP4's
top-level box headers and the few boxes of its ``moov`` that give the video frame rate. Pure apart
from ``read_at``; the index batches the byte ranges these readers ask for.
"""

from __future__ import annotations

import ast
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from seamless_interaction.base.errors import IntegrityError

__all__ = [
    "EOCD_READ",
    "LOCAL_READ",
    "NpyHeader",
    "ZipMember",
    "mp4_top_boxes",
    "mp4_video_rate",
    "npy_header",
    "parse_npy",
    "zip_directory",
    "zip_local_data_offset",
]

ReadAt = Callable[[int, int], bytes]

# A savez_compressed npz of ~26 arrays has a ~3 KB central directory; this much of the tail
# usually holds it and the end record in one read.
EOCD_READ = 4096
# Local header (30 + name + extra) plus enough compressed bytes to inflate a 128-byte npy header.
LOCAL_READ = 512

_EOCD = struct.Struct("<4sHHHHIIH")
_CDIR = struct.Struct("<4sHHHHHHIIIHHHHHII")
_LOCAL = struct.Struct("<4sHHHHHIIIHH")


@dataclass(frozen=True)
class ZipMember:
    """One central-directory entry of a zip (offsets relative to the zip's first byte)."""

    name: str
    method: int
    compressed_size: int
    size: int
    local_offset: int


@dataclass(frozen=True)
class NpyHeader:
    shape: tuple[int, ...]
    dtype: str


def _eocd(tail: bytes, total_size: int, where: str) -> tuple[int, int, int]:
    pos = tail.rfind(b"PK\x05\x06")
    if pos < 0 or pos + _EOCD.size > len(tail):
        raise IntegrityError(f"{where}: no zip end record in the last {len(tail)} bytes; not an npz")
    _, _, _, _, count, cd_size, cd_off, _ = _EOCD.unpack_from(tail, pos)
    if cd_off == 0xFFFFFFFF or count == 0xFFFF:
        # zip64 end record: the locator sits just before the classic record
        loc = tail.rfind(b"PK\x06\x07", 0, pos)
        if loc < 0:
            raise IntegrityError(f"{where}: zip64 npz without a locator")
        (rec_off,) = struct.unpack_from("<Q", tail, loc + 8)
        rel = rec_off - (total_size - len(tail))
        if rel < 0:
            raise IntegrityError(f"{where}: zip64 end record outside the bytes read")
        count, cd_size, cd_off = struct.unpack_from("<QQQ", tail, rel + 32)
    if cd_off + cd_size > total_size:
        raise IntegrityError(f"{where}: central directory [{cd_off}, {cd_off + cd_size}) past the end ({total_size})")
    return count, cd_size, cd_off


def zip_directory(read_at: ReadAt, total_size: int, *, where: str = "npz", tail: bytes | None = None) -> list[ZipMember]:
    """The central directory of a zip of ``total_size`` bytes; ``tail`` may carry its last bytes already."""
    if total_size < _EOCD.size:
        raise IntegrityError(f"{where}: {total_size} bytes is too short for a zip")
    if tail is None:
        n = min(total_size, EOCD_READ)
        tail = read_at(total_size - n, n)
    count, cd_size, cd_off = _eocd(tail, total_size, where)
    tail_start = total_size - len(tail)
    if cd_off >= tail_start:
        cd = tail[cd_off - tail_start : cd_off - tail_start + cd_size]
    else:
        cd = read_at(cd_off, cd_size)
    out: list[ZipMember] = []
    p = 0
    for _ in range(count):
        if p + _CDIR.size > len(cd):
            raise IntegrityError(f"{where}: central directory ends early")
        (sig, _, _, flags, method, _, _, _, csize, size, name_len, extra_len, comment_len,
         _, _, _, local) = _CDIR.unpack_from(cd, p)
        if sig != b"PK\x01\x02":
            raise IntegrityError(f"{where}: bad central directory entry at {cd_off + p}")
        name = cd[p + _CDIR.size : p + _CDIR.size + name_len].decode("utf-8" if flags & 0x800 else "cp437")
        extra = cd[p + _CDIR.size + name_len : p + _CDIR.size + name_len + extra_len]
        if 0xFFFFFFFF in (csize, size, local):
            csize, size, local = _zip64_extra(extra, csize, size, local)
        out.append(ZipMember(name, method, csize, size, local))
        p += _CDIR.size + name_len + extra_len + comment_len
    return out


def _zip64_extra(extra: bytes, csize: int, size: int, local: int) -> tuple[int, int, int]:
    q = 0
    while q + 4 <= len(extra):
        tag, n = struct.unpack_from("<HH", extra, q)
        if tag == 1:
            vals = list(struct.unpack_from(f"<{n // 8}Q", extra, q + 4))
            if size == 0xFFFFFFFF and vals:
                size = vals.pop(0)
            if csize == 0xFFFFFFFF and vals:
                csize = vals.pop(0)
            if local == 0xFFFFFFFF and vals:
                local = vals.pop(0)
            break
        q += 4 + n
    return csize, size, local


def zip_local_data_offset(local: bytes, *, where: str = "npz") -> int:
    """Where a member's (compressed) bytes start, relative to its local header."""
    if len(local) < _LOCAL.size or local[:4] != b"PK\x03\x04":
        raise IntegrityError(f"{where}: bad zip local header")
    *_, name_len, extra_len = _LOCAL.unpack_from(local, 0)
    return _LOCAL.size + name_len + extra_len


def npy_header(local: bytes, method: int, *, where: str = "npz") -> NpyHeader | None:
    """Shape and dtype of the .npy member whose local header starts ``local``; None if more bytes are needed."""
    start = zip_local_data_offset(local, where=where)
    data = local[start:]
    if method == 8:
        try:
            data = zlib.decompressobj(-15).decompress(data, 1 << 16)
        except zlib.error as exc:
            raise IntegrityError(f"{where}: corrupt DEFLATE stream: {exc}") from None
    elif method != 0:
        raise IntegrityError(f"{where}: zip method {method} is neither stored nor DEFLATE")
    return parse_npy(data, where=where)


def parse_npy(data: bytes, *, where: str = "npy") -> NpyHeader | None:
    """Shape and dtype from the first bytes of a .npy file; None if more bytes are needed."""
    if len(data) < 10:
        return None
    if data[:6] != b"\x93NUMPY":
        raise IntegrityError(f"{where}: not a .npy array")
    if data[6] == 1:
        hlen, hstart = int.from_bytes(data[8:10], "little"), 10
    else:
        hlen, hstart = int.from_bytes(data[8:12], "little"), 12
    if len(data) < hstart + hlen:
        return None
    try:
        doc = ast.literal_eval(data[hstart : hstart + hlen].decode("latin1"))
        shape = tuple(int(x) for x in doc["shape"])
        dtype = str(doc["descr"])
    except (ValueError, SyntaxError, KeyError, TypeError) as exc:
        raise IntegrityError(f"{where}: unreadable .npy header: {exc}") from None
    return NpyHeader(shape, dtype)


# ------------------------------------------------------------------------------------------ mp4
_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}


def _box_header(buf: bytes, pos: int) -> tuple[bytes, int, int] | None:
    """(type, header length, box size) at ``pos``; size 0 means "to the end"."""
    if pos + 8 > len(buf):
        return None
    size, kind = struct.unpack_from(">I4s", buf, pos)
    if size == 1:
        if pos + 16 > len(buf):
            return None
        (size,) = struct.unpack_from(">Q", buf, pos + 8)
        return kind, 16, size
    return kind, 8, size


def mp4_top_boxes(read_at: ReadAt, total_size: int, *, head: bytes = b"", max_hops: int = 64) -> dict[bytes, tuple[int, int]]:
    """Top-level boxes as ``{type: (offset, size)}`` (first of each type), hopping header to header.

    ``head`` may carry the file's first bytes already; hops past it read 16 bytes each.
    """
    out: dict[bytes, tuple[int, int]] = {}
    pos = 0
    for _ in range(max_hops):
        if pos + 8 > total_size:
            break
        if pos + 16 <= len(head) or pos + 8 <= len(head) == total_size:
            hdr = head[pos : pos + 16]
        else:
            hdr = read_at(pos, min(16, total_size - pos))
        parsed = _box_header(hdr, 0)
        if parsed is None:
            break
        kind, hl, size = parsed
        if size == 0:
            size = total_size - pos
        if size < hl:
            break  # corrupt: a box smaller than its header
        out.setdefault(kind, (pos, size))
        pos += size
    return out


def mp4_video_rate(moov: bytes) -> float | None:
    """Frames per second of the first video track, from its ``mdhd`` timescale and ``stts`` deltas.

    None when the moov has no video track (placeholder MP4s) or the boxes needed are not in ``moov``
    (a prefix of the box is accepted: boxes are read until the bytes run out).
    """
    parsed = _box_header(moov, 0)
    if parsed is None or parsed[0] != b"moov":
        return None
    for trak_start, trak_end in _children(moov, parsed[1], min(len(moov), parsed[2]), b"trak"):
        mdia = _first(moov, trak_start, trak_end, b"mdia")
        if mdia is None:
            continue
        handler = _first(moov, *mdia, b"hdlr")
        if handler is None or moov[handler[0] + 8 : handler[0] + 12] != b"vide":
            continue
        mdhd = _first(moov, *mdia, b"mdhd")
        minf = _first(moov, *mdia, b"minf")
        stbl = _first(moov, *minf, b"stbl") if minf else None
        stts = _first(moov, *stbl, b"stts") if stbl else None
        if mdhd is None or stts is None:
            return None
        version = moov[mdhd[0]]
        timescale = struct.unpack_from(">I", moov, mdhd[0] + (20 if version == 1 else 12))[0]
        (count,) = struct.unpack_from(">I", moov, stts[0] + 4)
        if stts[0] + 8 + 8 * count > stts[1]:
            return None
        samples = total = 0
        for k in range(count):
            n, delta = struct.unpack_from(">II", moov, stts[0] + 8 + 8 * k)
            samples += n
            total += n * delta
        if not samples or not total or not timescale:
            return None
        return samples * timescale / total
    return None


def _children(buf: bytes, start: int, end: int, kind: bytes):
    pos = start
    while True:
        parsed = _box_header(buf, pos)
        if parsed is None or pos >= end:
            return
        k, hl, size = parsed
        if size == 0:
            size = end - pos
        if size < hl:
            return
        box_end = min(pos + size, end, len(buf))
        if k == kind:
            yield pos + hl, box_end
        pos += size


def _first(buf: bytes, start: int, end: int, kind: bytes) -> tuple[int, int] | None:
    """Payload span of the first child of type ``kind`` (full boxes: the payload starts at version)."""
    for span in _children(buf, start, end, kind):
        return span
    return None
