"""Engine logic against ``httpx.MockTransport``: retries, token scope, cancellation and resume.

The loopback suites (test_transfer.py, faults/) cover real sockets; these pin the decisions
the engine makes about each answer, with every request recorded.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from seamless_interaction.base.errors import TransferCancelled, TransferError
from seamless_interaction.remote.transfer import Job, Transfer

Handler = Callable[[httpx.Request], httpx.Response]


def _engine(handler: Handler, **kw: object) -> Transfer:
    opts: dict[str, object] = {"backoff_s": 0.001, "max_backoff_s": 0.01, "retries": 3}
    opts.update(kw)
    return Transfer(transport=httpx.MockTransport(handler), **opts)  # type: ignore[arg-type]


def _ranged(data: bytes, request: httpx.Request, chunks: Iterator[bytes] | None = None) -> httpx.Response:
    """A 200 or 206 for ``request`` over ``data``, streamed as ``chunks`` if given.

    Bodies are iterators: a bytes body would be read eagerly, and the engine streams raw bytes.
    """
    rng = request.headers.get("range")
    if not rng:
        body = data
        return httpx.Response(200, headers={"Content-Length": str(len(body)), "ETag": '"v1"',
                                            "Accept-Ranges": "bytes"}, content=chunks or iter([body]))
    a, _, b = rng.removeprefix("bytes=").partition("-")
    lo, hi = int(a), (int(b) + 1 if b else len(data))
    body = data[lo:hi]
    return httpx.Response(206, headers={"Content-Range": f"bytes {lo}-{hi - 1}/{len(data)}", "ETag": '"v1"',
                                        "Content-Length": str(len(body))}, content=chunks or iter([body]))


def test_retries_5xx_then_succeeds_and_hashes(tmp_path: Path) -> None:
    data = os.urandom(10_000)
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) < 3:
            return httpx.Response(503)
        return _ranged(data, request)

    with _engine(handler) as t:
        res = t.fetch("https://cdn.example/f.bin", tmp_path / "f.bin")
    assert res is not None and res.sha256 == hashlib.sha256(data).hexdigest()
    assert (tmp_path / "f.bin").read_bytes() == data and len(calls) == 3


def test_retry_budget_is_spent_then_a_typed_error(tmp_path: Path) -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(502)

    with _engine(handler, retries=2) as t, pytest.raises(TransferError, match="gave up after 3 attempts"):
        t.fetch("https://cdn.example/f.bin", tmp_path / "f.bin")
    assert len(calls) == 3 and not list(tmp_path.iterdir())


def test_token_goes_to_its_origin_only_never_across_a_redirect(tmp_path: Path) -> None:
    data = b"x" * 1000
    seen: list[tuple[str, str | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.host, request.headers.get("authorization")))
        if request.url.host == "hub.example":
            return httpx.Response(302, headers={"Location": "https://cas.example/obj?sig=1"})
        return _ranged(data, request)

    with _engine(handler, token="hf_secret", token_origin="https://hub.example") as t:
        assert "hf_secret" not in repr(t)
        t.fetch("https://hub.example/resolve/main/a.tar", tmp_path / "a.tar")
        t.fetch("https://cdn.example/b.wav", tmp_path / "b.wav")
    assert seen == [("hub.example", "Bearer hf_secret"), ("cas.example", None), ("cdn.example", None)]


def test_cancel_between_chunks_keeps_a_resumable_part(tmp_path: Path) -> None:
    data = os.urandom(1 << 20)  # above the sidecar threshold: the part is worth resuming
    cancel = threading.Event()
    ranges: list[str | None] = []

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(data), 64 << 10):
            if i >= 256 << 10:
                cancel.set()  # the Stop button, pressed mid-body
            yield data[i : i + (64 << 10)]

    def handler(request: httpx.Request) -> httpx.Response:
        ranges.append(request.headers.get("range"))
        if len(ranges) == 1:
            return _ranged(data, request, chunks())
        return _ranged(data, request)

    dest = tmp_path / "big.bin"
    with _engine(handler) as t:
        with pytest.raises(TransferCancelled, match="cancelled"):
            t.fetch("https://cdn.example/big.bin", dest, cancel=cancel)
        left = sorted(p.name for p in tmp_path.iterdir())
        assert left == ["big.bin.part", "big.bin.part.json"]
        have = (tmp_path / "big.bin.part").stat().st_size
        assert 256 << 10 <= have < len(data)
        res = t.fetch("https://cdn.example/big.bin", dest)
    assert res is not None and res.resumed and dest.read_bytes() == data
    assert ranges[-1] == f"bytes={have}-"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.bin"]


def test_engine_token_cancels_a_batch(tmp_path: Path) -> None:
    cancel = threading.Event()
    served: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        served.append(request.url.path)
        cancel.set()  # cancelled as soon as the first request is answered
        return _ranged(b"y" * 100, request)

    jobs = [Job(f"https://cdn.example/{i}.bin", tmp_path / f"{i}.bin") for i in range(50)]
    with _engine(handler, cancel=cancel, max_connections=2) as t, pytest.raises(TransferCancelled, match="of 50"):
        t.fetch_many(jobs)
    assert len(served) < 50
    # Small files keep no part (nothing worth resuming); no lock file is left behind.
    assert not [p for p in tmp_path.iterdir() if p.suffix in (".part", ".lock")]


def test_rate_limit_headers_and_hub_errors_parse_as_the_hub_sends_them() -> None:
    from seamless_interaction.base.errors import AccessDeniedError, MissingPartError
    from seamless_interaction.remote.transfer.hub import (
        HubRepo,
        hub_error,
        rate_limit_wait,
    )

    def resp(status: int, **headers: str) -> httpx.Response:
        return httpx.Response(status, headers={k.replace("_", "-"): v for k, v in headers.items()},
                              request=httpx.Request("GET", "https://hub.example/x"))

    assert rate_limit_wait(resp(429, RateLimit='"resolvers";r=0;t=55')) == (55.0, "resolvers")
    assert rate_limit_wait(resp(429, RateLimit='"api";r=0;t=5', Retry_After="9")) == (9.0, "api")
    assert rate_limit_wait(resp(429)) == (None, "requests")
    url = "https://hub.example/datasets/o/r/resolve/main/a.tar"
    page = "https://hub.example/datasets/o/r"
    e = hub_error("GET", url, resp(401, X_Error_Code="GatedRepo"), has_token=False, page=page)
    assert isinstance(e, AccessDeniedError) and "set HF_TOKEN" in str(e)
    e = hub_error("GET", url, resp(403, X_Error_Code="GatedRepo"), has_token=True, page=page)
    assert isinstance(e, AccessDeniedError) and "accept the dataset's terms on its page " + page in str(e)
    e = hub_error("GET", url, resp(404, X_Error_Code="EntryNotFound"), has_token=False, page=page)
    assert isinstance(e, MissingPartError) and "EntryNotFound" in str(e)
    assert hub_error("GET", url, resp(500), has_token=False, page=page) is None
    repo = HubRepo.parse("https://huggingface.co/datasets/facebook/seamless-interaction/resolve/main")
    assert repo is not None and repo.api("tree", "main") == \
        "https://huggingface.co/api/datasets/facebook/seamless-interaction/tree/main"
    assert repo.path_of(repo.resolve_base + "/improvised/dev/0000/0001.tar") == "improvised/dev/0000/0001.tar"
