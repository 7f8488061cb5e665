"""Selections in the official toolkit's shapes: sampling, key listings, pairs, session groups, summaries.

The official ``SeamlessInteractionFS`` answered these from a pandas filelist; here they are answered
from the indexed :class:`~seamless_interaction.catalog.tables.Catalog`, with the official return
shapes and error types (``ValueError`` subclasses whose messages start as the official ones did).
Randomness comes from a caller's ``random.Random``; nothing here touches the global ``random``.

The filelist as a pandas DataFrame (the official ``_cached_filelist``) is converted both ways here,
so pandas is imported only by code that asks for a DataFrame.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from seamless_interaction.base.errors import InvalidIdError, NoCandidatesError, UnknownIdError
from seamless_interaction.base.ids import InteractionKey
from seamless_interaction.catalog.tables import FLAG_COLUMNS, Catalog
from seamless_interaction.constants import ALL_LABELS, ALL_SPLITS

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "KEY_TYPES", "available_keys", "candidate_ids", "catalog_from_frame", "filelist_frame", "group_pairs",
    "interaction_summary", "keys_to_file_ids", "sample_file_ids", "sample_pairs", "sample_session_groups",
    "session_groups", "session_interaction_groups", "split_keys",
]

logger = logging.getLogger(__name__)

KEY_TYPES = ("session", "interaction", "file")
_FRAME_COLUMNS = ("file_id", "label", "split", "batch_idx", "archive_idx", *FLAG_COLUMNS)


# ---------------------------------------------------------------------------------------- DataFrame view


def filelist_frame(catalog: Catalog) -> "pd.DataFrame":
    """The filelist as the official DataFrame: one row per file id, its columns in the CSV's order."""
    table = catalog.table("filelist")
    return table.select([c for c in _FRAME_COLUMNS if c in table.column_names]).to_pandas()


def catalog_from_frame(frame: "pd.DataFrame", *, joins_from: Catalog | None = None) -> Catalog:
    """A catalog over a filelist DataFrame (the official ``_cached_filelist``); metadata joins from ``joins_from``."""
    if len(frame.columns) == 0:
        table = pa.table({})
    else:
        table = pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False)
    return Catalog.from_filelist(table, joins_from=joins_from, source="<filelist DataFrame>")


# ---------------------------------------------------------------------------------------- candidates


def candidate_ids(catalog: Catalog, label: str, split: str, vendors: Iterable[str] | None) -> list[str]:
    """File ids of one label and split (and vendors). An unknown label or split has none, as the
    official filter matched none; callers that must not guess use the catalog directly."""
    if label not in ALL_LABELS or split not in ALL_SPLITS:
        return []
    return catalog.file_ids(label, split, vendors=vendors)


def _criteria(label: str, split: str, vendors: Iterable[str] | None) -> str:
    text = f"label={label!r}, split={split!r}, vendors={list(vendors) if vendors is not None else 'any'}"
    if label not in ALL_LABELS:
        text += f" (labels are {list(ALL_LABELS)})"
    if split not in ALL_SPLITS:
        text += f" (splits are {list(ALL_SPLITS)})"
    return text


def sample_file_ids(catalog: Catalog, rng: random.Random, num_samples: int, label: str, split: str,
                    vendors: Iterable[str] | None) -> list[str]:
    """Up to ``num_samples`` distinct file ids drawn with ``rng``; :class:`NoCandidatesError` if none match."""
    vendors = tuple(vendors) if vendors is not None else None
    pool = candidate_ids(catalog, label, split, vendors)
    if not pool:
        raise NoCandidatesError(f"No candidates found with given criteria: {_criteria(label, split, vendors)}")
    return rng.sample(pool, min(int(num_samples), len(pool)))


def available_keys(catalog: Catalog, key_type: str, label: str, split: str, limit: int | None) -> list[str]:
    """Sorted session keys, interaction keys or file ids of one label and split (every vendor)."""
    if key_type not in KEY_TYPES:
        raise InvalidIdError(f"Invalid key_type: {key_type!r}; expected one of {list(KEY_TYPES)}")
    if label not in ALL_LABELS or split not in ALL_SPLITS:
        keys: list[str] = []
    elif key_type == "file":
        keys = catalog.file_ids(label, split)
    elif key_type == "interaction":
        keys = catalog.interaction_keys(label, split)
    else:
        keys = catalog.session_keys(label, split)
    # The official toolkit treated a limit of 0 like no limit.
    return keys[:limit] if limit else keys


# ---------------------------------------------------------------------------------------- keys -> file ids


def split_keys(keys: str | Sequence[str]) -> list[str]:
    """One key or a list of keys (the official methods take both)."""
    return [keys] if isinstance(keys, str) else list(keys)


def keys_to_file_ids(catalog: Catalog, keys: str | Sequence[str], key_type: str, label: str | None = None,
                     split: str | None = None) -> list[str]:
    """File ids of interaction or session keys, exact matches only (the official toolkit matched by
    prefix). Malformed keys raise :class:`InvalidIdError`, unknown ones :class:`UnknownIdError`; a
    label or split, when given, keeps only its files."""
    if key_type not in ("interaction", "session"):
        raise InvalidIdError(f"Invalid key_type: {key_type!r}; expected 'interaction' or 'session'")
    out: list[str] = []
    for key in split_keys(keys):
        if key_type == "interaction":
            ids = catalog.interaction_file_ids(_exact(key, "interaction"))
        else:
            ids = catalog.session_file_ids(_exact(key, "session"))
        if label is not None or split is not None:
            ids = [f for f in ids if _in_split(catalog, f, label, split)]
        out.extend(ids)
    return out


def session_groups(catalog: Catalog, session_keys: str | Sequence[str], interactions_per_session: int,
                   label: str | None = None, split: str | None = None) -> list[list[str]]:
    """Per given session, its first ``interactions_per_session`` file ids (all of them for 0 or less),
    the official shape; sessions without a file in the label/split filter are left out."""
    n = int(interactions_per_session)
    groups = []
    for key in split_keys(session_keys):
        ids = keys_to_file_ids(catalog, [key], "session", label, split)
        if ids:
            groups.append(ids[:n] if n > 0 else ids)
    return groups


def _exact(key: str, kind: str) -> str:
    parsed = InteractionKey.from_interaction_key(key) if kind == "interaction" else InteractionKey.from_session_key(key)
    canonical = parsed.interaction_key if kind == "interaction" else parsed.session_key
    if canonical != key.strip():
        # The official parser took a longer key by its prefix; a file id where an interaction key is
        # expected is almost always a mistake worth naming.
        raise InvalidIdError(f"Invalid {kind} key format: {key!r}; expected {canonical!r}-like key, not a longer id")
    return canonical


def _in_split(catalog: Catalog, file_id: str, label: str | None, split: str | None) -> bool:
    rec = catalog.record(file_id)
    return (label is None or rec.label == label) and (split is None or rec.split == split)


def group_pairs(file_ids: Iterable[str]) -> list[list[str]]:
    """The first two file ids of each interaction that has at least two, in order of appearance."""
    by_interaction: dict[str, list[str]] = {}
    for fid in file_ids:
        by_interaction.setdefault(InteractionKey.from_file_id(fid).interaction_key, []).append(fid)
    return [ids[:2] for ids in by_interaction.values() if len(ids) >= 2]


def sample_pairs(catalog: Catalog, rng: random.Random, num_pairs: int, label: str, split: str,
                 vendors: Iterable[str] | None) -> list[list[str]]:
    """``num_pairs`` random interactions with both participants among the candidates."""
    vendors = tuple(vendors) if vendors is not None else None
    keys = []
    if label in ALL_LABELS and split in ALL_SPLITS:
        keys = catalog.interaction_keys(label, split, vendors=vendors, complete_pairs_only=True)
    if not keys:
        raise NoCandidatesError(f"No interaction pairs found with given criteria: {_criteria(label, split, vendors)}")
    chosen = rng.sample(keys, min(int(num_pairs), len(keys)))
    wanted = set(candidate_ids(catalog, label, split, vendors))
    return [[f for f in catalog.interaction_file_ids(k) if f in wanted][:2] for k in chosen]


def _session_pool(catalog: Catalog, label: str, split: str, vendors: Iterable[str] | None
                  ) -> dict[str, list[str]]:
    by_session: dict[str, list[str]] = {}
    for fid in candidate_ids(catalog, label, split, vendors):
        by_session.setdefault(fid[:9], []).append(fid)
    return by_session


def sample_session_groups(catalog: Catalog, rng: random.Random, num_sessions: int, interactions_per_session: int,
                          label: str, split: str, vendors: Iterable[str] | None) -> list[list[str]]:
    """The official sampler: sessions with at least ``interactions_per_session`` candidate *files*,
    each given as its first ``interactions_per_session`` file ids (the official name says
    interactions; it counted files)."""
    vendors = tuple(vendors) if vendors is not None else None
    n = int(interactions_per_session)
    pool = _session_pool(catalog, label, split, vendors)
    rich = sorted(k for k, ids in pool.items() if len(ids) >= n)
    if not rich:
        raise NoCandidatesError(f"No sessions with sufficient interactions found: at least {n} files with "
                                f"{_criteria(label, split, vendors)}")
    chosen = rng.sample(rich, min(int(num_sessions), len(rich)))
    return [pool[k][:n] if n > 0 else pool[k] for k in chosen]


def session_interaction_groups(catalog: Catalog, rng: random.Random, session_keys: str | Sequence[str] | None,
                               num_sessions: int, interactions_per_session: int, label: str, split: str,
                               vendors: Iterable[str] | None) -> list[list[str]]:
    """Whole interactions per session: up to ``interactions_per_session`` interactions (both
    participants each). Random sessions prefer those with enough interactions."""
    n = int(interactions_per_session)
    if session_keys is None:
        vendors = tuple(vendors) if vendors is not None else None
        keys = catalog.session_keys(label, split, vendors=vendors) \
            if label in ALL_LABELS and split in ALL_SPLITS else []
        rich = [k for k in keys if len(catalog.session_interactions(k)) >= n]
        keys = rich or keys
        if not keys:
            raise NoCandidatesError(f"No sessions found with given criteria: {_criteria(label, split, vendors)}")
        session_keys = rng.sample(keys, min(int(num_sessions), len(keys)))
    groups = []
    for key in split_keys(session_keys):
        interactions = catalog.session_interactions(_exact(key, "session"))[:n]
        groups.append([fid for ik in interactions for fid in catalog.interaction_file_ids(ik)])
    return groups


# ---------------------------------------------------------------------------------------- one interaction


def interaction_summary(catalog: Catalog, interaction_key: str) -> dict[str, Any]:
    """The official ``get_interaction_metadata`` dict; ``{}`` for a well-formed key the catalog lacks.

    Participants are id strings without the ``P`` and with their letter suffix (``"0299A"``);
    ``batch_idx``/``archive_idx`` are those of the first participant, as the official dict gave them
    (partners may sit in different archives: see ``file_ids`` with :meth:`Catalog.record`).
    """
    parsed = InteractionKey.from_interaction_key(interaction_key)
    key = _exact(interaction_key, "interaction")
    try:
        file_ids = catalog.interaction_file_ids(key)
    except UnknownIdError:
        return {}
    first = catalog.record(file_ids[0])
    participants = [catalog.record(f).participant for f in file_ids]
    return {
        "interaction_key": key,
        "session_key": parsed.session_key,
        "vendor": parsed.vendor,
        "session": parsed.session,
        "interaction": parsed.interaction,
        "participants": participants,
        "num_participants": len(participants),
        "label": first.label,
        "split": first.split,
        "batch_idx": first.batch,
        "archive_idx": first.archive,
        "file_ids": list(file_ids),
    }
