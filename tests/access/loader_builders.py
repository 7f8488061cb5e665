"""Builders of small real bundles (wav, mp4, npz, json) and WebDataset tars for the loading tests.

Every array encodes its own row index so that a test can tell exactly which rows a cut returned.
"""

from __future__ import annotations

import io
import tarfile
from fractions import Fraction
from pathlib import Path

import numpy as np

from seamless_interaction.base import formats

from seamless_interaction.base.ids import ArchiveRef
from seamless_interaction.local import layout

GRAY_STEP = 4  # frame i is a solid gray of level i * GRAY_STEP (survives H.264 within +-2)


def make_mp4(n_frames: int, fps: Fraction, *, width: int = 32, height: int = 24, gop: int = 10,
             noise: bool = False) -> bytes:
    """Frame i: solid gray i*GRAY_STEP; with ``noise`` the bottom half is random (large frames)."""
    import av

    rng = np.random.default_rng(0)

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.codec_context.gop_size = gop
        s.options = {"bf": "0"}
        for i in range(n_frames):
            img = np.full((height, width, 3), (i * GRAY_STEP) % 256, np.uint8)
            if noise:
                img[height // 2:] = rng.integers(0, 256, (height - height // 2, width, 3), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return buf.getvalue()


def make_bundle(file_id: str, n_frames: int = 60, fps: Fraction = Fraction(30), *, video: bool = True,
                transcript: bool = True, annotations: dict | None = None) -> dict[str, bytes]:
    """Members {json, mp4, npz, wav}; audio sample k == k, feature row i holds i."""
    duration = Fraction(n_frames) / fps
    n_samples = duration * 48_000
    assert n_samples.denominator == 1, "pick n_frames so the audio length is whole"
    audio = np.arange(int(n_samples), dtype=np.float32)
    rows = np.arange(n_frames, dtype=np.float32)
    arrays = {
        "smplh:global_orient": np.repeat(rows[:, None], 3, axis=1),
        "smplh:is_valid": np.ones(n_frames, bool),
        "boxes_and_keypoints:keypoints": np.repeat(rows[:, None, None], 133, axis=1).repeat(3, axis=2),
        "movement:hypernet_features": np.repeat(np.arange(n_frames // 15, dtype=np.float32)[:, None], 8, axis=1),
    }
    words = [{"word": "hi", "start": 0.1, "end": 0.3, "score": 0.9},
             {"word": "uh", "start": None, "end": None},
             {"word": "there", "start": 0.95, "end": 1.2, "score": 0.8}]
    doc = formats.bundle_json(
        file_id,
        [{"words": words, "start": 0.1, "end": 1.2, "transcript": "hi uh there"}] if transcript else None,
        [{"start": 0.1, "end": 0.305}, {"start": 0.95, "end": 1.2}],
        annotations,
    )
    out = {"json": formats.encode_json(doc), "npz": formats.encode_npz(arrays),
           "wav": formats.encode_wav_float32(audio)}
    out["mp4"] = make_mp4(n_frames, fps) if video else b"\x00" * 261
    return out


def placeholder_bundle(file_id: str) -> dict[str, bytes]:
    arrays = {"smplh:global_orient": np.zeros((0, 3), np.float32), "smplh:is_valid": np.zeros(0, bool)}
    return {"json": formats.encode_json(formats.bundle_json(file_id, [], [])), "mp4": b"\x00" * 261,
            "npz": formats.encode_npz(arrays), "wav": formats.encode_wav_float32(np.zeros(0, np.float32))}


def write_tar(path: Path, samples: dict[str, dict[str, bytes]]) -> Path:
    """A WebDataset shard: members {id}.{ext} in sorted-extension order, like TarWriter."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tf:
        for fid, members in samples.items():
            for ext in sorted(members):
                info = tarfile.TarInfo(f"{fid}.{ext}")
                info.size, info.mode, info.uname, info.gname = len(members[ext]), 0o444, "bigdata", "bigdata"
                tf.addfile(info, io.BytesIO(members[ext]))
    return path


def write_bundle_dir(root: Path, label: str, split: str, batch: int, archive: int, fid: str,
                     members: dict[str, bytes]) -> dict[str, Path]:
    paths = layout.bundle_paths(root, ArchiveRef(label, split, batch, archive), fid)
    paths["json"].parent.mkdir(parents=True, exist_ok=True)
    for ext, data in members.items():
        paths[ext].write_bytes(data)
    return paths


