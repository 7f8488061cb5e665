"""Local layout (FORMAT.md section 3): every path and temp-file name under a dataset folder.

``root/{label}/{split}/{batch:04d}/{archive:04d}/{file_id}.{ext}`` holds the bundles whichever route fetched
them, so everything downstream (loading, verify, the app) looks only here. Toolkit state lives in
``root/.seamless_interaction/``. Temp names of interrupted work (``.part`` files and their sidecars and
locks, hidden staging folders) are named here too, so the code that cleans them up recognises exactly
what the code that makes them writes.

Every folder a route writes into comes from :func:`make_archive_dir` (or :func:`inside`), which proves it
lies inside the dataset folder after resolving symlinks and ``..``: the single guard against labels,
splits or member names that would escape it.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterable
from pathlib import Path

from seamless_interaction.base.errors import UnsafePathError
from seamless_interaction.base.ids import ArchiveRef, validate_file_id
from seamless_interaction.constants import ALL_LABELS, ALL_SPLITS, BUNDLE_EXTENSIONS

__all__ = [
    "STATE_DIR", "TMP_SUFFIX", "TEMP_SUFFIXES", "archive_dir", "archive_refs", "bundle_paths", "bundle_paths_in",
    "ensure_root", "extraction_record", "find_bundle", "glob_bundle", "inside", "is_temp_name", "lock_path",
    "make_archive_dir", "member_path", "owner_lock",
    "part_path", "quarantine_path", "scratch_dir", "sidecar_path", "staging_dir", "staging_pid", "tar_path",
    "temp_files",
]

STATE_DIR = ".seamless_interaction"  # toolkit state under the root: manifest, extraction records, scratch
TMP_SUFFIX = ".part"  # in-progress downloads; never a final name
SIDECAR_SUFFIX = ".part.json"  # what a resumable .part holds (validator, segments)
LOCK_SUFFIX = ".lock"
# Every suffix a temp file of an interrupted run can have, the sidecar's own temp name included.
TEMP_SUFFIXES = (TMP_SUFFIX, SIDECAR_SUFFIX, SIDECAR_SUFFIX + ".tmp", LOCK_SUFFIX)
# Hidden per-process folders and files: ".{name}.{kind}-{pid}".
STAGING_KINDS = ("extracting", "cdn", "bad")
_STAGING_RE = re.compile(r"^\..+\.(?:" + "|".join(STAGING_KINDS) + r")-(\d+)$")
_FOUR = re.compile(r"^\d{4}$")


# ------------------------------------------------------------------------------------------ containment
def inside(root: Path | str, path: Path | str) -> Path:
    """``path`` (absolute, or relative to ``root``) proven to lie inside ``root``; raises UnsafePathError.

    Both are compared after ``..`` is collapsed and again after symlinks are resolved, so neither a
    crafted name nor a link inside the tree can send a write elsewhere.
    """
    base = Path(os.path.abspath(Path(root).expanduser()))
    p = Path(path)
    target = Path(os.path.abspath(p if p.is_absolute() else base / p))
    if target != base and base not in target.parents:
        raise UnsafePathError(f"refusing to write {str(path)!r}: it is not inside the dataset folder {base}")
    real_base, real = base.resolve(), target.resolve()
    if real != real_base and real_base not in real.parents:
        raise UnsafePathError(f"refusing to write {target}: it resolves to {real}, outside the dataset folder "
                              f"{real_base} (a symlink in the tree?)")
    return target


# ------------------------------------------------------------------------------------------ final paths
def archive_dir(root: Path | str, ref: ArchiveRef) -> Path:
    """The folder of one archive's bundles (whether or not it exists)."""
    return Path(root) / ref.label / ref.split / f"{ref.batch:04d}" / f"{ref.archive:04d}"


def make_archive_dir(root: Path | str, ref: ArchiveRef) -> Path:
    """:func:`archive_dir`, proven inside ``root`` and created: where a route writes."""
    d = inside(root, archive_dir(root, ref))
    d.mkdir(parents=True, exist_ok=True)
    return d


def member_path(folder: Path | str, name: str) -> Path:
    """``folder/name`` for a bundle file name from a remote archive: a plain, visible file name only."""
    if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\\" in name \
            or name.startswith(".") or "\x00" in name:
        raise UnsafePathError(f"member name {name!r} is not a plain file name")
    return Path(folder) / name


def bundle_paths(root: Path | str, ref: ArchiveRef, file_id: str) -> dict[str, Path]:
    """Final paths of a file id's four files, keyed by extension (json, mp4, npz, wav)."""
    return bundle_paths_in(archive_dir(root, ref), file_id)


def bundle_paths_in(folder: Path | str, file_id: str) -> dict[str, Path]:
    """The four file names of a file id in ``folder`` (an archive folder, or a copy such as a clip's)."""
    fid = validate_file_id(file_id)
    return {ext: Path(folder) / f"{fid}.{ext}" for ext in BUNDLE_EXTENSIONS}


def tar_path(root: Path | str, ref: ArchiveRef) -> Path:
    """Where a Hub archive is kept as a ``.tar`` (beside its extraction folder)."""
    return archive_dir(root, ref).parent / f"{ref.archive:04d}.tar"


def extraction_record(root: Path | str, ref: ArchiveRef) -> Path:
    """The record that a Hub archive was extracted completely (its members and their sizes)."""
    return (Path(root) / STATE_DIR / "archives" / ref.label / ref.split / f"{ref.batch:04d}"
            / f"{ref.archive:04d}.json")


def scratch_dir(root: Path | str, purpose: str) -> Path:
    """A per-process scratch folder under the state folder (same filesystem as the tree)."""
    return Path(root) / STATE_DIR / f"{purpose}-{os.getpid()}"


def find_bundle(root: Path | str, file_id: str) -> dict[str, Path]:
    """Locate a file id's files anywhere under root without the catalog (slow path: a glob)."""
    fid = validate_file_id(file_id)
    found: dict[str, Path] = {}
    for path in sorted(Path(root).glob(f"*/*/[0-9][0-9][0-9][0-9]/[0-9][0-9][0-9][0-9]/{fid}.*")):
        ext = path.name[len(fid) + 1:]
        if ext in BUNDLE_EXTENSIONS:
            found.setdefault(ext, path)
    return found


def glob_bundle(root: Path | str, file_id: str, where: ArchiveRef | tuple[str, str, int, int] | None = None
                ) -> list[str]:
    """Existing files of ``file_id`` (json, mp4, npz, wav) as sorted strings, the official listing's shape.

    ``where`` is the archive the catalog gives; without it every archive folder of the layout is searched.
    Temporary names (``.part`` and the like) are never listed. ``glob.glob`` is the official toolkit's
    lister, kept so that code patching it for tests still works.
    """
    name = glob.escape(validate_file_id(file_id))
    if where is not None:
        ref = where if isinstance(where, ArchiveRef) else ArchiveRef(*where)
        pattern = os.path.join(glob.escape(str(archive_dir(root, ref))), f"{name}.*")
    else:
        digits = "[0-9]" * 4
        pattern = os.path.join(glob.escape(str(root)), "*", "*", digits, digits, f"{name}.*")
    return sorted(p for p in glob.glob(pattern) if os.path.basename(p).rsplit(".", 1)[-1] in BUNDLE_EXTENSIONS)


def ensure_root(root: Path | str) -> None:
    """Create the dataset folder, as the official constructor did (``os.makedirs``, existing is fine)."""
    os.makedirs(root, exist_ok=True)


def archive_refs(root: Path | str, *, label: str | None = None, split: str | None = None,
                 batch: int | None = None) -> tuple[set[ArchiveRef], list[Path]]:
    """Archive folders (or extraction records) present under ``root``, and batch-level temp entries.

    Folders that do not follow the layout (other names, the user's own files) are ignored.
    """
    root = Path(root)
    found: set[ArchiveRef] = set()
    temps: list[Path] = []
    for lab in ALL_LABELS:
        if label is not None and lab != label:
            continue
        for spl in ALL_SPLITS:
            if split is not None and spl != split:
                continue
            for base, is_record in ((root / lab / spl, False), (root / STATE_DIR / "archives" / lab / spl, True)):
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
                                found.add(ArchiveRef(lab, spl, b, int(name[:-5])))
                        elif entry.is_dir() and _FOUR.match(name):
                            found.add(ArchiveRef(lab, spl, b, int(name)))
                        elif is_temp_name(name):
                            temps.append(entry)
    return found, temps


# ------------------------------------------------------------------------------------------ temp names
def part_path(dest: Path) -> Path:
    """The in-progress file a download of ``dest`` streams into."""
    return dest.with_name(dest.name + TMP_SUFFIX)


def sidecar_path(dest: Path) -> Path:
    """What the resumable ``.part`` of ``dest`` holds (validator, finished segments)."""
    return dest.with_name(dest.name + SIDECAR_SUFFIX)


def lock_path(dest: Path) -> Path:
    """The lock a download of ``dest`` holds while it writes."""
    return dest.with_name(dest.name + LOCK_SUFFIX)


def owner_lock(temp: Path) -> Path | None:
    """The lock held by the download that writes the temp file ``temp``, if it is one of a download's."""
    name = temp.name
    for suffix in (SIDECAR_SUFFIX + ".tmp", SIDECAR_SUFFIX, TMP_SUFFIX):
        if name.endswith(suffix):
            return temp.with_name(name[: -len(suffix)] + LOCK_SUFFIX)
    return None


def staging_dir(parent: Path, name: str, kind: str) -> Path:
    """Hidden per-process folder beside the final files (same filesystem, so the last move is a rename)."""
    if kind not in STAGING_KINDS:
        raise ValueError(f"staging kind {kind!r} is not one of {STAGING_KINDS}")
    return Path(parent) / f".{name}.{kind}-{os.getpid()}"


def quarantine_path(path: Path) -> Path:
    """Hidden name beside ``path`` where a bad file waits while it is refetched."""
    return staging_dir(path.parent, path.name, "bad")


def staging_pid(name: str) -> int | None:
    """The process id in a staging or quarantine name, or None if ``name`` is not one."""
    m = _STAGING_RE.match(name)
    return int(m.group(1)) if m else None


def is_temp_name(name: str) -> bool:
    """Whether a file or folder name is a leftover of some run (never a final name)."""
    return name.endswith(TEMP_SUFFIXES) or staging_pid(name) is not None


def temp_files(folder: Path) -> Iterable[Path]:
    """The temp entries directly in ``folder``."""
    if folder.is_dir():
        for entry in folder.iterdir():
            if is_temp_name(entry.name):
                yield entry
