"""Rerun ``.rrd``: one recording per interaction on one ``time`` timeline (seconds from the start).

Entities, per participant ``P`` (participant id with its letter suffix):

* ``/P/video``: the MP4 (``AssetVideo``) and one ``VideoFrameReference`` per frame, frame ``i`` at
  ``i / fps``; ``/P/video/keypoints`` (``Points2D``, the 133 COCO-WholeBody points, x/y in the
  video's pixels) and ``/P/video/box`` (``Boxes2D``) on valid frames, empty on invalid ones;
* ``/P/vad``: a 0/1 scalar stepping at each talkspurt edge;
* ``/P/emotion/valence`` and ``/P/emotion/arousal``: per-frame scalars where the npz has them
  (``movement:`` or ``movement_v4:``);
* ``/P/body3d``: ``Points3D`` per frame where the npz carries 3D points (``movement_v4:pred_vertices``;
  SMPL-H parameters are angles, not points, and are not drawn).

Videos are embedded by default (the .rrd is self-contained). With ``embed_video=False`` the .rrd
holds only the frame timeline and each MP4's path (relative to the .rrd) as a ``video_path``
property: Rerun 0.41 has no archetype that points a video asset at an external file, so the
frames show once the MP4 is logged into the same recording (``rr.log_file_from_path``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from seamless_interaction.base.errors import IntegrityError
from seamless_interaction.operations.export._common import atomic_path, require
from seamless_interaction.operations.export.source import Dyad, Speaker

__all__ = ["TIMELINE", "RerunWriter"]

logger = logging.getLogger(__name__)

TIMELINE = "time"
_EMOTION = ("valence", "arousal")
_POINTS3D_SUFFIX = ":pred_vertices"
_BOXES_KEYS = ("boxes_and_keypoints:keypoints", "boxes_and_keypoints:box", "boxes_and_keypoints:is_valid_box")


class RerunWriter:
    """Writes ``OUT/{interaction key}.rrd`` per dyad."""

    def __init__(self, out: Path, *, embed_video: bool = True) -> None:
        self._rr = require("rerun", "Rerun")
        self.out = Path(out)
        self.embed_video = embed_video

    def write(self, dyad: Dyad) -> list[Path]:
        if not dyad.speakers:
            return []
        rr = self._rr
        target = self.out / f"{dyad.key}.rrd"
        rec = rr.RecordingStream("seamless_interaction", recording_id=dyad.key)
        with atomic_path(target) as tmp:
            rec.save(str(tmp))
            try:
                rec.log("/", rr.AnyValues(interaction_key=dyad.key,
                                          file_ids=[s.file_id for s in dyad.speakers]), static=True)
                for s in dyad.speakers:
                    self._speaker(rec, s)
            finally:
                rec.flush()
                rec.disconnect()
        return [target]

    def _times(self, n: int, rate) -> np.ndarray:
        return np.arange(n, dtype=np.float64) / float(rate)

    def _speaker(self, rec, s: Speaker) -> None:
        rr = self._rr
        root = f"/{s.participant_id}"
        part = s.participant
        rate = part.frame_rate
        if "mp4" in s.paths and rate is not None:
            try:
                self._video(rec, s, f"{root}/video")
            except IntegrityError as exc:
                logger.warning("%s: video not logged (%s)", s.file_id, exc)
        # VAD as a step function: 1 at each talkspurt start, 0 at its end
        edges = [(t, v) for a, b in s.talkspurts for t, v in ((a, 1.0), (b, 0.0))]
        if edges:
            ts, vs = zip(*edges)
            rec.send_columns(f"{root}/vad", indexes=[rr.TimeColumn(TIMELINE, duration=np.array(ts))],
                             columns=rr.Scalars.columns(scalars=np.array(vs)))
        rec.log(f"{root}/vad", rr.SeriesLines(names="speech"), static=True)
        if "npz" not in s.paths or rate is None:
            return
        keys = part.feature_keys()
        for name in _EMOTION:
            for group in ("movement", "movement_v4"):
                key = f"{group}:emotion_{name}"
                if key in keys:
                    values = part.features([key])[key].reshape(-1).astype(np.float64)
                    path = f"{root}/emotion/{name}" if group == "movement" else f"{root}/emotion_v4/{name}"
                    rec.send_columns(path, indexes=[rr.TimeColumn(TIMELINE, duration=self._times(len(values), rate))],
                                     columns=rr.Scalars.columns(scalars=values))
        if all(k in keys for k in _BOXES_KEYS):
            arr = part.features(list(_BOXES_KEYS))
            kp, box = arr["boxes_and_keypoints:keypoints"], arr["boxes_and_keypoints:box"]
            valid = arr["boxes_and_keypoints:is_valid_box"].astype(bool).reshape(-1)
            n = len(kp)
            times = rr.TimeColumn(TIMELINE, duration=self._times(n, rate))
            counts = np.where(valid, kp.shape[1], 0)
            rec.send_columns(f"{root}/video/keypoints", indexes=[times],
                             columns=rr.Points2D.columns(positions=kp[valid, :, :2].reshape(-1, 2)).partition(counts))
            rec.log(f"{root}/video/keypoints", rr.Points2D.from_fields(radii=[2.0]), static=True)
            b = box[valid]
            rec.send_columns(f"{root}/video/box", indexes=[times], columns=rr.Boxes2D.columns(
                centers=(b[:, :2] + b[:, 2:]) / 2, half_sizes=(b[:, 2:] - b[:, :2]) / 2).partition(valid.astype(int)))
        for key in keys:
            if key.endswith(_POINTS3D_SUFFIX):
                pts = part.features([key])[key]
                if pts.ndim == 3 and pts.shape[-1] == 3:
                    n, k = pts.shape[:2]
                    rec.send_columns(f"{root}/body3d", indexes=[rr.TimeColumn(TIMELINE, duration=self._times(n, rate))],
                                     columns=rr.Points3D.columns(positions=pts.reshape(-1, 3)).partition([k] * n))

    def _video(self, rec, s: Speaker, path: str) -> None:
        rr = self._rr
        mp4 = s.paths["mp4"]
        info = s.participant.video_info
        if info is None:
            raise IntegrityError(f"{mp4.name}: no video stream")
        if self.embed_video:
            asset = rr.AssetVideo(path=mp4)
            rec.log(path, asset, static=True)
            ts_ns = np.asarray(asset.read_frame_timestamps_nanos(), dtype=np.int64)
        else:
            rel = os.path.relpath(mp4.resolve(), self.out.resolve())
            rec.log(path, rr.AnyValues(video_path=rel.replace(os.sep, "/")), static=True)
            ts_ns = np.round(self._times(info.num_frames, info.frame_rate) * 1e9).astype(np.int64)
        if not len(ts_ns):
            return
        # the video's own timestamps for the references, frame i / fps on the shared timeline
        times = self._times(len(ts_ns), info.frame_rate)
        rec.send_columns(path, indexes=[rr.TimeColumn(TIMELINE, duration=times)],
                         columns=rr.VideoFrameReference.columns_nanos(ts_ns))

    def close(self) -> list[Path]:
        return []
