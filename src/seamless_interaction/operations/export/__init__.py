"""Export local interactions into the formats other tools read: Lhotse, ELAN, Praat, RTTM, Rerun, clips.

One module per format; :func:`export` resolves a selection (see :mod:`.source`), opens one interaction
at a time (nothing is held across interactions) and hands it to the format's writer.

>>> export(["V00_S0809_I00000582"], to="elan", out="exports",  # doctest: +SKIP
...        local_dir="~/datasets/seamless_interaction")
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seamless_interaction.base.errors import ExportError
from seamless_interaction.constants import EXPORT_FORMATS
from seamless_interaction.operations.export.source import (
    Dyad,
    load_dyad,
    resolve_selection,
)

if TYPE_CHECKING:
    from seamless_interaction.catalog.tables import Catalog

__all__ = ["FORMATS", "ExportResult", "export", "make_writer"]

logger = logging.getLogger(__name__)

FORMATS = EXPORT_FORMATS


@dataclass
class ExportResult:
    """What one :func:`export` call wrote."""

    format: str
    out: Path
    paths: list[Path] = field(default_factory=list)
    interactions: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # interactions with nothing exportable
    partial: list[str] = field(default_factory=list)  # interactions exported with one participant
    cut_modes: dict[str, str] = field(default_factory=dict)  # clip only: key -> copy | reencode | none


def make_writer(fmt: str, out: Path, **options: Any):
    """The writer of one format (``write(dyad) -> paths``, ``close() -> paths``)."""
    if fmt == "lhotse":
        from seamless_interaction.operations.export.lhotse_manifests import LhotseWriter

        return LhotseWriter(out, **options)
    if fmt == "elan":
        from seamless_interaction.operations.export.elan import ElanWriter

        return ElanWriter(out, **options)
    if fmt == "textgrid":
        from seamless_interaction.operations.export.textgrid import TextGridWriter

        return TextGridWriter(out, **options)
    if fmt == "rttm":
        from seamless_interaction.operations.export.rttm import RttmWriter

        return RttmWriter(out, **options)
    if fmt == "rerun":
        from seamless_interaction.operations.export.rrd import RerunWriter

        return RerunWriter(out, **options)
    if fmt == "clip":
        from seamless_interaction.operations.export.clip import ClipWriter

        if "start_s" not in options or "end_s" not in options:
            raise ExportError("a clip needs a time range: start_s and end_s (--start, --end)")
        return ClipWriter(out, **options)
    raise ExportError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}")


def export(selection: Iterable[str | Path], *, to: str, out: Path | str, local_dir: Path | str | None = None,
           catalog: Catalog | None = None,
           progress: Callable[[int, int, str], None] | None = None, **options: Any) -> ExportResult:
    """Export a selection of local interactions to one format under ``out``.

    Args:
        selection: file ids, interaction keys, session keys or folders (see :mod:`.source`).
        to: one of :data:`FORMATS`.
        out: output folder (created).
        local_dir: dataset root that keys are looked up in.
        catalog: optional catalog, to find a file id's folder without a search.
        progress: called as ``progress(done, total, interaction_key)`` after each interaction.
        options: format options: ``embed_video`` (rerun); ``start_s``, ``end_s``, ``crf``, ``preset``,
            ``force_reencode`` (clip); ``prefix`` (lhotse).

    Returns:
        an :class:`ExportResult` listing the files written.
    """
    if to not in FORMATS:
        raise ExportError(f"unknown export format {to!r}; expected one of {', '.join(FORMATS)}")
    items = list(selection)
    if not items:
        raise ExportError("nothing to export: give file ids, interaction keys, session keys or a folder")
    groups = resolve_selection(items, local_dir=local_dir, catalog=catalog)
    out = Path(out)
    writer = make_writer(to, out, **options)
    result = ExportResult(to, out)
    try:
        for done, (key, bundles) in enumerate(groups.items(), 1):
            dyad: Dyad = load_dyad(key, bundles)
            if not dyad.speakers:
                logger.warning("%s: no participant with audio; nothing exported", key)
                result.skipped.append(key)
            else:
                if len(dyad.speakers) == 1:
                    result.partial.append(key)
                written = writer.write(dyad)
                if written:
                    result.interactions.append(key)
                    result.paths.extend(p for p in written if p not in result.paths)
                else:
                    result.skipped.append(key)
            if progress is not None:
                progress(done, len(groups), key)
        result.paths.extend(p for p in writer.close() if p not in result.paths)
    except BaseException:
        if hasattr(writer, "abort"):
            writer.abort()
        raise
    result.skipped.extend(k for k in getattr(writer, "skipped", []) if k not in result.skipped)
    result.interactions = [k for k in result.interactions if k not in result.skipped]
    result.cut_modes = dict(getattr(writer, "modes", {}))
    return result
