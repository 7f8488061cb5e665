"""The Hub route over several archives at once: extracted as the tars say, verified, resumable."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import time
from pathlib import Path

import pytest

from seamless_interaction.base.errors import IntegrityError
from seamless_interaction.base.ids import ArchiveRef
from seamless_interaction.local.archive import read_extraction_record
from seamless_interaction.local.layout import archive_dir
from seamless_interaction.mirror import MirrorInfo, MirrorServer
from seamless_interaction.remote.transfer import Transfer
from seamless_interaction.routes.hub import download_archives


def _archives(info: MirrorInfo) -> list[tuple[str, str, int, int]]:
    return sorted(a for a in info.archives if a != info.missing_archive)


def _tar(root: Path, ref: tuple[str, str, int, int]) -> Path:
    label, split, batch, archive = ref
    return root / "hub" / label / split / f"{batch:04d}" / f"{archive:04d}.tar"


def test_download_archives_extracts_each_archive_as_its_tar(sample_mirror, sample_server, tmp_path):
    refs = _archives(sample_mirror)[:3]
    done = []
    with Transfer(max_connections=6, segment_bytes=64 << 10) as t:
        results = download_archives(t, sample_server.hf_url, tmp_path, refs, on_done=done.append)
    assert [(r.label, r.split, r.batch, r.archive) for r in results] == refs
    assert sorted((r.label, r.split, r.batch, r.archive) for r in done) == refs
    for ref, res in zip(refs, results):
        dest = archive_dir(tmp_path, ArchiveRef(*ref))
        assert res.path == dest and not res.skipped
        assert not dest.with_suffix(".tar").exists() and not (dest.parent / f"{ref[3]:04d}.tar").exists()
        with tarfile.open(_tar(sample_mirror.root, ref)) as tf:
            members = [m for m in tf.getmembers() if m.isfile()]
            assert sorted(p.name for p in dest.iterdir()) == sorted(m.name for m in members)
            for m in members:
                assert (dest / m.name).read_bytes() == tf.extractfile(m).read(), m.name
        record = read_extraction_record(tmp_path, ArchiveRef(*ref))
        assert record is not None and record["sha256"] == sample_server.sha256(_tar(sample_mirror.root, ref))
    assert not list(tmp_path.rglob("*.part")) and not list(tmp_path.rglob(".*extracting*"))

    # A second run finds every archive complete and asks the Hub for nothing.
    sample_server.clear_requests()
    with Transfer(max_connections=6) as t:
        again = download_archives(t, sample_server.hf_url, tmp_path, refs)
    assert all(r.skipped for r in again)
    assert not [r for r in sample_server.requests if r.method == "GET" and "/lfs/" in r.path]


def test_download_archives_refuses_an_archive_that_fails_its_sha256(sample_mirror, tmp_path):
    root = tmp_path / "mirror"
    shutil.copytree(sample_mirror.root, root)
    good, bad = _archives(sample_mirror)[:2]
    with MirrorServer(root) as srv:
        path = _tar(root, bad)
        expected = srv.sha256(path)  # the Hub's ETag is computed now and cached per (size, mtime)
        st = path.stat()
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert srv.sha256(path) == expected  # the server still announces the old sha256
        local = tmp_path / "local"
        with Transfer(max_connections=4) as t, pytest.raises(IntegrityError, match="sha256"):
            download_archives(t, srv.hf_url, local, [good, bad])
    bad_ref = ArchiveRef(*bad)
    assert not archive_dir(local, bad_ref).exists() and read_extraction_record(local, bad_ref) is None
    assert not list(local.rglob(".*extracting*"))  # what was extracted while it downloaded is gone
    assert not list(local.rglob(f"{bad[3]:04d}.tar"))


def _two_versions(tmp_path: Path) -> tuple[bytes, bytes]:
    """Two tars with the same members and sizes but other bytes: a remote file that changed."""
    out = []
    for version in (b"A", b"B"):
        path = tmp_path / f"{version.decode()}.tar"
        with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
            for i in range(30):
                info = tarfile.TarInfo(f"V00_S{i:04d}_I00000001_P0001.npz")
                data = version * (50_000 + i)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        out.append(path.read_bytes())
    return out[0], out[1]


def _wait_staged(follower, n: int) -> None:
    deadline = time.monotonic() + 10
    while len(follower.extraction._staged) < n:
        assert time.monotonic() < deadline, "the follower staged nothing"
        time.sleep(0.01)


@pytest.mark.parametrize("how", ["same file rewritten", "new file"])
def test_follower_never_places_bytes_of_a_download_that_started_over(tmp_path, how):
    """What was extracted while downloading is dropped when the download starts over, whether the engine
    rewrote its part in place (a smaller watch) or replaced the file (seen at the end)."""
    from seamless_interaction.local.layout import part_path
    from seamless_interaction.routes.hub import _Follower

    old, new = _two_versions(tmp_path)
    tar_path, dest = tmp_path / "local" / "0000.tar", tmp_path / "local" / "0000"
    tar_path.parent.mkdir()
    part = part_path(tar_path)
    part.write_bytes(old)
    follower = _Follower(tar_path, dest)
    follower.watch(len(old))
    _wait_staged(follower, 10)
    if how == "same file rewritten":
        with open(part, "r+b") as fh:
            fh.write(new)
        follower.watch(0)
        follower.watch(len(new))
    else:
        part.unlink()
        part.write_bytes(new)
        follower.watch(len(new))
    os.replace(part, tar_path)
    members = follower.finish()
    assert len(members) == 30
    for m in members:
        assert set(m.path.read_bytes()) == {ord("B")}, m.name
    assert not [p for p in tar_path.parent.iterdir() if ".extracting-" in p.name]


@pytest.mark.parametrize("how", ["one", "several"])
def test_archives_are_extracted_while_they_download(sample_mirror, tmp_path, monkeypatch, how):
    """On a slow link most of each archive is staged before its last byte lands; what lands is the tar."""
    from seamless_interaction.local.archive import Extraction
    from seamless_interaction.routes.hub import download_archive

    staged_at_commit: list[tuple[int, int]] = []
    commit = Extraction.commit

    def spy(self, fd):
        staged_at_commit.append((self.staged_bytes, os.fstat(fd).st_size))
        return commit(self, fd)

    monkeypatch.setattr(Extraction, "commit", spy)
    refs = [r for r in _archives(sample_mirror) if _tar(sample_mirror.root, r).stat().st_size > 500_000][:2]
    with MirrorServer(sample_mirror.root, bandwidth_bps=1_000_000) as srv, Transfer(max_connections=2) as t:
        if how == "one":
            download_archive(t, srv.hf_url, tmp_path, *refs[0])
            refs = refs[:1]
        else:
            download_archives(t, srv.hf_url, tmp_path, refs)
    assert len(staged_at_commit) == len(refs)
    for staged, size in staged_at_commit:
        assert staged > size // 2, (staged, size)
    for ref in refs:
        with tarfile.open(_tar(sample_mirror.root, ref)) as tf:
            for m in (m for m in tf.getmembers() if m.isfile()):
                assert (archive_dir(tmp_path, ArchiveRef(*ref)) / m.name).read_bytes() == tf.extractfile(m).read()
