"""Clips: both videos and WAVs cut at the same instants, npz/json sliced, and the clip opens with our API."""

from __future__ import annotations

import io
import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from export_builders import clone

from seamless_interaction.access.aligned import open_interaction, span_indices
from seamless_interaction.access.video import decode_frames, probe_video, time_to_index
from seamless_interaction.base import formats
from seamless_interaction.base.errors import ExportError
from seamless_interaction.base.ids import FileId
from seamless_interaction.constants import HYPERNET_STRIDE
from seamless_interaction.local import layout
from seamless_interaction.mirror import frame_marker
from seamless_interaction.operations.export import export


def _npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(path.read_bytes())) as npz:
        return {k: npz[k] for k in npz.files}


def _check_clip(src_root: Path, out: Path, key: str, *, exact_video: bool) -> dict:
    """Compare every clip file with the rows/samples/frames of the source at the recorded instants."""
    ids = sorted({p.name.split(".")[0] for p in src_root.rglob(f"{key}_P*.json")})
    clip = open_interaction(out, key)
    assert [p.file_id for p in clip.participants] == ids
    records = []
    for part in clip.participants:
        src = layout.find_bundle(src_root, part.file_id)
        doc = json.loads(layout.find_bundle(out, part.file_id)["json"].read_text())
        rec = doc["clip"]
        records.append(rec)
        cs, ce = rec["clip_start_s"], rec["clip_end_s"]
        # wav: the same bytes for samples [floor(cs*sr), floor(ce*sr))
        info = formats.read_wav_info(src["wav"].read_bytes())
        audio, _ = formats.decode_wav(src["wav"].read_bytes())
        a, b = span_indices(cs, ce, info.sample_rate, info.frames)
        np.testing.assert_array_equal(part.audio(), audio[a:b])
        got_info = formats.read_wav_info(layout.find_bundle(out, part.file_id)["wav"].read_bytes())
        assert (got_info.format_tag, got_info.bits, got_info.channels, got_info.sample_rate, got_info.data_offset) \
            == (info.format_tag, info.bits, info.channels, info.sample_rate, info.data_offset)  # same encoding
        # npz: same keys and dtypes, rows of [cs, ce) at the frame rate (hypernet at 1/15 of it)
        orig, got = _npz(src["npz"]), _npz(layout.find_bundle(out, part.file_id)["npz"])
        assert list(got) == list(orig)
        fps = probe_video(src["mp4"]).frame_rate
        for k, arr in orig.items():
            rate = fps / HYPERNET_STRIDE if k.endswith(":hypernet_features") else fps
            r0, r1 = span_indices(cs, ce, rate, len(arr))
            assert got[k].dtype == arr.dtype and got[k].shape[1:] == arr.shape[1:]
            np.testing.assert_array_equal(got[k], arr[r0:r1])
        # json: keys kept (plus "clip"), times rebased to the clip start
        src_doc = json.loads(src["json"].read_text())
        assert list(doc) == [*src_doc, "clip"]
        for seg in src_doc.get("metadata:vad", []):
            if seg["start"] < ce and seg["end"] > cs:
                assert {"start": round(max(seg["start"] - cs, 0), 6),
                        "end": round(min(seg["end"] - cs, ce - cs), 6)} in doc["metadata:vad"]
        n_src_words = sum(len(s["words"]) for s in src_doc.get("metadata:transcript") or [])
        for seg in doc.get("metadata:transcript") or []:
            assert 0 <= seg["start"] <= seg["end"] <= ce - cs + 1e-6
            for w in seg["words"]:
                assert w["start"] is None or 0 <= w["start"] <= w["end"] <= ce - cs + 1e-6
        assert sum(len(s["words"]) for s in doc.get("metadata:transcript") or []) <= n_src_words
        # video: frames [first, stop) of the source, the first at time 0
        first, stop = rec["frames"]
        assert first == time_to_index(cs, fps) and stop == time_to_index(ce, fps)
        frames = part.video_frames(0, ce - cs + 1)
        want = decode_frames(src["mp4"], first / fps, stop / fps, frame_rate=fps)
        assert len(frames) == stop - first == len(want)
        if exact_video:
            np.testing.assert_array_equal(frames, want)
        else:
            assert np.abs(frames.astype(int) - want.astype(int)).mean() < 4
        with av.open(str(layout.find_bundle(out, part.file_id)["mp4"])) as c:
            assert c.streams.video[0].average_rate == fps
        assert part.duration_s == pytest.approx(ce - cs, abs=1 / info.sample_rate)
    assert len({(r["clip_start_s"], r["clip_end_s"]) for r in records}) == 1  # one set of instants
    return records[0]


def test_clip_stream_copy_at_a_keyframe(local_tree, sample_mirror, tmp_path):
    a, _ = sample_mirror.pairs[0]
    key = FileId.parse(a).interaction_key
    res = export([key], to="clip", out=tmp_path, local_dir=local_tree, start_s=0.0, end_s=0.5)
    assert res.cut_modes == {key: "copy"}
    rec = _check_clip(local_tree, tmp_path, key, exact_video=True)
    assert rec["cut_mode"] == "copy" and rec["clip_start_s"] == 0.0 and abs(rec["clip_end_s"] - 0.5) <= 1 / 30


def test_clip_reencodes_between_keyframes_at_ntsc_rate(local_tree, sample_mirror, tmp_path):
    fid = sample_mirror.non30fps[0]
    key = FileId.parse(fid).interaction_key
    res = export([key], to="clip", out=tmp_path, local_dir=local_tree, start_s=0.21, end_s=0.77)
    assert res.cut_modes == {key: "reencode"}
    rec = _check_clip(local_tree, tmp_path, key, exact_video=False)
    fps = Fraction(30000, 1001)
    assert rec["clip_start_s"] == pytest.approx(float(time_to_index(0.21, fps) / fps))
    # the marker rows of frame 0 show the source frame at the clip start
    with av.open(str(layout.find_bundle(tmp_path, fid)["mp4"])) as c:
        y = next(c.decode(video=0)).to_ndarray(format="yuv420p")[:16]
    assert abs(float(np.median(y)) - frame_marker(rec["frames"][0])) <= 3


def _gop_mp4(n_frames: int, fps: Fraction, gop: int, shade: int) -> bytes:
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.options = {"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0", "bf": "2"}
        for i in range(n_frames):
            img = np.full((48, 64, 3), (shade + 7 * i) % 256, np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return buf.getvalue()


@pytest.fixture(scope="module")
def gop_tree(local_tree, sample_mirror, tmp_path_factory) -> tuple[Path, str]:
    """A pair whose videos have a keyframe every 10 frames (B-frames on), 30 fps, 1 s."""
    root = tmp_path_factory.mktemp("gop") / "data"
    a, b = sample_mirror.pairs[0]
    for src, fid, shade in ((a, "V00_S0009_I00000009_P0011A", 0), (b, "V00_S0009_I00000009_P0012", 100)):
        paths = clone(layout.find_bundle(local_tree, src), root, fid)
        paths["mp4"].write_bytes(_gop_mp4(30, Fraction(30), 10, shade))
    return root, "V00_S0009_I00000009"


def test_clip_copy_snaps_to_a_keyframe_within_one_frame(gop_tree, tmp_path):
    root, key = gop_tree
    # 0.30 s is frame 9; both videos have a keyframe at frame 10, one frame later: copy from there
    res = export([key], to="clip", out=tmp_path / "a", local_dir=root, start_s=0.30, end_s=0.62)
    assert res.cut_modes == {key: "copy"}
    rec = _check_clip(root, tmp_path / "a", key, exact_video=True)
    assert rec["frames"][0] == 10 and rec["clip_start_s"] == pytest.approx(10 / 30)
    assert rec["requested_start_s"] == 0.30
    # 0.17 s (frame 5) has no keyframe within a frame: re-encode, cut at frame 5's start
    res = export([key], to="clip", out=tmp_path / "b", local_dir=root, start_s=0.17, end_s=0.62)
    assert res.cut_modes == {key: "reencode"}
    rec = _check_clip(root, tmp_path / "b", key, exact_video=False)
    assert rec["frames"][0] == 5 and rec["clip_start_s"] == pytest.approx(5 / 30)
    # forced re-encode at a keyframe
    res = export([key], to="clip", out=tmp_path / "c", local_dir=root, start_s=0.34, end_s=0.62, force_reencode=True)
    assert res.cut_modes == {key: "reencode"}


def test_clip_missing_partner_and_bad_ranges(dirty_tree, tmp_path):
    res = export([dirty_tree.lonely_key], to="clip", out=tmp_path, local_dir=dirty_tree.root, start_s=0.1, end_s=0.4)
    assert res.partial == [dirty_tree.lonely_key]
    _check_clip(dirty_tree.root, tmp_path, dirty_tree.lonely_key, exact_video=False)
    with pytest.raises(ExportError, match="expected 0 <= start < end"):
        export([dirty_tree.lonely_key], to="clip", out=tmp_path, local_dir=dirty_tree.root, start_s=0.5, end_s=0.4)
    with pytest.raises(ExportError, match="not before the end"):
        export([dirty_tree.lonely_key], to="clip", out=tmp_path, local_dir=dirty_tree.root, start_s=5, end_s=6)
    assert not [p for p in tmp_path.rglob(".*")]  # no staging left behind
