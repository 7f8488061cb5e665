"""Jobs that skip the sha256 (``Job(digest=False)``) and in-memory jobs (``Job(dest=None)``)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

import pytest

from faults.faultserver import Fault, FaultServer
from seamless_interaction.base.errors import IntegrityError
from seamless_interaction.remote.transfer import Job, Transfer


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as srv:
        yield srv


def test_digest_off_skips_the_hash_but_keeps_the_bytes(server, tmp_path):
    small, big = os.urandom(50_000), os.urandom(3 << 20)
    server.add("/small", small)
    server.add("/big", big, always=Fault.throttle(chunk=256 << 10, seconds=0.001))
    jobs = [Job(server.url("/big"), tmp_path / "big", digest=False),
            Job(server.url("/small"), tmp_path / "small", digest=False),
            Job(server.url("/small"), None, digest=False),
            Job(server.url("/small"), None),
            Job(server.url("/absent"), None, optional=True)]
    with Transfer(max_connections=4, segment_bytes=512 << 10) as t:  # the big one goes in segments
        big_res, small_res, mem_off, mem_on, absent = t.fetch_many(jobs)
    assert (tmp_path / "big").read_bytes() == big and big_res.sha256 is None and big_res.size == len(big)
    assert (tmp_path / "small").read_bytes() == small and small_res.sha256 is None
    assert mem_off.data == small and mem_off.path is None and mem_off.sha256 is None
    assert mem_on.data == small and mem_on.sha256 == hashlib.sha256(small).hexdigest()
    assert absent is None
    assert len([r for r in server.requests("/big") if r.status == 206]) > 1
    assert not list(tmp_path.glob("*.part*"))


def test_digest_off_still_checks_a_known_sha256(server, tmp_path):
    data = os.urandom(200_000)
    server.add("/f", data)
    wrong = hashlib.sha256(b"something else").hexdigest()
    with Transfer(max_connections=2, retries=0) as t:
        with pytest.raises(IntegrityError, match="sha256"):
            t.fetch_many([Job(server.url("/f"), tmp_path / "f", sha256=wrong, digest=False)])
        with pytest.raises(IntegrityError, match="sha256"):
            t.fetch_many([Job(server.url("/f"), None, sha256=wrong, digest=False)])
        ok = t.fetch_many([Job(server.url("/f"), tmp_path / "g", sha256=hashlib.sha256(data).hexdigest(),
                               digest=False)])[0]
    assert ok.sha256 == hashlib.sha256(data).hexdigest() and (tmp_path / "g").read_bytes() == data
    assert not (tmp_path / "f").exists()


def test_digest_off_checks_the_sha256_the_remote_publishes(server, tmp_path):
    data = os.urandom(300_000)
    published = hashlib.sha256(data).hexdigest()
    server.add("/ok", data, headers={"X-Linked-Etag": f'"{published}"'})  # as the Hub publishes it
    server.add("/bad", data, headers={"X-Linked-Etag": f'"{hashlib.sha256(b"x").hexdigest()}"'})
    with Transfer(max_connections=2, retries=0) as t:
        ok = t.fetch_many([Job(server.url("/ok"), tmp_path / "ok", digest=False)])[0]
        assert ok.sha256 == published
        with pytest.raises(IntegrityError, match="sha256"):
            t.fetch_many([Job(server.url("/bad"), tmp_path / "bad", digest=False)])
    assert not (tmp_path / "bad").exists()
