"""The official API against the loopback mirror: both routes, identical bundles, the official bugs fixed."""

from __future__ import annotations

import filecmp
import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from seamless_interaction.base.errors import (
    InvalidIdError, MissingPartError, SeamlessError, TransferError, UnknownIdError,
)
from seamless_interaction.fs import DatasetConfig, SeamlessInteractionFS
from seamless_interaction.local.layout import bundle_paths
from seamless_interaction.mirror import MirrorServer


def _bundle(root, rec):
    return bundle_paths(root, rec.label, rec.split, rec.batch, rec.archive, rec.file_id)


def _hub_ids(info):
    missing = set(info.missing_archive_ids)
    return [f for f in info.file_ids if f not in missing]


def test_official_snippet_runs_unchanged_against_env_configured_mirror(sample_server, tmp_path, monkeypatch):
    monkeypatch.setenv("SEAMLESS_INTERACTION_CDN_URL", sample_server.cdn_url)
    monkeypatch.setenv("SEAMLESS_INTERACTION_HF_URL", sample_server.hf_url)
    monkeypatch.setenv("SEAMLESS_INTERACTION_ASSETS", sample_server.assets_url)
    monkeypatch.setenv("SEAMLESS_INTERACTION_CACHE", str(tmp_path / "cache"))
    config = DatasetConfig(label="improvised", split="dev", preferred_vendors_only=True,
                           local_dir=tmp_path / "datasets/seamless_interaction", num_workers=None, seed=None)
    fs = SeamlessInteractionFS(config=config, quiet=True)
    file_ids = fs.sample_random_file_ids(num_samples=1)
    assert len(file_ids) == 1 and file_ids[0][:3] in ("V00", "V01")
    fs.gather_file_id_data_from_s3(file_ids[0])
    rec = fs.catalog.record(file_ids[0])
    expected = {str(p) for p in _bundle(config.local_dir, rec).values()}
    assert set(fs.get_path_list_for_file_id_local(file_ids[0])) == expected
    assert all(Path(p).stat().st_size > 0 for p in expected)
    fs.close()


def test_cdn_and_hub_routes_give_identical_files_for_every_file_id(sample_mirror, make_fs, tmp_path):
    fs_cdn = make_fs(tmp_path / "cdn")
    fs_hub = make_fs(tmp_path / "hub")
    ids = _hub_ids(sample_mirror)
    fs_cdn.download_batch_from_s3(ids)
    archives = sorted({(r.label, r.split, r.batch, r.archive) for r in map(fs_hub.catalog.record, ids)})
    for label, split, batch, archive in archives:
        ok, path = fs_hub.download_archive_from_hf(archive, label=label, split=split, batch=batch)
        assert ok and Path(path).is_dir()
    for fid in ids:
        rec = fs_cdn.catalog.record(fid)
        a, b = _bundle(tmp_path / "cdn", rec), _bundle(tmp_path / "hub", rec)
        for ext in ("wav", "mp4", "npz", "json"):
            assert filecmp.cmp(a[ext], b[ext], shallow=False), f"{fid}.{ext} differs between routes"
    # ...and both equal the tar members byte for byte (the mirror's source of truth).
    import tarfile

    for label, split, batch, archive in archives:
        tar = sample_mirror.root / "hub" / label / split / f"{batch:04d}" / f"{archive:04d}.tar"
        with tarfile.open(tar) as tf:
            for m in tf.getmembers():
                fid = m.name.split(".", 1)[0]
                rec = fs_hub.catalog.record(fid)
                if (rec.batch, rec.archive) != (batch, archive):
                    continue
                assert _bundle(tmp_path / "cdn", rec)[m.name.rsplit(".", 1)[1]].read_bytes() == tf.extractfile(m).read()


def test_suffixed_id_keeps_its_letter_on_both_routes(sample_mirror, make_fs, tmp_path):
    fid = sample_mirror.suffixed[0]
    assert fid.endswith("A")
    fs = make_fs(tmp_path / "d")
    paths = fs.gather_file_id(fid)
    assert all(p.name.startswith(fid + ".") for p in paths.values())
    assert json.loads(paths["json"].read_text())["id"] == fid
    bare = fid[:-1]
    assert bare not in fs.catalog  # the official regex dropped the suffix and looked up the wrong id


def test_is_valid_features_do_not_collide(sample_mirror, make_fs, tmp_path):
    fid = next(f for f in sample_mirror.movement if f not in sample_mirror.placeholder)
    fs = make_fs(tmp_path / "d")
    assert fs.gather_file_id_data_from_s3(fid) is None  # the official return value
    paths = fs.gather_file_id(fid)  # already complete: the paths, nothing fetched again
    rec = sample_mirror.files[fid]
    cdn = sample_mirror.root / "cdn" / rec.label / rec.split
    with np.load(paths["npz"]) as npz:
        smplh = np.load(cdn / "smplh" / "is_valid" / f"{fid}.npy")
        movement = np.load(cdn / "movement" / "is_valid" / f"{fid}.npy")
        assert npz["smplh:is_valid"].dtype == np.bool_ and npz["movement:is_valid"].dtype == np.float32
        np.testing.assert_array_equal(npz["smplh:is_valid"], smplh)
        np.testing.assert_array_equal(npz["movement:is_valid"], movement.astype(np.float32))
        assert len(npz.files) == 24


def test_annotations_are_json_lines_lists(sample_mirror, make_fs, tmp_path):
    fid = sample_mirror.annotated[0]
    fs = make_fs(tmp_path / "d")
    doc = json.loads(fs.gather_file_id(fid)["json"].read_text())
    kinds = [k for k in doc if k.startswith("annotations:")]
    assert kinds
    rec = sample_mirror.files[fid]
    for k in kinds:
        src = sample_mirror.root / "cdn" / rec.label / rec.split / "annotations" / k.split(":")[1] / f"{fid}.json"
        lines = [json.loads(line) for line in src.read_text().splitlines() if line.strip()]
        assert doc[k] == lines and all({"annotation", "start_ts", "end_ts"} <= set(r) for r in doc[k])


def test_missing_transcript_is_absent_not_an_error(sample_mirror, make_fs, tmp_path):
    fid = sample_mirror.no_transcript[0]
    doc = json.loads(make_fs(tmp_path / "d").gather_file_id(fid)["json"].read_text())
    assert "metadata:transcript" not in doc and "metadata:vad" in doc


def _copy_mirror(sample_mirror, dest):
    shutil.copytree(sample_mirror.root, dest)
    return dest


def test_required_part_missing_raises_with_url_and_leaves_nothing(sample_mirror, tmp_path):
    root = _copy_mirror(sample_mirror, tmp_path / "m")
    fid = _hub_ids(sample_mirror)[0]
    rec = sample_mirror.files[fid]
    (root / "cdn" / rec.label / rec.split / "smplh" / "body_pose" / f"{fid}.npy").unlink()
    with MirrorServer(root) as srv:
        cfg = DatasetConfig(local_dir=tmp_path / "d", cdn_url=srv.cdn_url, hf_url=srv.hf_url,
                            assets=srv.assets_url, cache_dir=tmp_path / "c")
        with SeamlessInteractionFS(cfg, quiet=True) as fs:
            with pytest.raises(MissingPartError) as err:
                fs.gather_file_id_data_from_s3(fid)
    assert "smplh/body_pose" in str(err.value) and "403" in str(err.value)
    assert err.value.status == 403
    final = _bundle(tmp_path / "d", rec)
    assert not any(p.exists() for p in final.values())
    leftovers = [p for p in (tmp_path / "d").rglob("*") if p.is_file()]
    assert [p for p in leftovers if ".seamless_interaction" not in p.parts] == []


def test_no_network_raises_instead_of_writing_a_stub(sample_mirror, sample_server, tmp_path):
    # The official toolkit wrote {"id": ...} and returned normally when every request failed.
    cfg = DatasetConfig(local_dir=tmp_path / "d", cdn_url="http://127.0.0.1:9/seamless_interaction",
                        hf_url=sample_server.hf_url, assets=sample_server.assets_url, cache_dir=tmp_path / "c")
    fid = _hub_ids(sample_mirror)[0]
    with SeamlessInteractionFS(cfg, quiet=True) as fs:
        fs.transfer.retries = 1
        with pytest.raises(TransferError) as err:
            fs.gather_file_id_data_from_s3(fid)
    assert "127.0.0.1:9" in str(err.value)
    assert not list((tmp_path / "d").rglob(f"{fid}.*"))


def test_unknown_and_malformed_ids_fail_before_any_request(sample_server, make_fs, tmp_path):
    fs = make_fs(tmp_path / "d")
    fs.catalog  # load the tables first, so the log below holds only download requests
    sample_server.clear_requests()
    with pytest.raises(UnknownIdError, match="V00_S9999_I00000001_P0001"):
        fs.gather_file_id_data_from_s3("V00_S9999_I00000001_P0001")
    with pytest.raises(ValueError, match="V00_S0001_I0000001_P0001"):
        fs.gather_file_id_data_from_s3("V00_S0001_I0000001_P0001")
    with pytest.raises(UnknownIdError):
        fs.download_batch_from_s3([fs.catalog.file_ids()[0], "V00_S9999_I00000001_P0001"])
    assert [r for r in sample_server.requests if "/seamless_interaction/" in r.path] == []
    assert not (tmp_path / "d").exists() or not [p for p in (tmp_path / "d").rglob("*.npz")]


def test_interaction_key_one_digit_short_is_rejected(sample_mirror, make_fs, tmp_path):
    fs = make_fs(tmp_path / "d")
    key = sample_mirror.pairs[0][0].rsplit("_P", 1)[0]
    with pytest.raises(InvalidIdError):
        fs.get_interaction_pairs(interaction_keys=[key[:-1]])
    assert fs.get_interaction_pairs(interaction_keys=[key]) == [sorted(sample_mirror.pairs[0])]


def test_archive_size_exact_bytes_and_official_gib(sample_mirror, make_fs, tmp_path):
    fs = make_fs(tmp_path / "d")
    rec = sample_mirror.files[_hub_ids(sample_mirror)[0]]
    size = fs.get_tar_archive_bytes(rec.label, rec.split, rec.batch, rec.archive)
    tar = sample_mirror.root / "hub" / rec.archive_path
    assert isinstance(size, int) and size == tar.stat().st_size
    gib = fs.get_tar_archive_size(rec.label, rec.split, rec.batch, rec.archive)
    assert isinstance(gib, float) and gib == size / 1024**3


def test_failed_archive_download_raises_instead_of_false(sample_mirror, make_fs, tmp_path):
    fs = make_fs(tmp_path / "d")
    label, split, batch, archive = sample_mirror.missing_archive
    with pytest.raises(TransferError) as err:
        fs.download_archive_from_hf(archive, label=label, split=split, batch=batch)
    assert "404" in str(err.value) and f"{archive:04d}.tar" in str(err.value)


def test_extraction_reruns_after_a_crash(sample_mirror, sample_server, make_fs, tmp_path):
    fs = make_fs(tmp_path / "d")
    rec = sample_mirror.files[_hub_ids(sample_mirror)[0]]
    dest = tmp_path / "d" / rec.label / rec.split / f"{rec.batch:04d}" / f"{rec.archive:04d}"
    dest.mkdir(parents=True)
    (dest / f"{rec.file_id}.json").write_text("{")  # what a crash mid-extraction leaves behind
    ok, path = fs.download_archive_from_hf(rec.archive, label=rec.label, split=rec.split, batch=rec.batch)
    assert json.loads((dest / f"{rec.file_id}.json").read_text())["id"] == rec.file_id
    assert not (dest.parent / f"{rec.archive:04d}.tar").exists()
    # A second run is a no-op: nothing fetched.
    sample_server.clear_requests()
    ok2, path2 = fs.download_archive_from_hf(rec.archive, label=rec.label, split=rec.split, batch=rec.batch)
    assert path2 == path and [r for r in sample_server.requests if r.method == "GET"] == []


def test_batch_download_uses_catalog_archives(sample_mirror, make_fs, tmp_path):
    fs = make_fs(tmp_path / "d", label="improvised", split="dev")
    first = fs.list_archives("improvised", "dev", 0)[0]
    assert fs.download_batch_from_hf(batch_idx=0, archive_list=[first]) is True
    paths = fs.download_archives_from_hf(batch_idx=[0], archive_list=[first])  # complete: nothing refetched
    assert paths == [str(tmp_path / "d" / "improvised" / "dev" / "0000" / f"{first:04d}")]
    assert {Path(p).name.split(".")[0] for p in Path(paths[0]).iterdir()} == \
        set(sample_mirror.archive_ids("improvised", "dev", 0, first))


def test_seed_does_not_touch_global_random(make_fs, tmp_path):
    fs = make_fs(tmp_path / "d")
    random.seed(1234)
    state = random.getstate()
    a = fs.sample_random_file_ids(num_samples=3, seed=7, preferred_vendors_only=False)
    assert random.getstate() == state
    assert fs.sample_random_file_ids(num_samples=3, seed=7, preferred_vendors_only=False) == a


def test_import_writes_no_log_file(tmp_path):
    code = "import seamless_interaction.fs, seamless_interaction.cli, logging; logging.getLogger('seamless_interaction').warning('x')"
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True, capture_output=True)
    assert list(tmp_path.iterdir()) == []


def test_catalog_queries(sample_mirror, make_fs, tmp_path):
    fs = make_fs(tmp_path / "d")
    pair = sample_mirror.pairs[0]
    key = pair[0].rsplit("_P", 1)[0]
    meta = fs.get_interaction_details(key)
    assert sorted(p["file_id"] for p in meta["participants"]) == sorted(pair)
    assert meta["prompt_hash"] == key[-8:]
    summary = fs.get_interaction_metadata(key)
    assert summary["file_ids"] == sorted(pair) and summary["num_participants"] == 2
    assert summary["participants"] == [f.rsplit("_P", 1)[1] for f in sorted(pair)]
    dev = {f for f, r in sample_mirror.files.items() if (r.label, r.split) == ("improvised", "dev")}
    assert set(fs.get_available_keys("file")) == dev  # the config's label and split
    assert set(fs.get_available_keys("file", label="naturalistic", split="test")) == \
        {f for f, r in sample_mirror.files.items() if (r.label, r.split) == ("naturalistic", "test")}
    assert fs.get_available_keys("interaction", limit=2) == sorted(fs.get_available_keys("interaction"))[:2]
    with pytest.raises(ValueError):
        fs.get_available_keys("bogus")
    pairs = fs.get_interaction_pairs(num_pairs=2, label="improvised", split="dev", preferred_vendors_only=False, seed=1)
    assert pairs and all(len(p) == 2 and p[0].rsplit("_P", 1)[0] == p[1].rsplit("_P", 1)[0] for p in pairs)
    # The official groups count files (2 here), the richer ones whole interactions (both participants).
    groups = fs.get_session_groups(num_sessions=1, interactions_per_session=2, label="improvised", split="dev",
                                   preferred_vendors_only=False, seed=0)
    assert len(groups) == 1 and len(groups[0]) == 2
    assert len({f.rsplit("_I", 1)[0] for f in groups[0]}) == 1  # one session
    session = groups[0][0][:9]
    (whole,) = fs.get_session_interaction_groups(session_keys=session, interactions_per_session=1)
    first = fs.catalog.session_interactions(session)[0]
    assert whole == fs.catalog.interaction_file_ids(first)
    with pytest.raises(ValueError, match="No sessions with sufficient interactions"):
        fs.get_session_groups(num_sessions=1, interactions_per_session=10**6)
    assert fs.list_batches("improvised", "dev") == sorted({r.batch for r in sample_mirror.files.values()
                                                           if (r.label, r.split) == ("improvised", "dev")})


def test_errors_share_one_base():
    for exc in (InvalidIdError, UnknownIdError, TransferError, MissingPartError):
        assert issubclass(exc, SeamlessError)


def test_fetch_interaction_reads_only_requested_members_of_both_archives(sample_mirror, sample_server, make_fs, tmp_path):
    import tarfile

    pair = sample_mirror.split_pairs[0]
    key = pair[0].rsplit("_P", 1)[0]
    fs = make_fs(tmp_path / "d")
    fs.catalog
    sample_server.clear_requests()
    paths = fs.fetch_interaction(key, modalities=("npz", "json"))
    assert sorted(p.name for p in paths) == sorted(f"{f}.{e}" for f in pair for e in ("json", "npz"))
    selected = 0
    for fid in pair:
        rec = sample_mirror.files[fid]
        with tarfile.open(sample_mirror.root / "hub" / rec.archive_path) as tf:
            for ext in ("npz", "json"):
                m = tf.getmember(f"{fid}.{ext}")
                selected += m.size
                assert _bundle(tmp_path / "d", fs.catalog.record(fid))[ext].read_bytes() == tf.extractfile(m).read()
        assert not _bundle(tmp_path / "d", fs.catalog.record(fid))["mp4"].exists()
    sent = sum(r.body_bytes for r in sample_server.requests if r.method == "GET")
    whole = sum((sample_mirror.root / "hub" / sample_mirror.files[f].archive_path).stat().st_size for f in pair)
    assert sent < whole / 3 and sent >= selected


def test_official_load_interaction_data_flow_without_opencv(sample_mirror, make_fs, tmp_path):
    """The official README's 'Working with Downloaded Data' flow: Hub archive, then the dict of modalities."""
    fs = make_fs(tmp_path / "d")
    fid = next(f for f in sample_mirror.movement if f not in sample_mirror.placeholder
               and f not in sample_mirror.missing_archive_ids)
    rec = fs.catalog.record(fid)
    fs.download_archive_from_hf(archive=rec.archive, label=rec.label, split=rec.split, batch=rec.batch,
                                local_dir=None, extract=True)
    data = fs.load_interaction_data(fid)
    assert set(data) >= {"video", "audio", "sample_rate", "json", "npz"}
    assert data["sample_rate"] == 48_000 and data["audio"].dtype == np.float32
    assert len(list(data["npz"].keys())) == 24
    n = sample_mirror.files[fid].n_frames
    assert data["npz"]["smplh:right_hand_pose"].shape == (n, 15, 3)
    assert data["json"]["id"] == fid
    ok, frame = data["video"].read()
    assert ok and frame.ndim == 3 and frame.dtype == np.uint8
    p = fs.open_participant(fid)
    assert p.num_frames == n and p.sample_rate == 48_000
    partners = fs.catalog.interaction_file_ids(rec.interaction_key)
    if len(partners) == 2 and any(fs.catalog.record(f).archive != rec.archive for f in partners):
        with pytest.raises(FileNotFoundError, match="download it first"):  # partner's archive not fetched
            fs.open_interaction(rec.interaction_key)
        fs.download_batch_from_s3(partners)
    it = fs.open_interaction(rec.interaction_key)
    assert sorted(q.file_id for q in it.participants) == partners
    with pytest.raises(FileNotFoundError):
        fs.load_interaction_data(sample_mirror.placeholder[0][:-4] + "0000")
