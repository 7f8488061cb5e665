"""The app's Streamlit-free parts: progress arithmetic, downsampling, local inventory, media server, payload."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from seamless_interaction.access.aligned import open_interaction
from seamless_interaction.app.local import delete_bundles, scan_local_dir
from seamless_interaction.app.media import MediaRegistry, media_routes
from seamless_interaction.app.player import build_payload, downsample, player_html
from seamless_interaction.app.progress import (
    ProgressRecorder,
    format_bytes,
    format_duration,
)
from seamless_interaction.local.manifest import Manifest


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_progress_reports_bytes_rate_and_time_left():
    clock = FakeClock()
    rec = ProgressRecorder(clock=clock)
    rec.start(10 * 2**20, "0003.tar")
    for _ in range(4):
        clock.t += 0.5
        rec.advance(2**20)  # 2 MiB/s
    snap = rec.snapshot()
    assert snap.done_bytes == 4 * 2**20 and snap.total_bytes == 10 * 2**20
    assert snap.fraction == pytest.approx(0.4)
    assert snap.rate_bps == pytest.approx(2 * 2**20)
    assert snap.eta_s == pytest.approx(3.0)
    assert snap.text() == "0003.tar: 4.0 MiB / 10.0 MiB · 2.0 MiB/s · 3.0 s left"
    rec.close()
    assert "extracting" in rec.snapshot().text()
    rec.finish()
    assert rec.snapshot().text().endswith("done in 2.0 s")


def test_progress_in_items_when_byte_totals_are_unknown():
    clock = FakeClock()
    rec = ProgressRecorder(clock=clock)
    rec.expect_units(4)
    rec.start(None, "50 files")
    clock.t += 2.0
    rec.advance(3000)
    rec.unit_done()
    snap = rec.snapshot()
    assert snap.fraction == pytest.approx(0.25)
    assert snap.eta_s == pytest.approx(6.0)  # 2 s per item, 3 items to go
    assert snap.text().startswith("1 of 4 file ids · 2.9 KiB")


def test_formatting():
    assert format_bytes(512) == "512 B" and format_bytes(1536) == "1.5 KiB" and format_bytes(3 * 2**30) == "3.0 GiB"
    assert format_duration(3) == "3.0 s" and format_duration(75) == "1 min 15 s"
    assert format_duration(7300) == "2 h 1 min"


def test_downsample_averages_blocks_and_skips_invalid_rows():
    values = np.arange(10, dtype=np.float32).reshape(10, 1)
    block, means = downsample(values, max_points=4)
    assert block == 3 and means.shape == (4, 1)
    np.testing.assert_allclose(means[:, 0], [1.0, 4.0, 7.0, 9.0])  # the last block is short
    valid = np.array([True] * 3 + [False] * 3 + [True] * 4)
    _, means = downsample(values, max_points=4, valid=valid)
    assert np.isnan(means[1, 0]) and means[0, 0] == 1.0
    # 10 minutes at 30 fps stays under the cap
    block, means = downsample(np.zeros((18000, 3)), max_points=1200)
    assert block == 15 and means.shape == (1200, 3)


def test_inventory_and_delete(app_setup, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(app_setup.local_dir, root)
    inv = scan_local_dir(root)
    assert inv.complete_ids == set(app_setup.pair)
    assert inv.complete_interactions() == {app_setup.key}
    first = inv.bundle(app_setup.pair[0])
    assert first.sizes == {ext: (root / first.folder / f"{first.file_id}.{ext}").stat().st_size
                           for ext in ("json", "mp4", "npz", "wav")}
    (root / first.folder / f"{first.file_id}.wav").unlink()
    inv = scan_local_dir(root)
    assert inv.bundle(first.file_id).missing == ["wav"] and inv.complete_interactions() == set()
    (root / first.folder / "x.mp4.part").write_bytes(b"12345")
    assert scan_local_dir(root).partial_files == [(f"{first.folder}/x.mp4.part", 5)]
    manifest = Manifest(root)
    assert set(manifest.requested()) == set(app_setup.pair)
    removed = delete_bundles(root, [inv.bundle(first.file_id)], manifest=manifest)
    assert len(removed) == 3 and not any(p.exists() for p in removed)
    assert all(manifest.get(p) is None for p in removed)
    # Deleted on purpose: no longer asked for, so verify will not call it missing.
    assert set(Manifest(root).requested()) == {app_setup.pair[1]}
    assert scan_local_dir(root).file_ids == {app_setup.pair[1]}
    assert scan_local_dir(tmp_path / "absent").bundles == []


def test_media_route_serves_ranges_inside_its_root_only(app_setup):
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    bundle = scan_local_dir(app_setup.local_dir).bundle(app_setup.pair[0])
    mp4 = bundle.paths(app_setup.local_dir)["mp4"]
    data = mp4.read_bytes()
    reg = MediaRegistry()
    site = reg.site(app_setup.local_dir)
    assert reg.site(app_setup.local_dir) is site and MediaRegistry().site(app_setup.local_dir).token != site.token
    with TestClient(Starlette(routes=media_routes(reg, base_path="/proxied/"))) as client:
        url = site.url_for(mp4, "/proxied/")
        assert url.startswith(f"/proxied/seamless-media/{site.token}/")
        r = client.get(url)
        assert r.status_code == 200 and r.content == data and r.headers["content-type"] == "video/mp4"
        r = client.get(url, headers={"Range": "bytes=100-199"})
        assert r.status_code == 206 and r.content == data[100:200]
        assert r.headers["content-range"] == f"bytes 100-199/{len(data)}"
        r = client.get(url, headers={"Range": "bytes=-50"})
        assert r.content == data[-50:]
        assert client.get(url, headers={"Range": f"bytes={len(data)}-"}).status_code == 416
        assert client.head(url).headers["content-length"] == str(len(data))
        npz = url.rsplit(".", 1)[0] + ".npz"  # not a media file
        assert client.get(npz).status_code == 404
        assert client.get(url.replace(site.token, "wrong-token")).status_code == 404
        assert site.resolve(f"../{mp4.name}") is None and site.resolve("a//b.mp4") is None
        with pytest.raises(ValueError):
            site.url_for(bundle.paths(app_setup.local_dir)["npz"])


def test_payload_matches_the_files(app_setup):
    it = open_interaction(app_setup.local_dir, app_setup.key)
    payload = build_payload(it, {fid: {"mp4": f"http://x/{fid}.mp4"} for fid in app_setup.pair}, au_columns=(4, 8))
    assert [p["file_id"] for p in payload["participants"]] == sorted(app_setup.pair)
    for person, part in zip(payload["participants"], it.participants):
        doc = json.loads(next(Path(app_setup.local_dir).rglob(f"{part.file_id}.json")).read_text())
        words = [w for seg in doc["metadata:transcript"] for w in seg["words"] if w.get("start") is not None]
        assert [w[2] for w in person["words"]] == [w["word"] for w in words]
        assert [w[0] for w in person["words"]] == [round(w["start"], 3) for w in words]
        assert person["vad"] == [[round(s["start"], 3), round(s["end"], 3)] for s in doc["metadata:vad"]]
        assert person["duration"] == pytest.approx(part.duration_s, abs=1e-3)
        valence = part.features(["movement:emotion_valence"])["movement:emotion_valence"].reshape(-1)
        valid = part.features(["movement:is_valid"])["movement:is_valid"].reshape(-1) > 0.5
        series = person["series"]["valence"]
        block, means = downsample(valence, valid=valid)
        assert series["cols"][0] == [None if np.isnan(v) else round(float(v), 4) for v in means[:, 0]]
        assert series["dt"] == pytest.approx(block / float(part.frame_rate))
        assert len(person["series"]["fau"]["cols"]) == 2 and person["series"]["fau"]["names"][0].startswith("AU4")
        assert len(person["series"]["head"]["cols"]) == 3
    html = player_html(payload)
    assert "</script><" not in html.split('type="application/json">', 1)[1].split("</script>", 1)[0]
    assert json.loads(html.split('type="application/json">', 1)[1].split("</script>", 1)[0]) == payload
