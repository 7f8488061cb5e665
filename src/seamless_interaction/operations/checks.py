"""Per-file checks of a bundle's four files: each reads one file and says whether it is intact or empty.

* ``.npz`` loads with ``allow_pickle=False`` and every member decompresses (zip CRC checked);
* ``.json`` parses and its ``"id"`` is the file id;
* the ``.wav`` header's data chunk fits in the file;
* the ``.mp4``'s top-level boxes tile the file, a ``moov`` box exists and, when it declares a video
  track, PyAV opens it and finds the stream.

"Empty" is the release's placeholder media (FORMAT.md 3: 261/708-byte MP4 without a video track,
58-byte WAV, zero-length arrays): a property of the data, not damage.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any


from seamless_interaction.base.errors import IntegrityError
from seamless_interaction.base.formats import decode_npz, read_wav_info

__all__ = ["check_file", "check_json", "check_mp4", "check_npz", "check_wav"]

_WAV_HEAD = 4096
# A moov box larger than this is not plausible for the release's videos (minutes long); refuse to read it.
_MAX_MOOV = 256 << 20
_CONTAINERS = (b"trak", b"mdia")


def check_npz(path: Path) -> tuple[str | None, bool]:
    """(error, empty): every member decoded with pickles refused; empty when every array has length 0."""
    try:
        # Every member is inflated in full, so its CRC-32 is checked.
        arrays = list(decode_npz(path, name=path.name).values())
    except IntegrityError as exc:
        return str(exc), False
    empty = bool(arrays) and all(a.ndim > 0 and a.shape[0] == 0 for a in arrays)
    return None, empty


def check_json(path: Path, file_id: str) -> str | None:
    try:
        doc = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:
        return f"not valid JSON ({exc})"
    if not isinstance(doc, dict):
        return f"top level is {type(doc).__name__}, expected an object"
    if doc.get("id") != file_id:
        return f"\"id\" is {doc.get('id')!r}, expected {file_id!r}"
    return None


def check_wav(path: Path) -> tuple[str | None, bool]:
    """(error, empty): the header parses and its data chunk fits in the file; empty: no samples."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(_WAV_HEAD)
    try:
        info = read_wav_info(head, name=path.name, total_size=size)
    except IntegrityError as exc:
        return str(exc), False
    return None, info.data_size == 0


def _boxes(fh: Any, start: int, end: int, where: str) -> list[tuple[bytes, int, int]]:
    """(type, payload offset, box end) of the boxes tiling ``[start, end)``; raises IntegrityError."""
    out = []
    pos = start
    while pos < end:
        if end - pos < 8:
            raise IntegrityError(f"{where}: {end - pos} stray bytes at offset {pos}")
        fh.seek(pos)
        size, kind = struct.unpack(">I4s", fh.read(8))
        header = 8
        if size == 1:
            raw = fh.read(8)
            if len(raw) < 8:
                raise IntegrityError(f"{where}: box {kind!r} at offset {pos} has a cut 64-bit size")
            size, header = struct.unpack(">Q", raw)[0], 16
        elif size == 0:  # the box runs to the end of its container
            size = end - pos
        if size < header:
            raise IntegrityError(f"{where}: box {kind!r} at offset {pos} has an impossible size {size}")
        if pos + size > end:
            raise IntegrityError(f"{where}: box {kind!r} at offset {pos} needs {size} bytes, only {end - pos} "
                                 "remain (truncated)")
        out.append((kind, pos + header, pos + size))
        pos += size
    return out


def _handlers(fh: Any, start: int, end: int, where: str) -> list[bytes]:
    """Handler types (b"vide", b"soun", ...) of the tracks in a moov payload."""
    found = []
    for kind, a, b in _boxes(fh, start, end, where):
        if kind in _CONTAINERS:
            found += _handlers(fh, a, b, where)
        elif kind == b"hdlr" and b - a >= 12:
            fh.seek(a + 8)  # version/flags, pre_defined
            found.append(fh.read(4))
    return found


def check_mp4(path: Path, *, confirm: bool = True) -> tuple[str | None, bool]:
    """(error, empty): boxes tile the file and moov exists; empty: moov declares no video track."""
    size = path.stat().st_size
    try:
        with open(path, "rb") as fh:
            top = _boxes(fh, 0, size, path.name)
            moov = [(a, b) for kind, a, b in top if kind == b"moov"]
            if not moov:
                return f"no moov atom (boxes: {b' '.join(k for k, _, _ in top).decode('latin-1')})", False
            a, b = moov[0]
            if b - a > _MAX_MOOV:
                return f"moov atom of {b - a} bytes is implausibly large", False
            handlers = _handlers(fh, a, b, path.name + " moov")
    except IntegrityError as exc:
        return str(exc), False
    if b"vide" not in handlers:
        # FORMAT.md 3 and 7: 261/708-byte placeholders and 439 files without a video stream.
        return None, True
    if confirm:
        import av  # heavy import, only when there is a video track to confirm

        try:
            with av.open(str(path)) as container:
                if not container.streams.video:
                    return "PyAV finds no video stream although moov declares one", False
        except Exception as exc:  # av.error.* and friends
            return f"PyAV cannot open it ({type(exc).__name__}: {exc})", False
    return None, False


def check_file(ext: str, path: Path, file_id: str, *, confirm_video: bool = True) -> tuple[str | None, bool]:
    """(error, empty) of one bundle file by its extension; OSError if it cannot be read."""
    if ext == "npz":
        return check_npz(path)
    if ext == "json":
        return check_json(path, file_id), False
    if ext == "wav":
        return check_wav(path)
    if ext == "mp4":
        return check_mp4(path, confirm=confirm_video)
    raise ValueError(f"no check for .{ext} files")
