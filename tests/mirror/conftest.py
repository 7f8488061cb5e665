"""Fixtures for the mirror tests: the session's sample mirror (tests/conftest.py) under short names."""

from __future__ import annotations

import pytest

from seamless_interaction.mirror import MirrorInfo, MirrorServer


@pytest.fixture(scope="session")
def mirror(sample_mirror: MirrorInfo) -> MirrorInfo:
    return sample_mirror


@pytest.fixture(scope="session")
def server(sample_server: MirrorServer) -> MirrorServer:
    return sample_server


@pytest.fixture
def srv(server: MirrorServer) -> MirrorServer:
    """The session server with an empty request log."""
    server.clear_requests()
    return server
