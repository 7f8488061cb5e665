"""What every export reads: a selection resolved to local bundles, and one interaction's dyad on one clock.

A selection item is a file id (that participant only), an interaction key (every local participant of
it), a session key (every local interaction of it) or a folder (every bundle found under it, in any
layout: a dataset root, one extracted archive, a clip). Items are grouped by interaction key, so two
file ids of one pair become one dyad. Participants are ordered by file id, which is also the A/B order
of ``CONVERSATION.md``; channel ``i`` is the i-th participant.

Placeholder bundles (FORMAT.md 3: no samples and no frames) carry nothing to export: they are left out
of their dyad with a warning, as a missing partner is.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seamless_interaction.access.aligned import Participant
from seamless_interaction.base.errors import ExportError, NotDownloadedError
from seamless_interaction.base.ids import FILE_ID_RE, FileId, classify_key
from seamless_interaction.constants import BUNDLE_EXTENSIONS
from seamless_interaction.local import layout

if TYPE_CHECKING:
    from seamless_interaction.catalog.tables import Catalog

__all__ = ["Annotation", "Dyad", "Speaker", "Utterance", "Word", "load_dyad", "resolve_selection"]

logger = logging.getLogger(__name__)

Span = tuple[float, float]
_LAYOUT_GLOB = "*/*/[0-9][0-9][0-9][0-9]/[0-9][0-9][0-9][0-9]"
_BUNDLE_NAME = re.compile(r"^(V\d{2}_S\d{4}_I\d{8}_P\d{4}[A-Z]?)\.(json|mp4|npz|wav)$")


@dataclass(frozen=True)
class Word:
    """A transcript word with times (seconds on its file's clock); ``score`` is None when absent."""

    word: str
    start: float
    end: float
    score: float | None


@dataclass(frozen=True)
class Utterance:
    """One ``metadata:transcript`` segment: its text keeps every word, ``words`` only the timed ones."""

    index: int
    start: float
    end: float
    text: str
    words: tuple[Word, ...]
    untimed_words: tuple[str, ...]


@dataclass(frozen=True)
class Annotation:
    """One 1P/3P record (``start_ts``/``end_ts``, taken as seconds: FORMAT.md 6.4 calls the unit unknown)."""

    kind: str
    start: float
    end: float
    text: str


@dataclass
class Speaker:
    """One participant of a dyad: its files, audio facts and time-stamped metadata."""

    file_id: str
    channel: int
    paths: dict[str, Path]
    participant: Participant = field(repr=False)

    @property
    def participant_id(self) -> str:
        """``P`` + the participant field of the file id, letter suffix kept (``P0299A``)."""
        return "P" + FileId.parse(self.file_id).participant

    @property
    def sample_rate(self) -> int:
        return self.participant.sample_rate

    @property
    def num_samples(self) -> int:
        info = self.participant.wav_info
        return int(info.frames) if info is not None else 0

    @property
    def duration_s(self) -> float:
        return self.participant.duration_s

    @property
    def frame_rate(self) -> Fraction | None:
        return self.participant.frame_rate

    @cached_property
    def _json(self) -> dict[str, Any]:
        return self.participant.json if "json" in self.paths else {}

    @property
    def has_transcript(self) -> bool:
        return "metadata:transcript" in self._json

    @cached_property
    def vad_records(self) -> list[dict]:
        return list(self._json.get("metadata:vad") or [])

    @cached_property
    def talkspurts(self) -> list[Span]:
        """The VAD as talkspurts (merged union), computed by :mod:`seamless_interaction.base.conversation`."""
        from seamless_interaction.base import conversation

        return list(conversation.talkspurts(conversation.vad_segments(self.vad_records)))

    @cached_property
    def utterances(self) -> list[Utterance]:
        out = []
        for i, seg in enumerate(self._json.get("metadata:transcript") or []):
            start, end = seg.get("start"), seg.get("end")
            words, untimed = [], []
            for w in seg.get("words") or []:
                text = str(w.get("word", ""))
                if w.get("start") is None or w.get("end") is None:
                    untimed.append(text)
                else:
                    words.append(Word(text, float(w["start"]), float(w["end"]), w.get("score")))
            if start is None or end is None:  # no such segment seen; times from its words if any
                if not words:
                    logger.warning("%s: transcript segment %d has no times; left out", self.file_id, i)
                    continue
                start, end = words[0].start, words[-1].end
            text = str(seg.get("transcript", seg.get("text", ""))).strip()
            out.append(Utterance(i, float(start), float(end), text, tuple(words), tuple(untimed)))
        return out

    @cached_property
    def annotations(self) -> dict[str, list[Annotation]]:
        out: dict[str, list[Annotation]] = {}
        for key, records in self._json.items():
            if not key.startswith("annotations:"):
                continue
            kind = key.split(":", 1)[1]
            for r in records or []:
                s, e = r.get("start_ts"), r.get("end_ts")
                if isinstance(s, (int, float)) and isinstance(e, (int, float)) and e > s:
                    out.setdefault(kind, []).append(Annotation(kind, float(s), float(e), str(r.get("annotation", ""))))
                else:
                    logger.warning("%s: %s record without a usable time span; left out", self.file_id, key)
        return out


@dataclass
class Dyad:
    """The local participants (one or two) of one interaction, in file-id order."""

    key: str
    speakers: list[Speaker]
    missing: list[str] = field(default_factory=list)  # partners named by the selection but not usable

    @property
    def duration_s(self) -> float:
        """The longest participant's duration: the time line that holds every annotation."""
        return max((s.duration_s for s in self.speakers), default=0.0)

    @property
    def complete_pair(self) -> bool:
        return len(self.speakers) == 2


# ------------------------------------------------------------------------------------------- selection
def _scan_folder(folder: Path) -> dict[str, dict[str, Path]]:
    found: dict[str, dict[str, Path]] = {}
    for path in sorted(folder.rglob("V*_S*_I*_P*.*")):
        m = _BUNDLE_NAME.match(path.name)
        if m and path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts):
            found.setdefault(m[1], {}).setdefault(m[2], path)
    return found


def _local_ids(local_dir: Path, pattern: str) -> list[str]:
    names = {p.name.split(".", 1)[0] for p in local_dir.glob(f"{_LAYOUT_GLOB}/{pattern}")}
    return sorted(n for n in names if FILE_ID_RE.match(n))


def _bundle(local_dir: Path, file_id: str, catalog: Catalog | None) -> dict[str, Path]:
    if catalog is not None:
        try:
            rec = catalog.record(file_id)
        except KeyError:
            rec = None
        if rec is not None:
            paths = layout.bundle_paths(local_dir, rec.label, rec.split, rec.batch, rec.archive, file_id)
            found = {ext: p for ext, p in paths.items() if p.exists()}
            if found:
                return found
    return layout.find_bundle(local_dir, file_id)


def resolve_selection(items: Iterable[str | Path], *, local_dir: Path | str | None = None,
                      catalog: Catalog | None = None) -> dict[str, dict[str, dict[str, Path]]]:
    """``{interaction key: {file id: {ext: path}}}`` for a selection, in the order first named.

    Raises :class:`ExportError` when an item names nothing local (the message says which).
    """
    root = Path(local_dir) if local_dir is not None else None
    groups: dict[str, dict[str, dict[str, Path]]] = {}

    def add(fid: str, paths: dict[str, Path]) -> None:
        paths = {ext: p for ext, p in paths.items() if ext in BUNDLE_EXTENSIONS}
        if paths:
            groups.setdefault(FileId.parse(fid).interaction_key, {}).setdefault(fid, paths)

    for item in items:
        path = Path(item)
        if isinstance(item, Path) or (path.is_dir() and not FILE_ID_RE.match(str(item))):
            if not path.is_dir():
                raise ExportError(f"{item}: not a folder")
            found = _scan_folder(path)
            if not found:
                raise ExportError(f"{item}: no bundle files (V##_S####_I########_P####.{{json,mp4,npz,wav}}) under it")
            for fid, paths in found.items():
                add(fid, paths)
            continue
        if "/" in str(item) or "\\" in str(item):
            raise ExportError(f"{item}: no such folder")
        kind = classify_key(str(item))
        if root is None:
            raise ExportError(f"{item}: a key needs a local dataset folder (local_dir / --local-dir)")
        if kind == "file":
            ids = [str(item).strip()]
        elif kind == "interaction":
            ids = (list(catalog.interaction_file_ids(str(item).strip())) if catalog is not None
                   else _local_ids(root, f"{str(item).strip()}_P*.*"))
        else:
            ids = _local_ids(root, f"{str(item).strip()}_I*_P*.*")
        hits = [(fid, _bundle(root, fid, catalog)) for fid in ids]
        hits = [(fid, p) for fid, p in hits if p]
        if not hits:
            raise NotDownloadedError(f"{item}: no local files under {root}; download it first")
        for fid, paths in hits:
            add(fid, paths)
    return groups


def load_dyad(key: str, bundles: dict[str, dict[str, Path]]) -> Dyad:
    """Open the bundles of one interaction; placeholders and bundles without audio are left out."""
    speakers: list[Speaker] = []
    missing: list[str] = []
    for fid in sorted(bundles):
        paths = bundles[fid]
        part = Participant.from_paths(fid, paths)
        info = part.wav_info if "wav" in paths else None
        if info is None or info.frames == 0:
            logger.warning("%s: no audio samples (placeholder or missing .wav); left out of %s", fid, key)
            missing.append(fid)
            continue
        speakers.append(Speaker(fid, len(speakers), dict(paths), part))
    return Dyad(key, speakers, missing)
