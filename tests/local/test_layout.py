"""The local layout: one place for every path and temp name, and the proof that a write stays inside the root."""

from __future__ import annotations

import os

import pytest

from seamless_interaction.base.errors import UnsafePathError
from seamless_interaction.base.ids import ArchiveRef
from seamless_interaction.local import layout

REF = ArchiveRef("improvised", "dev", 3, 12)
FID = "V00_S0644_I00000125_P0299A"


def test_final_paths(tmp_path):
    assert layout.archive_dir(tmp_path, REF) == tmp_path / "improvised/dev/0003/0012"
    assert layout.bundle_paths(tmp_path, REF, FID)["npz"] == tmp_path / f"improvised/dev/0003/0012/{FID}.npz"
    assert layout.tar_path(tmp_path, REF) == tmp_path / "improvised/dev/0003/0012.tar"
    record = tmp_path / ".seamless_interaction/archives/improvised/dev/0003/0012.json"
    assert layout.extraction_record(tmp_path, REF) == record
    with pytest.raises(ValueError):
        layout.bundle_paths(tmp_path, REF, "../../etc/passwd")


def test_inside_refuses_dotdot_and_symlinks_out(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    assert layout.inside(root, root / "a/b") == root / "a/b"
    assert layout.inside(root, "a/b") == root / "a/b"
    with pytest.raises(UnsafePathError, match="not inside"):
        layout.inside(root, root / "improvised/../../x")
    with pytest.raises(UnsafePathError):
        layout.inside(root, tmp_path / "elsewhere")
    (tmp_path / "outside").mkdir()
    os.symlink(tmp_path / "outside", root / "improvised")
    with pytest.raises(UnsafePathError, match="resolves to"):
        layout.make_archive_dir(root, REF)
    assert not (tmp_path / "outside" / "dev").exists()
    # A symlinked root itself is fine: both sides resolve the same way.
    os.symlink(root, tmp_path / "alias")
    (root / "improvised").unlink()
    assert layout.make_archive_dir(tmp_path / "alias", REF).is_dir()


@pytest.mark.parametrize("name", ["", ".", "..", "../x.npz", "a/b.npz", ".hidden.npz", "a\\b", "x\x00.npz"])
def test_member_names_must_be_plain(tmp_path, name):
    with pytest.raises(UnsafePathError):
        layout.member_path(tmp_path, name)


def test_temp_names_are_recognised_by_what_makes_them(tmp_path):
    dest = tmp_path / f"{FID}.mp4"
    made = [layout.part_path(dest), layout.sidecar_path(dest), layout.lock_path(dest),
            layout.staging_dir(tmp_path, FID, "cdn"), layout.quarantine_path(dest),
            layout.staging_dir(tmp_path, "0012", "extracting")]
    assert all(layout.is_temp_name(p.name) for p in made)
    assert not layout.is_temp_name(dest.name) and not layout.is_temp_name("0012")
    assert layout.staging_pid(layout.quarantine_path(dest).name) == os.getpid()
    assert layout.owner_lock(layout.sidecar_path(dest)) == layout.lock_path(dest)
    assert layout.owner_lock(dest) is None
    with pytest.raises(ValueError):
        layout.staging_dir(tmp_path, FID, "x")


def test_archive_refs_finds_layout_folders_and_records_only(tmp_path):
    layout.make_archive_dir(tmp_path, REF)
    (tmp_path / "improvised/dev/0003/notes").mkdir()
    (tmp_path / "improvised/../x").mkdir(exist_ok=True)
    (tmp_path / "improvised/dev/0003/0013.tar.part").write_bytes(b"")
    rec = layout.extraction_record(tmp_path, ArchiveRef("naturalistic", "test", 0, 1))
    rec.parent.mkdir(parents=True)
    rec.write_text("{}")
    refs, temps = layout.archive_refs(tmp_path)
    assert refs == {REF, ArchiveRef("naturalistic", "test", 0, 1)}
    assert [t.name for t in temps] == ["0013.tar.part"]
    assert layout.archive_refs(tmp_path, label="naturalistic")[0] == {ArchiveRef("naturalistic", "test", 0, 1)}
