"""The four metadata tables (filelist, interactions, participants, relationships): locate, fetch once, cache.

A source is a local folder or an http(s) base URL holding ``filelist.csv``, ``interactions.csv``,
``participants.csv`` and ``relationships.csv`` (FORMAT.md section 8). URL sources are downloaded once
into a cache folder keyed by the source, so two mirrors never share files, and reused afterwards
without any network access; ``refresh=True`` fetches them again.

Missing tables: ``filelist.csv`` is required, so its absence raises :class:`CatalogError`. The other
three only feed metadata joins (prompt text, BFI-2 traits, relationships); a source without one of them
(HTTP 403/404, or no such file in the folder) logs a warning and the table is left out of the result, so
the catalog still works with empty joins. For URL sources that absence is remembered with a
``<name>.absent`` marker so that later loads stay offline; ``refresh=True`` asks again. Any other failure
(a 5xx, a refused connection, a timeout) raises :class:`CatalogError` naming the URL and the status.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path

import httpx

from seamless_interaction.constants import ASSET_TABLES
from seamless_interaction.base.errors import CatalogError

__all__ = ["REQUIRED_TABLE", "is_url", "load_tables", "source_cache_dir"]

logger = logging.getLogger(__name__)

REQUIRED_TABLE = "filelist.csv"
# Status codes that mean "this table is not published here" rather than "the server failed".
_ABSENT_STATUSES = (403, 404, 410)
_ABSENT_SUFFIX = ".absent"


def is_url(source: str) -> bool:
    return source.lower().startswith(("http://", "https://"))


def source_cache_dir(source: str, cache_dir: Path | str) -> Path:
    """The folder under ``cache_dir`` that belongs to ``source`` (readable slug + hash of the full source).

    Pure function: creates nothing. Local folders get one too, for the parsed columnar copies.
    """
    normalized = source.rstrip("/") if is_url(source) else str(Path(source).expanduser().resolve())
    slug = re.sub(r"[^A-Za-z0-9]+", "-", normalized.split("://", 1)[-1]).strip("-")[-48:]
    digest = hashlib.sha256(normalized.encode("utf-8")).hexdigest()[:16]
    return Path(cache_dir).expanduser() / "assets" / f"{slug}-{digest}"


def load_tables(
    source: str,
    cache_dir: Path | str,
    *,
    refresh: bool = False,
    headers: Mapping[str, str] | None = None,
    timeout_s: float = 60.0,
) -> dict[str, Path]:
    """Local paths of the metadata tables of ``source``, keyed by file name (``"filelist.csv"``, ...).

    Args:
        source: a local folder, a ``file://`` URL, or an http(s) base URL.
        cache_dir: root of the download cache (URL sources only; local folders are read in place).
        refresh: re-download every table of a URL source even if a cached copy exists.
        headers: extra HTTP headers (e.g. ``Authorization``) for URL sources.
        timeout_s: per-request timeout for URL sources.

    Returns:
        ``{name: path}`` for every table found; ``filelist.csv`` is always present.

    Raises:
        CatalogError: the folder or ``filelist.csv`` is missing, or a fetch failed.
    """
    if is_url(source):
        return _fetch_url_tables(source.rstrip("/"), Path(cache_dir), refresh=refresh, headers=headers,
                                 timeout_s=timeout_s)
    return _local_tables(source)


def _local_tables(source: str) -> dict[str, Path]:
    folder = Path(source[len("file://"):] if source.startswith("file://") else source).expanduser()
    if not folder.is_dir():
        raise CatalogError(f"metadata source {source!r} is not a folder or an http(s) URL")
    found: dict[str, Path] = {}
    for name in ASSET_TABLES:
        path = folder / name
        if path.is_file():
            found[name] = path
        elif name == REQUIRED_TABLE:
            raise CatalogError(f"required metadata table {path} does not exist")
        else:
            logger.warning("metadata table %s does not exist; its joins will be empty", path)
    return found


def _fetch_url_tables(
    base: str, cache_dir: Path, *, refresh: bool, headers: Mapping[str, str] | None, timeout_s: float
) -> dict[str, Path]:
    folder = source_cache_dir(base, cache_dir)
    todo = [name for name in ASSET_TABLES if refresh or not _is_cached(folder, name)]
    if todo:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CatalogError(f"cannot create the metadata cache folder {folder}: {exc}") from exc
        with httpx.Client(follow_redirects=True, headers=dict(headers or {}), timeout=timeout_s) as client:
            for name in todo:
                _fetch_one(client, f"{base}/{name}", folder, name)
    found: dict[str, Path] = {}
    for name in ASSET_TABLES:
        if (folder / name).is_file():
            found[name] = folder / name
        else:
            logger.warning("metadata table %s/%s is not published; its joins will be empty", base, name)
    return found


def _is_cached(folder: Path, name: str) -> bool:
    return (folder / name).is_file() or (folder / (name + _ABSENT_SUFFIX)).is_file()


def _fetch_one(client: httpx.Client, url: str, folder: Path, name: str) -> None:
    """Download one table to ``folder/name`` atomically, or record that the source lacks it."""
    target, marker = folder / name, folder / (name + _ABSENT_SUFFIX)
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, client.stream("GET", url) as response:
            if response.status_code in _ABSENT_STATUSES and name != REQUIRED_TABLE:
                logger.warning("metadata table %s answered HTTP %d; treating it as absent", url,
                               response.status_code)
                marker.touch()
                target.unlink(missing_ok=True)
                return
            if response.status_code != 200:
                raise CatalogError(f"could not fetch metadata table {url}: HTTP {response.status_code}")
            for chunk in response.iter_bytes():
                out.write(chunk)
        os.replace(tmp_name, target)
        marker.unlink(missing_ok=True)
        logger.info("fetched metadata table %s", url)
    except httpx.HTTPError as exc:
        raise CatalogError(f"could not fetch metadata table {url}: {exc}") from exc
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
