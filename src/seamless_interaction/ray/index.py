"""``build_index`` on Ray: the conversation index (``operations/index.py``) built one task per archive group.

Each task runs the index build for its archives into a private folder on its node and returns the
per-archive parts (parquet bytes); the driver alone writes them into its index folder, then runs the
ordinary build over the whole scope, which finds every archive just indexed unchanged (same Hub sha256
and size) and only consolidates the tables and the metadata. So the index folder has one writer, as
the manifest does in ``download``. The catalog travels once through the object store; the HF token by
the workers' environment. Archives the index already holds are re-read by the tasks: for an update of
a few archives, the single-machine ``seamless-interaction index build`` is the cheaper command.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
from collections.abc import Iterable
from typing import Any

from seamless_interaction.base.config import DatasetConfig
from seamless_interaction.base.errors import SeamlessError
from seamless_interaction.ray.cluster import connect, token_runtime_env

logger = logging.getLogger(__name__)

__all__ = ["IndexUnavailableError", "build_index"]

ARCHIVES_PER_TASK = 4


class IndexUnavailableError(SeamlessError, NotImplementedError):
    """The index operation this front end distributes is not part of this installation."""


def _index_module():
    try:
        from seamless_interaction.operations import index
    except ImportError as exc:
        raise IndexUnavailableError(f"build_index on Ray needs seamless_interaction.operations.index ({exc})") from exc
    return index


def _index_task(refs: list[tuple], config: DatasetConfig, catalog, version, route: str) -> dict[str, Any]:
    """One task: the ordinary build of ``refs`` into a private folder; returns its parts' bytes. (``catalog``
    was passed as an object ref: Ray hands the task the object, fetched once per node.)"""
    from seamless_interaction.remote.transfer import Transfer

    index = _index_module()
    cfg = config.resolved()
    assert cfg.assets and cfg.hf_url and cfg.cdn_url
    with tempfile.TemporaryDirectory(prefix="si-index-") as tmp, Transfer.from_config(cfg) as transfer:
        report = index.build_index(transfer, catalog, assets=cfg.assets, hf_url=cfg.hf_url, cdn_url=cfg.cdn_url,
                                   cache_dir=tmp, archives=refs, route=route, quiet=True, version=version)
        parts = index.index_dir(tmp, cfg.assets, cfg.hf_url) / "parts"
        return {"parts": {p.name: p.read_bytes() for p in parts.glob("*.parquet")}, "failed": list(report.failed)}


def build_index(selection: Iterable[tuple] | None = None, *, config: DatasetConfig | None = None, catalog=None,
                route: str = "auto", archives_per_task: int = ARCHIVES_PER_TASK, retries: int = 3,
                address: str | None = None):
    """Build the conversation index of ``selection`` on Ray; returns the driver's final ``BuildReport``.

    ``selection``: ``(label, split)``, ``(label, split, batch)`` or ``(label, split, batch, archive)``
    tuples (default: every archive of the catalog). The index lands where the single-machine build puts
    it (the config's ``cache_dir``), so ``query`` and the app find it.
    """
    import ray

    from seamless_interaction.catalog.tables import Catalog
    from seamless_interaction.remote.transfer import Transfer

    index = _index_module()
    cfg = (config or DatasetConfig()).resolved()
    assert cfg.assets and cfg.hf_url and cfg.cdn_url and cfg.cache_dir
    if catalog is None:
        catalog = Catalog.load(cfg.assets, cfg.cache_dir)
    refs: list[tuple] = []
    for item in selection if selection is not None else catalog.labels_splits():
        label, split, *rest = item
        batches = [int(rest[0])] if rest else catalog.batches(label, split)
        for b in batches:
            arcs = [int(rest[1])] if len(rest) > 1 else catalog.archives(label, split, b)
            refs += [(label, split, int(b), int(a)) for a in arcs]
    refs = list(dict.fromkeys(refs))
    with Transfer.from_config(cfg) as transfer:
        version = index.catalog_version(transfer, cfg.assets, cfg.cache_dir, cfg.hf_url)

        def local(scope: list[tuple]):
            return index.build_index(transfer, catalog, assets=cfg.assets, hf_url=cfg.hf_url, cdn_url=cfg.cdn_url,
                                     cache_dir=cfg.cache_dir, archives=scope, route=route, quiet=True,
                                     version=version)

        local([])  # the version check (and a rebuild's wipe) happen before any part is written
        connect(address)
        env = token_runtime_env(cfg.hf_token)
        task = ray.remote(_index_task).options(max_retries=retries, retry_exceptions=[OSError],
                                               **({"runtime_env": env} if env else {}))
        catalog_ref = ray.put(catalog)
        worker_cfg = dataclasses.replace(cfg, hf_token=None)
        pending = [task.remote(refs[i:i + archives_per_task], worker_cfg, catalog_ref, version, route)
                   for i in range(0, len(refs), archives_per_task)]
        parts_dir = index.index_dir(cfg.cache_dir, cfg.assets, cfg.hf_url) / "parts"
        parts_dir.mkdir(parents=True, exist_ok=True)
        failed: list[str] = []
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            out = ray.get(done[0])
            failed += out["failed"]
            for name, data in out["parts"].items():  # the driver is the index folder's one writer
                tmp = parts_dir / f".{name}.tmp"
                tmp.write_bytes(data)
                os.replace(tmp, parts_dir / name)
        report = local(refs)  # finds the new parts unchanged; consolidates the tables and the metadata
    report.failed = list(dict.fromkeys(failed + report.failed))
    logger.info("index on Ray: %d archives in %d tasks", len(refs), -(-len(refs) // archives_per_task))
    return report
