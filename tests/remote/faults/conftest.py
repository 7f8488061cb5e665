"""Fixtures for the fault-injection suite: a loopback fault server and a quick-retrying Transfer."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from faultserver import FaultServer
from seamless_interaction.remote.transfer import Transfer


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as srv:
        yield srv


@pytest.fixture
def make_transfer() -> Iterator[Callable[..., Transfer]]:
    """Transfers with tiny backoffs and timeouts so that the suite stays fast."""
    made: list[Transfer] = []

    def make(**kw: Any) -> Transfer:
        opts: dict[str, Any] = {"backoff_s": 0.01, "max_backoff_s": 0.05, "timeout_s": 2.0, "retries": 3}
        opts.update(kw)
        t = Transfer(**opts)
        made.append(t)
        return t

    yield make
    for t in made:
        t.close()


@pytest.fixture
def payload() -> Callable[[int], bytes]:
    return os.urandom
