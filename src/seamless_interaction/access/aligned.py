"""Time-aligned access to one participant's bundle (wav, mp4, npz, json) and to an interaction's pair.

Clock and boundary convention (every modality, every rate): a span is half-open ``[start_s, end_s)``
and a modality sampled at ``rate`` contributes rows ``[floor(start_s*rate + eps), floor(end_s*rate + eps))``
clipped to its length, with ``eps = 1e-6`` rows (see :func:`seamless_interaction.access.video.time_to_index`).
Row ``i`` covers ``[i/rate, (i+1)/rate)``, so the row containing ``start_s`` is in and the row containing
``end_s`` is out; consecutive spans partition the rows exactly. Rates: audio at the WAV's own rate
(48 kHz), frame-aligned features at the file's frame rate (the video stream's average rate as a
Fraction, else N / WAV duration; never an assumed 30), ``movement:hypernet_features`` at frame_rate/15,
the VAD mask at 100 Hz by default, transcript words by time overlap.

Nothing is read until asked: WAV spans are memory-mapped, uncompressed npz members are memory-mapped,
DEFLATE npz members (the archives' format) are decompressed only up to the last requested row, and
video is decoded only by :meth:`Participant.video_frames`.
"""

from __future__ import annotations

import contextvars
import json
import logging
import math
import numbers
import warnings
from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction
from functools import cached_property
from pathlib import Path
from typing import Any, overload

import numpy as np

from seamless_interaction.base import formats
from seamless_interaction.base.npz import NpzReader, Source, read_source

from seamless_interaction.local import layout
from seamless_interaction.constants import AUDIO_SAMPLE_RATE, HYPERNET_STRIDE, VAD_RATE
from seamless_interaction.base.errors import IntegrityError, NotDownloadedError
from seamless_interaction.base.ids import FileId, validate_interaction_key
from seamless_interaction.access.video import (VideoReader, VideoSize, decode_frames, open_window_decoder, probe_video,
                                               time_to_index)

__all__ = [
    "EmptyMediaWarning",
    "EmptySpanWarning",
    "Interaction",
    "Participant",
    "check_span",
    "load_interaction_data",
    "open_interaction",
    "open_participant",
    "span_indices",
    "windows",
]

logger = logging.getLogger(__name__)

# Set while Interaction.window cuts its participants, which then leave the span warning to it.
_warned_span: contextvars.ContextVar[bool] = contextvars.ContextVar("_warned_span", default=False)


HYPERNET_KEY_SUFFIX = ":hypernet_features"
MODALITIES = ("audio", "features", "vad", "words", "video")
# What ``window`` returns unless asked: video is decoded only on request (it is the costly one).
DEFAULT_WINDOW_MODALITIES = ("audio", "features", "vad", "words")


class EmptyMediaWarning(UserWarning):
    """A placeholder bundle (58-byte WAV, 261/708-byte MP4, zero-length arrays) was read."""


class EmptySpanWarning(UserWarning):
    """A span that lies past the end of the recording: every modality comes back empty."""


def check_span(start_s: float | None, end_s: float | None) -> None:
    """ValueError naming the span unless both ends are finite (or None) and ``start_s <= end_s``."""
    for t in (start_s, end_s):
        if t is not None and not (isinstance(t, numbers.Real) and math.isfinite(t)):
            raise ValueError(f"span [{start_s!r}, {end_s!r}): times must be finite numbers of seconds")
    if start_s is not None and end_s is not None and start_s > end_s:
        raise ValueError(f"span [{start_s!r}, {end_s!r}): start is after end")


def _warn_past_end(what: str, start_s: float, end_s: float, duration_s: float) -> None:
    if start_s >= duration_s:
        warnings.warn(f"{what}: span [{start_s}, {end_s}) starts at or after the end of the recording "
                      f"({duration_s:.3f} s); every modality is empty", EmptySpanWarning, stacklevel=3)


def span_indices(start_s: float | None, end_s: float | None, rate: float | Fraction, length: int) -> tuple[int, int]:
    """Row range ``[a, b)`` of a span for a modality of ``length`` rows at ``rate`` (module convention)."""
    a = 0 if start_s is None else time_to_index(start_s, rate)
    b = length if end_s is None else time_to_index(end_s, rate)
    a, b = min(max(a, 0), length), min(max(b, 0), length)
    return a, max(a, b)


def windows(duration_s: float, window_s: float, hop_s: float | None = None, *,
            drop_last: bool = True) -> list[tuple[float, float]]:
    """Spans ``[k*hop, k*hop + window)`` covering ``[0, duration_s)``.

    With ``drop_last`` only full windows are returned; otherwise a last, shorter window ends at
    ``duration_s``. Starts are computed as ``k * hop`` (not by accumulation) so they stay exact.
    """
    hop = window_s if hop_s is None else hop_s
    if not (math.isfinite(window_s) and math.isfinite(hop)) or window_s <= 0 or hop <= 0:
        raise ValueError(f"window_s and hop_s must be finite and > 0, got {window_s!r} and {hop!r}")
    out, k = [], 0
    while True:
        start = k * hop
        if start + window_s <= duration_s + 1e-9:
            out.append((start, start + window_s))
        elif not drop_last and start < duration_s - 1e-9:
            out.append((start, float(duration_s)))
        else:
            break
        k += 1
    return out


# ------------------------------------------------------------------------------------------ participant
class Participant:
    """One participant's bundle, cut in time by each modality's own rate (module docstring).

    Build with :meth:`from_paths` (an extracted archive folder) or :meth:`from_sources` (bytes or
    openers, as the streaming loader does). Missing files make only their accessors fail.
    """

    def __init__(self, file_id: str, sources: Mapping[str, Source], *, wav_header_only: bool = False):
        self.file_id = file_id
        self._src = dict(sources)
        self._wav_header_only = wav_header_only
        self._npz = NpzReader(self._src["npz"], name=f"{file_id}.npz") if "npz" in self._src else None
        self._video_dec: tuple[tuple, Any] | None = None

    @classmethod
    def from_paths(cls, file_id: str, paths: Mapping[str, Path | str]) -> Participant:
        """``paths`` keyed by extension (wav, mp4, npz, json); absent or non-existent ones are left out."""
        return cls(file_id, {ext: Path(p) for ext, p in paths.items() if p is not None and Path(p).exists()})

    @classmethod
    def from_sources(cls, file_id: str, sources: Mapping[str, Source], *, wav_header_only: bool = False
                     ) -> Participant:
        return cls(file_id, sources, wav_header_only=wav_header_only)

    def __repr__(self) -> str:
        return f"Participant({self.file_id!r}, parts={sorted(self._src)})"

    def has(self, ext: str) -> bool:
        return ext in self._src

    def _need(self, ext: str) -> Source:
        try:
            return self._src[ext]
        except KeyError:
            raise NotDownloadedError(f"{self.file_id}: no local .{ext} file; download the bundle first") from None

    # ---- facts
    @cached_property
    def wav_info(self) -> formats.WavInfo | None:
        if "wav" not in self._src:
            return None
        src = self._src["wav"]
        size: int | None
        if isinstance(src, (str, Path)):
            size = Path(src).stat().st_size
            with open(src, "rb") as fh:
                head = fh.read(1 << 16)
        else:
            head = read_source(src)
            size = None if self._wav_header_only else len(head)
        return formats.read_wav_info(head, name=f"{self.file_id}.wav", total_size=size)

    @cached_property
    def video_info(self):
        """The mp4's stream facts, None without a video stream; IntegrityError for unreadable mp4s."""
        return probe_video(self._need("mp4"), name=f"{self.file_id}.mp4")

    @cached_property
    def num_frames(self) -> int:
        """N: rows of the frame-aligned arrays (from the npz headers), else the video's frame count."""
        if self._npz is not None:
            for key, m in self._npz.members.items():
                if m.shape and not key.endswith(HYPERNET_KEY_SUFFIX):
                    return int(m.shape[0])
            return 0
        info = self._video_info_or_none()
        return info.num_frames if info else 0

    def _video_info_or_none(self):
        if "mp4" not in self._src:
            return None
        try:
            return self.video_info
        except IntegrityError as exc:
            logger.debug("%s: %s", self.file_id, exc)
            return None

    @cached_property
    def sample_rate(self) -> int:
        info = self.wav_info
        return int(info.sample_rate) if info and info.sample_rate else AUDIO_SAMPLE_RATE

    @cached_property
    def frame_rate(self) -> Fraction | None:
        """The video stream's average rate (exact), else N / WAV duration; None when neither is known."""
        info = self._video_info_or_none()
        if info is not None:
            return info.frame_rate
        wav = self.wav_info
        if wav is not None and wav.frames and self.num_frames:
            return Fraction(self.num_frames) / Fraction(wav.frames, wav.sample_rate)
        return None

    @cached_property
    def duration_s(self) -> float:
        """WAV duration, else N / frame_rate, else the video's duration; 0.0 for placeholders."""
        wav = self.wav_info
        if wav is not None and wav.frames:
            return wav.duration_s
        if self.num_frames and self.frame_rate:
            return float(self.num_frames / self.frame_rate)
        info = self._video_info_or_none()
        return info.duration_s if info else 0.0

    @property
    def is_placeholder(self) -> bool:
        """True for the empty bundles of FORMAT.md section 3 (no samples and no frames)."""
        wav = self.wav_info
        return (wav is None or wav.frames == 0) and self.num_frames == 0

    def _empty(self, what: str) -> None:
        warnings.warn(f"{self.file_id}: {what} is empty (placeholder media)", EmptyMediaWarning, stacklevel=3)

    # ---- modalities
    def audio(self, start_s: float | None = None, end_s: float | None = None) -> np.ndarray:
        """float32 samples at the WAV's native rate; ``(n,)`` mono or ``(n, channels)``."""
        check_span(start_s, end_s)
        src = self._need("wav")
        if self._wav_header_only:
            raise NotDownloadedError(f"{self.file_id}: only the WAV header was read; request the audio modality")
        info = self.wav_info
        assert info is not None
        if info.frames == 0:
            self._empty("audio")
        a, b = span_indices(start_s, end_s, info.sample_rate, info.frames)
        frame_bytes = info.channels * info.bits // 8
        lo, hi = info.data_offset + a * frame_bytes, info.data_offset + b * frame_bytes
        if info.format_tag == 3 and info.bits == 32 and isinstance(src, (str, Path)):
            if b == a:
                out = np.zeros((0,), np.float32)
            else:
                out = np.array(np.memmap(src, dtype="<f4", mode="r", offset=lo, shape=((b - a) * info.channels,)))
        else:
            if isinstance(src, (str, Path)):
                with open(src, "rb") as fh:
                    fh.seek(lo)
                    raw = fh.read(hi - lo)
            else:
                raw = read_source(src)[lo:hi]
            out = formats.pcm_to_float(raw, info, f"{self.file_id}.wav").astype(np.float32, copy=True)
            return out
        return out.reshape(-1, info.channels) if info.channels > 1 else out

    def feature_keys(self) -> list[str]:
        return self._npz.keys() if self._npz is not None else []

    def feature_rate(self, key: str) -> Fraction:
        rate = self.frame_rate
        if rate is None:
            raise IntegrityError(f"{self.file_id}: frame rate unknown (no video stream and no audio to derive it)")
        return rate / HYPERNET_STRIDE if key.endswith(HYPERNET_KEY_SUFFIX) else rate

    def features(self, keys: Iterable[str] | None = None, start_s: float | None = None,
                 end_s: float | None = None) -> dict[str, np.ndarray]:
        """``"group:feature" -> rows in the span``; hypernet features are cut at frame_rate/15."""
        check_span(start_s, end_s)
        if self._npz is None:
            raise NotDownloadedError(f"{self.file_id}: no local .npz file; download the bundle first")
        wanted = list(self._npz.keys() if keys is None else keys)
        out: dict[str, np.ndarray] = {}
        if self.num_frames == 0:
            self._empty("features")
        if start_s is None and end_s is None:
            return self._npz.arrays(wanted)
        for key in wanted:
            length = self._npz.shape(key)[0] if self._npz.shape(key) else 0
            if length == 0:
                out[key] = self._npz.rows(key)
            else:
                a, b = span_indices(start_s, end_s, self.feature_rate(key), length)
                out[key] = self._npz.rows(key, a, b)
        return out

    @cached_property
    def json(self) -> dict[str, Any]:
        raw = read_source(self._need("json"))
        try:
            doc = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise IntegrityError(f"{self.file_id}.json: not valid JSON ({exc})") from exc
        if not isinstance(doc, dict):
            raise IntegrityError(f"{self.file_id}.json: expected an object, got {type(doc).__name__}")
        return doc

    def vad_segments(self) -> list[dict]:
        return list(self.json.get("metadata:vad") or [])

    def vad_mask(self, rate: int = VAD_RATE, start_s: float | None = None, end_s: float | None = None) -> np.ndarray:
        """Boolean speech mask; cell k covers ``[k/rate, (k+1)/rate)``; segments are cut like any span."""
        check_span(start_s, end_s)
        total = math.ceil(self.duration_s * rate - 1e-6)
        mask = np.zeros(total, dtype=bool)
        for seg in self.vad_segments():
            s, e = seg.get("start"), seg.get("end")
            if s is None or e is None:
                continue
            a, b = span_indices(s, e, rate, total)
            mask[a:b] = True
        a, b = span_indices(start_s, end_s, rate, total)
        return mask[a:b]

    def _all_words(self) -> list[dict]:
        out = []
        for si, seg in enumerate(self.json.get("metadata:transcript") or []):
            for w in seg.get("words") or []:
                out.append({**w, "segment": si})
        return out

    def words(self, start_s: float | None = None, end_s: float | None = None) -> list[dict]:
        """Timed transcript words overlapping ``[start_s, end_s)``, each with its ``segment`` index.

        Words whose times are null are never placed on the clock; see :meth:`untimed_words`.
        """
        check_span(start_s, end_s)
        lo = -math.inf if start_s is None else start_s
        hi = math.inf if end_s is None else end_s
        return [w for w in self._all_words()
                if w.get("start") is not None and w.get("end") is not None and w["start"] < hi and w["end"] > lo]

    def untimed_words(self) -> list[dict]:
        """Words with a null start or end (WhisperX could not align them), with their ``segment`` index."""
        return [w for w in self._all_words() if w.get("start") is None or w.get("end") is None]

    @overload
    def annotations(self, kind: None = None) -> dict[str, list[Any]]: ...

    @overload
    def annotations(self, kind: str) -> list[Any]: ...

    def annotations(self, kind: str | None = None) -> dict[str, list[Any]] | list[Any]:
        """All ``{kind: records}`` present, or the records of one kind (``[]`` when absent)."""
        found = {k.split(":", 1)[1]: v for k, v in self.json.items() if k.startswith("annotations:")}
        return found if kind is None else list(found.get(kind, []))

    def video_frames(self, start_s: float, end_s: float) -> np.ndarray:
        """uint8 RGB ``(T, H, W, 3)`` of frames in the span, decoded from the keyframe before ``start_s``."""
        check_span(start_s, end_s)
        return decode_frames(self._need("mp4"), start_s, end_s, frame_rate=self.frame_rate,
                             name=f"{self.file_id}.mp4")

    def video_window(self, start_s: float, end_s: float, *, fps: float | Fraction | None = None,
                     size: VideoSize = None, channels_first: bool = False, device: str = "cpu"):
        """Frames of ``[start_s, end_s)``: frame k is the last frame shown at ``start_s + k / fps``
        (``fps`` defaults to the file's own rate), scaled to ``size`` (None native, an int the short
        side, or ``(height, width)``) in display orientation; uint8 ``(T, H, W, 3)`` (``(T, 3, H, W)``
        with ``channels_first``), a numpy array on the CPU or a CUDA tensor with ``device="cuda"``.

        The decoder stays open between calls with the same settings, so consecutive windows continue
        decoding instead of seeking; :meth:`close` releases it.
        """
        key = (None if fps is None else Fraction(fps), size if not isinstance(size, list) else tuple(size),
               bool(channels_first), str(device))
        if self._video_dec is None or self._video_dec[0] != key:
            self.close()
            dec = open_window_decoder(self._need("mp4"), device=str(device), name=f"{self.file_id}.mp4", fps=fps,
                                      size=size, channels_first=channels_first)
            self._video_dec = (key, dec)
        return self._video_dec[1].window(start_s, end_s)

    def close(self) -> None:
        """Release the open video decoder, if any (other modalities hold nothing open)."""
        if self._video_dec is not None:
            self._video_dec[1].close()
            self._video_dec = None

    def window(self, start_s: float, end_s: float, modalities: Sequence[str] = DEFAULT_WINDOW_MODALITIES, *,
               feature_keys: Iterable[str] | None = None, vad_rate: int = VAD_RATE,
               video_fps: float | Fraction | None = None, video_size: VideoSize = None,
               video_channels_first: bool = False, video_device: str = "cpu") -> dict[str, Any]:
        """Every requested modality for one span, as a dict keyed by modality name plus ``file_id``.

        ``"video"`` is decoded only when listed (see :meth:`video_window` for its options). A span past
        the end of the recording gives empty modalities and an :class:`EmptySpanWarning`.
        """
        unknown = set(modalities) - set(MODALITIES)
        if unknown:
            raise ValueError(f"unknown modalities {sorted(unknown)}; expected some of {list(MODALITIES)}")
        check_span(start_s, end_s)
        if not _warned_span.get():
            _warn_past_end(self.file_id, start_s, end_s, self.duration_s)
        out: dict[str, Any] = {"file_id": self.file_id, "start_s": start_s, "end_s": end_s}
        if "audio" in modalities:
            out["audio"] = self.audio(start_s, end_s)
        if "features" in modalities:
            out["features"] = self.features(feature_keys, start_s, end_s)
        if "vad" in modalities:
            out["vad"] = self.vad_mask(vad_rate, start_s, end_s)
        if "words" in modalities:
            out["words"] = self.words(start_s, end_s)
        if "video" in modalities:
            out["video"] = self.video_window(start_s, end_s, fps=video_fps, size=video_size,
                                             channels_first=video_channels_first, device=video_device)
        return out


class Interaction:
    """The one or two participants of an interaction key, on one clock."""

    def __init__(self, key: str, participants: Sequence[Participant]):
        if not 1 <= len(participants) <= 2:
            raise ValueError(f"{key}: an interaction has 1 or 2 participants, got {len(participants)}")
        self.key = key
        self.participants: tuple[Participant, ...] = tuple(sorted(participants, key=lambda p: p.file_id))

    def __repr__(self) -> str:
        return f"Interaction({self.key!r}, {[p.file_id for p in self.participants]})"

    @property
    def duration_s(self) -> float:
        """The shortest participant's duration: the span both can fill."""
        return min(p.duration_s for p in self.participants)

    def window(self, start_s: float, end_s: float, modalities: Sequence[str] = DEFAULT_WINDOW_MODALITIES,
               **kwargs) -> dict:
        """``{"key", "start_s", "end_s", "participants": [per-participant window, ...]}`` for one span;
        keyword options as :meth:`Participant.window` (``video_size``, ``video_fps``, ...).

        A span past the end of the interaction gives empty modalities and an :class:`EmptySpanWarning`.
        """
        check_span(start_s, end_s)
        _warn_past_end(self.key, start_s, end_s, self.duration_s)
        token = _warned_span.set(True)  # one warning for the interaction, not one per participant
        try:
            parts = [p.window(start_s, end_s, modalities, **kwargs) for p in self.participants]
        finally:
            _warned_span.reset(token)
        return {"key": self.key, "start_s": start_s, "end_s": end_s, "participants": parts}

    def windows(self, window_s: float, hop_s: float | None = None, **kwargs) -> list[tuple[float, float]]:
        return windows(self.duration_s, window_s, hop_s, **kwargs)

    def close(self) -> None:
        for p in self.participants:
            p.close()


# ------------------------------------------------------------------------------------------ openers
def _bundle_from_catalog(local_dir: Path, file_id: str, catalog) -> dict[str, Path]:
    rec = catalog.record(file_id)
    paths = layout.bundle_paths(local_dir, rec.ref, file_id)
    return {ext: p for ext, p in paths.items() if p.exists()}


def open_participant(local_dir: Path | str, file_id: str, catalog=None) -> Participant:
    """A participant from local data: the catalog's folder for it, else a search under ``local_dir``."""
    file_id = str(FileId.parse(file_id))
    local_dir = Path(local_dir)
    paths = _bundle_from_catalog(local_dir, file_id, catalog) if catalog is not None else {}
    if not paths:  # no catalog, or a copy that sits in another archive (duplicates exist, FORMAT.md 4)
        paths = layout.find_bundle(local_dir, file_id)
    if not paths:
        raise NotDownloadedError(f"{file_id}: no local files under {local_dir}; download it first")
    return Participant.from_paths(file_id, paths)


def open_interaction(local_dir: Path | str, key: str, catalog=None) -> Interaction:
    """Both participants of an interaction (one for the few singleton sessions) from local data."""
    key = validate_interaction_key(key)
    local_dir = Path(local_dir)
    if catalog is not None:
        ids = list(catalog.interaction_file_ids(key))
    else:
        pattern = f"*/*/[0-9][0-9][0-9][0-9]/[0-9][0-9][0-9][0-9]/{key}_P*.*"
        ids = sorted({p.name.split(".", 1)[0] for p in local_dir.glob(pattern)})
    if not ids:
        raise NotDownloadedError(f"{key}: no local files under {local_dir}; download it first")
    return Interaction(key, [open_participant(local_dir, fid, catalog) for fid in ids])


def load_interaction_data(paths: Sequence[str | Path] | Mapping[str, str | Path]) -> dict[str, Any]:
    """The official README's dict, without OpenCV or librosa.

    Keys: ``video`` (a lazy :class:`~seamless_interaction.access.video.VideoReader`, the ``cv2.VideoCapture``
    stand-in: ``read()`` gives ``(ok, bgr_frame)``), ``audio`` (float32 mono at 48 kHz, channels
    averaged as ``librosa.load`` does) and ``sample_rate``, ``json`` (dict), ``npz`` (``np.load``'s
    lazy NpzFile). Only files present in ``paths`` appear.
    """
    items = list(paths.values()) if isinstance(paths, Mapping) else list(paths)
    data: dict[str, Any] = {}
    for path in map(str, items):
        if path.endswith(".mp4"):
            data["video"] = VideoReader(path)
        elif path.endswith(".wav"):
            audio, sr = formats.decode_wav(Path(path).read_bytes(), name=path)
            if audio.ndim > 1:
                audio = audio.mean(axis=1)
            if sr != AUDIO_SAMPLE_RATE:
                raise IntegrityError(f"{path}: sample rate {sr} Hz, expected {AUDIO_SAMPLE_RATE} (no resampler here)")
            if audio.size == 0:
                warnings.warn(f"{path}: audio is empty (placeholder media)", EmptyMediaWarning, stacklevel=2)
            data["audio"], data["sample_rate"] = np.asarray(audio, dtype=np.float32), sr
        elif path.endswith(".json"):
            with open(path, encoding="utf-8") as fh:
                data["json"] = json.load(fh)
        elif path.endswith(".npz"):
            data["npz"] = np.load(path, allow_pickle=False)
    return data
