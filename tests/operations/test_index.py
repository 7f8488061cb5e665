"""The conversation index against the mirror: its statistics equal those computed from the full files."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from fractions import Fraction

import numpy as np
import pytest

from seamless_interaction.base import conversation as cv
from seamless_interaction.base.config import DatasetConfig
from seamless_interaction.base.formats import parse_jsonl, read_wav_info
from seamless_interaction.fs import SeamlessInteractionFS
from seamless_interaction.mirror import MirrorInfo, MirrorServer
from seamless_interaction.operations.index import (
    IndexStaleError,
    NoIndexError,
    choose_route,
)
from seamless_interaction.remote.urls import hub_archive_path


def _full_bundle(info: MirrorInfo, fid: str) -> dict:
    """Every member of ``fid`` read whole: from its tar, or from the CDN tree when the tar is missing."""
    r = info.files[fid]
    ref = (r.label, r.split, r.batch, r.archive)
    if ref != tuple(info.missing_archive):
        with tarfile.open(info.hub_dir / hub_archive_path(*ref)) as tar:
            got = {m.name.partition(".")[2]: tar.extractfile(m).read() for m in tar.getmembers()
                   if m.name.startswith(fid + ".")}
        doc = json.loads(got["json"])
        npz = np.load(io.BytesIO(got["npz"]))
        arrays = {k: npz[k] for k in npz.files}
        sizes = {ext: len(b) for ext, b in got.items()}
        return {"doc": doc, "wav": got["wav"], "mp4": got["mp4"], "arrays": arrays, "sizes": sizes}
    base = info.cdn_dir / r.label / r.split
    doc = {"metadata:vad": parse_jsonl((base / "metadata" / "vad" / f"{fid}.jsonl").read_bytes())}
    tpath = base / "metadata" / "transcript" / f"{fid}.jsonl"
    if tpath.exists():
        doc["metadata:transcript"] = parse_jsonl(tpath.read_bytes())
    for kind in r.annotations:
        doc[f"annotations:{kind}"] = parse_jsonl((base / "annotations" / kind / f"{fid}.json").read_bytes())
    arrays = {f"{p.parent.parent.name}:{p.parent.name}": np.load(p) for p in base.glob(f"*/*/{fid}.npy")}
    return {"doc": doc, "wav": (base / "audio" / f"{fid}.wav").read_bytes(),
            "mp4": (base / "video" / f"{fid}.mp4").read_bytes(), "arrays": arrays, "sizes": None}


def _video_rate(mp4: bytes) -> float | None:
    import av

    try:
        with av.open(io.BytesIO(mp4)) as c:
            if not c.streams.video:
                return None
            rate = c.streams.video[0].average_rate  # ffmpeg's avg_frame_rate, from the same sample table
            return float(rate) if rate else None
    except av.error.FFmpegError:
        return None


@pytest.fixture(scope="module")
def built(tmp_path_factory, sample_mirror, sample_server):
    tmp = tmp_path_factory.mktemp("index")
    fs = SeamlessInteractionFS(DatasetConfig(local_dir=tmp / "data", cdn_url=sample_server.cdn_url,
                                             hf_url=sample_server.hf_url, assets=sample_server.assets_url,
                                             cache_dir=tmp / "cache"), quiet=True)
    report = fs.build_index()
    yield fs, report
    fs.close()


def test_file_stats_equal_full_files(built, sample_mirror):
    fs, report = built
    assert not report.failed
    rows = {r["file_id"]: r for r in fs.query("SELECT * FROM file_stats").to_pylist()}
    assert sorted(rows) == sorted(sample_mirror.file_ids)
    for fid, row in rows.items():
        rec = sample_mirror.files[fid]
        full = _full_bundle(sample_mirror, fid)
        wav = read_wav_info(full["wav"])
        assert row["duration_s"] == pytest.approx(wav.duration_s) == pytest.approx(rec.wav_frames / 48000)
        arrays = full["arrays"]
        assert row["n_frames"] == arrays["smplh:body_pose"].shape[0] == rec.n_frames
        assert row["n_frames_boxes"] == arrays["boxes_and_keypoints:keypoints"].shape[0]
        assert row["has_movement"] == any(k.startswith("movement:") for k in arrays) == rec.movement
        assert row["has_smplh"] and row["has_boxes_and_keypoints"]
        rate = _video_rate(full["mp4"])
        assert (row["video_rate"] is None) == (rate is None), fid
        if rate is not None:
            assert row["video_rate"] == pytest.approx(rate, rel=1e-9)
            assert row["video_rate"] == pytest.approx(float(Fraction(rec.fps)), rel=1e-9)
        expected = cv.file_measures(full["doc"]["metadata:vad"], full["doc"].get("metadata:transcript"),
                                    wav.duration_s)
        for k, v in expected.as_dict().items():
            assert row[k] == (pytest.approx(v) if isinstance(v, float) else v), (fid, k)
        assert row["has_transcript"] == rec.has_transcript
        assert row["annotation_types"] == ",".join(sorted(rec.annotations))
        assert row["placeholder_media"] == rec.placeholder
        if full["sizes"] is not None:
            assert row["route"] == "hub"
            assert {e: row[f"{e}_bytes"] for e in ("json", "mp4", "npz", "wav")} == full["sizes"]
        else:
            assert row["route"] == "cdn"
            assert row["wav_bytes"] == len(full["wav"]) and row["mp4_bytes"] == len(full["mp4"])
        if row["frame_rate"] is not None:
            assert row["frame_rate"] == pytest.approx(rec.n_frames / wav.duration_s)
            assert row["frame_rate_ok"] == (abs(row["frame_rate"] - rate) <= 0.01 * rate)


def test_interaction_stats_equal_full_files(built, sample_mirror):
    fs, _ = built
    rows = {r["interaction_key"]: r for r in fs.query("SELECT * FROM interaction_stats").to_pylist()}
    assert sorted(rows) == sorted(sample_mirror.interactions)
    for a, b in sample_mirror.pairs:
        a, b = sorted((a, b))
        fa, fb = _full_bundle(sample_mirror, a), _full_bundle(sample_mirror, b)
        dur = max(read_wav_info(fa["wav"]).duration_s, read_wav_info(fb["wav"]).duration_s)
        expected = cv.interaction_measures(fa["doc"]["metadata:vad"], fb["doc"]["metadata:vad"], dur)
        row = rows[a[:19]]
        assert (row["file_id_a"], row["file_id_b"]) == (a, b)
        for k, v in expected.as_dict().items():
            assert row[k] == (pytest.approx(v) if isinstance(v, float) else v), (a, k)
    for fid in sample_mirror.singletons:
        assert rows[fid[:19]]["complete_pair"] is False and rows[fid[:19]]["n_turns"] is None


def test_placeholder_and_missing_archive(built, sample_mirror):
    fs, report = built
    placeholder = sample_mirror.placeholder[0]
    row = fs.query(f"SELECT * FROM file_stats WHERE file_id = '{placeholder}'").to_pylist()[0]
    assert row["vad_empty"] and row["placeholder_media"] and row["video_rate"] is None
    assert row["speech_s"] == 0 and row["frame_rate"] is None
    inter = fs.query(f"SELECT * FROM interaction_stats WHERE interaction_key = '{placeholder[:19]}'").to_pylist()[0]
    assert inter["n_turns"] is None and inter["complete_pair"] is True
    ids = fs.query("SELECT file_id FROM file_stats WHERE route = 'cdn'")["file_id"].to_pylist()
    assert sorted(ids) == sorted(sample_mirror.missing_archive_ids)
    assert report.routes == {"hub": len(sample_mirror.archives) - 1, "cdn": 1}
    archives = fs.query("SELECT * FROM archives WHERE route = 'hub'").to_pylist()
    for a in archives:
        path = sample_mirror.hub_dir / hub_archive_path(a["label"], a["split"], a["batch"], a["archive"])
        assert a["size"] == path.stat().st_size
        with tarfile.open(path) as tar:
            assert a["members"] == len(tar.getmembers())


def test_rerun_reads_nothing_and_changed_archive_is_reindexed(tmp_path, sample_mirror):
    root = tmp_path / "mirror"
    shutil.copytree(sample_mirror.root, root)
    with MirrorServer(root) as srv:
        cfg = DatasetConfig(local_dir=tmp_path / "data", cdn_url=srv.cdn_url, hf_url=srv.hf_url,
                            assets=srv.assets_url, cache_dir=tmp_path / "cache")
        with SeamlessInteractionFS(cfg, quiet=True) as fs:
            first = fs.build_index(label="improvised", split="dev")
            assert first.indexed == first.archives > 0
            srv.clear_requests()
            again = fs.build_index(label="improvised", split="dev")
            assert (again.indexed, again.skipped) == (0, first.archives)
            assert {r.method for r in srv.requests if "/lfs/" in r.path or "/resolve/" in r.path} <= {"HEAD"}
            # grow one archive by two zero blocks (still a valid tar, new size and sha256)
            ref = next(a for a in sample_mirror.archives if a[:2] == ("improvised", "dev"))
            with open(root / "hub" / hub_archive_path(*ref), "ab") as fh:
                fh.write(b"\0" * 1024)
            third = fs.build_index(label="improvised", split="dev")
            assert (third.indexed, third.skipped) == (1, first.archives - 1)


def test_interrupted_build_resumes(tmp_path, sample_mirror):
    root = tmp_path / "mirror"
    shutil.copytree(sample_mirror.root, root)
    ref = next(a for a in sample_mirror.archives if a[:2] == ("improvised", "dev"))
    tar = root / "hub" / hub_archive_path(*ref)
    good = tar.read_bytes()
    tar.write_bytes(b"\x01" * len(good))  # not a tar: indexing this archive fails
    with MirrorServer(root) as srv:
        cfg = DatasetConfig(local_dir=tmp_path / "data", cdn_url=srv.cdn_url, hf_url=srv.hf_url,
                            assets=srv.assets_url, cache_dir=tmp_path / "cache")
        with SeamlessInteractionFS(cfg, quiet=True) as fs:
            broken = fs.build_index(label="improvised", split="dev")
            assert len(broken.failed) == 1 and broken.indexed == broken.archives - 1
            tar.write_bytes(good)
            resumed = fs.build_index(label="improvised", split="dev")
            assert (resumed.indexed, resumed.skipped, resumed.failed) == (1, broken.archives - 1, [])
            n = fs.query("SELECT count(*) AS n FROM file_stats")["n"][0].as_py()
            assert n == len([f for f in sample_mirror.file_ids if sample_mirror.files[f].split == "dev"
                             and sample_mirror.files[f].label == "improvised"])


def test_new_hub_commit_rebuilds_and_stale_index_is_refused(tmp_path, sample_mirror):
    with MirrorServer(sample_mirror.root) as srv:
        cfg = DatasetConfig(local_dir=tmp_path / "data", cdn_url=srv.cdn_url, hf_url=srv.hf_url,
                            assets=srv.assets_url, cache_dir=tmp_path / "cache")
        with SeamlessInteractionFS(cfg, quiet=True) as fs:
            with pytest.raises(NoIndexError, match="index build"):
                fs.query("SELECT * FROM file_stats")
            first = fs.build_index(label="improvised", split="test")
            meta = json.loads((fs.index_folder / "meta.json").read_text())
            assert meta["version"]["hub_commit"] == srv.repo_commit
            srv.repo_commit = "f" * 40
            second = fs.build_index(label="improvised", split="test")
            assert second.rebuilt and second.indexed == first.archives
            # an index built from another filelist is never mixed in
            meta = json.loads((fs.index_folder / "meta.json").read_text())
            meta["version"]["filelist_sha256"] = "0" * 64
            (fs.index_folder / "meta.json").write_text(json.dumps(meta))
            with pytest.raises(IndexStaleError, match="another catalog version"):
                fs.query("SELECT * FROM file_stats")
            assert fs.query("SELECT count(*) AS n FROM files")["n"][0].as_py() == len(sample_mirror.file_ids)


def test_forced_cdn_route_gives_the_same_stats(tmp_path, sample_server, built):
    fs_hub, _ = built
    cfg = DatasetConfig(local_dir=tmp_path / "data", cdn_url=sample_server.cdn_url, hf_url=sample_server.hf_url,
                        assets=sample_server.assets_url, cache_dir=tmp_path / "cache")
    cols = ("file_id, duration_s, n_frames, n_frames_boxes, n_frames_movement, video_rate, speech_s, n_words, "
            "n_untimed_words, n_vad_segments, vad_empty, has_movement, annotation_types, placeholder_media, "
            "wav_bytes, mp4_bytes")
    with SeamlessInteractionFS(cfg, quiet=True) as fs:
        report = fs.build_index(label="improvised", split="dev", route="cdn")
        assert report.routes == {"cdn": report.archives}
        got = fs.query(f"SELECT {cols} FROM file_stats ORDER BY file_id").to_pylist()
    want = fs_hub.query(f"SELECT {cols} FROM file_stats WHERE label = 'improvised' AND split = 'dev' "
                        "ORDER BY file_id").to_pylist()
    assert got == want


def test_route_choice_prefers_a_cached_tar_index():
    cached, est = choose_route(4, 16, index_cached=True, on_hub=True)
    assert cached.name == "hub" and {r.name for r in est} == {"hub", "cdn"}
    fresh, _ = choose_route(4, 16, index_cached=False, on_hub=True, latency_s=0.05)
    assert fresh.seconds > cached.seconds
    only, est = choose_route(4, None, index_cached=False, on_hub=False)
    assert only.name == "cdn" and len(est) == 1
