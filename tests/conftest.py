"""Shared fixtures: one embedded-sample mirror per test session, served on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from seamless_interaction.base.config import DatasetConfig
from seamless_interaction.fs import SeamlessInteractionFS
from seamless_interaction.mirror import QUICK_SPEC, MirrorInfo, MirrorServer, build_mirror
from seamless_interaction.remote.transfer import Transfer


@pytest.fixture(scope="session")
def sample_mirror(tmp_path_factory: pytest.TempPathFactory) -> MirrorInfo:
    return build_mirror(tmp_path_factory.mktemp("sample") / "mirror", QUICK_SPEC)


@pytest.fixture(scope="session")
def sample_server(sample_mirror: MirrorInfo):
    with MirrorServer(sample_mirror.root) as srv:
        yield srv


@pytest.fixture
def mirror_config(sample_server: MirrorServer, tmp_path: Path):
    """A factory of DatasetConfigs pointing at the session mirror, each with its own cache."""

    def make(local_dir: Path | None = None, **kw) -> DatasetConfig:
        return DatasetConfig(local_dir=local_dir or tmp_path / "data", cdn_url=sample_server.cdn_url,
                             hf_url=sample_server.hf_url, assets=sample_server.assets_url,
                             cache_dir=tmp_path / "cache", **kw)

    return make


@pytest.fixture
def make_fs(mirror_config):
    made = []

    def make(local_dir: Path | None = None, **kw) -> SeamlessInteractionFS:
        fs = SeamlessInteractionFS(mirror_config(local_dir, **kw), quiet=True)
        made.append(fs)
        return fs

    yield make
    for fs in made:
        fs.close()


@pytest.fixture
def hub(tmp_path: Path):
    """An empty mirror (tests write their own tars under ``hub/``) served on loopback."""
    (tmp_path / "mirror" / "hub").mkdir(parents=True)
    with MirrorServer(tmp_path / "mirror") as server:
        yield server


@pytest.fixture
def transfer():
    t = Transfer(retries=1)
    yield t
    t.close()
