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
