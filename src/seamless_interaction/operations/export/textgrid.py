"""Praat TextGrid: one file per interaction, written with praatio (long text format, UTF-8).

Interval tiers per participant ``P``: ``P utterances`` (segment text, untimed words included),
``P words`` (timed words only) and ``P vad`` (talkspurts, labelled ``speech``). The grid runs from 0
to the longer participant's duration; intervals are clipped to it. Overlapping intervals of one
tier go to a tier suffixed `` (2)``, as in the ELAN export. Praat has no media links: open the
WAVs next to it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from seamless_interaction.operations.export._common import (
    atomic_path,
    clip_span,
    layers,
    require,
    tier_name,
)
from seamless_interaction.operations.export.source import Dyad

__all__ = ["TextGridWriter"]

logger = logging.getLogger(__name__)

# praatio drops intervals shorter than this when saving; ours are rounded to the millisecond first.
_MIN_INTERVAL_S = 1e-3


class TextGridWriter:
    """Writes ``OUT/{interaction key}.TextGrid`` per dyad."""

    def __init__(self, out: Path) -> None:
        self._tg = require("praatio.textgrid", "Praat TextGrid")
        self.out = Path(out)

    def write(self, dyad: Dyad) -> list[Path]:
        if not dyad.speakers:
            return []
        textgrid = self._tg
        hi = round(dyad.duration_s, 6)
        grid = textgrid.Textgrid(minTimestamp=0.0, maxTimestamp=hi)
        for s in dyad.speakers:
            pid = s.participant_id
            words = [(w.start, w.end, w.word) for u in s.utterances for w in u.words]
            tiers = {
                f"{pid} utterances": [(u.start, u.end, u.text) for u in s.utterances],
                f"{pid} words": words,
                f"{pid} vad": [(a, b, "speech") for a, b in s.talkspurts],
            }
            for name, items in tiers.items():
                kept = []
                for a, b, text in items:
                    span = clip_span(round(a, 6), round(b, 6), 0.0, hi)
                    if span and span[1] - span[0] >= _MIN_INTERVAL_S:
                        kept.append((span[0], span[1], text))
                for li, group in enumerate(layers(kept, lambda x: (x[0], x[1])) or [[]]):
                    tier = textgrid.IntervalTier(tier_name(name, li), group, 0.0, hi)
                    grid.addTier(tier)
        target = self.out / f"{dyad.key}.TextGrid"
        with atomic_path(target) as tmp:
            grid.save(str(tmp), format="long_textgrid", includeBlankSpaces=True, reportingMode="error")
        return [target]

    def close(self) -> list[Path]:
        return []
