"""Large bodies read straight from the socket (remote/transfer/body.py), over plain HTTP and TLS."""

from __future__ import annotations

import hashlib
import shutil
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from faultserver import Fault, FaultServer, tls_context
from seamless_interaction.base.errors import TransferCancelled
from seamless_interaction.remote.transfer import Transfer
from seamless_interaction.remote.transfer.body import DIRECT_MIN_BYTES, BufferPool, iter_body

BIG = DIRECT_MIN_BYTES + 3 * 1024 * 1024 + 123  # over the direct threshold, not a whole number of blocks


def read(client: httpx.Client, url: str, timeout_s: float = 10.0, **kw: object) -> tuple[bytes, list[type]]:
    """The body through iter_body, and the type of each non-empty chunk (bytes: iter_raw; memoryview: direct)."""
    out, kinds = bytearray(), []
    with client.stream("GET", url) as r:
        r.raise_for_status()
        for chunk in iter_body(r, timeout_s, **kw):  # type: ignore[arg-type]
            if len(chunk):
                kinds.append(type(chunk))
                out += chunk
    return bytes(out), kinds


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    return tls_context(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def tls_server(tls: tuple[ssl.SSLContext, Path]) -> Iterator[FaultServer]:
    with FaultServer(tls=tls[0]) as srv:
        yield srv


def test_large_body_is_read_directly_and_exactly(server: FaultServer, payload: Callable[[int], bytes]) -> None:
    data = payload(BIG)
    server.add("/big", data)
    with httpx.Client() as client:
        got, kinds = read(client, server.url("/big"))
        assert got == data
        assert memoryview in kinds  # the direct path ran
        # The connection of a direct read is closed, not reused half-read: the next request works.
        again, _ = read(client, server.url("/big"))
        assert again == data


def test_pooled_buffers_are_reused_and_never_shared_by_two_bodies(server: FaultServer,
                                                                   payload: Callable[[int], bytes]) -> None:
    one, two = payload(BIG), payload(BIG + 4096)[::-1]
    server.add("/one", one)
    server.add("/two", two)
    pool = BufferPool()
    with httpx.Client() as client:
        assert read(client, server.url("/one"), buffers=pool)[0] == one
        assert len(pool._free) == 1  # the body's buffer went back
        first = pool._free[0]
        # Two bodies at once, interleaved chunk by chunk: each has its own buffer, then both return.
        with client.stream("GET", server.url("/one")) as a, client.stream("GET", server.url("/two")) as b:
            got: dict[str, bytearray] = {"a": bytearray(), "b": bytearray()}
            streams = {"a": iter_body(a, 10.0, buffers=pool), "b": iter_body(b, 10.0, buffers=pool)}
            while streams:
                for k in list(streams):
                    chunk = next(streams[k], None)
                    if chunk is None:
                        del streams[k]
                    else:
                        got[k] += chunk
        assert bytes(got["a"]) == one and bytes(got["b"]) == two
        assert len(pool._free) == 2 and any(buf is first for buf in pool._free)


def test_small_and_chunked_bodies_go_through_httpx(server: FaultServer, payload: Callable[[int], bytes]) -> None:
    small, chunked = payload(300_000), payload(BIG)
    server.add("/small", small)
    server.add("/chunked", chunked, always=Fault.chunked())
    with httpx.Client() as client:
        got, kinds = read(client, server.url("/small"))
        assert got == small and set(kinds) == {bytes}
        got, kinds = read(client, server.url("/chunked"))  # no Content-Length: no direct read
        assert got == chunked and set(kinds) == {bytes}
        got, kinds = read(client, server.url("/small"), direct_min=1)
        assert got == small and memoryview in kinds


def test_direct_read_stops_where_the_caller_wants(server: FaultServer, payload: Callable[[int], bytes]) -> None:
    # A split download shortens the range it streams: the read must not go past the new end.
    data = payload(BIG)
    server.add("/big", data)
    end = BIG // 2 + 777
    got = bytearray()

    def wanted() -> int:
        return end - len(got)

    with httpx.Client() as client, client.stream("GET", server.url("/big")) as r:
        for chunk in iter_body(r, 10.0, wanted=wanted):
            got.extend(chunk)
            assert len(got) <= end
    assert bytes(got) == data[:end]


def test_other_streams_are_left_to_httpx(payload: Callable[[int], bytes]) -> None:
    # An HTTPS proxy's TLS-in-TLS stream also exposes a socket, the outer tunnel's, whose bytes are
    # not the body: only httpcore's plain stream is read directly. (No HTTPS proxy runs here.)
    tunnel = socket.socket()

    class TLSinTLSStream:
        def get_extra_info(self, info: str) -> object:
            return tunnel if info == "socket" else None

    class Pieces(httpx.SyncByteStream):  # the body as a connection hands it over
        def __iter__(self) -> Iterator[bytes]:
            for i in range(0, BIG, 65536):
                yield data[i : i + 65536]

    data = payload(BIG)
    resp = httpx.Response(200, headers={"Content-Length": str(BIG)}, stream=Pieces(),
                          extensions={"network_stream": TLSinTLSStream()})
    with tunnel:
        chunks = list(iter_body(resp, 1.0, direct_min=1))
    assert b"".join(chunks) == data and all(isinstance(c, bytes) for c in chunks)


def test_throttled_body_arrives_whole(server: FaultServer, payload: Callable[[int], bytes]) -> None:
    data = payload(BIG)
    server.add("/slow", data, always=Fault.throttle(chunk=512 * 1024, seconds=0.02))
    with httpx.Client() as client:
        got, kinds = read(client, server.url("/slow"))
    assert got == data and memoryview in kinds


def test_body_cut_short_is_a_protocol_error(server: FaultServer, payload: Callable[[int], bytes]) -> None:
    server.add("/cut", payload(BIG), always=Fault.drop(after=BIG // 2))
    with httpx.Client() as client, pytest.raises(httpx.RemoteProtocolError, match="bytes left"):
        read(client, server.url("/cut"))


def test_silent_server_times_out(server: FaultServer, payload: Callable[[int], bytes]) -> None:
    # The server goes silent for longer than the read timeout, then closes: a timeout, not a short body.
    server.add("/stall", payload(BIG), always=Fault.stall(after=BIG // 3, seconds=5.0))
    with httpx.Client() as client, pytest.raises(httpx.ReadTimeout):
        read(client, server.url("/stall"), timeout_s=0.5)


def test_transfer_resumes_a_direct_body_cut_short(server: FaultServer, make_transfer: Callable[..., Transfer],
                                                  payload: Callable[[int], bytes], tmp_path: Path) -> None:
    data = payload(BIG)
    server.add("/f.bin", data, faults=[Fault.drop(after=BIG // 2)])
    res = make_transfer(max_connections=1).fetch(server.url("/f.bin"), tmp_path / "f.bin",
                                                                sha256=hashlib.sha256(data).hexdigest())
    assert (tmp_path / "f.bin").read_bytes() == data
    assert res.sha256 == hashlib.sha256(data).hexdigest()
    gets = server.requests("/f.bin")
    assert len(gets) == 2 and gets[1].headers["range"].startswith(f"bytes={BIG // 2}-")


def test_cancel_stops_a_direct_read_while_the_server_is_silent(
        server: FaultServer, make_transfer: Callable[..., Transfer], payload: Callable[[int], bytes],
        tmp_path: Path) -> None:
    # The read wakes up at least every WAKE_S without data, so a cancel is seen long before the
    # read timeout (30 s) or the end of the silence (20 s). The bound below is 10x the wake-up
    # plus slack for a loaded machine: a responsiveness check, not a performance figure.
    server.add("/f.bin", payload(BIG), always=Fault.stall(after=BIG // 3, seconds=20.0))
    cancel = threading.Event()
    timer = threading.Timer(0.5, cancel.set)
    timer.start()
    t0 = time.monotonic()
    try:
        with pytest.raises(TransferCancelled):
            make_transfer(max_connections=1, timeout_s=30.0).fetch(server.url("/f.bin"), tmp_path / "f.bin",
                                                                   cancel=cancel)
    finally:
        timer.cancel()
    assert time.monotonic() - t0 < 10.0
    assert not (tmp_path / "f.bin").exists()


def test_tls_body_is_read_directly_and_exactly(tls_server: FaultServer, tls: tuple[ssl.SSLContext, Path],
                                               payload: Callable[[int], bytes]) -> None:
    data = payload(BIG)
    tls_server.add("/big", data)
    tls_server.add("/cut", data, always=Fault.drop(after=BIG // 2))
    with httpx.Client(verify=ssl.create_default_context(cafile=str(tls[1]))) as client:
        got, kinds = read(client, tls_server.url("/big"))
        assert got == data and memoryview in kinds  # decrypted, not the raw TLS records
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            read(client, tls_server.url("/cut"))


def test_transfer_over_tls(tls_server: FaultServer, tls: tuple[ssl.SSLContext, Path],
                           make_transfer: Callable[..., Transfer], payload: Callable[[int], bytes],
                           tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tls[1]))  # httpx trusts it, as users point it at a proxy's CA
    data = payload(BIG)
    tls_server.add("/f.bin", data, faults=[Fault.drop(after=BIG // 3)])
    res = make_transfer().fetch(tls_server.url("/f.bin"), tmp_path / "f.bin",
                                                                sha256=hashlib.sha256(data).hexdigest())
    assert (tmp_path / "f.bin").read_bytes() == data
    assert res.sha256 == hashlib.sha256(data).hexdigest()
