"""Fetch selected members of the Hub's archives (e.g. only the npz+json features) with HTTP Range reads.

A Hub archive is ~1 GB holding 4-11 file ids, and npz features are ~8% of its bytes. Here an archive's
:class:`~seamless_interaction.remote.tarindex.TarIndex` says where each member's bytes sit, :func:`plan_members`
picks the members, and :func:`fetch_members` reads just those byte ranges into the standard local layout
(``layout.archive_dir``), the same place whole-archive extraction puts them. Nearby members are read with
one merged request, big members in concurrent chunks; every file is written under a temp name, checked
against the size in its tar header, then renamed into place.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from seamless_interaction.base.errors import (
    IntegrityError,
    MissingPartError,
    TransferError,
    UnsafeArchiveError,
)
from seamless_interaction.constants import BUNDLE_EXTENSIONS
from seamless_interaction.local.layout import TMP_SUFFIX, archive_dir
from seamless_interaction.remote.tarindex import (
    TarIndex,
    TarMember,
    _validator,
    index_remote,
)
from seamless_interaction.remote.urls import hub_archive_url

if TYPE_CHECKING:
    from seamless_interaction.catalog.tables import Catalog
    from seamless_interaction.local.manifest import Manifest
    from seamless_interaction.remote.transfer import Transfer

__all__ = [
    "DEFAULT_MODALITIES",
    "ByteRange",
    "fetch_archive_members",
    "fetch_file_ids",
    "fetch_members",
    "plan_bytes",
    "plan_members",
    "plan_ranges",
]

logger = logging.getLogger(__name__)

_X = TypeVar("_X")
_R = TypeVar("_R")

DEFAULT_MODALITIES = ("npz", "json")
# Members closer than this may share one request: re-reading a gap of headers (1.5 KB per member with
# PAX) or a small skipped member costs less than another round trip...
MAX_GAP = 64 * 1024
# ...but a gap that is more than headers must also stay under this share of the merged bytes, so merging
# never inflates the bytes transferred by more than ~5% over the members asked for.
MAX_WASTE = 0.05
HEADER_GAP = 4 * 1024  # PAX header + records + ustar header + padding: always worth merging over
# Merged requests and chunks of big members stay under this, so a few hundred MB of video still
# downloads over several connections and memory stays bounded (workers x span).
MAX_SPAN = 16 * 1024 * 1024
DEFAULT_WORKERS = 8
ARCHIVE_WORKERS = 4  # archives fetched at once by fetch_file_ids; indexing one archive is latency bound

ArchiveRef = tuple[str, str, int, int]  # (label, split, batch, archive)


@dataclass(frozen=True)
class ByteRange:
    """One Range request ``[start, end)`` of an archive and the members whose bytes it carries."""

    start: int
    end: int
    members: tuple[TarMember, ...]

    @property
    def size(self) -> int:
        return self.end - self.start


def _split_name(name: str) -> tuple[str, str]:
    # A file id contains no dot, so the text after the first dot is the WebDataset key (FORMAT.md 1.1).
    file_id, _, ext = name.partition(".")
    return file_id, ext


def plan_members(
    index: TarIndex, file_ids: Iterable[str] | None = None, modalities: Sequence[str] = DEFAULT_MODALITIES
) -> list[TarMember]:
    """The members of ``index`` holding ``modalities`` (extensions: json, mp4, npz, wav) of ``file_ids``.

    ``file_ids=None`` selects every file id in the archive. Members come in archive order.

    Raises:
        ValueError: a modality that is not one of json, mp4, npz, wav.
        MissingPartError: a requested file id lacks a requested member in this archive.
    """
    wanted = tuple(dict.fromkeys(modalities))
    unknown = [m for m in wanted if m not in BUNDLE_EXTENSIONS]
    if unknown or not wanted:
        raise ValueError(f"modalities {list(modalities)!r}: expected a non-empty subset of {list(BUNDLE_EXTENSIONS)}")
    ids = None if file_ids is None else set(file_ids)
    chosen = []
    for m in index.members:
        fid, ext = _split_name(m.name)
        if m.is_file and ext in wanted and (ids is None or fid in ids):
            chosen.append(m)
    if ids:
        have = {m.name for m in chosen}
        missing = sorted(f"{fid}.{ext}" for fid in ids for ext in wanted if f"{fid}.{ext}" not in have)
        if missing:
            raise MissingPartError(
                f"{index.url}: archive has no member {', '.join(missing[:5])}"
                + (f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""),
                url=index.url,
            )
    return chosen


def plan_ranges(members: Sequence[TarMember], *, max_gap: int = MAX_GAP, max_span: int = MAX_SPAN) -> list[ByteRange]:
    """Group members into Range requests: close neighbours share one, members over ``max_span`` are chunked.

    Two members share a request when the gap between them is under ``max_gap`` and is either just headers
    (under 4 KiB) or at most 5% of the merged bytes. Empty members need no bytes and get no range.
    """
    ranges: list[ByteRange] = []
    run: list[TarMember] = []
    run_bytes = waste = 0
    for m in sorted((m for m in members if m.size > 0), key=lambda m: m.offset_data):
        if m.size > max_span:
            if run:
                ranges.append(ByteRange(run[0].offset_data, run[-1].end, tuple(run)))
                run = []
            for start in range(m.offset_data, m.end, max_span):
                ranges.append(ByteRange(start, min(start + max_span, m.end), (m,)))
            continue
        if run:
            gap = m.offset_data - run[-1].end
            cheap = gap <= HEADER_GAP or waste + gap <= MAX_WASTE * (run_bytes + m.size)
            if gap < max_gap and cheap and m.end - run[0].offset_data <= max_span:
                run.append(m)
                run_bytes += m.size
                waste += gap if gap > HEADER_GAP else 0
                continue
            ranges.append(ByteRange(run[0].offset_data, run[-1].end, tuple(run)))
        run, run_bytes, waste = [m], m.size, 0
    if run:
        ranges.append(ByteRange(run[0].offset_data, run[-1].end, tuple(run)))
    return sorted(ranges, key=lambda r: r.start)


def _check_name(name: str, url: str) -> None:
    # Members land flat in one folder (FORMAT.md 4): anything else could escape it or shadow a temp file.
    if not name or "/" in name or "\\" in name or name.startswith(".") or "\x00" in name:
        raise UnsafeArchiveError(f"{url}: member name {name!r} is not a plain file name")


def _complete(path: Path, size: int) -> bool:
    try:
        return path.stat().st_size == size
    except FileNotFoundError:
        return False


class _Sink:
    """Temp files of the members being fetched; a member is renamed into place once all its bytes are in.

    Temp files are created with mode 0666 less the umask, like any new file (a shared dataset folder
    stays shared); each member's sha256 is fed while its bytes arrive in order, the rest read back.
    """

    def __init__(self, dest_dir: Path, members: Sequence[TarMember], url: str):
        self._dest = dest_dir
        self._url = url
        self._lock = threading.Lock()
        self._fds: dict[str, int] = {}
        self._tmp: dict[str, str] = {}
        self._left: dict[str, int] = {}
        self._hash: dict[str, tuple[hashlib._Hash, int]] = {}
        self.digests: dict[str, str] = {}
        for m in members:
            for _ in range(100):
                tmp = str(dest_dir / f".{m.name}.{secrets.token_hex(4)}{TMP_SUFFIX}")
                try:
                    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
                    break
                except FileExistsError:
                    continue
            else:
                raise FileExistsError(f"{dest_dir}: no free temp name for {m.name}")
            self._fds[m.name], self._tmp[m.name], self._left[m.name] = fd, tmp, m.size
            self._hash[m.name] = (hashlib.sha256(), 0)

    def write(self, m: TarMember, data: memoryview, at: int) -> None:
        os.pwrite(self._fds[m.name], data, at)
        with self._lock:
            h, pos = self._hash[m.name]
            if pos == at:
                h.update(data)
                self._hash[m.name] = (h, pos + len(data))
            self._left[m.name] -= len(data)
            done = self._left[m.name] == 0
        if done:
            self.finish(m)

    def finish(self, m: TarMember) -> None:
        with self._lock:
            fd = self._fds.pop(m.name)
            tmp = self._tmp.pop(m.name)
            h, pos = self._hash.pop(m.name)
        try:
            got = os.fstat(fd).st_size
            if got != m.size:
                raise IntegrityError(f"{self._url}: member {m.name!r} is {got} bytes, its tar header says {m.size}")
            while pos < m.size:  # chunks of a big member that arrived out of order
                block = os.pread(fd, min(4 << 20, m.size - pos), pos)
                if not block:
                    break
                h.update(block)
                pos += len(block)
            os.close(fd)
            fd = -1
            os.replace(tmp, self._dest / m.name)
            with self._lock:
                self.digests[m.name] = h.hexdigest()
        except BaseException:
            if fd >= 0:
                os.close(fd)
            Path(tmp).unlink(missing_ok=True)
            raise

    def abort(self) -> None:
        with self._lock:
            leftovers = list(zip(self._fds.values(), self._tmp.values()))
            self._fds.clear()
            self._tmp.clear()
        for fd, tmp in leftovers:
            os.close(fd)
            Path(tmp).unlink(missing_ok=True)


def fetch_members(
    transfer: Transfer,
    url: str,
    index: TarIndex,
    dest_dir: Path | str,
    members: Sequence[TarMember],
    *,
    max_gap: int = MAX_GAP,
    max_span: int = MAX_SPAN,
    max_workers: int = DEFAULT_WORKERS,
    progress: Callable[[int], None] | None = None,
    verify_remote: bool = True,
    manifest: Manifest | None = None,
) -> list[Path]:
    """Fetch ``members`` of the archive at ``url`` into ``dest_dir`` (one file per member, its own name).

    Members already in ``dest_dir`` with the right size are skipped. Merged ranges are read concurrently.
    ``progress`` gets the number of bytes of each finished request. Returns the members' final paths.
    With ``verify_remote`` one HEAD checks that the remote still has the indexed bytes (same validator);
    pass False right after :func:`~seamless_interaction.remote.tarindex.index_remote`, which just checked.
    With ``manifest``, each member written is recorded with its size and sha256 (hashed as it arrives).

    Raises:
        TransferError: a range could not be fetched (after the transfer's retries).
        IntegrityError: the remote changed since ``index`` was built, or sent the wrong number of bytes.
        UnsafeArchiveError: a member name that is not a plain file name.
    """
    dest = Path(dest_dir)
    members = list(dict.fromkeys(members))
    for m in members:
        _check_name(m.name, url)
    paths = [dest / m.name for m in members]
    todo = [m for m, p in zip(members, paths) if not _complete(p, m.size)]
    if not todo:
        return paths
    dest.mkdir(parents=True, exist_ok=True)
    # Two identical fetches at once: the second waits, then fetches only what the first did not.
    with transfer.lock(dest / ".members.lock"):
        todo = [m for m in todo if not _complete(dest / m.name, m.size)]
        if todo:
            _fetch_locked(transfer, url, index, dest, todo, max_gap=max_gap, max_span=max_span,
                          max_workers=max_workers, progress=progress, verify_remote=verify_remote, manifest=manifest)
    return paths


def _fetch_locked(
    transfer: Transfer, url: str, index: TarIndex, dest: Path, todo: list[TarMember], *, max_gap: int,
    max_span: int, max_workers: int, progress: Callable[[int], None] | None, verify_remote: bool,
    manifest: Manifest | None,
) -> None:
    read_url = index.read_url if index.read_url and index.url == url else None
    if verify_remote or read_url is None:
        read_url = _check_unchanged(transfer, url, index)
    ranges = plan_ranges(todo, max_gap=max_gap, max_span=max_span)
    logger.debug("%s: %d members in %d ranges, %d bytes", url, len(todo), len(ranges), sum(r.size for r in ranges))

    sink = _Sink(dest, todo, url)
    try:
        for m in todo:
            if m.size == 0:
                sink.finish(m)

        def run(r: ByteRange) -> None:
            data = transfer.fetch_bytes(read_url, start=r.start, end=r.end)
            if data is None:
                raise TransferError(f"{url}: archive disappeared while fetching members", url=url)
            if len(data) != r.size:
                raise IntegrityError(
                    f"{url}: asked for bytes [{r.start}, {r.end}) holding {r.members[0].name!r} and got "
                    f"{len(data)} bytes; the archive is truncated or the server ignored the Range header"
                )
            view = memoryview(data)
            for m in r.members:
                a, b = max(m.offset_data, r.start), min(m.end, r.end)
                sink.write(m, view[a - r.start:b - r.start], a - m.offset_data)
            if progress is not None:
                progress(len(data))

        _run_all(run, ranges, max_workers)
    finally:
        sink.abort()  # temp files of members that did not complete
        if manifest is not None:
            for m in todo:
                if m.name in sink.digests:
                    manifest.record(dest / m.name, f"{url}#{m.name}", m.size, sink.digests[m.name])


def _check_unchanged(transfer: Transfer, url: str, index: TarIndex) -> str:
    """HEAD ``url``; raise if it is no longer the archive ``index`` describes. Returns the URL to read."""
    info = transfer.head(url)
    if info is None or info.size is None:
        raise TransferError(f"{url}: no size known for the archive (HEAD gave no Content-Length)", url=url)
    now = _validator(int(info.size), info.etag, info.sha256)
    if now != index.validator:
        raise IntegrityError(
            f"{url}: the archive changed since it was indexed ({index.validator} -> {now}); re-index it"
        )
    return url  # the engine resolves it (once, shared) and renews an expired target


def _run_all(fn: Callable[[_X], _R], items: Sequence[_X], max_workers: int) -> list[_R]:
    """Run ``fn`` over ``items`` in threads; every item runs, then the first failure is raised."""
    if len(items) <= 1 or max_workers <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=min(max_workers, len(items))) as pool:
        futures = [pool.submit(fn, x) for x in items]
    for f in futures:
        error = f.exception()
        if error is not None:
            raise error
    return [f.result() for f in futures]


def _archive_url_and_index(
    transfer: Transfer, hf_url: str, ref: ArchiveRef, cache_dir: Path | str | None
) -> tuple[str, TarIndex]:
    url = hub_archive_url(hf_url, *ref)
    return url, index_remote(transfer, url, cache_dir=cache_dir)


def fetch_archive_members(
    transfer: Transfer,
    catalog: Catalog | None,
    hf_url: str,
    local_dir: Path | str,
    label: str,
    split: str,
    batch: int,
    archive: int,
    file_ids: Iterable[str] | None = None,
    modalities: Sequence[str] = DEFAULT_MODALITIES,
    cache_dir: Path | str | None = None,
    manifest: Manifest | None = None,
) -> list[Path]:
    """Fetch ``modalities`` of ``file_ids`` (all when None) of one Hub archive into the local layout.

    ``file_ids=None`` takes every file id the archive holds (as extracting it would), so ``catalog`` is
    not consulted; it is accepted so that every fetch function has the same shape.

    >>> fetch_archive_members(transfer, catalog, hf_url, "~/datasets/si", "improvised", "dev", 0, 0)
    [PosixPath('.../improvised/dev/0000/0000/V00_S0809_I00000309_P0947.json'), ...]
    """
    del catalog
    ref = (label, split, int(batch), int(archive))
    url, index = _archive_url_and_index(transfer, hf_url, ref, cache_dir)
    chosen = plan_members(index, file_ids, modalities)
    paths = fetch_members(transfer, url, index, archive_dir(local_dir, *ref), chosen, verify_remote=False,
                          manifest=manifest)
    logger.info("fetched %d members (%s) of %s", len(paths), "+".join(modalities), url)
    return paths


def _group_by_archive(catalog: Catalog, file_ids: Iterable[str]) -> dict[ArchiveRef, list[str]]:
    groups: dict[ArchiveRef, list[str]] = {}
    for fid in dict.fromkeys(file_ids):
        rec = catalog.record(fid)
        groups.setdefault((rec.label, rec.split, int(rec.batch), int(rec.archive)), []).append(fid)
    return groups


def fetch_file_ids(
    transfer: Transfer,
    catalog: Catalog,
    hf_url: str,
    local_dir: Path | str,
    file_ids: Iterable[str],
    modalities: Sequence[str] = DEFAULT_MODALITIES,
    cache_dir: Path | str | None = None,
    *,
    archive_workers: int = ARCHIVE_WORKERS,
    manifest: Manifest | None = None,
) -> list[Path]:
    """Fetch ``modalities`` of ``file_ids`` from whichever archives the catalog puts them in.

    Archives are indexed and fetched ``archive_workers`` at a time. The caller adds both partners of an
    interaction (they usually sit in different archives). Returns paths grouped by archive.
    """
    groups = _group_by_archive(catalog, file_ids)

    def one(item: tuple[ArchiveRef, list[str]]) -> list[Path]:
        ref, ids = item
        return fetch_archive_members(transfer, None, hf_url, local_dir, *ref, file_ids=ids,
                                     modalities=modalities, cache_dir=cache_dir, manifest=manifest)

    results = _run_all(one, list(groups.items()), archive_workers)
    return [p for paths in results for p in paths]


def plan_bytes(
    transfer: Transfer,
    catalog: Catalog,
    hf_url: str,
    *,
    file_ids: Iterable[str] | None = None,
    archives: Iterable[ArchiveRef] | None = None,
    modalities: Sequence[str] = DEFAULT_MODALITIES,
    cache_dir: Path | str | None = None,
    local_dir: Path | str | None = None,
    archive_workers: int = ARCHIVE_WORKERS,
) -> tuple[int, int]:
    """For a dry run: ``(bytes_to_fetch, whole_archive_bytes)`` of a member fetch.

    Select with ``file_ids`` (grouped by archive through the catalog) and/or whole ``archives``
    (``(label, split, batch, archive)``, every file id in them). Builds or reuses the archives' indexes,
    which reads headers only. With ``local_dir``, members already complete there are not counted.
    """
    selection: dict[ArchiveRef, list[str] | None] = {}
    if file_ids is not None:
        selection.update(_group_by_archive(catalog, file_ids))
    for ref in archives or ():
        selection[(ref[0], ref[1], int(ref[2]), int(ref[3]))] = None

    def one(item: tuple[ArchiveRef, list[str] | None]) -> tuple[int, int]:
        ref, ids = item
        _, index = _archive_url_and_index(transfer, hf_url, ref, cache_dir)
        chosen = plan_members(index, ids, modalities)
        if local_dir is not None:
            d = archive_dir(local_dir, *ref)
            chosen = [m for m in chosen if not _complete(d / m.name, m.size)]
        return sum(m.size for m in chosen), index.total_size

    totals = _run_all(one, list(selection.items()), archive_workers)
    return sum(t[0] for t in totals), sum(t[1] for t in totals)
