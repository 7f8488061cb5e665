"""The per-file CDN route: fetch every object of a file id and assemble the archive's bundle.

For one file id this fetches audio, video, every npy feature, transcript, VAD and annotations
concurrently over the shared :class:`~seamless_interaction.transfer.Transfer`, then writes
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
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seamless_interaction.catalog import Catalog, FileRecord
from seamless_interaction.errors import IntegrityError
from seamless_interaction.formats import bundle_json, encode_json, encode_npz, parse_jsonl
from seamless_interaction.layout import archive_dir, bundle_paths
from seamless_interaction.manifest import Manifest
from seamless_interaction.transfer import Job, Transfer
from seamless_interaction.urls import Part, cdn_parts

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BundleResult:
    file_id: str
    paths: dict[str, Path]  # ext -> final path
    skipped: bool  # already complete on disk
    absent: tuple[str, ...] = ()  # optional parts the CDN did not have


def plan_file_id(catalog: Catalog, cdn_url: str, file_id: str, *, movement_v4: bool = True) -> tuple[FileRecord, list[Part]]:
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
    rec, parts = plan_file_id(catalog, cdn_url, file_id, movement_v4=movement_v4)
    final = bundle_paths(local_dir, rec.label, rec.split, rec.batch, rec.archive, rec.file_id)
    if not force and bundle_complete(final, manifest, Path(local_dir)):
        return BundleResult(rec.file_id, final, skipped=True)

    target = archive_dir(local_dir, rec.label, rec.split, rec.batch, rec.archive)
    target.mkdir(parents=True, exist_ok=True)
    # A staging folder per file id, inside the target folder so that the final renames stay on one
    # filesystem; hidden, and removed whatever happens.
    staging = target / f".{rec.file_id}.cdn-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        jobs = []
        for part in parts:
            # Media go straight to disk (large); npy/jsonl are small enough to hold in memory but
            # take the same verified, retried path.
            name = part.name.replace(":", "__")
            jobs.append(Job(url=part.url, dest=staging / name, optional=not part.required))
        results = transfer.fetch_many(jobs)
        got: dict[str, Path] = {}
        absent = []
        for part, res in zip(parts, results):
            if res is None:
                absent.append(part.name)
            else:
                got[part.name] = res.path
        arrays = {}
        for part in parts:
            if part.kind == "feature" and part.name in got:
                arrays[part.name] = _load_npy(got[part.name], part.url)
        annotations = {}
        for part in parts:
            if part.kind == "annotation" and part.name in got:
                annotations[part.name.split(":", 1)[1]] = parse_jsonl(got[part.name].read_bytes(), name=part.url)
        transcript = (parse_jsonl(got["metadata:transcript"].read_bytes(), name="transcript")
                      if "metadata:transcript" in got else None)
        vad = parse_jsonl(got["metadata:vad"].read_bytes(), name="vad")
        staged_npz = staging / "bundle.npz"
        staged_npz.write_bytes(encode_npz(arrays))
        staged_json = staging / "bundle.json"
        staged_json.write_bytes(encode_json(bundle_json(rec.file_id, transcript, vad, annotations)))
        sources = {"wav": got["wav"], "mp4": got["mp4"], "npz": staged_npz, "json": staged_json}
        urls = {"wav": parts[0].url, "mp4": parts[1].url, "npz": cdn_url, "json": cdn_url}
        for ext in ("wav", "mp4", "npz", "json"):
            _fsync(sources[ext])
            os.replace(sources[ext], final[ext])
            if manifest is not None:
                manifest.record(final[ext], urls[ext], final[ext].stat().st_size, None)
        return BundleResult(rec.file_id, final, skipped=False, absent=tuple(absent))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _load_npy(path: Path, url: str) -> np.ndarray:
    try:
        return np.load(io.BytesIO(path.read_bytes()), allow_pickle=False)
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
) -> list[BundleResult]:
    """Validate every id against the catalog first (nothing is fetched if one is unknown), then
    gather a few ids at a time; their parts share the transfer's bounded connection pool, so the
    large media of one id overlap with the many small features of the next.
    """
    for fid in file_ids:
        catalog.record(fid)
    results: list[BundleResult] = []
    with ThreadPoolExecutor(max_workers=max(1, min(4, len(file_ids)))) as pool:
        futures = [pool.submit(gather_file_id, transfer, catalog, cdn_url, local_dir, fid, manifest=manifest)
                   for fid in file_ids]
        try:
            for fut in futures:
                res = fut.result()
                if on_done:
                    on_done(res)
                results.append(res)
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
    return results
