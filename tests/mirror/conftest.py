"""Fixtures for the mirror tests: one default build per session, and a server over it."""

from __future__ import annotations

import pytest

from seamless_interaction.mirror import MirrorInfo, MirrorServer, build_mirror


@pytest.fixture(scope="session")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> MirrorInfo:
    return build_mirror(tmp_path_factory.mktemp("mirror") / "sample")


@pytest.fixture(scope="session")
def server(mirror: MirrorInfo):
    with MirrorServer(mirror.root) as srv:
        yield srv


@pytest.fixture
def srv(server: MirrorServer) -> MirrorServer:
    """The session server with an empty request log."""
    server.clear_requests()
    return server
