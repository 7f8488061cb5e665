"""Byte-exact encoders and tolerant decoders for the bundle formats (FORMAT.md sections 4-7).

The archives hold ``{id}.npz`` written by ``numpy.savez_compressed`` and ``{id}.json`` written by
``json.dump(indent=4)`` (``indent=2`` for samples whose json was rewritten to add annotations). The
CDN route assembles the same two files from per-feature parts; encoding both with these functions
makes the two routes produce identical bytes. Zip entries get a fixed timestamp so that the bytes
depend on the arrays alone (numpy stamps the wall clock, which would make every write differ).
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from seamless_interaction.constants import ANNOTATION_TYPES
from seamless_interaction.base.errors import IntegrityError
from seamless_interaction.base.npz import NpzReader

__all__ = [
    "WavInfo",
    "bundle_json",
    "cast_float32",
    "decode_npz",
    "decode_wav",
    "encode_json",
    "encode_jsonl",
    "encode_npz",
    "encode_wav_float32",
    "parse_jsonl",
    "pcm_to_float",
    "read_wav_info",
]

_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def cast_float32(arr: np.ndarray) -> np.ndarray:
    """float64 becomes float32, as the release pipeline did; other dtypes are kept."""
    return arr.astype(np.float32) if arr.dtype == np.float64 else arr


def encode_npz(arrays: Mapping[str, np.ndarray], compress: bool = True) -> bytes:
    """Return npz bytes with keys sorted, float64 cast to float32, deterministic zip metadata."""
    buf = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(buf, "w", compression=method, allowZip64=True) as zf:
        for key in sorted(arrays):
            info = zipfile.ZipInfo(key + ".npy", date_time=_ZIP_EPOCH)
            info.compress_type = method
            info.external_attr = 0o600 << 16
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(cast_float32(np.asarray(arrays[key]))),
                                      allow_pickle=False)
            with zf.open(info, "w", force_zip64=True) as fh:
                fh.write(member.getvalue())
    return buf.getvalue()


def decode_npz(data: bytes | str | Path, *, name: str = "npz") -> dict[str, np.ndarray]:
    """Load every array of an npz (bytes or path) with pickles refused; IntegrityError when unreadable."""
    src = bytes(data) if isinstance(data, (bytearray, memoryview)) else data
    try:
        return NpzReader(src, name=name).arrays()
    except KeyError as exc:
        raise IntegrityError(f"{name}: not a readable npz ({exc})") from exc


def bundle_json(
    file_id: str,
    transcript: list[Any] | None,
    vad: list[Any] | None,
    annotations: Mapping[str, list[Any]] | None = None,
) -> dict[str, Any]:
    """Assemble the json dict in the archives' key order: id, transcript, vad, annotations."""
    doc: dict[str, Any] = {"id": file_id}
    if transcript is not None:
        doc["metadata:transcript"] = transcript
    doc["metadata:vad"] = vad if vad is not None else []
    for kind in ANNOTATION_TYPES:
        if annotations and kind in annotations:
            doc[f"annotations:{kind}"] = annotations[kind]
    return doc


def encode_json(doc: Mapping[str, Any]) -> bytes:
    """Serialise as the archives do: indent=4, or indent=2 once annotations were added (FORMAT.md 4)."""
    annotated = any(k.startswith("annotations:") for k in doc)
    return json.dumps(doc, indent=2 if annotated else 4).encode("utf-8")


def parse_jsonl(data: bytes, *, name: str = "jsonl") -> list[Any]:
    """Parse JSON Lines into a list of records; blank lines are skipped."""
    out: list[Any] = []
    for lineno, line in enumerate(data.decode("utf-8").splitlines(), 1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise IntegrityError(f"{name}: line {lineno} is not JSON ({exc.msg})") from exc
    return out


def encode_jsonl(records: list[Any]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode("utf-8")


# ---------------------------------------------------------------------------------------------- WAV
def encode_wav_float32(samples: np.ndarray, sample_rate: int = 48_000) -> bytes:
    """IEEE-float WAV with a fact chunk: the release format (58-byte header, FORMAT.md section 7)."""
    x = np.asarray(samples, dtype="<f4")
    channels = 1 if x.ndim == 1 else x.shape[1]
    frames = x.shape[0]
    data = x.tobytes()
    fmt = struct.pack("<HHIIHHH", 3, channels, sample_rate, sample_rate * 4 * channels, 4 * channels, 32, 0)
    body = (b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
            + b"fact" + struct.pack("<II", 4, frames)
            + b"data" + struct.pack("<I", len(data)) + data)
    return b"RIFF" + struct.pack("<I", len(body)) + body


class WavInfo:
    __slots__ = ("sample_rate", "channels", "bits", "format_tag", "data_offset", "data_size", "frames")

    def __init__(self, sample_rate: int, channels: int, bits: int, format_tag: int, data_offset: int,
                 data_size: int) -> None:
        self.sample_rate = sample_rate
        self.channels = channels
        self.bits = bits
        self.format_tag = format_tag
        self.data_offset = data_offset
        self.data_size = data_size
        self.frames = data_size // max(1, channels * bits // 8)

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def read_wav_info(head: bytes, *, name: str = "wav", total_size: int | None = None) -> WavInfo:
    """Parse a RIFF/WAVE header (PCM or IEEE float, 16/24/32-bit) from the file's first bytes."""
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise IntegrityError(f"{name}: not a RIFF/WAVE file")
    pos, fmt = 12, None
    while pos + 8 <= len(head):
        cid, size = head[pos:pos + 4], struct.unpack("<I", head[pos + 4:pos + 8])[0]
        if cid == b"fmt ":
            if pos + 8 + 16 > len(head):
                break
            tag, ch, sr, _, _, bits = struct.unpack("<HHIIHH", head[pos + 8:pos + 24])
            if tag == 0xFFFE and size >= 40:  # WAVE_FORMAT_EXTENSIBLE: subformat's first two bytes
                tag = struct.unpack("<H", head[pos + 32:pos + 34])[0]
            fmt = (tag, ch, sr, bits)
        elif cid == b"data":
            if fmt is None:
                raise IntegrityError(f"{name}: data chunk before fmt chunk")
            tag, ch, sr, bits = fmt
            if total_size is not None and pos + 8 + size > total_size:
                raise IntegrityError(f"{name}: data chunk of {size} bytes runs past the end of the file "
                                     f"({total_size} bytes)")
            return WavInfo(sr, ch, bits, tag, pos + 8, size)
        pos += 8 + size + (size & 1)
    raise IntegrityError(f"{name}: no data chunk in the header")


def decode_wav(data: bytes, *, name: str = "wav") -> tuple[np.ndarray, int]:
    """Return (float32 samples, sample rate); stereo stays (frames, channels)."""
    info = read_wav_info(data, name=name, total_size=len(data))
    raw = data[info.data_offset:info.data_offset + info.data_size]
    return pcm_to_float(raw, info, name), info.sample_rate


def pcm_to_float(raw: bytes, info: WavInfo, name: str) -> np.ndarray:
    if info.format_tag == 3 and info.bits == 32:
        x = np.frombuffer(raw, dtype="<f4")
    elif info.format_tag == 3 and info.bits == 64:
        x = np.frombuffer(raw, dtype="<f8").astype(np.float32)
    elif info.format_tag == 1 and info.bits == 16:
        x = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    elif info.format_tag == 1 and info.bits == 32:
        x = np.frombuffer(raw, dtype="<i4").astype(np.float32) / 2147483648.0
    elif info.format_tag == 1 and info.bits == 24:
        b = np.frombuffer(raw[: len(raw) // 3 * 3], dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        v = (b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16))
        v = np.where(v >= 1 << 23, v - (1 << 24), v)
        x = v.astype(np.float32) / float(1 << 23)
    else:
        raise IntegrityError(f"{name}: unsupported WAV encoding (format tag {info.format_tag}, {info.bits} bits)")
    if info.channels > 1:
        x = x[: len(x) // info.channels * info.channels].reshape(-1, info.channels)
    return x
