"""The Hugging Face Hub route: whole WebDataset archives, optionally extracted into the layout.

Differences from the official toolkit (bugs there): the size is reported in bytes (it divided by
1024**3 and printed "GB"); a failed download raises with the URL and status instead of returning
``(False, "")``; the archive is verified against the Hub's sha256 ETag; extraction is safe and
all-or-nothing, and completion is recorded, so a crash mid-extraction is repaired by re-running.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from seamless_interaction.base.errors import TransferError
from seamless_interaction.base.ids import FILE_ID_RE, ArchiveRef
from seamless_interaction.constants import BUNDLE_EXTENSIONS
from seamless_interaction.local import layout
from seamless_interaction.local.archive import (
    ExtractedMember,
    Extraction,
    extraction_complete,
    safe_extract,
    write_extraction_record,
)
from seamless_interaction.local.manifest import Manifest, member_source
from seamless_interaction.remote.transfer import FetchResult, Job, Transfer, check_free_space
from seamless_interaction.remote.urls import hub_archive_url

__all__ = ["ArchiveResult", "archive_size", "download_archive", "download_archives"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ArchiveResult:
    label: str
    split: str
    batch: int
    archive: int
    path: Path  # the extraction folder, or the .tar when not extracted
    size: int | None  # bytes of the tar, when known
    skipped: bool


def archive_size(transfer: Transfer, hf_url: str, label: str, split: str, batch: int, archive: int) -> int:
    """Bytes of one archive, from a HEAD request that follows the Hub's redirect."""
    ref = ArchiveRef(label, split, batch, archive)  # checked before the request
    info = transfer.head(hub_archive_url(hf_url, *ref))
    assert info is not None  # non-optional head raises on 403/404
    if info.size is None:
        raise TransferError(f"{info.url}: the server sent no Content-Length", url=info.url)
    return info.size


def download_archives(
    transfer: Transfer,
    hf_url: str,
    local_dir: Path,
    archives: Sequence[ArchiveRef | tuple[str, str, int, int]],
    *,
    extract: bool = True,
    manifest: Manifest | None = None,
    on_done: Callable[[ArchiveResult], None] | None = None,
) -> list[ArchiveResult]:
    """Several archives at once over the transfer's connections; results in ``archives`` order.

    One :meth:`Transfer.fetch_many` takes every archive, so the connections spread over all of
    them (whole archives first, then segments of each, then splits of what is left), and each
    archive is extracted on its own thread as soon as it is complete and verified, while the
    others still download. ``on_done`` is called once per archive as it completes (from a worker
    thread, one call at a time). On a failure the first error is raised; archives already
    extracted stay, the others are resumable.
    """
    refs = [ArchiveRef(*a) for a in archives]  # all checked before any request or write
    local_dir = Path(local_dir)
    results: list[ArchiveResult | None] = [None] * len(refs)
    todo: list[int] = []
    for k, ref in enumerate(refs):
        dest_dir = layout.inside(local_dir, layout.archive_dir(local_dir, ref))
        if extract and extraction_complete(local_dir, dest_dir, ref):
            results[k] = ArchiveResult(ref.label, ref.split, ref.batch, ref.archive, dest_dir, None, skipped=True)
        else:
            todo.append(k)
    lock = threading.Lock()

    def finished(res: ArchiveResult) -> None:
        if on_done is not None:
            with lock:
                on_done(res)

    for res in results:
        if res is not None:
            finished(res)
    if not todo:
        return [r for r in results if r is not None]
    urls = {k: hub_archive_url(hf_url, *refs[k]) for k in todo}
    # No HEAD first: the GET's redirect carries the sha256 (X-Linked-Etag), which the transfer
    # verifies, and its first response the size, which plans the segments and checks the free
    # space; asking beforehand would cost every archive two more round trips before its first byte.
    jobs = []
    followers: dict[int, _Follower] = {}
    for k in todo:
        tar_path = layout.inside(local_dir, layout.tar_path(local_dir, refs[k]))
        tar_path.parent.mkdir(parents=True, exist_ok=True)
        if extract:
            followers[k] = _Follower(tar_path, layout.inside(local_dir, layout.archive_dir(local_dir, refs[k])))
        # A tar to extract is read once and removed: not flushed to disk first (see Job.durable).
        jobs.append(Job(urls[k], tar_path, durable=not extract, watch=followers[k].watch if extract else None))
    try:
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="si-extract") as pool:
            done: dict[int, Future[ArchiveResult]] = {}

            def landed(n: int, res: FetchResult | None) -> None:
                assert res is not None
                k = todo[n]

                def settle() -> ArchiveResult:
                    out = _settle(refs[k], local_dir, urls[k], res, extract=extract, manifest=manifest,
                                  follower=followers.get(k))
                    finished(out)
                    return out

                done[k] = pool.submit(settle)

            transfer.fetch_many(jobs, on_result=landed)
            for k, fut in done.items():
                results[k] = fut.result()
    finally:
        for follower in followers.values():
            follower.close()  # after a failure: stop following, drop what was staged
    return [r for r in results if r is not None]


class _Follower:
    """Extracts one archive into its staging folder while the archive still downloads.

    :attr:`watch` is the download's :attr:`Job.watch`: each time the verified-in-order prefix of the
    part file grows, a thread of its own stages the members that now lie inside it, so when the
    last byte lands little is left to extract. Nothing is placed before :meth:`finish`, which runs
    after the whole tar passed its sha256 check; any doubt there (an error while following, a part
    file replaced by a fresh download) means the extraction starts over from the verified tar.
    """

    def __init__(self, tar_path: Path, dest_dir: Path) -> None:
        self.tar_path, self.dest_dir = tar_path, dest_dir
        self.extraction = Extraction(tar_path, dest_dir)
        self._cond = threading.Condition()
        self._upto = 0
        self._restart = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self._fd = -1
        self._failed = False

    def watch(self, n: int) -> None:
        with self._cond:
            if self._closed:
                return
            if n < self._upto:
                self._restart = True  # the download started over: what was staged may be stale
            self._upto = n
            if self._thread is None and n > 0:
                self._thread = threading.Thread(target=self._follow, name="si-extract-follow", daemon=True)
                self._thread.start()
            self._cond.notify()

    def _follow(self) -> None:
        done = 0
        while True:
            with self._cond:
                while not (self._closed or self._restart or self._upto > done):
                    self._cond.wait()
                if self._closed:
                    return
                restart, self._restart, upto = self._restart, False, self._upto
            if restart:
                self._reset()
                done = 0
                continue
            done = upto
            if self._failed:
                continue
            try:
                if self._fd < 0:
                    self._fd = os.open(layout.part_path(self.tar_path), os.O_RDONLY)
                # Halting (a cancelled download) stops between two members, not after the whole backlog.
                self.extraction.advance(self._fd, upto, stop=lambda: self._closed)
            except Exception as e:  # noqa: BLE001 - settled by finish(), which extracts the verified tar again
                log.debug("%s: extraction while downloading stopped (%s); it is done after the download",
                          self.tar_path, e)
                self._failed = True

    def _reset(self) -> None:
        self.extraction.abort()
        self.extraction = Extraction(self.tar_path, self.dest_dir)
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._failed = False

    def halt(self) -> None:
        """Stop following (idempotent): from then on the caller's thread owns the extraction."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join()

    def finish(self) -> list[ExtractedMember]:
        """Extract the rest of the downloaded, verified tar and place every member."""
        self.halt()
        with open(self.tar_path, "rb") as raw:
            fd = raw.fileno()
            same = self._fd >= 0 and os.path.sameopenfile(self._fd, fd)
            if self._failed or self._restart or not same:
                self._reset()
            try:
                return self.extraction.commit(fd)
            finally:
                self.close()

    def close(self) -> None:
        self.halt()
        self.extraction.abort()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _settle(ref: ArchiveRef, local_dir: Path, url: str, res: FetchResult, *, extract: bool,
            manifest: Manifest | None, tar_done: bool = False, follower: _Follower | None = None) -> ArchiveResult:
    """Record, or extract and record, one downloaded and verified archive."""
    tar_path = res.path
    assert tar_path is not None
    if not extract:
        if manifest is not None:
            manifest.record(tar_path, url, res.size, res.sha256)
        return ArchiveResult(ref.label, ref.split, ref.batch, ref.archive, tar_path, res.size,
                             skipped=res.skipped and tar_done)
    dest_dir = layout.inside(local_dir, layout.archive_dir(local_dir, ref))
    staged = 0
    if follower is not None:
        follower.halt()
        staged = follower.extraction.staged_bytes
    # The contents, next to the tar until it goes (less what was extracted while downloading).
    check_free_space(dest_dir.parent, res.size - staged)
    members = follower.finish() if follower is not None else safe_extract(tar_path, dest_dir)
    if manifest is not None:
        manifest.record_many([(m.path, member_source(url, m.name), m.size, m.sha256) for m in members])
        # An extracted archive asks for every file id in it, whole.
        stems = {m.name.partition(".")[0] for m in members if m.name.partition(".")[2] in BUNDLE_EXTENSIONS}
        manifest.request(sorted(f for f in stems if FILE_ID_RE.match(f)), BUNDLE_EXTENSIONS)
    write_extraction_record(local_dir, ref, members, url, res.sha256)
    os.remove(tar_path)
    if manifest is not None:
        manifest.remove(tar_path)
    return ArchiveResult(ref.label, ref.split, ref.batch, ref.archive, dest_dir, res.size, skipped=False)


def download_archive(
    transfer: Transfer,
    hf_url: str,
    local_dir: Path,
    label: str,
    split: str,
    batch: int,
    archive: int,
    *,
    extract: bool = True,
    manifest: Manifest | None = None,
) -> ArchiveResult:
    ref = ArchiveRef(label, split, batch, archive)  # checked before any request or write
    label, split, batch, archive = ref
    local_dir = Path(local_dir)
    dest_dir = layout.inside(local_dir, layout.archive_dir(local_dir, ref))
    tar_path = layout.inside(local_dir, layout.tar_path(local_dir, ref))
    if extract and extraction_complete(local_dir, dest_dir, ref):
        return ArchiveResult(label, split, batch, archive, dest_dir, None, skipped=True)

    dest_dir.parent.mkdir(parents=True, exist_ok=True)
    # Two identical downloads at once: the second waits here, then finds the first's work done.
    with transfer.lock(layout.lock_path(tar_path.with_name(tar_path.name + ".archive"))):
        if extract and extraction_complete(local_dir, dest_dir, ref):
            return ArchiveResult(label, split, batch, archive, dest_dir, None, skipped=True)
        return _download_locked(transfer, hf_url, local_dir, dest_dir, tar_path, ref,
                                extract=extract, manifest=manifest)


def _download_locked(
    transfer: Transfer, hf_url: str, local_dir: Path, dest_dir: Path, tar_path: Path, ref: ArchiveRef, *,
    extract: bool, manifest: Manifest | None,
) -> ArchiveResult:
    label, split, batch, archive = ref
    url = hub_archive_url(hf_url, *ref)
    info = transfer.head(url)
    assert info is not None
    tar_done = tar_path.exists() and info.size is not None and tar_path.stat().st_size == info.size
    if not tar_done:
        # The tar and, when extracting, its contents coexist until the tar is removed.
        check_free_space(dest_dir.parent if dest_dir.parent.exists() else local_dir,
                         (info.size or 0) * (2 if extract else 1))
    dest_dir.parent.mkdir(parents=True, exist_ok=True)
    follower = _Follower(tar_path, dest_dir) if extract and not tar_done else None
    try:
        res = transfer.fetch(url, tar_path, expected_size=info.size, sha256=info.sha256,
                             watch=follower.watch if follower is not None else None)
        assert res is not None  # not optional: absence raises
        return _settle(ref, local_dir, url, res, extract=extract, manifest=manifest, tar_done=tar_done,
                       follower=follower)
    finally:
        if follower is not None:
            follower.close()
