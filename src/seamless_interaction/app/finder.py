"""One row per interaction, for finding interactions by metadata: the catalog's four tables joined,
plus the conversation index's statistics when the index has been built.

Pure pandas (no Streamlit), so the filters are testable; the pages cache the frame. Columns:
``interaction_key, label, split, batch, vendor, session_key, n_files, interaction_type, ipc_a, ipc_b,
relationship, relationship_detail, movement, annotation_1p, annotation_3p``, the BFI-2 domain scores
of the two participants as ``{trait}_min`` / ``{trait}_max`` (NaN when neither disclosed), and from
the index (``duration_s``, ``n_turns``, ``speech_share_a``, ``fto_median_s``, ``overlap_s``, ...)
when present.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from seamless_interaction.catalog.tables import FLAG_COLUMNS, TRAIT_COLUMNS

__all__ = ["Filters", "INDEX_MEASURES", "apply_filters", "file_frame", "index_tables", "interaction_frame"]

logger = logging.getLogger(__name__)

TRAITS = tuple(c.removesuffix("_raw") for c in TRAIT_COLUMNS)
# interaction_stats columns offered as filters and shown in the table when the index exists.
INDEX_MEASURES = ("duration_s", "n_turns", "speech_share_a", "fto_median_s", "overlap_s", "silence_s",
                  "n_overlaps", "n_interruptions")


def file_frame(cat: Any) -> pd.DataFrame:
    """The filelist with float flags (1.0/0.0/NaN for unknown), a participant key and the prompt hash."""
    fl = cat.table("filelist").to_pandas()
    fl["participant"] = fl["vendor"] + "_P" + fl["file_id"].str.slice(21)
    fl["prompt_hash"] = fl["file_id"].str.slice(11, 19)
    for col in FLAG_COLUMNS:
        fl[col] = fl[col].astype("float64")
    return fl


def interaction_frame(cat: Any, files: pd.DataFrame | None = None,
                      stats: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per interaction of the catalog (see the module docstring)."""
    fl = file_frame(cat) if files is None else files
    g = fl.groupby("interaction_key", sort=True)
    out = g.agg(label=("label", "first"), split=("split", "first"), batch=("batch_idx", "first"),
                vendor=("vendor", "first"), session_key=("session_key", "first"), n_files=("file_id", "size"),
                prompt_hash=("prompt_hash", "first"),
                movement=("has_imitator_movement", "min"), annotation_1p=("has_annotation_1p", "max"),
                annotation_3p=("has_annotation_3p", "max")).reset_index()
    prompts = cat.table("interactions").to_pandas()[["prompt_hash", "interaction_type", "ipc_a", "ipc_b"]]
    prompts = prompts.drop_duplicates("prompt_hash")
    out = out.merge(prompts, on="prompt_hash", how="left")
    for col in ("interaction_type", "ipc_a", "ipc_b"):
        out[col] = out[col].replace("", None).fillna("unknown" if col == "interaction_type" else "")
    rel = cat.table("relationships").to_pandas()
    rel = rel.assign(session_key=rel["vendor"] + "_S" + rel["session_id"].astype(str).str.zfill(4))
    rel = rel.drop_duplicates("session_key")[["session_key", "relationship", "relationship_detail"]]
    out = out.merge(rel, on="session_key", how="left")
    for col in ("relationship", "relationship_detail"):
        out[col] = out[col].replace("", None).fillna("unknown")
    people = cat.table("participants").to_pandas()
    people = people.assign(participant=people["vendor"] + "_P" + people["participant_id"].astype(str))
    traits = fl[["interaction_key", "participant"]].merge(
        people.drop_duplicates("participant")[["participant", *TRAIT_COLUMNS]], on="participant", how="left")
    tg = traits.groupby("interaction_key")[list(TRAIT_COLUMNS)]
    lo, hi = tg.min(), tg.max()
    lo.columns = [f"{t}_min" for t in TRAITS]
    hi.columns = [f"{t}_max" for t in TRAITS]
    out = out.merge(lo, left_on="interaction_key", right_index=True, how="left")
    out = out.merge(hi, left_on="interaction_key", right_index=True, how="left")
    if stats is not None and len(stats):
        keep = ["interaction_key", *[c for c in INDEX_MEASURES if c in stats.columns]]
        out = out.merge(stats[keep], on="interaction_key", how="left")
    return out.drop(columns=["prompt_hash"])


def index_tables(folder: Path | str) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """``(interaction_stats, file_stats)`` of a built conversation index, or ``(None, None)``.

    The hook to the index (:mod:`seamless_interaction.operations.index`): read straight from its
    Parquet files, so the app needs neither DuckDB nor a rebuild.
    """
    folder = Path(folder)
    inter_p, files_p = folder / "interaction_stats.parquet", folder / "file_stats.parquet"
    if not inter_p.is_file():
        return None, None
    import pyarrow.parquet as pq

    try:
        inter = pq.read_table(inter_p).to_pandas()
        files = pq.read_table(files_p, columns=["file_id", "duration_s"]).to_pandas() if files_p.is_file() else None
    except (OSError, ValueError) as exc:  # a damaged index is reported by its absence, and logged
        logger.warning("cannot read the index in %s: %s", folder, exc)
        return None, None
    return inter, files


@dataclass
class Filters:
    """What the user asked for; empty lists and None bounds mean "any"."""

    interaction_types: list[str] = field(default_factory=list)
    ipc_codes: list[str] = field(default_factory=list)  # either participant's code
    relationships: list[str] = field(default_factory=list)  # relationship_detail
    vendors: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    splits: list[str] = field(default_factory=list)
    movement: bool = False
    annotation_1p: bool = False
    annotation_3p: bool = False
    complete_pairs: bool = False
    trait: str | None = None  # a BFI-2 domain; either participant's score within trait_range
    trait_range: tuple[float, float] = (1.0, 5.0)
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)  # index measure -> (lo, hi)
    keys: set[str] | None = None  # e.g. the interactions on disk

    def active(self) -> bool:
        return bool(self.interaction_types or self.ipc_codes or self.relationships or self.vendors or self.labels
                    or self.splits or self.movement or self.annotation_1p or self.annotation_3p
                    or self.complete_pairs or self.trait or self.ranges or self.keys is not None)


def apply_filters(frame: pd.DataFrame, f: Filters) -> pd.DataFrame:
    """The rows of ``frame`` (an :func:`interaction_frame`) that pass every filter of ``f``."""
    m = np.ones(len(frame), dtype=bool)
    if f.interaction_types:
        m &= frame["interaction_type"].isin(f.interaction_types).to_numpy()
    if f.ipc_codes:
        m &= (frame["ipc_a"].isin(f.ipc_codes) | frame["ipc_b"].isin(f.ipc_codes)).to_numpy()
    if f.relationships:
        m &= frame["relationship_detail"].isin(f.relationships).to_numpy()
    for col, wanted in (("vendor", f.vendors), ("label", f.labels), ("split", f.splits)):
        if wanted:
            m &= frame[col].isin(wanted).to_numpy()
    for col, on in (("movement", f.movement), ("annotation_1p", f.annotation_1p), ("annotation_3p", f.annotation_3p)):
        if on:
            m &= (frame[col] == 1).to_numpy()
    if f.complete_pairs:
        m &= (frame["n_files"] == 2).to_numpy()
    if f.trait:
        lo, hi = f.trait_range
        # Either participant within the range: the pair's [min, max] interval meets [lo, hi] at a score.
        a, b = frame[f"{f.trait}_min"], frame[f"{f.trait}_max"]
        m &= (((a >= lo) & (a <= hi)) | ((b >= lo) & (b <= hi))).to_numpy()
    for col, (lo, hi) in f.ranges.items():
        if col in frame.columns:
            m &= frame[col].between(lo, hi).to_numpy()
    if f.keys is not None:
        m &= frame["interaction_key"].isin(f.keys).to_numpy()
    return frame[m]
