"""The official toolkit's API, ``SeamlessInteractionFS``, ``DatasetConfig`` and ``InteractionKey``, as a thin facade.

Code written for facebookresearch/seamless_interaction runs unchanged: the official names keep their
signatures, defaults, return shapes and error types (COMPATIBILITY.md lists every deliberate
difference and where the richer answers live). The work is done by the modules named for each concept:
:mod:`catalog` (ids, tables and the official selections), :mod:`urls` (plans), :mod:`transfer`
(HTTP), :mod:`cdn` and :mod:`hub` (the two routes), :mod:`archive` and :mod:`layout` (local files),
:mod:`access` (time-aligned reading).
"""

from __future__ import annotations

import io
import logging
import os
import random
from contextlib import AbstractContextManager
from dataclasses import fields as dataclass_fields
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from seamless_interaction.routes import cdn

from seamless_interaction.routes import hub
from seamless_interaction.catalog import select
from seamless_interaction.catalog.tables import Catalog
from seamless_interaction.base.config import DatasetConfig
from seamless_interaction.base.errors import InvalidIdError, MissingPartError, NotDownloadedError, SeamlessError
from seamless_interaction.base.formats import parse_jsonl
from seamless_interaction.base.ids import (
    ArchiveRef, InteractionKey, validate_file_id, validate_index, validate_interaction_key, validate_label,
    validate_modalities, validate_split,
)
from seamless_interaction.base.parallel import map_parallel
from seamless_interaction.local.layout import ensure_root, glob_bundle
from seamless_interaction.local.manifest import Manifest
from seamless_interaction.remote.transfer import Progress, TqdmProgress, Transfer
from seamless_interaction.remote.urls import cdn_urls

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from seamless_interaction.access.aligned import Interaction, Participant
    from seamless_interaction.operations.index import BuildReport
    from seamless_interaction.operations.plan import DownloadPlan, LinkModel
    from seamless_interaction.operations.verify import Report

__all__ = ["DatasetConfig", "InteractionKey", "SeamlessInteractionFS", "wget"]

logger = logging.getLogger(__name__)

_GIB = 1024 ** 3
# File ids per transfer batch of download_batch_from_s3: enough for their round trips and npz building
# to overlap each other's media, few enough that the first ids are complete early (see gather_many).
_IDS_PER_TRANSFER = 4


class _Wget:
    """Stand-in for the ``wget`` package that the official module exposed as ``fs.wget``.

    Code written for the official toolkit (its own tests among it) patches
    ``seamless_interaction.fs.wget``; only :meth:`SeamlessInteractionFS._wget_download_from_s3`
    calls it. Our routes use the transfer engine directly and never go through here.
    """

    @staticmethod
    def download(url: str, out: str | None = None, bar: object = None) -> str:
        """Fetch ``url`` to ``out`` (a file, a folder, or the URL's name here) atomically; the path."""
        del bar  # the wget package's console bar; ours reports through logging only
        name = url.rstrip("/").rsplit("/", 1)[-1]
        dest = Path(out) / name if out is not None and Path(out).is_dir() else Path(out or name)
        with Transfer.from_config(DatasetConfig(), progress=TqdmProgress(disable=True)) as engine:
            engine.fetch(url, dest)
        return str(dest)


wget = _Wget()


class SeamlessInteractionFS:
    """Find, fetch and locate Seamless Interaction data.

    ``SeamlessInteractionFS()`` uses the real endpoints; a ``DatasetConfig`` (or the
    ``SEAMLESS_INTERACTION_*`` environment variables) points it at a mirror.

    As the official constructor did, this one creates ``local_dir`` and loads the filelist (fetched
    once into the cache, read from there afterwards); a filelist that cannot be loaded logs a warning
    and the first method that needs it raises :class:`~seamless_interaction.base.errors.CatalogError`.
    ``lazy=True`` (the CLI and the app) does neither until a method needs it. ``filelist_path`` reads
    the tables from a local CSV (the filelist alone) or a folder of the four tables instead.
    ``dry_run=True`` makes the CDN route list what it would fetch without fetching or writing.
    """

    def __init__(self, config: DatasetConfig | None = None, *, local_dir: str | Path | None = None,
                 filelist_path: str | Path | None = None, dry_run: bool = False, num_workers: int | None = None,
                 catalog: Catalog | None = None, quiet: bool = False, progress: Progress | None = None,
                 lazy: bool = False, **overrides) -> None:
        self.config = _with_overrides(config, local_dir=local_dir, num_workers=num_workers, **overrides)
        self._catalog = catalog
        self._filelist_path = filelist_path
        self._dry_run = bool(dry_run)
        self._frame: pd.DataFrame | None = None  # what _cached_filelist was given or built
        self._load_error: Exception | None = None
        # One private generator for calls without a seed: the official toolkit used the global one.
        self._random = random.Random(self.config.seed)
        self._transfer: Transfer | None = None
        self._manifest: Manifest | None = None
        self.quiet = quiet
        # Byte progress of every download (a tqdm bar by default; the app passes its own).
        self._progress = progress
        if not lazy:
            try:
                ensure_root(self.local_dir)
            except OSError as exc:
                logger.error("Failed to create local directory %s: %s", self.config.local_dir, exc)
                raise
            if catalog is None:
                self._load_filelist_cache()

    # ------------------------------------------------------------------ plumbing
    @property
    def config(self) -> DatasetConfig:
        return self._config

    @config.setter
    def config(self, value: DatasetConfig) -> None:
        # Endpoints are filled in once here, so a config assigned later (official code does) works too.
        self._config = value.resolved()

    @property
    def num_workers(self) -> int:
        """File ids or archives fetched at once (the official meaning); HTTP connections are the engine's."""
        return self.config.num_workers or 1

    @num_workers.setter
    def num_workers(self, value: int) -> None:
        self.config = replace(self.config, num_workers=value)

    @property
    def local_dir(self) -> Path:
        return Path(str(self.config.local_dir))  # never None once the config is resolved

    # The config is resolved in __init__: these are never None (typed views for the calls below).
    @property
    def _hf_url(self) -> str:
        return str(self.config.hf_url)

    @property
    def _cdn_url(self) -> str:
        return str(self.config.cdn_url)

    @property
    def _assets(self) -> str:
        return str(self.config.assets)

    @property
    def _cache_dir(self) -> Path:
        return Path(str(self.config.cache_dir))

    @property
    def catalog(self) -> Catalog:
        """The metadata tables, fetched once into the cache and indexed (lazy)."""
        if self._catalog is None:
            self._catalog = self._open_catalog()
            self._load_error = None
        return self._catalog

    def _open_catalog(self) -> Catalog:
        cache = self._cache_dir
        if self._filelist_path is None:
            return Catalog.load(self._assets, cache, timeout_s=self.config.timeout_s)
        path = Path(self._filelist_path).expanduser()
        if path.is_dir():
            return Catalog.load(str(path), cache)
        return Catalog.from_paths({"filelist.csv": path})

    def _load_filelist_cache(self) -> None:
        """(Re)load the filelist; a failure logs a warning and leaves it empty, as the official method did."""
        self._catalog, self._frame = None, None
        try:
            self._catalog = self._open_catalog()
        except (SeamlessError, OSError) as exc:
            self._load_error = exc
            logger.warning("Could not load filelist: %s", exc)
            return
        self._load_error = None
        logger.info("Loaded filelist with %d entries", len(self._catalog))

    @property
    def _cached_filelist(self) -> pd.DataFrame:
        """The filelist as the official pandas DataFrame; assigning a DataFrame replaces the catalog's
        filelist (its metadata joins are kept), the official way to work on a chosen subset."""
        if self._frame is None:
            if self._catalog is None and self._load_error is None:
                self._load_filelist_cache()
            if self._catalog is None:
                import pandas as pd

                return pd.DataFrame()
            self._frame = select.filelist_frame(self._catalog)
        return self._frame

    @_cached_filelist.setter
    def _cached_filelist(self, frame: pd.DataFrame | None) -> None:
        if frame is None:
            self._catalog, self._frame, self._load_error = None, None, None
            return
        self._catalog = select.catalog_from_frame(frame, joins_from=self._catalog)
        self._frame, self._load_error = frame, None

    @property
    def transfer(self) -> Transfer:
        if self._transfer is None:
            # The token goes to the configured Hub only; listings are cached by commit in cache_dir.
            self._transfer = Transfer.from_config(self.config,
                                                  progress=self._progress or TqdmProgress(disable=self.quiet))
        return self._transfer

    @property
    def manifest(self) -> Manifest:
        if self._manifest is None:
            self._manifest = Manifest(self.local_dir)
        return self._manifest

    def close(self) -> None:
        if self._transfer is not None:
            self._transfer.close()
            self._transfer = None

    def __enter__(self) -> SeamlessInteractionFS:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _rng(self, seed: int | None) -> random.Random:
        return random.Random(seed) if seed is not None else self._random

    def _get_preferred_vendors(self) -> list[str]:
        return list(self.config.preferred_vendors)

    def _vendors(self, preferred_vendors_only: bool | None) -> tuple[str, ...] | None:
        use = self.config.preferred_vendors_only if preferred_vendors_only is None else preferred_vendors_only
        return tuple(self.config.preferred_vendors) if use else None

    def _label_split(self, label: str | None, split: str | None) -> tuple[str, str]:
        # Download targets are checked here, before any request: they become folder names under local_dir.
        return validate_label(label or self.config.label), validate_split(split or self.config.split)

    def _query_scope(self, label: str | None, split: str | None) -> tuple[str, str]:
        # Queries take any label or split, as the official ones did: an unknown one matches nothing
        # (or raises NoCandidatesError), so it must not be rejected up front like a download target.
        return label or self.config.label, split or self.config.split

    # ------------------------------------------------------------------ catalog queries (official shapes)
    def _filter_candidates(self, label: str | None = None, split: str | None = None,
                           preferred_vendors_only: bool | None = None) -> pd.DataFrame:
        """Filelist rows of a label and split (and the preferred vendors), as a DataFrame."""
        label, split = self._query_scope(label, split)
        frame = self._cached_filelist
        if frame.empty:
            return frame
        ids = set(select.candidate_ids(self.catalog, label, split, self._vendors(preferred_vendors_only)))
        return frame[frame["file_id"].isin(ids)]

    def sample_random_file_ids(self, num_samples: int = 1, label: str | None = None, split: str | None = None,
                               preferred_vendors_only: bool | None = None, seed: int | None = None) -> list[str]:
        """Distinct random file ids; ``ValueError`` (NoCandidatesError) when none match."""
        label, split = self._query_scope(label, split)
        return select.sample_file_ids(self.catalog, self._rng(seed), num_samples, label, split,
                                      self._vendors(preferred_vendors_only))

    def _keys_to_file_ids(self, keys: str | list[str], key_type: Literal["interaction", "session"],
                          label: str | None = None, split: str | None = None) -> list[str]:
        return select.keys_to_file_ids(self.catalog, keys, key_type, label, split)

    def get_interaction_pairs(self, interaction_keys: str | list[str] | None = None, num_pairs: int = 1,
                              label: str | None = None, split: str | None = None,
                              preferred_vendors_only: bool | None = None, seed: int | None = None) -> list[list[str]]:
        """Pairs ``[file_id, file_id]`` of the given interaction key(s), or ``num_pairs`` random ones.

        Keys match exactly (the official toolkit matched by prefix, so a key one digit short
        returned other interactions' files); every given key with two participants gives a pair.
        """
        if interaction_keys is None:
            extra = {"seed": seed} if seed is not None else {}
            return self._sample_interaction_pairs(num_pairs, label, split, preferred_vendors_only, **extra)
        return select.group_pairs(self._keys_to_file_ids(interaction_keys, "interaction", label, split))

    def _sample_interaction_pairs(self, num_pairs: int, label: str | None = None, split: str | None = None,
                                  preferred_vendors_only: bool | None = None, seed: int | None = None
                                  ) -> list[list[str]]:
        label, split = self._query_scope(label, split)
        return select.sample_pairs(self.catalog, self._rng(seed), num_pairs, label, split,
                                   self._vendors(preferred_vendors_only))

    def get_session_groups(self, session_keys: str | list[str] | None = None, num_sessions: int = 1,
                           interactions_per_session: int = 4, label: str | None = None, split: str | None = None,
                           preferred_vendors_only: bool | None = None, seed: int | None = None) -> list[list[str]]:
        """The official groups: per session, its first ``interactions_per_session`` **file ids**.

        The official method counted files despite the name; :meth:`get_session_interaction_groups`
        gives whole interactions (both participants) instead.
        """
        if session_keys is None:
            extra = {"seed": seed} if seed is not None else {}
            return self._sample_session_groups(num_sessions, interactions_per_session, label, split,
                                               preferred_vendors_only, **extra)
        return select.session_groups(self.catalog, session_keys, interactions_per_session, label, split)

    def _sample_session_groups(self, num_sessions: int, interactions_per_session: int, label: str | None = None,
                               split: str | None = None, preferred_vendors_only: bool | None = None,
                               seed: int | None = None) -> list[list[str]]:
        label, split = self._query_scope(label, split)
        return select.sample_session_groups(self.catalog, self._rng(seed), num_sessions, interactions_per_session,
                                            label, split, self._vendors(preferred_vendors_only))

    def get_session_interaction_groups(self, session_keys: str | list[str] | None = None, num_sessions: int = 1,
                                       interactions_per_session: int = 4, label: str | None = None,
                                       split: str | None = None, preferred_vendors_only: bool | None = None,
                                       seed: int | None = None) -> list[list[str]]:
        """File ids of up to ``interactions_per_session`` whole interactions for each session."""
        label, split = self._query_scope(label, split)
        return select.session_interaction_groups(self.catalog, self._rng(seed), session_keys, num_sessions,
                                                 interactions_per_session, label, split,
                                                 self._vendors(preferred_vendors_only))

    def get_available_keys(self, key_type: Literal["session", "interaction", "file"] = "interaction",
                           label: str | None = None, split: str | None = None, limit: int | None = None) -> list[str]:
        """Sorted keys of the config's (or the given) label and split, every vendor."""
        label, split = self._query_scope(label, split)
        return select.available_keys(self.catalog, key_type, label, split, limit)

    def get_interaction_metadata(self, interaction_key: str) -> dict:
        """The official summary (ids, participants as ``"0947"`` strings, first archive); ``{}`` if unknown.

        :meth:`get_interaction_details` gives the full join: participant records with archive and
        BFI-2 traits, prompt texts, IPC codes and the relationship.
        """
        return select.interaction_summary(self.catalog, interaction_key)

    def get_interaction_details(self, interaction_key: str) -> dict:
        """Catalog rows of both participants (full ids, suffix kept) with prompt, IPC, relationship, BFI-2."""
        return self.catalog.interaction_metadata(validate_interaction_key(interaction_key))

    def list_batches(self, label: str | None = None, split: str | None = None) -> list[int]:
        label, split = self._query_scope(label, split)
        return self.catalog.batches(label, split) if (label, split) in self.catalog.labels_splits() else []

    def list_archives(self, label: str | None = None, split: str | None = None, batch: int = 0) -> list[int]:
        label, split = self._query_scope(label, split)
        archives = self.catalog.archives(label, split, batch) \
            if (label, split) in self.catalog.labels_splits() else []
        if not archives:
            logger.error("No archives found for %s/%s/%s", label, split, batch)
        return archives

    def get_tar_archive_size(self, label: str | None = None, split: str | None = None, batch: int = 0,
                             archive: int = 0) -> float:
        """Size in GiB (the official unit, labelled "GB" there); :meth:`get_tar_archive_bytes` is exact."""
        return self.get_tar_archive_bytes(label, split, batch, archive) / _GIB

    def get_tar_archive_bytes(self, label: str | None = None, split: str | None = None, batch: int = 0,
                              archive: int = 0) -> int:
        """Exact size in bytes of one Hub archive, from a HEAD request."""
        label, split = self._label_split(label, split)
        return hub.archive_size(self.transfer, self._hf_url, label, split, batch, archive)

    # ------------------------------------------------------------------ CDN route
    def get_path_list_for_file_id_s3(self, file_id: str) -> list[str]:
        """Every CDN URL of ``file_id``; ``ValueError`` (UnknownIdError) when the catalog lacks it."""
        rec = self.catalog.record(file_id)
        return cdn_urls(self._cdn_url, rec.label, rec.split, rec.file_id)

    def _wget_download_from_s3(self, url: str, tmp_dir: str, target_path: str, shared_np_data: dict,
                               shared_json_data: dict, lock: AbstractContextManager) -> None:
        """The official per-URL step, kept for code that calls or patches it (our routes do not use it).

        Fetches one CDN object with ``wget.download`` into ``tmp_dir``; a ``.wav``/``.mp4`` is moved to
        ``target_path`` (the URL's extension is added when it has none), a ``.npy`` is loaded into
        ``shared_np_data`` under its npz key (``smplh:body_pose``), a ``.json``/``.jsonl`` is parsed
        into ``shared_json_data`` under its json key (``metadata:vad``, ``annotations:1P-IS``), both
        while holding ``lock``. An optional object the CDN lacks (403/404) is logged and skipped.
        """
        key, ext = _cdn_object_key(url)
        tmp_path = os.path.join(tmp_dir, url.rsplit("/", 1)[-1])
        try:
            wget.download(url, tmp_path, bar=None)
        except MissingPartError as exc:
            if key in ("wav", "mp4", "metadata:vad") or key.startswith("smplh:"):
                raise
            logger.info("optional object absent: %s (%s)", url, exc)
            return
        if ext in (".wav", ".mp4"):
            final = target_path if os.path.splitext(target_path)[1] else target_path + ext
            Path(final).parent.mkdir(parents=True, exist_ok=True)
            os.rename(tmp_path, final)
            return
        try:
            data = Path(tmp_path).read_bytes()
        finally:
            Path(tmp_path).unlink(missing_ok=True)
        if ext == ".npy":
            import numpy as np

            array = np.load(io.BytesIO(data), allow_pickle=False)
            with lock:
                shared_np_data[key] = array
        else:
            records = parse_jsonl(data, name=url)
            with lock:
                shared_json_data[key] = records

    def gather_file_id_data_from_s3(self, file_id: str, *, num_workers: int | None = None,
                                    local_dir: str | Path | None = None) -> None:
        """Fetch every CDN object of ``file_id`` and write its ``.wav/.mp4/.npz/.json`` bundle.

        Returns None, as the official method did; :meth:`gather_file_id` returns the four paths.
        ``num_workers`` is accepted for compatibility: the parts share the transfer engine's
        connections. With ``dry_run`` the URLs are logged and nothing is fetched or written.
        """
        if self._dry_run:
            urls = self.get_path_list_for_file_id_s3(validate_file_id(file_id))
            logger.info("dry run: %s would fetch %d objects, e.g. %s", file_id, len(urls), urls[0])
            return
        self.gather_file_id(file_id, local_dir=local_dir)

    def gather_file_id(self, file_id: str, *, local_dir: str | Path | None = None) -> dict[str, Path]:
        """Fetch every CDN object of ``file_id`` and write its bundle; returns the four final paths.

        Raises :class:`~seamless_interaction.base.errors.InvalidIdError` (a ``ValueError``) for a
        malformed id and ``UnknownIdError`` (a ``KeyError`` and ``ValueError``) for one the catalog
        lacks, both before any request; ``MissingPartError``/``TransferError`` (with URL and status)
        when a required part is absent or a transfer fails. Nothing is left at a final path on failure.
        """
        validate_file_id(file_id)
        root = Path(local_dir) if local_dir is not None else self.local_dir
        res = cdn.gather_file_id(self.transfer, self.catalog, self._cdn_url, root, file_id,
                                 manifest=Manifest(root) if local_dir is not None else self.manifest)
        return res.paths

    def download_batch_from_s3(self, batch: list[str], local_dir: str | Path | None = None,
                               num_workers: int | None = None) -> bool:
        """Download and assemble every file id of ``batch``; True, as the official method returned.

        The ids' parts go to the transfer engine as a few large batches (:meth:`gather_file_ids`, a
        few ids each, two batches in flight), so one id's round trips and npz building overlap the
        others' media and the connections stay busy whatever ``num_workers`` is. Where a subclass or
        a patch replaced :meth:`gather_file_id_data_from_s3`, each id goes through it instead,
        ``num_workers`` ids at once (the official meaning), all on one engine. The first failure is
        raised (after the work in flight finishes), not logged and skipped.
        """
        ids = self._checked_ids(batch)
        self.transfer.progress.start(None, f"{len(ids)} file ids")
        try:
            if self._dry_run or self._per_id_step_replaced():
                map_parallel(lambda fid: self.gather_file_id_data_from_s3(fid, local_dir=local_dir), ids,
                             num_workers or self.num_workers, name="si-file-id")
            else:
                groups = [ids[i:i + _IDS_PER_TRANSFER] for i in range(0, len(ids), _IDS_PER_TRANSFER)]
                manifest = self._manifest_for(local_dir)  # one writer for the batches in flight
                map_parallel(lambda group: self._gather_many(group, local_dir, manifest), groups, 2,
                             name="si-file-ids")
        finally:
            self.transfer.progress.close()
        return True

    def _per_id_step_replaced(self) -> bool:
        # Official code (and its tests) patch the per-id method on the instance or override it.
        return ("gather_file_id_data_from_s3" in vars(self)
                or type(self).gather_file_id_data_from_s3 is not SeamlessInteractionFS.gather_file_id_data_from_s3)

    def _manifest_for(self, local_dir: str | Path | None) -> Manifest:
        return Manifest(Path(local_dir)) if local_dir is not None else self.manifest

    def _gather_many(self, file_ids: list[str], local_dir: str | Path | None,
                     manifest: Manifest | None = None) -> list[cdn.BundleResult]:
        root = Path(local_dir) if local_dir is not None else self.local_dir
        return cdn.gather_many(self.transfer, self.catalog, self._cdn_url, root, file_ids,
                               manifest=manifest or self._manifest_for(local_dir))

    def gather_file_ids(self, file_ids: list[str], *, local_dir: str | Path | None = None) -> list[dict[str, Path]]:
        """Bundles of several file ids, their parts in one transfer batch; the four paths per id, in order."""
        ids = self._checked_ids(file_ids)
        self.transfer.progress.start(None, f"{len(ids)} file ids")
        try:
            results = self._gather_many(ids, local_dir)
        finally:
            self.transfer.progress.close()
        return [r.paths for r in results]

    def _checked_ids(self, file_ids: str | list[str]) -> list[str]:
        # Malformed and unknown ids fail before the progress bar or any request.
        ids = [validate_file_id(f) for f in select.split_keys(file_ids)]
        for fid in ids:
            self.catalog.record(fid)
        return ids

    # ------------------------------------------------------------------ Hub route
    def download_archive_from_hf(self, archive: int, label: str | None = None, split: str | None = None,
                                 batch: int = 0, local_dir: str | Path | None = None,
                                 extract: bool = True) -> tuple[bool, str]:
        """Download ``{label}/{split}/{batch:04d}/{archive:04d}.tar`` and (by default) extract it.

        Returns ``(True, path)`` like the official method; failures raise (the official method
        returned ``(False, "")`` and logged). Re-running skips only what is verifiably complete.
        """
        label, split = self._label_split(label, split)
        ref = ArchiveRef(label, split, batch, archive)  # checked before any request or write
        root = Path(local_dir) if local_dir is not None else self.local_dir
        res = hub.download_archive(self.transfer, self._hf_url, root, ref.label, ref.split, ref.batch,
                                   ref.archive, extract=extract,
                                   manifest=Manifest(root) if local_dir is not None else self.manifest)
        return True, str(res.path)

    def download_batch_from_hf(self, label: str | None = None, split: str | None = None,
                               batch_idx: int | list[int] | None = None, *, local_dir: str | Path | None = None,
                               num_workers: int | None = None, archive_list: list[int] | None = None,
                               extract: bool = True) -> bool:
        """Archives of one batch, several (a list) or every batch of the split (None), ``num_workers``
        archives at once. Returns True; the first failure is raised. :meth:`download_archives_from_hf`
        returns the paths."""
        self.download_archives_from_hf(label, split, batch_idx, local_dir=local_dir, num_workers=num_workers,
                                       archive_list=archive_list, extract=extract)
        return True

    def download_archives_from_hf(self, label: str | None = None, split: str | None = None,
                                  batch_idx: int | list[int] | None = None, *, local_dir: str | Path | None = None,
                                  num_workers: int | None = None, archive_list: list[int] | None = None,
                                  extract: bool = True) -> list[str]:
        """Like :meth:`download_batch_from_hf`; returns each archive's folder (or tar, without
        ``extract``), in batch then archive order."""
        label, split = self._label_split(label, split)
        if archive_list is not None:
            archive_list = [validate_index(a, "archive") for a in archive_list]
        if batch_idx is None:
            batches = self.list_batches(label, split)
        else:
            batches = [validate_index(b, "batch") for b in ([batch_idx] if isinstance(batch_idx, int) else batch_idx)]
        todo = [(b, a) for b in batches
                for a in (archive_list if archive_list is not None else self.list_archives(label, split, b))]

        def one(item: tuple[int, int]) -> str:
            return self.download_archive_from_hf(item[1], label=label, split=split, batch=item[0],
                                                 local_dir=local_dir, extract=extract)[1]

        return map_parallel(one, todo, num_workers or self.num_workers, name="si-archive")

    def download_archives(self, archives: list[tuple[str, str, int, int]], *, local_dir: str | Path | None = None,
                          extract: bool = True) -> list[str]:
        """Several ``(label, split, batch, archive)`` archives at once; each one's folder (or tar), in order.

        Unlike the official ``num_workers`` archives at a time, every archive shares the engine's
        connections (segments of each where a connection is capped), and each is extracted as soon
        as it is verified while the others still download. The CLI's ``--archive``/``--batch`` use it.
        """
        refs = [ArchiveRef(*a) for a in archives]  # checked before any request or write
        root = Path(local_dir) if local_dir is not None else self.local_dir
        results = hub.download_archives(self.transfer, self._hf_url, root, refs, extract=extract,
                                        manifest=Manifest(root) if local_dir is not None else self.manifest)
        return [str(r.path) for r in results]

    # ------------------------------------------------------------------ local files
    def get_path_list_for_file_id_local(self, file_id: str) -> list[str]:
        """Existing local files of ``file_id`` (wav, mp4, npz, json), whichever route fetched them.

        Works offline: the catalog is used when loaded, else the layout is searched. ``[]`` (and a
        warning) when nothing is there; the official method also raised for ids it did not know.
        """
        validate_file_id(file_id)
        found: list[str] = []
        if self._catalog is not None and file_id in self._catalog:
            rec = self._catalog.record(file_id)
            found = glob_bundle(self.local_dir, file_id, rec.ref)
        if not found:
            found = glob_bundle(self.local_dir, file_id)
        if not found:
            logger.warning("No local files found for %s under %s", file_id, self.local_dir)
        return found

    # ------------------------------------------------------------------ members of remote archives
    def fetch_members(self, label: str, split: str, batch: int, archive: int, file_ids: list[str] | None = None,
                      modalities: tuple[str, ...] = ("npz", "json")) -> list[Path]:
        """Fetch only ``modalities`` (json, mp4, npz, wav) of one Hub archive by HTTP Range reads."""
        from seamless_interaction.routes import members

        ref = ArchiveRef(label, split, batch, archive)  # checked before the catalog or any request
        return members.fetch_archive_members(self.transfer, None, self._hf_url, self.local_dir,
                                             ref.label, ref.split, ref.batch, ref.archive, file_ids=file_ids,
                                             modalities=modalities, cache_dir=self._cache_dir,
                                             manifest=self.manifest)

    def fetch_file_id(self, file_id: str, modalities: tuple[str, ...] = ("npz", "json")) -> list[Path]:
        """One file id's members out of whichever Hub archive holds it."""
        from seamless_interaction.routes import members

        validate_modalities(modalities)
        return members.fetch_file_ids(self.transfer, self.catalog, self._hf_url, self.local_dir,
                                      [validate_file_id(file_id)], modalities=modalities,
                                      cache_dir=self._cache_dir, manifest=self.manifest)

    def fetch_interaction(self, interaction_key: str, modalities: tuple[str, ...] = ("npz", "json")) -> list[Path]:
        """Both participants' members, from the (usually two) archives holding them."""
        from seamless_interaction.routes import members

        key = validate_interaction_key(interaction_key)
        validate_modalities(modalities)
        ids = self.catalog.interaction_file_ids(key)
        return members.fetch_file_ids(self.transfer, self.catalog, self._hf_url, self.local_dir, ids,
                                      modalities=modalities, cache_dir=self._cache_dir,
                                      manifest=self.manifest)

    def _member_archives(self, archives, splits) -> list[ArchiveRef]:
        out = [ArchiveRef(*a) for a in archives or []]
        splits = [(validate_label(label), validate_split(split)) for label, split in splits or []]
        for label, split in splits:
            out += [ArchiveRef(label, split, b, a) for b in self.catalog.batches(label, split)
                    for a in self.catalog.archives(label, split, b)]
        return out

    def plan_members(self, *, file_ids=None, archives=None, splits=None,
                     modalities: tuple[str, ...] = ("npz", "json")) -> dict:
        """Dry run of a member fetch: bytes to fetch against bytes of the whole archives.

        Building the member index costs header reads only (cached afterwards)."""
        from seamless_interaction.routes import members

        validate_modalities(modalities)
        file_ids = [validate_file_id(f) for f in file_ids or []]
        arcs = self._member_archives(archives, splits)
        for fid in file_ids:
            arcs.append(self.catalog.record(fid).ref)
        arcs = sorted(set(arcs))
        selected_ids = list(file_ids or []) if not (archives or splits) else None
        fetch, whole = members.plan_bytes(self.transfer, self.catalog, self._hf_url,
                                          file_ids=selected_ids, archives=None if selected_ids else arcs,
                                          modalities=modalities, cache_dir=self._cache_dir,
                                          local_dir=self.local_dir)
        return {"archives": len(arcs), "bytes": fetch, "archive_bytes": whole,
                "members": None if selected_ids is None else len(selected_ids) * len(modalities)}

    def fetch_members_for(self, *, file_ids=None, archives=None, splits=None,
                          modalities: tuple[str, ...] = ("npz", "json")) -> list[Path]:
        """Member fetch for the CLI: explicit archives and whole splits, plus single file ids."""
        from seamless_interaction.routes import members

        validate_modalities(modalities)
        file_ids = [validate_file_id(f) for f in file_ids or []]
        paths: list[Path] = []
        refs = self._member_archives(archives, splits)
        if refs:
            paths += members.fetch_archives(self.transfer, self._hf_url, self.local_dir, refs, modalities=modalities,
                                            cache_dir=self._cache_dir, manifest=self.manifest)
        if file_ids:
            paths += members.fetch_file_ids(self.transfer, self.catalog, self._hf_url, self.local_dir,
                                            file_ids, modalities=modalities, cache_dir=self._cache_dir,
                                            manifest=self.manifest)
        return paths

    # ------------------------------------------------------------------ time-aligned local access
    def _catalog_if_available(self) -> Catalog | None:
        # Reading local data must work offline: the catalog is used when it loads (it is cached
        # after the first download), else the layout is searched.
        try:
            return self.catalog
        except SeamlessError:
            return None

    def open_participant(self, file_id: str) -> Participant:
        """One participant's local data, every modality on one clock (see :mod:`access`)."""
        from seamless_interaction.access.aligned import open_participant

        file_id = validate_file_id(file_id)
        return open_participant(self.local_dir, file_id, self._catalog_if_available())

    def open_interaction(self, interaction_key: str) -> Interaction:
        """Both participants of an interaction, from local data whichever route fetched them."""
        from seamless_interaction.access.aligned import open_interaction

        interaction_key = validate_interaction_key(interaction_key)
        return open_interaction(self.local_dir, interaction_key, self._catalog_if_available())

    def load_interaction_data(self, file_id: str) -> dict:
        """The official README's ``load_interaction_data`` dict (video, audio, sample_rate, json, npz),
        without OpenCV or librosa."""
        from seamless_interaction.access.aligned import load_interaction_data

        paths = self.get_path_list_for_file_id_local(file_id)
        if not paths:
            raise NotDownloadedError(f"{file_id}: no local files under {self.local_dir}; download it first")
        return load_interaction_data(paths)

    # ------------------------------------------------------------------ conversation index and queries
    @property
    def index_folder(self) -> Path:
        """Where the index of this catalog source and Hub endpoint lives (under the cache folder)."""
        from seamless_interaction.operations.index import index_dir

        return index_dir(self._cache_dir, self._assets, self._hf_url)

    def build_index(self, *, label: str | None = None, split: str | None = None, batch: int | None = None,
                    archives: list[tuple[str, str, int, int]] | None = None, route: str = "auto",
                    workers: int = 4) -> BuildReport:
        """Build or update the conversation index (file_stats, interaction_stats) for the archives in
        scope, reading only headers, json and VAD (see :mod:`operations.index`). Incremental and resumable."""
        from seamless_interaction.operations.index import build_index

        if batch is not None and not (label and split):
            raise ValueError("batch needs label and split")
        return build_index(self.transfer, self.catalog, assets=self._assets, hf_url=self._hf_url,
                           cdn_url=self._cdn_url, cache_dir=self._cache_dir, label=label, split=split,
                           batch=batch, archives=archives, route=route, workers=workers, quiet=self.quiet)

    def query(self, sql: str) -> pa.Table:
        """Run SQL over the views files, interactions, participants, relationships, file_stats,
        interaction_stats and archives (DuckDB; ``pip install seamless-interaction[index]``)."""
        from seamless_interaction.operations.query import QueryEngine

        with QueryEngine(self.catalog, self.index_folder, filelist_sha256=self._filelist_sha256()) as engine:
            return engine.query(sql)

    def _filelist_sha256(self) -> str:
        from seamless_interaction.base.digest import sha256_file
        from seamless_interaction.catalog.assets import load_tables

        return sha256_file(load_tables(self._assets, self._cache_dir)["filelist.csv"])

    def plan_download(self, file_ids: list[str], *, modalities: tuple[str, ...] = ("json", "mp4", "npz", "wav"),
                      link: LinkModel | None = None) -> DownloadPlan:
        """Per archive, the fastest route (whole tar, Range members, CDN objects) for ``file_ids``."""
        from seamless_interaction.operations.plan import plan_download

        known = None
        try:
            table = self.query("SELECT file_id, json_bytes AS json, mp4_bytes AS mp4, npz_bytes AS npz, "
                               "wav_bytes AS wav, npz_raw_bytes AS npz_raw FROM file_stats")
            known = {r.pop("file_id"): r for r in table.to_pylist()}
        except SeamlessError:
            pass  # no index: the tar member sizes stand in
        return plan_download(self.transfer, self.catalog, self._hf_url, file_ids, modalities=modalities,
                             link=link, cache_dir=self._cache_dir, known_sizes=known)

    def execute_plan(self, plan: DownloadPlan) -> list[Path]:
        """Download what ``plan`` says, each archive by its chosen route."""
        from seamless_interaction.operations.plan import execute_plan

        return execute_plan(plan, self.transfer, self.catalog, hf_url=self._hf_url,
                            cdn_url=self._cdn_url, local_dir=self.local_dir, cache_dir=self._cache_dir,
                            manifest=self.manifest)

    # ------------------------------------------------------------------ audit
    def verify(self, *, label: str | None = None, split: str | None = None, batch: int | None = None,
               only: tuple[str, ...] | None = None, deep: bool = False, check_remote: bool = False,
               repair: bool = False) -> Report:
        """Audit the local tree against what was asked for, the catalog and the manifest; ``repair=True``
        refetches exactly what is bad (see :mod:`~seamless_interaction.operations.verify`)."""
        from seamless_interaction.operations.verify import verify

        needs_net = check_remote or repair
        return verify(self.local_dir, lambda: self.catalog, label=label, split=split, batch=batch, only=only,
                      manifest=self.manifest, deep=deep, check_remote=check_remote, repair=repair,
                      transfer=self.transfer if needs_net else None, cdn_url=self._cdn_url,
                      hf_url=self._hf_url, cache_dir=self._cache_dir)


def _with_overrides(config: DatasetConfig | None, **overrides) -> DatasetConfig:
    """``config`` (or the default) with the constructor's keyword arguments applied, as the official
    constructor applied ``local_dir`` and ``num_workers``; any other DatasetConfig field works too."""
    base = config or DatasetConfig()
    known = {f.name for f in dataclass_fields(DatasetConfig)}
    unknown = sorted(k for k in overrides if k not in known)
    if unknown:
        raise TypeError(f"unexpected keyword argument(s): {unknown}")
    given = {k: v for k, v in overrides.items() if v is not None}
    return replace(base, **given) if given else base


def _cdn_object_key(url: str) -> tuple[str, str]:
    """The npz/json key (or ``wav``/``mp4``) and extension of a CDN object URL (FORMAT.md 2.1)."""
    parts = url.split("?", 1)[0].rstrip("/").split("/")
    ext = os.path.splitext(parts[-1])[1]
    if ext in (".wav", ".mp4") and len(parts) >= 2:
        return ext[1:], ext
    if ext in (".npy", ".json", ".jsonl") and len(parts) >= 3:
        return f"{parts[-3]}:{parts[-2]}", ext
    raise InvalidIdError(
        f"{url!r} is not a Seamless Interaction CDN object URL: expected .../<label>/<split>/audio/<id>.wav, "
        "video/<id>.mp4, <group>/<feature>/<id>.npy, metadata/<kind>/<id>.jsonl or annotations/<type>/<id>.json"
    )
