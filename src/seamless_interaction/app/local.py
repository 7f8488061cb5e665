"""What is on disk under a local dataset folder: bundles per file id, their sizes and completeness.

Pure filesystem code (no Streamlit), shared by the File management, Download and Viewer pages. It reads
the layout both routes write (``root/{label}/{split}/{batch:04d}/{archive:04d}/{file_id}.{ext}``,
FORMAT.md section 3) and also reports leftovers: ``.part`` files of interrupted transfers and ``.tar``
archives downloaded without extraction.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from seamless_interaction.base.ids import FILE_ID_RE
from seamless_interaction.constants import BUNDLE_EXTENSIONS
from seamless_interaction.local.layout import TMP_SUFFIX

__all__ = ["LocalBundle", "LocalInventory", "delete_bundles", "scan_local_dir"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LocalBundle:
    """The local files of one file id in one archive folder."""

    file_id: str
    label: str
    split: str
    batch: int
    archive: int
    sizes: dict[str, int]  # extension -> bytes, only for files that exist

    @property
    def folder(self) -> str:
        return f"{self.label}/{self.split}/{self.batch:04d}/{self.archive:04d}"

    @property
    def complete(self) -> bool:
        """All four files (json, mp4, npz, wav) are present."""
        return all(ext in self.sizes for ext in BUNDLE_EXTENSIONS)

    @property
    def missing(self) -> list[str]:
        return [ext for ext in BUNDLE_EXTENSIONS if ext not in self.sizes]

    @property
    def size_bytes(self) -> int:
        return sum(self.sizes.values())

    @property
    def interaction_key(self) -> str:
        return self.file_id[:19]

    def paths(self, root: Path | str) -> dict[str, Path]:
        base = Path(root) / self.folder
        return {ext: base / f"{self.file_id}.{ext}" for ext in self.sizes}


@dataclass(frozen=True)
class LocalInventory:
    """Everything found under one root."""

    root: Path
    bundles: list[LocalBundle]
    partial_files: list[tuple[str, int]] = field(default_factory=list)  # (relative path, bytes)
    tar_files: list[tuple[str, int]] = field(default_factory=list)

    @property
    def file_ids(self) -> set[str]:
        return {b.file_id for b in self.bundles}

    @property
    def complete_ids(self) -> set[str]:
        return {b.file_id for b in self.bundles if b.complete}

    @property
    def size_bytes(self) -> int:
        return sum(b.size_bytes for b in self.bundles) + sum(s for _, s in self.partial_files) \
            + sum(s for _, s in self.tar_files)

    def bundle(self, file_id: str) -> LocalBundle | None:
        """The most complete local bundle of ``file_id`` (duplicates can sit in two archives)."""
        found = [b for b in self.bundles if b.file_id == file_id]
        return max(found, key=lambda b: (b.complete, len(b.sizes)), default=None)

    def complete_interactions(self) -> set[str]:
        """Interaction keys with at least two complete local participant bundles."""
        count: dict[str, int] = {}
        for fid in self.complete_ids:
            count[fid[:19]] = count.get(fid[:19], 0) + 1
        return {key for key, n in count.items() if n >= 2}


def _is_numbered(name: str) -> bool:
    return len(name) == 4 and name.isdigit()


def scan_local_dir(root: Path | str) -> LocalInventory:
    """Walk the four layout levels under ``root``; a missing root is an empty inventory."""
    root = Path(root).expanduser()
    bundles: dict[tuple[str, str, str, int, int], dict[str, int]] = {}
    partial: list[tuple[str, int]] = []
    tars: list[tuple[str, int]] = []
    if not root.is_dir():
        return LocalInventory(root, [])
    for label_dir in _subdirs(root):
        for split_dir in _subdirs(label_dir):
            for batch_dir in _subdirs(split_dir):
                if not _is_numbered(batch_dir.name):
                    continue
                for entry in _entries(batch_dir):
                    if entry.is_file() and entry.name.endswith((".tar", ".tar" + TMP_SUFFIX)):
                        rel = f"{label_dir.name}/{split_dir.name}/{batch_dir.name}/{entry.name}"
                        (partial if entry.name.endswith(TMP_SUFFIX) else tars).append((rel, _size(entry)))
                    if not (entry.is_dir() and _is_numbered(entry.name)):
                        continue
                    for f in _entries(entry):
                        if not f.is_file():
                            continue
                        stem, _, ext = f.name.partition(".")
                        rel = f"{label_dir.name}/{split_dir.name}/{batch_dir.name}/{entry.name}/{f.name}"
                        if ext.endswith(TMP_SUFFIX.lstrip(".")) or f.name.startswith("."):
                            partial.append((rel, _size(f)))
                            continue
                        if ext not in BUNDLE_EXTENSIONS or not FILE_ID_RE.match(stem):
                            continue
                        key = (stem, label_dir.name, split_dir.name, int(batch_dir.name), int(entry.name))
                        bundles.setdefault(key, {})[ext] = _size(f)
    out = [LocalBundle(fid, label, split, batch, archive, dict(sorted(sizes.items())))
           for (fid, label, split, batch, archive), sizes in sorted(bundles.items())]
    return LocalInventory(root, out, sorted(partial), sorted(tars))


def _subdirs(path: Path) -> list[Path]:
    return [p for p in _entries(path) if p.is_dir() and not p.name.startswith(".")]


def _entries(path: Path) -> list[Path]:
    try:
        return sorted(Path(e.path) for e in os.scandir(path))
    except OSError as exc:  # an unreadable folder is reported by omission, not a crash of the page
        logger.warning("cannot list %s: %s", path, exc)
        return []


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def delete_bundles(root: Path | str, bundles: Iterable[LocalBundle], manifest=None) -> list[Path]:
    """Delete the files of ``bundles`` under ``root`` (and their manifest lines); returns what was removed.

    Empty archive folders left behind are removed too. ``manifest`` is a
    :class:`~seamless_interaction.local.manifest.Manifest` of the same root, or None.
    """
    removed: list[Path] = []
    folders: set[Path] = set()
    for bundle in bundles:
        for path in bundle.paths(root).values():
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            removed.append(path)
            folders.add(path.parent)
            if manifest is not None:
                try:
                    manifest.remove(path)
                except (ValueError, OSError) as exc:
                    logger.warning("could not drop %s from the manifest: %s", path, exc)
    for folder in sorted(folders, reverse=True):
        try:
            folder.rmdir()  # only succeeds when empty
        except OSError:
            pass
    return removed


def disk_free_bytes(path: Path | str) -> int | None:
    """Free bytes on the filesystem holding ``path`` (or its nearest existing parent)."""
    p = Path(path).expanduser()
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return None
