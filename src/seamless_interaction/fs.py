"""The official toolkit's API, ``SeamlessInteractionFS`` and ``DatasetConfig``, as a thin facade.

User code written for facebookresearch/seamless_interaction runs unchanged. The work is done by
the modules named for each concept: :mod:`catalog` (ids and tables), :mod:`urls` (plans),
:mod:`transfer` (HTTP), :mod:`cdn` and :mod:`hub` (the two routes), :mod:`archive` and :mod:`layout`
(local files), :mod:`access` (time-aligned reading). Where the official behaviour was a bug, the
method docstring says what differs.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from seamless_interaction.routes import cdn

from seamless_interaction.routes import hub
from seamless_interaction.catalog.tables import Catalog
from seamless_interaction.base.config import DatasetConfig
from seamless_interaction.base.errors import NotDownloadedError, SeamlessError, UnknownIdError
from seamless_interaction.base.ids import validate_file_id, validate_interaction_key, validate_session_key
from seamless_interaction.local.layout import bundle_paths, find_bundle
from seamless_interaction.local.manifest import Manifest
from seamless_interaction.remote.transfer import Progress, TqdmProgress, Transfer
from seamless_interaction.remote.urls import cdn_urls

if TYPE_CHECKING:
    from seamless_interaction.access.aligned import Interaction, Participant
    from seamless_interaction.operations.verify import Report

__all__ = ["SeamlessInteractionFS", "DatasetConfig"]


class SeamlessInteractionFS:
    """Find, fetch and locate Seamless Interaction data.

    ``SeamlessInteractionFS()`` uses the real endpoints; a ``DatasetConfig`` (or the
    ``SEAMLESS_INTERACTION_*`` environment variables) points it at a mirror. Nothing touches the
    network until a method needs the catalog or a download.
    """

    def __init__(self, config: DatasetConfig | None = None, *, catalog: Catalog | None = None,
                 quiet: bool = False, progress: Progress | None = None, **overrides) -> None:
        # The oldest official releases took keyword arguments (local_dir=..., num_workers=...).
        if overrides:
            base = config or DatasetConfig()
            fields = {k: v for k, v in overrides.items() if v is not None and hasattr(base, k)}
            unknown = set(overrides) - set(fields) - {k for k, v in overrides.items() if v is None}
            if unknown:
                raise TypeError(f"unexpected keyword argument(s): {sorted(unknown)}")
            config = DatasetConfig(**{**base.__dict__, **fields})
        self.config = (config or DatasetConfig()).resolved()
        self._catalog = catalog
        self._transfer: Transfer | None = None
        self._manifest: Manifest | None = None
        self.quiet = quiet
        # Byte progress of every download (a tqdm bar by default; the app passes its own).
        self._progress = progress

    # ------------------------------------------------------------------ plumbing
    @property
    def local_dir(self) -> Path:
        return Path(self.config.local_dir)

    @property
    def catalog(self) -> Catalog:
        """The metadata tables, fetched once into the cache and indexed (lazy)."""
        if self._catalog is None:
            self._catalog = Catalog.load(self.config.assets, Path(self.config.cache_dir))
        return self._catalog

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

    def __enter__(self) -> "SeamlessInteractionFS":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _rng(self, seed: int | None) -> random.Random:
        # A private generator: the official toolkit reseeded Python's global random module.
        return random.Random(seed if seed is not None else self.config.seed)

    def _vendors(self, preferred_vendors_only: bool | None) -> tuple[str, ...] | None:
        use = self.config.preferred_vendors_only if preferred_vendors_only is None else preferred_vendors_only
        return tuple(self.config.preferred_vendors) if use else None

    def _label_split(self, label: str | None, split: str | None) -> tuple[str, str]:
        return label or self.config.label, split or self.config.split

    # ------------------------------------------------------------------ catalog queries
    def sample_random_file_ids(self, num_samples: int = 1, label: str | None = None, split: str | None = None,
                               preferred_vendors_only: bool | None = None, seed: int | None = None) -> list[str]:
        label, split = self._label_split(label, split)
        pool = self.catalog.file_ids(label, split, vendors=self._vendors(preferred_vendors_only))
        if not pool:
            raise UnknownIdError(f"no file ids for {label}/{split} with the chosen vendor filter")
        return self._rng(seed).sample(pool, min(num_samples, len(pool)))

    def get_interaction_pairs(self, interaction_keys: list[str] | None = None, num_pairs: int = 1,
                              label: str | None = None, split: str | None = None,
                              preferred_vendors_only: bool | None = None, seed: int | None = None) -> list[list[str]]:
        """Pairs ``[file_id, file_id]`` of the given interaction keys, or ``num_pairs`` random ones.

        Keys match exactly (the official toolkit matched by prefix, so a key one digit short
        returned other interactions' files). Singleton interactions are skipped.
        """
        if interaction_keys is None:
            label, split = self._label_split(label, split)
            keys = self.catalog.interaction_keys(label, split, vendors=self._vendors(preferred_vendors_only),
                                                 complete_pairs_only=True)
            interaction_keys = self._rng(seed).sample(keys, min(num_pairs, len(keys)))
        pairs = []
        for key in interaction_keys:
            ids = self.catalog.interaction_file_ids(validate_interaction_key(key))
            if len(ids) == 2:
                pairs.append(list(ids))
        return pairs

    def get_session_groups(self, session_keys: list[str] | None = None, num_sessions: int = 1,
                           interactions_per_session: int = 4, label: str | None = None, split: str | None = None,
                           preferred_vendors_only: bool | None = None, seed: int | None = None) -> list[list[str]]:
        """File ids of up to ``interactions_per_session`` interactions for each session."""
        rng = self._rng(seed)
        if session_keys is None:
            label, split = self._label_split(label, split)
            keys = [k for k in self.catalog.session_keys(label, split, vendors=self._vendors(preferred_vendors_only))
                    if len(self.catalog.session_interactions(k)) >= 1]
            # Prefer sessions rich enough to fill the request, as the official sampler does.
            rich = [k for k in keys if len(self.catalog.session_interactions(k)) >= interactions_per_session]
            session_keys = rng.sample(rich or keys, min(num_sessions, len(rich or keys)))
        groups = []
        for key in session_keys:
            interactions = self.catalog.session_interactions(validate_session_key(key))
            chosen = interactions[:interactions_per_session]
            groups.append([fid for ik in chosen for fid in self.catalog.interaction_file_ids(ik)])
        return groups

    def get_available_keys(self, key_type: Literal["session", "interaction", "file"] = "interaction",
                           label: str | None = None, split: str | None = None, limit: int | None = None) -> list[str]:
        if key_type == "file":
            keys = self.catalog.file_ids(label, split)
        elif key_type == "interaction":
            keys = self.catalog.interaction_keys(label, split)
        elif key_type == "session":
            keys = self.catalog.session_keys(label, split)
        else:
            raise ValueError(f"key_type {key_type!r} is not one of 'session', 'interaction', 'file'")
        return keys[:limit] if limit is not None else keys

    def get_interaction_metadata(self, interaction_key: str) -> dict:
        """Catalog rows of both participants (full ids, suffix kept) with prompt, IPC, relationship, BFI-2."""
        meta = self.catalog.interaction_metadata(validate_interaction_key(interaction_key))
        # The official dict's keys, kept for existing code: one batch per interaction (FORMAT.md 2.3),
        # but an archive per participant, since partners often sit in different archives.
        meta.setdefault("num_participants", len(meta["participants"]))
        meta.setdefault("batch_idx", meta["participants"][0]["batch"] if meta["participants"] else None)
        meta.setdefault("archive_idx", [p["archive"] for p in meta["participants"]])
        return meta

    def list_batches(self, label: str | None = None, split: str | None = None) -> list[int]:
        label, split = self._label_split(label, split)
        return self.catalog.batches(label, split)

    def list_archives(self, label: str | None = None, split: str | None = None, batch: int = 0) -> list[int]:
        label, split = self._label_split(label, split)
        return self.catalog.archives(label, split, batch)

    def get_tar_archive_size(self, label: str, split: str, batch: int, archive: int) -> int:
        """Size in **bytes** from a HEAD request (the official method returned GiB labelled "GB")."""
        return hub.archive_size(self.transfer, self.config.hf_url, label, split, batch, archive)

    # ------------------------------------------------------------------ CDN route
    def get_path_list_for_file_id_s3(self, file_id: str) -> list[str]:
        rec = self.catalog.record(file_id)
        return cdn_urls(self.config.cdn_url, rec.label, rec.split, rec.file_id)

    def gather_file_id_data_from_s3(self, file_id: str, *, num_workers: int | None = None,
                                    local_dir: str | Path | None = None) -> dict[str, Path]:
        """Fetch every CDN object of ``file_id`` and write its ``.wav/.mp4/.npz/.json`` bundle.

        Returns the four final paths. Raises :class:`~seamless_interaction.base.errors.InvalidIdError`
        (a ``ValueError``) for a malformed id and ``UnknownIdError`` for one the catalog lacks, both
        before any request; ``MissingPartError``/``TransferError`` (with URL and status) when a
        required part is absent or a transfer fails. Nothing is left at a final path on failure.
        ``num_workers`` is accepted for compatibility; concurrency is the config's ``num_workers``.
        """
        validate_file_id(file_id)
        root = Path(local_dir) if local_dir is not None else self.local_dir
        res = cdn.gather_file_id(self.transfer, self.catalog, self.config.cdn_url, root, file_id,
                                 manifest=Manifest(root) if local_dir is not None else self.manifest)
        return res.paths

    def download_batch_from_s3(self, file_ids: list[str], *, local_dir: str | Path | None = None) -> list[dict[str, Path]]:
        for fid in file_ids:
            validate_file_id(fid)
        root = Path(local_dir) if local_dir is not None else self.local_dir
        for fid in file_ids:  # unknown ids fail before the progress bar or any request
            self.catalog.record(fid)
        self.transfer.progress.start(None, f"{len(file_ids)} file ids")
        try:
            results = cdn.gather_many(self.transfer, self.catalog, self.config.cdn_url, root, list(file_ids),
                                      manifest=Manifest(root) if local_dir is not None else self.manifest)
        finally:
            self.transfer.progress.close()
        return [r.paths for r in results]

    # ------------------------------------------------------------------ Hub route
    def download_archive_from_hf(self, archive: int, label: str | None = None, split: str | None = None,
                                 batch: int = 0, local_dir: str | Path | None = None,
                                 extract: bool = True) -> tuple[bool, str]:
        """Download ``{label}/{split}/{batch:04d}/{archive:04d}.tar`` and (by default) extract it.

        Returns ``(True, path)`` like the official method; failures raise (the official method
        returned ``(False, "")`` and logged). Re-running skips only what is verifiably complete.
        """
        label, split = self._label_split(label, split)
        root = Path(local_dir) if local_dir is not None else self.local_dir
        res = hub.download_archive(self.transfer, self.config.hf_url, root, label, split, int(batch), int(archive),
                                   extract=extract, manifest=Manifest(root) if local_dir is not None else self.manifest)
        return True, str(res.path)

    def download_batch_from_hf(self, label: str | None = None, split: str | None = None,
                               batch_idx: int | None = None, archive_list: list[int] | None = None,
                               local_dir: str | Path | None = None, extract: bool = True) -> list[tuple[bool, str]]:
        """Archives of one batch (``batch_idx``), or of every batch of the split when it is None."""
        label, split = self._label_split(label, split)
        batches = [batch_idx] if batch_idx is not None else self.list_batches(label, split)
        out = []
        for b in batches:
            archives = archive_list if archive_list is not None else self.list_archives(label, split, b)
            for a in archives:
                out.append(self.download_archive_from_hf(a, label=label, split=split, batch=b,
                                                         local_dir=local_dir, extract=extract))
        return out

    # ------------------------------------------------------------------ local files
    def get_path_list_for_file_id_local(self, file_id: str) -> list[str]:
        """Existing local files of ``file_id`` (wav, mp4, npz, json), whichever route fetched them."""
        validate_file_id(file_id)
        # Works offline: the catalog is used only when already loaded, else the layout is searched.
        rec = None
        if self._catalog is not None and file_id in self._catalog:
            rec = self._catalog.record(file_id)
        if rec is not None:
            paths = bundle_paths(self.local_dir, rec.label, rec.split, rec.batch, rec.archive, rec.file_id)
            found = [str(p) for p in paths.values() if p.exists()]
            if found:
                return found
        return [str(p) for p in find_bundle(self.local_dir, file_id).values()]

    # ------------------------------------------------------------------ members of remote archives
    def fetch_members(self, label: str, split: str, batch: int, archive: int, file_ids: list[str] | None = None,
                      modalities: tuple[str, ...] = ("npz", "json")) -> list[Path]:
        """Fetch only ``modalities`` (json, mp4, npz, wav) of one Hub archive by HTTP Range reads."""
        from seamless_interaction.routes import members

        return members.fetch_archive_members(self.transfer, self.catalog, self.config.hf_url, self.local_dir,
                                             label, split, int(batch), int(archive), file_ids=file_ids,
                                             modalities=modalities, cache_dir=self.config.cache_dir,
                                             manifest=self.manifest)

    def fetch_file_id(self, file_id: str, modalities: tuple[str, ...] = ("npz", "json")) -> list[Path]:
        """One file id's members out of whichever Hub archive holds it."""
        from seamless_interaction.routes import members

        return members.fetch_file_ids(self.transfer, self.catalog, self.config.hf_url, self.local_dir,
                                      [validate_file_id(file_id)], modalities=modalities,
                                      cache_dir=self.config.cache_dir, manifest=self.manifest)

    def fetch_interaction(self, interaction_key: str, modalities: tuple[str, ...] = ("npz", "json")) -> list[Path]:
        """Both participants' members, from the (usually two) archives holding them."""
        from seamless_interaction.routes import members

        ids = self.catalog.interaction_file_ids(validate_interaction_key(interaction_key))
        return members.fetch_file_ids(self.transfer, self.catalog, self.config.hf_url, self.local_dir, ids,
                                      modalities=modalities, cache_dir=self.config.cache_dir,
                                             manifest=self.manifest)

    def _member_archives(self, archives, splits) -> list[tuple[str, str, int, int]]:
        out = list(archives or [])
        for label, split in splits or []:
            out += [(label, split, b, a) for b in self.catalog.batches(label, split)
                    for a in self.catalog.archives(label, split, b)]
        return out

    def plan_members(self, *, file_ids=None, archives=None, splits=None,
                     modalities: tuple[str, ...] = ("npz", "json")) -> dict:
        """Dry run of a member fetch: bytes to fetch against bytes of the whole archives.

        Building the member index costs header reads only (cached afterwards)."""
        from seamless_interaction.routes import members

        arcs = self._member_archives(archives, splits)
        for fid in file_ids or []:
            r = self.catalog.record(fid)
            arcs.append((r.label, r.split, r.batch, r.archive))
        arcs = sorted(set(arcs))
        selected_ids = list(file_ids or []) if not (archives or splits) else None
        fetch, whole = members.plan_bytes(self.transfer, self.catalog, self.config.hf_url,
                                          file_ids=selected_ids, archives=None if selected_ids else arcs,
                                          modalities=modalities, cache_dir=self.config.cache_dir,
                                          local_dir=self.local_dir)
        return {"archives": len(arcs), "bytes": fetch, "archive_bytes": whole,
                "members": None if selected_ids is None else len(selected_ids) * len(modalities)}

    def fetch_members_for(self, *, file_ids=None, archives=None, splits=None,
                          modalities: tuple[str, ...] = ("npz", "json")) -> list[Path]:
        """Member fetch for the CLI: explicit archives and whole splits, plus single file ids."""
        from seamless_interaction.routes import members

        paths: list[Path] = []
        for label, split, batch, archive in self._member_archives(archives, splits):
            paths += self.fetch_members(label, split, batch, archive, modalities=modalities)
        if file_ids:
            paths += members.fetch_file_ids(self.transfer, self.catalog, self.config.hf_url, self.local_dir,
                                            list(file_ids), modalities=modalities, cache_dir=self.config.cache_dir,
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

    def open_participant(self, file_id: str) -> "Participant":
        """One participant's local data, every modality on one clock (see :mod:`access`)."""
        from seamless_interaction.access.aligned import open_participant

        return open_participant(self.local_dir, file_id, self._catalog_if_available())

    def open_interaction(self, interaction_key: str) -> "Interaction":
        """Both participants of an interaction, from local data whichever route fetched them."""
        from seamless_interaction.access.aligned import open_interaction

        return open_interaction(self.local_dir, interaction_key, self._catalog_if_available())

    def load_interaction_data(self, file_id: str) -> dict:
        """The official README's ``load_interaction_data`` dict (video, audio, sample_rate, json, npz),
        without OpenCV or librosa."""
        from seamless_interaction.access.aligned import load_interaction_data

        paths = self.get_path_list_for_file_id_local(file_id)
        if not paths:
            raise NotDownloadedError(f"{file_id}: no local files under {self.local_dir}; download it first")
        return load_interaction_data(paths)

    # ------------------------------------------------------------------ audit
    def verify(self, *, label: str | None = None, split: str | None = None, batch: int | None = None,
               deep: bool = False, check_remote: bool = False, repair: bool = False) -> "Report":
        """Audit the local tree against the catalog and the manifest; ``repair=True`` refetches
        exactly what is bad (see :mod:`verify`)."""
        from seamless_interaction.operations.verify import verify_fs

        return verify_fs(self, label=label, split=split, batch=batch, deep=deep, check_remote=check_remote,
                         repair=repair)
