"""Manifest: append-only JSON lines, later entries win, safe across processes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from seamless_interaction.local.manifest import MANIFEST_NAME, Manifest


def test_record_get_remove_and_reload(tmp_path):
    m = Manifest(tmp_path)
    assert m.get("a/b.wav") is None and m.entries() == {}
    m.record(tmp_path / "a" / "b.wav", "http://x/b.wav", 10, "0" * 64)
    m.record("a/c.npy", "http://x/c.npy", 3, "1" * 64)
    m.record("a/b.wav", "http://y/b.wav", 11, "2" * 64)  # later wins
    again = Manifest(tmp_path)
    entry = again.get(tmp_path / "a" / "b.wav")
    assert entry is not None and (entry.url, entry.size, entry.sha256) == ("http://y/b.wav", 11, "2" * 64)
    assert sorted(again.entries()) == ["a/b.wav", "a/c.npy"]
    m.remove("a/c.npy")
    assert again.get("a/c.npy") is None and sorted(again.entries()) == ["a/b.wav"]
    assert (tmp_path / MANIFEST_NAME).read_text().count("\n") == 4


def test_paths_outside_the_root_are_refused(tmp_path):
    m = Manifest(tmp_path / "root")
    assert not m.contains(tmp_path / "elsewhere")
    with pytest.raises(ValueError):
        m.record(tmp_path / "elsewhere", "u", 1, "0" * 64)
    with pytest.raises(ValueError):
        m.get("../x")


def test_torn_line_is_skipped_and_does_not_spoil_later_lines(tmp_path):
    m = Manifest(tmp_path)
    m.record("a", "u", 1, "0" * 64)
    with open(tmp_path / MANIFEST_NAME, "ab") as f:
        f.write(b'{"path": "b", "url": "u", "si')  # a writer killed mid-line
    m.record("c", "u", 3, "3" * 64)
    assert sorted(Manifest(tmp_path).entries()) == ["a", "c"]


def test_compact_keeps_live_entries(tmp_path):
    m = Manifest(tmp_path)
    for i in range(5):
        m.record("a", "u", i, f"{i}" * 64)
    m.record("b", "u", 1, "b" * 64)
    m.remove("b")
    m.compact()
    assert (tmp_path / MANIFEST_NAME).read_text().count("\n") == 1
    assert Manifest(tmp_path).get("a").size == 4  # type: ignore[union-attr]
    m.record("c", "u", 1, "c" * 64)
    assert sorted(m.entries()) == ["a", "c"]


def test_concurrent_processes_append_whole_lines(tmp_path):
    script = (
        "import sys; from seamless_interaction.local.manifest import Manifest\n"
        "m = Manifest(sys.argv[1])\n"
        "for i in range(200): m.record(f'{sys.argv[2]}/{i}', 'u' * 500, i, '0' * 64)\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path), f"p{k}"]) for k in range(3)]
    assert all(p.wait(timeout=30) == 0 for p in procs)
    entries = Manifest(tmp_path).entries()
    assert len(entries) == 600 and entries["p2/199"].size == 199


A, B = "V00_S0001_I00000001_P0001", "V00_S0001_I00000001_P0002A"


def test_requests_are_the_union_of_every_request_and_survive_reload_and_compact(tmp_path):
    m = Manifest(tmp_path)
    m.request([A, B], ("npz", "json"))
    m.request([A], ["wav"])
    m.request([A], ["npz"])  # already asked: no new line
    lines = (tmp_path / MANIFEST_NAME).read_text().count("\n")
    assert lines == 3
    want = {A: frozenset({"npz", "json", "wav"}), B: frozenset({"npz", "json"})}
    assert m.requested() == want and Manifest(tmp_path).requested() == want
    m.record(tmp_path / "x.npz", "u", 1, "a" * 64)
    m.compact()
    assert Manifest(tmp_path).requested() == want and Manifest(tmp_path).get("x.npz").sha256 == "a" * 64
    m.withdraw(A, ["wav"])
    m.withdraw(B)
    assert Manifest(tmp_path).requested() == {A: frozenset({"npz", "json"})}


@pytest.mark.parametrize("ids,mods", [(["V00_bad"], ["npz"]), ([A], ["exe"]), ([A], [])])
def test_requests_refuse_bad_ids_and_modalities(tmp_path, ids, mods):
    with pytest.raises(ValueError):
        Manifest(tmp_path).request(ids, mods)
    assert not (tmp_path / MANIFEST_NAME).exists()


def test_lines_of_older_versions_without_sha256_still_read(tmp_path):
    path = tmp_path / MANIFEST_NAME
    path.parent.mkdir(parents=True)
    path.write_text('{"path":"a.wav","url":"u","size":3,"sha256":null,"time":1}\n')
    entry = Manifest(tmp_path).get("a.wav")
    assert entry is not None and entry.sha256 is None and entry.size == 3


def test_record_file_hashes_what_is_on_disk(tmp_path):
    (tmp_path / "f.bin").write_bytes(b"abc")
    entry = Manifest(tmp_path).record_file(tmp_path / "f.bin", "u")
    assert (entry.size, entry.sha256) == (3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")


def test_works_where_fcntl_does_not_exist(tmp_path):
    """Windows has no fcntl: the manifest (and the transfer's locks) degrade to in-process locking."""
    code = f"""
import sys
sys.modules["fcntl"] = None  # makes `import fcntl` raise ImportError, as on Windows
from seamless_interaction.local import filelock
from seamless_interaction.local.manifest import Manifest
from seamless_interaction.remote.transfer import Transfer
assert not filelock.HAVE_FLOCK
m = Manifest({str(tmp_path)!r})
m.record("a/b.wav", "u", 1, None)
m.request(["{A}"], ["npz"])
m.compact()
print(Manifest({str(tmp_path)!r}).get("a/b.wav").size, sorted(m.requested()["{A}"]))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "['npz']"]
