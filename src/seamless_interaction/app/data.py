"""Streamlit glue shared by the pages: settings, cached catalog and filesystem, inventory, media URLs.

Heavy objects are made once per process (``st.cache_resource``: the catalog) and
derived data once per input (``st.cache_data``: archive sizes, plot tables, player payloads). The
endpoints come from :class:`DatasetConfig` and its environment variables, so the app talks to the
real dataset or to a mirror with no code change; the local folder comes from
``SEAMLESS_INTERACTION_LOCAL_DIR`` (set by ``launch_app``) and can be changed in the sidebar.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import streamlit as st

from seamless_interaction.app.launch import ENV_LOCAL_DIR
from seamless_interaction.app.local import LocalInventory, scan_local_dir
from seamless_interaction.app.media import registry
from seamless_interaction.base.config import DatasetConfig, default_local_dir
from seamless_interaction.catalog.tables import Catalog
from seamless_interaction.constants import DEFAULT_CDN_URL
from seamless_interaction.local.manifest import MANIFEST_NAME

__all__ = [
    "archive_size",
    "catalog",
    "config",
    "file_signature",
    "file_stamp",
    "index_folder",
    "initial_local_dir",
    "invalidate_inventory",
    "inventory",
    "is_mirror",
    "local_dir",
    "make_fs",
    "media_url",
    "require_catalog",
    "tables",
]

LOCAL_DIR_KEY = "local_dir"


def initial_local_dir() -> Path:
    env = os.environ.get(ENV_LOCAL_DIR)
    return Path(env).expanduser() if env else default_local_dir()


def local_dir() -> Path:
    """The folder the session works on (sidebar setting, shared by every page)."""
    if LOCAL_DIR_KEY not in st.session_state:
        st.session_state[LOCAL_DIR_KEY] = str(initial_local_dir())
    return Path(st.session_state[LOCAL_DIR_KEY]).expanduser()


def config(local: Path | None = None) -> DatasetConfig:
    """The resolved configuration: endpoints from the environment, the session's local folder."""
    return DatasetConfig(local_dir=local or local_dir()).resolved()


def is_mirror(cfg: DatasetConfig) -> bool:
    return (cfg.cdn_url or "").rstrip("/") != DEFAULT_CDN_URL


@st.cache_resource(show_spinner="Loading the dataset catalog…")
def _catalog(assets: str, cache_dir: str) -> Catalog:
    return Catalog.load(assets, Path(cache_dir))


def catalog(cfg: DatasetConfig | None = None) -> Catalog:
    """The catalog for the configured endpoints; raises CatalogError when it cannot be fetched."""
    cfg = cfg or config()
    return _catalog(str(cfg.assets), str(cfg.cache_dir))


def require_catalog() -> Catalog:
    """The catalog, or an error box explaining why it is unavailable and a stop of the page."""
    try:
        return catalog()
    except Exception as exc:  # shown, never swallowed: the page cannot work without it
        cfg = config()
        st.error(f"The dataset catalog could not be loaded from `{cfg.assets}`: {type(exc).__name__}: {exc}\n\n"
                 "Without network access, start the app on the embedded sample with "
                 "`seamless-interaction demo --app`.")
        st.stop()
        raise  # unreachable: st.stop() raises


def make_fs(progress: Any = None, local: Path | None = None):
    """A fresh :class:`SeamlessInteractionFS` sharing the cached catalog, reporting to ``progress``.

    One per operation: a Transfer holds a connection pool and a progress sink, which must not be
    shared between browser sessions downloading at the same time.
    """
    from seamless_interaction.fs import SeamlessInteractionFS

    cfg = config(local)
    return SeamlessInteractionFS(cfg, catalog=catalog(cfg), quiet=True, progress=progress, lazy=True)


@st.cache_data(show_spinner=False, ttl=3600, max_entries=4096)
def archive_size(hf_url: str, label: str, split: str, batch: int, archive: int) -> int:
    """Bytes of one Hub archive (a HEAD request), cached for an hour."""
    fs = make_fs()
    try:
        return fs.get_tar_archive_bytes(label, split, batch, archive)
    finally:
        fs.close()


@st.cache_data(show_spinner=False, ttl=5, max_entries=8)
def _inventory(root: str, generation: int, manifest_stamp: tuple[int, int] | None) -> LocalInventory:
    return scan_local_dir(root)


def inventory(root: Path | None = None) -> LocalInventory:
    """What is on disk: rescanned when the manifest changes (every download and delete through the
    toolkit writes it, from any session), after :func:`invalidate_inventory`, and at least every 5 s
    (files changed by hand)."""
    root = Path(root or local_dir())
    try:
        st_ = (root / MANIFEST_NAME).stat()
        stamp: tuple[int, int] | None = (st_.st_size, st_.st_mtime_ns)
    except OSError:
        stamp = None
    return _inventory(str(root), st.session_state.get("_inventory_generation", 0), stamp)


def invalidate_inventory() -> None:
    st.session_state["_inventory_generation"] = st.session_state.get("_inventory_generation", 0) + 1


def media_url(path: Path, root: Path | None = None) -> str:
    """The same-origin URL path the page plays ``path`` (a media file under the local folder) from."""
    return registry().site(Path(root or local_dir())).url_for(path, st.get_option("server.baseUrlPath") or "")


def index_folder(cfg: DatasetConfig | None = None) -> Path:
    """Where ``seamless-interaction index`` keeps the conversation index of the configured endpoints."""
    from seamless_interaction.operations.index import index_dir

    cfg = cfg or config()
    return index_dir(str(cfg.cache_dir), str(cfg.assets), str(cfg.hf_url))


def file_stamp(path: Path) -> tuple[int, int] | None:
    try:
        st_ = path.stat()
    except OSError:
        return None
    return st_.st_size, st_.st_mtime_ns


# A resource, not data: every page run would otherwise unpickle a copy of the 130,000-row frames.
# Callers only read them (filters make new frames).
@st.cache_resource(show_spinner=False, max_entries=4)
def _tables(assets: str, cache_dir: str, folder: str, stamp: tuple | None) -> dict[str, Any]:
    from seamless_interaction.app.finder import (
        file_frame,
        index_tables,
        interaction_frame,
    )

    cat = catalog(config())
    files = file_frame(cat)
    inter_stats, file_stats = index_tables(folder)
    if file_stats is not None:
        files = files.merge(file_stats, on="file_id", how="left")
    return {"files": files, "interactions": interaction_frame(cat, files, inter_stats),
            "index": inter_stats is not None}


def tables() -> dict[str, Any]:
    """``{"files", "interactions", "index"}``: per-file and per-interaction frames of the catalog, with
    the index's statistics (durations, turn-taking) when it is built; recomputed when the index changes."""
    cfg = config()
    folder = index_folder(cfg)
    return _tables(str(cfg.assets), str(cfg.cache_dir), str(folder), file_stamp(folder / "interaction_stats.parquet"))


def file_signature(paths: list[Path]) -> tuple:
    """(path, size, mtime) of each file: a cache key that changes when a file is replaced."""
    out = []
    for p in paths:
        try:
            st_ = p.stat()
            out.append((str(p), st_.st_size, st_.st_mtime_ns))
        except OSError:
            out.append((str(p), -1, -1))
    return tuple(out)
