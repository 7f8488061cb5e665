"""Audit a local tree against what was asked for, the catalog and the manifest: the findings, no writes.

What is expected. The manifest remembers every request (file id and modalities; the union of all of
them): a file id is expected to hold exactly the modalities asked for, so after ``download --only
npz,json`` a missing ``.mp4`` is not a problem. Where the manifest knows no request for a file id (trees
written by older versions, files copied in by hand), the whole bundle is expected when the id has a
local file, sits in a Hub archive extracted here, or lies in an explicit scope (``label``/``split``/
``batch``). ``only`` narrows every expectation to those modalities.

What is checked, per expected file (see :mod:`.checks` for the file checks):

* it exists (``missing``; one line for a file id none of whose expected files exist);
* it is intact (``corrupt``), and its size matches the manifest or the Hub extraction record
  (``size_mismatch``); with ``deep`` its sha256 matches the manifest's (``checksum_mismatch``);
* empty bundles of the release are ``placeholder``: reported, never repaired;
* leftovers of interrupted runs are ``temp_file``; archive folders the catalog does not name are
  ``extra_archive`` and bundle files the catalog puts in another archive are ``extra_file``; with
  ``check_remote`` every archive in scope gets a HEAD and a 404 is ``missing_on_remote`` (FORMAT.md 2.2).

One problem is reported per file, the first that applies in the order missing, corrupt, size_mismatch,
checksum_mismatch (a truncated file is "corrupt", not also "size_mismatch").
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seamless_interaction.base.errors import (
    InvalidIdError,
    NotDownloadedError,
    SeamlessError,
)
from seamless_interaction.base.ids import (
    ArchiveRef,
    FileId,
    validate_index,
    validate_label,
    validate_modalities,
    validate_split,
)
from seamless_interaction.constants import BUNDLE_EXTENSIONS
from seamless_interaction.local import filelock, layout
from seamless_interaction.local.archive import read_extraction_record
from seamless_interaction.local.manifest import sha256_file
from seamless_interaction.operations.checks import check_file
from seamless_interaction.remote.urls import hub_archive_url

if TYPE_CHECKING:
    from seamless_interaction.catalog.tables import Catalog
    from seamless_interaction.local.manifest import Manifest
    from seamless_interaction.remote.transfer import Transfer

__all__ = [
    "BundleCheck",
    "FAILING_KINDS",
    "KINDS",
    "Problem",
    "REFETCH_KINDS",
    "Report",
    "Scope",
    "audit",
    "check_scope",
    "is_active_temp",
    "run_checks",
    "sort_problems",
]

logger = logging.getLogger(__name__)

# Every kind of finding, in report order. Only FAILING_KINDS make the audit fail (exit code 1);
# the others describe the release or the remote and no repair can change them.
KINDS = ("missing", "corrupt", "size_mismatch", "checksum_mismatch", "temp_file",
         "placeholder", "missing_on_remote", "extra_archive", "extra_file")
FAILING_KINDS = frozenset({"missing", "corrupt", "size_mismatch", "checksum_mismatch", "temp_file"})
# Kinds that a refetch of the file fixes.
REFETCH_KINDS = frozenset({"missing", "corrupt", "size_mismatch", "checksum_mismatch"})


# ---------------------------------------------------------------------------------------------------- records
@dataclass(frozen=True)
class Problem:
    """One finding. ``path`` is absolute; ``file_id``/``archive`` are set when they apply."""

    kind: str
    path: str | None
    detail: str
    file_id: str | None = None
    archive: ArchiveRef | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["archive"] = str(self.archive) if self.archive else None
        return d


@dataclass
class Report:
    """The audit's findings; after a repair, ``problems`` are what remains and ``repaired`` what was fixed."""

    local_dir: Path
    problems: list[Problem] = field(default_factory=list)
    archives: list[ArchiveRef] = field(default_factory=list)  # the scope
    bundles_checked: int = 0
    files_checked: int = 0
    repaired: list[Problem] = field(default_factory=list)
    repair_errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No failing problem remains (placeholders, remote gaps and extras do not count)."""
        return not any(p.kind in FAILING_KINDS for p in self.problems) and not self.repair_errors

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def counts(self) -> dict[str, int]:
        """Problems per kind, every kind listed (zero included), in report order."""
        c = Counter(p.kind for p in self.problems)
        return {k: c.get(k, 0) for k in KINDS}

    def by_kind(self, kind: str) -> list[Problem]:
        return [p for p in self.problems if p.kind == kind]

    def to_dict(self) -> dict[str, Any]:
        return {
            "local_dir": str(self.local_dir),
            "ok": self.ok,
            "archives": [str(a) for a in self.archives],
            "bundles_checked": self.bundles_checked,
            "files_checked": self.files_checked,
            "counts": self.counts(),
            "problems": [p.to_dict() for p in self.problems],
            "repaired": [p.to_dict() for p in self.repaired],
            "repair_errors": list(self.repair_errors),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def summary(self, max_lines_per_kind: int = 10) -> str:
        """Human-readable text: one line per problem (capped per kind), then the counts."""
        lines = []
        for kind in KINDS:
            found = self.by_kind(kind)
            for p in found[:max_lines_per_kind]:
                where = p.path or p.file_id or ""
                lines.append(f"{kind:18} {where}: {p.detail}")
            if len(found) > max_lines_per_kind:
                lines.append(f"{kind:18} ... and {len(found) - max_lines_per_kind} more")
        for p in self.repaired:
            lines.append(f"{'repaired':18} {p.path or p.file_id}: was {p.kind} ({p.detail})")
        for err in self.repair_errors:
            lines.append(f"{'repair failed':18} {err}")
        counts = ", ".join(f"{n} {k}" for k, n in self.counts().items() if n)
        lines.append(
            f"checked {self.bundles_checked} bundles ({self.files_checked} files) in {len(self.archives)} "
            f"archive folders under {self.local_dir}: " + (counts or "no problems")
            + (f"; repaired {len(self.repaired)}" if self.repaired else "")
            + ("" if self.ok else " -> FAILED")
        )
        return "\n".join(lines)


@dataclass
class BundleCheck:
    """The expected files of one file id (``modalities``) and what checking them found."""

    file_id: str
    archive: ArchiveRef
    paths: dict[str, Path]
    modalities: tuple[str, ...]
    problems: list[Problem] = field(default_factory=list)
    files: int = 0


@dataclass(frozen=True)
class Scope:
    """The checked arguments of an audit (see :func:`check_scope`)."""

    local_dir: Path
    label: str | None
    split: str | None
    batch: int | None
    only: tuple[str, ...]

    @property
    def explicit(self) -> bool:
        return self.label is not None or self.split is not None or self.batch is not None


# ------------------------------------------------------------------------------------------------ arguments
def check_scope(local_dir: Path | str, *, label: str | None = None, split: str | None = None,
                batch: int | None = None, only: Iterable[str] | None = None) -> Scope:
    """The audit's arguments, checked before any catalog, network or file read.

    Raises NotDownloadedError for a ``local_dir`` that does not exist or is not a folder, and
    InvalidIdError for a bad label, split, batch or modality, or a batch without label and split.
    """
    root = Path(local_dir).expanduser()
    if not root.exists():
        raise NotDownloadedError(f"verify: {root} does not exist; nothing was downloaded there")
    if not root.is_dir():
        raise NotDownloadedError(f"verify: {root} is a file, not a dataset folder")
    label = validate_label(label) if label is not None else None
    split = validate_split(split) if split is not None else None
    if batch is not None:
        batch = validate_index(batch, "batch")
        if label is None or split is None:
            raise InvalidIdError("verify: batch needs label and split too")
    mods = validate_modalities(tuple(only)) if only is not None else BUNDLE_EXTENSIONS
    return Scope(root, label, split, batch, tuple(m for m in BUNDLE_EXTENSIONS if m in mods))


# --------------------------------------------------------------------------------------------------- the audit
def audit(scope: Scope, catalog: Catalog, *, manifest: Manifest | None = None, deep: bool = False,
          check_remote: bool = False, transfer: Transfer | None = None, hf_url: str | None = None,
          workers: int = 4, confirm_video: bool = True) -> tuple[Report, list[BundleCheck]]:
    """The findings within ``scope`` and the bundle checks behind them (the repair reuses those)."""
    local_dir = scope.local_dir
    if scope.batch is not None:
        assert scope.label is not None and scope.split is not None
        have = catalog.batches(scope.label, scope.split)
        if scope.batch not in have:
            raise InvalidIdError(f"verify: batch {scope.batch} of {scope.label}/{scope.split} is not in the "
                                 f"catalog (it has batches {_ranges(have)})")
    if check_remote and (transfer is None or hf_url is None):
        raise ValueError("verify: check_remote=True needs transfer and hf_url")
    requested = manifest.requested() if manifest is not None else {}
    on_disk, temps = layout.archive_refs(local_dir, label=scope.label, split=scope.split, batch=scope.batch)
    expected: set[ArchiveRef] = set()
    if scope.explicit:
        for lab, spl in catalog.labels_splits():
            if (scope.label is None or lab == scope.label) and (scope.split is None or spl == scope.split):
                for b in catalog.batches(lab, spl):
                    if scope.batch is None or b == scope.batch:
                        expected.update(ArchiveRef(lab, spl, b, a) for a in catalog.archives(lab, spl, b))
    asked = _requested_archives(catalog, requested, scope)
    report = Report(local_dir, archives=sorted(on_disk | expected | asked))

    jobs, extras = _plan_checks(scope, catalog, report.archives, expected, requested, temps)
    report.problems += extras
    for job in run_checks(jobs, local_dir, manifest, deep, confirm_video, workers):
        report.problems += job.problems
        report.files_checked += job.files
    report.bundles_checked = len(jobs)

    if check_remote:
        assert transfer is not None and hf_url is not None
        named = [a for a in report.archives if _named(catalog, a)]
        for a in sorted(_missing_on_remote(transfer, hf_url, named)):
            report.problems.append(Problem("missing_on_remote", hub_archive_url(hf_url, *a),
                                           "the catalog names this archive but the Hub answers 404", None, a))
    sort_problems(report)
    return report, jobs


def sort_problems(report: Report) -> None:
    report.problems.sort(key=lambda p: (KINDS.index(p.kind), p.path or "", p.file_id or ""))


def _ranges(values: list[int]) -> str:
    if not values:
        return "none"
    return f"{values[0]}..{values[-1]}" if values == list(range(values[0], values[-1] + 1)) else \
        ", ".join(map(str, values))


def _requested_archives(catalog: Catalog, requested: dict[str, frozenset[str]], scope: Scope) -> set[ArchiveRef]:
    """Archives of the file ids asked for, within the scope: a request whose files are all gone still counts."""
    out = set()
    for fid in requested:
        if fid not in catalog:
            continue
        ref = catalog.record(fid).ref
        if (scope.label in (None, ref.label) and scope.split in (None, ref.split)
                and scope.batch in (None, ref.batch)):
            out.add(ref)
    return out


def _named(catalog: Catalog, a: ArchiveRef) -> bool:
    return a.archive in catalog.archives(a.label, a.split, a.batch)


def _plan_checks(scope: Scope, catalog: Catalog, archives: list[ArchiveRef], expected: set[ArchiveRef],
                 requested: dict[str, frozenset[str]], temps: list[Path]) -> tuple[list[BundleCheck], list[Problem]]:
    """Which files to check, plus the findings that need no file reads (temps, extras)."""
    local_dir = scope.local_dir
    jobs: list[BundleCheck] = []
    found: list[Problem] = [Problem("temp_file", str(p), _temp_detail(p)) for p in temps]
    for a in archives:
        d = layout.archive_dir(local_dir, a)
        named = _named(catalog, a)
        local_names = [e.name for e in d.iterdir()] if d.is_dir() else []
        if not named:
            found.append(Problem("extra_archive", str(d), "the catalog names no archive here (FORMAT.md 2.2)",
                                 None, a))
        for name in local_names:
            if layout.is_temp_name(name):
                found.append(Problem("temp_file", str(d / name), _temp_detail(d / name), None, a))
        if not named:
            continue
        ids = catalog.archive_file_ids(*a)
        wanted = set(ids)
        present: set[str] = set()
        for name in local_names:
            fid, _, ext = name.partition(".")
            if ext not in BUNDLE_EXTENSIONS or name.startswith("."):
                continue
            if fid in wanted:
                present.add(fid)
            else:
                try:
                    FileId.parse(fid)
                except (ValueError, SeamlessError):
                    continue  # not a bundle file: the user's own, left alone
                found.append(Problem("extra_file", str(d / name), "the catalog puts this file id elsewhere",
                                     fid, a))
        # A Hub extraction promises the whole archive; an explicit scope asks for it.
        whole = a in expected or read_extraction_record(local_dir, a) is not None
        for fid in ids:
            asked = requested.get(fid)
            if asked is None:
                if not (fid in present or whole):
                    continue
                asked = frozenset(BUNDLE_EXTENSIONS)
            mods = tuple(m for m in scope.only if m in asked)
            if mods:
                jobs.append(BundleCheck(fid, a, layout.bundle_paths(local_dir, a, fid), mods))
    return jobs, found


def run_checks(jobs: list[BundleCheck], local_dir: Path, manifest: Manifest | None, deep: bool,
               confirm_video: bool, workers: int) -> list[BundleCheck]:
    """Check every job's files (again, when called twice); returns the jobs with their findings."""
    sizes: dict[ArchiveRef, dict[str, int]] = {}
    for job in jobs:  # fill the cache before the threads read it
        if job.archive not in sizes:
            record = read_extraction_record(local_dir, job.archive) or {}
            sizes[job.archive] = {str(k): int(v) for k, v in (record.get("members") or {}).items()}

    def one(job: BundleCheck) -> BundleCheck:
        job.problems, job.files = [], 0
        return _check_bundle(job, manifest, sizes[job.archive], deep, confirm_video)

    if workers <= 1 or len(jobs) <= 1:
        return [one(j) for j in jobs]
    # zlib, hashing and file reads release the GIL, so threads overlap the npz checks.
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="si-verify") as pool:
        return list(pool.map(one, jobs))


def _check_bundle(job: BundleCheck, manifest: Manifest | None, known_sizes: dict[str, int], deep: bool,
                  confirm_video: bool) -> BundleCheck:
    empty: list[str] = []
    if len(job.modalities) > 1 and not any(job.paths[e].exists() for e in job.modalities):
        # One line for an absent bundle, not four.
        what = ("no file of this bundle is present" if len(job.modalities) == len(BUNDLE_EXTENSIONS)
                else f"none of its requested files ({', '.join(job.modalities)}) is present")
        job.problems.append(Problem("missing", None, what, job.file_id, job.archive))
        return job
    for ext in job.modalities:
        path = job.paths[ext]

        def problem(kind: str, detail: str, path: Path = path) -> None:
            job.problems.append(Problem(kind, str(path), detail, job.file_id, job.archive))

        try:
            size = path.stat().st_size
        except FileNotFoundError:
            problem("missing", f"the bundle's .{ext} file is absent")
            continue
        job.files += 1
        entry = manifest.get(path) if manifest is not None and manifest.contains(path) else None
        want_size = entry.size if entry is not None else known_sizes.get(path.name)
        try:
            error, is_empty = check_file(ext, path, job.file_id, confirm_video=confirm_video)
        except OSError as exc:
            error, is_empty = f"cannot read it ({exc})", False
        if error is not None:
            if want_size is not None and want_size != size:
                error += f"; {size} bytes, expected {want_size}"
            problem("corrupt", error)
            continue
        if want_size is not None and want_size != size:
            problem("size_mismatch", f"{size} bytes, the manifest says {want_size}")
            continue
        if deep and entry is not None and entry.sha256:
            digest = sha256_file(path)
            if digest != entry.sha256:
                problem("checksum_mismatch", f"sha256 {digest}, the manifest says {entry.sha256}")
                continue
        if is_empty:
            empty.append(ext)
    if empty:
        kinds = {"mp4": "MP4 without a video track", "wav": "WAV without samples", "npz": "zero-length arrays"}
        first = job.paths[empty[0]]
        job.problems.append(Problem(
            "placeholder", str(first),
            "empty in the release (FORMAT.md 3): " + ", ".join(kinds[e] for e in empty), job.file_id, job.archive))
    return job


def _missing_on_remote(transfer: Transfer, hf_url: str, archives: list[ArchiveRef]) -> set[ArchiveRef]:
    def one(a: ArchiveRef) -> ArchiveRef | None:
        return a if transfer.head(hub_archive_url(hf_url, *a), optional=True) is None else None

    with ThreadPoolExecutor(max_workers=max(1, min(transfer.max_connections, len(archives) or 1))) as pool:
        return {a for a in pool.map(one, archives) if a is not None}


# ------------------------------------------------------------------------------------------------ temp files
def _temp_detail(path: Path) -> str:
    pid = layout.staging_pid(path.name)
    if pid is not None:
        return f"staging folder of process {pid}" + (" (still running)" if _pid_alive(pid) else
                                                     " (no longer running)")
    if path.name.endswith(layout.LOCK_SUFFIX):
        return "download lock" + (" (held)" if filelock.held(path) else " (stale)")
    if path.name.endswith(layout.TMP_SUFFIX):
        return f"partial download of {path.stat().st_size} bytes" + (" (in progress)" if _in_progress(path) else "")
    return "temp file of an interrupted download"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _in_progress(temp: Path) -> bool:
    """A temp file whose download still runs: the transfer holds the destination's lock while it writes."""
    lock = layout.owner_lock(temp)
    return lock is not None and filelock.held(lock)


def is_active_temp(path: Path) -> bool:
    """Whether a temp file or folder belongs to work still running (and must be left alone)."""
    pid = layout.staging_pid(path.name)
    if pid is not None:
        return _pid_alive(pid)
    if path.name.endswith(layout.LOCK_SUFFIX):
        return filelock.held(path)
    return _in_progress(path)
