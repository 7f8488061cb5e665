"""Transfer API over a real loopback server: HEAD metadata, byte ranges, batches, skipping, locks.

The fault-by-fault suite lives in tests/faults/; this file covers the ordinary paths.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator

import pytest

from faults.faultserver import Fault, FaultServer
from seamless_interaction.base.errors import InsufficientSpaceError, MissingPartError, TransferError
from seamless_interaction.local.manifest import Manifest
from seamless_interaction.remote.transfer import (
    FetchResult, Job, NullProgress, TqdmProgress, Transfer, check_free_space,
)


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as srv:
        yield srv


@pytest.fixture
def transfer() -> Iterator[Transfer]:
    with Transfer(backoff_s=0.01, max_backoff_s=0.05, timeout_s=2.0, retries=3) as t:
        yield t


class RecordingProgress(NullProgress):
    def __init__(self) -> None:
        self.totals: list[int | None] = []
        self.done = 0
        self.lock = threading.Lock()

    def start(self, total_bytes: int | None, desc: str) -> None:
        self.totals.append(total_bytes)

    def advance(self, n: int) -> None:
        with self.lock:
            self.done += n


def test_head_reads_hub_style_linked_etag_and_size(server, transfer):
    data = os.urandom(5000)
    sha = hashlib.sha256(data).hexdigest()
    server.add("/lfs/0001.tar", data, etag=sha)
    server.redirect("/resolve/main/0001.tar", "/lfs/0001.tar",
                    headers={"X-Linked-Etag": f'"{sha}"', "X-Linked-Size": str(len(data))})
    info = transfer.head(server.url("/resolve/main/0001.tar"))
    assert info is not None
    # The 302 says it all: the target is not asked (its ETag would not be the sha256 for Xet files).
    assert (info.size, info.sha256, info.etag, info.accept_ranges) == (len(data), sha, None, True)
    assert [r.method for r in server.requests(method=None)] == ["HEAD"]
    assert info.url == server.url("/resolve/main/0001.tar") and info.final_url == server.url("/lfs/0001.tar")


def test_head_without_sha_etag_and_absent(server, transfer):
    server.add("/a.wav", b"x" * 10)
    info = transfer.head(server.url("/a.wav"))
    assert info is not None and info.size == 10 and info.sha256 is None  # an md5 ETag is not a sha256
    assert transfer.head(server.url("/missing"), optional=True) is None
    with pytest.raises(MissingPartError):
        transfer.head(server.url("/missing"))


def test_token_goes_to_the_origin_host_only(server):
    server.add("/b", b"payload")
    server.redirect("/a", server.url("/b", host="localhost"))
    with Transfer(token="s3cret") as t:
        assert "s3cret" not in repr(t)
        assert t.fetch_bytes(server.url("/a")) == b"payload"
    first, second = server.requests()
    assert first.headers["authorization"] == "Bearer s3cret"
    assert "authorization" not in second.headers


def test_fetch_bytes_ranges(server, transfer):
    data = os.urandom(100_000)
    server.add("/f", data)
    url = server.url("/f")
    assert transfer.fetch_bytes(url) == data
    assert transfer.fetch_bytes(url, start=10, end=20) == data[10:20]
    assert transfer.fetch_bytes(url, start=99_000) == data[99_000:]
    assert transfer.fetch_bytes(url, end=5) == data[:5]
    assert transfer.fetch_bytes(url, start=7, end=7) == b""
    assert server.requests()[1].headers["range"] == "bytes=10-19"
    assert transfer.fetch_bytes(server.url("/nope"), optional=True) is None
    with pytest.raises(ValueError):
        transfer.fetch_bytes(url, start=5, end=2)


def test_fetch_bytes_range_ignored_and_dropped(server, transfer):
    data = os.urandom(100_000)
    server.add("/noranges", data, accept_ranges=False)
    assert transfer.fetch_bytes(server.url("/noranges"), start=500, end=1500) == data[500:1500]
    server.add("/drop", data, faults=[Fault.drop(after=30_000)])
    assert transfer.fetch_bytes(server.url("/drop"), start=1000, end=90_000) == data[1000:90_000]
    assert server.requests("/drop")[-1].headers["range"] == "bytes=31000-89999"


def test_fetch_many_in_order_bounded_and_with_progress(server, tmp_path):
    blobs = {f"/f{i}": os.urandom(20_000 + i * 1000) for i in range(8)}
    for path, data in blobs.items():
        server.add(path, data, always=Fault.throttle(chunk=8192, seconds=0.01))
    jobs = [Job(server.url(p), tmp_path / p.strip("/"), expected_size=len(d)) for p, d in blobs.items()]
    jobs.insert(3, Job(server.url("/absent"), tmp_path / "absent", optional=True))
    progress = RecordingProgress()
    with Transfer(max_connections=3, progress=progress) as t:
        results = t.fetch_many(jobs)
    assert results[3] is None and not (tmp_path / "absent").exists()
    for job, res in zip(jobs, results):
        if job.optional:
            continue
        assert isinstance(res, FetchResult) and res.path == job.dest
        assert job.dest.read_bytes() == blobs["/" + job.dest.name]
    assert progress.totals == [sum(len(d) for d in blobs.values())]
    assert progress.done == sum(len(d) for d in blobs.values())
    assert 1 < server.max_in_flight <= 3


def test_fetch_many_fail_fast_leaves_nothing_partial(server, tmp_path):
    blobs = {f"/f{i}": os.urandom(200_000) for i in range(6)}
    for path, data in blobs.items():
        server.add(path, data, always=Fault.throttle(chunk=16384, seconds=0.02))
    jobs = [Job(server.url(p), tmp_path / p.strip("/")) for p in blobs]
    jobs.insert(1, Job(server.url("/required"), tmp_path / "required"))
    with Transfer(max_connections=2) as t, pytest.raises(MissingPartError) as ei:
        t.fetch_many(jobs)
    assert server.url("/required") in str(ei.value)
    for p, data in blobs.items():
        dest = tmp_path / p.strip("/")
        assert not dest.exists() or dest.read_bytes() == data
    assert len(server.requests()) < len(jobs)  # the queued jobs were cancelled


def test_fetch_many_without_fail_fast_runs_everything(server, tmp_path):
    server.add("/ok", b"fine")
    jobs = [Job(server.url("/missing"), tmp_path / "m"), Job(server.url("/ok"), tmp_path / "ok")]
    with Transfer() as t, pytest.raises(TransferError):
        t.fetch_many(jobs, fail_fast=False)
    assert (tmp_path / "ok").read_bytes() == b"fine"


def test_complete_file_is_never_fetched_again(server, transfer, tmp_path):
    data = os.urandom(30_000)
    server.add("/f", data)
    url, dest = server.url("/f"), tmp_path / "tree" / "f"
    manifest = Manifest(tmp_path / "tree")
    with Transfer(manifest=manifest) as t:
        first = t.fetch(url, dest)
        second = t.fetch(url, dest)
    assert first is not None and not first.skipped and second is not None and second.skipped
    assert second.sha256 == hashlib.sha256(data).hexdigest() == manifest.get("f").sha256  # type: ignore[union-attr]
    assert len(server.requests(method=None)) == 1
    # Without a manifest: a known size suffices; an unknown one costs a HEAD, never a GET.
    assert transfer.fetch(url, dest, expected_size=len(data)).skipped  # type: ignore[union-attr]
    assert transfer.fetch(url, dest).skipped  # type: ignore[union-attr]
    assert [r.method for r in server.requests(method=None)] == ["GET", "HEAD"]


def test_corrupt_local_file_is_fetched_again(server, transfer, tmp_path):
    data = os.urandom(30_000)
    server.add("/f", data)
    dest = tmp_path / "f"
    dest.write_bytes(b"\0" * len(data))
    res = transfer.fetch(server.url("/f"), dest, expected_size=len(data), sha256=hashlib.sha256(data).hexdigest())
    assert res is not None and not res.skipped and dest.read_bytes() == data


def test_remote_size_mismatch_is_an_integrity_error(server, transfer, tmp_path):
    server.add("/f", b"abc")
    from seamless_interaction.base.errors import IntegrityError

    with pytest.raises(IntegrityError):
        transfer.fetch(server.url("/f"), tmp_path / "f", expected_size=4)
    assert not list(tmp_path.iterdir())


def test_threads_fetching_one_dest_download_once(server, tmp_path):
    data = os.urandom(300_000)
    server.add("/f", data, always=Fault.throttle(chunk=32768, seconds=0.01))
    dest = tmp_path / "f"
    with Transfer() as t:
        results = t.fetch_many([Job(server.url("/f"), dest, expected_size=len(data))] * 3)
    assert sorted(r.skipped for r in results if r) == [False, True, True]
    assert dest.read_bytes() == data and len(server.requests("/f")) == 1


def test_empty_file(server, transfer, tmp_path):
    server.add("/empty", b"")
    res = transfer.fetch(server.url("/empty"), tmp_path / "empty")
    assert res is not None and res.size == 0 and (tmp_path / "empty").read_bytes() == b""


def test_check_free_space(tmp_path):
    check_free_space(tmp_path / "not" / "yet", 1)
    with pytest.raises(InsufficientSpaceError) as ei:
        check_free_space(tmp_path / "x", 1 << 62)
    assert str(tmp_path / "x") in str(ei.value)


def test_tqdm_progress_quiet(server, tmp_path):
    server.add("/f", b"x" * 1000)
    with Transfer(progress=TqdmProgress(disable=True)) as t:
        assert t.fetch(server.url("/f"), tmp_path / "f") is not None


# -- batch scheduling: segments, splits of ranges in flight, small files --------------------------


def test_idle_connections_split_the_ranges_in_flight(server, tmp_path):
    data = os.urandom(8 << 20)
    # ~6.5 MB/s per connection: the two planned 4 MiB segments would take 0.6 s each on their own.
    server.add("/big", data, always=Fault.throttle(chunk=64 << 10, seconds=0.01))
    dest = tmp_path / "big"
    progress = RecordingProgress()
    with Transfer(max_connections=6, segment_bytes=2 << 20, segments_per_file=2, progress=progress) as t:
        (res,) = t.fetch_many([Job(server.url("/big"), dest)])
    assert res is not None and dest.read_bytes() == data and res.sha256 == hashlib.sha256(data).hexdigest()
    gets = server.requests("/big")
    assert len(gets) > 2 and server.max_in_flight > 2  # the free connections took parts of the planned segments
    assert progress.done == len(data)  # every byte counted once, although ranges were cut short
    assert not list(tmp_path.glob("big.*"))  # no part, sidecar or lock left


def test_single_fetch_many_job_still_uses_segments(server, tmp_path):
    data = os.urandom(3 << 20)
    server.add("/f", data, always=Fault.throttle(chunk=64 << 10, seconds=0.01))
    with Transfer(max_connections=4, segment_bytes=512 << 10, segments_per_file=4) as t:
        (res,) = t.fetch_many([Job(server.url("/f"), tmp_path / "f", expected_size=len(data))])
    assert res is not None and (tmp_path / "f").read_bytes() == data
    assert server.max_in_flight >= 2


def test_hash_follows_a_resumed_single_stream(server, tmp_path):
    data = os.urandom(600_000)
    server.add("/f", data, faults=[Fault.drop(after=250_000)])
    with Transfer(backoff_s=0.01, max_backoff_s=0.02) as t:
        res = t.fetch(server.url("/f"), tmp_path / "f")
    assert res is not None and res.sha256 == hashlib.sha256(data).hexdigest()
    assert (tmp_path / "f").read_bytes() == data and len(server.requests("/f")) == 2


def test_small_file_keeps_no_sidecar_and_restarts_cleanly(server, tmp_path):
    data = os.urandom(100_000)
    server.add("/s", data, always=Fault.drop(after=10_000))
    dest = tmp_path / "s"
    with Transfer(retries=0) as t, pytest.raises(TransferError):
        t.fetch(server.url("/s"), dest)
    assert not dest.exists() and not (tmp_path / "s.part.json").exists()  # no bookkeeping for a small file
    server.routes["/s"].always = None
    with Transfer() as t:
        res = t.fetch(server.url("/s"), dest)
    assert res is not None and dest.read_bytes() == data and not res.resumed
    assert server.requests("/s")[-1].headers["range"] == "bytes=0-"  # from scratch, nothing to trust
    assert not list(tmp_path.glob("s.*"))
