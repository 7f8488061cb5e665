"""The npz fast path (own zip directory parse, one-call inflate, threads) and the loader's audio track.

Every fast-path result is compared with ``np.load`` on the same bytes; both inflate backends run
(zlib always, libdeflate when the optional ``deflate`` package is installed).
"""

from __future__ import annotations

import io
import struct
import warnings
import wave
import zipfile
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction

import numpy as np
import pytest
from loader_builders import make_bundle, write_tar

from seamless_interaction.base import npz as npz_module

from seamless_interaction.base import formats
from seamless_interaction.access.aligned import Participant, windows
from seamless_interaction.base.npz import NpzReader
from seamless_interaction.base.errors import IntegrityError

BACKENDS = ["zlib", pytest.param("libdeflate", marks=pytest.mark.skipif(
    npz_module._libdeflate is None, reason="optional 'deflate' package not installed"))]


@pytest.fixture(params=BACKENDS)
def backend(request, monkeypatch):
    if request.param == "zlib":
        monkeypatch.setattr(npz_module, "_libdeflate", None)
    return request.param


def sample_arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {
        "smplh:global_orient": np.round(np.cumsum(rng.normal(0, 0.01, (300, 3)), 0), 3).astype(np.float32),
        "smplh:is_valid": rng.integers(0, 2, 300).astype(bool),
        "boxes_and_keypoints:keypoints": rng.normal(size=(300, 133, 3)).astype(np.float32),
        "fortran": np.asfortranarray(rng.normal(size=(40, 7))),
        "scalar": np.array(12345, dtype=np.int64),
        "empty": np.zeros((0, 4), np.float32),
        "bigendian": np.arange(50, dtype=">i4"),
        "text": np.array(["ab", "cde"], dtype="<U5"),
        "structured": np.array([(1, 2.5)], dtype=[("a", "<i2"), ("b", "<f8")]),
    }


def npz_bytes(writer: str, arrays: dict[str, np.ndarray]) -> bytes:
    if writer == "encode_npz":  # the project's deterministic writer (float64 -> float32 there)
        return formats.encode_npz(arrays)
    buf = io.BytesIO()
    (np.savez_compressed if writer == "savez_compressed" else np.savez)(buf, **arrays)
    return buf.getvalue()


def assert_same(got: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> None:
    assert list(got) == list(ref)
    for k, v in ref.items():
        assert got[k].dtype == v.dtype and got[k].shape == v.shape, k
        assert np.array_equal(got[k], v), k
        assert got[k].flags.writeable, k
        assert got[k].flags.f_contiguous == v.flags.f_contiguous or v.ndim < 2, k


@pytest.mark.parametrize("writer", ["savez_compressed", "savez", "encode_npz"])
@pytest.mark.parametrize("threads", [0, 2])
def test_fast_path_equals_numpy(writer, threads, backend):
    data = npz_bytes(writer, sample_arrays())
    assert npz_module._zip_entries(data) is not None  # numpy's own files take the fast path
    with np.load(io.BytesIO(data)) as npz:
        ref = {k: npz[k] for k in npz.files}
    reader = NpzReader(data, name="t.npz")
    assert reader.members == NpzReader(lambda: io.BytesIO(data)).members  # own scan == zipfile scan
    pool = ThreadPoolExecutor(threads) if threads else None
    try:
        assert_same(reader.arrays(executor=pool), ref)
        subset = ["empty", "boxes_and_keypoints:keypoints"]
        assert_same(reader.arrays(subset, executor=pool), {k: ref[k] for k in subset})
    finally:
        if pool:
            pool.shutdown()


def test_unknown_key_is_a_key_error_naming_it(backend):
    data = npz_bytes("savez_compressed", sample_arrays())
    with pytest.raises(KeyError, match="nope"):
        NpzReader(data, name="t.npz").arrays(["smplh:is_valid", "nope"])


def test_arrays_are_owned_copies(backend):
    data = npz_bytes("savez_compressed", sample_arrays())
    a = NpzReader(data).arrays(["smplh:global_orient"])["smplh:global_orient"]
    a[:] = -1
    again = NpzReader(data).arrays(["smplh:global_orient"])["smplh:global_orient"]
    assert np.array_equal(again, sample_arrays()["smplh:global_orient"])


def _biggest(data: bytes) -> npz_module._ZipEntry:
    entries = npz_module._zip_entries(data)
    return max(entries.values(), key=lambda e: e.compressed_size)


def test_corrupt_member_bytes_raise_integrity_error(backend):
    data = bytearray(npz_bytes("savez_compressed", sample_arrays()))
    e = _biggest(bytes(data))
    data[e.data_start + e.compressed_size // 2] ^= 0x55
    with pytest.raises(IntegrityError, match=e.name):
        NpzReader(bytes(data), name="bad.npz").arrays()


def test_wrong_directory_crc_raises_integrity_error(backend):
    data = bytearray(npz_bytes("savez_compressed", sample_arrays()))
    e = _biggest(bytes(data))
    buf, name = bytes(data), e.name.encode()
    rec = buf.index(b"PK\x01\x02")  # this member's central directory record; its CRC is at +16
    while buf[rec + 46:rec + 46 + len(name)] != name:
        rec = buf.index(b"PK\x01\x02", rec + 4)
    data[rec + 16:rec + 20] = struct.pack("<I", e.crc ^ 1)
    with pytest.raises(IntegrityError, match="CRC-32"):
        NpzReader(bytes(data), name="bad.npz").arrays()


class _NoSeek(io.RawIOBase):
    """A write-only stream without tell/seek, so zipfile writes data descriptors (flag bit 3)."""

    def __init__(self):
        self.buf = bytearray()

    def writable(self):
        return True

    def write(self, b):
        self.buf += b
        return len(b)


def test_unusual_zips_fall_back_to_zipfile(backend):
    arrays = sample_arrays()
    sink = _NoSeek()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for k, v in arrays.items():
            with zf.open(k + ".npy", "w") as fh:
                np.lib.format.write_array(fh, v, allow_pickle=False)
    data = bytes(sink.buf)
    assert npz_module._zip_entries(data) is None  # data descriptors: refused by the fast path
    with np.load(io.BytesIO(data)) as npz:
        ref = {k: npz[k] for k in npz.files}
    assert_same(NpzReader(data).arrays(), ref)


def test_truncated_and_pickled_npz_are_refused(backend):
    data = npz_bytes("savez_compressed", sample_arrays())
    with pytest.raises(IntegrityError):
        NpzReader(data[: len(data) // 2], name="short.npz").arrays()
    buf = io.BytesIO()
    np.savez_compressed(buf, ok=np.arange(3), obj=np.array([{"a": 1}], dtype=object))
    with pytest.raises(IntegrityError, match="obj"):
        NpzReader(buf.getvalue(), name="pickle.npz").arrays(["obj"])
    assert NpzReader(buf.getvalue()).arrays(["ok"])["ok"].tolist() == [0, 1, 2]


# ------------------------------------------------------------------------------------------ loader
torch = pytest.importorskip("torch", reason="the loader is the optional torch extra")


def int16_wav(samples: np.ndarray, rate: int = 48_000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1 if samples.ndim == 1 else samples.shape[1])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())
    return buf.getvalue()


@pytest.fixture(scope="module")
def tars(tmp_path_factory):
    """Two partners (float32 mono WAV) and one participant with 16-bit stereo PCM (Participant.audio path)."""
    d = tmp_path_factory.mktemp("fast")
    a = make_bundle("V00_S0009_I00000009_P0001", 60, Fraction(30))
    b = make_bundle("V00_S0009_I00000009_P0002", 60, Fraction(30))
    c = make_bundle("V00_S0010_I00000010_P0001", 60, Fraction(30))
    n = 2 * 48_000
    c["wav"] = int16_wav(np.stack([np.arange(n) % 30000, -(np.arange(n) % 30000)], axis=1))
    bundles = {"V00_S0009_I00000009_P0001": a, "V00_S0009_I00000009_P0002": b, "V00_S0010_I00000010_P0001": c}
    return [str(write_tar(d / "x.tar", {"V00_S0009_I00000009_P0001": a, "V00_S0010_I00000010_P0001": c})),
            str(write_tar(d / "y.tar", {"V00_S0009_I00000009_P0002": b}))], bundles


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_loader_windows_equal_the_reference_whatever_the_threads(tars, threads, backend):
    from seamless_interaction.access.loader import ShardWarning, WindowDataset

    paths, bundles = tars
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ShardWarning)  # the singleton interaction is yielded alone
        items = list(WindowDataset(paths, modalities=("features", "audio"), window_s=0.3, hop_s=0.2,
                                   decode_threads=threads))
    assert {tuple(it["file_ids"]) for it in items} == {("V00_S0009_I00000009_P0001", "V00_S0009_I00000009_P0002"),
                                                       ("V00_S0010_I00000010_P0001",)}
    assert len(items) == 2 * len(windows(2.0, 0.3, 0.2))
    for it in items:
        s, e = it["start_s"], it["end_s"]
        for part in it["participants"]:
            ref = Participant.from_sources(part["file_id"], bundles[part["file_id"]])
            want = ref.features(None, s, e)  # NpzReader.rows: zipfile streaming, not the fast path
            assert list(part["features"]) == list(want)
            assert all(np.array_equal(part["features"][k], v) for k, v in want.items())
            audio = ref.audio(s, e)
            assert part["audio"].dtype == audio.dtype and np.array_equal(part["audio"], audio)
            assert part["audio"].flags.writeable and part["audio"].flags.owndata


def test_loader_refuses_a_corrupt_npz_member(tmp_path, backend):
    from seamless_interaction.access.loader import ShardWarning, WindowDataset

    good = make_bundle("V00_S0011_I00000011_P0001", 60, Fraction(30))
    bad = make_bundle("V00_S0012_I00000012_P0001", 60, Fraction(30))
    npz = bytearray(bad["npz"])
    e = _biggest(bytes(npz))
    npz[e.data_start + e.compressed_size // 2] ^= 0x55
    bad["npz"] = bytes(npz)
    path = str(write_tar(tmp_path / "c.tar", {"V00_S0012_I00000012_P0001": bad, "V00_S0011_I00000011_P0001": good}))
    with pytest.warns(ShardWarning, match="V00_S0012_I00000012_P0001"):
        items = list(WindowDataset([path], window_s=0.5, dyadic=False))
    assert {fid for it in items for fid in it["file_ids"]} == {"V00_S0011_I00000011_P0001"}
    with pytest.raises(IntegrityError, match="CRC|inflate"):
        list(WindowDataset([path], window_s=0.5, dyadic=False, strict=True))
