"""One test per transfer fault: the final file is byte-identical, or a clear error leaves nothing at dest."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from faultserver import Fault
from seamless_interaction.base.errors import (
    InsufficientSpaceError, IntegrityError, MissingPartError, TransferError,
)
from seamless_interaction.local.manifest import Manifest

MB = 1 << 20


def _range_start(rec) -> int | None:  # type: ignore[no-untyped-def]
    value = rec.headers.get("range")
    return int(value.split("=")[1].split("-")[0]) if value else None


def _nothing_at(dest: Path) -> None:
    assert not dest.exists(), f"{dest} should not exist after a failed fetch"


# -- network faults ------------------------------------------------------------------------------


def test_dropped_connection_resumes_with_range(server, make_transfer, payload, tmp_path):
    data = payload(MB)
    server.add("/f.bin", data, faults=[Fault.drop(after=300_000)])
    dest = tmp_path / "f.bin"
    res = make_transfer().fetch(server.url("/f.bin"), dest)
    assert dest.read_bytes() == data
    assert res is not None and res.sha256 == hashlib.sha256(data).hexdigest()
    gets = server.requests("/f.bin")
    assert [_range_start(r) for r in gets] == [0, 300_000]  # the retry asked only for the rest
    assert gets[1].sent == len(data) - 300_000
    assert not list(tmp_path.glob("*.part*")) and not list(tmp_path.glob("*.lock"))


def test_503_storm_then_recovery(server, make_transfer, payload, tmp_path):
    data = payload(100_000)
    server.add("/f.bin", data, faults=[Fault.status(503)] * 4)
    dest = tmp_path / "f.bin"
    make_transfer(retries=5).fetch(server.url("/f.bin"), dest)
    assert dest.read_bytes() == data
    assert len(server.requests("/f.bin")) == 5


def test_503_storm_gives_up_naming_the_url(server, make_transfer, payload, tmp_path):
    server.add("/f.bin", payload(1000), always=Fault.status(503))
    dest = tmp_path / "f.bin"
    url = server.url("/f.bin")
    with pytest.raises(TransferError) as ei:
        make_transfer(retries=2).fetch(url, dest)
    assert url in str(ei.value) and "503" in str(ei.value) and "3 attempts" in str(ei.value)
    assert ei.value.status == 503 and ei.value.url == url
    assert len(server.requests("/f.bin")) == 3
    _nothing_at(dest)


def test_429_honours_retry_after(server, make_transfer, payload, tmp_path):
    data = payload(10_000)
    server.add("/f.bin", data, faults=[Fault.status(429, {"Retry-After": "1"})])
    dest = tmp_path / "f.bin"
    t0 = time.monotonic()
    make_transfer(backoff_s=0.001, max_backoff_s=5).fetch(server.url("/f.bin"), dest)
    assert time.monotonic() - t0 >= 0.95
    assert dest.read_bytes() == data
    assert len(server.requests("/f.bin")) == 2


def test_body_shorter_than_content_length_then_recovery(server, make_transfer, payload, tmp_path):
    data = payload(200_000)
    server.add("/f.bin", data, faults=[Fault.drop(after=1234)])
    dest = tmp_path / "f.bin"
    res = make_transfer().fetch(server.url("/f.bin"), dest, expected_size=len(data))
    assert dest.read_bytes() == data and res is not None and res.size == len(data)
    assert _range_start(server.requests("/f.bin")[-1]) == 1234


def test_body_always_short_gives_up_and_keeps_the_part(server, make_transfer, payload, tmp_path):
    data = payload(MB)
    server.add("/f.bin", data, always=Fault.drop(after=1000))
    dest = tmp_path / "f.bin"
    url = server.url("/f.bin")
    with pytest.raises(TransferError) as ei:
        make_transfer(retries=3).fetch(url, dest)
    assert url in str(ei.value) and "4 attempts" in str(ei.value)
    _nothing_at(dest)
    part = tmp_path / "f.bin.part"
    assert part.read_bytes() == data[:4000]  # every attempt added to the same part
    # A later run continues from there.
    server.routes["/f.bin"].always = None
    make_transfer().fetch(url, dest)
    assert dest.read_bytes() == data
    assert _range_start(server.requests("/f.bin")[-1]) == 4000


def test_wrong_bytes_raise_integrity_error(server, make_transfer, payload, tmp_path):
    data = payload(50_000)
    server.add("/f.bin", data, always=Fault.corrupt())
    dest = tmp_path / "f.bin"
    with pytest.raises(IntegrityError) as ei:
        make_transfer().fetch(server.url("/f.bin"), dest, sha256=hashlib.sha256(data).hexdigest())
    assert server.url("/f.bin") in str(ei.value)
    _nothing_at(dest)
    assert not list(tmp_path.iterdir())  # the bad part and its sidecar are gone too
    assert len(server.requests("/f.bin")) == 2  # one retry from scratch


def test_wrong_bytes_against_hub_style_linked_sha256(server, make_transfer, payload, tmp_path):
    # The sha256 comes from the resolve answer's X-Linked-Etag; the target's own 64-hex ETag is not it.
    data = payload(50_000)
    sha = hashlib.sha256(data).hexdigest()
    server.add("/lfs.bin", data, etag=hashlib.sha256(b"xet" + data).hexdigest(), faults=[Fault.corrupt()])
    server.redirect("/resolve/main/lfs.bin", "/lfs.bin",
                    headers={"X-Linked-Etag": f'"{sha}"', "X-Linked-Size": str(len(data))})
    dest = tmp_path / "lfs.bin"
    res = make_transfer().fetch(server.url("/resolve/main/lfs.bin"), dest)  # the first copy is bad, the retry good
    assert dest.read_bytes() == data and res is not None and res.sha256 == sha
    assert len(server.requests("/lfs.bin")) == 2


def test_stalled_server_times_out_then_resumes(server, make_transfer, payload, tmp_path):
    data = payload(300_000)
    server.add("/f.bin", data, faults=[Fault.stall(after=5000, seconds=10)])
    dest = tmp_path / "f.bin"
    make_transfer(timeout_s=0.3).fetch(server.url("/f.bin"), dest)
    assert dest.read_bytes() == data
    assert [_range_start(r) for r in server.requests("/f.bin")] == [0, 5000]


def test_stalled_server_gives_up(server, make_transfer, payload, tmp_path):
    server.add("/f.bin", payload(300_000), always=Fault.stall(after=100, seconds=10))
    dest = tmp_path / "f.bin"
    t0 = time.monotonic()
    with pytest.raises(TransferError) as ei:
        make_transfer(timeout_s=0.2, retries=2).fetch(server.url("/f.bin"), dest)
    assert time.monotonic() - t0 < 5
    assert server.url("/f.bin") in str(ei.value) and "Timeout" in str(ei.value)
    _nothing_at(dest)


def test_403_on_optional_part_vs_required(server, make_transfer, tmp_path):
    server.add("/absent.npy", b"", always=Fault.status(403))
    url = server.url("/absent.npy")
    t = make_transfer()
    assert t.fetch(url, tmp_path / "a.npy", optional=True) is None
    _nothing_at(tmp_path / "a.npy")
    with pytest.raises(MissingPartError) as ei:
        t.fetch(url, tmp_path / "b.npy")
    assert ei.value.status == 403 and url in str(ei.value)
    _nothing_at(tmp_path / "b.npy")
    assert not list(tmp_path.iterdir())
    assert len(server.requests("/absent.npy")) == 2  # 403 is final: no retries
    # A plain 404 (no route) behaves the same.
    assert t.fetch(server.url("/nothing"), tmp_path / "c", optional=True) is None
    with pytest.raises(MissingPartError):
        t.fetch(server.url("/nothing"), tmp_path / "c")


def test_redirect_loop(server, make_transfer, tmp_path):
    server.redirect("/a", "/b")
    server.redirect("/b", "/a")
    dest = tmp_path / "a"
    with pytest.raises(TransferError) as ei:
        make_transfer().fetch(server.url("/a"), dest)
    assert "redirect" in str(ei.value) and server.url("/a") in str(ei.value)
    assert len(server.requests()) <= 12  # bounded, and not retried
    _nothing_at(dest)


def test_range_ignored_on_resume_restarts_from_zero(server, make_transfer, payload, tmp_path):
    data = payload(MB)
    server.add("/f.bin", data, accept_ranges=False, faults=[Fault.drop(after=400_000)])
    dest = tmp_path / "f.bin"
    res = make_transfer().fetch(server.url("/f.bin"), dest)
    assert dest.read_bytes() == data and res is not None and not res.resumed
    gets = server.requests("/f.bin")
    assert [_range_start(r) for r in gets] == [0, 400_000] and [r.status for r in gets] == [200, 200]


def test_range_ignored_with_segment_sized_file(server, make_transfer, payload, tmp_path):
    data = payload(2 * MB)
    server.add("/f.bin", data, accept_ranges=False)
    dest = tmp_path / "f.bin"
    make_transfer(segment_bytes=256 << 10).fetch(server.url("/f.bin"), dest, expected_size=len(data))
    assert dest.read_bytes() == data
    assert len(server.requests("/f.bin")) == 1


def test_changed_remote_discards_the_part(server, make_transfer, payload, tmp_path):
    old, new = payload(MB), payload(MB)
    server.add("/f.bin", old, always=Fault.drop(after=300_000))
    dest = tmp_path / "f.bin"
    with pytest.raises(TransferError):
        make_transfer(retries=0).fetch(server.url("/f.bin"), dest)
    assert (tmp_path / "f.bin.part").stat().st_size == 300_000
    server.add("/f.bin", new)  # new bytes, new ETag
    res = make_transfer().fetch(server.url("/f.bin"), dest)
    assert dest.read_bytes() == new and res is not None and not res.resumed
    last = server.requests("/f.bin")[-1]
    assert last.headers["if-range"] == f'"{hashlib.md5(old).hexdigest()}"' and last.status == 200


# -- segments ------------------------------------------------------------------------------------


def test_segmented_download(server, make_transfer, payload, tmp_path):
    data = payload(3 * MB)
    server.add("/big.bin", data, faults=[Fault.throttle(chunk=64 << 10, seconds=0.01)] * 4)
    dest = tmp_path / "big.bin"
    res = make_transfer(segment_bytes=256 << 10, segments_per_file=4).fetch(server.url("/big.bin"), dest)
    assert dest.read_bytes() == data and res is not None
    gets = server.requests("/big.bin")
    starts = sorted(_range_start(r) for r in gets)
    assert len(gets) == 4 and starts == [0, len(data) // 4, len(data) // 2, 3 * len(data) // 4]
    assert sum(r.sent for r in gets) < len(data) + (64 << 10) * 4  # no segment re-sent
    assert server.max_in_flight >= 2


def test_segmented_download_survives_a_dropped_segment(server, make_transfer, payload, tmp_path):
    data = payload(2 * MB)
    server.add("/big.bin", data, faults=[Fault.drop(after=100_000), Fault.drop(after=50_000)])
    dest = tmp_path / "big.bin"
    make_transfer(segment_bytes=256 << 10, segments_per_file=4).fetch(
        server.url("/big.bin"), dest, expected_size=len(data), sha256=hashlib.sha256(data).hexdigest()
    )
    assert dest.read_bytes() == data
    assert len(server.requests("/big.bin")) == 6


# -- processes -----------------------------------------------------------------------------------

_CHILD = r"""
import json, sys
from pathlib import Path
from seamless_interaction.local.manifest import Manifest
from seamless_interaction.remote.transfer import Transfer
url, dest, root, seg = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
m = Manifest(Path(root)) if root else None
with Transfer(manifest=m, segment_bytes=seg, segments_per_file=4, retries=0, timeout_s=10) as t:
    r = t.fetch(url, dest)
print(json.dumps({"skipped": r.skipped, "resumed": r.resumed, "sha256": r.sha256}))
"""


def _child(url: str, dest: Path, root: Path | None = None, seg: int = 1 << 40) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, url, str(dest), str(root or ""), str(seg)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _wait_for(cond, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def test_kill9_then_resume_in_a_new_process(server, make_transfer, payload, tmp_path):
    data = payload(2 * MB)
    server.add("/f.bin", data, always=Fault.throttle(chunk=32 << 10, seconds=0.02))
    dest, part = tmp_path / "f.bin", tmp_path / "f.bin.part"
    proc = _child(server.url("/f.bin"), dest)
    _wait_for(lambda: part.exists() and part.stat().st_size >= 256 << 10)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    have = part.stat().st_size
    assert 0 < have < len(data)
    _nothing_at(dest)
    server.routes["/f.bin"].always = None
    res = make_transfer().fetch(server.url("/f.bin"), dest)
    assert dest.read_bytes() == data and res is not None and res.resumed
    assert _range_start(server.requests("/f.bin")[-1]) == have


def test_kill9_of_a_segmented_download_then_resume(server, make_transfer, payload, tmp_path):
    data = payload(4 * MB)
    server.add("/f.bin", data, always=Fault.throttle(chunk=16 << 10, seconds=0.05))
    dest, side = tmp_path / "f.bin", tmp_path / "f.bin.part.json"

    def recorded() -> int:
        try:
            return sum(b - a for a, b in json.loads(side.read_text())["done"])
        except (OSError, ValueError):
            return 0

    proc = _child(server.url("/f.bin"), dest, seg=512 << 10)
    _wait_for(lambda: recorded() >= 512 << 10)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    kept = recorded()
    before = len(server.requests("/f.bin"))
    server.routes["/f.bin"].always = None
    res = make_transfer(segment_bytes=512 << 10, segments_per_file=4).fetch(server.url("/f.bin"), dest)
    assert dest.read_bytes() == data and res is not None and res.resumed
    resumed = server.requests("/f.bin")[before:]
    assert sum(r.sent for r in resumed) <= len(data) - kept  # what was recorded was not fetched again


def test_two_processes_fetch_one_file_once(server, payload, tmp_path):
    data = payload(MB)
    server.add("/f.bin", data, always=Fault.throttle(chunk=64 << 10, seconds=0.02))
    dest = tmp_path / "tree" / "f.bin"
    procs = [_child(server.url("/f.bin"), dest, tmp_path / "tree") for _ in range(2)]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=30)
        assert p.returncode == 0, err
        outs.append(json.loads(out))
    assert sorted(o["skipped"] for o in outs) == [False, True]
    assert dest.read_bytes() == data
    assert len(server.requests("/f.bin")) == 1
    assert Manifest(tmp_path / "tree").get(dest).sha256 == hashlib.sha256(data).hexdigest()  # type: ignore[union-attr]


# -- disk full -----------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):  # type: ignore[no-untyped-def]
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_disk_full_known_size_is_refused_up_front(server, make_transfer, payload, small_disk):
    server.add("/f.bin", payload(MB))
    dest = small_disk / "f.bin"
    with pytest.raises(InsufficientSpaceError) as ei:
        make_transfer().fetch(server.url("/f.bin"), dest)
    assert "f.bin" in str(ei.value)
    _nothing_at(dest)


def test_disk_full_while_writing(server, make_transfer, payload, small_disk):
    # No Content-Length and no Content-Range: nothing to check up front.
    server.add("/f.bin", payload(MB), accept_ranges=False, always=Fault.chunked())
    dest = small_disk / "f.bin"
    with pytest.raises(OSError) as ei:
        make_transfer().fetch(server.url("/f.bin"), dest)
    assert server.url("/f.bin") in str(ei.value) and "space" in str(ei.value)
    _nothing_at(dest)
