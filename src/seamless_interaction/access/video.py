"""Video probing and on-demand frame decoding with PyAV (torchcodec and OpenCV are never needed).

Frame ``i`` of a file is the frame whose presentation time is ``i / frame_rate`` after the stream's
first frame, so frame indices line up with the rows of the frame-aligned npz features.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import IO, Union

import numpy as np

from seamless_interaction.base.errors import IntegrityError

logger = logging.getLogger(__name__)

# A path, the bytes themselves, or a zero-argument callable opening a seekable binary file
# (used for an mp4 member inside a tar, read in place).
VideoSource = Union[str, Path, bytes, Callable[[], IO[bytes]]]

# Index arithmetic tolerance: a time within this many frames of a frame boundary counts as on it,
# so that 1/3 s at 30 fps is frame 10 although 1/3 * 30 == 10.000000000000002 in floats.
INDEX_EPS = 1e-6


def time_to_index(t: float, rate: float | Fraction) -> int:
    """Index of the sample whose period ``[i/rate, (i+1)/rate)`` contains ``t`` (with INDEX_EPS slack)."""
    return math.floor(float(t) * float(rate) + INDEX_EPS)


@dataclass(frozen=True)
class VideoInfo:
    """What the file's own video stream says; ``frame_rate`` is exact (average_rate as a Fraction)."""

    frame_rate: Fraction
    num_frames: int
    width: int
    height: int
    duration_s: float


def _open(source: VideoSource, name: str):
    import av  # PyAV is a core dependency, imported lazily to keep ``import seamless_interaction`` light

    if isinstance(source, (bytes, bytearray, memoryview)):
        fobj: object = io.BytesIO(bytes(source))
    elif callable(source):
        fobj = source()
    else:
        fobj = str(source)
    try:
        return av.open(fobj, "r")
    except Exception as exc:  # av.error.InvalidDataError and friends; placeholder mp4s land here
        raise IntegrityError(f"{name}: not a readable mp4 ({exc}); placeholder or truncated video?") from exc


def probe_video(source: VideoSource, *, name: str = "mp4") -> VideoInfo | None:
    """Stream facts of a video, or None when the container opens but holds no video stream.

    Raises :class:`IntegrityError` when the container itself cannot be read (261-byte placeholder
    mp4s, truncated files without a moov atom).
    """
    container = _open(source, name)
    try:
        if not container.streams.video:
            return None
        vs = container.streams.video[0]
        rate = vs.average_rate or vs.guessed_rate or vs.base_rate
        if not rate:
            return None
        rate = Fraction(rate)
        tb = vs.time_base
        if vs.duration is not None and tb is not None:
            duration = float(vs.duration * tb)
        elif container.duration is not None:
            duration = container.duration / 1_000_000
        else:
            duration = 0.0
        frames = int(vs.frames) or int(round(duration * rate))
        return VideoInfo(rate, frames, int(vs.codec_context.width), int(vs.codec_context.height), duration)
    finally:
        container.close()


def decode_frames(source: VideoSource, start_s: float, end_s: float, *, frame_rate: Fraction | None = None,
                  name: str = "mp4") -> np.ndarray:
    """Frames ``[time_to_index(start_s), time_to_index(end_s))`` as uint8 RGB ``(T, H, W, 3)``.

    Seeks to the keyframe at or before ``start_s`` and decodes forward from there, never from the
    start of the file. ``frame_rate`` defaults to the stream's own average rate.
    """
    container = _open(source, name)
    try:
        if not container.streams.video:
            raise IntegrityError(f"{name}: the file has no video stream")
        vs = container.streams.video[0]
        vs.thread_type = "AUTO"
        rate = Fraction(frame_rate) if frame_rate else Fraction(vs.average_rate or vs.guessed_rate)
        tb = vs.time_base
        first, stop = time_to_index(start_s, rate), time_to_index(end_s, rate)
        if stop <= first:
            return np.zeros((0, vs.codec_context.height, vs.codec_context.width, 3), np.uint8)
        t0 = vs.start_time or 0
        if first > 0:
            target = t0 + int(Fraction(first) / rate / tb)
            # backward=True lands on the last keyframe at or before the target.
            container.seek(target, stream=vs, backward=True, any_frame=False)
        out: list[np.ndarray] = []
        for frame in container.decode(vs):
            if frame.pts is None:
                continue
            idx = time_to_index(float((frame.pts - t0) * tb), rate)
            if idx < first:
                continue
            if idx >= stop:
                break
            out.append(frame.to_ndarray(format="rgb24"))
        if not out:
            return np.zeros((0, vs.codec_context.height, vs.codec_context.width, 3), np.uint8)
        return np.stack(out)
    finally:
        container.close()


# OpenCV property ids that VideoReader.get understands (values from cv2's headers).
CAP_PROP_POS_FRAMES = 1
CAP_PROP_FRAME_WIDTH = 3
CAP_PROP_FRAME_HEIGHT = 4
CAP_PROP_FPS = 5
CAP_PROP_FRAME_COUNT = 7


class VideoReader:
    """A lazy, PyAV-backed stand-in for ``cv2.VideoCapture`` (the official README's ``data["video"]``).

    Nothing is opened until the first call. ``read()`` returns ``(ok, frame)`` with frames in BGR
    order like OpenCV; ``frames()`` iterates RGB frames; ``get`` answers the CAP_PROP_* ids above.

    >>> cap = VideoReader("V00_S0809_I00000582_P0947.mp4")
    >>> ok, frame = cap.read()
    """

    def __init__(self, source: VideoSource, *, name: str | None = None):
        self._source = source
        self._name = name or (str(source) if isinstance(source, (str, Path)) else "mp4")
        self._container = None
        self._iter = None
        self._info: VideoInfo | None = None
        self._pos = 0

    def _ensure(self):
        if self._container is None:
            self._container = _open(self._source, self._name)
            if not self._container.streams.video:
                raise IntegrityError(f"{self._name}: the file has no video stream")
            self._iter = self._container.decode(self._container.streams.video[0])
        return self._container

    @property
    def info(self) -> VideoInfo | None:
        if self._info is None:
            self._info = probe_video(self._source, name=self._name)
        return self._info

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        try:
            self._ensure()
            return True
        except IntegrityError:
            return False

    def read(self) -> tuple[bool, np.ndarray | None]:
        try:
            self._ensure()
            frame = next(self._iter)  # type: ignore[arg-type]
        except (StopIteration, IntegrityError):
            return False, None
        self._pos += 1
        return True, frame.to_ndarray(format="bgr24")

    def frames(self):
        """Iterate RGB frames from the current position."""
        while True:
            ok, frame = self.read()
            if not ok:
                return
            yield frame[..., ::-1]

    def get(self, prop: int) -> float:
        info = self.info
        if prop == CAP_PROP_POS_FRAMES:
            return float(self._pos)
        if info is None:
            return 0.0
        return float({CAP_PROP_FRAME_WIDTH: info.width, CAP_PROP_FRAME_HEIGHT: info.height,
                      CAP_PROP_FPS: info.frame_rate, CAP_PROP_FRAME_COUNT: info.num_frames}.get(prop, 0.0))

    def release(self) -> None:
        if self._container is not None:
            self._container.close()
        self._container, self._iter, self._pos = None, None, 0

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


# ------------------------------------------------------------------------------------------------
# Writing ranges of frames (the clip export). Separate from decoding above: these produce new files.

@dataclass(frozen=True)
class PacketEntry:
    """One video packet in decode order: the frame index it presents (module convention) and whether
    the container marks it a keyframe (sync sample)."""

    frame: int
    keyframe: bool


def video_packets(source: VideoSource, *, frame_rate: Fraction | None = None, name: str = "mp4") -> list[PacketEntry]:
    """The video stream's packets in decode order, read from the container without decoding."""
    container = _open(source, name)
    try:
        if not container.streams.video:
            raise IntegrityError(f"{name}: the file has no video stream")
        vs = container.streams.video[0]
        rate = Fraction(frame_rate) if frame_rate else Fraction(vs.average_rate or vs.guessed_rate)
        tb, t0 = vs.time_base, vs.start_time or 0
        out = []
        for packet in container.demux(vs):
            if packet.pts is None or packet.size == 0:
                continue
            out.append(PacketEntry(time_to_index(float((packet.pts - t0) * tb), rate), bool(packet.is_keyframe)))
        return out
    finally:
        container.close()


def is_clean_cut(packets: list[PacketEntry], first: int, stop: int) -> bool:
    """True when frames ``[first, stop)`` can be stream-copied: frame ``first`` is a keyframe and the
    ``stop - first`` packets from it in decode order present exactly those frames (so no kept frame
    references a dropped one, and no frame outside the range is shown)."""
    start = next((i for i, p in enumerate(packets) if p.frame == first and p.keyframe), None)
    if start is None or stop <= first:
        return False
    run = packets[start:start + (stop - first)]
    return len(run) == stop - first and sorted(p.frame for p in run) == list(range(first, stop))


def remux_frames(source: VideoSource, dest: str | Path, first: int, stop: int, *,
                 frame_rate: Fraction | None = None, name: str = "mp4") -> int:
    """Stream-copy frames ``[first, stop)`` (check :func:`is_clean_cut` first) into a new MP4 whose
    first frame is at time 0; other streams (the embedded audio) are not carried. Returns frames written."""
    import av

    container = _open(source, name)
    try:
        vs = container.streams.video[0]
        rate = Fraction(frame_rate) if frame_rate else Fraction(vs.average_rate or vs.guessed_rate)
        tb, t0 = vs.time_base, vs.start_time or 0
        written, offset = 0, None
        with av.open(str(dest), "w", format="mp4") as out:
            os_ = out.add_stream_from_template(vs)
            for packet in container.demux(vs):
                if packet.pts is None or packet.size == 0:
                    continue
                idx = time_to_index(float((packet.pts - t0) * tb), rate)
                if offset is None:
                    if idx != first or not packet.is_keyframe:
                        continue
                    offset = packet.pts
                packet.pts -= offset
                if packet.dts is not None:
                    packet.dts -= offset
                packet.stream = os_
                out.mux(packet)
                written += 1
                if written == stop - first:
                    break
        return written
    finally:
        container.close()


def encode_frames(source: VideoSource, dest: str | Path, first: int, stop: int, *,
                  frame_rate: Fraction | None = None, crf: int = 18, preset: str = "veryfast",
                  name: str = "mp4") -> int:
    """Decode frames ``[first, stop)`` (from the keyframe before ``first``) and encode them with libx264
    at the source's frame rate and size into a new MP4 starting at time 0. Returns frames written."""
    import av

    container = _open(source, name)
    try:
        vs = container.streams.video[0]
        vs.thread_type = "AUTO"
        rate = Fraction(frame_rate) if frame_rate else Fraction(vs.average_rate or vs.guessed_rate)
        tb, t0 = vs.time_base, vs.start_time or 0
        if first > 0:
            container.seek(t0 + int(Fraction(first) / rate / tb), stream=vs, backward=True, any_frame=False)
        written, last = 0, first - 1
        with av.open(str(dest), "w", format="mp4") as out:
            os_ = out.add_stream("libx264", rate=rate)
            os_.width, os_.height = vs.codec_context.width, vs.codec_context.height
            os_.pix_fmt = "yuv420p"
            os_.codec_context.thread_type = "AUTO"
            os_.options = {"crf": str(crf), "preset": preset}
            for frame in container.decode(vs):
                if frame.pts is None:
                    continue
                idx = time_to_index(float((frame.pts - t0) * tb), rate)
                if idx <= last:  # before the range, or a second frame on one index (the encoder needs rising pts)
                    continue
                if idx >= stop:
                    break
                last = idx
                if frame.format.name != "yuv420p":
                    frame = frame.reformat(format="yuv420p")
                frame.pts, frame.time_base = idx - first, Fraction(1) / rate
                for packet in os_.encode(frame):
                    out.mux(packet)
                written += 1
            for packet in os_.encode():
                out.mux(packet)
        return written
    finally:
        container.close()
