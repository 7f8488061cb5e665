"""Tar member indexes, local and over HTTP Range reads from a loopback server."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from seamless_interaction.base.errors import IntegrityError
from seamless_interaction.mirror import MirrorServer
from seamless_interaction.remote.tarindex import (
    BLOCK, DEFAULT_READAHEAD, TarIndex, index_cache_path, index_local, index_remote,
)
from seamless_interaction.remote.transfer import Transfer
from tarhelpers import ODD_MEMBERS, body_bytes, hub_dir, write_tar


def tar_listing(path: Path) -> list[tuple[str, int, int, int, str]]:
    with tarfile.open(path) as tar:
        return [(m.name, m.offset_data, m.size, m.offset, "0" if m.type == tarfile.AREGTYPE else m.type.decode())
                for m in tar.getmembers()]


def index_listing(index: TarIndex) -> list[tuple[str, int, int, int, str]]:
    return [(m.name, m.offset_data, m.size, m.header_offset, m.type) for m in index.members]




@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT])
def test_index_local_equals_tarfile(tmp_path: Path, fmt: int) -> None:
    ustar_ok = [m for m in ODD_MEMBERS if len(m[0]) < 100 and m[0].isascii()]
    members = ODD_MEMBERS if fmt != tarfile.USTAR_FORMAT else ustar_ok
    path = tmp_path / "a.tar"
    write_tar(path, members, fmt=fmt)
    index = index_local(path)
    assert index_listing(index) == tar_listing(path)
    assert index.total_size == path.stat().st_size


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT])
def test_index_remote_equals_tarfile_and_reads_only_headers(hub: MirrorServer, transfer: Transfer, fmt: int) -> None:
    path = hub_dir(hub) / "improvised/dev/0000/0000.tar"
    path.parent.mkdir(parents=True)
    big = [(f"V00_S0001_I00000001_P{i:04d}.mp4", 300_000 + i) for i in range(6)]
    write_tar(path, ODD_MEMBERS + big, fmt=fmt)
    index = index_remote(transfer, f"{hub.hf_url}/improvised/dev/0000/0000.tar")
    assert index_listing(index) == tar_listing(path)
    assert index.read_url == index.url  # the engine resolves it, once, for every read
    gets = [r for r in hub.requests if r.method == "GET"]
    # Resolved once (a HEAD that does not follow); every Range read goes to the redirect target.
    assert [r.method for r in hub.requests if "/resolve/" in r.path] == ["HEAD"]
    assert all(r.path.startswith("/lfs/") and r.range for r in gets)
    assert index.header_bytes == body_bytes(hub)
    assert body_bytes(hub) < 0.2 * path.stat().st_size
    # A big member's body is never read: at most read-ahead past each header.
    assert all(r.body_bytes <= DEFAULT_READAHEAD for r in gets)


def test_index_cache_built_once_and_invalidated_by_new_etag(hub: MirrorServer, transfer: Transfer,
                                                            tmp_path: Path) -> None:
    path = hub_dir(hub) / "a.tar"
    write_tar(path, ODD_MEMBERS, seed=1)
    url = f"{hub.hf_url}/a.tar"
    cache = tmp_path / "cache"
    first = index_remote(transfer, url, cache_dir=cache)
    assert index_cache_path(cache, url).is_file()
    hub.clear_requests()
    again = index_remote(transfer, url, cache_dir=cache)
    assert again == first
    # One resolve (HEAD, redirect not followed) checks the validator; no header is read again.
    assert [(r.method, "/resolve/" in r.path) for r in hub.requests] == [("HEAD", True)]

    write_tar(path, [("other.npz", 9_000)] + ODD_MEMBERS, seed=2)  # re-upload under the same name
    hub.clear_requests()
    changed = index_remote(transfer, url, cache_dir=cache)
    assert changed.validator != first.validator
    assert index_listing(changed) == tar_listing(path)
    assert any(r.method == "GET" for r in hub.requests)
    assert TarIndex.from_json(json.loads(index_cache_path(cache, url).read_text())) == changed


def test_truncated_remote_tar_names_url_and_member(hub: MirrorServer, transfer: Transfer) -> None:
    path = hub_dir(hub) / "t.tar"
    write_tar(path, [("a.json", 100), ("V00_S0001_I00000001_P0001.mp4", 50_000), ("c.npz", 10)])
    data = path.read_bytes()
    path.write_bytes(data[:30_000])
    url = f"{hub.hf_url}/t.tar"
    with pytest.raises(IntegrityError, match=r"t\.tar.*V00_S0001_I00000001_P0001\.mp4"):
        index_remote(transfer, url)


def test_cut_inside_a_header_is_an_integrity_error(tmp_path: Path) -> None:
    path = tmp_path / "t.tar"
    write_tar(path, [("a.json", 100), ("b.npz", 10)])
    path.write_bytes(path.read_bytes()[:BLOCK * 4 + 100])  # mid-way through the second member's PAX header
    with pytest.raises(IntegrityError, match="truncated"):
        index_local(path)


def test_not_a_tar_is_an_integrity_error(tmp_path: Path) -> None:
    path = tmp_path / "x.tar"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(IntegrityError, match="checksum"):
        index_local(path)


def test_base256_size_field(tmp_path: Path) -> None:
    # GNU tar writes sizes >= 8 GiB in base-256; a header alone is enough to check we read it.
    info = tarfile.TarInfo("huge.mp4")
    info.size = 9 * 1024**3
    header = info.tobuf(tarfile.GNU_FORMAT)
    path = tmp_path / "huge.tar"
    path.write_bytes(header + b"\0" * 4096)
    with pytest.raises(IntegrityError, match=r"huge\.mp4"):  # its body would run past the end
        index_local(path)


def test_global_pax_header_applies_to_following_members(tmp_path: Path) -> None:
    path = tmp_path / "g.tar"
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT, pax_headers={"comment": "x"}) as tar:
        for name, size in [("a.npz", 10), ("b.json", 700)]:
            info = tarfile.TarInfo(name)
            info.size = size
            tar.addfile(info, io.BytesIO(b"z" * size))
    assert index_listing(index_local(path)) == tar_listing(path)
