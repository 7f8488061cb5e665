"""Rerun .rrd export, loaded back through Rerun's own reader (rerun.chunk.RrdReader)."""

from __future__ import annotations

import io
import json
import os
from collections import defaultdict
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from seamless_interaction.access.video import probe_video
from seamless_interaction.base import conversation
from seamless_interaction.base.ids import FileId
from seamless_interaction.local import layout
from seamless_interaction.operations.export import export

rr = pytest.importorskip("rerun")


def _read(path: Path) -> dict[tuple[str, bool], dict[str, list]]:
    """``{(entity, static): {column: values}}`` with an entity's chunks concatenated in time order."""
    cols: dict[tuple[str, bool], dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for chunk in rr.chunk.RrdReader(path).stream().to_chunks():
        data = chunk.to_record_batch().to_pydict()
        for name, values in data.items():
            if name != "rerun.controls.RowId":
                cols[(chunk.entity_path, chunk.is_static)][name].extend(values)
    out = {}
    for k, c in cols.items():
        if "time" in c:
            order = np.argsort([t.value for t in c["time"]], kind="stable")
            c = {name: [v[i] for i in order] for name, v in c.items()}
        out[k] = dict(c)
    return out


def _seconds(times) -> np.ndarray:
    return np.array([t.value for t in times]) / 1e9


def _npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(path.read_bytes())) as npz:
        return {k: npz[k] for k in npz.files}


def test_rrd_embedded_videos_keypoints_and_curves(local_tree, sample_mirror, tmp_path):
    a, b = sample_mirror.pairs[0]
    key = FileId.parse(a).interaction_key
    [path] = export([key], to="rerun", out=tmp_path, local_dir=local_tree).paths
    got = _read(path)
    assert got[("/", True)]["interaction_key"] == [[key]]
    for fid in (a, b):
        pid = "P" + FileId.parse(fid).participant
        src = layout.find_bundle(local_tree, fid)
        info = probe_video(src["mp4"])
        asset = got[(f"/{pid}/video", True)]
        assert bytes(np.asarray(asset["AssetVideo:blob"][0], dtype=np.uint8)) == src["mp4"].read_bytes()
        refs = got[(f"/{pid}/video", False)]
        n = info.num_frames
        assert _seconds(refs["time"]) == pytest.approx(np.arange(n) / float(info.frame_rate))
        assert len(refs["VideoFrameReference:timestamp"]) == n
        arrays = _npz(src["npz"])
        kp = got[(f"/{pid}/video/keypoints", False)]
        valid = arrays["boxes_and_keypoints:is_valid_box"]
        assert [len(p) if p else 0 for p in kp["Points2D:positions"]] == [133 if v else 0 for v in valid]
        want = arrays["boxes_and_keypoints:keypoints"]
        for i in np.flatnonzero(valid)[:3]:
            np.testing.assert_allclose(np.array(kp["Points2D:positions"][i]), want[i, :, :2])
        box = got[(f"/{pid}/video/box", False)]
        i = int(np.flatnonzero(valid)[0])
        x0, y0, x1, y1 = arrays["boxes_and_keypoints:box"][i]
        assert box["Boxes2D:centers"][i] == [pytest.approx([(x0 + x1) / 2, (y0 + y1) / 2])]
        vad = got[(f"/{pid}/vad", False)]
        spurts = conversation.talkspurts(conversation.vad_segments(json.loads(src["json"].read_text())["metadata:vad"]))
        assert list(_seconds(vad["time"])) == pytest.approx([t for s in spurts for t in s])
        assert [v[0] for v in vad["Scalars:scalars"]] == [1.0, 0.0] * len(spurts)
        val = got[(f"/{pid}/emotion/valence", False)]
        np.testing.assert_allclose([v[0] for v in val["Scalars:scalars"]],
                                   arrays["movement:emotion_valence"].reshape(-1), rtol=1e-6)


def test_rrd_3d_points_empty_vad_and_referenced_video(dirty_tree, tmp_path):
    res = export([dirty_tree.points_key, dirty_tree.empty_vad_key], to="rerun", out=tmp_path,
                 local_dir=dirty_tree.root, embed_video=False)
    got = _read(tmp_path / f"{dirty_tree.points_key}.rrd")
    src = layout.find_bundle(dirty_tree.root, "V00_S0004_I00000004_P0007")
    pts = _npz(src["npz"])["movement_v4:pred_vertices"]
    body = got[("/P0007/body3d", False)]
    assert len(body["Points3D:positions"]) == len(pts)
    np.testing.assert_array_equal(np.array(body["Points3D:positions"][4]), pts[4])
    assert ("/P0008/body3d", False) not in got  # its npz has no 3D points
    val = got[("/P0007/emotion_v4/valence", False)]
    assert [v[0] for v in val["Scalars:scalars"]] == pytest.approx(
        _npz(src["npz"])["movement_v4:emotion_valence"].reshape(-1).tolist())
    video = got[("/P0007/video", True)]
    assert "AssetVideo:blob" not in video
    rel = video["video_path"][0][0]
    assert Path(os.path.normpath(tmp_path / rel)) == src["mp4"].resolve()
    fps = probe_video(src["mp4"]).frame_rate
    assert _seconds(got[("/P0007/video", False)]["time"])[:3] == pytest.approx(
        [float(i / Fraction(fps)) for i in range(3)])
    empty = _read(tmp_path / f"{dirty_tree.empty_vad_key}.rrd")
    assert ("/P0004/vad", False) not in empty and ("/P0003/vad", False) in empty
    assert len(res.paths) == 2
