import io
import os
import tarfile

import pytest

from seamless_interaction.base.ids import ArchiveRef
from seamless_interaction.local.archive import extraction_complete, safe_extract, write_extraction_record
from seamless_interaction.base.errors import IntegrityError, UnsafeArchiveError


def _tar(path, members):
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, kind in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            elif kind == "sym":
                info.type, info.linkname = tarfile.SYMTYPE, data
                tar.addfile(info)
            elif kind == "hard":
                info.type, info.linkname = tarfile.LNKTYPE, data
                tar.addfile(info)
            elif kind == "dev":
                info.type = tarfile.CHRTYPE
                tar.addfile(info)


def test_extracts_regular_files_and_keeps_other_files(tmp_path):
    _tar(tmp_path / "a.tar", [("x.json", b"{}", "file"), ("x.npz", b"1234", "file")])
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "other.wav").write_bytes(b"keep")
    members = safe_extract(tmp_path / "a.tar", dest)
    assert sorted(m.name for m in members) == ["x.json", "x.npz"]
    assert (dest / "x.npz").read_bytes() == b"1234"
    assert (dest / "other.wav").read_bytes() == b"keep"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # staging removed


@pytest.mark.parametrize("name,data,kind,reason", [
    ("../evil.txt", b"x", "file", "escape"),
    ("a/../../evil.txt", b"x", "file", "escape"),
    ("/etc/evil.txt", b"x", "file", "absolute"),
    ("link", "/etc/passwd", "sym", "link"),
    ("hard", "x.json", "hard", "link"),
    ("dev", None, "dev", "device"),
])
def test_unsafe_members_rejected_and_nothing_written(tmp_path, name, data, kind, reason):
    _tar(tmp_path / "a.tar", [("x.json", b"{}", "file"), (name, data, kind)])
    dest = tmp_path / "out"
    with pytest.raises(UnsafeArchiveError, match=reason):
        safe_extract(tmp_path / "a.tar", dest)
    assert not (dest / "x.json").exists()
    assert not (tmp_path / "evil.txt").exists() and not os.path.exists("/etc/evil.txt")


def test_truncated_tar_raises_and_writes_nothing(tmp_path):
    _tar(tmp_path / "a.tar", [("x.json", b"{}", "file"), ("x.mp4", os.urandom(100_000), "file")])
    data = (tmp_path / "a.tar").read_bytes()
    (tmp_path / "t.tar").write_bytes(data[: len(data) // 2])
    dest = tmp_path / "out"
    with pytest.raises(IntegrityError, match="t.tar"):
        safe_extract(tmp_path / "t.tar", dest)
    assert not dest.exists() or list(dest.iterdir()) == []


def test_completion_record_detects_missing_or_changed_files(tmp_path):
    _tar(tmp_path / "a.tar", [("x.json", b"{}", "file"), ("x.npz", b"1234", "file")])
    dest = tmp_path / "improvised" / "dev" / "0000" / "0001"
    assert not extraction_complete(tmp_path, dest, ArchiveRef("improvised", "dev", 0, 1))
    members = safe_extract(tmp_path / "a.tar", dest)
    write_extraction_record(tmp_path, ArchiveRef("improvised", "dev", 0, 1), members, "url", None)
    assert extraction_complete(tmp_path, dest, ArchiveRef("improvised", "dev", 0, 1))
    (dest / "x.npz").write_bytes(b"12")
    assert not extraction_complete(tmp_path, dest, ArchiveRef("improvised", "dev", 0, 1))
    (dest / "x.npz").unlink()
    assert not extraction_complete(tmp_path, dest, ArchiveRef("improvised", "dev", 0, 1))


def _mixed_tar(path, seed=0):
    """A PAX tar as WebDataset writes them, plus what a reader must pass over: a folder, a name seen
    twice, empty members, and a PAX record longer than Extraction's look-ahead."""
    import random

    rng = random.Random(seed)
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        folder = tarfile.TarInfo("sub")
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        for i in range(40):
            name = f"sub/V00_S{i:04d}_I00000001_P0001.{rng.choice(['npz', 'json', 'wav', 'mp4'])}" if i % 7 == 0 \
                else f"V00_S{i:04d}_I00000001_P0001.{rng.choice(['npz', 'json', 'wav', 'mp4'])}"
            data = rng.randbytes(rng.choice([0, 1, 511, 512, 513, 70_000, 300_000]))
            info = tarfile.TarInfo(name)
            info.size = len(data)
            if i == 20:
                info.pax_headers = {"comment": "x" * (100 << 10)}  # a header the walk must wait for
            tar.addfile(info, io.BytesIO(data))
        again = b"the later copy wins"
        info = tarfile.TarInfo("V00_S0001_I00000001_P0001.json")
        info.size = len(again)
        tar.addfile(info, io.BytesIO(again))


def _landing(tmp_path, data: bytes):
    """A file as a segmented download leaves it: full size from the start, zeros where nothing landed."""
    part = tmp_path / "a.tar.part"
    with open(part, "wb") as fh:
        fh.truncate(len(data))
    return part


def test_extraction_follows_a_growing_prefix_and_equals_safe_extract(tmp_path):
    import random

    from seamless_interaction.local.archive import Extraction

    _mixed_tar(tmp_path / "a.tar")
    data = (tmp_path / "a.tar").read_bytes()
    reference = {m.name: m for m in safe_extract(tmp_path / "a.tar", tmp_path / "ref")}
    part = _landing(tmp_path, data)
    dest = tmp_path / "out"
    ex = Extraction(part, dest)
    fd = os.open(part, os.O_RDWR)
    try:
        upto, rng, staged_midway = 0, random.Random(1), 0
        while upto < len(data):
            step = min(len(data) - upto, rng.choice([1, 100, 4096, 65_536]))
            os.pwrite(fd, data[upto:upto + step], upto)  # only the landed prefix holds the archive's bytes
            upto += step
            ex.advance(fd, upto)
            if upto < len(data) // 2:
                staged_midway = ex.staged_bytes
            assert not dest.exists()  # nothing placed before the commit
        assert staged_midway > 0  # members were extracted while the rest was still arriving
        members = ex.commit(fd)
    finally:
        os.close(fd)
    assert {m.name: (m.size, m.sha256) for m in members} == {n: (m.size, m.sha256) for n, m in reference.items()}
    for m in members:
        assert m.path.read_bytes() == reference[m.name].path.read_bytes(), m.name
    assert (dest / "V00_S0001_I00000001_P0001.json").read_bytes() == b"the later copy wins"
    assert [p for p in tmp_path.iterdir() if ".extracting-" in p.name] == []


def test_extraction_aborted_midway_leaves_nothing(tmp_path):
    from seamless_interaction.local.archive import Extraction

    _mixed_tar(tmp_path / "a.tar")
    dest = tmp_path / "out"
    ex = Extraction(tmp_path / "a.tar", dest)
    with open(tmp_path / "a.tar", "rb") as fh:
        ex.advance(fh.fileno(), os.path.getsize(tmp_path / "a.tar") // 2)
        assert ex.staged_bytes > 0
        ex.abort()
    assert not dest.exists() and [p for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_extraction_rejects_an_unsafe_member_while_following(tmp_path):
    from seamless_interaction.local.archive import Extraction

    _tar(tmp_path / "a.tar", [("x.json", b"{}", "file"), ("../evil.txt", b"x", "file")])
    ex = Extraction(tmp_path / "a.tar", tmp_path / "out")
    with open(tmp_path / "a.tar", "rb") as fh, pytest.raises(UnsafeArchiveError, match="escape"):
        ex.advance(fh.fileno(), os.path.getsize(tmp_path / "a.tar"), final=True)
    ex.abort()
    assert not (tmp_path / "out").exists() and not (tmp_path / "evil.txt").exists()
