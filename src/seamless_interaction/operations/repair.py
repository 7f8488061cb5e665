"""Repair what an audit found: refetch exactly the bad files, remove the leftovers of dead runs.

Per file id, with B its bad files (missing, corrupt, wrong size or checksum), within the modalities
that were asked for:

* all four bad: the whole bundle by the CDN route (``cdn.gather_file_id``), which is what fetching the
  id from scratch is;
* a bad ``.wav``/``.mp4``: that one CDN object (one GET; the media are stored byte for byte the same on
  the CDN and in the archives);
* a bad ``.npz``/``.json``: that member of its Hub archive by a Range read (an index of tar headers,
  cached, plus one small read), byte-identical to the archive. Should the archive be missing on the Hub
  (GH#25) or the read fail, the bundle is assembled by the CDN route in a scratch folder and only the
  bad files are moved in.

Bad files are moved aside first (member fetches skip a file that has the right size) and put back if
the refetch fails, so a failed repair leaves the tree as it was. Good files are never written.
Temp files of runs no longer active are removed; those of a live download are left alone.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from seamless_interaction.base.errors import SeamlessError
from seamless_interaction.base.ids import ArchiveRef
from seamless_interaction.constants import BUNDLE_EXTENSIONS
from seamless_interaction.local import layout
from seamless_interaction.operations.audit import (
    REFETCH_KINDS,
    BundleCheck,
    Problem,
    Report,
    is_active_temp,
    run_checks,
    sort_problems,
)
from seamless_interaction.remote.urls import cdn_parts, hub_archive_url
from seamless_interaction.routes.cdn import gather_file_id
from seamless_interaction.routes.members import fetch_archive_members

if TYPE_CHECKING:
    from seamless_interaction.catalog.tables import Catalog
    from seamless_interaction.local.manifest import Manifest
    from seamless_interaction.remote.transfer import Transfer

__all__ = ["repair"]

logger = logging.getLogger(__name__)


def repair(report: Report, jobs: list[BundleCheck], catalog: Catalog, *, manifest: Manifest | None,
           transfer: Transfer, cdn_url: str, hf_url: str, cache_dir: Path | str | None = None,
           deep: bool = False, confirm_video: bool = True, workers: int = 4) -> None:
    """Fix what ``report`` lists (in place): afterwards ``problems`` is what remains, ``repaired`` what was fixed."""
    local_dir = report.local_dir
    remote_missing = {p.archive for p in report.by_kind("missing_on_remote")}
    by_id = {j.file_id: j for j in jobs}
    bad_by_id: dict[str, list[Problem]] = {}
    for p in report.problems:
        if p.kind in REFETCH_KINDS and p.file_id is not None:
            bad_by_id.setdefault(p.file_id, []).append(p)
    fixed_ids: list[str] = []
    for fid, problems in bad_by_id.items():
        job = by_id[fid]
        # A problem without a path is an absent bundle: every file asked for.
        bad_exts = sorted({Path(p.path).suffix[1:] for p in problems if p.path}
                          | (set(job.modalities) if any(p.path is None for p in problems) else set()))
        try:
            _repair_bundle(job, bad_exts, catalog, local_dir, manifest, transfer, cdn_url, hf_url, cache_dir,
                           job.archive in remote_missing)
        except (SeamlessError, OSError) as exc:
            report.repair_errors.append(f"{fid}: {exc}")
            logger.error("repair of %s failed: %s", fid, exc)
            continue
        fixed_ids.append(fid)

    for p in [p for p in report.problems if p.kind == "temp_file"]:
        path = Path(p.path or "")
        if is_active_temp(path):
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        report.repaired.append(p)
        report.problems.remove(p)

    # Check the repaired bundles again; what is still wrong stays in the report.
    redo = [by_id[fid] for fid in fixed_ids]
    rechecked = {j.file_id: j for j in run_checks(redo, local_dir, manifest, deep, confirm_video, workers)}
    keep = [p for p in report.problems if not (p.file_id in rechecked and p.kind in REFETCH_KINDS)]
    for fid, job in rechecked.items():
        still = [q for q in job.problems if q.kind in REFETCH_KINDS]
        still_paths = {q.path for q in still}
        report.repaired += [p for p in bad_by_id[fid] if p.path is not None and p.path not in still_paths
                            or p.path is None and not still]
        keep += still
    report.problems = keep
    sort_problems(report)


def _repair_bundle(job: BundleCheck, bad_exts: list[str], catalog: Catalog, local_dir: Path,
                   manifest: Manifest | None, transfer: Transfer, cdn_url: str, hf_url: str,
                   cache_dir: Path | str | None, archive_missing: bool) -> None:
    fid, a, paths = job.file_id, job.archive, job.paths
    layout.make_archive_dir(local_dir, a)  # proven inside local_dir before anything is moved or fetched
    if len(bad_exts) == len(BUNDLE_EXTENSIONS):
        logger.info("repair %s: whole bundle by the CDN route", fid)
        gather_file_id(transfer, catalog, cdn_url, local_dir, fid, manifest=manifest, force=True)
        return
    aside = _Quarantine([paths[e] for e in bad_exts])
    try:
        parts = {p.name: p for p in cdn_parts(cdn_url, a.label, a.split, fid)}
        for ext in ("wav", "mp4"):
            if ext in bad_exts:
                logger.info("repair %s: .%s from the CDN", fid, ext)
                res = transfer.fetch(parts[ext].url, paths[ext])
                assert res is not None
                if manifest is not None:
                    manifest.record(paths[ext], parts[ext].url, res.size, res.sha256)
        members: list[str] = [e for e in ("npz", "json") if e in bad_exts]
        if members:
            done = False
            if not archive_missing:
                try:
                    logger.info("repair %s: %s by Range reads of %s", fid, "+".join(members),
                                hub_archive_url(hf_url, *a))
                    fetch_archive_members(transfer, None, hf_url, local_dir, a.label, a.split, a.batch, a.archive,
                                          file_ids=[fid],
                                          modalities=tuple(members), cache_dir=cache_dir, manifest=manifest)
                    done = True
                except (SeamlessError, OSError) as exc:
                    logger.warning("repair %s: Hub member read failed (%s); using the CDN route", fid, exc)
            if not done:
                _members_from_cdn(fid, a, paths, members, catalog, local_dir, manifest, transfer, cdn_url)
    except BaseException:
        aside.restore()
        raise
    aside.drop()


def _members_from_cdn(fid: str, a: ArchiveRef, paths: dict[str, Path], members: list[str], catalog: Catalog,
                      local_dir: Path, manifest: Manifest | None, transfer: Transfer, cdn_url: str) -> None:
    # Assembled in a scratch tree on the same filesystem, so the good media next to the bad files are not
    # rewritten; only the bad files are moved in.
    scratch = layout.inside(local_dir, layout.scratch_dir(local_dir, "repair"))
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        res = gather_file_id(transfer, catalog, cdn_url, scratch, fid, force=True)
        for e in members:
            os.replace(res.paths[e], paths[e])
            if manifest is not None:
                manifest.record_file(paths[e], cdn_url)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


class _Quarantine:
    """Bad files moved to hidden names beside themselves, restorable if the refetch fails."""

    def __init__(self, paths: list[Path]) -> None:
        self.moved: list[tuple[Path, Path]] = []
        for p in paths:
            if p.exists():
                aside = layout.quarantine_path(p)
                os.replace(p, aside)
                self.moved.append((p, aside))

    def restore(self) -> None:
        for p, aside in self.moved:
            if not p.exists():
                os.replace(aside, p)
            else:
                aside.unlink(missing_ok=True)
        self.moved = []

    def drop(self) -> None:
        for _, aside in self.moved:
            aside.unlink(missing_ok=True)
        self.moved = []
