"""Local trees for the export tests: the mirror's sample extracted in the standard layout, plus a
"dirty" tree of bundles cloned from it with the cases the exports must survive (suffixed id,
partner WAVs of different lengths, an empty VAD, a missing partner, 3D points in the npz)."""

from __future__ import annotations

import json
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from seamless_interaction.base import formats
from seamless_interaction.local import layout


@dataclass
class DirtyTree:
    root: Path
    mismatch_key: str  # partners' WAVs differ by MISMATCH_SAMPLES; the first id has the suffix
    empty_vad_key: str  # the second participant has an empty metadata:vad
    lonely_key: str  # one participant only: the partner was never downloaded
    points_key: str  # first participant's npz has movement_v4:pred_vertices and emotion_valence


MISMATCH_SAMPLES = 7


def _extract(mirror, root: Path) -> Path:
    for tar in sorted(mirror.hub_dir.rglob("*.tar")):
        dest = root / tar.relative_to(mirror.hub_dir).with_suffix("")
        dest.mkdir(parents=True, exist_ok=True)
        with tarfile.open(tar) as tf:
            tf.extractall(dest, filter="data")
    return root


@pytest.fixture(scope="session")
def local_tree(sample_mirror, tmp_path_factory) -> Path:
    """The mirror sample as a downloaded tree: ``root/{label}/{split}/{batch}/{archive}/{id}.*``."""
    return _extract(sample_mirror, tmp_path_factory.mktemp("export_local") / "data")


def _bundle(root: Path, fid: str) -> dict[str, Path]:
    return layout.find_bundle(root, fid)


def clone(src: dict[str, Path], dest_root: Path, fid: str, *, vad: list | None = None, drop_samples: int = 0,
          extra_arrays: dict[str, np.ndarray] | None = None) -> dict[str, Path]:
    """Copy a bundle under a new file id, optionally replacing its VAD, shortening its WAV, adding arrays."""
    paths = layout.bundle_paths(dest_root, "improvised", "dev", 7, 0, fid)
    paths["json"].parent.mkdir(parents=True, exist_ok=True)
    doc = json.loads(src["json"].read_text())
    doc["id"] = fid
    if vad is not None:
        doc["metadata:vad"] = vad
    paths["json"].write_bytes(formats.encode_json(doc))
    audio, sr = formats.decode_wav(src["wav"].read_bytes())
    paths["wav"].write_bytes(formats.encode_wav_float32(audio[:len(audio) - drop_samples], sr))
    with np.load(src["npz"]) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays.update(extra_arrays or {})
    paths["npz"].write_bytes(formats.encode_npz(arrays))
    shutil.copyfile(src["mp4"], paths["mp4"])
    return paths


@pytest.fixture(scope="session")
def dirty_tree(sample_mirror, local_tree, tmp_path_factory) -> DirtyTree:
    root = tmp_path_factory.mktemp("export_dirty") / "data"
    a, b = next(p for p in sample_mirror.pairs if p[0] in sample_mirror.suffixed or p[1] in sample_mirror.suffixed)
    sa, sb = _bundle(local_tree, a), _bundle(local_tree, b)
    clone(sa, root, "V00_S0001_I00000001_P0001A")
    clone(sb, root, "V00_S0001_I00000001_P0002", drop_samples=MISMATCH_SAMPLES)
    clone(sa, root, "V00_S0002_I00000002_P0003")
    clone(sb, root, "V00_S0002_I00000002_P0004", vad=[])
    clone(sa, root, "V00_S0003_I00000003_P0005B")
    with np.load(sa["npz"]) as npz:
        n = len(npz["smplh:is_valid"])
    rows = np.arange(n, dtype=np.float32)
    clone(sa, root, "V00_S0004_I00000004_P0007", extra_arrays={
        "movement_v4:pred_vertices": np.stack([np.stack([rows, rows + 1, rows + 2], axis=-1)] * 5, axis=1),
        "movement_v4:emotion_valence": (rows / max(n, 1)).reshape(n, 1),
    })
    clone(sb, root, "V00_S0004_I00000004_P0008")
    return DirtyTree(root, "V00_S0001_I00000001", "V00_S0002_I00000002", "V00_S0003_I00000003",
                     "V00_S0004_I00000004")

