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
from seamless_interaction.remote.transfer import FetchResult, Job, Transfer
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
    # Media go straight to disk (large); npy/jsonl are small enough to hold in memory but take the
    # same verified, retried path.
    jobs = [Job(url=part.url, dest=staging / part.name.replace(":", "__"), optional=not part.required)
            for part in parts]
    return _Staged(rec, parts, final, staging, jobs)


_MEDIA = ("audio", "video")


def _fetch_rank(part: Part) -> int:
    """Fetch order: the small parts first, then the audio, then the video.

    The CDN gives no sizes up front, so the transfer starts these jobs in the order given. The
    small parts first let the npz/json assembly (CPU work) run while the media stream. The video
    last costs nothing: it is fetched in segments, and connections that run out of jobs split
    whatever range remains, so it still ends with the rest. The audio, a single stream, goes
    before it so that it never trails at the end.
    """
    return {"video": 2, "audio": 1}.get(part.kind, 0)


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
    staged = _stage(catalog, cdn_url, local_dir, file_id, manifest=manifest, force=force, movement_v4=movement_v4)
    if manifest is not None:
        manifest.request([file_id], BUNDLE_EXTENSIONS)
    if isinstance(staged, BundleResult):
        return staged
    try:
        order = sorted(range(len(staged.jobs)), key=lambda i: _fetch_rank(staged.parts[i]))
        fetched = transfer.fetch_many([staged.jobs[i] for i in order])
        results: list[FetchResult | None] = [None] * len(order)
        for k, i in enumerate(order):
            results[i] = fetched[k]
        return _assemble(staged, results, cdn_url, manifest)
    finally:
        shutil.rmtree(staged.staging, ignore_errors=True)


def _assemble(staged: _Staged, results: list[FetchResult | None], cdn_url: str,
              manifest: Manifest | None) -> BundleResult:
    """Write ``{id}.npz`` and ``{id}.json`` from the fetched parts and move the four files into place."""
    return _commit(staged, results, _encode(staged, results), cdn_url, manifest)


def _encode(staged: _Staged, results: list[FetchResult | None]) -> tuple[str, ...]:
    """Stage ``bundle.npz`` and ``bundle.json`` from the small parts (the media are not needed yet).

    Returns the optional parts the CDN did not have.
    """
    got: dict[str, Path] = {}
    absent = []
    for part, res in zip(staged.parts, results):
        if part.kind in _MEDIA:
            continue
        if res is None:
            absent.append(part.name)
        else:
            got[part.name] = res.path
    arrays = {}
    for part in staged.parts:
        if part.kind == "feature" and part.name in got:
            arrays[part.name] = _load_npy(got[part.name], part.url)
    annotations = {}
    for part in staged.parts:
        if part.kind == "annotation" and part.name in got:
            annotations[part.name.split(":", 1)[1]] = parse_jsonl(got[part.name].read_bytes(), name=part.url)
    transcript = (parse_jsonl(got["metadata:transcript"].read_bytes(), name="transcript")
                  if "metadata:transcript" in got else None)
    vad = parse_jsonl(got["metadata:vad"].read_bytes(), name="vad")
    (staged.staging / "bundle.npz").write_bytes(encode_npz(arrays))
    (staged.staging / "bundle.json").write_bytes(
        encode_json(bundle_json(staged.rec.file_id, transcript, vad, annotations)))
    return tuple(absent)


def _commit(staged: _Staged, results: list[FetchResult | None], absent: tuple[str, ...], cdn_url: str,
            manifest: Manifest | None) -> BundleResult:
    """Move the media and the staged npz/json into place, each fsynced first."""
    parts, final = staged.parts, staged.final
    media = {part.name: res.path for part, res in zip(parts, results) if part.kind in _MEDIA and res is not None}
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
    if manifest is not None:
        manifest.record_many([(final[e], urls[e], final[e].stat().st_size, digests[e])
                              for e in ("wav", "mp4", "npz", "json")])
    return BundleResult(staged.rec.file_id, final, skipped=False, absent=absent)


def _load_npy(path: Path, url: str) -> np.ndarray:
    try:
        arr: np.ndarray = np.load(io.BytesIO(path.read_bytes()), allow_pickle=False)
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
) -> list[BundleResult]:
    """Gather several file ids; results in ``file_ids`` order.

    Every id is validated against the catalog first (nothing is fetched if one is unknown). Then
    the parts of all ids go to one :meth:`Transfer.fetch_many`, every video first, then the audio,
    then the small parts: the transfer sees the whole batch, so the large media overlap the many
    short requests and the connections finish together. Each id's npz/json are assembled as soon
    as its last part lands, while the others still download. ``on_done`` is called once per id as
    it completes (from a worker thread, one call at a time). On a failure the first error is
    raised; ids already assembled stay, the others leave nothing at a final path.
    """
    # Unknown ids, or rows the layout cannot hold (ArchiveRef checks them), fail before any write.
    refs = [catalog.record(fid).ref for fid in file_ids]
    del refs
    if manifest is not None:
        manifest.request(file_ids, BUNDLE_EXTENSIONS)
    results: list[BundleResult | None] = [None] * len(file_ids)
    staged: dict[int, _Staged] = {}
    for k, fid in enumerate(file_ids):
        s = _stage(catalog, cdn_url, local_dir, fid, manifest=manifest, force=False, movement_v4=movement_v4)
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
        # (id index, part index) in fetch order: the small parts id by id, then the media.
        keys = sorted(((k, i) for k, s in staged.items() for i in range(len(s.jobs))),
                      key=lambda ki: _fetch_rank(staged[ki[0]].parts[ki[1]]))
        fetched: dict[int, list[FetchResult | None]] = {k: [None] * len(s.jobs) for k, s in staged.items()}
        small_left = {k: sum(p.kind not in _MEDIA for p in s.parts) for k, s in staged.items()}
        all_left = {k: len(s.jobs) for k, s in staged.items()}
        encoded: dict[int, Future[tuple[str, ...]]] = {}
        committed: dict[int, Future[BundleResult]] = {}
        # Encoding is CPU work (npy parsing, DEFLATE): two threads overlap it with the transfers.
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="si-assemble") as pool:

            def commit(k: int) -> BundleResult:
                # Its encode was queued first, so it is running or done: no wait on a queued task.
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
                        committed[k] = pool.submit(commit, k)

            if keys:
                transfer.fetch_many([staged[k].jobs[i] for k, i in keys], on_result=landed)
            for k in staged:
                results[k] = committed[k].result()
    finally:
        for s in staged.values():
            shutil.rmtree(s.staging, ignore_errors=True)
    return [r for r in results if r is not None]
