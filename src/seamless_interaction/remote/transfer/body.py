"""A response body in large blocks: the byte-moving path of every large download.

httpx hands a body over in the pieces each ``recv`` returns (at most 64 KiB, often less on a
paced or lossy link), and each piece wakes its thread, takes the GIL and climbs h11, httpcore and
httpx. With a few dozen connections that is thousands of wake-ups per second, and they and the GIL
handoffs between the threads are a large share of a download's CPU (issue 12, much of it system
time). :func:`iter_body` reads a large body of known length straight from the connection's socket
instead (``network_stream`` is httpcore's documented response extension): the kernel wakes
the thread once a block has arrived (``SO_RCVLOWAT``), or after :data:`WAKE_S` with what there is,
so progress and cancellation stay responsive on a slow link, and one ``recv_into`` fills a reused
buffer. Anything else (a small or chunked body, a transport without a socket) is read through
``iter_raw`` as before.

After a direct read the connection is not reused: h11 did not see the body's end, so httpcore
closes it when the response closes. A large body amortises the next request's handshake.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx

__all__ = ["BLOCK_BYTES", "DIRECT_MIN_BYTES", "WAKE_S", "BufferPool", "iter_body"]

# Bodies from this size on are read from the socket directly (below it, keeping the connection
# for the next request is worth more than the wake-ups saved).
DIRECT_MIN_BYTES = 1 << 20
# Most bytes per wake-up: the read buffer, and the socket's low-water mark.
BLOCK_BYTES = 1 << 20
# A thread waiting for a block wakes at least this often with what has arrived.
WAKE_S = 0.05

_LOWAT = getattr(socket, "SO_RCVLOWAT", None)
_POLL = hasattr(select, "poll")  # not on Windows: bodies go through iter_raw there


def _length(resp: httpx.Response) -> int | None:
    """Bytes the body will have, when the headers say so unambiguously."""
    if "transfer-encoding" in resp.headers or resp.headers.get("content-encoding", "identity") != "identity":
        return None
    length = resp.headers.get("content-length", "")
    return int(length) if length.isdigit() else None


def _socket(resp: httpx.Response) -> socket.socket | None:
    """The socket whose bytes are the body, or None when that is not known for sure.

    Only httpcore's plain synchronous stream qualifies: its socket is the connection itself (TLS
    included, as an ``SSLSocket``). Through an HTTPS proxy (TLS in TLS) the socket is the outer
    tunnel, whose bytes are still encrypted for the origin; any other stream is left to httpx.
    """
    stream: Any = resp.extensions.get("network_stream")
    kind = type(stream)
    if kind.__name__ != "SyncStream" or not kind.__module__.startswith("httpcore."):
        return None
    sock = stream.get_extra_info("socket")
    return sock if isinstance(sock, socket.socket) else None


class BufferPool:
    """Receive buffers for direct reads, reused across bodies (one engine's; thread-safe).

    A fresh ``BLOCK_BYTES`` buffer per body cost its zeroing and a page fault per 4 KiB; the pool
    holds at most as many as bodies were read at once.
    """

    def __init__(self, size: int = BLOCK_BYTES) -> None:
        self.size = size
        self._free: list[bytearray] = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def take(self) -> Iterator[bytearray]:
        with self._lock:
            buf = self._free.pop() if self._free else None
        if buf is None:
            buf = bytearray(self.size)
        try:
            yield buf
        finally:
            with self._lock:
                self._free.append(buf)


def iter_body(
    resp: httpx.Response, timeout_s: float, *, direct_min: int = DIRECT_MIN_BYTES,
    wanted: Callable[[], int | None] | None = None, buffers: BufferPool | None = None,
) -> Iterator[bytes | memoryview]:
    """The raw bytes of ``resp``'s body, in order; empty chunks are wake-ups without data.

    A chunk may be a view of a buffer that the next one overwrites: consume it before asking for
    the next. Errors are httpx's (``ReadTimeout`` when nothing arrives for ``timeout_s``,
    ``ReadError``, ``RemoteProtocolError`` for a body cut short), as with ``iter_raw``.
    ``wanted()``: how many more bytes the caller wants, None for all (a split download shortens
    a range while it streams); a direct read never reads past it, and ends when it reaches 0.
    ``buffers``: where a direct read takes its buffer (else a fresh one).
    """
    chunks = resp.iter_raw()
    left = _length(resp)
    sock = _socket(resp) if _POLL and left is not None and left >= direct_min else None
    if sock is None or left is None:
        yield from chunks
        return
    # The bytes that came in with the headers: h11 hands over all it holds at once, so from the
    # end of this chunk on, the rest of the body is still in the socket.
    for chunk in chunks:
        left -= len(chunk)
        yield chunk
        break
    if left <= 0:
        yield from chunks  # h11 reaches the end of the message: the connection stays reusable
        return
    if buffers is None:
        yield from _direct(sock, left, timeout_s, wanted, bytearray(min(BLOCK_BYTES, left)))
        return
    with buffers.take() as buf:
        yield from _direct(sock, left, timeout_s, wanted, buf)


def _direct(
    sock: socket.socket, left: int, timeout_s: float, wanted: Callable[[], int | None] | None, block: bytearray,
) -> Iterator[memoryview]:
    buf = memoryview(block)[:min(len(block), left)]
    tls = sock if isinstance(sock, ssl.SSLSocket) else None
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    timeout = sock.gettimeout()
    sock.setblocking(False)
    lowat = 1
    last = time.monotonic()
    try:
        while left > 0:
            cap = wanted() if wanted is not None else None
            if cap is not None and cap <= 0:
                return
            want = min(len(buf), left, left if cap is None else cap)
            if not (tls is not None and tls.pending()):  # TLS: decrypted bytes already wait
                if _LOWAT is not None:
                    # At most a quarter of the receive buffer, which the kernel sizes to the link
                    # as it goes: a mark above half of it would make Linux grow the buffer and
                    # clamp the TCP window to the mark, so the sender would stall on every block.
                    mark = max(1, min(want, sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 4))
                    if mark != lowat:
                        try:
                            sock.setsockopt(socket.SOL_SOCKET, _LOWAT, mark)
                            lowat = mark
                        except OSError:  # pragma: no cover - kernels without a settable mark
                            pass
                poller.poll(WAKE_S * 1000)
            got = 0
            error: httpx.TransportError | None = None
            while got < want:  # TLS hands over one record per call
                try:
                    n = sock.recv_into(buf[got:want])
                except (BlockingIOError, InterruptedError, ssl.SSLWantReadError):
                    break
                except OSError as e:
                    error = httpx.ReadError(f"{type(e).__name__}: {e}")
                    break
                if n == 0:
                    error = httpx.RemoteProtocolError(
                        f"peer closed connection without sending complete message body ({left - got} bytes left)")
                    break
                got += n
                if tls is None:
                    break  # plain TCP: one call took all that had arrived
            now = time.monotonic()
            if got:
                left -= got
                last = now
            elif error is None and now - last > timeout_s:
                error = httpx.ReadTimeout(f"no body bytes for {timeout_s:g}s ({left} bytes left)")
            if got or error is None:
                yield buf[:got]  # what arrived before an error is the caller's to keep (a resume starts after it)
            if error is not None:
                raise error
    finally:
        # The connection closes with the response (h11 did not see the end); restored all the
        # same, so that nothing depends on that.
        with contextlib.suppress(OSError):
            if _LOWAT is not None and lowat != 1:
                sock.setsockopt(socket.SOL_SOCKET, _LOWAT, 1)
            sock.settimeout(timeout)
