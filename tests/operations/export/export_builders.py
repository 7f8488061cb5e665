"""Builders of local trees for the export tests: the mirror's sample extracted in the standard layout, plus a
"dirty" tree of bundles cloned from it with the cases the exports must survive (suffixed id,
partner WAVs of different lengths, an empty VAD, a missing partner, 3D points in the npz)."""

from __future__ import annotations

import json
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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


def extract(mirror, root: Path) -> Path:
    for tar in sorted(mirror.hub_dir.rglob("*.tar")):
        dest = root / tar.relative_to(mirror.hub_dir).with_suffix("")
        dest.mkdir(parents=True, exist_ok=True)
        with tarfile.open(tar) as tf:
            tf.extractall(dest, filter="data")
    return root


def bundle(root: Path, fid: str) -> dict[str, Path]:
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
