"""Clip: a time range of an interaction, written as a small dataset in the standard layout.

``OUT/{label}/{split}/{batch}/{archive}/{file_id}.{wav,mp4,npz,json}`` (the source's own folders
when it sits in the standard layout, else ``clip/clip/0000/0000``), so that
``open_interaction(OUT, key)`` and the rest of our API open a clip like a full file. File ids are
kept.

One set of instants for every file. The requested start and end are snapped to the frame grid of
the first participant's video (frame ``i`` covers ``[i/fps, (i+1)/fps)``: the frame that contains
the requested instant), so video frame 0 of the clip starts exactly when its audio sample 0 and npz
row 0 do. Then the videos are cut:

* **copy** (stream copy, no quality loss) when every video has a keyframe at the snapped start and
  the packets from it present exactly the frames of the range, possibly after moving the start
  and/or end by one frame (within one frame of the request);
* **reencode** (libx264, ``crf`` 18) otherwise.

The WAV keeps its own sample format (its data bytes are copied); the npz keeps its keys, dtypes and
compression, with rows cut by :meth:`Participant.features` (frame rate, hypernet features at 1/15 of
it); the json keeps its keys with every time rebased to the clip start and clipped to the clip
(records entirely outside are dropped, untimed words stay with their segment), plus one key
``"clip"`` recording ``clip_start_s``, ``clip_end_s``, the requested range and ``cut_mode``. The
MP4's embedded audio track is not carried (the WAV is the clip's audio).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import struct
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from seamless_interaction.access import video as vid
from seamless_interaction.access.aligned import NpzReader, span_indices
from seamless_interaction.base import formats
from seamless_interaction.base.errors import ExportError, IntegrityError
from seamless_interaction.local import layout
from seamless_interaction.operations.export.source import Dyad, Speaker

__all__ = ["CUT_MODES", "ClipWriter"]

logger = logging.getLogger(__name__)

CUT_MODES = ("copy", "reencode", "none")
_LAYOUT_PARTS = re.compile(r"^\d{4}$")
_FALLBACK = ("clip", "clip", 0, 0)


def _layout_of(path: Path) -> tuple[str, str, int, int]:
    parts = path.parent.parts
    if len(parts) >= 4 and _LAYOUT_PARTS.match(parts[-1]) and _LAYOUT_PARTS.match(parts[-2]):
        return parts[-4], parts[-3], int(parts[-2]), int(parts[-1])
    return _FALLBACK


def _wav_bytes(info: formats.WavInfo, raw: bytes) -> bytes:
    """A WAV holding ``raw`` sample bytes in the source's encoding (IEEE float keeps the release's
    header with its ``fact`` chunk)."""
    frame_bytes = info.channels * info.bits // 8
    if info.format_tag == 3 and info.bits == 32:
        x = np.frombuffer(raw, dtype="<f4")
        return formats.encode_wav_float32(x.reshape(-1, info.channels) if info.channels > 1 else x, info.sample_rate)
    fmt = struct.pack("<HHIIHH", info.format_tag, info.channels, info.sample_rate,
                      info.sample_rate * frame_bytes, frame_bytes, info.bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(raw)) + raw
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _rebase(t: Any, start: float, length: float) -> float | None:
    if t is None:
        return None
    return round(min(max(float(t) - start, 0.0), length), 6)


def _overlaps(a: Any, b: Any, start: float, end: float) -> bool:
    return a is not None and b is not None and float(a) < end and float(b) > start


def slice_json(doc: dict[str, Any], start: float, end: float) -> dict[str, Any]:
    """The bundle json cut to ``[start, end)`` with times rebased to 0 (see the module doc)."""
    length = end - start
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if key == "metadata:transcript" and isinstance(value, list):
            segs = []
            for seg in value:
                if not _overlaps(seg.get("start"), seg.get("end"), start, end):
                    continue
                words = []
                for w in seg.get("words") or []:
                    if w.get("start") is None or w.get("end") is None:
                        words.append(dict(w))
                    elif _overlaps(w["start"], w["end"], start, end):
                        words.append({**w, "start": _rebase(w["start"], start, length),
                                      "end": _rebase(w["end"], start, length)})
                segs.append({**seg, "words": words, "start": _rebase(seg["start"], start, length),
                             "end": _rebase(seg["end"], start, length)})
            out[key] = segs
        elif key == "metadata:vad" and isinstance(value, list):
            out[key] = [{**r, "start": _rebase(r["start"], start, length), "end": _rebase(r["end"], start, length)}
                        for r in value if _overlaps(r.get("start"), r.get("end"), start, end)]
        elif key.startswith("annotations:") and isinstance(value, list):
            out[key] = [{**r, "start_ts": _rebase(r["start_ts"], start, length),
                         "end_ts": _rebase(r["end_ts"], start, length)}
                        for r in value if _overlaps(r.get("start_ts"), r.get("end_ts"), start, end)]
        else:
            out[key] = value
    return out


class ClipWriter:
    """Cuts ``[start_s, end_s)`` of each dyad into ``out`` (see the module doc)."""

    def __init__(self, out: Path, *, start_s: float, end_s: float, crf: int = 18, preset: str = "veryfast",
                 force_reencode: bool = False) -> None:
        if not (math.isfinite(start_s) and math.isfinite(end_s)) or start_s < 0 or end_s <= start_s:
            raise ExportError(f"clip range [{start_s}, {end_s}) s: expected 0 <= start < end")
        self.out = Path(out)
        self.start_s, self.end_s = float(start_s), float(end_s)
        self.crf, self.preset, self.force_reencode = crf, preset, force_reencode
        self.modes: dict[str, str] = {}

    # ------------------------------------------------------------------ planning
    def _videos(self, dyad: Dyad) -> dict[str, tuple[Fraction, list[vid.PacketEntry]]]:
        out = {}
        for s in dyad.speakers:
            if "mp4" not in s.paths:
                continue
            try:
                info = vid.probe_video(s.paths["mp4"], name=s.paths["mp4"].name)
                if info is None:
                    raise IntegrityError("no video stream")
                out[s.file_id] = (info.frame_rate, vid.video_packets(s.paths["mp4"], frame_rate=info.frame_rate,
                                                                      name=s.paths["mp4"].name))
            except IntegrityError as exc:
                logger.warning("%s: video not usable (%s); the clip has no .mp4 for it", s.file_id, exc)
        return out

    def plan(self, dyad: Dyad) -> tuple[float, float, str, dict[str, tuple[int, int]]]:
        """``(clip_start_s, clip_end_s, cut_mode, {file_id: (first_frame, stop_frame)})``."""
        end = min(self.end_s, dyad.duration_s)
        if self.start_s >= end:
            raise ExportError(f"{dyad.key}: clip start {self.start_s} s is not before the end of the "
                              f"interaction ({dyad.duration_s:.3f} s)")
        videos = self._videos(dyad)
        if not videos:
            return self.start_s, end, "none", {}
        rate0 = next(iter(videos.values()))[0]
        a, b = vid.time_to_index(self.start_s, rate0), vid.time_to_index(end, rate0)
        b = max(b, a + 1)
        same_rate = all(r == rate0 for r, _ in videos.values())
        if same_rate and not self.force_reencode:
            for first in sorted({a, a - 1, a + 1}, key=lambda k: (abs(k - a), k)):
                for stop in sorted({b, b - 1, b + 1}, key=lambda k: (abs(k - b), k)):
                    if first < 0 or stop <= first:
                        continue
                    if all(vid.is_clean_cut(p, first, stop) for _, p in videos.values()):
                        return (float(first / rate0), float(stop / rate0), "copy",
                                {fid: (first, stop) for fid in videos})
        cs, ce = float(a / rate0), float(b / rate0)
        frames = {fid: (vid.time_to_index(cs, r), max(vid.time_to_index(ce, r), vid.time_to_index(cs, r) + 1))
                  for fid, (r, _) in videos.items()}
        return cs, ce, "reencode", frames

    # ------------------------------------------------------------------ writing
    def write(self, dyad: Dyad) -> list[Path]:
        if not dyad.speakers:
            return []
        cs, ce, mode, frames = self.plan(dyad)
        self.modes[dyad.key] = mode
        self.out.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".clip-{dyad.key}-", dir=self.out))
        try:
            staged: list[tuple[Path, Path]] = []
            for s in dyad.speakers:
                label, split, batch, archive = _layout_of(s.paths.get("wav") or next(iter(s.paths.values())))
                finals = layout.bundle_paths(self.out, label, split, batch, archive, s.file_id)
                for ext, data_path in self._write_speaker(s, stage, cs, ce, mode, frames).items():
                    staged.append((data_path, finals[ext]))
            for tmp, final in staged:
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, final)
            logger.info("%s: clip [%.3f, %.3f) s, video %s", dyad.key, cs, ce, mode)
            return [final for _, final in staged]
        finally:
            shutil.rmtree(stage, ignore_errors=True)

    def _write_speaker(self, s: Speaker, stage: Path, cs: float, ce: float, mode: str,
                       frames: dict[str, tuple[int, int]]) -> dict[str, Path]:
        out: dict[str, Path] = {}
        part = s.participant
        base = stage / s.file_id
        # wav: the source's bytes for samples [floor(cs*sr), floor(ce*sr))
        info = part.wav_info
        if info is not None:
            a, b = span_indices(cs, ce, info.sample_rate, info.frames)
            fb = info.channels * info.bits // 8
            with open(s.paths["wav"], "rb") as fh:
                fh.seek(info.data_offset + a * fb)
                raw = fh.read((b - a) * fb)
            out["wav"] = base.with_suffix(".wav")
            out["wav"].write_bytes(_wav_bytes(info, raw))
        if "npz" in s.paths:
            reader = NpzReader(s.paths["npz"], name=s.paths["npz"].name)
            members = reader.members
            arrays = part.features(None, cs, ce)
            compressed = any(m.compressed for m in members.values())
            for key, arr in arrays.items():
                if arr.dtype != members[key].dtype:  # encode_npz casts float64: keep what the file had
                    raise IntegrityError(f"{s.file_id}.npz: {key} is {members[key].dtype}, which the npz "
                                         "writer would change")
            out["npz"] = base.with_suffix(".npz")
            out["npz"].write_bytes(formats.encode_npz(arrays, compress=compressed))
        if "json" in s.paths:
            doc = slice_json(part.json, cs, ce)
            doc["clip"] = {"clip_start_s": cs, "clip_end_s": ce, "requested_start_s": self.start_s,
                           "requested_end_s": self.end_s, "cut_mode": mode if s.file_id in frames else "none",
                           "frames": list(frames[s.file_id]) if s.file_id in frames else None}
            out["json"] = base.with_suffix(".json")
            out["json"].write_bytes(formats.encode_json(doc))
        if s.file_id in frames:
            first, stop = frames[s.file_id]
            out["mp4"] = base.with_suffix(".mp4")
            rate = part.frame_rate
            if mode == "copy":
                n = vid.remux_frames(s.paths["mp4"], out["mp4"], first, stop, frame_rate=rate, name=s.paths["mp4"].name)
            else:
                n = vid.encode_frames(s.paths["mp4"], out["mp4"], first, stop, frame_rate=rate, crf=self.crf,
                                      preset=self.preset, name=s.paths["mp4"].name)
            if n != stop - first:
                logger.warning("%s: wrote %d video frames, expected %d (the source has fewer)", s.file_id, n,
                               stop - first)
        return out

    def close(self) -> list[Path]:
        return []


def clip_record(doc: dict[str, Any]) -> dict[str, Any] | None:
    """The ``"clip"`` entry of a clip's json (None for a full file)."""
    rec = doc.get("clip")
    return json.loads(json.dumps(rec)) if isinstance(rec, dict) else None
