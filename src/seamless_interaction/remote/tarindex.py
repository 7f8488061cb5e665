"""Member index of a tar archive, local or remote: where each member's bytes sit, without reading them.

A tar has no central directory, so the index is built by hopping from header to header: read a 512-byte
header, skip ``ceil(size / 512)`` blocks of body, read the next header. Over HTTP every hop is one Range
request of a few KB (the read-ahead batches a PAX header, its ustar header and any small member that
follows), so indexing a 1 GB Hub archive of ~40 members costs ~40 small requests and ~0.3 MB.

:class:`TarIndex` is the reusable product: ``members`` in archive order, each a :class:`TarMember` with
``offset_data`` and ``size``. A reader of a remote shard (``members.fetch_members``, or a streaming loader)
fetches ``[m.offset_data, m.end)`` of ``index.url`` (or of ``index.read_url``, the redirect target resolved
when the index was loaded in this process) to get exactly one member's bytes. Remote indexes are cached as
JSON keyed by URL and validator (ETag, or size when there is none), so a re-uploaded archive is re-indexed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from seamless_interaction.base.errors import IntegrityError, TransferError

if TYPE_CHECKING:
    from seamless_interaction.remote.transfer import Transfer

__all__ = ["TarIndex", "TarMember", "index_local", "index_remote", "index_cache_path", "DEFAULT_READAHEAD"]

logger = logging.getLogger(__name__)

BLOCK = 512
# One Range request per hop reads this much: a PAX header (512), its records (512), the ustar header (512)
# and a small following member (a json is a few KB) with the headers after it. Real bodies are MBs.
DEFAULT_READAHEAD = 8 * 1024
_CACHE_VERSION = 1
_GNU_MAGIC = b"ustar  \x00"
_PAX_TYPES = (b"x", b"X")  # 'X' is the Solaris spelling of a per-member extended header
_GLOBAL_PAX = b"g"
_GNU_LONGNAME, _GNU_LONGLINK = b"L", b"K"
_REGULAR_TYPES = (b"0", b"\x00", b"7", b"S")
# Types whose size field does not describe a body that follows (tarfile treats them the same way).
_NO_BODY_TYPES = (b"1", b"2", b"3", b"4", b"5", b"6")


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


@dataclass
class TarIndex:
    """The members of one tar archive, in archive order.

    ``validator`` identifies the exact bytes that were indexed (``etag:...`` or ``size:...`` remotely,
    ``size:...;mtime_ns:...`` locally). ``url`` is the archive's URL or local path. ``read_url`` is where its
    bytes were read from in this process (the redirect target of a Hub resolve URL); it is not cached
    because CDN redirect targets expire. ``header_bytes`` counts bytes read to build it (0 from cache).
    """

    members: list[TarMember]
    total_size: int
    validator: str
    url: str = ""
    read_url: str | None = field(default=None, compare=False)
    header_bytes: int = field(default=0, compare=False)

    def by_name(self) -> dict[str, TarMember]:
        return {m.name: m for m in self.members}

    def files(self) -> list[TarMember]:
        return [m for m in self.members if m.is_file]

    def to_json(self) -> dict:
        return {
            "version": _CACHE_VERSION,
            "url": self.url,
            "validator": self.validator,
            "total_size": self.total_size,
            "members": [[m.name, m.offset_data, m.size, m.header_offset, m.type] for m in self.members],
        }

    @classmethod
    def from_json(cls, data: dict) -> TarIndex:
        if data.get("version") != _CACHE_VERSION:
            raise ValueError(f"tar index version {data.get('version')!r}, expected {_CACHE_VERSION}")
        members = [TarMember(str(n), int(o), int(s), int(h), str(t)) for n, o, s, h, t in data["members"]]
        return cls(members, int(data["total_size"]), str(data["validator"]), str(data.get("url", "")))


# ---------------------------------------------------------------------------------------------------------
# header parsing (pure)


def _nts(raw: bytes) -> bytes:
    nul = raw.find(b"\x00")
    return raw if nul < 0 else raw[:nul]


def _number(raw: bytes) -> int:
    """A numeric header field: octal text, or base-256 (GNU) when the high bit of the first byte is set."""
    if raw[:1] in (b"\x80", b"\xff"):
        n = int.from_bytes(raw[1:], "big")
        return n - 256 ** (len(raw) - 1) if raw[:1] == b"\xff" else n
    text = _nts(raw).decode("ascii").strip()
    return int(text, 8) if text else 0


def _checksum_ok(header: bytes) -> bool:
    try:
        stored = _number(header[148:156])
    except ValueError:
        return False
    unsigned = sum(header[:148]) + 256 + sum(header[156:])  # the checksum field itself counts as 8 spaces
    signed = unsigned - 256 * sum(1 for b in header[:148] + header[156:] if b > 127)
    return stored in (unsigned, signed)


def _decode_name(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _parse_pax(data: bytes) -> dict[str, str]:
    """PAX records ``"<len> <key>=<value>\\n"``; ``len`` counts the whole record."""
    records: dict[str, str] = {}
    pos = 0
    while pos < len(data) and data[pos:pos + 1] not in (b"", b"\x00"):
        space = data.index(b" ", pos)
        length = int(data[pos:space])
        if length <= 0:
            raise ValueError(f"bad PAX record length {length}")
        key, _, value = data[space + 1:pos + length - 1].partition(b"=")
        records[key.decode("utf-8")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return records


def _blocks(size: int) -> int:
    return -(-size // BLOCK) * BLOCK


ReadAt = Callable[[int, int], bytes]


def _walk(read_at: ReadAt, total_size: int, where: str) -> list[TarMember]:
    """Hop through the headers of a tar of ``total_size`` bytes; ``read_at(offset, n)`` returns bytes."""
    members: list[TarMember] = []
    global_pax: dict[str, str] = {}
    pending_pax: dict[str, str] = {}
    long_name: str | None = None
    first_header: int | None = None
    offset = 0
    while True:
        if offset + BLOCK > total_size:
            if offset < total_size:
                raise IntegrityError(f"{where}: truncated tar header at offset {offset} (archive is {total_size} bytes)")
            # Missing end-of-archive blocks: tolerated, as tarfile does.
            logger.debug("%s ends at %d without end-of-archive blocks", where, offset)
            break
        header = read_at(offset, BLOCK)
        if header.count(0) == BLOCK:
            break  # end-of-archive marker
        if not _checksum_ok(header):
            raise IntegrityError(f"{where}: bad tar header checksum at offset {offset}; not a tar archive or corrupt")
        start = offset if first_header is None else first_header
        typeflag = header[156:157]
        try:
            size = _number(header[124:136])
        except ValueError:
            raise IntegrityError(f"{where}: unreadable size field in the tar header at offset {offset}") from None
        if typeflag in _PAX_TYPES or typeflag == _GLOBAL_PAX or typeflag in (_GNU_LONGNAME, _GNU_LONGLINK):
            if offset + BLOCK + size > total_size:
                raise IntegrityError(
                    f"{where}: truncated: extended header at offset {offset} needs {size} bytes past the end "
                    f"of the archive ({total_size} bytes)"
                )
            data = read_at(offset + BLOCK, size)
            try:
                records = _parse_pax(data) if typeflag in _PAX_TYPES or typeflag == _GLOBAL_PAX else {}
            except ValueError as e:
                raise IntegrityError(f"{where}: bad PAX header at offset {offset}: {e}") from None
            if typeflag == _GLOBAL_PAX:
                global_pax.update(records)
            elif typeflag in _PAX_TYPES:
                pending_pax.update(records)
                first_header = start
            elif typeflag == _GNU_LONGNAME:
                long_name = _decode_name(_nts(data))
                first_header = start
            else:
                first_header = start  # long link name: we keep names only, but the member starts here
            offset += BLOCK + _blocks(size)
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
        if typeflag == b"\x00" and name.endswith("/"):
            typeflag = b"5"  # old V7 directory spelling
        if typeflag == b"5":
            name = name.rstrip("/")
        kind = "0" if typeflag == b"\x00" else typeflag.decode("latin-1")
        member = TarMember(name, offset + BLOCK, size, start, kind)
        body = 0 if typeflag in _NO_BODY_TYPES else _blocks(size)
        if body and member.end > total_size:
            raise IntegrityError(
                f"{where}: truncated archive: member {name!r} needs bytes [{member.offset_data}, {member.end}) "
                f"but the archive is {total_size} bytes"
            )
        members.append(member)
        pending_pax, long_name, first_header = {}, None, None
        offset += BLOCK + body
    return members


# ---------------------------------------------------------------------------------------------------------
# local


def index_local(path: Path | str) -> TarIndex:
    """Index a local tar file; the listing equals ``tarfile.open(path).getmembers()``."""
    path = Path(path)
    st = path.stat()
    with open(path, "rb") as f:
        def read_at(offset: int, n: int) -> bytes:
            f.seek(offset)
            data = f.read(n)
            if len(data) != n:
                raise IntegrityError(f"{path}: short read of {n} bytes at offset {offset}")
            return data

        members = _walk(read_at, st.st_size, str(path))
    return TarIndex(members, st.st_size, f"size:{st.st_size};mtime_ns:{st.st_mtime_ns}", str(path))


# ---------------------------------------------------------------------------------------------------------
# remote


class _RangeReader:
    """Serves small reads from one read-ahead buffer, refilled by one Range request when a read misses it."""

    def __init__(self, transfer: Transfer, url: str, total_size: int, readahead: int, where: str):
        self._transfer = transfer
        self._url = url
        self._total = total_size
        self._readahead = readahead
        self._where = where
        self._start = 0
        self._buf = b""
        self.bytes_read = 0
        self.requests = 0

    def __call__(self, offset: int, n: int) -> bytes:
        rel = offset - self._start
        if rel < 0 or rel + n > len(self._buf):
            end = min(self._total, offset + max(n, self._readahead))
            data = self._transfer.fetch_bytes(self._url, start=offset, end=end)
            if data is None:
                raise TransferError(f"{self._where}: archive disappeared while indexing", url=self._where)
            self.bytes_read += len(data)
            self.requests += 1
            if len(data) != end - offset:
                raise IntegrityError(
                    f"{self._where}: asked for bytes [{offset}, {end}) and got {len(data)} bytes; "
                    "the archive is shorter than its size or the server ignored the Range header"
                )
            self._start, self._buf, rel = offset, data, 0
        return self._buf[rel:rel + n]


def index_cache_path(cache_dir: Path | str, url: str) -> Path:
    """Where the cached index of ``url`` lives: ``cache_dir/tar-index/<sha256(url)[:32]>.json``."""
    return Path(cache_dir) / "tar-index" / f"{hashlib.sha256(url.encode()).hexdigest()[:32]}.json"


def _load_cached(path: Path, url: str, validator: str) -> TarIndex | None:
    try:
        data = json.loads(path.read_text())
        index = TarIndex.from_json(data)
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as e:
        logger.warning("ignoring unreadable tar index cache %s: %s", path, e)
        return None
    if index.url != url or index.validator != validator:
        logger.info("remote archive changed (%s -> %s); re-indexing %s", index.validator, validator, url)
        return None
    return index


def _store_cached(path: Path, index: TarIndex) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(index.to_json(), f, separators=(",", ":"))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _validator(size: int, etag: str | None, sha256: str | None) -> str:
    # sha256 + size first: a Hub file's redirect target (and its ETag) changes, its sha256 does not.
    if sha256:
        return f"sha256:{sha256};size:{size}"
    if etag:
        return f"etag:{etag.strip()};size:{size}"
    return f"size:{size}"


def index_remote(
    transfer: Transfer,
    url: str,
    *,
    cache_dir: Path | str | None = None,
    readahead: int = DEFAULT_READAHEAD,
) -> TarIndex:
    """Index a remote tar with HTTP Range reads of its headers only; cached under ``cache_dir`` when given.

    The engine's ``head`` gives size and sha256 (from the Hub's listing, else one resolve); a cached index
    with the same URL and validator (sha256 + size) is returned as is, otherwise the headers are read.

    >>> index = index_remote(transfer, hub_archive_url(hf_url, "improvised", "dev", 0, 0), cache_dir=cache)
    >>> [m.name for m in index.files()][:2]
    ['V00_S0809_I00000309_P0947.json', 'V00_S0809_I00000309_P0947.mp4']

    Raises:
        TransferError: the archive cannot be reached or has no known size.
        IntegrityError: the archive is truncated (a header points past its end) or is not a tar.
    """
    info = transfer.head(url)
    if info is None or info.size is None:
        raise TransferError(f"{url}: no size known for the archive (HEAD gave no Content-Length)", url=url)
    # Reads go to the URL itself: the engine resolves a Hub URL once, shares the target, and
    # resolves again when a signed target expires mid-read.
    read_url = url
    validator = _validator(int(info.size), info.etag, info.sha256)
    cache_path = index_cache_path(cache_dir, url) if cache_dir is not None else None
    if cache_path is not None:
        cached = _load_cached(cache_path, url, validator)
        if cached is not None:
            cached.read_url = read_url
            return cached
    reader = _RangeReader(transfer, read_url, int(info.size), max(readahead, BLOCK), url)
    members = _walk(reader, int(info.size), url)
    index = TarIndex(members, int(info.size), validator, url, read_url=read_url, header_bytes=reader.bytes_read)
    logger.debug("indexed %s: %d members, %d requests, %d bytes", url, len(members), reader.requests, reader.bytes_read)
    if cache_path is not None:
        _store_cached(cache_path, index)
    return index
