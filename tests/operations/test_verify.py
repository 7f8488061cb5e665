"""verify and --repair against the loopback mirror: real downloads by both routes, real corruption."""

from __future__ import annotations

import json
import os
import random
import struct
import tarfile
from pathlib import Path

import pytest

from seamless_interaction.base.errors import InvalidIdError, NotDownloadedError
from seamless_interaction.base.ids import ArchiveRef
from seamless_interaction.fs import SeamlessInteractionFS
from seamless_interaction.local.manifest import sha256_file
from seamless_interaction.local.layout import archive_dir, bundle_paths
from seamless_interaction.operations.verify import FAILING_KINDS, KINDS, Report, check_mp4, verify

CDN_ARCHIVE = ArchiveRef("improvised", "dev", 0, 0)  # two of its three ids come by the CDN route
HUB_ARCHIVES = [ArchiveRef("improvised", "test", 0, 0), ArchiveRef("improvised", "dev", 0, 1)]  # extracted from the Hub


def _tar_members(mirror, archive) -> dict[str, bytes]:
    label, split, batch, arch = archive
    tar = mirror.root / "hub" / label / split / f"{batch:04d}" / f"{arch:04d}.tar"
    with tarfile.open(tar) as tf:
        return {m.name: tf.extractfile(m).read() for m in tf.getmembers() if m.isfile()}


@pytest.fixture
def tree(sample_mirror, make_fs, tmp_path):
    """A local tree with 2 ids of one archive by the CDN route and two whole archives from the Hub."""
    fs = make_fs(tmp_path / "data")
    cdn_ids = sample_mirror.archive_ids(*CDN_ARCHIVE)[:2]
    fs.download_batch_from_s3(cdn_ids)
    for label, split, batch, arch in HUB_ARCHIVES:
        fs.download_archive_from_hf(arch, label=label, split=split, batch=batch)
    return fs, cdn_ids


def _paths(fs, fid) -> dict[str, Path]:
    r = fs.catalog.record(fid)
    return bundle_paths(fs.local_dir, ArchiveRef(r.label, r.split, r.batch, r.archive), fid)


def _failing(report: Report) -> set[tuple[str, str | None]]:
    return {(p.kind, p.path) for p in report.problems if p.kind in FAILING_KINDS}


def _strip_moov(path: Path) -> None:
    """Rename the top-level moov box to 'free' in place: same size, no movie header."""
    data = bytearray(path.read_bytes())
    pos = 0
    while pos < len(data):
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"moov":
            data[pos + 4:pos + 8] = b"free"
        pos += size
    path.write_bytes(bytes(data))


def test_clean_tree_reports_only_the_placeholder(tree, sample_mirror):
    fs, cdn_ids = tree
    report = fs.verify()
    assert report.ok and report.exit_code == 0
    # The third id of the CDN archive was never fetched: not "missing" (only what the user started).
    assert report.bundles_checked == 2 + 3 + 3
    assert report.files_checked == 4 * 8
    assert sorted(report.archives) == sorted([CDN_ARCHIVE, *HUB_ARCHIVES])
    [ph] = report.problems
    assert ph.kind == "placeholder" and ph.file_id == sample_mirror.placeholder[0]
    assert "MP4 without a video track" in ph.detail and "WAV without samples" in ph.detail
    assert "zero-length arrays" in ph.detail


def test_each_corruption_is_reported_exactly(tree, sample_mirror):
    fs, cdn_ids = tree
    a, b = (_paths(fs, f) for f in cdn_ids)
    hub = [f for f in sample_mirror.archive_ids(*HUB_ARCHIVES[1])]
    x, y, z = (_paths(fs, f) for f in hub)
    expected = set()

    with open(a["npz"], "r+b") as fh:  # truncated npz
        fh.truncate(os.path.getsize(a["npz"]) // 2)
    expected.add(("corrupt", str(a["npz"])))
    x["json"].write_bytes(b'{"id": "V00_S0554_I0000')  # garbage json
    expected.add(("corrupt", str(x["json"])))
    doc = json.loads(b["json"].read_bytes())  # wrong id, same length
    doc["id"] = doc["id"][:-1] + ("1" if doc["id"][-1] != "1" else "2")
    b["json"].write_text(json.dumps(doc, indent=4))
    expected.add(("corrupt", str(b["json"])))
    with open(y["wav"], "r+b") as fh:  # truncated wav
        fh.truncate(os.path.getsize(y["wav"]) - 1000)
    expected.add(("corrupt", str(y["wav"])))
    _strip_moov(z["mp4"])  # mp4 without moov
    expected.add(("corrupt", str(z["mp4"])))
    a["wav"].unlink()  # deleted file
    expected.add(("missing", str(a["wav"])))
    with open(z["wav"], "ab") as fh:  # size differs from the manifest, content still parses
        fh.write(b"\0" * 10)
    expected.add(("size_mismatch", str(z["wav"])))
    stray = x["mp4"].with_name(x["mp4"].name + ".part")
    stray.write_bytes(b"half a video")
    expected.add(("temp_file", str(stray)))

    report = fs.verify()
    assert _failing(report) == expected
    assert not report.ok and report.exit_code == 1
    by_path = {p.path: p for p in report.problems}
    assert "expected 'V00" in by_path[str(b["json"])].detail
    assert "moov" in by_path[str(z["mp4"])].detail
    assert "past the end" in by_path[str(y["wav"])].detail
    assert [p.file_id for p in report.by_kind("placeholder")] == sample_mirror.placeholder
    counts = report.counts()
    assert list(counts) == list(KINDS)
    assert (counts["corrupt"], counts["missing"], counts["size_mismatch"], counts["temp_file"]) == (5, 1, 1, 1)
    doc = json.loads(report.to_json())
    assert doc["ok"] is False and doc["counts"] == counts
    assert {(p["kind"], p["path"]) for p in doc["problems"] if p["kind"] in FAILING_KINDS} == expected
    text = report.summary()
    assert "5 corrupt" in text and "FAILED" in text and str(a["wav"]) in text


def test_repair_restores_tar_bytes_and_touches_nothing_else(tree, sample_mirror, sample_server):
    fs, cdn_ids = tree
    a, _ = (_paths(fs, f) for f in cdn_ids)
    x, y, z = (_paths(fs, f) for f in sample_mirror.archive_ids(*HUB_ARCHIVES[1]))
    with open(a["npz"], "r+b") as fh:
        fh.truncate(100)
    x["json"].write_bytes(b"{}")
    with open(y["wav"], "r+b") as fh:
        fh.truncate(500)
    _strip_moov(z["mp4"])
    z["npz"].unlink()
    stale = archive_dir(fs.local_dir, HUB_ARCHIVES[1]).parent / ".0001.extracting-999999999"
    stale.mkdir()
    bad = {a["npz"], x["json"], y["wav"], z["mp4"], z["npz"]}
    every = [p for p in fs.local_dir.rglob("*") if p.is_file() and ".seamless_interaction" not in p.parts]
    before = {p: p.stat().st_mtime_ns for p in every if p not in bad}

    sample_server.clear_requests()
    report = fs.verify(repair=True)
    assert report.ok, report.summary()
    assert {p.path for p in report.repaired} == {str(p) for p in bad} | {str(stale)}
    assert not stale.exists()
    assert [p.kind for p in report.problems] == ["placeholder"]
    # Byte-identical to the archives' members.
    for archive, ids in ((CDN_ARCHIVE, cdn_ids), (HUB_ARCHIVES[1], sample_mirror.archive_ids(*HUB_ARCHIVES[1]))):
        members = _tar_members(sample_mirror, archive)
        for fid in ids:
            for ext, path in _paths(fs, fid).items():
                assert path.read_bytes() == members[f"{fid}.{ext}"], path
    # Good files were not rewritten.
    assert {p: p.stat().st_mtime_ns for p in before} == before
    # Exactly the bad media came from the CDN, the bad npz/json from Range reads; no whole archive.
    gets = [r for r in sample_server.requests if r.method == "GET"]
    cdn_gets = sorted(r.path.rsplit("/", 1)[1] for r in gets if "/seamless_interaction/" in r.path)
    assert cdn_gets == sorted([y["wav"].name, z["mp4"].name])
    assert all(r.range for r in gets if r.path.endswith(".tar"))
    # The repaired files are in the manifest with their sizes.
    for p in bad:
        assert fs.manifest.get(p).size == p.stat().st_size


def test_placeholder_is_not_repaired(tree, sample_mirror, sample_server):
    fs, _ = tree
    sample_server.clear_requests()
    report = fs.verify(repair=True)
    assert report.ok and report.repaired == [] and [p.kind for p in report.problems] == ["placeholder"]
    assert [r for r in sample_server.requests if r.method == "GET"] == []


def test_absent_bundle_in_an_extracted_archive_is_refetched_by_the_cdn_route(tree, sample_mirror, sample_server):
    fs, _ = tree
    fid = sample_mirror.archive_ids(*HUB_ARCHIVES[0])[0]
    for p in _paths(fs, fid).values():
        p.unlink()
    report = fs.verify()
    [missing] = report.by_kind("missing")
    assert (missing.file_id, missing.path) == (fid, None)
    report = fs.verify(repair=True)
    assert report.ok and [p.file_id for p in report.repaired] == [fid]
    members = _tar_members(sample_mirror, HUB_ARCHIVES[0])
    assert all(p.read_bytes() == members[f"{fid}.{e}"] for e, p in _paths(fs, fid).items())


def test_explicit_scope_expects_every_bundle(tree, sample_mirror):
    fs, cdn_ids = tree
    report = fs.verify(label="improvised", split="dev", batch=0)
    assert sorted(report.archives) == [ArchiveRef("improvised", "dev", 0, 0), ArchiveRef("improvised", "dev", 0, 1)]
    third = sample_mirror.archive_ids(*CDN_ARCHIVE)[2]
    assert [(p.kind, p.file_id) for p in report.problems] == [("missing", third)]
    with pytest.raises(ValueError):
        fs.verify(batch=0)


def test_check_remote_reports_the_missing_archive_and_repair_falls_back_to_cdn(sample_mirror, make_fs, tmp_path):
    fs = make_fs(tmp_path / "data")
    fid = sample_mirror.missing_archive_ids[0]
    fs.download_batch_from_s3([fid])
    report = fs.verify(check_remote=True)
    [gone] = report.problems
    assert gone.kind == "missing_on_remote" and tuple(gone.archive) == tuple(sample_mirror.missing_archive)
    assert report.ok  # a gap of the remote, not of the local tree
    assert fs.verify().problems == []

    paths = _paths(fs, fid)
    good = paths["npz"].read_bytes()
    media = {e: paths[e].stat().st_mtime_ns for e in ("wav", "mp4")}
    paths["npz"].write_bytes(good[: len(good) // 3])
    # The Hub has no archive to read the member from: the CDN route assembles it in a scratch folder.
    report = fs.verify(repair=True)
    assert report.ok and [p.path for p in report.repaired] == [str(paths["npz"])]
    assert paths["npz"].read_bytes() == good
    assert {e: paths[e].stat().st_mtime_ns for e in ("wav", "mp4")} == media
    assert not (fs.local_dir / ".seamless_interaction" / f"repair-{os.getpid()}").exists()


def test_extra_archive_folder_and_deep_checksum(tree, sample_mirror):
    fs, cdn_ids = tree
    label, split, batch, arch = sample_mirror.extra_archive
    fs.download_archive_from_hf(arch, label=label, split=split, batch=batch)
    path = _paths(fs, cdn_ids[1])["json"]
    entry = fs.manifest.get(path)
    fs.manifest.record(path, entry.url, entry.size, "0" * 64)
    report = fs.verify()
    assert report.ok
    assert [tuple(p.archive) for p in report.by_kind("extra_archive")] == [tuple(sample_mirror.extra_archive)]
    deep = fs.verify(deep=True)
    assert _failing(deep) == {("checksum_mismatch", str(path))}


def test_mp4_checks(tmp_path, sample_mirror):
    fid = sample_mirror.archive_ids(*CDN_ARCHIVE)[0]
    src = sample_mirror.root / "cdn" / "improvised" / "dev" / "video" / f"{fid}.mp4"
    good = tmp_path / "good.mp4"
    good.write_bytes(src.read_bytes())
    assert check_mp4(good) == (None, False)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(src.read_bytes()[:-7])
    err, _ = check_mp4(cut)
    assert err and "truncated" in err
    ph = sample_mirror.placeholder[0]
    placeholder = sample_mirror.root / "cdn" / "improvised" / "test" / "video" / f"{ph}.mp4"
    assert placeholder.stat().st_size == 261 and check_mp4(placeholder) == (None, True)


def test_verify_without_catalog_filters_needs_no_network(tree, sample_server):
    fs, _ = tree
    sample_server.clear_requests()
    verify(fs.local_dir, fs.catalog, manifest=fs.manifest)
    assert sample_server.requests == []


# ------------------------------------------------------------------ what was asked for (issue 10, item 2)
def test_features_only_tree_is_clean_and_repair_fetches_nothing(sample_mirror, sample_server, make_fs, tmp_path):
    fs = make_fs(tmp_path / "data")
    fs.fetch_members(*HUB_ARCHIVES[1], modalities=("npz", "json"))
    ids = sample_mirror.archive_ids(*HUB_ARCHIVES[1])
    assert fs.manifest.requested() == {f: frozenset({"npz", "json"}) for f in ids}
    report = fs.verify()
    assert report.ok and report.problems == [] and report.files_checked == 2 * len(ids), report.summary()
    sample_server.clear_requests()
    assert fs.verify(repair=True).repaired == []
    assert [r for r in sample_server.requests if r.method == "GET"] == []
    # A requested file that goes away is missing, and only it is refetched (one Range read, no media).
    npz = _paths(fs, ids[0])["npz"]
    good = npz.read_bytes()
    npz.unlink()
    assert _failing(fs.verify()) == {("missing", str(npz))}
    sample_server.clear_requests()
    report = fs.verify(repair=True)
    assert report.ok and npz.read_bytes() == good
    gets = [r for r in sample_server.requests if r.method == "GET"]
    assert gets and all(r.path.endswith(".tar") and r.range for r in gets)
    assert not any(p.suffix in (".wav", ".mp4") for p in fs.local_dir.rglob("V*"))


def test_requests_accumulate_and_verify_only_narrows(sample_mirror, make_fs, tmp_path):
    fs = make_fs(tmp_path / "data")
    fid = sample_mirror.archive_ids(*HUB_ARCHIVES[1])[0]
    fs.fetch_file_id(fid, modalities=("npz",))
    fs.fetch_file_id(fid, modalities=("wav",))
    assert fs.manifest.requested() == {fid: frozenset({"npz", "wav"})}
    paths = _paths(fs, fid)
    paths["wav"].unlink()
    with open(paths["npz"], "r+b") as fh:
        fh.truncate(50)
    assert _failing(fs.verify()) == {("missing", str(paths["wav"])), ("corrupt", str(paths["npz"]))}
    assert _failing(fs.verify(only=("wav",))) == {("missing", str(paths["wav"]))}
    assert _failing(fs.verify(only=("npz", "json"))) == {("corrupt", str(paths["npz"]))}
    assert fs.verify(only=("mp4",)).problems == []


def test_a_request_whose_files_are_all_gone_is_missing(sample_mirror, make_fs, tmp_path):
    fs = make_fs(tmp_path / "data")
    fid = sample_mirror.archive_ids(*HUB_ARCHIVES[1])[0]
    fs.fetch_file_id(fid, modalities=("npz", "json"))
    folder = archive_dir(fs.local_dir, HUB_ARCHIVES[1])
    for p in folder.iterdir():
        p.unlink()
    folder.rmdir()
    [missing] = fs.verify().problems
    assert (missing.kind, missing.file_id, missing.path) == ("missing", fid, None)
    assert "json, npz" in missing.detail


@pytest.mark.parametrize("bad", ["nowhere", "a_file"])
def test_verify_of_a_folder_that_is_not_there_is_an_error(bad, mirror_config, tmp_path):
    (tmp_path / "a_file").write_text("x")
    # lazy: the official constructor would create the folder (and fail on a file) before verify runs.
    with SeamlessInteractionFS(mirror_config(tmp_path / bad), quiet=True, lazy=True) as fs:
        with pytest.raises(NotDownloadedError, match="does not exist" if bad == "nowhere" else "is a file"):
            fs.verify()
    assert not (tmp_path / "nowhere").exists()


def test_verify_of_a_batch_the_catalog_lacks_is_an_error(tree):
    fs, _ = tree
    with pytest.raises(InvalidIdError, match="batch 7 of improvised/dev is not in the catalog"):
        fs.verify(label="improvised", split="dev", batch=7)


# ------------------------------------------------------------------ sha256 in the manifest (issue 10, item 6)
def _poke(path: Path, seed: int = 0) -> None:
    """100 random bytes written over the middle of the file: same size, structure likely intact."""
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 100] = random.Random(seed).randbytes(100)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("route", ["cdn", "hub", "members"])
def test_deep_finds_100_random_bytes_in_an_mp4(route, sample_mirror, make_fs, tmp_path):
    fs = make_fs(tmp_path / "data")
    ref = HUB_ARCHIVES[1]
    fid = sample_mirror.archive_ids(*ref)[0]
    if route == "cdn":
        fs.gather_file_id_data_from_s3(fid)
    elif route == "hub":
        fs.download_archive_from_hf(ref.archive, label=ref.label, split=ref.split, batch=ref.batch)
    else:
        fs.fetch_file_id(fid, modalities=("json", "mp4", "npz", "wav"))
    # Every file written is recorded with the sha256 of its bytes.
    entries = fs.manifest.entries()
    for p in fs.local_dir.rglob("V*"):
        assert entries[p.relative_to(fs.local_dir).as_posix()].sha256 == sha256_file(p), p
    mp4 = _paths(fs, fid)["mp4"]
    _poke(mp4)
    assert all(p.kind != "checksum_mismatch" for p in fs.verify().problems)
    assert _failing(fs.verify(deep=True)) == {("checksum_mismatch", str(mp4))}
    report = fs.verify(deep=True, repair=True)
    assert report.ok and [p.path for p in report.repaired] == [str(mp4)]
    assert sha256_file(mp4) == fs.manifest.get(mp4).sha256
