"""The benchmarks' mirror server in a child process, as a remote server would be.

In a child, the server's pacing threads do not share the measured client's GIL.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _serve(root: Path, options: dict[str, Any], conn: Any, stop: Any) -> None:
    from seamless_interaction.mirror import MirrorServer

    with MirrorServer(root, **options) as srv:
        conn.send((srv.cdn_url, srv.hf_url, srv.assets_url))
        stop.wait()


@contextmanager
def served(root: Path, **options: Any) -> Iterator[tuple[str, str, str]]:
    """``(cdn_url, hf_url, assets_url)`` of ``MirrorServer(root, **options)`` run by a child until the block ends."""
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe()
    stop = ctx.Event()
    proc = ctx.Process(target=_serve, args=(root, options, child, stop), daemon=True)
    proc.start()
    try:
        if not parent.poll(30):
            raise RuntimeError("the mirror server did not start")
        yield parent.recv()
    finally:
        stop.set()
        proc.join(10)
        if proc.is_alive():
            proc.kill()
