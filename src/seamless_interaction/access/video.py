"""Video probing and on-demand frame decoding with PyAV (torchcodec and OpenCV are never needed).

Frame ``i`` of a file is the frame whose presentation time is ``i / frame_rate`` after the stream's
first frame, so frame indices line up with the rows of the frame-aligned npz features.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

import numpy as np

from seamless_interaction.base.errors import IntegrityError

__all__ = ["VideoInfo", "VideoReader", "decode_frames", "probe_video", "time_to_index"]

# A path, the bytes themselves, or a zero-argument callable opening a seekable binary file
# (used for an mp4 member inside a tar, read in place).
VideoSource = str | Path | bytes | Callable[[], IO[bytes]]

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
        self._container: Any = None  # an av container once opened (PyAV is untyped here)
        self._iter: Iterator[Any] | None = None
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
            assert self._iter is not None  # set by _ensure
            frame = next(self._iter)
        except (StopIteration, IntegrityError):
            return False, None
        self._pos += 1
        return True, frame.to_ndarray(format="bgr24")

    def frames(self):
        """Iterate RGB frames from the current position."""
        while True:
            ok, frame = self.read()
            if not ok or frame is None:
                return
            yield frame[..., ::-1]

    def get(self, prop: int) -> float:
        info = self.info
        if prop == CAP_PROP_POS_FRAMES:
            return float(self._pos)
        if info is None:
            return 0.0
        props: dict[int, float] = {CAP_PROP_FRAME_WIDTH: info.width, CAP_PROP_FRAME_HEIGHT: info.height,
                                   CAP_PROP_FPS: float(info.frame_rate), CAP_PROP_FRAME_COUNT: info.num_frames}
        return float(props.get(prop, 0.0))

    def release(self) -> None:
        if self._container is not None:
            self._container.close()
        self._container, self._iter, self._pos = None, None, 0

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.release()
