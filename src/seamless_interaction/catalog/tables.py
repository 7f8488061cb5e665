"""The catalog: the four metadata tables parsed once into a columnar form, with hash indexes for lookups.

Library choice: pyarrow. It is already a dependency (no new wheel to install), its multithreaded CSV
reader takes per-column types (every id-ish column stays a string, so ``00000125`` keeps its zeros and
``0299A`` its suffix) and handles quoted multi-line fields (interactions.csv), and its IPC/Feather format
memory-maps, so a warm load of 130,000 rows is a few milliseconds of I/O. polars or duckdb would add a
large dependency for no gain at this size: every hot path here is a dict lookup or a numpy mask, not
a query.

Layout in memory: the filelist is sorted by file id. Because an id is its interaction key plus
``_P<participant>``, and an interaction key is its session key plus ``_I<prompt>``, the rows of one
interaction (and of one session) are contiguous, so both map to a row range; file ids map to a row
through a dict. No lookup scans the table. Lists are returned in file-id order (sorted).

Parsed copies are cached as Arrow IPC files named after the CSV's size and mtime, so editing or
re-downloading a CSV invalidates its copy.

Old filelists (the 5-column version of 2025-06-27, without the availability flags) load too; the flags
are then unknown and read as ``None``: filters on a flag exclude such rows, and a downloader should
simply try the optional parts.
"""

from __future__ import annotations

import bisect
import csv
import logging
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from seamless_interaction.catalog.assets import load_tables, source_cache_dir
from seamless_interaction.constants import ALL_LABELS, ALL_SPLITS, ASSET_TABLES
from seamless_interaction.base.errors import CatalogError, InvalidIdError, UnknownIdError
from seamless_interaction.base.ids import (
    FILE_ID_RE, INTERACTION_KEY_RE, validate_interaction_key, validate_session_key,
)

__all__ = ["Catalog", "FileRecord", "FLAG_COLUMNS", "TRAIT_COLUMNS"]

logger = logging.getLogger(__name__)

FLAG_COLUMNS = ("has_imitator_movement", "has_annotation_1p", "has_annotation_3p")
TRAIT_COLUMNS = ("extraversion_raw", "agreeableness_raw", "conscientiousness_raw", "neuroticism_raw", "openness_raw")
PROMPT_COLUMNS = ("prompt_hash", "prompt_id_unique", "participant_a_prompt_text", "participant_b_prompt_text",
                  "ipc_a", "ipc_b", "interaction_type")
TABLE_NAMES = tuple(name.removesuffix(".csv") for name in ASSET_TABLES)

# Bump when the prepared (cached) schema changes, so stale copies are ignored.
_CACHE_FORMAT = 1
_FILELIST_BASE = ("file_id", "label", "split", "batch_idx", "archive_idx")
# Arguments must be exact (V00 or 00); table cells are read tolerantly (a CSV round-tripped through a
# numeric type may have lost its zeros), hence two sets of patterns.
_VENDOR_RE = re.compile(r"^V?(\d{2})$")
_PARTICIPANT_RE = re.compile(r"^P?(\d{4}[A-Z]?)$")
_SESSION_RE = re.compile(r"^S?(\d{4})$")
_LOOSE = {
    "vendor": (re.compile(r"^V?(\d{1,2})$"), 2),
    "participant": (re.compile(r"^P?(\d{1,4})([A-Z]?)$"), 4),
    "session": (re.compile(r"^S?(\d{1,4})$"), 4),
}
_PROMPT_RE = re.compile(r"^I?(\d{8})$")
_TRUE = ("1", "1.0", "true", "yes")
_FALSE = ("0", "0.0", "false", "no")


@dataclass(frozen=True)
class FileRecord:
    """One filelist row. Flags are ``None`` when the filelist predates them (unknown)."""

    file_id: str
    label: str
    split: str
    batch: int
    archive: int
    has_imitator_movement: bool | None
    has_annotation_1p: bool | None
    has_annotation_3p: bool | None

    @property
    def vendor(self) -> str:
        return self.file_id[:3]

    @property
    def session_key(self) -> str:
        return self.file_id[:9]

    @property
    def interaction_key(self) -> str:
        return self.file_id[:19]

    @property
    def prompt_hash(self) -> str:
        return self.file_id[11:19]

    @property
    def participant(self) -> str:
        return self.file_id[21:]

    def flags(self) -> dict[str, bool | None]:
        return {name: getattr(self, name) for name in FLAG_COLUMNS}


class Catalog:
    """Indexed view of the metadata tables. Build it with :meth:`load` or :meth:`from_paths`.

    >>> cat = Catalog.load("https://example.org/assets", Path("~/.cache/seamless_interaction"))
    >>> cat.record("V00_S0644_I00000125_P0299A").archive
    """

    def __init__(self, tables: Mapping[str, pa.Table], *, source: str = "<tables>") -> None:
        """Wrap prepared tables (see :meth:`from_paths`); not meant to be called with raw CSV tables."""
        self.source = source
        self._tables = {name: tables[name] if name in tables else _empty(name) for name in TABLE_NAMES}
        fl = self._tables["filelist"]
        self._ids: list[str] = fl.column("file_id").to_pylist()
        self._row: dict[str, int] = {fid: i for i, fid in enumerate(self._ids)}
        self._label_names, self._label = _codes(fl.column("label"))
        self._split_names, self._split = _codes(fl.column("split"))
        self._vendor_names, self._vendor = _codes(fl.column("vendor"))
        self._batch = fl.column("batch_idx").to_numpy()
        self._archive = fl.column("archive_idx").to_numpy()
        # int8 with -1 for unknown, so masks stay vectorised.
        self._flags = {
            name: pc.fill_null(pc.cast(fl.column(name), pa.int8()), -1).to_numpy() for name in FLAG_COLUMNS
        }
        self._ikeys, self._istart = _runs(fl.column("interaction_key"))
        self._skeys, self._sstart = _runs(fl.column("session_key"))
        self._ipos = {key: j for j, key in enumerate(self._ikeys)}
        self._spos = {key: j for j, key in enumerate(self._skeys)}

    # ------------------------------------------------------------------ construction

    @classmethod
    def load(
        cls,
        source: str,
        cache_dir: Path | str,
        *,
        refresh: bool = False,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 60.0,
    ) -> "Catalog":
        """Fetch (once) and parse (once) the tables of ``source``; later calls read the on-disk cache."""
        paths = load_tables(source, cache_dir, refresh=refresh, headers=headers, timeout_s=timeout_s)
        catalog = cls.from_paths(paths, cache_dir=source_cache_dir(source, cache_dir))
        catalog.source = source
        # Built now rather than on first use: listing batches and archives is the first thing the
        # CLI, the app and the Hub route do, and ~20 ms at load keeps it well under 0.3 s.
        catalog._archive_index  # noqa: B018
        return catalog

    @classmethod
    def from_paths(cls, paths: Mapping[str, Path | str], cache_dir: Path | str | None = None) -> "Catalog":
        """Build from CSV paths keyed ``"filelist.csv"`` or ``"filelist"`` (and so on).

        ``cache_dir`` is where parsed Arrow copies are kept; ``None`` parses without caching.
        """
        by_name = {str(k).removesuffix(".csv"): Path(v) for k, v in paths.items()}
        unknown = set(by_name) - set(TABLE_NAMES)
        if unknown:
            raise CatalogError(f"unknown metadata table(s) {sorted(unknown)}; expected {list(TABLE_NAMES)}")
        if "filelist" not in by_name:
            raise CatalogError("the required metadata table filelist.csv was not given")
        folder = Path(cache_dir) if cache_dir is not None else None
        tables = {name: _load_prepared(name, path, folder) for name, path in by_name.items()}
        return cls(tables, source=str(by_name["filelist"].parent))

    @classmethod
    def from_filelist(cls, filelist: pa.Table, *, joins_from: "Catalog | None" = None,
                      source: str = "<filelist>") -> "Catalog":
        """Build from a filelist table already in memory (any column types: every cell is read as text).

        The interactions, participants and relationships tables are taken from ``joins_from`` when
        given, else left empty. A table without any column is an empty filelist.
        """
        if filelist.num_columns == 0:
            raw = pa.table({c: pa.array([], pa.string()) for c in _FILELIST_BASE})
        else:
            raw = pa.table({name: _as_text(filelist.column(name)) for name in filelist.column_names})
        tables = dict(joins_from._tables) if joins_from is not None else {}
        tables["filelist"] = _prepare_filelist(raw, Path(source))
        return cls(tables, source=source)

    # ------------------------------------------------------------------ files

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, file_id: object) -> bool:
        return isinstance(file_id, str) and file_id in self._row

    def __repr__(self) -> str:
        return f"Catalog({len(self)} files, {len(self._ikeys)} interactions, source={self.source!r})"

    def record(self, file_id: str) -> FileRecord:
        """The filelist row of ``file_id``.

        Raises:
            InvalidIdError: ``file_id`` is not of the form ``V##_S####_I########_P####[A-Z]``.
            UnknownIdError: it is well formed but not in this catalog.
        """
        i = self._row.get(file_id) if isinstance(file_id, str) else None
        if i is None:
            i = self._row_of(file_id)
        return self._record(i)

    def file_ids(
        self,
        label: str | None = None,
        split: str | None = None,
        *,
        vendors: Iterable[str] | None = None,
        has_imitator_movement: bool | None = None,
        has_annotation_1p: bool | None = None,
        has_annotation_3p: bool | None = None,
        batch: int | None = None,
        archive: int | None = None,
    ) -> list[str]:
        """Sorted file ids matching every given filter (``None`` means "any")."""
        mask = self._mask(label, split, vendors, {
            "has_imitator_movement": has_imitator_movement,
            "has_annotation_1p": has_annotation_1p,
            "has_annotation_3p": has_annotation_3p,
        })
        if batch is not None:
            mask &= self._batch == int(batch)
        if archive is not None:
            mask &= self._archive == int(archive)
        ids = self._ids
        return [ids[i] for i in np.flatnonzero(mask)]

    # ------------------------------------------------------------------ interactions and sessions

    def interaction_file_ids(self, key: str) -> list[str]:
        """File ids of exactly this interaction (not every key starting with ``key``, as upstream did)."""
        start, stop = self._interaction_range(key)
        return self._ids[start:stop]

    def session_file_ids(self, session_key: str) -> list[str]:
        start, stop = self._session_range(session_key)
        return self._ids[start:stop]

    def session_interactions(self, session_key: str) -> list[str]:
        """Interaction keys of a session, sorted."""
        start, stop = self._session_range(session_key)
        lo = bisect.bisect_left(self._istart, start)
        hi = bisect.bisect_left(self._istart, stop)
        return self._ikeys[lo:hi]

    def interaction_keys(
        self,
        label: str | None = None,
        split: str | None = None,
        *,
        vendors: Iterable[str] | None = None,
        complete_pairs_only: bool = False,
    ) -> list[str]:
        """Sorted interaction keys with at least one (or, with ``complete_pairs_only``, two) matching files."""
        counts = self._group_counts(self._mask(label, split, vendors), self._istart)
        keep = np.flatnonzero(counts >= (2 if complete_pairs_only else 1))
        return [self._ikeys[j] for j in keep]

    def session_keys(self, label: str | None = None, split: str | None = None, *,
                     vendors: Iterable[str] | None = None) -> list[str]:
        counts = self._group_counts(self._mask(label, split, vendors), self._sstart)
        return [self._skeys[j] for j in np.flatnonzero(counts >= 1)]

    # ------------------------------------------------------------------ batches and archives

    def labels_splits(self) -> list[tuple[str, str]]:
        return sorted(self._archive_index[0])

    def batches(self, label: str, split: str) -> list[int]:
        _check_label_split(label, split)
        return list(self._archive_index[0].get((label, split), ()))

    def archives(self, label: str, split: str, batch: int) -> list[int]:
        _check_label_split(label, split)
        return list(self._archive_index[1].get((label, split, int(batch)), ()))

    def archive_file_ids(self, label: str, split: str, batch: int, archive: int) -> list[str]:
        _check_label_split(label, split)
        rows = self._archive_index[2].get((label, split, int(batch), int(archive)))
        if rows is None:
            return []
        ids = self._ids
        return [ids[i] for i in rows.tolist()]

    # ------------------------------------------------------------------ metadata joins

    def prompt(self, prompt_hash_or_key: str) -> dict[str, str | None] | None:
        """interactions.csv row for a prompt hash (``00000125``, ``I00000125``), interaction key or file id."""
        prompt_hash = _prompt_hash_of(prompt_hash_or_key)
        return self._prompts.get(prompt_hash)

    def participant(self, vendor: str, participant_id: str) -> dict[str, Any] | None:
        """participants.csv row (BFI-2 domain means; ``None`` where undisclosed) or ``None`` if absent.

        Accepts ``"V00"`` or ``"00"`` and ``"P0299A"`` or ``"0299A"``; the suffix is part of the id.
        """
        key = (_norm_vendor(vendor), _norm_participant(participant_id))
        row = self._participants.get(key)
        return dict(row) if row is not None else None

    def relationship(self, vendor: str, session: str) -> dict[str, Any] | None:
        """relationships.csv row for (vendor, session); accepts ``"V00"``/``"00"`` and ``"S0809"``/``"0809"``."""
        row = self._relationships.get((_norm_vendor(vendor), _norm_session(session)))
        return dict(row) if row is not None else None

    def interaction_metadata(self, key: str) -> dict[str, Any]:
        """Everything known about one interaction, joined in one call.

        Keys: ``key``, ``interaction_key``, ``session_key``, ``vendor``, ``session``, ``prompt_hash``,
        ``label``, ``split``, the prompt fields of interactions.csv (``None`` when the prompt is unknown),
        ``relationship`` (dict or ``None``), ``file_ids`` and ``participants``: one dict per file with
        ``file_id``, ``participant_id``, ``batch``, ``archive``, ``label``, ``split``, the three flags and
        ``traits`` (dict or ``None``).
        """
        start, stop = self._interaction_range(key)
        first = self._record(start)
        prompt = self.prompt(first.prompt_hash)
        out: dict[str, Any] = {
            "key": first.interaction_key,
            "interaction_key": first.interaction_key,
            "session_key": first.session_key,
            "vendor": first.vendor,
            "session": first.session_key[4:],
            "prompt_hash": first.prompt_hash,
            "label": first.label,
            "split": first.split,
        }
        for column in PROMPT_COLUMNS[1:]:
            out[column] = prompt[column] if prompt is not None else None
        out["relationship"] = self.relationship(first.vendor, first.session_key[4:])
        participants = []
        for i in range(start, stop):
            rec = self._record(i)
            person = self.participant(rec.vendor, rec.participant)
            participants.append({
                "file_id": rec.file_id,
                "participant_id": rec.participant,
                "batch": rec.batch,
                "archive": rec.archive,
                "label": rec.label,
                "split": rec.split,
                **rec.flags(),
                "traits": {t: person[t] for t in TRAIT_COLUMNS} if person is not None else None,
            })
        out["file_ids"] = [p["file_id"] for p in participants]
        out["participants"] = participants
        return out

    def table(self, name: str) -> pa.Table:
        """A prepared table: ``filelist`` (sorted by file id, plus ``vendor``/``session_key``/``interaction_key``),
        ``interactions``, ``participants`` (traits as float64, null when undisclosed) or ``relationships``."""
        key = name.removesuffix(".csv")
        if key not in self._tables:
            raise ValueError(f"unknown table {name!r}; expected one of {list(TABLE_NAMES)}")
        return self._tables[key]

    # ------------------------------------------------------------------ internals

    def _record(self, i: int) -> FileRecord:
        f = self._flags
        return FileRecord(
            self._ids[i],
            self._label_names[self._label[i]],
            self._split_names[self._split[i]],
            int(self._batch[i]),
            int(self._archive[i]),
            _flag(f["has_imitator_movement"][i]),
            _flag(f["has_annotation_1p"][i]),
            _flag(f["has_annotation_3p"][i]),
        )

    def _row_of(self, file_id: str) -> int:
        if not isinstance(file_id, str) or FILE_ID_RE.match(file_id.strip()) is None:
            raise InvalidIdError(
                f"malformed file id {file_id!r}: expected V##_S####_I########_P####[A-Z], "
                "e.g. V00_S0809_I00000582_P0947"
            )
        i = self._row.get(file_id.strip())
        if i is None:
            raise UnknownIdError(f"File ID {file_id!r} not found in the catalog loaded from {self.source}")
        return i

    def _interaction_range(self, key: str) -> tuple[int, int]:
        key = validate_interaction_key(key)
        j = self._ipos.get(key)
        if j is None:
            raise UnknownIdError(f"interaction {key!r} is not in the catalog loaded from {self.source}")
        return self._istart[j], self._istart[j + 1]

    def _session_range(self, key: str) -> tuple[int, int]:
        key = validate_session_key(key)
        j = self._spos.get(key)
        if j is None:
            raise UnknownIdError(f"session {key!r} is not in the catalog loaded from {self.source}")
        return self._sstart[j], self._sstart[j + 1]

    def _mask(self, label: str | None, split: str | None, vendors: Iterable[str] | None,
              flags: Mapping[str, bool | None] | None = None) -> np.ndarray:
        mask = np.ones(len(self._ids), dtype=bool)
        if label is not None:
            _check_label_split(label, None)
            mask &= _eq_code(self._label, self._label_names, label)
        if split is not None:
            _check_label_split(None, split)
            mask &= _eq_code(self._split, self._split_names, split)
        if vendors is not None:
            if isinstance(vendors, str):
                vendors = [vendors]
            wanted = {"V" + _norm_vendor(v) for v in vendors}
            codes = [c for c, name in enumerate(self._vendor_names) if name in wanted]
            mask &= np.isin(self._vendor, codes)
        for name, value in (flags or {}).items():
            if value is not None:
                mask &= self._flags[name] == (1 if value else 0)
        return mask

    @staticmethod
    def _group_counts(mask: np.ndarray, starts: list[int]) -> np.ndarray:
        if len(starts) <= 1:
            return np.zeros(0, dtype=np.int64)
        return np.add.reduceat(mask.astype(np.int64), np.asarray(starts[:-1]))

    @cached_property
    def _archive_index(self) -> tuple[dict, dict, dict]:
        """(label, split) -> batches, (label, split, batch) -> archives, (..., archive) -> rows; built on first use."""
        if not self._ids:
            return {}, {}, {}
        # One int64 per row that sorts by (label, split, batch, archive); a stable argsort keeps file-id order
        # inside each archive.
        key = (((self._label.astype(np.int64) << 8) | self._split) << 44) \
            | (self._batch.astype(np.int64) << 22) | self._archive.astype(np.int64)
        order = np.argsort(key, kind="stable")
        sorted_key = key[order]
        starts = np.concatenate(([0], np.flatnonzero(np.diff(sorted_key)) + 1))
        stops = np.append(starts[1:], len(order)).tolist()
        first = order[starts]
        groups = zip(self._label[first].tolist(), self._split[first].tolist(), self._batch[first].tolist(),
                     self._archive[first].tolist(), starts.tolist(), stops)
        by_group: dict[tuple[str, str, int, int], np.ndarray] = {}
        archives: dict[tuple[str, str, int], list[int]] = {}
        for lc, sc, batch, archive, a, b in groups:
            label, split = self._label_names[lc], self._split_names[sc]
            by_group[(label, split, batch, archive)] = order[a:b]
            archives.setdefault((label, split, batch), []).append(archive)
        batches: dict[tuple[str, str], list[int]] = {}
        for (label, split, batch) in archives:
            batches.setdefault((label, split), []).append(batch)
        # Groups come sorted by batch then archive within each (label, split), so every list is ascending.
        return batches, archives, by_group

    @cached_property
    def _prompts(self) -> dict[str, dict[str, str | None]]:
        rows = self._tables["interactions"].select(list(PROMPT_COLUMNS)).to_pylist()
        out = {}
        for row in rows:
            for column in ("ipc_a", "ipc_b"):
                row[column] = row[column] or None
            out[row["prompt_hash"]] = row
        return out

    @cached_property
    def _participants(self) -> dict[tuple[str, str], dict[str, Any]]:
        out = {}
        for row in self._tables["participants"].to_pylist():
            out[(row["vendor_id"], row["participant_id"])] = {
                "vendor": row["vendor"], "participant_id": row["participant_id"],
                **{t: row[t] for t in TRAIT_COLUMNS},
            }
        return out

    @cached_property
    def _relationships(self) -> dict[tuple[str, str], dict[str, Any]]:
        out = {}
        for row in self._tables["relationships"].to_pylist():
            out[(row["vendor"][1:], row["session_id"])] = {
                "vendor": row["vendor"], "session": row["session_id"],
                "relationship": row["relationship"] or None,
                "relationship_detail": row["relationship_detail"] or None,
            }
        return out


# ---------------------------------------------------------------------- helpers: lookups


def _flag(value: int) -> bool | None:
    return None if value < 0 else bool(value)


def _codes(column: pa.ChunkedArray) -> tuple[list[str], np.ndarray]:
    encoded = pc.dictionary_encode(column).combine_chunks() if len(column) else pa.array([], pa.dictionary(
        pa.int32(), pa.string()))
    return encoded.dictionary.to_pylist(), encoded.indices.to_numpy(zero_copy_only=False)


def _eq_code(codes: np.ndarray, names: list[str], value: str) -> np.ndarray:
    try:
        return codes == names.index(value)
    except ValueError:
        return np.zeros(len(codes), dtype=bool)


def _runs(column: pa.ChunkedArray) -> tuple[list[str], list[int]]:
    """Distinct values of a sorted column and the row where each run starts (plus a final end row)."""
    if len(column) == 0:
        return [], [0]
    ree = pc.run_end_encode(column.combine_chunks())
    ends = ree.run_ends.to_numpy()
    starts = [0, *ends.tolist()]
    return ree.values.to_pylist(), starts


def _check_label_split(label: str | None, split: str | None) -> None:
    if label is not None and label not in ALL_LABELS:
        raise ValueError(f"label {label!r} is not one of {list(ALL_LABELS)}")
    if split is not None and split not in ALL_SPLITS:
        raise ValueError(f"split {split!r} is not one of {list(ALL_SPLITS)}")


def _norm_vendor(value: str) -> str:
    m = _VENDOR_RE.match(value.strip()) if isinstance(value, str) else None
    if m is None:
        raise InvalidIdError(f"malformed vendor {value!r}: expected V## or ##, e.g. V00")
    return m.group(1)


def _norm_participant(value: str) -> str:
    m = _PARTICIPANT_RE.match(value.strip()) if isinstance(value, str) else None
    if m is None:
        raise InvalidIdError(f"malformed participant id {value!r}: expected P####[A-Z] or ####[A-Z], e.g. P0299A")
    return m.group(1)


def _norm_session(value: str) -> str:
    m = _SESSION_RE.match(value.strip()) if isinstance(value, str) else None
    if m is None:
        raise InvalidIdError(f"malformed session {value!r}: expected S#### or ####, e.g. S0809")
    return m.group(1)


def _prompt_hash_of(value: str) -> str:
    text = value.strip() if isinstance(value, str) else ""
    m = _PROMPT_RE.match(text)
    if m is not None:
        return m.group(1)
    if INTERACTION_KEY_RE.match(text) or FILE_ID_RE.match(text):
        return text[11:19]
    raise InvalidIdError(
        f"malformed prompt reference {value!r}: expected an 8-digit prompt hash (00000125), I00000125, "
        "an interaction key or a file id"
    )


# ---------------------------------------------------------------------- helpers: parsing and caching


def _load_prepared(name: str, csv_path: Path, cache_folder: Path | None) -> pa.Table:
    """The prepared table for one CSV, from the Arrow cache when it matches the CSV's size and mtime."""
    try:
        st = csv_path.stat()
    except OSError as exc:
        raise CatalogError(f"cannot read metadata table {csv_path}: {exc}") from exc
    cached = None
    if cache_folder is not None:
        cached = cache_folder / f"{name}.{st.st_size}-{st.st_mtime_ns}.v{_CACHE_FORMAT}.arrow"
        if cached.is_file():
            try:
                with pa.memory_map(str(cached)) as source:
                    return pa.ipc.open_file(source).read_all()
            except (OSError, pa.ArrowInvalid) as exc:  # a corrupt copy is only a cache miss
                logger.warning("ignoring unreadable catalog cache %s: %s", cached, exc)
    table = _PREPARERS[name](_read_csv(csv_path), csv_path)
    if cached is not None:
        _write_cache(table, cached, stale_glob=f"{name}.*.arrow")
    return table


def _write_cache(table: pa.Table, path: Path, *, stale_glob: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
                writer.write_table(table)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        for old in path.parent.glob(stale_glob):
            if old != path:
                old.unlink(missing_ok=True)
    except OSError as exc:  # caching is an optimisation: a read-only cache dir must not break loading
        logger.warning("could not write catalog cache %s: %s", path, exc)


def _read_csv(path: Path) -> pa.Table:
    """Every column as a string (ids keep zeros and suffixes), with quoted multi-line fields allowed."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            header = next(csv.reader(fh), None)
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(f"cannot read metadata table {path}: {exc}") from exc
    if not header:
        raise CatalogError(f"metadata table {path} is empty (no header line)")
    try:
        table = pacsv.read_csv(
            path,
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in header}, strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, OSError) as exc:
        raise CatalogError(f"cannot parse metadata table {path}: {exc}") from exc
    # Tables written by pandas carry an unnamed index column.
    drop = [c for c in table.column_names if c == "" or c.startswith("Unnamed:")]
    return table.drop_columns(drop) if drop else table


def _as_text(column: pa.ChunkedArray) -> pa.ChunkedArray | pa.Array:
    """A column as strings, nulls as empty cells, the way a CSV would have carried it."""
    if pa.types.is_floating(column.type):
        # A pandas int column with a missing value arrives as float: 5.0 must read as 5.
        return pa.array(["" if v is None or v != v else str(int(v)) if float(v).is_integer() else str(v)
                         for v in column.to_pylist()], pa.string())
    text = column if pa.types.is_string(column.type) else pc.cast(column, pa.string())
    return pc.fill_null(text, "")


def _require(table: pa.Table, columns: Iterable[str], path: Path) -> None:
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise CatalogError(f"metadata table {path} lacks column(s) {missing}; it has {table.column_names}")


def _trimmed(table: pa.Table, column: str) -> pa.ChunkedArray:
    return pc.utf8_trim_whitespace(table.column(column))


def _prepare_filelist(raw: pa.Table, path: Path) -> pa.Table:
    _require(raw, _FILELIST_BASE, path)
    fid = _trimmed(raw, "file_id")
    valid = pc.match_substring_regex(fid, FILE_ID_RE.pattern)
    batch, archive = _int_column(raw, "batch_idx", path), _int_column(raw, "archive_idx", path)
    valid = pc.and_(valid, pc.and_(pc.is_valid(batch), pc.is_valid(archive)))
    table = pa.table({
        "file_id": fid,
        "label": _trimmed(raw, "label"),
        "split": _trimmed(raw, "split"),
        "batch_idx": pc.cast(batch, pa.int32()),
        "archive_idx": pc.cast(archive, pa.int32()),
        **{name: _parse_flag(raw, name) for name in FLAG_COLUMNS},
    })
    n_bad = table.num_rows - pc.sum(pc.cast(valid, pa.int64())).as_py() if table.num_rows else 0
    if n_bad:
        bad = table.filter(pc.invert(valid)).column("file_id").to_pylist()[:3]
        logger.warning("%s: dropped %d row(s) with a malformed file id or missing batch/archive, e.g. %s",
                       path, n_bad, bad)
        table = table.filter(valid)
    # Stable sort on (file_id, original row) so that duplicate ids keep their first occurrence.
    table = table.append_column("_row", pa.array(np.arange(table.num_rows)))
    table = table.take(pc.sort_indices(table, [("file_id", "ascending"), ("_row", "ascending")])).drop_columns("_row")
    ids = table.column("file_id").combine_chunks()
    if len(ids) > 1:
        dup = np.flatnonzero(pc.equal(ids[1:], ids[:-1]).to_numpy(zero_copy_only=False)) + 1
        if len(dup):
            # The pre-dedup filelist (before upstream 29f819d) listed some ids in several archives.
            logger.warning("%s: %d duplicate file id row(s) ignored (first kept), e.g. %s", path, len(dup),
                           ids[int(dup[0])].as_py())
            keep = np.ones(len(ids), dtype=bool)
            keep[dup] = False
            table = table.filter(pa.array(keep))
    fid = table.column("file_id")
    return table.append_column("vendor", pc.utf8_slice_codeunits(fid, 0, 3)) \
        .append_column("session_key", pc.utf8_slice_codeunits(fid, 0, 9)) \
        .append_column("interaction_key", pc.utf8_slice_codeunits(fid, 0, 19)) \
        .combine_chunks()


def _int_column(raw: pa.Table, name: str, path: Path) -> pa.ChunkedArray:
    """Integers; empty cells become null (those rows are dropped), anything else non-numeric is an error."""
    text = _trimmed(raw, name)
    try:
        return pc.cast(pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text), pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise CatalogError(f"metadata table {path}: column {name} holds a non-integer: {exc}") from exc


def _parse_flag(raw: pa.Table, name: str) -> pa.ChunkedArray | pa.Array:
    if name not in raw.column_names:  # 5-column filelist: unknown
        return pa.nulls(raw.num_rows, pa.bool_())
    text = pc.utf8_lower(_trimmed(raw, name))
    return pc.if_else(pc.is_in(text, pa.array(_TRUE)), True,
                      pc.if_else(pc.is_in(text, pa.array(_FALSE)), False, pa.scalar(None, pa.bool_())))


def _prepare_interactions(raw: pa.Table, path: Path) -> pa.Table:
    _require(raw, ("prompt_hash",), path)
    columns = {c: _trimmed(raw, c) if c == "prompt_hash" else raw.column(c) for c in raw.column_names}
    for c in PROMPT_COLUMNS:
        if c not in columns:
            columns[c] = pa.array([""] * raw.num_rows, pa.string())
    return pa.table(columns).combine_chunks()


def _prepare_participants(raw: pa.Table, path: Path) -> pa.Table:
    _require(raw, ("vendor_id", "participant_id"), path)
    vendors = [_loose("vendor", v) for v in _trimmed(raw, "vendor_id").to_pylist()]
    pids = [_loose("participant", p) for p in _trimmed(raw, "participant_id").to_pylist()]
    columns: dict[str, Any] = {"vendor_id": pa.array(vendors, pa.string()),
                               "participant_id": pa.array(pids, pa.string())}
    for t in TRAIT_COLUMNS:
        columns[t] = _parse_trait(raw.column(t)) if t in raw.column_names else pa.nulls(raw.num_rows, pa.float64())
    columns["vendor"] = pa.array(["V" + v for v in vendors], pa.string())
    return pa.table(columns)


def _parse_trait(column: pa.ChunkedArray) -> pa.Array:
    # BFI-2 domain means, or the literal "Undisclosed" (FORMAT.md 8.3): anything non-numeric becomes null.
    out = []
    for text in column.to_pylist():
        try:
            out.append(float(text))
        except (TypeError, ValueError):
            out.append(None)
    return pa.array(out, pa.float64())


def _prepare_relationships(raw: pa.Table, path: Path) -> pa.Table:
    _require(raw, ("vendor_id", "session_id"), path)
    vendors = [_loose("vendor", v) for v in _trimmed(raw, "vendor_id").to_pylist()]
    sessions = [_loose("session", s) for s in _trimmed(raw, "session_id").to_pylist()]
    n = raw.num_rows
    return pa.table({
        "vendor_id": pa.array(["V" + v for v in vendors], pa.string()),
        "session_id": pa.array(sessions, pa.string()),
        "relationship": raw.column("relationship") if "relationship" in raw.column_names else pa.array([""] * n),
        "relationship_detail": raw.column("relationship_detail") if "relationship_detail" in raw.column_names
        else pa.array([""] * n),
        "vendor": pa.array(["V" + v for v in vendors], pa.string()),
    }).combine_chunks()


def _loose(kind: str, value: str) -> str:
    """A table cell normalised to the canonical digits (zero-padded, prefix letter dropped); kept if odd."""
    pattern, width = _LOOSE[kind]
    m = pattern.match(value)
    return m.group(1).zfill(width) + "".join(m.groups()[1:]) if m else value


_PREPARERS = {
    "filelist": _prepare_filelist,
    "interactions": _prepare_interactions,
    "participants": _prepare_participants,
    "relationships": _prepare_relationships,
}


def _empty(name: str) -> pa.Table:
    """The prepared schema of a table the source does not publish, with no rows."""
    header = {
        "filelist": list(_FILELIST_BASE),
        "interactions": list(PROMPT_COLUMNS),
        "participants": ["vendor_id", "participant_id", *TRAIT_COLUMNS],
        "relationships": ["vendor_id", "session_id", "relationship", "relationship_detail"],
    }[name]
    raw = pa.table({c: pa.array([], pa.string()) for c in header})
    return _PREPARERS[name](raw, Path(f"<no {name}.csv>"))
