"""Audit a local tree against the catalog and the manifest, and repair exactly what is bad.

What is checked, per file id in scope (see :func:`verify` for the scope rules):

* every one of the four files exists (``missing``);
* ``.npz`` loads with ``allow_pickle=False`` and every member decompresses (zip CRC checked);
  ``.json`` parses and its ``"id"`` is the file id; the ``.wav`` header's data chunk fits in the file;
  the ``.mp4``'s top-level boxes tile the file, a ``moov`` box exists and, when it declares a video
  track, PyAV opens it and finds the stream (``corrupt``);
* the size matches the manifest (or the Hub extraction record) where one is known (``size_mismatch``);
  with ``deep=True`` the sha256 too, where the manifest has one (``checksum_mismatch``);
* empty bundles of the release (FORMAT.md 3: 261/708-byte MP4 without a video track, 58-byte WAV,
  zero-length arrays) are ``placeholder``: a property of the data, reported but never repaired;
* leftovers of interrupted runs (``*.part``, sidecars, ``*.lock``, ``.*.extracting-*``, ``.*.cdn-*``)
  are ``temp_file``; archive folders the catalog does not name are ``extra_archive`` and bundle files
  the catalog puts in another archive are ``extra_file``; with ``check_remote`` every archive in scope
  gets a HEAD and a 404 is ``missing_on_remote`` (FORMAT.md 2.2, GH#25).

One problem is reported per file, the first that applies in the order missing, corrupt, size_mismatch,
checksum_mismatch (a truncated file is "corrupt", not also "size_mismatch").
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import shutil
import struct
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any


from seamless_interaction.local.archive import STATE_DIR, read_extraction_record
from seamless_interaction.constants import ALL_SPLITS, BUNDLE_EXTENSIONS
from seamless_interaction.base.digest import sha256_file
from seamless_interaction.base.errors import IntegrityError, SeamlessError
from seamless_interaction.base.formats import decode_npz, read_wav_info
from seamless_interaction.base.ids import FileId
from seamless_interaction.local.layout import archive_dir, bundle_paths
from seamless_interaction.remote.urls import cdn_parts, hub_archive_url

if TYPE_CHECKING:
    from seamless_interaction.catalog.tables import Catalog
    from seamless_interaction.fs import SeamlessInteractionFS
    from seamless_interaction.local.manifest import Manifest
    from seamless_interaction.remote.transfer import Transfer

__all__ = ["FAILING_KINDS", "KINDS", "Problem", "Report", "check_json", "check_mp4", "check_npz", "check_wav", "verify",
           "verify_fs"]

logger = logging.getLogger(__name__)

# Every kind of finding, in report order. Only FAILING_KINDS make the audit fail (exit code 1);
# the others describe the release or the remote and no repair can change them.
KINDS = ("missing", "corrupt", "size_mismatch", "checksum_mismatch", "temp_file",
         "placeholder", "missing_on_remote", "extra_archive", "extra_file")
FAILING_KINDS = frozenset({"missing", "corrupt", "size_mismatch", "checksum_mismatch", "temp_file"})
# Kinds that a refetch of the file fixes.
_REFETCH_KINDS = frozenset({"missing", "corrupt", "size_mismatch", "checksum_mismatch"})

Archive = tuple[str, str, int, int]

_FOUR = re.compile(r"^\d{4}$")
_STAGING_RE = re.compile(r"^\..+\.(?:extracting|cdn|bad)-(\d+)$")
_TEMP_SUFFIXES = (".part", ".part.json", ".part.json.tmp", ".lock")
_WAV_HEAD = 4096
# A moov box larger than this is not plausible for the release's videos (minutes long); refuse to read it.
_MAX_MOOV = 256 << 20
_CONTAINERS = (b"trak", b"mdia")


# ---------------------------------------------------------------------------------------------------- records
@dataclass(frozen=True)
class Problem:
    """One finding. ``path`` is absolute; ``file_id``/``archive`` are set when they apply."""

    kind: str
    path: str | None
    detail: str
    file_id: str | None = None
    archive: Archive | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["archive"] = "/".join(_archive_rel(self.archive)) if self.archive else None
        return d


@dataclass
class Report:
    """The audit's findings; after a repair, ``problems`` are what remains and ``repaired`` what was fixed."""

    local_dir: Path
    problems: list[Problem] = field(default_factory=list)
    archives: list[Archive] = field(default_factory=list)  # the scope
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
            "archives": ["/".join(_archive_rel(a)) for a in self.archives],
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


# ------------------------------------------------------------------------------------------------ file checks
def check_npz(path: Path) -> tuple[str | None, bool]:
    """(error, empty): every member decoded with pickles refused; empty when every array has length 0."""
    try:
        # Every member is inflated in full, so its CRC-32 is checked.
        arrays = list(decode_npz(path, name=path.name).values())
    except IntegrityError as exc:
        return str(exc), False
    empty = bool(arrays) and all(a.ndim > 0 and a.shape[0] == 0 for a in arrays)
    return None, empty


def check_json(path: Path, file_id: str) -> str | None:
    try:
        doc = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:
        return f"not valid JSON ({exc})"
    if not isinstance(doc, dict):
        return f"top level is {type(doc).__name__}, expected an object"
    if doc.get("id") != file_id:
        return f"\"id\" is {doc.get('id')!r}, expected {file_id!r}"
    return None


def check_wav(path: Path) -> tuple[str | None, bool]:
    """(error, empty): the header parses and its data chunk fits in the file; empty: no samples."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(_WAV_HEAD)
    try:
        info = read_wav_info(head, name=path.name, total_size=size)
    except IntegrityError as exc:
        return str(exc), False
    return None, info.data_size == 0


def _boxes(fh: Any, start: int, end: int, where: str) -> list[tuple[bytes, int, int]]:
    """(type, payload offset, box end) of the boxes tiling ``[start, end)``; raises IntegrityError."""
    out = []
    pos = start
    while pos < end:
        if end - pos < 8:
            raise IntegrityError(f"{where}: {end - pos} stray bytes at offset {pos}")
        fh.seek(pos)
        size, kind = struct.unpack(">I4s", fh.read(8))
        header = 8
        if size == 1:
            raw = fh.read(8)
            if len(raw) < 8:
                raise IntegrityError(f"{where}: box {kind!r} at offset {pos} has a cut 64-bit size")
            size, header = struct.unpack(">Q", raw)[0], 16
        elif size == 0:  # the box runs to the end of its container
            size = end - pos
        if size < header:
            raise IntegrityError(f"{where}: box {kind!r} at offset {pos} has an impossible size {size}")
        if pos + size > end:
            raise IntegrityError(f"{where}: box {kind!r} at offset {pos} needs {size} bytes, only {end - pos} "
                                 "remain (truncated)")
        out.append((kind, pos + header, pos + size))
        pos += size
    return out


def _handlers(fh: Any, start: int, end: int, where: str) -> list[bytes]:
    """Handler types (b"vide", b"soun", ...) of the tracks in a moov payload."""
    found = []
    for kind, a, b in _boxes(fh, start, end, where):
        if kind in _CONTAINERS:
            found += _handlers(fh, a, b, where)
        elif kind == b"hdlr" and b - a >= 12:
            fh.seek(a + 8)  # version/flags, pre_defined
            found.append(fh.read(4))
    return found


def check_mp4(path: Path, *, confirm: bool = True) -> tuple[str | None, bool]:
    """(error, empty): boxes tile the file and moov exists; empty: moov declares no video track."""
    size = path.stat().st_size
    try:
        with open(path, "rb") as fh:
            top = _boxes(fh, 0, size, path.name)
            moov = [(a, b) for kind, a, b in top if kind == b"moov"]
            if not moov:
                return f"no moov atom (boxes: {b' '.join(k for k, _, _ in top).decode('latin-1')})", False
            a, b = moov[0]
            if b - a > _MAX_MOOV:
                return f"moov atom of {b - a} bytes is implausibly large", False
            handlers = _handlers(fh, a, b, path.name + " moov")
    except IntegrityError as exc:
        return str(exc), False
    if b"vide" not in handlers:
        # FORMAT.md 3 and 7: 261/708-byte placeholders and 439 files without a video stream.
        return None, True
    if confirm:
        import av  # heavy import, only when there is a video track to confirm

        try:
            with av.open(str(path)) as container:
                if not container.streams.video:
                    return "PyAV finds no video stream although moov declares one", False
        except Exception as exc:  # av.error.* and friends
            return f"PyAV cannot open it ({type(exc).__name__}: {exc})", False
    return None, False


# --------------------------------------------------------------------------------------------------- the audit
@dataclass
class _BundleCheck:
    file_id: str
    archive: Archive
    paths: dict[str, Path]
    problems: list[Problem] = field(default_factory=list)
    files: int = 0


def _archive_rel(a: Archive) -> tuple[str, str, str, str]:
    return a[0], a[1], f"{int(a[2]):04d}", f"{int(a[3]):04d}"


def _expected_sizes(local_dir: Path, archive: Archive, cache: dict[Archive, dict[str, int]]) -> dict[str, int]:
    """Member sizes from the Hub extraction record of ``archive`` (empty if it came by the CDN route)."""
    if archive not in cache:
        record = read_extraction_record(local_dir, *archive) or {}
        cache[archive] = {str(k): int(v) for k, v in (record.get("members") or {}).items()}
    return cache[archive]


def _check_bundle(job: _BundleCheck, manifest: Manifest | None, known_sizes: dict[str, int], deep: bool,
                  confirm_video: bool) -> _BundleCheck:
    empty: list[str] = []
    if not any(p.exists() for p in job.paths.values()):
        # One line for an absent bundle, not four.
        job.problems.append(Problem("missing", None, "no file of this bundle is present", job.file_id, job.archive))
        return job
    for ext in BUNDLE_EXTENSIONS:
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
        error, is_empty = None, False
        try:
            if ext == "npz":
                error, is_empty = check_npz(path)
            elif ext == "json":
                error = check_json(path, job.file_id)
            elif ext == "wav":
                error, is_empty = check_wav(path)
            else:
                error, is_empty = check_mp4(path, confirm=confirm_video)
        except OSError as exc:
            error = f"cannot read it ({exc})"
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
        what = {"mp4": "MP4 without a video track", "wav": "WAV without samples", "npz": "zero-length arrays"}
        first = job.paths[empty[0]]
        job.problems.append(Problem(
            "placeholder", str(first),
            "empty in the release (FORMAT.md 3): " + ", ".join(what[e] for e in empty), job.file_id, job.archive))
    return job


def _discover(local_dir: Path, labels: Iterable[str], label: str | None, split: str | None,
              batch: int | None) -> tuple[set[Archive], list[Path]]:
    """Archive folders (or extraction records) on disk, and batch-level temp entries, within the filters."""
    found: set[Archive] = set()
    temps: list[Path] = []
    for lab in labels:
        if label is not None and lab != label:
            continue
        for spl in ALL_SPLITS:
            if split is not None and spl != split:
                continue
            split_dir = local_dir / lab / spl
            record_dir = local_dir / STATE_DIR / "archives" / lab / spl
            for base, is_record in ((split_dir, False), (record_dir, True)):
                if not base.is_dir():
                    continue
                for bdir in base.iterdir():
                    if not (bdir.is_dir() and _FOUR.match(bdir.name)):
                        continue
                    b = int(bdir.name)
                    if batch is not None and b != batch:
                        continue
                    for entry in bdir.iterdir():
                        name = entry.name
                        if is_record:
                            if name.endswith(".json") and _FOUR.match(name[:-5]):
                                found.add((lab, spl, b, int(name[:-5])))
                        elif entry.is_dir() and _FOUR.match(name):
                            found.add((lab, spl, b, int(name)))
                        elif _is_temp(name):
                            temps.append(entry)
    return found, temps


def _is_temp(name: str) -> bool:
    return name.endswith(_TEMP_SUFFIXES) or bool(_STAGING_RE.match(name))


def _temp_detail(path: Path) -> str:
    m = _STAGING_RE.match(path.name)
    if m:
        return f"staging folder of process {m.group(1)}" + (" (still running)" if _pid_alive(int(m.group(1))) else
                                                           " (no longer running)")
    if path.name.endswith(".lock"):
        return "download lock" + (" (held)" if _lock_held(path) else " (stale)")
    if path.name.endswith(".part"):
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


def _lock_held(lock: Path) -> bool:
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops our lock, if we got it
    return False


def _in_progress(part: Path) -> bool:
    """A ``.part`` whose download still runs: the transfer holds ``<dest>.lock`` while it writes."""
    name = part.name
    for suffix in (".part.json.tmp", ".part.json", ".part"):
        if name.endswith(suffix):
            return _lock_held(part.with_name(name[: -len(suffix)] + ".lock"))
    return False


def _active(path: Path) -> bool:
    m = _STAGING_RE.match(path.name)
    if m:
        return _pid_alive(int(m.group(1)))
    if path.name.endswith(".lock"):
        return _lock_held(path)
    return _in_progress(path)


def verify(
    local_dir: Path | str,
    catalog: Catalog,
    *,
    label: str | None = None,
    split: str | None = None,
    batch: int | None = None,
    manifest: Manifest | None = None,
    deep: bool = False,
    check_remote: bool = False,
    repair: bool = False,
    transfer: Transfer | None = None,
    cdn_url: str | None = None,
    hf_url: str | None = None,
    cache_dir: Path | str | None = None,
    workers: int = 4,
    confirm_video: bool = True,
) -> Report:
    """Audit ``local_dir`` (and with ``repair``, fix it); returns a :class:`Report`.

    Scope. Without filters, the archive folders present locally (``{label}/{split}/{batch}/{archive}/``,
    or a Hub extraction record) are audited: every file id with at least one local file is checked, and in
    archives extracted from the Hub every file id the catalog puts there must be present (so a user who
    fetched one pair gets no lines about the rest of the dataset). ``label``/``split``/``batch`` narrow
    that, and also make every catalog archive matching them expected: each of their file ids without
    files is reported ``missing``. ``batch`` needs ``label`` and ``split``.

    ``deep`` adds a sha256 of every file whose manifest entry has one (most entries of the two routes
    record only the size, so this costs a full read only where it can prove something). ``check_remote``
    HEADs every archive in scope. ``repair`` needs ``transfer``, ``cdn_url`` and ``hf_url``; see
    :func:`_repair` for what is fetched how. Problems found in the repaired bundles afterwards stay in
    the report.

    >>> report = verify("~/datasets/seamless_interaction", fs.catalog, manifest=fs.manifest)
    >>> print(report.summary()); sys.exit(report.exit_code)
    """
    local_dir = Path(local_dir).expanduser()
    if batch is not None and (label is None or split is None):
        raise ValueError("verify: batch needs label and split too")
    if repair and (transfer is None or cdn_url is None or hf_url is None):
        raise ValueError("verify: repair=True needs transfer, cdn_url and hf_url")
    explicit = label is not None or split is not None or batch is not None
    labels = sorted({ls[0] for ls in catalog.labels_splits()})
    on_disk, temps = _discover(local_dir, labels, label, split, batch)
    expected: set[Archive] = set()
    if explicit:
        for lab, spl in catalog.labels_splits():
            if (label is None or lab == label) and (split is None or spl == split):
                for b in catalog.batches(lab, spl):
                    if batch is None or b == batch:
                        expected.update((lab, spl, b, a) for a in catalog.archives(lab, spl, b))
    scope = sorted(on_disk | expected)
    report = Report(local_dir, archives=scope)

    jobs, extras = _plan_checks(local_dir, catalog, scope, expected, temps, report)
    report.problems += extras
    sizes_cache: dict[Archive, dict[str, int]] = {}
    checked = _run_checks(jobs, local_dir, manifest, sizes_cache, deep, confirm_video, workers)
    for job in checked:
        report.problems += job.problems
        report.files_checked += job.files
    report.bundles_checked = len(checked)

    remote_missing: set[Archive] = set()
    if check_remote:
        if transfer is None or hf_url is None:
            raise ValueError("verify: check_remote=True needs transfer and hf_url")
        remote_missing = _check_remote(transfer, hf_url, [a for a in scope if a in _catalog_archives(catalog, a)])
        for a in sorted(remote_missing):
            report.problems.append(Problem("missing_on_remote", hub_archive_url(hf_url, *a),
                                           "the catalog names this archive but the Hub answers 404", None, a))
    if repair:
        assert transfer is not None and cdn_url is not None and hf_url is not None
        _repair(report, jobs, catalog, local_dir, manifest, transfer, cdn_url, hf_url, cache_dir, remote_missing,
                sizes_cache, deep, confirm_video, workers)
    report.problems.sort(key=lambda p: (KINDS.index(p.kind), p.path or "", p.file_id or ""))
    return report


def _catalog_archives(catalog: Catalog, a: Archive) -> set[Archive]:
    return {(a[0], a[1], a[2], x) for x in catalog.archives(a[0], a[1], a[2])}


def _plan_checks(local_dir: Path, catalog: Catalog, scope: list[Archive], expected: set[Archive],
                 temps: list[Path], report: Report) -> tuple[list[_BundleCheck], list[Problem]]:
    """Which bundles to check, plus the findings that need no file reads (temps, extras)."""
    jobs: list[_BundleCheck] = []
    found: list[Problem] = [Problem("temp_file", str(p), _temp_detail(p)) for p in temps]
    for a in scope:
        d = archive_dir(local_dir, *a)
        ids = catalog.archive_file_ids(*a)
        named = a in _catalog_archives(catalog, a)
        local_names = [e.name for e in d.iterdir()] if d.is_dir() else []
        if not named:
            found.append(Problem("extra_archive", str(d), "the catalog names no archive here (FORMAT.md 2.2)",
                                 None, a))
        for name in local_names:
            if _is_temp(name):
                found.append(Problem("temp_file", str(d / name), _temp_detail(d / name), None, a))
        if not named:
            continue
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
        whole = a in expected or read_extraction_record(local_dir, *a) is not None
        for fid in ids:
            if fid in present or whole:
                jobs.append(_BundleCheck(fid, a, bundle_paths(local_dir, *a, fid)))
    return jobs, found


def _run_checks(jobs: list[_BundleCheck], local_dir: Path, manifest: Manifest | None,
                sizes_cache: dict[Archive, dict[str, int]], deep: bool, confirm_video: bool,
                workers: int) -> list[_BundleCheck]:
    for job in jobs:  # fill the cache before the threads read it
        _expected_sizes(local_dir, job.archive, sizes_cache)

    def one(job: _BundleCheck) -> _BundleCheck:
        job.problems, job.files = [], 0
        return _check_bundle(job, manifest, sizes_cache[job.archive], deep, confirm_video)

    if workers <= 1 or len(jobs) <= 1:
        return [one(j) for j in jobs]
    # zlib, hashing and file reads release the GIL, so threads overlap the npz checks.
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="si-verify") as pool:
        return list(pool.map(one, jobs))


def _check_remote(transfer: Transfer, hf_url: str, archives: list[Archive]) -> set[Archive]:
    def one(a: Archive) -> Archive | None:
        return a if transfer.head(hub_archive_url(hf_url, *a), optional=True) is None else None

    with ThreadPoolExecutor(max_workers=max(1, min(transfer.max_connections, len(archives) or 1))) as pool:
        return {a for a in pool.map(one, archives) if a is not None}


# -------------------------------------------------------------------------------------------------- the repair
def _repair(report: Report, jobs: list[_BundleCheck], catalog: Catalog, local_dir: Path, manifest: Manifest | None,
            transfer: Transfer, cdn_url: str, hf_url: str, cache_dir: Path | str | None,
            remote_missing: set[Archive], sizes_cache: dict[Archive, dict[str, int]], deep: bool,
            confirm_video: bool, workers: int) -> None:
    """Refetch exactly the bad files, then check their bundles again.

    Per file id, with B its bad files (missing, corrupt, wrong size or checksum):

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
    from seamless_interaction.routes.members import fetch_archive_members

    bad_by_id: dict[str, list[Problem]] = {}
    for p in report.problems:
        if p.kind in _REFETCH_KINDS and p.file_id is not None:
            bad_by_id.setdefault(p.file_id, []).append(p)
    fixed_ids: list[str] = []
    for fid, problems in bad_by_id.items():
        a = problems[0].archive
        assert a is not None
        paths = bundle_paths(local_dir, *a, fid)
        # A problem without a path is an absent bundle: all four files.
        bad_exts = sorted({Path(p.path).suffix[1:] if p.path else e for p in problems for e in BUNDLE_EXTENSIONS})
        try:
            _repair_bundle(fid, a, paths, bad_exts, catalog, local_dir, manifest, transfer, cdn_url, hf_url,
                           cache_dir, a in remote_missing, fetch_archive_members)
        except (SeamlessError, OSError) as exc:
            report.repair_errors.append(f"{fid}: {exc}")
            logger.error("repair of %s failed: %s", fid, exc)
            continue
        fixed_ids.append(fid)

    for p in [p for p in report.problems if p.kind == "temp_file"]:
        path = Path(p.path or "")
        if _active(path):
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        report.repaired.append(p)
        report.problems.remove(p)

    # Check the repaired bundles again; what is still wrong stays in the report.
    again = {fid for fid in fixed_ids}
    redo = [j for j in jobs if j.file_id in again]
    sizes_cache.clear()
    rechecked = {j.file_id: j for j in _run_checks(redo, local_dir, manifest, sizes_cache, deep, confirm_video,
                                                    workers)}
    keep = [p for p in report.problems if not (p.file_id in rechecked and p.kind in _REFETCH_KINDS)]
    for fid, job in rechecked.items():
        still = [q for q in job.problems if q.kind in _REFETCH_KINDS]
        still_paths = {q.path for q in still}
        report.repaired += [p for p in bad_by_id[fid] if p.path is not None and p.path not in still_paths
                            or p.path is None and not still]
        keep += still
    report.problems = keep


def _repair_bundle(fid: str, a: Archive, paths: dict[str, Path], bad_exts: list[str], catalog: Catalog,
                   local_dir: Path, manifest: Manifest | None, transfer: Transfer, cdn_url: str, hf_url: str,
                   cache_dir: Path | str | None, archive_missing: bool, fetch_archive_members: Callable) -> None:
    from seamless_interaction.routes.cdn import gather_file_id

    if len(bad_exts) == len(BUNDLE_EXTENSIONS):
        logger.info("repair %s: whole bundle by the CDN route", fid)
        gather_file_id(transfer, catalog, cdn_url, local_dir, fid, manifest=manifest, force=True)
        return
    aside = _Quarantine([paths[e] for e in bad_exts])
    try:
        parts = {p.name: p for p in cdn_parts(cdn_url, a[0], a[1], fid)}
        for ext in ("wav", "mp4"):
            if ext in bad_exts:
                logger.info("repair %s: .%s from the CDN", fid, ext)
                res = transfer.fetch(parts[ext].url, paths[ext])
                assert res is not None
                _record(manifest, paths[ext], parts[ext].url, res.sha256)
        members = [e for e in ("npz", "json") if e in bad_exts]
        if members:
            url = hub_archive_url(hf_url, *a)
            done = False
            if not archive_missing:
                try:
                    logger.info("repair %s: %s by Range reads of %s", fid, "+".join(members), url)
                    fetch_archive_members(transfer, None, hf_url, local_dir, *a, file_ids=[fid],
                                          modalities=tuple(members), cache_dir=cache_dir)
                    done = True
                except (SeamlessError, OSError) as exc:
                    logger.warning("repair %s: Hub member read failed (%s); using the CDN route", fid, exc)
            if done:
                for e in members:
                    _record(manifest, paths[e], f"{url}#{paths[e].name}", sha256_file(paths[e]))
            else:
                _members_from_cdn(fid, a, paths, members, catalog, local_dir, manifest, transfer, cdn_url)
    except BaseException:
        aside.restore()
        raise
    aside.drop()


def _members_from_cdn(fid: str, a: Archive, paths: dict[str, Path], members: Sequence[str], catalog: Catalog,
                      local_dir: Path, manifest: Manifest | None, transfer: Transfer, cdn_url: str) -> None:
    from seamless_interaction.routes.cdn import gather_file_id

    # Assembled in a scratch tree on the same filesystem, so the good media next to the bad files are not
    # rewritten; only the bad files are moved in.
    scratch = local_dir / STATE_DIR / f"repair-{os.getpid()}"
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        res = gather_file_id(transfer, catalog, cdn_url, scratch, fid, force=True)
        for e in members:
            os.replace(res.paths[e], paths[e])
            _record(manifest, paths[e], cdn_url, sha256_file(paths[e]))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _record(manifest: Manifest | None, path: Path, url: str, sha256: str | None) -> None:
    if manifest is not None and manifest.contains(path):
        manifest.record(path, url, path.stat().st_size, sha256)  # type: ignore[arg-type]


class _Quarantine:
    """Bad files moved to hidden names beside themselves, restorable if the refetch fails."""

    def __init__(self, paths: list[Path]) -> None:
        self.moved: list[tuple[Path, Path]] = []
        for p in paths:
            if p.exists():
                aside = p.with_name(f".{p.name}.bad-{os.getpid()}")
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


def verify_fs(fs: SeamlessInteractionFS, *, label: str | None = None, split: str | None = None,
              batch: int | None = None, deep: bool = False, check_remote: bool = False,
              repair: bool = False) -> Report:
    """:func:`verify` with everything taken from a :class:`~seamless_interaction.fs.SeamlessInteractionFS`."""
    needs_net = check_remote or repair
    return verify(
        fs.local_dir, fs.catalog, label=label, split=split, batch=batch, manifest=fs.manifest, deep=deep,
        check_remote=check_remote, repair=repair, transfer=fs.transfer if needs_net else None,
        cdn_url=fs.config.cdn_url, hf_url=fs.config.hf_url, cache_dir=fs.config.cache_dir,
    )
