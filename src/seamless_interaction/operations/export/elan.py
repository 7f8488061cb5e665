"""ELAN ``.eaf``: one file per interaction, written with pympi-ling.

Media: both MP4s and both WAVs are linked (absolute ``MEDIA_URL`` plus a ``RELATIVE_MEDIA_URL``
from the .eaf's folder, so the pair opens after the tree is moved). Tiers, per participant ``P``
(participant id with its letter suffix):

* ``P utterances``: one annotation per transcript segment (its full text, untimed words included);
* ``P words``: the timed words, a child tier (``Included_In``) of ``P utterances``;
* ``P vad``: the VAD talkspurts (merged segments, :mod:`seamless_interaction.base.conversation`);
* ``P 1P-IS``, ``P 3P-V``, ...: the 1P/3P annotation records present.

Times are integer milliseconds. A tier cannot hold overlapping annotations, so items that overlap an
earlier one of the same tier go to a tier suffixed `` (2)``, `` (3)``... instead of being moved.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from seamless_interaction.operations.export._common import (
    atomic_path,
    clip_span,
    layers,
    require,
    tier_name,
)
from seamless_interaction.operations.export.source import Dyad

__all__ = ["ElanWriter"]

logger = logging.getLogger(__name__)

_MIME = {"wav": "audio/x-wav", "mp4": "video/mp4"}
_WORDS_TYPE = "words"
_DEFAULT_TYPE = "default-lt"


def _ms(t: float) -> int:
    return round(t * 1000)


class ElanWriter:
    """Writes ``OUT/{interaction key}.eaf`` per dyad."""

    def __init__(self, out: Path) -> None:
        self._elan = require("pympi.Elan", "ELAN")
        self.out = Path(out)

    def write(self, dyad: Dyad) -> list[Path]:
        if not dyad.speakers:
            return []
        Elan = self._elan
        target = self.out / f"{dyad.key}.eaf"
        eaf = Elan.Eaf(author="seamless-interaction")
        eaf.add_linguistic_type(_WORDS_TYPE, constraints="Included_In", timealignable=True)
        for s in dyad.speakers:
            for ext in ("mp4", "wav"):
                if ext in s.paths:
                    media = s.paths[ext].resolve()
                    rel = os.path.relpath(media, self.out.resolve())
                    eaf.add_linked_file(media.as_uri(), relpath=rel.replace(os.sep, "/"), mimetype=_MIME[ext])
        hi = dyad.duration_s
        for s in dyad.speakers:
            pid = s.participant_id
            utts = [u for u in s.utterances if clip_span(u.start, u.end, 0.0, hi)]
            for li, layer in enumerate(layers(utts, lambda u: (u.start, u.end))):
                utier = tier_name(f"{pid} utterances", li)
                wtier = tier_name(f"{pid} words", li)
                eaf.add_tier(utier, ling=_DEFAULT_TYPE, part=s.file_id)
                eaf.add_tier(wtier, ling=_WORDS_TYPE, parent=utier, part=s.file_id)
                for u in layer:
                    us, ue = clip_span(u.start, u.end, 0.0, hi)  # type: ignore[misc]
                    if _ms(ue) <= _ms(us):
                        continue
                    eaf.add_annotation(utier, _ms(us), _ms(ue), u.text)
                    # Words outside their utterance are clipped to it (Included_In), overlapping ones
                    # shortened to the next word's start: one words tier per utterance tier.
                    prev = _ms(us)
                    for w in sorted(u.words, key=lambda w: w.start):
                        ws, we = max(_ms(w.start), prev), min(_ms(w.end), _ms(ue))
                        if we > ws:
                            eaf.add_annotation(wtier, ws, we, w.word)
                            prev = we
            self._add_tier(eaf, f"{pid} vad", s.file_id, [(a, b, "speech") for a, b in s.talkspurts], hi)
            for kind in sorted(s.annotations):
                recs = [(r.start, r.end, r.text) for r in s.annotations[kind]]
                self._add_tier(eaf, f"{pid} {kind}", s.file_id, recs, hi)
        if "default" in eaf.tiers:
            eaf.remove_tier("default")
        with atomic_path(target) as tmp:
            Elan.to_eaf(str(tmp), eaf, pretty=True)
        return [target]

    def _add_tier(self, eaf, name: str, part: str, items: list[tuple[float, float, str]], hi: float) -> None:
        kept = []
        for a, b, text in items:
            span = clip_span(a, b, 0.0, hi)
            if span and _ms(span[1]) > _ms(span[0]):
                kept.append((_ms(span[0]), _ms(span[1]), text))
        groups = layers(kept, lambda x: (x[0], x[1])) or [[]]
        for li, group in enumerate(groups):
            tier = tier_name(name, li)
            eaf.add_tier(tier, ling=_DEFAULT_TYPE, part=part)
            for a, b, text in group:
                eaf.add_annotation(tier, a, b, text)

    def close(self) -> list[Path]:
        return []
