"""Run one call per item on a few threads: the official ``num_workers`` (file ids or archives at once).

The calls share whatever they close over (one transfer engine, one progress bar), so this bounds how
many items are in flight, not how many connections they use.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import TypeVar

__all__ = ["map_parallel"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


def map_parallel(fn: Callable[[T], R], items: Sequence[T], max_workers: int, *, name: str = "si-item") -> list[R]:
    """``[fn(x) for x in items]`` with up to ``max_workers`` calls at once; results in ``items`` order.

    On the first failure no further item starts; the calls already running finish, then the first
    error is raised and any others are logged (the official loop stopped at its first error too).
    """
    items = list(items)
    workers = max(1, min(int(max_workers), len(items)))
    if workers == 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name) as pool:
        futures: list[Future[R]] = [pool.submit(fn, x) for x in items]
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        failed = [f for f in futures if f in done and f.exception() is not None]
        if failed:
            for f in pending:
                f.cancel()
            wait(futures)
            errors = [f.exception() for f in futures if not f.cancelled() and f.exception() is not None]
            for e in errors[1:]:
                logger.error("also failed: %s", e)
            raise errors[0]  # type: ignore[misc]
        return [f.result() for f in futures]
