"""map_parallel: order kept, bounded concurrency, first error raised and nothing new started after it."""

from __future__ import annotations

import threading

import pytest

from seamless_interaction.base.parallel import map_parallel


def test_results_keep_item_order_and_calls_overlap():
    meeting = threading.Barrier(3, timeout=30)  # breaks unless three calls are in flight together

    def call(x: int) -> int:
        meeting.wait()
        return x * 10

    assert map_parallel(call, [3, 1, 2], 3) == [30, 10, 20]


def test_at_most_max_workers_at_once():
    lock, running, peak = threading.Lock(), [0], [0]
    gate = threading.Event()

    def call(x: int) -> int:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
            if running[0] == 2:
                gate.set()
        gate.wait(30)
        with lock:
            running[0] -= 1
        return x

    assert map_parallel(call, list(range(8)), 2) == list(range(8))
    assert peak[0] == 2


def test_first_error_is_raised_and_queued_items_never_start():
    started = []

    def call(x: int) -> int:
        started.append(x)
        if x == 0:
            raise ValueError("item 0 failed")
        return x

    with pytest.raises(ValueError, match="item 0 failed"):
        map_parallel(call, list(range(50)), 1)
    assert started == [0]
    with pytest.raises(ValueError, match="item 0 failed"):
        map_parallel(call, [0, 1], 2)
