"""Fixtures for the app tests: a mirror with 10-second media, served on loopback, and a local folder
that already holds one interaction pair downloaded through the CDN route."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
pytest.importorskip("plotly")

from seamless_interaction.base.config import DatasetConfig
from seamless_interaction.constants import (
    ENV_ASSETS,
    ENV_CACHE_DIR,
    ENV_CDN_URL,
    ENV_HF_URL,
)
from seamless_interaction.mirror import (
    MirrorInfo,
    MirrorServer,
    MirrorSpec,
    build_mirror,
)

ENV_LOCAL_DIR = "SEAMLESS_INTERACTION_LOCAL_DIR"
# Long enough to play, pause and seek in a browser; short enough to build in a few seconds.
MEDIA_SECONDS = 10.0


@dataclass
class AppSetup:
    mirror: MirrorInfo
    server: MirrorServer
    local_dir: Path
    cache_dir: Path
    key: str  # the interaction downloaded into local_dir
    pair: list[str]

    def env(self, local_dir: Path | None = None) -> dict[str, str]:
        return {
            ENV_CDN_URL: self.server.cdn_url,
            ENV_HF_URL: self.server.hf_url,
            ENV_ASSETS: self.server.assets_url,
            ENV_CACHE_DIR: str(self.cache_dir),
            ENV_LOCAL_DIR: str(local_dir or self.local_dir),
        }


@pytest.fixture(scope="session")
def app_mirror(tmp_path_factory: pytest.TempPathFactory) -> MirrorInfo:
    return build_mirror(tmp_path_factory.mktemp("app-mirror") / "mirror", MirrorSpec(duration_s=MEDIA_SECONDS))


@pytest.fixture(scope="session")
def app_setup(app_mirror: MirrorInfo, tmp_path_factory: pytest.TempPathFactory):
    from seamless_interaction.fs import SeamlessInteractionFS

    base = tmp_path_factory.mktemp("app")
    with MirrorServer(app_mirror.root) as server:
        setup_ = AppSetup(app_mirror, server, base / "data", base / "cache", "", [])
        # A V00 pair (movement features, transcript) whose partners sit in different archives.
        pair = next(p for p in app_mirror.split_pairs if p[0] in app_mirror.movement and p[1] in app_mirror.movement
                    and not set(p) & set(app_mirror.no_transcript))
        setup_.key, setup_.pair = pair[0][:19], list(pair)
        cfg = DatasetConfig(local_dir=setup_.local_dir, cdn_url=server.cdn_url, hf_url=server.hf_url,
                            assets=server.assets_url, cache_dir=setup_.cache_dir)
        with SeamlessInteractionFS(cfg, quiet=True) as fs:
            fs.download_batch_from_s3(setup_.pair)
        yield setup_


@pytest.fixture
def app_env(app_setup: AppSetup, monkeypatch: pytest.MonkeyPatch) -> AppSetup:
    """The in-process environment AppTest scripts read (endpoints, cache, local folder)."""
    for name, value in app_setup.env().items():
        monkeypatch.setenv(name, value)
    return app_setup

