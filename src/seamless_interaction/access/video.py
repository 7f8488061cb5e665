"""Video probing and on-demand frame decoding with PyAV (torchcodec and OpenCV are never needed).

Frame windows for the loader (``WindowDecoder`` on the CPU, ``GpuWindowDecoder`` on NVDEC) are in the
"frame windows" section below; see its comment for the selection rule.

Frame ``i`` of a file is the frame whose presentation time is ``i / frame_rate`` after the stream's
first frame, so frame indices line up with the rows of the frame-aligned npz features.
"""

from __future__ import annotations

import bisect
import io
import math
import numbers
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

import numpy as np

from seamless_interaction.base.errors import IntegrityError

__all__ = [
    "GpuWindowDecoder",
    "PacketEntry",
    "VideoInfo",
    "VideoReader",
    "WindowDecoder",
    "decode_frames",
    "display_size",
    "encode_frames",
    "is_clean_cut",
    "open_window_decoder",
    "output_size",
    "probe_video",
    "remux_frames",
    "time_to_index",
    "video_packets",
    "window_targets",
]

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
    """Frames ``[time_to_index(start_s), time_to_index(end_s))`` as uint8 RGB ``(T, H, W, 3)``, native size,
    in display orientation.

    Frame ``i`` is the last frame shown at ``i / frame_rate`` (``frame_rate`` defaults to the
    stream's own average rate). Decodes with :class:`WindowDecoder`: one seek to the keyframe at or
    before ``start_s``, never from the start of the file.
    """
    with WindowDecoder(source, name=name) as dec:
        dec._ensure()
        rate = Fraction(frame_rate) if frame_rate else dec.native_rate
        first, stop = time_to_index(start_s, rate), time_to_index(end_s, rate)
        return dec.frames_at([i / float(rate) for i in range(max(first, 0), stop)])


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


# ================================================================================ frame windows
# The loader's "video" modality: windows of frames on the dataset's clock, scaled in the decoder.
# Kept apart from the probing/reader code above and from clip export (encode/remux) helpers.
#
# Selection rule, for a window [start_s, end_s) at ``fps`` (default: the stream's average rate):
# target k is t_k = start_s + k / fps for every k with t_k < end_s, and frame k is the last frame
# whose presentation time (pts - stream start, seconds) is <= t_k (the first frame when none is).
# Targets at or after the end of the last frame (its pts + one frame period) are dropped, so a window
# past the end of the stream is shorter. At the stream's own rate this is the frame-aligned rows'
# convention: the frame containing ``start_s`` is in, and consecutive windows partition the frames.

VideoSize = int | tuple[int, int] | None

# A window that starts ahead of the decoded frames seeks instead of decoding its way there only when
# a keyframe lies more than this many frames ahead: a seek flushes the decoder's threads, which costs
# about as much as decoding a few frames.
SKIP_AHEAD_FRAMES = 8

# fork() after this module was imported leaves a child whose pid differs from this one: the GPU path
# refuses to start CUDA there (CUDA cannot be used in a forked child of a process that touched it).
_IMPORT_PID = os.getpid()


def window_targets(start_s: float, end_s: float, fps: float | Fraction) -> list[float]:
    """Target times ``start_s + k / fps`` of a window (``k`` while the time stays before ``end_s``)."""
    rate = float(fps)
    if rate <= 0:
        raise ValueError(f"video_fps must be > 0, got {fps!r}")
    n = max(0, math.ceil((end_s - start_s) * rate - INDEX_EPS))
    return [start_s + k / rate for k in range(n)]


def display_size(coded_w: int, coded_h: int, rotation: int) -> tuple[int, int]:
    """``(height, width)`` as displayed: a quarter turn swaps the coded sides."""
    return (coded_w, coded_h) if rotation % 180 == 90 else (coded_h, coded_w)


def output_size(display_hw: tuple[int, int], size: VideoSize) -> tuple[int, int]:
    """Displayed ``(height, width)`` after ``size``: None keeps it, an int is the short side (the long
    side ``int(size * long / short)``, as torchvision's ``Resize``), a pair is ``(height, width)``."""
    h, w = display_hw
    if size is None:
        return h, w
    if isinstance(size, (int, numbers.Integral)):  # numpy integers too
        size = int(size)
        if size <= 0:
            raise ValueError(f"video_size must be > 0, got {size!r}")
        if h <= w:
            return size, max(1, int(size * w / h))
        return max(1, int(size * h / w)), size
    try:
        oh, ow = (int(x) for x in size)
    except (TypeError, ValueError):
        raise ValueError(f"video_size must be an int (short side) or (height, width), got {size!r}") from None
    if oh <= 0 or ow <= 0:
        raise ValueError(f"video_size must be positive, got {size!r}")
    return oh, ow


def _quarter_turns(rotation: int) -> int:
    """np.rot90 turns (counter-clockwise) that show a frame whose display matrix rotates it by
    ``rotation`` degrees counter-clockwise (PyAV's ``VideoFrame.rotation``); as FFmpeg's autorotate."""
    return round(rotation / 90) % 4


class _Rec:
    """One decoded frame since the last seek: its time, its converted image once chosen, and the raw
    frame while it may still be chosen (dropped after, to bound memory)."""

    __slots__ = ("frame", "img", "t")

    def __init__(self, t: float, frame):
        self.t = t
        self.img: np.ndarray | None = None
        self.frame = frame


class WindowDecoder:
    """Frame windows of one video with PyAV on the CPU: uint8 ``(T, H, W, 3)`` (or ``(T, 3, H, W)``).

    One container stays open between calls. A window seeks once, to the keyframe before its start,
    unless the decoder can continue: a window that starts at or after the frames already decoded (the
    next window of a sequence, or an overlapping one whose frames are still held) continues the open
    decoder, and only seeks ahead when a keyframe lies between. Frames are skipped by timestamp
    without conversion; the chosen ones are scaled and converted to RGB in one swscale call, at the
    displayed orientation (the display matrix is applied; ``size`` refers to the displayed frame).

    Args:
        source: a path, bytes, or an opener of a seekable binary file (a tar member in place).
        fps: output rate (frames per second of the window); None for the stream's own rate.
        size: None (native), an int (short side) or ``(height, width)`` (stretches).
        channels_first: ``(T, 3, H, W)`` instead of ``(T, H, W, 3)``.
        threads: FFmpeg decoding threads (0: FFmpeg picks, about one per core).
        interpolation: swscale algorithm (PyAV ``Interpolation`` name), ``"BILINEAR"`` by default.

    ``seeks``, ``decoded`` and ``converted`` count the seeks made, the frames decoded and the frames
    scaled to RGB since the decoder was made: consecutive windows add no seek and decode each frame
    once; only chosen frames are converted, each once while the decoder still holds it.
    """

    def __init__(self, source: VideoSource, *, name: str = "mp4", fps: float | Fraction | None = None,
                 size: VideoSize = None, channels_first: bool = False, threads: int = 0,
                 interpolation: str = "BILINEAR"):
        if size is not None:
            output_size((1, 1), size)  # validate early
        if fps is not None and float(fps) <= 0:
            raise ValueError(f"video_fps must be > 0, got {fps!r}")
        self._source, self.name = source, name
        self.fps, self.size, self.channels_first = fps, size, channels_first
        self.threads, self.interpolation = threads, interpolation
        self.seeks = self.decoded = self.converted = 0
        # PyAV's container, stream and frame iterator once opened (PyAV is untyped here).
        self._container: Any = None
        self._vs: Any = None
        self._it: Any = None
        self._recs: list[_Rec] = []
        self._eof = False
        self._out_hw: tuple[int, int] | None = None
        self._turns = 0
        self._key_times: list[float] | None = None

    # ---- container
    def _ensure(self):
        if self._container is not None:
            return
        import av.video.reformatter

        container = _open(self._source, self.name)
        if not container.streams.video:
            container.close()
            raise IntegrityError(f"{self.name}: the file has no video stream")
        vs = container.streams.video[0]
        vs.thread_type = "AUTO"
        vs.codec_context.thread_count = self.threads
        rate = vs.average_rate or vs.guessed_rate or vs.base_rate
        if not rate:
            container.close()
            raise IntegrityError(f"{self.name}: the video stream has no frame rate")
        self._container, self._vs = container, vs
        self._tb = float(vs.time_base)
        self._t0 = vs.start_time or 0
        self.native_rate = Fraction(rate)
        self._period = 1.0 / float(self.native_rate)
        self._eps = INDEX_EPS * self._period
        # Reorder delay: the mp4 index holds decode times; seeking to (target - delay) lands on a
        # keyframe whose presentation time is at or before the target.
        self._delay = 0
        entries = getattr(vs, "index_entries", None)
        if entries is not None and len(entries):
            self._delay = max(0, self._t0 - entries[0].timestamp)
        self._reformatter = av.video.reformatter.VideoReformatter()

    def _keyframe_times(self) -> list[float]:
        if self._key_times is None:
            entries = getattr(self._vs, "index_entries", None)
            times: list[float] = []
            if entries is not None:
                times = [(e.timestamp + self._delay - self._t0) * self._tb for e in entries if e.is_keyframe]
            self._key_times = times
        return self._key_times

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
        self._container = self._vs = self._it = None
        self._recs, self._eof = [], False

    def __enter__(self) -> WindowDecoder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- decoding
    def _next(self) -> bool:
        """Decode one more frame into the records; False at the end of the stream."""
        for frame in self._it:
            if frame.pts is None:
                continue
            recs = self._recs
            if len(recs) >= 2:
                recs[-2].frame = None  # passed over: no later target can choose it
            recs.append(_Rec((frame.pts - self._t0) * self._tb, frame))
            self.decoded += 1
            return True
        self._eof = True
        return False

    def _seek(self, t: float) -> None:
        self.seeks += 1
        target = self._t0 + math.floor(t / self._tb) - self._delay
        for _ in range(8):
            self._container.seek(max(target, self._t0 - self._delay), stream=self._vs, backward=True,
                                 any_frame=False)
            self._it, self._recs, self._eof = self._container.decode(self._vs), [], False
            if not self._next() or self._recs[0].t <= t + self._eps or target <= self._t0 - self._delay:
                return
            # Landed after the target (odd index or timestamps): step back a keyframe and retry.
            target = self._t0 + math.floor(self._recs[0].t / self._tb) - self._delay - 1 - int(1 / self._tb)
        raise IntegrityError(f"{self.name}: cannot seek to {t:.3f} s")

    def _geometry(self, frame) -> tuple[int, int]:
        """Output size and turns, fixed by the first frame (later rasters are scaled to it)."""
        rotation = getattr(frame, "rotation", 0) or 0
        self._turns = _quarter_turns(rotation)
        self._out_hw = out_hw = output_size(display_size(frame.width, frame.height, rotation), self.size)
        return out_hw

    def _convert(self, frame) -> np.ndarray:
        oh, ow = self._out_hw or self._geometry(frame)
        # Scale in the coded orientation to the size that shows as (oh, ow) once turned.
        sw, sh = (oh, ow) if self._turns % 2 else (ow, oh)
        # One swscale thread: FFmpeg's frame threads already keep the cores busy decoding while this
        # thread converts, and swscale's own slice threads only contended with them (bench_video.py:
        # about 7 % more windows/s on 2 cores). Threads do not change swscale's output.
        self.converted += 1
        img = self._reformatter.reformat(frame, width=sw, height=sh, format="rgb24",
                                         interpolation=self.interpolation, threads=1).to_ndarray()
        return np.rot90(img, self._turns) if self._turns else img

    def _serve(self, targets: list[float], fresh: bool = False) -> list[np.ndarray] | None:
        """Images for the targets from the open decoder, or None when that needs a seek (``fresh``:
        just sought, so never seek again to skip ahead)."""
        if self._it is None:
            return None
        recs, eps = self._recs, self._eps
        if not recs and not self._next():
            return []
        if recs[0].t > targets[0] + eps and recs[0].t > eps:
            return None  # the frames before the first held one are gone
        last = recs[-1].t
        if not fresh and not self._eof and targets[0] > last + eps:
            keys = self._keyframe_times()
            if keys:
                i = bisect.bisect_right(keys, targets[0] + eps)
                if i and keys[i - 1] > last + SKIP_AHEAD_FRAMES * self._period:
                    return None  # a seek lands on that keyframe: cheaper than decoding up to it
            elif targets[0] - last > 2.0:
                return None
        out: list[np.ndarray] = []
        j = 0
        first = None
        for t in targets:
            while not self._eof and recs[-1].t <= t + eps:
                self._next()
            while j + 1 < len(recs) and recs[j + 1].t <= t + eps:
                j += 1
            if self._eof and t >= recs[-1].t + self._period - eps:
                break  # past the end of the last frame
            r = recs[j]
            if r.img is None:
                if r.frame is None:
                    return None  # skipped earlier without converting: decode it again
                r.img = self._convert(r.frame)
            if first is None:
                first = j
            out.append(r.img)
        if first is not None:
            del recs[:first]  # keep what an overlapping next window may reuse
        return out

    def frames_at(self, targets: list[float]) -> np.ndarray:
        """The frame shown at each target time (seconds from the stream's start), in order; targets
        must not decrease. Raises IntegrityError for a stream FFmpeg cannot decode."""
        import av

        try:
            return self._frames_at(targets)
        except av.error.FFmpegError as exc:
            self.close()
            raise IntegrityError(f"{self.name}: video does not decode ({exc})") from exc

    def _frames_at(self, targets: list[float]) -> np.ndarray:
        self._ensure()
        if not targets:
            return self._empty()
        imgs = self._serve(targets)
        if imgs is None:
            self._seek(targets[0])
            imgs = self._serve(targets, fresh=True)
            if imgs is None:
                raise IntegrityError(f"{self.name}: frames at {targets[0]:.3f} s could not be decoded")
        if not imgs:
            return self._empty()
        arr = np.stack(imgs)
        return np.ascontiguousarray(arr.transpose(0, 3, 1, 2)) if self.channels_first else arr

    def window(self, start_s: float, end_s: float) -> np.ndarray:
        """Frames of ``[start_s, end_s)`` by the selection rule (module comment above)."""
        self._ensure()
        return self.frames_at(window_targets(start_s, end_s, self.fps or self.native_rate))

    def _empty(self) -> np.ndarray:
        out_hw = self._out_hw
        if out_hw is None:  # the displayed size needs a decoded frame (its rotation)
            held = next((r.frame for r in self._recs if r.frame is not None), None)
            if held is None:
                self._seek(0.0)
                held = self._recs[0].frame if self._recs else None
            if held is None:
                raise IntegrityError(f"{self.name}: the video stream has no frames")
            out_hw = self._geometry(held)
        h, w = out_hw
        return np.zeros((0, 3, h, w) if self.channels_first else (0, h, w, 3), np.uint8)


# -------------------------------------------------------------------------------- GPU (NVDEC)
def _require_gpu():
    """PyNvVideoCodec and torch with a usable CUDA device, or a VideoDeviceError saying what is missing."""
    from seamless_interaction.base.errors import VideoDeviceError

    if os.getpid() != _IMPORT_PID:
        raise VideoDeviceError(
            "video_device='cuda' inside a forked process (a DataLoader worker started with 'fork'): CUDA "
            "cannot be used after fork. Use DataLoader(..., multiprocessing_context='spawn') or "
            "torch.multiprocessing.set_start_method('spawn'), or num_workers=0")
    try:
        import torch
    except ImportError as exc:
        raise VideoDeviceError("video_device='cuda' needs PyTorch with CUDA: "
                               "pip install 'seamless-interaction[loader,gpu]'") from exc
    if getattr(torch.cuda, "_is_in_bad_fork", lambda: False)():
        raise VideoDeviceError("video_device='cuda' in a process forked after CUDA started; use the 'spawn' "
                               "start method (DataLoader(..., multiprocessing_context='spawn'))")
    try:
        import PyNvVideoCodec as nvc
    except ImportError as exc:
        raise VideoDeviceError("video_device='cuda' needs NVIDIA's PyNvVideoCodec: "
                               "pip install 'seamless-interaction[gpu]'") from exc
    if not torch.cuda.is_available():
        raise VideoDeviceError("video_device='cuda' needs an NVIDIA GPU, and torch.cuda.is_available() is "
                               "False here; use video_device='cpu'")
    return torch, nvc


class GpuWindowDecoder:
    """Frame windows decoded by NVDEC through PyNvVideoCodec, kept on the GPU: uint8 torch tensors
    ``(T, H, W, 3)`` (or ``(T, 3, H, W)``) on ``device``, same selection rule and sizes as
    :class:`WindowDecoder`.

    PyNvVideoCodec's ``SimpleDecoder`` reads a path, so a source that is not a local file (a tar
    member, bytes) is first copied to a temporary file, removed by :meth:`close`. The frame times
    come from PyAV's demuxer (packets only, no decoding), the display rotation from one decoded
    frame's side data. Frames come out as planar RGB (``OutputColorType.RGBP``) through DLPack; the
    resize is ``torch.nn.functional.interpolate`` (bilinear, antialiased) on the GPU.
    """

    def __init__(self, source: VideoSource, *, name: str = "mp4", fps: float | Fraction | None = None,
                 size: VideoSize = None, channels_first: bool = False, device: str = "cuda",
                 spool_dir: str | None = None):
        self._torch, self._nvc = _require_gpu()
        if size is not None:
            output_size((1, 1), size)
        self._source, self.name = source, name
        self.fps, self.size, self.channels_first = fps, size, channels_first
        self.device = self._torch.device(device)
        self._spool_dir = spool_dir
        self._dec: Any = None  # PyNvVideoCodec's SimpleDecoder once opened (untyped)
        self._tmp: str | None = None
        self._next_index: int | None = None
        self.seeks = 0

    def _path(self) -> str:
        src = self._source
        if isinstance(src, (str, Path)):
            return str(src)
        import shutil
        import tempfile

        fd, tmp = tempfile.mkstemp(prefix="seamless-video-", suffix=".mp4", dir=self._spool_dir)
        self._tmp = tmp
        with os.fdopen(fd, "wb") as out:
            if isinstance(src, (bytes, bytearray, memoryview)):
                out.write(src)
            else:
                with src() as fh:
                    shutil.copyfileobj(fh, out, 1 << 22)
        return tmp

    def _ensure(self) -> None:
        if self._dec is not None:
            return
        path = self._path()
        container = _open(path, self.name)
        try:
            if not container.streams.video:
                raise IntegrityError(f"{self.name}: the file has no video stream")
            vs = container.streams.video[0]
            rate = vs.average_rate or vs.guessed_rate or vs.base_rate
            if not rate:
                raise IntegrityError(f"{self.name}: the video stream has no frame rate")
            self.native_rate = Fraction(rate)
            tb, t0 = float(vs.time_base), vs.start_time or 0
            pts = sorted(p.pts for p in container.demux(vs) if p.pts is not None and p.size)
            self._times = [(p - t0) * tb for p in pts]
            container.seek(t0, stream=vs, backward=True)
            first = next(container.decode(vs), None)
            rotation = (getattr(first, "rotation", 0) or 0) if first is not None else 0
            coded = (first.width, first.height) if first is not None else (vs.codec_context.width,
                                                                          vs.codec_context.height)
        finally:
            container.close()
        if not self._times:
            raise IntegrityError(f"{self.name}: the video stream has no frames")
        self._turns = _quarter_turns(rotation)
        self._out_hw = output_size(display_size(coded[0], coded[1], rotation), self.size)
        self._period = 1.0 / float(self.native_rate)
        self._eps = INDEX_EPS * self._period
        gpu_id = self.device.index if self.device.index is not None else self._torch.cuda.current_device()
        # Decode on torch's current stream, so that what torch does next with the frames is ordered after it.
        stream = self._torch.cuda.current_stream(gpu_id).cuda_stream
        self._dec = self._nvc.SimpleDecoder(path, gpu_id=gpu_id, cuda_stream=stream, use_device_memory=True,
                                            output_color_type=self._nvc.OutputColorType.RGBP)

    def _indices(self, targets: list[float]) -> list[int]:
        times, eps, out = self._times, self._eps, []
        end = times[-1] + self._period - eps
        for t in targets:
            if t >= end:
                break
            out.append(max(0, bisect.bisect_right(times, t + eps) - 1))
        return out

    def _to_chw(self, frame):
        x = self._torch.from_dlpack(frame)
        if x.ndim == 2 and x.shape[0] % 3 == 0:  # planes stacked as (3 * H, W)
            x = x.view(3, x.shape[0] // 3, x.shape[1])
        elif x.ndim == 3 and x.shape[0] != 3 and x.shape[-1] == 3:  # interleaved HWC
            x = x.permute(2, 0, 1)
        return x

    def frames_at(self, targets: list[float]):
        torch = self._torch
        self._ensure()
        idx = self._indices(targets)
        oh, ow = self._out_hw
        if not idx:
            shape = (0, 3, oh, ow) if self.channels_first else (0, oh, ow, 3)
            return torch.zeros(shape, dtype=torch.uint8, device=self.device)
        lo, hi = idx[0], idx[-1]
        if self._next_index != lo:
            self._dec.seek_to_index(lo)
            self.seeks += 1
        frames = self._dec.get_batch_frames(hi - lo + 1)
        self._next_index = hi + 1
        if len(frames) < hi - lo + 1:
            raise IntegrityError(f"{self.name}: NVDEC returned {len(frames)} of {hi - lo + 1} frames at {lo}")
        with torch.cuda.device(self.device):
            x = torch.stack([self._to_chw(frames[i - lo]) for i in sorted(set(idx))])  # (N, 3, h, w) uint8
            if self._turns:
                x = torch.rot90(x, self._turns, dims=(2, 3))
            if tuple(x.shape[2:]) != (oh, ow):
                x = torch.nn.functional.interpolate(x.float(), size=(oh, ow), mode="bilinear",
                                                    align_corners=False, antialias=True)
                x = x.round_().clamp_(0, 255).to(torch.uint8)
            else:
                x = x.clone()  # the decoder reuses its surfaces on the next call
            where = {i: k for k, i in enumerate(sorted(set(idx)))}
            if len(where) != len(idx):
                x = x[torch.tensor([where[i] for i in idx], device=x.device)]
            return x if self.channels_first else x.permute(0, 2, 3, 1).contiguous()

    def window(self, start_s: float, end_s: float):
        self._ensure()
        return self.frames_at(window_targets(start_s, end_s, self.fps or self.native_rate))

    def close(self) -> None:
        self._dec = None
        self._next_index = None
        if self._tmp is not None:
            try:
                os.unlink(self._tmp)
            except OSError:
                pass
            self._tmp = None

    def __enter__(self) -> GpuWindowDecoder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_window_decoder(source: VideoSource, *, device: str = "cpu", name: str = "mp4",
                        fps: float | Fraction | None = None, size: VideoSize = None,
                        channels_first: bool = False, threads: int = 0):
    """A :class:`WindowDecoder` (``device="cpu"``) or a :class:`GpuWindowDecoder` (``"cuda"``, ``"cuda:N"``)."""
    dev = str(device)
    if dev == "cpu":
        return WindowDecoder(source, name=name, fps=fps, size=size, channels_first=channels_first, threads=threads)
    if dev.startswith("cuda"):
        return GpuWindowDecoder(source, name=name, fps=fps, size=size, channels_first=channels_first, device=dev)
    raise ValueError(f"video_device must be 'cpu' or 'cuda[:N]', got {device!r}")
