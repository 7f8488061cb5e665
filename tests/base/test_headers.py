"""Header-only readers on real encodings: numpy's npz (stored and DEFLATE), PyAV's MP4, placeholder MP4s."""

from __future__ import annotations

import io
import zipfile
from fractions import Fraction

import numpy as np
import pytest

from seamless_interaction.base import headers as hd
from seamless_interaction.base.errors import IntegrityError
from seamless_interaction.base.formats import encode_npz


def _reader(data: bytes, log: list | None = None):
    def read_at(offset: int, n: int) -> bytes:
        if log is not None:
            log.append((offset, n))
        return data[offset:offset + n]
    return read_at


@pytest.mark.parametrize("compress", [True, False])
def test_npz_shapes_from_directory_and_local_headers(compress):
    arrays = {"smplh:body_pose": np.zeros((37, 21, 3), np.float32), "smplh:is_valid": np.ones(37, bool),
              "movement:hypernet_features": np.zeros((2, 5120), np.float32)}
    data = encode_npz(arrays, compress=compress)
    log: list = []
    entries = hd.zip_directory(_reader(data, log), len(data))
    assert {e.name for e in entries} == {k + ".npy" for k in arrays}
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for e in entries:
            info = zf.getinfo(e.name)
            assert (e.compressed_size, e.size, e.local_offset, e.method) == (
                info.compress_size, info.file_size, info.header_offset, info.compress_type)
            local = data[e.local_offset:e.local_offset + hd.LOCAL_READ]
            h = hd.npy_header(local, e.method)
            arr = arrays[e.name[:-4]]
            assert h.shape == arr.shape and np.dtype(h.dtype) == arr.dtype
    # only the tail was read, not the arrays
    assert sum(n for _, n in log) <= hd.EOCD_READ


def test_np_savez_compressed_and_truncated_input():
    buf = io.BytesIO()
    np.savez_compressed(buf, a=np.arange(1000, dtype=np.float64).reshape(10, 100))
    data = buf.getvalue()
    (e,) = hd.zip_directory(_reader(data), len(data))
    assert hd.npy_header(data[e.local_offset:e.local_offset + 1024], e.method).shape == (10, 100)
    assert hd.npy_header(data[e.local_offset:e.local_offset + 40], e.method) is None  # needs more bytes
    with pytest.raises(IntegrityError, match="not an npz"):
        hd.zip_directory(_reader(b"x" * 100), 100)


def _mp4(fps: Fraction, frames: int) -> bytes:
    import av

    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for i in range(frames):
            f = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i % 255, np.uint8), format="rgb24")
            f.pts = i
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return buf.getvalue()


@pytest.mark.parametrize("fps", [Fraction(30), Fraction(30000, 1001), Fraction(25)])
def test_mp4_video_rate_from_moov_only(fps):
    data = _mp4(fps, 20)
    log: list = []
    boxes = hd.mp4_top_boxes(_reader(data, log), len(data), head=data[:64])
    off, size = boxes[b"moov"]
    assert hd.mp4_video_rate(data[off:off + size]) == pytest.approx(float(fps), rel=1e-9)
    assert sum(n for _, n in log) < 200  # header hops only


def test_placeholder_and_truncated_mp4():
    from seamless_interaction.mirror.generate import placeholder_mp4

    ph = placeholder_mp4()
    boxes = hd.mp4_top_boxes(_reader(ph), len(ph))
    off, size = boxes[b"moov"]
    assert hd.mp4_video_rate(ph[off:off + size]) is None  # a moov without tracks
    data = _mp4(Fraction(30), 10)
    cut = data[:len(data) // 2]  # "moov atom not found"
    assert b"moov" not in hd.mp4_top_boxes(_reader(cut), len(cut))
    assert hd.mp4_video_rate(b"") is None
