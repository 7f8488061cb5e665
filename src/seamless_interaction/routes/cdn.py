"""The per-file CDN route: fetch every object of a file id and assemble the archive's bundle.

For one file id this fetches audio, video, every npy feature, transcript, VAD and annotations
concurrently over the shared :class:`~seamless_interaction.remote.transfer.Transfer`, then writes
``{id}.npz`` and ``{id}.json`` with the same encoders the archives use, so both routes give the same
files. Differences from the official toolkit, each a bug there:

* a 403/404 on an optional part means "absent"; on a required part (audio, video, vad, smplh) or any
  other failure the error is raised with its URL and status, and nothing reaches a final path (the
  official code logged and went on, leaving partial npz files, or wrote a stub json with no network);
* parts are keyed by their npz/json name, not by their basename (``smplh/is_valid`` and
  ``movement/is_valid`` collided there);
* annotation files are JSON Lines and become lists of records, as in the archives;
* the npz is DEFLATE-compressed, like the archives' (the official route wrote it uncompressed).
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seamless_interaction.catalog.tables import Catalog, FileRecord
from seamless_interaction.base.errors import IntegrityError
from seamless_interaction.base.formats import bundle_json, encode_json, encode_npz, parse_jsonl
from seamless_interaction.constants import BUNDLE_EXTENSIONS
from seamless_interaction.local import layout
from seamless_interaction.local.manifest import Manifest, sha256_file
from seamless_interaction.remote.transfer import FetchResult, Job, Transfer, fsync_dir
from seamless_interaction.remote.urls import Part, cdn_parts

__all__ = ["BundleResult", "bundle_complete", "gather_file_id", "gather_many", "plan_file_id"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BundleResult:
    file_id: str
    paths: dict[str, Path]  # ext -> final path
    skipped: bool  # already complete on disk
    absent: tuple[str, ...] = ()  # optional parts the CDN did not have


def plan_file_id(catalog: Catalog, cdn_url: str, file_id: str, *,
                 movement_v4: bool = True) -> tuple[FileRecord, list[Part]]:
    """Catalog lookup first: an unknown id fails here, before any request or write."""
    rec = catalog.record(file_id)
    return rec, cdn_parts(cdn_url, rec.label, rec.split, rec.file_id, movement_v4=movement_v4)


def bundle_complete(paths: dict[str, Path], manifest: Manifest | None, root: Path) -> bool:
    """All four files exist; where the manifest knows a file, its size must match."""
    for path in paths.values():
        try:
            size = path.stat().st_size
        except OSError:
            return False
        if manifest is not None:
            entry = manifest.get(path)
            if entry is not None and entry.size != size:
                return False
    return True


@dataclass
class _Staged:
    """A file id whose parts are about to be fetched into ``staging``; ``jobs`` follow ``parts``."""

    rec: FileRecord
    parts: list[Part]
    final: dict[str, Path]
    staging: Path
    jobs: list[Job]


def _stage(catalog: Catalog, cdn_url: str, local_dir: Path, file_id: str, *, manifest: Manifest | None,
           force: bool, movement_v4: bool) -> _Staged | BundleResult:
    """The skipped result if the bundle is complete, else a fresh staging folder and its jobs."""
    rec, parts = plan_file_id(catalog, cdn_url, file_id, movement_v4=movement_v4)
    final = layout.bundle_paths(local_dir, rec.ref, rec.file_id)  # rec.ref checks the catalog's label/split
    if not force and bundle_complete(final, manifest, Path(local_dir)):
        return BundleResult(rec.file_id, final, skipped=True)
    target = layout.make_archive_dir(local_dir, rec.ref)
    # A staging folder per file id, inside the target folder so that the final renames stay on one
    # filesystem; hidden, and removed whatever happens.
    staging = layout.staging_dir(target, rec.file_id, "cdn")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    # Media go straight to disk (large); npy/jsonl are small and consumed at once, so they are
    # fetched into memory (same retries and checks, no part file, lock or fsync per object).
    # The CDN publishes no checksum (an S3 ETag is no sha256), but the media's sha256, hashed while
    # they stream, goes into the manifest so that `verify --deep` can catch later damage on disk; the
    # in-memory parts are consumed into the npz/json, which are hashed once written. The media are
    # flushed once, by _commit before their final rename, not also by the engine into this staging
    # folder (which no later run trusts: it belongs to this process).
    jobs = [Job(url=part.url, dest=staging / part.name.replace(":", "__") if part.kind in _MEDIA else None,
                optional=not part.required, digest=part.kind in _MEDIA, durable=part.kind not in _MEDIA)
            for part in parts]
    return _Staged(rec, parts, final, staging, jobs)


_MEDIA = ("audio", "video")


def _fetch_rank(part: Part) -> int:
    """Fetch order: the video, then the audio, then the small parts.

    The CDN gives no sizes up front, so the transfer starts these jobs in the order given, and
    starts every job before it splits a large one into segments. The media first fill the link
    from the first round trip on, while the other connections go through the many small parts
    (a round trip each, several answering 403); once those are in, the npz/json assembly (CPU
    work) runs while the media finish, and the freed connections split the media's remaining ranges.
    """
    return {"video": 0, "audio": 1}.get(part.kind, 2)


def gather_file_id(
    transfer: Transfer,
    catalog: Catalog,
    cdn_url: str,
    local_dir: Path,
    file_id: str,
    *,
    manifest: Manifest | None = None,
    force: bool = False,
    movement_v4: bool = True,
) -> BundleResult:
    # The batch path, so that the npz/json are built while the media still stream.
    return gather_many(transfer, catalog, cdn_url, local_dir, [file_id], manifest=manifest,
                       movement_v4=movement_v4, force=force)[0]


def _encode(staged: _Staged, results: list[FetchResult | None]) -> tuple[str, ...]:
    """Stage ``bundle.npz`` and ``bundle.json`` from the small parts (the media are not needed yet).

    Returns the optional parts the CDN did not have.
    """
    got: dict[str, bytes] = {}
    absent = []
    for part, res in zip(staged.parts, results):
        if part.kind in _MEDIA:
            continue
        if res is None:
            absent.append(part.name)
        else:
            assert res.data is not None
            got[part.name] = res.data
    arrays = {}
    for part in staged.parts:
        if part.kind == "feature" and part.name in got:
            arrays[part.name] = _load_npy(got[part.name], part.url)
    annotations = {}
    for part in staged.parts:
        if part.kind == "annotation" and part.name in got:
            annotations[part.name.split(":", 1)[1]] = parse_jsonl(got[part.name], name=part.url)
    transcript = (parse_jsonl(got["metadata:transcript"], name="transcript")
                  if "metadata:transcript" in got else None)
    vad = parse_jsonl(got["metadata:vad"], name="vad")
    (staged.staging / "bundle.npz").write_bytes(encode_npz(arrays))
    (staged.staging / "bundle.json").write_bytes(
        encode_json(bundle_json(staged.rec.file_id, transcript, vad, annotations)))
    return tuple(absent)


def _commit(staged: _Staged, results: list[FetchResult | None], absent: tuple[str, ...], cdn_url: str,
            manifest: Manifest | None) -> BundleResult:
    """Move the media and the staged npz/json into place, each fsynced first."""
    parts, final = staged.parts, staged.final
    media: dict[str, Path] = {}
    for part, res in zip(parts, results):
        if part.kind in _MEDIA and res is not None:
            assert res.path is not None  # media jobs go to disk (_stage)
            media[part.name] = res.path
    sources = {"wav": media["wav"], "mp4": media["mp4"],
               "npz": staged.staging / "bundle.npz", "json": staged.staging / "bundle.json"}
    urls = {"wav": parts[0].url, "mp4": parts[1].url, "npz": cdn_url, "json": cdn_url}
    media_sha = {part.name: res.sha256 for part, res in zip(parts, results) if part.kind in _MEDIA and res is not None}
    # The media were hashed while they streamed; npz and json are small and hashed here, once written.
    digests = {"wav": media_sha["wav"], "mp4": media_sha["mp4"],
               "npz": sha256_file(sources["npz"]), "json": sha256_file(sources["json"])}
    for ext in ("wav", "mp4", "npz", "json"):
        _fsync(sources[ext])
        os.replace(sources[ext], final[ext])
    fsync_dir(final["json"].parent)  # the four new names, in one flush of their folder
    if manifest is not None:
        manifest.record_many([(final[e], urls[e], final[e].stat().st_size, digests[e])
                              for e in ("wav", "mp4", "npz", "json")])
    return BundleResult(staged.rec.file_id, final, skipped=False, absent=absent)


def _background_priority() -> None:
    """Lower the calling thread's CPU priority (Linux: per thread), where the OS allows it.

    The npz/json assembly has slack (it must only end with the media), the transfer threads have
    none: one that waits for a core lets its socket buffer fill and its connection slow down.
    On a machine with few cores the assembly then takes the cycles the transfer leaves free
    instead of stealing them from it.
    """
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + 10))
    except (AttributeError, OSError):
        pass  # not Linux (setpriority would apply to the whole process), or not permitted


def _load_npy(data: bytes, url: str) -> np.ndarray:
    try:
        arr: np.ndarray = np.load(io.BytesIO(data), allow_pickle=False)
        return arr
    except Exception as exc:
        raise IntegrityError(f"{url}: not a readable .npy ({exc})") from exc


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def gather_many(
    transfer: Transfer,
    catalog: Catalog,
    cdn_url: str,
    local_dir: Path,
    file_ids: list[str],
    *,
    manifest: Manifest | None = None,
    on_done: Callable[[BundleResult], None] | None = None,
    movement_v4: bool = True,
    force: bool = False,
) -> list[BundleResult]:
    """Gather several file ids; results in ``file_ids`` order.

    Every id is validated against the catalog first (nothing is fetched if one is unknown). Then
    the parts of all ids go to one :meth:`Transfer.fetch_many`, every video first, then the audio,
    then the small parts (see ``_fetch_rank``): the transfer sees the whole batch, so the large media overlap the many
    short requests and the connections finish together. Each id's npz/json are assembled as soon
    as its last part lands, while the others still download. ``on_done`` is called once per id as
    it completes (from a worker thread, one call at a time). On a failure the first error is
    raised; ids already assembled stay, the others leave nothing at a final path. ``force``:
    fetch again even the bundles already complete on disk.
    """
    # Unknown ids, or rows the layout cannot hold (ArchiveRef checks them), fail before any write.
    refs = [catalog.record(fid).ref for fid in file_ids]
    del refs
    if manifest is not None:
        manifest.request(file_ids, BUNDLE_EXTENSIONS)
    results: list[BundleResult | None] = [None] * len(file_ids)
    staged: dict[int, _Staged] = {}
    for k, fid in enumerate(file_ids):
        s = _stage(catalog, cdn_url, local_dir, fid, manifest=manifest, force=force, movement_v4=movement_v4)
        if isinstance(s, BundleResult):
            results[k] = s
        else:
            staged[k] = s
    lock = threading.Lock()

    def finished(res: BundleResult) -> None:
        if on_done is not None:
            with lock:
                on_done(res)

    try:
        for res in results:
            if res is not None:
                finished(res)
        # (id index, part index) in fetch order: the media, then the small parts id by id.
        keys = sorted(((k, i) for k, s in staged.items() for i in range(len(s.jobs))),
                      key=lambda ki: _fetch_rank(staged[ki[0]].parts[ki[1]]))
        fetched: dict[int, list[FetchResult | None]] = {k: [None] * len(s.jobs) for k, s in staged.items()}
        small_left = {k: sum(p.kind not in _MEDIA for p in s.parts) for k, s in staged.items()}
        all_left = {k: len(s.jobs) for k, s in staged.items()}
        encoded: dict[int, Future[tuple[str, ...]]] = {}
        committed: dict[int, Future[BundleResult]] = {}
        # Encoding is CPU work (DEFLATE level 6, to match the archives byte for byte) that zlib
        # runs without the GIL: a thread per id (up to 4) spreads it over the cores while the
        # media still stream, so that it ends with them rather than after them.
        # The commit (flush and rename, on the critical path once the media are in) keeps the normal
        # priority: its own pool, where waiting for the encode blocks no encoder.
        workers = max(2, min(4, len(staged)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="si-assemble",
                                initializer=_background_priority) as pool, \
                ThreadPoolExecutor(max_workers=2, thread_name_prefix="si-commit") as commits:

            def commit(k: int) -> BundleResult:
                res = _commit(staged[k], fetched[k], encoded[k].result(), cdn_url, manifest)
                finished(res)
                return res

            def landed(n: int, res: FetchResult | None) -> None:
                k, i = keys[n]
                fetched[k][i] = res
                with lock:
                    if staged[k].parts[i].kind not in _MEDIA:
                        small_left[k] -= 1
                        if small_left[k] == 0:
                            encoded[k] = pool.submit(_encode, staged[k], fetched[k])
                    all_left[k] -= 1
                    if all_left[k] == 0:
                        committed[k] = commits.submit(commit, k)

            if keys:
                transfer.fetch_many([staged[k].jobs[i] for k, i in keys], on_result=landed)
            for k in staged:
                results[k] = committed[k].result()
    finally:
        for s in staged.values():
            shutil.rmtree(s.staging, ignore_errors=True)
    return [r for r in results if r is not None]
