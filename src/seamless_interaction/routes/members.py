"""Fetch selected members of the Hub's archives (e.g. only the npz+json features) with HTTP Range reads.

A Hub archive is ~1 GB holding 4-11 file ids, and npz features are ~8% of its bytes. Here an archive's
:class:`~seamless_interaction.remote.tarindex.TarIndex` says where each member's bytes sit, :func:`plan_members`
picks the members, and :func:`fetch_members` reads just those byte ranges into the standard local layout
(:mod:`~seamless_interaction.local.layout`), the same place whole-archive extraction puts them. Nearby members
are read with one merged request, big members in concurrent chunks; every file is written under a temp name, checked
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
    IntegrityError, MissingPartError, TransferError, UnsafeArchiveError, UnsafePathError,
)
from seamless_interaction.base.ids import ArchiveRef, validate_file_id, validate_modalities
from seamless_interaction.local import layout
from seamless_interaction.local.manifest import Manifest, member_source
from seamless_interaction.remote.tarindex import TarIndex, TarMember, _validator, index_remote
from seamless_interaction.remote.urls import hub_archive_url

if TYPE_CHECKING:
    from seamless_interaction.catalog.tables import Catalog
    from seamless_interaction.local.manifest import Manifest
    from seamless_interaction.remote.transfer import Transfer

__all__ = [
    "DEFAULT_MODALITIES",
    "ByteRange",
    "fetch_archive_members",
    "fetch_archives",
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
        InvalidIdError: a modality that is not one of json, mp4, npz, wav (a ValueError).
        MissingPartError: a requested file id lacks a requested member in this archive.
    """
    wanted = validate_modalities(modalities)
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
    try:
        layout.member_path(".", name)
    except UnsafePathError:
        raise UnsafeArchiveError(f"{url}: member name {name!r} is not a plain file name") from None


def _complete(path: Path, size: int) -> bool:
    try:
        return path.stat().st_size == size
    except FileNotFoundError:
        return False


class _Digest:
    """sha256 of a member fed while its bytes arrive: in-order bytes are hashed from memory, and what came
    out of order (chunks of a big member racing each other) is read back from the temp file at the end."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sha = hashlib.sha256()
        self._pos = 0

    def feed(self, data: memoryview, at: int) -> None:
        with self._lock:
            if at == self._pos:
                self._sha.update(data)
                self._pos += len(data)

    def finish(self, tmp: str, size: int) -> str:
        with self._lock, open(tmp, "rb") as fh:
            fh.seek(self._pos)
            while self._pos < size and (block := fh.read(min(4 << 20, size - self._pos))):
                self._sha.update(block)
                self._pos += len(block)
            return self._sha.hexdigest()


def _create_temp(dest_dir: Path, name: str) -> tuple[int, str]:
    """A new temp file for member ``name``: mode 0666 less the umask (mkstemp's 0600 would not be)."""
    for _ in range(100):
        tmp = str(dest_dir / f".{name}.{secrets.token_hex(4)}{layout.TMP_SUFFIX}")
        try:
            return os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"{dest_dir}: no free temp name for {name}")


class _Sink:
    """Temp files of the members being fetched; a member is renamed into place once all its bytes are in.

    Temp files are created with mode 0666 less the umask, like any new file (a shared dataset folder
    stays shared); each member's sha256 is fed while its bytes arrive in order, the rest read back.
    """

    def __init__(self, dest_dir: Path, members: Sequence[TarMember], url: str, manifest: Manifest | None):
        self._dest = dest_dir
        self._url = url
        self._manifest = manifest
        self._lock = threading.Lock()
        self._fds: dict[str, int] = {}
        self._tmp: dict[str, str] = {}
        self._left: dict[str, int] = {}
        self._digests: dict[str, _Digest] = {}
        for m in members:
            fd, tmp = _create_temp(dest_dir, m.name)
            self._fds[m.name], self._tmp[m.name], self._left[m.name] = fd, tmp, m.size
            if manifest is not None:
                self._digests[m.name] = _Digest()

    def write(self, m: TarMember, data: memoryview, at: int) -> None:
        os.pwrite(self._fds[m.name], data, at)
        if self._manifest is not None:
            self._digests[m.name].feed(data, at)
        with self._lock:
            self._left[m.name] -= len(data)
            done = self._left[m.name] == 0
        if done:
            self.finish(m)

    def finish(self, m: TarMember) -> None:
        with self._lock:
            fd = self._fds.pop(m.name)
            tmp = self._tmp.pop(m.name)
        try:
            os.close(fd)
            got = os.path.getsize(tmp)
            if got != m.size:
                raise IntegrityError(f"{self._url}: member {m.name!r} is {got} bytes, its tar header says {m.size}")
            digest = self._digests[m.name].finish(tmp, m.size) if self._manifest is not None else None
            final = self._dest / m.name
            os.replace(tmp, final)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        if self._manifest is not None and self._manifest.contains(final):
            self._manifest.record(final, member_source(self._url, m.name), m.size, digest)

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
    with transfer.lock(layout.lock_path(dest / ".members")):
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

    sink = _Sink(dest, todo, url, manifest)
    # Bytes on the wire (merged ranges include the small gaps between members), on the transfer's bar.
    transfer.progress.start(sum(r.size for r in ranges), f"{len(todo)} members of {url.rsplit('/', 1)[-1]}")
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
            transfer.progress.advance(len(data))
            if progress is not None:
                progress(len(data))

        _run_all(run, ranges, max_workers)
    finally:
        transfer.progress.close()
        sink.abort()  # temp files of members that did not complete


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
    not consulted; it is accepted so that every fetch function has the same shape. Every argument is
    checked before any request. With ``manifest`` the request (file ids and modalities) and each file
    written are recorded, so ``verify`` later expects exactly these.

    >>> fetch_archive_members(transfer, catalog, hf_url, "~/datasets/si", "improvised", "dev", 0, 0)
    [PosixPath('.../improvised/dev/0000/0000/V00_S0809_I00000309_P0947.json'), ...]
    """
    del catalog
    ref = ArchiveRef(label, split, batch, archive)
    modalities = validate_modalities(modalities)
    ids = None if file_ids is None else [validate_file_id(f) for f in _as_list(file_ids)]
    dest = layout.inside(local_dir, layout.archive_dir(local_dir, ref))
    url, index = _archive_url_and_index(transfer, hf_url, ref, cache_dir)
    chosen = plan_members(index, ids, modalities)
    if manifest is not None:
        manifest.request(sorted({_split_name(m.name)[0] for m in chosen}), modalities)
    paths = fetch_members(transfer, url, index, dest, chosen, verify_remote=False, manifest=manifest)
    logger.info("fetched %d members (%s) of %s", len(paths), "+".join(modalities), url)
    return paths


def _as_list(file_ids: Iterable[str]) -> list[str]:
    if isinstance(file_ids, str):  # one id passed bare: not a sequence of one-letter ids
        return [file_ids]
    return list(file_ids)


def _group_by_archive(catalog: Catalog, file_ids: Iterable[str]) -> dict[ArchiveRef, list[str]]:
    groups: dict[ArchiveRef, list[str]] = {}
    for fid in dict.fromkeys(validate_file_id(f) for f in _as_list(file_ids)):
        groups.setdefault(catalog.record(fid).ref, []).append(fid)
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
    modalities = validate_modalities(modalities)
    groups: dict[ArchiveRef, list[str] | None] = dict(_group_by_archive(catalog, file_ids))
    return _fetch_groups(transfer, hf_url, local_dir, groups, modalities, cache_dir, archive_workers, manifest)


def fetch_archives(
    transfer: Transfer,
    hf_url: str,
    local_dir: Path | str,
    archives: Iterable[ArchiveRef | tuple[str, str, int, int]],
    modalities: Sequence[str] = DEFAULT_MODALITIES,
    cache_dir: Path | str | None = None,
    *,
    archive_workers: int = ARCHIVE_WORKERS,
    manifest: Manifest | None = None,
) -> list[Path]:
    """Fetch ``modalities`` of every file id of each of ``archives``, ``archive_workers`` archives at a time.

    Returns paths grouped by archive, in ``archives`` order.
    """
    modalities = validate_modalities(modalities)
    groups: dict[ArchiveRef, list[str] | None] = {ArchiveRef(*a): None for a in archives}
    return _fetch_groups(transfer, hf_url, local_dir, groups, modalities, cache_dir, archive_workers, manifest)


def _fetch_groups(
    transfer: Transfer, hf_url: str, local_dir: Path | str, groups: dict[ArchiveRef, list[str] | None],
    modalities: Sequence[str], cache_dir: Path | str | None, archive_workers: int, manifest: Manifest | None,
) -> list[Path]:
    """Each archive's members (``None``: every file id's), the archives indexed and fetched concurrently."""
    for ref in groups:
        layout.inside(local_dir, layout.archive_dir(local_dir, ref))

    def one(item: tuple[ArchiveRef, list[str] | None]) -> list[Path]:
        ref, ids = item
        return fetch_archive_members(transfer, None, hf_url, local_dir, ref.label, ref.split, ref.batch, ref.archive,
                                     file_ids=ids, modalities=modalities, cache_dir=cache_dir, manifest=manifest)

    # One bar for all archives: the per-archive starts below nest into it.
    transfer.progress.start(None, f"{len(groups)} archive(s)")
    try:
        results = _run_all(one, list(groups.items()), archive_workers)
    finally:
        transfer.progress.close()
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
    modalities = validate_modalities(modalities)
    selection: dict[ArchiveRef, list[str] | None] = {}
    if file_ids is not None:
        selection.update(_group_by_archive(catalog, file_ids))
    for ref in archives or ():
        selection[ArchiveRef(*ref)] = None

    def one(item: tuple[ArchiveRef, list[str] | None]) -> tuple[int, int]:
        ref, ids = item
        _, index = _archive_url_and_index(transfer, hf_url, ref, cache_dir)
        chosen = plan_members(index, ids, modalities)
        if local_dir is not None:
            d = layout.archive_dir(local_dir, ref)
            chosen = [m for m in chosen if not _complete(d / m.name, m.size)]
        return sum(m.size for m in chosen), index.total_size

    totals = _run_all(one, list(selection.items()), archive_workers)
    return sum(t[0] for t in totals), sum(t[1] for t in totals)
