"""Synthetic dataset generator: a small copy of the release in its exact on-the-wire formats.

One build writes three trees under a root (FORMAT.md sections 2-8):

* ``assets/``: the four metadata tables with the real headers, column orders and quirks;
* ``cdn/{label}/{split}/...``: the per-file objects, laid out as :func:`urls.cdn_parts` builds URLs;
* ``hub/{label}/{split}/{batch:04d}/{archive:04d}.tar``: WebDataset shards as the release scripts wrote them.

The npz/json members of the tars are made with :mod:`seamless_interaction.base.formats` from the very arrays
and records written to the CDN tree, so assembling a bundle from CDN parts gives the tar's bytes. The
dirt the real data carries (suffixed ids, partners in different archives, missing transcript, empty
placeholder bundle, a 29.97 fps file, missing and extra archives) is planted on purpose and listed in
:class:`MirrorInfo`.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import logging
import os
import shutil
import struct
import tarfile
import tempfile
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from seamless_interaction.base import formats
from seamless_interaction.constants import (
    AUDIO_SAMPLE_RATE,
    BOXES_AND_KEYPOINTS_FEATURES,
    HYPERNET_STRIDE,
    MOVEMENT_FEATURES,
    SMPLH_FEATURES,
)
from seamless_interaction.base.ids import FileId
from seamless_interaction.remote.urls import hub_archive_path

__all__ = ["FileRecord", "MirrorInfo", "MirrorSpec", "build_mirror", "frame_marker", "load_mirror_info"]

logger = logging.getLogger(__name__)

# Bumped whenever the bytes a spec produces change, so stale builds are redone.
GENERATOR_VERSION = 1
MARKER_NAME = "mirror.json"
FILELIST_HEADER = ("file_id", "label", "split", "batch_idx", "archive_idx",
                   "has_imitator_movement", "has_annotation_1p", "has_annotation_3p")
# webdataset.TarWriter stamps time.time(), a float, so Python's tarfile adds a PAX "mtime" record to
# every member; a fixed fractional value keeps that header while making the bytes reproducible.
TAR_MTIME = 1751328000.5
TAR_USER = "bigdata"
TAR_MODE = 0o444
NTSC_FPS = Fraction(30000, 1001)
# Features stored as float64 on the CDN: the assembled npz must cast them to float32 (FORMAT.md 5.1).
FLOAT64_ON_CDN = frozenset({"smplh:global_orient", "smplh:translation", "boxes_and_keypoints:box",
                            "movement:emotion_valence"})
_NPZ_SHAPES: dict[str, tuple[int, ...]] = {
    "boxes_and_keypoints:box": (4,), "boxes_and_keypoints:is_valid_box": (),
    "boxes_and_keypoints:keypoints": (133, 3),
    "smplh:body_pose": (21, 3), "smplh:global_orient": (3,), "smplh:is_valid": (),
    "smplh:left_hand_pose": (15, 3), "smplh:right_hand_pose": (15, 3), "smplh:translation": (3,),
    "movement:EmotionArousalToken": (1,), "movement:EmotionValenceToken": (1,), "movement:FAUToken": (1,),
    "movement:FAUValue": (24,), "movement:alignment_head_rotation": (3,),
    "movement:alignment_translation": (2, 3), "movement:emotion_arousal": (1,),
    "movement:emotion_scores": (8,), "movement:emotion_valence": (1,), "movement:expression": (128,),
    "movement:frame_latent": (64,), "movement:gaze_encodings": (2,), "movement:head_encodings": (3,),
    "movement:hypernet_features": (5120,), "movement:is_valid": (1,),
}
_WORDS = ("so", "I", "think", "that", "was", "really", "hard", "for", "me", "you", "know", "yeah", "we",
          "went", "there", "and", "it", "felt", "okay", "right", "maybe", "because", "honestly", "well")


# ------------------------------------------------------------------------------------------ records
@dataclass(frozen=True)
class MirrorSpec:
    """What to generate. The default is the embedded sample: ~21 file ids, a few seconds to build.

    ``extra_interactions`` adds plain pairs to every label/split (vendors cycling V00, V01, V03) on top
    of the fixed set that carries the dirt; with ``duration_s``, the raster and ``video_padding_bytes``
    (an MP4 ``free`` box of incompressible bytes) it scales the data up for benchmarks.
    """

    seed: int = 0
    duration_s: float = 1.0
    width: int = 96
    height: int = 160
    fps: int = 30
    extra_interactions: int = 0
    batch_max_files: int = 6
    samples_per_archive: int = 3
    video_padding_bytes: int = 0
    video_crf: int = 23
    # Comma-separated LABEL/SPLIT names that get the extra interactions ("" = all four), so that a
    # benchmark can grow one split to hundreds of archives without building the other three.
    extra_splits: str = ""

    def __post_init__(self) -> None:
        if self.width % 2 or self.height % 2 or self.width < 32 or self.height < 32:
            raise ValueError(f"MirrorSpec: width and height must be even and >= 32, got {self.width}x{self.height}")
        if self.duration_s < 0.5:
            raise ValueError(f"MirrorSpec: duration_s must be >= 0.5, got {self.duration_s}")
        if self.batch_max_files < 2 or self.samples_per_archive < 1:
            raise ValueError("MirrorSpec: batch_max_files must be >= 2 and samples_per_archive >= 1, got "
                             f"{self.batch_max_files} and {self.samples_per_archive}")


@dataclass(frozen=True)
class FileRecord:
    """Where one file id of the mirror lives and what its content is."""

    file_id: str
    label: str
    split: str
    batch: int
    archive: int
    vendor: str  # "V00"
    fps: str  # "30/1" or "30000/1001"
    n_frames: int  # N of every frame-aligned feature, = video frame count
    wav_frames: int  # 48 kHz sample frames
    has_transcript: bool
    annotations: tuple[str, ...]  # ("1P-IS", ...)
    placeholder: bool
    movement: bool  # 15 movement:* keys present (V00)

    @property
    def interaction_key(self) -> str:
        return FileId.parse(self.file_id).interaction_key

    @property
    def archive_path(self) -> str:
        """Hub path of the tar holding this id, ``{label}/{split}/{batch:04d}/{archive:04d}.tar``."""
        return hub_archive_path(self.label, self.split, self.batch, self.archive)


Archive = tuple[str, str, int, int]  # (label, split, batch, archive)


@dataclass
class MirrorInfo:
    """Everything a test or the demo needs to know about a build; also stored as ``root/mirror.json``."""

    root: Path
    spec: MirrorSpec
    file_ids: list[str]
    interactions: list[str]  # interaction keys V##_S####_I########
    pairs: list[tuple[str, str]]
    singletons: list[str]
    files: dict[str, FileRecord]
    suffixed: list[str]  # V00 ids with a letter suffix whose bare stem also has files
    no_transcript: list[str]
    placeholder: list[str]  # empty bundles: 261-byte MP4, 58-byte WAV, zero-length arrays
    annotated: list[str]
    non30fps: list[str]  # 30000/1001 fps videos
    movement: list[str]  # ids with the 15 movement keys (V00)
    split_pairs: list[tuple[str, str]]  # partners in different archives of the same batch
    missing_archive: Archive  # named by filelist.csv, absent from hub/
    missing_archive_ids: list[str]
    extra_archive: Archive  # on hub/, not named by filelist.csv (holds a duplicate sample)
    extra_archive_ids: list[str]
    archives: list[Archive]  # every archive filelist.csv names, including the missing one

    @property
    def cdn_dir(self) -> Path:
        return self.root / "cdn"

    @property
    def hub_dir(self) -> Path:
        return self.root / "hub"

    @property
    def assets_dir(self) -> Path:
        return self.root / "assets"

    def archive_ids(self, label: str, split: str, batch: int, archive: int) -> list[str]:
        """File ids in one archive, in tar order (empty for the extra archive: see extra_archive_ids)."""
        return [f for f in self.file_ids if (self.files[f].label, self.files[f].split, self.files[f].batch,
                                             self.files[f].archive) == (label, split, batch, archive)]

    def to_json(self) -> str:
        doc = dataclasses.asdict(self)
        doc["root"] = str(self.root)
        return json.dumps({"generator_version": GENERATOR_VERSION, "info": doc}, indent=2)

    @classmethod
    def from_json(cls, text: str, root: Path | None = None) -> MirrorInfo:
        doc = json.loads(text)["info"]
        files = {k: FileRecord(**{**v, "annotations": tuple(v["annotations"])}) for k, v in doc["files"].items()}
        return cls(
            root=Path(root if root is not None else doc["root"]),
            spec=MirrorSpec(**doc["spec"]),
            file_ids=list(doc["file_ids"]),
            interactions=list(doc["interactions"]),
            pairs=[tuple(p) for p in doc["pairs"]],
            singletons=list(doc["singletons"]),
            files=files,
            suffixed=list(doc["suffixed"]),
            no_transcript=list(doc["no_transcript"]),
            placeholder=list(doc["placeholder"]),
            annotated=list(doc["annotated"]),
            non30fps=list(doc["non30fps"]),
            movement=list(doc["movement"]),
            split_pairs=[tuple(p) for p in doc["split_pairs"]],
            missing_archive=tuple(doc["missing_archive"]),
            missing_archive_ids=list(doc["missing_archive_ids"]),
            extra_archive=tuple(doc["extra_archive"]),
            extra_archive_ids=list(doc["extra_archive_ids"]),
            archives=[tuple(a) for a in doc["archives"]],
        )


# ---------------------------------------------------------------------------------------- planning
@dataclass
class _FilePlan:
    file_id: str
    vendor: str
    has_transcript: bool = True
    annotations: tuple[str, ...] = ()
    placeholder: bool = False


@dataclass
class _InteractionPlan:
    label: str
    split: str
    vendor: str
    session: str
    prompt: str
    fps: Fraction
    files: list[_FilePlan] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.vendor}_S{self.session}_I{self.prompt}"


class _Ids:
    """Hands out unique sessions and participants per vendor from a seeded generator."""

    def __init__(self, rng: np.random.Generator):
        self._rng = rng
        self._used: set[tuple[str, str, str]] = set()
        self._base = {"V00": 200, "V01": 1100, "V02": 2000, "V03": 2600}

    def _draw(self, kind: str, vendor: str, lo: int, hi: int) -> str:
        while True:
            value = f"{int(self._rng.integers(lo, hi)):04d}"
            if (kind, vendor, value) not in self._used:
                self._used.add((kind, vendor, value))
                return value

    def session(self, vendor: str) -> str:
        return self._draw("S", vendor, 100, 2900)

    def participant(self, vendor: str) -> str:
        base = self._base[vendor]
        return self._draw("P", vendor, base, base + 800)


def _plan(spec: MirrorSpec, rng: np.random.Generator, prompts: list[str]) -> list[_InteractionPlan]:
    ids = _Ids(rng)
    nominal = Fraction(spec.fps)
    plans: list[_InteractionPlan] = []

    def add(label: str, split: str, vendor: str, participants: list[str], *, fps: Fraction = nominal,
            prompt: str | None = None) -> _InteractionPlan:
        p = _InteractionPlan(label, split, vendor, ids.session(vendor),
                             prompt or prompts[int(rng.integers(len(prompts)))], fps)
        p.files = [_FilePlan(f"{vendor}_S{p.session}_I{p.prompt}_P{pid}", vendor) for pid in participants]
        plans.append(p)
        return p

    # improvised/dev carries most of the dirt: the demo and most tests look there.
    stem = ids.participant("V00")
    first = add("improvised", "dev", "V00", [stem + "A", ids.participant("V00")])
    annotated_v00 = add("improvised", "dev", "V00", [stem, ids.participant("V00")])
    annotated_v00.files[1].annotations = ("3P-IS", "3P-R", "3P-V")
    add("improvised", "dev", "V01", [ids.participant("V01"), ids.participant("V01")], fps=NTSC_FPS)
    v03 = add("improvised", "dev", "V03", [ids.participant("V03"), ids.participant("V03")])
    v03.files[0].annotations = ("1P-IS", "1P-R", "3P-IS")
    v03.files[1].has_transcript = False
    add("improvised", "dev", "V00", [ids.participant("V00")])  # single-participant session
    # The I field is a prompt id: the same prompt recurs in another session (FORMAT.md 1.2).
    add("improvised", "test", "V00", [ids.participant("V00"), ids.participant("V00")], prompt=first.prompt)
    placeholder = add("improvised", "test", "V03", [ids.participant("V03"), ids.participant("V03")])
    placeholder.files[0].placeholder = True
    add("naturalistic", "dev", "V01", [ids.participant("V01"), ids.participant("V01")])
    nat = add("naturalistic", "dev", "V03", [ids.participant("V03"), ids.participant("V03")])
    nat.files[1].annotations = ("3P-V",)
    add("naturalistic", "test", "V03", [ids.participant("V03"), ids.participant("V03")])
    add("naturalistic", "test", "V00", [ids.participant("V00"), ids.participant("V00")])
    grow = {tuple(s.strip().split("/")) for s in spec.extra_splits.split(",") if s.strip()}
    for label, split in (("improvised", "dev"), ("improvised", "test"), ("naturalistic", "dev"),
                         ("naturalistic", "test")):
        if grow and (label, split) not in grow:
            continue
        for k in range(spec.extra_interactions):
            vendor = ("V00", "V01", "V03")[k % 3]
            add(label, split, vendor, [ids.participant(vendor), ids.participant(vendor)])
    return plans


def _pack(plans: list[_InteractionPlan], spec: MirrorSpec, rng: np.random.Generator
          ) -> dict[str, tuple[int, int]]:
    """Batch whole interactions greedily (largest first), then shard each batch in a shuffled order.

    Mirrors create_batches + ShardWriter (FORMAT.md 2.3); the shuffle is redrawn until some pair of a
    multi-archive batch straddles two archives, so that dirt is always present.
    """
    where: dict[str, tuple[int, int]] = {}
    by_split: dict[tuple[str, str], list[_InteractionPlan]] = {}
    for p in plans:
        by_split.setdefault((p.label, p.split), []).append(p)
    for group in by_split.values():
        batches: list[list[_InteractionPlan]] = [[]]
        for p in sorted(group, key=lambda q: -len(q.files)):
            if batches[-1] and sum(len(q.files) for q in batches[-1]) + len(p.files) > spec.batch_max_files:
                batches.append([])
            batches[-1].append(p)
        for b, members in enumerate(batches):
            fids = [f.file_id for q in members for f in q.files]
            pairs = [(q.files[0].file_id, q.files[1].file_id) for q in members if len(q.files) == 2]
            n = spec.samples_per_archive
            for _ in range(100):
                order = [fids[i] for i in rng.permutation(len(fids))]
                slot = {fid: i // n for i, fid in enumerate(order)}
                if len(fids) <= n or not pairs or any(slot[a] != slot[b2] for a, b2 in pairs):
                    break
            for fid in order:
                where[fid] = (b, slot[fid])
    return where


# ------------------------------------------------------------------------------------------ content
def frame_marker(index: int) -> int:
    """Y value (raw limited-range luma, ``frame.to_ndarray(format="yuv420p")``) of rows 0-15 of frame ``index``.

    Lets a test check which frame a seek landed on (x264 keeps it within a few levels).
    """
    return 16 + (index * 7) % 220


def _rng_for(spec: MirrorSpec, name: str) -> np.random.Generator:
    return np.random.default_rng([spec.seed, zlib.crc32(name.encode())])


def _vad_segments(duration: float, speaker: int, n_speakers: int, rng: np.random.Generator) -> list[dict]:
    """Alternating turns of ~0.5 s; each speaker gets its turns, trimmed by a little jitter."""
    turns = max(2, int(duration / 0.5))
    step = duration / turns
    out = []
    for t in range(turns):
        if n_speakers == 2 and t % 2 != speaker:
            continue
        start = round(t * step + float(rng.uniform(0.02, 0.08)), 3)
        end = round((t + 1) * step - float(rng.uniform(0.02, 0.08)), 3)
        out.append({"start": start, "end": end})
    return out


def _transcript(vad: list[dict], rng: np.random.Generator, *, unaligned_word: bool) -> list[dict]:
    segments = []
    for s, seg in enumerate(vad):
        n_words = int(rng.integers(2, 5))
        span = (seg["end"] - seg["start"]) / n_words
        words: list[dict[str, Any]] = []
        for w in range(n_words):
            word = _WORDS[int(rng.integers(len(_WORDS)))]
            start = round(seg["start"] + w * span, 3)
            words.append({"word": word, "start": start, "end": round(start + span * 0.8, 3),
                          "score": round(float(rng.uniform(0.3, 1.0)), 3)})
        if unaligned_word and s == 0:
            # WhisperX leaves numerals unaligned: null times and no score (FORMAT.md 6.2).
            words.insert(1, {"word": "2019", "start": None, "end": None})
        text = " ".join(w["word"] for w in words)
        segments.append({"words": words, "start": seg["start"], "end": seg["end"], "transcript": " " + text})
    return segments


def _annotations(kinds: Iterable[str], duration: float, rng: np.random.Generator) -> dict[str, list[dict]]:
    texts = {"1P-IS": "I felt a bit nervous at first", "1P-R": "I wanted to keep the conversation going",
             "3P-IS": "She seems amused", "3P-R": "He is trying to reassure his partner",
             "3P-V": "Leans forward and smiles"}
    out = {}
    for kind in kinds:
        recs = []
        for k in range(int(rng.integers(1, 3))):
            start = round(float(rng.uniform(0, duration / 2)), 3)
            recs.append({"annotation": f"{texts[kind]} ({k + 1})", "start_ts": start,
                         "end_ts": round(start + float(rng.uniform(0.1, duration / 2)), 3)})
        out[kind] = recs
    return out


def _audio(n: int, vad: list[dict], speaker: int, rng: np.random.Generator) -> np.ndarray:
    """A voice-like tone (distinct pitch per speaker) in ~4 Hz bursts inside VAD segments, hiss elsewhere."""
    t = np.arange(n) / AUDIO_SAMPLE_RATE
    f0 = 140.0 + 70.0 * speaker + float(rng.uniform(0, 20))
    voice = np.sin(2 * np.pi * f0 * t + 0.8 * np.sin(2 * np.pi * 5 * t)) + 0.3 * np.sin(4 * np.pi * f0 * t)
    env = np.zeros(n)
    for seg in vad:
        a, b = int(seg["start"] * AUDIO_SAMPLE_RATE), int(seg["end"] * AUDIO_SAMPLE_RATE)
        env[a:b] = 0.25 * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t[a:b]))
    return (env * voice + 0.003 * rng.standard_normal(n)).astype(np.float32)


def _walk(rng: np.random.Generator, n: int, shape: tuple[int, ...], scale: float, step: float) -> np.ndarray:
    """Smooth random walk on a grid of ``step``: float32-exact, and compresses like real motion data."""
    x = np.cumsum(rng.standard_normal((n, *shape)) * scale, axis=0) if n else np.zeros((0, *shape))
    return (np.round(x / step) * step).astype(np.float32)


def _features(n: int, movement: bool, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Arrays with the real keys, shapes and dtypes (FORMAT.md 5.2/5.3); float32 unless bool."""
    valid = np.ones(n, dtype=bool)
    if n >= 10:
        valid[-3:] = False  # person left the frame at the end
    box = (np.array([300, 500, 800, 1400], np.float32) + _walk(rng, n, (4,), 2.0, 0.25))
    box[~valid] = 0
    kp = np.empty((n, 133, 3), np.float32)
    kp[..., 0] = 550 + _walk(rng, n, (133,), 1.0, 0.5)
    kp[..., 1] = 950 + _walk(rng, n, (133,), 1.0, 0.5)
    kp[..., 2] = np.round(rng.uniform(0, 1.21, (n, 133)) * 64) / 64
    kp[~valid] = 0
    trans = np.stack([_walk(rng, n, (), 0.01, 1 / 1024), _walk(rng, n, (), 0.01, 1 / 1024),
                      40 + _walk(rng, n, (), 0.2, 1 / 256)], axis=-1).astype(np.float32)
    trans[~valid] = np.float32(3.5e13)  # huge finite sentinel on box-invalid frames
    orient = _walk(rng, n, (3,), 0.01, 1 / 1024)
    orient[:, 0] += np.float32(3.140625)
    smplh_valid = valid.copy()
    if n >= 10:
        smplh_valid[n // 2] = False
    arrays = {
        "boxes_and_keypoints:box": box.astype(np.float32),
        "boxes_and_keypoints:is_valid_box": valid,
        "boxes_and_keypoints:keypoints": kp,
        "smplh:body_pose": _walk(rng, n, (21, 3), 0.02, 1 / 1024),
        "smplh:global_orient": orient,
        "smplh:is_valid": smplh_valid,
        "smplh:left_hand_pose": _walk(rng, n, (15, 3), 0.02, 1 / 1024),
        "smplh:right_hand_pose": _walk(rng, n, (15, 3), 0.02, 1 / 1024),
        "smplh:translation": trans,
    }
    if movement:
        tokens = lambda hi: rng.integers(0, hi, (n, 1)).astype(np.float32)  # noqa: E731
        scores = rng.dirichlet(np.ones(8), n) if n else np.zeros((0, 8))
        arrays.update({
            "movement:EmotionArousalToken": tokens(16),
            "movement:EmotionValenceToken": tokens(16),
            "movement:FAUToken": tokens(512),
            "movement:FAUValue": np.clip(np.abs(_walk(rng, n, (24,), 0.05, 1 / 256)), 0, 2),
            "movement:alignment_head_rotation": _walk(rng, n, (3,), 0.01, 1 / 1024),
            "movement:alignment_translation": _walk(rng, n, (2, 3), 0.01, 1 / 1024),
            "movement:emotion_arousal": np.clip(_walk(rng, n, (1,), 0.05, 1 / 256), -0.4, 1.3),
            "movement:emotion_scores": (np.round(scores * 256) / 256).astype(np.float32),
            "movement:emotion_valence": np.clip(_walk(rng, n, (1,), 0.05, 1 / 256), -0.6, 0.6),
            "movement:expression": _walk(rng, n, (128,), 0.05, 1 / 256),
            "movement:frame_latent": _walk(rng, n, (64,), 0.05, 1 / 256),
            "movement:gaze_encodings": _walk(rng, n, (2,), 0.02, 1 / 512),
            "movement:head_encodings": _walk(rng, n, (3,), 0.02, 1 / 512),
            # Rounding of N/15 is UNKNOWN (real N are multiples of 60); floor is our choice.
            "movement:hypernet_features": _walk(rng, n // HYPERNET_STRIDE, (5120,), 0.1, 1 / 64),
            "movement:is_valid": valid.astype(np.float32).reshape(n, 1),
        })
    return arrays


def _empty_features(movement: bool) -> dict[str, np.ndarray]:
    keys = [f"smplh:{f}" for f in SMPLH_FEATURES] + [f"boxes_and_keypoints:{f}" for f in BOXES_AND_KEYPOINTS_FEATURES]
    if movement:
        keys += [f"movement:{f}" for f in MOVEMENT_FEATURES]
    out = {}
    for k in keys:
        dtype = bool if k in ("smplh:is_valid", "boxes_and_keypoints:is_valid_box") else np.float32
        out[k] = np.zeros((0, *_NPZ_SHAPES[k]), dtype=dtype)
    return out


def _video(spec: MirrorSpec, fps: Fraction, n_frames: int, speaker: int) -> bytes:
    import av  # heavy import kept out of module import time

    w, h = spec.width, spec.height
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.codec_context.thread_count = 1
        # asm=0: x264's SIMD input path reads uninitialised bytes for some widths (96 px here), which
        # made identical inputs encode differently from run to run; plain C keeps builds reproducible.
        stream.options = {"crf": str(spec.video_crf), "preset": "veryfast", "x264-params": "asm=0"}
        yy, xx = np.mgrid[0:h, 0:w]
        background = (40 + 30 * speaker + (yy * 60) // h).astype(np.uint8)
        chroma = np.full((h // 2, w // 2), 128 + 20 * (1 - 2 * speaker), np.uint8)
        side = max(8, w // 5)
        for i in range(n_frames):
            y = background.copy()
            y[:16] = frame_marker(i)
            x0 = (i * 3) % (w - side)
            y0 = 24 + (i * 2) % max(1, h - side - 24)
            y[y0:y0 + side, x0:x0 + side] = 235
            planes = np.concatenate([y, chroma.reshape(h // 4, w), chroma.reshape(h // 4, w)])
            frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
            frame.pts = i
            frame.time_base = 1 / fps
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    data = buf.getvalue()
    if spec.video_padding_bytes:
        # A top-level "free" box is legal ISO-BMFF that players skip: bigger files, same video.
        pad = np.random.default_rng([spec.seed, n_frames, speaker]).bytes(spec.video_padding_bytes)
        data += struct.pack(">I4s", 8 + len(pad), b"free") + pad
    return data


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def placeholder_mp4() -> bytes:
    """The 261-byte MP4 of empty bundles: ftyp/free/empty mdat and a moov without tracks (undecodable)."""
    ftyp = _box(b"ftyp", b"isom" + struct.pack(">I", 512) + b"isomiso2avc1mp41")
    mvhd = _box(b"mvhd", struct.pack(">I", 0) + struct.pack(">IIII", 0, 0, 1000, 0)
                + struct.pack(">IH", 0x00010000, 0x0100) + b"\0" * 10
                + struct.pack(">9I", 0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000)
                + b"\0" * 24 + struct.pack(">I", 1))
    hdlr = _box(b"hdlr", b"\0" * 8 + b"mdir" + b"appl" + b"\0" * 8 + b"\0")
    data = _box(b"data", struct.pack(">II", 1, 0) + b"Lavf60.3.100")
    ilst = _box(b"ilst", _box(b"\xa9too", data))
    meta = _box(b"meta", b"\0" * 4 + hdlr + ilst)
    moov = _box(b"moov", mvhd + _box(b"udta", meta))
    return ftyp + _box(b"free", b"") + _box(b"mdat", b"") + moov


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------- tables
_IPC = [f"A{a}C{c}" for a in "PMN" for c in "PMN"]
_TOPICS = ("a time you changed your mind about something important", "a cause you are passionate about",
           "a trip that did not go as planned", "a skill you learned as an adult",
           "a disagreement with a friend", "a book or film that stayed with you",
           "a decision you are still unsure about", "a time someone surprised you")


def _interactions_table(rng: np.random.Generator, prompts: list[str]) -> list[list[str]]:
    rows = []
    for idx, prompt in enumerate(prompts):
        kind = ("ipc_conversation", "ipc_conversation", "grounded_gesture", "collaborative_storytelling",
                "charades")[idx % 5] if idx else "ipc_conversation"
        ipc_a = _IPC[int(rng.integers(len(_IPC)))]
        ipc_b = ("", "", _IPC[int(rng.integers(len(_IPC)))], "CGST")[idx % 4]
        topic = _TOPICS[idx % len(_TOPICS)]
        if kind == "grounded_gesture":
            nl = "\r\n" if idx % 3 == 0 else "\n"  # some real prompt texts carry CRLF inside the quotes
            a = (f"You're going to play a game with your partner.{nl}{nl}Here's your list:{nl}"
                 f"She is *walking* to the store.{nl}He is typing on the *computer*.")
            b = (f"You're going to play a game with your partner.{nl}{nl}Your partner will go first.{nl}"
                 f"Here's your list:{nl}The music is *mellow*.")
        else:
            a = f"Tell your partner about {topic}. What happened, and how did you feel about it?"
            b = f"Your partner will tell you about {topic}. Listen, ask questions, and share your view."
        family = {"ipc_conversation": "fam", "grounded_gesture": "aac"}.get(kind, "aac")
        rows.append([str(idx), prompt, f"P{idx + 2:04d}_v3.4.{family}_{ipc_a}_XXXX", a, b, ipc_a, ipc_b, kind])
    return rows


def _bfi(rng: np.random.Generator) -> list[str]:
    return [repr(float(k) / 12) for k in rng.integers(12, 61, 5)]


def _write_csv(path: Path, header: Iterable[str], rows: Iterable[Iterable[str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(list(header))
        writer.writerows(rows)


# ------------------------------------------------------------------------------------------ build
def _write_tar(path: Path, samples: list[tuple[str, Mapping[str, bytes]]]) -> None:
    """One WebDataset shard: members {id}.{json,mp4,npz,wav} per sample, as TarWriter writes them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for key, members in samples:
            for ext in sorted(members):
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(members[ext])
                info.mtime = TAR_MTIME
                info.pax_headers = {"mtime": repr(TAR_MTIME)}  # explicit: same bytes on every Python
                info.mode = TAR_MODE
                info.uname = info.gname = TAR_USER
                tar.addfile(info, io.BytesIO(members[ext]))


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _spec_doc(spec: MirrorSpec) -> dict[str, Any]:
    return {"generator_version": GENERATOR_VERSION, "spec": dataclasses.asdict(spec)}


def load_mirror_info(root: Path | str) -> MirrorInfo:
    """Read ``root/mirror.json`` of a finished build; the root recorded there is replaced by ``root``."""
    root = Path(root)
    return MirrorInfo.from_json((root / MARKER_NAME).read_text(encoding="utf-8"), root=root)


def _existing_build(root: Path, spec: MirrorSpec) -> MirrorInfo | None:
    marker = root / MARKER_NAME
    try:
        doc = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if doc.get("generator_version") != GENERATOR_VERSION or doc.get("info", {}).get("spec") != dataclasses.asdict(spec):
        return None
    return load_mirror_info(root)


def build_mirror(root: Path | str, spec: MirrorSpec | None = None, *, force: bool = False) -> MirrorInfo:
    """Generate the synthetic dataset into ``root`` (assets/, cdn/, hub/, mirror.json) and describe it.

    Idempotent: a finished build of the same spec (recorded in ``root/mirror.json``) is returned as is
    unless ``force``. The tree is built in a temporary folder beside ``root`` and renamed into place, so
    ``root`` is either absent, the old build, or complete. An existing ``root`` that is neither empty
    nor a mirror build is refused, so a wrong path cannot wipe user data.

    >>> info = build_mirror(tmp_path / "mirror")          # doctest: +SKIP
    >>> info.pairs[0], info.files[info.pairs[0][0]].archive_path  # doctest: +SKIP
    """
    root = Path(root).absolute()
    spec = spec or MirrorSpec()
    if not force:
        found = _existing_build(root, spec)
        if found is not None:
            logger.debug("mirror at %s is up to date", root)
            return found
    if root.exists() and not (root / MARKER_NAME).exists() and any(root.iterdir()):
        raise FileExistsError(f"{root}: exists, is not empty and holds no {MARKER_NAME}; "
                              "refusing to replace it with a mirror build")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", suffix=".tmp", dir=root.parent))
    try:
        info = _build_into(tmp, spec)
        info.root = root
        (tmp / MARKER_NAME).write_text(info.to_json(), encoding="utf-8")
        if root.exists():
            old = root.with_name(f".{root.name}.old-{os.getpid()}")
            os.replace(root, old)
            os.replace(tmp, root)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, root)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    logger.info("built mirror of %d file ids at %s", len(info.file_ids), root)
    return info


def _build_into(out: Path, spec: MirrorSpec) -> MirrorInfo:
    rng = np.random.default_rng([spec.seed, 1])
    n_prompts = 24 + 2 * spec.extra_interactions
    prompts = [f"{v:08d}" for v in sorted(rng.choice(np.arange(1, 1400), n_prompts - 1, replace=False))]
    prompts.insert(0, "00000000")
    plans = _plan(spec, rng, prompts)
    where = _pack(plans, spec, rng)

    files: dict[str, FileRecord] = {}
    bundles: dict[str, dict[str, bytes]] = {}
    for plan in plans:
        n_frames = int(spec.duration_s * plan.fps)  # floor: a 29.97 fps file has fewer frames
        wav_frames = int(round(spec.duration_s * AUDIO_SAMPLE_RATE))
        for speaker, fp in enumerate(plan.files):
            rec = FileRecord(
                file_id=fp.file_id, label=plan.label, split=plan.split,
                batch=where[fp.file_id][0], archive=where[fp.file_id][1], vendor=plan.vendor,
                fps=f"{plan.fps.numerator}/{plan.fps.denominator}",
                n_frames=0 if fp.placeholder else n_frames, wav_frames=0 if fp.placeholder else wav_frames,
                has_transcript=fp.has_transcript, annotations=fp.annotations, placeholder=fp.placeholder,
                movement=plan.vendor == "V00")
            files[fp.file_id] = rec
            bundles[fp.file_id] = _write_cdn(out / "cdn", spec, rec, speaker, len(plan.files))

    # filelist order: label, split, batch, archive, then position inside the tar
    order = sorted(files, key=lambda f: (files[f].label, files[f].split, files[f].batch, files[f].archive))
    tar_order: dict[Archive, list[str]] = {}
    for fid in order:
        r = files[fid]
        tar_order.setdefault((r.label, r.split, r.batch, r.archive), []).append(fid)
    archives = sorted(tar_order)
    missing = next(a for a in archives if a[:2] == ("naturalistic", "test"))
    dev_batch0 = [a for a in archives if a[:3] == ("improvised", "dev", 0)]
    extra: Archive = ("improvised", "dev", 0, dev_batch0[-1][3] + 1)
    extra_ids = [tar_order[dev_batch0[0]][0]]
    for arch, fids in tar_order.items():
        if arch != missing:
            _write_tar(out / "hub" / hub_archive_path(*arch), [(f, bundles[f]) for f in fids])
    # a leftover shard from before the dedup: a duplicate member that no filelist row points to
    _write_tar(out / "hub" / hub_archive_path(*extra), [(f, bundles[f]) for f in extra_ids])

    file_ids = [f for arch in archives for f in tar_order[arch]]
    _write_tables(out, spec, plans, files, file_ids, prompts)

    pairs = [(p.files[0].file_id, p.files[1].file_id) for p in plans if len(p.files) == 2]
    slot = {f: (r.label, r.split, r.batch, r.archive) for f, r in files.items()}
    suffixed = [f for f in file_ids if FileId.parse(f).participant[-1].isalpha()]
    return MirrorInfo(
        root=out, spec=spec, file_ids=file_ids,
        interactions=[p.key for p in plans], pairs=pairs,
        singletons=[p.files[0].file_id for p in plans if len(p.files) == 1],
        files=files, suffixed=suffixed,
        no_transcript=[f for f in file_ids if not files[f].has_transcript],
        placeholder=[f for f in file_ids if files[f].placeholder],
        annotated=[f for f in file_ids if files[f].annotations],
        non30fps=[f for f in file_ids if files[f].fps != f"{spec.fps}/1"],
        movement=[f for f in file_ids if files[f].movement],
        split_pairs=[(a, b) for a, b in pairs if slot[a] != slot[b]],
        missing_archive=missing, missing_archive_ids=list(tar_order[missing]),
        extra_archive=extra, extra_archive_ids=extra_ids, archives=archives,
    )


def _write_cdn(cdn: Path, spec: MirrorSpec, rec: FileRecord, speaker: int, n_speakers: int) -> dict[str, bytes]:
    """Write one file id's CDN objects; return its four tar members (json, mp4, npz, wav)."""
    rng = _rng_for(spec, rec.file_id)
    base = cdn / rec.label / rec.split
    fid = rec.file_id
    duration = rec.wav_frames / AUDIO_SAMPLE_RATE
    if rec.placeholder:
        vad: list[dict] = []
        transcript: list[dict] | None = [] if rec.has_transcript else None
        arrays = _empty_features(rec.movement)
        wav = formats.encode_wav_float32(np.zeros(0, np.float32))
        mp4 = placeholder_mp4()
    else:
        vad = _vad_segments(duration, speaker, n_speakers, rng)
        transcript = _transcript(vad, rng, unaligned_word=speaker == 0) if rec.has_transcript else None
        arrays = _features(rec.n_frames, rec.movement, rng)
        wav = formats.encode_wav_float32(_audio(rec.wav_frames, vad, speaker, rng))
        mp4 = _video(spec, Fraction(rec.fps), rec.n_frames, speaker)
    annotations = _annotations(rec.annotations, duration, rng)

    _write(base / "audio" / f"{fid}.wav", wav)
    _write(base / "video" / f"{fid}.mp4", mp4)
    for key, arr in arrays.items():
        group, feat = key.split(":")
        on_cdn = arr.astype(np.float64) if key in FLOAT64_ON_CDN else arr
        _write(base / group / feat / f"{fid}.npy", _npy(on_cdn))
    if transcript is not None:
        _write(base / "metadata" / "transcript" / f"{fid}.jsonl", formats.encode_jsonl(transcript))
    _write(base / "metadata" / "vad" / f"{fid}.jsonl", formats.encode_jsonl(vad))
    for kind, recs in annotations.items():
        # JSON Lines despite the .json name (FORMAT.md 6.4)
        _write(base / "annotations" / kind / f"{fid}.json", formats.encode_jsonl(recs))
    doc = formats.bundle_json(fid, transcript, vad, annotations or None)
    return {"json": formats.encode_json(doc), "mp4": mp4, "npz": formats.encode_npz(arrays), "wav": wav}


def _write_tables(out: Path, spec: MirrorSpec, plans: list[_InteractionPlan], files: dict[str, FileRecord],
                  file_ids: list[str], prompts: list[str]) -> None:
    rng = np.random.default_rng([spec.seed, 2])
    assets = out / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    rows = []
    for fid in file_ids:
        r = files[fid]
        one_p = any(a.startswith("1P") for a in r.annotations)
        three_p = any(a.startswith("3P") for a in r.annotations)
        rows.append([fid, r.label, r.split, str(r.batch), str(r.archive), str(int(r.movement)),
                     str(int(one_p)), str(int(three_p))])
    _write_csv(assets / "filelist.csv", FILELIST_HEADER, rows)

    _write_csv(assets / "interactions.csv",
               ["", "prompt_hash", "prompt_id_unique", "participant_a_prompt_text", "participant_b_prompt_text",
                "ipc_a", "ipc_b", "interaction_type"],
               _interactions_table(rng, prompts))

    # Most, not all, ids join: the last naturalistic/test pair lacks one participant row and the
    # naturalistic/dev V01 session lacks its relationship row (FORMAT.md 8.3/8.4 report such gaps).
    no_person = next(p for p in reversed(plans) if p.label == "naturalistic").files[0].file_id
    no_session = next(p for p in plans if (p.label, p.split, p.vendor) == ("naturalistic", "dev", "V01")).key
    people: dict[tuple[str, str], list[str]] = {}
    for fid in file_ids:
        f = FileId.parse(fid)
        if fid != no_person:
            people[(f.vendor, f.participant)] = []
    for k in range(12):  # participants of sessions outside the sample
        vendor = ("00", "01", "02", "03")[k % 4]
        people.setdefault((vendor, f"{3300 + 37 * k:04d}"), [])
    prow = []
    for i, (vendor, pid) in enumerate(sorted(people)):
        scores = ["Undisclosed"] * 5 if (i % 3 == 1 or pid.endswith("A")) else _bfi(rng)
        prow.append([*scores, vendor, pid])
    prow = [prow[i] for i in rng.permutation(len(prow))]
    _write_csv(assets / "participants.csv",
               ["extraversion_raw", "agreeableness_raw", "conscientiousness_raw", "neuroticism_raw",
                "openness_raw", "vendor_id", "participant_id"], prow)

    details = ("stranger", "friends", "coworkers", "family-generic", "dating/spouse/romantic_partner", "siblings")
    sessions = sorted({(p.vendor, p.session) for p in plans if p.key != no_session})
    sessions += [("V02", f"{1500 + k:04d}") for k in range(3)]
    rrow = []
    for i, (vendor, session) in enumerate(sessions):
        detail = details[i % len(details)]
        rrow.append([vendor, session, "stranger" if detail == "stranger" else "familiar", detail])
    rrow = [rrow[i] for i in rng.permutation(len(rrow))]
    _write_csv(assets / "relationships.csv", ["vendor_id", "session_id", "relationship", "relationship_detail"], rrow)

    # The Hub repo root carries the same three tables next to the label folders (FORMAT.md 2.2).
    for name in ("interactions.csv", "participants.csv", "relationships.csv"):
        _write(out / "hub" / name, (assets / name).read_bytes())


def sha256_file(path: Path | str, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
