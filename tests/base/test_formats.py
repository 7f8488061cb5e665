import io
import json
import zipfile

import numpy as np
import pytest

from seamless_interaction.base.errors import IntegrityError
from seamless_interaction.base.formats import (
    bundle_json, decode_npz, decode_wav, encode_json, encode_npz, encode_wav_float32, parse_jsonl, read_wav_info,
)

CORE_EMPTY = {
    "boxes_and_keypoints:box": np.zeros((0, 4), np.float32),
    "boxes_and_keypoints:is_valid_box": np.zeros((0,), bool),
    "boxes_and_keypoints:keypoints": np.zeros((0, 133, 3), np.float32),
    "smplh:body_pose": np.zeros((0, 21, 3), np.float32),
    "smplh:global_orient": np.zeros((0, 3), np.float32),
    "smplh:is_valid": np.zeros((0,), bool),
    "smplh:left_hand_pose": np.zeros((0, 15, 3), np.float32),
    "smplh:right_hand_pose": np.zeros((0, 15, 3), np.float32),
    "smplh:translation": np.zeros((0, 3), np.float32),
}


def test_empty_core_npz_has_the_real_placeholder_size():
    # FORMAT.md 5.2: the empty core-only npz of the release is 1,981 bytes (savez_compressed).
    assert len(encode_npz(CORE_EMPTY)) == 1981


def test_npz_is_deterministic_sorted_float32_and_loads_like_savez():
    rng = np.random.default_rng(0)
    arrays = {"smplh:translation": rng.normal(size=(5, 3)),
              "boxes_and_keypoints:box": rng.normal(size=(5, 4)).astype(np.float32),
              "smplh:is_valid": np.ones(5, bool)}
    a, b = encode_npz(arrays), encode_npz(dict(reversed(list(arrays.items()))))
    assert a == b
    names = zipfile.ZipFile(io.BytesIO(a)).namelist()
    assert names == sorted(names) and all(n.endswith(".npy") for n in names)
    assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in zipfile.ZipFile(io.BytesIO(a)).infolist())
    back = decode_npz(a)
    assert back["smplh:translation"].dtype == np.float32
    np.testing.assert_array_equal(back["smplh:translation"], arrays["smplh:translation"].astype(np.float32))
    assert back["smplh:is_valid"].dtype == bool


def test_decode_npz_refuses_pickles_and_garbage():
    buf = io.BytesIO()
    np.savez(buf, obj=np.array([{"a": 1}], dtype=object))
    with pytest.raises(IntegrityError):
        decode_npz(buf.getvalue())
    with pytest.raises(IntegrityError):
        decode_npz(b"not a zip")


def test_empty_bundle_json_sizes_match_the_release():
    # FORMAT.md 6.1: 96 bytes for a 4-digit participant, 97 with the suffix.
    assert len(encode_json(bundle_json("V01_S0001_I00000001_P0001", [], []))) == 96
    assert len(encode_json(bundle_json("V00_S0001_I00000001_P0001A", [], []))) == 97


def test_json_key_order_and_indent():
    doc = bundle_json("V00_S0001_I00000001_P0001", None, [{"start": 0.5, "end": 1.0}],
                      {"3P-V": [{"annotation": "x", "start_ts": 1, "end_ts": 2}],
                       "1P-IS": [{"annotation": "y", "start_ts": 0, "end_ts": 1}]})
    assert list(doc) == ["id", "metadata:vad", "annotations:1P-IS", "annotations:3P-V"]
    text = encode_json(doc).decode()
    assert text.startswith('{\n  "id"')  # annotated samples were re-serialised with indent=2
    assert encode_json(bundle_json("V00_S0001_I00000001_P0001", [], [])).decode().startswith('{\n    "id"')
    assert json.loads(text) == doc


def test_jsonl():
    assert parse_jsonl(b'{"a": 1}\n\n{"a": 2}\n') == [{"a": 1}, {"a": 2}]
    with pytest.raises(IntegrityError, match="line 2"):
        parse_jsonl(b'{"a": 1}\n{oops\n')


def test_wav_float32_roundtrip_and_placeholder_size():
    assert len(encode_wav_float32(np.zeros(0, np.float32))) == 58  # FORMAT.md 3: the empty WAV
    x = np.linspace(-1, 1, 4800, dtype=np.float32)
    data = encode_wav_float32(x, 48000)
    info = read_wav_info(data[:200], total_size=len(data))
    assert (info.sample_rate, info.channels, info.bits, info.format_tag, info.frames) == (48000, 1, 32, 3, 4800)
    y, sr = decode_wav(data)
    assert sr == 48000 and np.array_equal(x, y)


def test_wav_truncated_is_detected():
    data = encode_wav_float32(np.ones(1000, np.float32))
    with pytest.raises(IntegrityError, match="past the end"):
        decode_wav(data[:-10])
    with pytest.raises(IntegrityError):
        decode_wav(b"RIFF....WAVX")
