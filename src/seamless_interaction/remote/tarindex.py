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
from typing import TYPE_CHECKING, Any

from seamless_interaction.base.errors import IntegrityError, TransferError
from seamless_interaction.base.tarfmt import BLOCK, ReadAt, TarMember, iter_tar

if TYPE_CHECKING:
    from seamless_interaction.remote.transfer import Transfer

__all__ = ["TarIndex", "TarMember", "index_local", "index_remote", "index_cache_path", "DEFAULT_READAHEAD"]

logger = logging.getLogger(__name__)

# One Range request per hop reads this much: a PAX header (512), its records (512), the ustar header (512)
# and a small following member (a json is a few KB) with the headers after it. Real bodies are MBs.
DEFAULT_READAHEAD = 8 * 1024
_CACHE_VERSION = 1


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

    def to_json(self) -> dict[str, Any]:
        return {
            "version": _CACHE_VERSION,
            "url": self.url,
            "validator": self.validator,
            "total_size": self.total_size,
            "members": [[m.name, m.offset_data, m.size, m.header_offset, m.type] for m in self.members],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TarIndex:
        if data.get("version") != _CACHE_VERSION:
            raise ValueError(f"tar index version {data.get('version')!r}, expected {_CACHE_VERSION}")
        members = [TarMember(str(n), int(o), int(s), int(h), str(t)) for n, o, s, h, t in data["members"]]
        return cls(members, int(data["total_size"]), str(data["validator"]), str(data.get("url", "")))


def _walk(read_at: ReadAt, total_size: int, where: str) -> list[TarMember]:
    """Every member of a tar of ``total_size`` bytes; ``read_at(offset, n)`` returns exactly n bytes."""
    return list(iter_tar(read_at, where=where, total_size=total_size))


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
