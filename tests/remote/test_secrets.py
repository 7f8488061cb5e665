"""The HF token never shows: not in a repr, an error message or a DEBUG log record of a full download."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from seamless_interaction.base.config import DatasetConfig
from seamless_interaction.base.errors import SeamlessError
from seamless_interaction.fs import SeamlessInteractionFS
from seamless_interaction.mirror import MirrorInfo, MirrorServer
from seamless_interaction.mirror.server import HubBehaviour

SECRET = "hf_SeCrEtVaLuE0123456789abcdefXYZ"


def _reprs(*objects: object) -> list[str]:
    """repr() of each object and of every attribute one level down (the engine's parts included)."""
    out = []
    for obj in objects:
        out.append(repr(obj))
        for value in getattr(obj, "__dict__", {}).values():
            if not isinstance(value, str):
                out.append(repr(value))
    return out


def test_token_absent_from_reprs_errors_and_debug_logs(sample_mirror: MirrorInfo, tmp_path: Path, caplog):
    caplog.set_level(logging.DEBUG)  # every logger, httpx and httpcore included
    errors: list[BaseException] = []
    with MirrorServer(sample_mirror.root, behaviour=HubBehaviour(other_host="127.0.0.2", gated=True,
                                                                 granted_tokens=frozenset({SECRET}))) as srv:
        cfg = DatasetConfig(local_dir=tmp_path / "d", cdn_url=srv.cdn_url, hf_url=srv.hf_url,
                            assets=srv.assets_url, cache_dir=tmp_path / "c", hf_token=SECRET)
        archives = [a for a in sample_mirror.archives if a != sample_mirror.missing_archive]
        with SeamlessInteractionFS(cfg, quiet=True) as fs:
            fs.gather_file_id_data_from_s3(sample_mirror.movement[0])
            label, split, batch, archive = archives[0]
            fs.download_archive_from_hf(archive, label=label, split=split, batch=batch)
            fs.fetch_members(*archives[1])
            fs.get_tar_archive_size(label, split, batch, archive)
            label, split, batch, archive = sample_mirror.missing_archive
            try:
                fs.download_archive_from_hf(archive, label=label, split=split, batch=batch)
            except SeamlessError as e:
                errors.append(e)
            reprs = _reprs(fs, cfg, fs.config, fs.transfer, fs.transfer.http, fs.transfer.http.scope)
        # A token without access: the refusal names what to do, not the token.
        other = "hf_OtherSecret9876543210fedcba"
        with SeamlessInteractionFS(DatasetConfig(local_dir=tmp_path / "e", cdn_url=srv.cdn_url, hf_url=srv.hf_url,
                                                 assets=srv.assets_url, cache_dir=tmp_path / "c2",
                                                 hf_token=other), quiet=True) as fs2:
            label, split, batch, archive = archives[0]
            with pytest.raises(SeamlessError) as refused:
                fs2.download_archive_from_hf(archive, label=label, split=split, batch=batch)
            errors.append(refused.value)
            reprs += _reprs(fs2, fs2.config, fs2.transfer)
        assert any(r.authorization == f"Bearer {SECRET}" for r in srv.requests)  # it was really used
    assert len(errors) == 2 and len(caplog.records) > 50
    texts = reprs + [str(e) for e in errors] + [repr(e) for e in errors]
    texts += [r.getMessage() for r in caplog.records] + [repr(r.args) for r in caplog.records]
    for token in (SECRET, other):
        leaks = [t for t in texts if token in t]
        assert leaks == []
    assert "hf_token='***'" in repr(cfg)
