"""Planning and fetching selected tar members with merged HTTP Range reads, over a loopback server."""

from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path

import pytest
from tarhelpers import body_bytes, hub_dir, write_tar  # shared with the index tests

from seamless_interaction.catalog.tables import Catalog
from seamless_interaction.base.errors import IntegrityError, MissingPartError, TransferError, UnsafeArchiveError
from seamless_interaction.base.ids import ArchiveRef
from seamless_interaction.local.layout import archive_dir
from seamless_interaction.local.manifest import Manifest, sha256_file
from seamless_interaction.mirror import MirrorServer
from seamless_interaction.routes.members import (
    fetch_archive_members, fetch_file_ids, fetch_members, plan_bytes, plan_members, plan_ranges,
)
from seamless_interaction.remote.tarindex import TarIndex, TarMember, index_local, index_remote
from seamless_interaction.remote.transfer import Transfer

IDS_A = ["V00_S0809_I00000309_P0947", "V00_S0809_I00000582_P0947", "V01_S0002_I00000007_P0001A"]
IDS_B = ["V00_S0809_I00000309_P0383", "V00_S0809_I00000582_P0383"]


def sample_members(file_ids: list[str], scale: int = 1) -> list[tuple[str, int]]:
    """WebDataset sample order (json, mp4, npz, wav) with the corpus' proportions, scaled down, odd sizes."""
    out = []
    for i, fid in enumerate(file_ids):
        out += [(f"{fid}.json", 301 + 7 * i), (f"{fid}.mp4", scale * 90_001 + i),
                (f"{fid}.npz", scale * 9_999 + 3 * i), (f"{fid}.wav", scale * 28_003 + i)]
    return out


@pytest.fixture
def archives(hub: MirrorServer) -> dict[str, bytes]:
    """improvised/dev/0000/0000 holds IDS_A, .../0001 holds IDS_B (partners split across archives)."""
    contents = {}
    for archive, ids in ((0, IDS_A), (1, IDS_B)):
        path = hub_dir(hub) / "improvised" / "dev" / "0000" / f"{archive:04d}.tar"
        path.parent.mkdir(parents=True, exist_ok=True)
        contents.update(write_tar(path, sample_members(ids), seed=archive))
    return contents


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    path = tmp_path / "filelist.csv"
    rows = [f"{fid},improvised,dev,0,{a},1,0,0" for a, ids in ((0, IDS_A), (1, IDS_B)) for fid in ids]
    path.write_text("file_id,label,split,batch_idx,archive_idx,has_imitator_movement,has_annotation_1p,"
                    "has_annotation_3p\n" + "\n".join(rows) + "\n")
    return Catalog.from_paths({"filelist": path})


def _member(name: str, offset: int, size: int) -> TarMember:
    return TarMember(name, offset, size, offset - 1536)


def test_plan_members_selects_ids_and_modalities_in_archive_order(tmp_path: Path) -> None:
    path = tmp_path / "a.tar"
    write_tar(path, sample_members(IDS_A))
    index = index_local(path)
    chosen = plan_members(index, [IDS_A[2], IDS_A[0]], ("npz", "json"))
    assert [m.name for m in chosen] == [f"{IDS_A[0]}.json", f"{IDS_A[0]}.npz", f"{IDS_A[2]}.json", f"{IDS_A[2]}.npz"]
    assert len(plan_members(index)) == 2 * len(IDS_A)
    assert [m.name for m in plan_members(index, None, ("wav",))] == [f"{f}.wav" for f in IDS_A]
    with pytest.raises(ValueError, match="modalities"):
        plan_members(index, None, ("npy",))
    with pytest.raises(MissingPartError, match=IDS_B[0]):
        plan_members(index, [IDS_B[0]])


def test_plan_ranges_merges_neighbours_and_chunks_big_members() -> None:
    a, b = _member("a.json", 1536, 300), _member("b.npz", 4096, 10_000)  # 1.5 KB apart: merged
    far = _member("c.npz", 4096 + 10_000 + 200_000, 50)  # 200 KB gap: its own request
    big = _member("d.mp4", 1_000_000, 40)
    empty = _member("e.txt", 2_000_000, 0)
    ranges = plan_ranges([far, b, a, big, empty], max_gap=64 * 1024, max_span=16)
    # max_span=16 forces chunking of every member bigger than 16 bytes and stops merges: check both paths.
    assert all(r.size <= 16 for r in ranges)
    ranges = plan_ranges([far, b, a, big, empty], max_gap=64 * 1024)
    assert [(r.start, r.end, [m.name for m in r.members]) for r in ranges] == [
        (1536, 14_096, ["a.json", "b.npz"]), (far.offset_data, far.end, ["c.npz"]), (1_000_000, 1_000_040, ["d.mp4"]),
    ]
    chunks = plan_ranges([_member("v.mp4", 512, 100)], max_span=30)
    assert [(r.start, r.end) for r in chunks] == [(512, 542), (542, 572), (572, 602), (602, 612)]


def test_fetch_members_is_byte_identical_and_transfers_only_selected_bytes(
    hub: MirrorServer, transfer: Transfer, archives: dict[str, bytes], tmp_path: Path
) -> None:
    url = f"{hub.hf_url}/improvised/dev/0000/0000.tar"
    index = index_remote(transfer, url)
    index_bytes = body_bytes(hub)
    chosen = plan_members(index, None, ("npz", "json"))
    selected = sum(m.size for m in chosen)
    dest = tmp_path / "out"
    paths = fetch_members(transfer, url, index, dest, chosen)
    assert [p.name for p in paths] == [m.name for m in chosen]
    for p in paths:
        assert p.read_bytes() == archives[p.name]
    assert sorted(p.name for p in dest.iterdir()) == sorted(m.name for m in chosen)  # no temp files left
    total = body_bytes(hub)
    assert total <= 1.05 * selected + index_bytes
    whole = (hub_dir(hub) / "improvised/dev/0000/0000.tar").stat().st_size
    assert total - index_bytes < 0.1 * whole  # npz+json are ~8% of this archive

    hub.clear_requests()  # complete members are not fetched again
    assert fetch_members(transfer, url, index, dest, chosen) == paths
    assert not [r for r in hub.requests if r.method == "GET"]


def test_adjacent_members_share_one_request(hub: MirrorServer, transfer: Transfer, tmp_path: Path) -> None:
    path = hub_dir(hub) / "small.tar"
    contents = write_tar(path, [(f"m{i}.npz", 1000 + i) for i in range(20)] + [("far.npz", 100_000)])
    url = f"{hub.hf_url}/small.tar"
    index = index_remote(transfer, url)
    hub.clear_requests()
    chosen = [m for m in index.members if m.name != "far.npz"]
    for p in fetch_members(transfer, url, index, tmp_path, chosen):
        assert p.read_bytes() == contents[p.name]
    gets = [r for r in hub.requests if r.method == "GET"]
    assert len(gets) == 1
    assert gets[0].body_bytes == chosen[-1].end - chosen[0].offset_data  # members plus the headers between them


def test_big_member_is_fetched_in_concurrent_chunks(hub: MirrorServer, transfer: Transfer, tmp_path: Path) -> None:
    path = hub_dir(hub) / "big.tar"
    contents = write_tar(path, [("V00_S0001_I00000001_P0001.mp4", 1_000_003)])
    url = f"{hub.hf_url}/big.tar"
    index = index_remote(transfer, url)
    hub.clear_requests()
    [p] = fetch_members(transfer, url, index, tmp_path, index.files(), max_span=100_000)
    assert p.read_bytes() == contents[p.name]
    assert len([r for r in hub.requests if r.method == "GET"]) == 11


def test_members_are_recorded_with_the_sha256_of_their_bytes_even_when_chunks_race(
    hub: MirrorServer, transfer: Transfer, tmp_path: Path
) -> None:
    path = hub_dir(hub) / "big.tar"
    contents = write_tar(path, [("V00_S0001_I00000001_P0001.json", 301), ("V00_S0001_I00000001_P0001.mp4", 1_000_003),
                                ("V00_S0001_I00000001_P0001.npz", 0)])
    url = f"{hub.hf_url}/big.tar"
    index = index_remote(transfer, url)
    local = tmp_path / "local"
    manifest = Manifest(local)
    paths = fetch_members(transfer, url, index, local, index.files(), max_span=30_000, max_workers=8,
                          manifest=manifest)
    for p in paths:
        entry = manifest.get(p)
        assert entry is not None and entry.url == f"{url}#{p.name}" and entry.size == len(contents[p.name])
        assert entry.sha256 == hashlib.sha256(contents[p.name]).hexdigest() == sha256_file(p)


def test_remote_changed_since_indexing_fails_cleanly(hub: MirrorServer, transfer: Transfer,
                                                     archives: dict[str, bytes], tmp_path: Path) -> None:
    url = f"{hub.hf_url}/improvised/dev/0000/0000.tar"
    index = index_remote(transfer, url)
    path = hub_dir(hub) / "improvised/dev/0000/0000.tar"
    path.write_bytes(path.read_bytes()[:index.members[-1].offset_data + 10])  # truncated re-upload
    dest = tmp_path / "out"
    with pytest.raises(IntegrityError, match=r"0000\.tar.*changed since it was indexed"):
        fetch_members(transfer, url, index, dest, plan_members(index))
    assert not dest.exists() or not any(dest.iterdir())
    with pytest.raises(IntegrityError, match=r"0000\.tar.*" + IDS_A[-1]):  # re-indexing names the cut member
        index_remote(transfer, url)


def test_failed_range_keeps_completed_members_and_no_temp_files(
    hub: MirrorServer, archives: dict[str, bytes], tmp_path: Path
) -> None:
    url = f"{hub.hf_url}/improvised/dev/0000/0000.tar"
    with Transfer(retries=0) as transfer:
        index = index_remote(transfer, url)
        chosen = plan_members(index, None, ("npz",))
        gone = TarMember(f"{IDS_A[0]}.wav", index.total_size + 10_000, 100, index.total_size)  # past the end
        dest = tmp_path / "out"
        with pytest.raises(TransferError):
            fetch_members(transfer, url, index, dest, chosen + [gone], max_workers=1)
    names = sorted(p.name for p in dest.iterdir())
    assert names == sorted(m.name for m in chosen)  # the good members arrived; nothing half-written
    assert all((dest / m.name).read_bytes() == archives[m.name] for m in chosen)


def test_unsafe_member_name_is_refused(tmp_path: Path, transfer: Transfer) -> None:
    index = TarIndex([_member("../evil.npz", 2048, 10)], 4096, "size:4096", "http://x/a.tar")
    with pytest.raises(UnsafeArchiveError, match="evil"):
        fetch_members(transfer, "http://x/a.tar", index, tmp_path, index.members)


def test_fetch_file_ids_uses_the_catalog_and_the_layout(
    hub: MirrorServer, transfer: Transfer, archives: dict[str, bytes], catalog: Catalog, tmp_path: Path
) -> None:
    local, cache = tmp_path / "local", tmp_path / "cache"
    pair = catalog.interaction_file_ids("V00_S0809_I00000309")
    assert sorted(pair) == sorted([IDS_A[0], IDS_B[0]])  # partners in archives 0 and 1
    paths = fetch_file_ids(transfer, catalog, hub.hf_url, local, pair, ("npz",), cache_dir=cache)
    assert sorted(paths) == sorted([archive_dir(local, ArchiveRef("improvised", "dev", 0, 0)) / f"{IDS_A[0]}.npz",
                                    archive_dir(local, ArchiveRef("improvised", "dev", 0, 1)) / f"{IDS_B[0]}.npz"])
    for p in paths:
        assert p.read_bytes() == archives[p.name]

    paths = fetch_archive_members(transfer, catalog, hub.hf_url, local, "improvised", "dev", 0, 1,
                                  modalities=("json", "wav"), cache_dir=cache)
    assert {p.name for p in paths} == {f"{f}.{e}" for f in IDS_B for e in ("json", "wav")}
    assert all(p.read_bytes() == archives[p.name] for p in paths)


def test_plan_bytes_counts_selected_and_whole_archives(
    hub: MirrorServer, transfer: Transfer, archives: dict[str, bytes], catalog: Catalog, tmp_path: Path
) -> None:
    tars = [hub_dir(hub) / f"improvised/dev/0000/000{a}.tar" for a in (0, 1)]
    whole = sum(t.stat().st_size for t in tars)
    with tarfile.open(tars[0]) as t0, tarfile.open(tars[1]) as t1:
        npz_json = sum(m.size for t in (t0, t1) for m in t.getmembers() if m.name.endswith((".npz", ".json")))
    refs = [("improvised", "dev", 0, 0), ("improvised", "dev", 0, 1)]
    assert plan_bytes(transfer, catalog, hub.hf_url, archives=refs) == (npz_json, whole)
    one = len(archives[f"{IDS_A[1]}.npz"])
    got = plan_bytes(transfer, catalog, hub.hf_url, file_ids=[IDS_A[1]], modalities=("npz",))
    assert got == (one, tars[0].stat().st_size)
    local = tmp_path / "local"
    fetch_file_ids(transfer, catalog, hub.hf_url, local, [IDS_A[1]], ("npz",))
    assert plan_bytes(transfer, catalog, hub.hf_url, file_ids=[IDS_A[1]], modalities=("npz",), local_dir=local)[0] == 0


def test_member_digest_reads_back_what_arrived_out_of_order(tmp_path: Path) -> None:
    from seamless_interaction.routes.members import _Digest

    data = bytes(range(256)) * 40
    tmp = tmp_path / "m.part"
    tmp.write_bytes(data)
    d = _Digest()
    d.feed(memoryview(data)[5000:7000], 5000)  # ahead of the cursor: read back later
    d.feed(memoryview(data)[:3000], 0)
    d.feed(memoryview(data)[3000:5000], 3000)
    assert d.finish(str(tmp), len(data)) == hashlib.sha256(data).hexdigest()
