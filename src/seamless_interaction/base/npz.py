"""The one npz reader: lazy, row-ranged and fast, for files on disk, bytes in memory and member views.

The archives hold ``numpy.savez_compressed`` files (DEFLATE), the CDN route writes stored ones
(FORMAT.md section 6). :class:`NpzReader` reads headers first and only the rows or arrays asked for;
plain zips are parsed from their central directory and inflated in one C call per member (libdeflate
when the optional ``deflate`` package is installed), anything unusual goes through :mod:`zipfile`.
Every failure is an :class:`~seamless_interaction.base.errors.IntegrityError` naming the file.
"""

from __future__ import annotations

import io
import math
import re
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from seamless_interaction.base.errors import IntegrityError

_libdeflate: Any
try:  # optional: libdeflate (PyPI "deflate") inflates about 2x and checksums about 10x faster than zlib
    import deflate as _libdeflate
except ImportError:
    _libdeflate = None

__all__ = ["NpzReader", "Source", "open_source", "read_source"]

# A file given as a path, as its bytes, or as a callable opening a seekable binary file object.
Source = str | Path | bytes | Callable[[], IO[bytes]]


def read_source(src: Source) -> bytes:
    if isinstance(src, (bytes, bytearray, memoryview)):
        return bytes(src)
    if callable(src):
        with src() as fh:
            return fh.read()
    return Path(src).read_bytes()


def open_source(src: Source) -> IO[bytes]:
    if isinstance(src, (bytes, bytearray, memoryview)):
        return io.BytesIO(bytes(src))
    if callable(src):
        return src()
    return open(src, "rb")


# ------------------------------------------------------------------------------------------------ npz
@dataclass(frozen=True)
class _Member:
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran: bool
    compressed: bool
    data_offset: int | None  # absolute offset of the array bytes in the file (stored members only)


@dataclass(frozen=True)
class _ZipEntry:
    """One member as the central directory describes it (plain zip only: see :func:`_zip_entries`)."""

    name: str
    method: int  # 0 stored, 8 DEFLATE
    crc: int
    compressed_size: int
    size: int
    data_start: int  # offset of the member's (compressed) bytes in the archive


_EOCD = struct.Struct("<4sHHHHIIH")
_CDIR = struct.Struct("<4sHHHHHHIIIHHHHHII")
_LOCAL = struct.Struct("<4sHHHHHIIIHH")
_NPY_HEADER = re.compile(
    r"\{'descr': '([<>|=]?[a-zA-Z]\d*)', 'fortran_order': (True|False), 'shape': \(((?:\d+, ?)*\d*)\), *\} *\n?")


def _zip_entries(buf: bytes) -> dict[str, _ZipEntry] | None:
    """Members of a plain zip from its central directory, or None when anything is unusual.

    None (the caller then uses :mod:`zipfile`, which handles or rejects it) for: no end record,
    multi-disk or zip64 archives, encrypted members, members with a data descriptor (bit 3), methods
    other than stored/DEFLATE, duplicate names, or offsets outside the buffer. ``np.savez`` writes a
    zip64 extra into the *local* headers only; the central directory's sizes stay 32-bit and are
    what is used here, so those files take this path.
    """
    n = len(buf)
    pos = buf.rfind(b"PK\x05\x06", max(0, n - _EOCD.size - 0xFFFF))
    if pos < 0 or pos + _EOCD.size > n:
        return None
    _, disk, cd_disk, _, count, cd_size, cd_off, _ = _EOCD.unpack_from(buf, pos)
    if disk or cd_disk or count == 0xFFFF or cd_size == 0xFFFFFFFF or cd_off == 0xFFFFFFFF \
            or cd_off + cd_size > pos:
        return None
    out: dict[str, _ZipEntry] = {}
    p = cd_off
    for _ in range(count):
        if p + _CDIR.size > n:
            return None
        (sig, _, _, flags, method, _, _, crc, csize, size, name_len, extra_len, comment_len,
         _, _, _, local) = _CDIR.unpack_from(buf, p)
        if sig != b"PK\x01\x02" or flags & 0x9 or method not in (0, 8) or 0xFFFFFFFF in (csize, size, local):
            return None
        name = bytes(buf[p + _CDIR.size:p + _CDIR.size + name_len]).decode("utf-8" if flags & 0x800 else "cp437")
        p += _CDIR.size + name_len + extra_len + comment_len
        if local + _LOCAL.size > n or name in out:
            return None
        lsig, *_, lname_len, lextra_len = _LOCAL.unpack_from(buf, local)
        start = local + _LOCAL.size + lname_len + lextra_len
        if lsig != b"PK\x03\x04" or start + csize > n or (method == 0 and csize != size):
            return None
        out[name] = _ZipEntry(name, method, crc, csize, size, start)
    return out


def _parse_npy_header(data: bytes | bytearray | memoryview) -> tuple[tuple[int, ...], bool, np.dtype, int] | None:
    """``(shape, fortran, dtype, header_length)`` of a .npy prefix in the canonical form numpy writes,
    or None (the caller lets numpy parse it): other spellings, version 3 headers, structured or object
    dtypes. A regex instead of ``np.lib.format``'s ``ast``-based parse: that parse costs as much as
    inflating a small member."""
    if len(data) < 10 or bytes(data[:6]) != b"\x93NUMPY" or data[6] not in (1, 2):
        return None
    if data[6] == 1:
        hlen, start = int.from_bytes(data[8:10], "little"), 10
    else:
        hlen, start = int.from_bytes(data[8:12], "little"), 12
    if len(data) < start + hlen:
        return None
    m = _NPY_HEADER.fullmatch(bytes(data[start:start + hlen]).decode("latin1"))
    if m is None:
        return None
    dtype = np.dtype(m[1])
    if dtype.hasobject:
        return None
    shape = tuple(int(x) for x in m[3].replace(" ", "").split(",") if x)
    return shape, m[2] == "True", dtype, start + hlen


def _inflate(buf: bytes, e: _ZipEntry, where: str) -> bytes | bytearray | memoryview:
    """A member's bytes: one C call for DEFLATE (both backends release the GIL, so members inflate in
    parallel threads), a zero-copy view for stored members; the CRC-32 is checked either way."""
    raw = memoryview(buf)[e.data_start:e.data_start + e.compressed_size]
    data: bytes | bytearray | memoryview
    if e.method == 0:
        data = raw
    elif _libdeflate is not None:
        try:  # a bytearray: the array can use it in place
            data = _libdeflate.deflate_decompress(raw, e.size)
        except _libdeflate.DeflateError as exc:
            raise IntegrityError(f"{where}: member {e.name} does not inflate to {e.size} bytes ({exc})") from exc
    else:
        try:
            data = zlib.decompress(raw, -15, max(e.size, 1))
        except zlib.error as exc:
            raise IntegrityError(f"{where}: member {e.name} does not inflate ({exc})") from exc
    crc32 = zlib.crc32 if _libdeflate is None else _libdeflate.crc32
    if len(data) != e.size or crc32(data) != e.crc:
        raise IntegrityError(f"{where}: member {e.name} is corrupt (size or CRC-32 differs from the zip directory)")
    return data


def _decode_npy(data: bytes | bytearray | memoryview, where: str) -> np.ndarray:
    """An owned, writable array from a whole .npy (in place for a bytearray, else a copy); pickled
    (object) arrays are refused."""
    head = _parse_npy_header(data[:4096])
    if head is None:
        try:
            arr: np.ndarray = np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
            return arr
        except ValueError as exc:
            raise IntegrityError(f"{where}: {exc}") from exc
    shape, fortran, dtype, offset = head
    count = math.prod(shape)
    if len(data) != offset + count * dtype.itemsize:
        raise IntegrityError(f"{where}: {len(data) - offset} array bytes, header says {shape} of {dtype}")
    flat = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
    arr = flat.reshape(shape, order="F" if fortran else "C")
    return arr if isinstance(data, bytearray) else arr.copy(order="K")


class NpzReader:
    """Read npz arrays lazily: headers first, then only the rows asked for.

    Stored (uncompressed, the CDN route's ``np.savez``) members of an npz on disk are memory-mapped.
    DEFLATE members (``savez_compressed``, the archives) cannot be, so :meth:`rows` decompresses in
    a stream that stops after the last requested row, and :meth:`arrays` (whole arrays, the loader's
    path) inflates each member in one zlib call, optionally on a thread pool.
    """

    def __init__(self, source: Source, *, name: str = "npz"):
        self._src = source
        self._name = name
        self._members: dict[str, _Member] | None = None

    @property
    def members(self) -> dict[str, _Member]:
        if self._members is None:
            self._members = self._scan()
        return self._members

    def keys(self) -> list[str]:
        return list(self.members)

    def shape(self, key: str) -> tuple[int, ...]:
        return self._member(key).shape

    def _member(self, key: str) -> _Member:
        try:
            return self.members[key]
        except KeyError:
            raise KeyError(f"{self._name}: no array {key!r}; it has {sorted(self.members)}") from None

    def _held_bytes(self) -> bytes | None:
        """The npz when the source is already in memory (the streaming loader's case)."""
        return self._src if isinstance(self._src, bytes) else None

    def _scan(self) -> dict[str, _Member]:
        buf = self._held_bytes()
        fast = self._scan_buffer(buf) if buf is not None else None
        return fast if fast is not None else self._scan_zipfile()

    def _scan_buffer(self, buf: bytes) -> dict[str, _Member] | None:
        """Headers from the held bytes, inflating only each member's first block; None means unusual."""
        entries = _zip_entries(buf)
        if entries is None:
            return None
        out: dict[str, _Member] = {}
        for e in entries.values():
            if not e.name.endswith(".npy"):
                continue
            raw = memoryview(buf)[e.data_start:e.data_start + e.compressed_size]
            if e.method == 0:
                prefix: bytes | memoryview = raw[:4096]
            else:
                d, prefix, fed = zlib.decompressobj(-15), b"", 0
                try:  # feed small slices: a whole-member input would be copied into unconsumed_tail
                    while len(prefix) < 4096 and fed < len(raw):
                        prefix += d.decompress(raw[fed:fed + 4096], 4096 - len(prefix))
                        fed += 4096
                except zlib.error:
                    return None
            head = _parse_npy_header(prefix)
            if head is None:
                return None
            shape, fortran, dtype, hlen = head
            out[e.name[:-4]] = _Member(e.name, shape, dtype, fortran, e.method != 0,
                                       e.data_start + hlen if e.method == 0 else None)
        return out

    def _scan_zipfile(self) -> dict[str, _Member]:
        out: dict[str, _Member] = {}
        try:
            with open_source(self._src) as fh, zipfile.ZipFile(fh) as zf:
                for info in zf.infolist():
                    if not info.filename.endswith(".npy"):
                        continue
                    with zf.open(info) as member:
                        shape, fortran, dtype = _read_npy_header(member)
                        header_len = member.tell() if info.compress_type == zipfile.ZIP_STORED else None
                    offset = None
                    if header_len is not None:  # a stored member: its array bytes sit at a fixed offset
                        fh.seek(info.header_offset)
                        local = fh.read(30)
                        name_len = int.from_bytes(local[26:28], "little")
                        extra_len = int.from_bytes(local[28:30], "little")
                        offset = info.header_offset + 30 + name_len + extra_len + header_len
                    out[info.filename[:-4]] = _Member(info.filename, shape, dtype, fortran,
                                                      info.compress_type != zipfile.ZIP_STORED, offset)
        except (zipfile.BadZipFile, ValueError, EOFError, OSError, zlib.error) as exc:
            raise IntegrityError(f"{self._name}: not a readable npz ({exc})") from exc
        return out

    def rows(self, key: str, start: int | None = None, stop: int | None = None) -> np.ndarray:
        """Rows ``[start, stop)`` of one array (a copy the caller owns)."""
        m = self._member(key)
        n = m.shape[0] if m.shape else 1
        a = 0 if start is None else min(max(start, 0), n)
        b = n if stop is None else min(max(stop, a), n)
        if not m.shape or m.fortran or m.dtype.hasobject:
            return self._full(key)[a:b] if m.shape else self._full(key)
        row_shape = m.shape[1:]
        row_bytes = int(np.prod(row_shape, dtype=np.int64)) * m.dtype.itemsize
        if m.data_offset is not None and isinstance(self._src, (str, Path)):
            mm = np.memmap(self._src, dtype=m.dtype, mode="r", offset=m.data_offset, shape=m.shape)
            return np.array(mm[a:b])
        with open_source(self._src) as fh, zipfile.ZipFile(fh) as zf, zf.open(m.name) as member:
            _read_npy_header(member)
            _skip(member, a * row_bytes)
            raw = member.read((b - a) * row_bytes)
        if len(raw) != (b - a) * row_bytes:
            raise IntegrityError(f"{self._name}: array {key!r} is shorter than its header says")
        out: np.ndarray = np.frombuffer(raw, dtype=m.dtype).reshape((b - a, *row_shape)).copy()
        return out

    def arrays(self, keys: Iterable[str] | None = None, *, executor: Executor | None = None
               ) -> dict[str, np.ndarray]:
        """Whole arrays of ``keys`` (default all), each an owned writable copy: the loader's fast path.

        The npz is read once; with ``executor`` (a thread pool) members inflate concurrently, the
        largest first. Archives that are not plain zips (see :func:`_zip_entries`) go through
        :mod:`zipfile` instead.
        """
        return self.submit_arrays(keys, executor)()

    def submit_arrays(self, keys: Iterable[str] | None = None, executor: Executor | None = None
                      ) -> Callable[[], dict[str, np.ndarray]]:
        """Start :meth:`arrays` on ``executor`` and return the call that waits for it (and raises its
        errors), so a caller can read the next sample while this one inflates."""
        buf = self._held_bytes()
        if buf is None:
            wanted = self.keys() if keys is None else list(keys)
            members = [self._member(k) for k in wanted]
            if len(set(wanted)) < len(self.members):
                return lambda: self._arrays_zipfile(wanted, members)  # a subset of a file: do not read it all
            try:
                buf = read_source(self._src)
            except OSError as exc:
                raise IntegrityError(f"{self._name}: not a readable npz ({exc})") from exc
        entries = _zip_entries(buf)
        if entries is None:
            wanted = self.keys() if keys is None else list(keys)
            members = [self._member(k) for k in wanted]
            return lambda: self._arrays_zipfile(wanted, members)
        # The directory names the members: no header scan needed before inflating.
        names = [n for n in entries if n.endswith(".npy")]
        wanted = [n[:-4] for n in names] if keys is None else list(keys)
        missing = [k for k in wanted if k + ".npy" not in entries]
        if missing:
            raise KeyError(f"{self._name}: no array {missing[0]!r}; it has {sorted(n[:-4] for n in names)}")
        where = self._name

        def one(key: str) -> np.ndarray:
            name = key + ".npy"
            return _decode_npy(_inflate(buf, entries[name], where), f"{where}: {name}")

        if executor is None:
            return lambda: {key: one(key) for key in wanted}
        futures = {key: executor.submit(one, key)  # largest first: the pool's threads finish together
                   for key in sorted(set(wanted), key=lambda k: -entries[k + ".npy"].size)}
        return lambda: {key: futures[key].result() for key in wanted}

    def _arrays_zipfile(self, wanted: list[str], members: list[_Member]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        try:
            with open_source(self._src) as fh, zipfile.ZipFile(fh) as zf:
                for key, m in zip(wanted, members):
                    with zf.open(m.name) as member:
                        out[key] = np.lib.format.read_array(member, allow_pickle=False)
        except (zipfile.BadZipFile, ValueError, EOFError, OSError, zlib.error) as exc:
            raise IntegrityError(f"{self._name}: not a readable npz ({exc})") from exc
        return out

    def _full(self, key: str) -> np.ndarray:
        try:
            with open_source(self._src) as fh, np.load(fh, allow_pickle=False) as npz:
                arr: np.ndarray = npz[key]
                return arr
        except (zipfile.BadZipFile, ValueError, EOFError, OSError, zlib.error) as exc:
            raise IntegrityError(f"{self._name}: array {key!r} is not readable ({exc})") from exc


def _read_npy_header(fh: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype]:
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(fh)
    return np.lib.format.read_array_header_2_0(fh)


def _skip(fh: IO[bytes], n: int) -> None:
    while n > 0:
        chunk = fh.read(min(n, 1 << 22))
        if not chunk:
            return
        n -= len(chunk)
