"""What the download routes write: modes that honour the umask, sha256s in the manifest, no double work."""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from seamless_interaction.base.config import DatasetConfig
from seamless_interaction.fs import SeamlessInteractionFS
from seamless_interaction.local.manifest import Manifest
from seamless_interaction.mirror import MirrorInfo, MirrorServer


@pytest.fixture
def umask_002() -> Iterator[None]:
    old = os.umask(0o002)  # a shared dataset folder: group-writable files
    try:
        yield
    finally:
        os.umask(old)


def _fs(srv: MirrorServer, local: Path, cache: Path) -> SeamlessInteractionFS:
    cfg = DatasetConfig(local_dir=local, cdn_url=srv.cdn_url, hf_url=srv.hf_url, assets=srv.assets_url,
                        cache_dir=cache)
    return SeamlessInteractionFS(cfg, quiet=True)


def _archives(mirror: MirrorInfo) -> list[tuple[str, str, int, int]]:
    return [a for a in mirror.archives if a != mirror.missing_archive]


def test_range_read_members_and_cdn_files_honour_the_umask_and_record_sha256(
        sample_mirror, sample_server, tmp_path, umask_002):
    local = tmp_path / "d"
    with _fs(sample_server, local, tmp_path / "c") as fs:
        members = fs.fetch_members(*_archives(sample_mirror)[0])
        manifest = Manifest(local)
        for p in members:
            entry = manifest.get(p)
            assert entry is not None and entry.sha256 == hashlib.sha256(p.read_bytes()).hexdigest()
            assert entry.size == p.stat().st_size
        fid = sample_mirror.movement[0]
        fs.download_batch_from_s3([fid])
    cdn = [p for p in local.rglob(f"{fid}*") if p.is_file() and p not in members]
    assert members and cdn
    for p in members + cdn:
        assert stat.S_IMODE(p.stat().st_mode) == 0o664, p  # 0666 less the umask, as any new file


def test_two_identical_downloads_at_once_transfer_the_bytes_once(sample_mirror, tmp_path):
    ref = _archives(sample_mirror)[0]
    size = (sample_mirror.root / "hub" / f"{ref[0]}/{ref[1]}/{ref[2]:04d}/{ref[3]:04d}.tar").stat().st_size
    with MirrorServer(sample_mirror.root, bandwidth_bps=4 * size) as srv:  # ~0.25 s each: they overlap
        start = threading.Barrier(2)
        results: list[object] = []

        def run(i: int) -> None:
            with _fs(srv, tmp_path / "d", tmp_path / f"c{i}") as fs:
                start.wait()
                results.append(fs.download_archive_from_hf(ref[3], label=ref[0], split=ref[1], batch=ref[2]))

        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        tar_bytes = sum(r.body_bytes for r in srv.requests if r.path.startswith("/lfs/"))
    assert len(results) == 2 and all(ok for ok, _ in results)  # type: ignore[misc]
    assert tar_bytes == size  # the second found the first's work after the lock


def test_two_identical_member_fetches_at_once_read_the_ranges_once(sample_mirror, tmp_path):
    ref = _archives(sample_mirror)[1]
    with MirrorServer(sample_mirror.root, bandwidth_bps=200_000) as srv:
        start = threading.Barrier(2)
        got: list[list[Path]] = []

        def run(i: int) -> None:
            with _fs(srv, tmp_path / "d", tmp_path / f"c{i}") as fs:
                start.wait()
                got.append(fs.fetch_members(*ref, modalities=("npz",)))

        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        gets = [r for r in srv.requests if r.path.startswith("/lfs/") and r.method == "GET" and r.range]
    assert len(got) == 2 and got[0] == got[1] and all(p.is_file() for p in got[0])
    tar = sample_mirror.root / "hub" / f"{ref[0]}/{ref[1]}/{ref[2]:04d}/{ref[3]:04d}.tar"
    with tarfile.open(tar) as t:
        data_offsets = {m.offset_data for m in t.getmembers() if m.name.endswith(".npz")}
    # Member reads start at a member's data; index reads at headers. Each member range went out once.
    starts = [int(r.range.removeprefix("bytes=").split("-")[0]) for r in gets]
    member_starts = [s for s in starts if s in data_offsets]
    assert member_starts and len(member_starts) == len(set(member_starts))
