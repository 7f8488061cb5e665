"""Local layout (FORMAT.md section 3): ``root/{label}/{split}/{batch:04d}/{archive:04d}/{file_id}.{ext}``.

Both download routes write here, so everything downstream (loading, verify, the app) looks only here.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

from seamless_interaction.constants import BUNDLE_EXTENSIONS

TMP_SUFFIX = ".part"  # in-progress downloads; never a final name


def archive_dir(root: Path | str, label: str, split: str, batch: int, archive: int) -> Path:
    return Path(root) / label / split / f"{int(batch):04d}" / f"{int(archive):04d}"


def bundle_paths(root: Path | str, label: str, split: str, batch: int, archive: int, file_id: str) -> dict[str, Path]:
    """Final paths of a file id's four files, keyed by extension (json, mp4, npz, wav)."""
    d = archive_dir(root, label, split, batch, archive)
    return {ext: d / f"{file_id}.{ext}" for ext in BUNDLE_EXTENSIONS}


def find_bundle(root: Path | str, file_id: str) -> dict[str, Path]:
    """Locate a file id's files anywhere under root without the catalog (slow path: a glob)."""
    found: dict[str, Path] = {}
    for path in sorted(Path(root).glob(f"*/*/[0-9][0-9][0-9][0-9]/[0-9][0-9][0-9][0-9]/{file_id}.*")):
        ext = path.name[len(file_id) + 1:]
        if ext in BUNDLE_EXTENSIONS:
            found.setdefault(ext, path)
    return found


def glob_bundle(root: Path | str, file_id: str, where: tuple[str, str, int, int] | None = None) -> list[str]:
    """Existing files of ``file_id`` (json, mp4, npz, wav) as sorted strings, the official listing's shape.

    ``where`` is the (label, split, batch, archive) the catalog gives; without it every archive folder
    of the layout is searched. Temporary names (``.part`` and the like) are never listed. ``glob.glob``
    is the official toolkit's lister, kept so that code patching it for tests still works.
    """
    name = glob.escape(file_id)
    if where is not None:
        pattern = os.path.join(glob.escape(str(archive_dir(root, *where))), f"{name}.*")
    else:
        digits = "[0-9]" * 4
        pattern = os.path.join(glob.escape(str(root)), "*", "*", digits, digits, f"{name}.*")
    return sorted(p for p in glob.glob(pattern) if os.path.basename(p).rsplit(".", 1)[-1] in BUNDLE_EXTENSIONS)


def ensure_root(root: Path | str) -> None:
    """Create the dataset folder, as the official constructor did (``os.makedirs``, existing is fine)."""
    os.makedirs(root, exist_ok=True)
