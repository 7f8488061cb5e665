"""RTTM (NIST Rich Transcription Time Marked) speaker turns, written by hand: the format is ten
space-separated fields per line and no maintained library writes it without pulling in a
diarization toolkit.

Two files per interaction, with the interaction key as the RTTM file id and the participant id
(letter suffix kept) as the speaker name:

* ``{key}.vad.rttm``: one ``SPEAKER`` line per VAD talkspurt (merged segments, computed by
  :mod:`seamless_interaction.base.conversation`); partners' lines may overlap, as speech does;
* ``{key}.transcript.rttm``: one line per transcript segment;
* ``{key}.turns.rttm`` (complete pairs where both partners speak): one line per turn, the floor
  holders in order as :func:`seamless_interaction.base.conversation.turns` defines them.

Lines are sorted by onset, then speaker; times have millisecond precision (the data's own).
"""

from __future__ import annotations

from pathlib import Path

from seamless_interaction.base import conversation
from seamless_interaction.operations.export._common import write_text_atomic
from seamless_interaction.operations.export.source import Dyad

__all__ = ["RttmWriter", "rttm_lines"]


def rttm_lines(file_id: str, turns: list[tuple[str, float, float]]) -> list[str]:
    """``SPEAKER`` lines for ``(speaker, start, end)`` turns; turns shorter than 1 ms are left out."""
    out = []
    for speaker, start, end in sorted(turns, key=lambda t: (t[1], t[0])):
        onset, dur = round(start, 3), round(end - start, 3)
        if dur > 0:
            out.append(f"SPEAKER {file_id} 1 {onset:.3f} {dur:.3f} <NA> <NA> {speaker} <NA> <NA>")
    return out


class RttmWriter:
    """Writes ``OUT/{key}.vad.rttm`` and ``OUT/{key}.transcript.rttm`` per dyad."""

    def __init__(self, out: Path) -> None:
        self.out = Path(out)

    def write(self, dyad: Dyad) -> list[Path]:
        if not dyad.speakers:
            return []
        vad = [(s.participant_id, a, b) for s in dyad.speakers for a, b in s.talkspurts]
        words = [(s.participant_id, u.start, u.end) for s in dyad.speakers for u in s.utterances]
        files = [("vad", vad), ("transcript", words)]
        if dyad.complete_pair and all(s.talkspurts for s in dyad.speakers):
            by_role = {"A": dyad.speakers[0].participant_id, "B": dyad.speakers[1].participant_id}
            floor = conversation.turns(dyad.speakers[0].talkspurts, dyad.speakers[1].talkspurts)
            files.append(("turns", [(by_role[who], a, b) for who, a, b in floor]))
        written = []
        for name, turns in files:
            lines = rttm_lines(dyad.key, turns)
            written.append(write_text_atomic(self.out / f"{dyad.key}.{name}.rttm",
                                             "".join(line + "\n" for line in lines)))
        return written

    def close(self) -> list[Path]:
        return []
