"""Lhotse manifests: one multi-channel ``Recording`` per interaction and its ``SupervisionSet``s.

Written, streaming, to ``OUT/seamless_interaction_recordings.jsonl.gz``,
``..._supervisions.jsonl.gz`` (one segment per transcript utterance, ``speaker`` = participant id
with its letter suffix, ``channel`` = that participant's, word alignments from the timed words only;
untimed words stay in ``text`` and are listed in ``custom["untimed_words"]``) and
``..._supervisions_vad.jsonl.gz`` (one segment per VAD talkspurt, ``custom["kind"] = "vad"``).

Channel ``i`` of a recording is the i-th participant in file-id order, each from its own WAV.
Partners' WAVs may differ by a few samples: the recording is as long as the **longer** one and the
shorter channel is **padded** with zeros at the end when loaded (Lhotse's own rule for multi-file
recordings); a difference above Lhotse's tolerance (25 ms, ``LHOTSE_AUDIO_DURATION_MISMATCH_TOLERANCE``)
would make ``load_audio`` fail, so such an interaction is skipped with a warning.

Video is **not** attached: Lhotse 1.x loads video only through ``torchaudio.io.StreamReader`` (not a
dependency of ours; torchaudio is not installed by the ``export`` extra) and allows one video stream
per recording, while a dyad has two. (``Recording`` has no ``custom`` field to carry the MP4 paths;
each sits beside its WAV.) Every supervision's ``custom["file_id"]`` names its participant's bundle.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from seamless_interaction.operations.export._common import (
    atomic_path,
    clip_span,
    require,
)
from seamless_interaction.operations.export.source import Dyad

__all__ = ["MANIFEST_PREFIX", "LhotseWriter"]

logger = logging.getLogger(__name__)

MANIFEST_PREFIX = "seamless_interaction"
_DEFAULT_TOLERANCE_S = 0.025


def _tolerance_s() -> float:
    return float(os.environ.get("LHOTSE_AUDIO_DURATION_MISMATCH_TOLERANCE", _DEFAULT_TOLERANCE_S))


class LhotseWriter:
    """Collects dyads into the three manifests; nothing appears under ``out`` until :meth:`close`."""

    def __init__(self, out: Path, *, prefix: str = MANIFEST_PREFIX) -> None:
        self._lhotse = require("lhotse", "Lhotse")
        self.out = Path(out)
        self.paths = {kind: self.out / f"{prefix}_{kind}.jsonl.gz"
                      for kind in ("recordings", "supervisions", "supervisions_vad")}
        self._tmp: dict[str, Any] = {}
        self._writers: dict[str, Any] = {}
        self.skipped: list[str] = []

    def _open(self) -> None:
        lh = self._lhotse
        sets = {"recordings": lh.RecordingSet, "supervisions": lh.SupervisionSet,
                "supervisions_vad": lh.SupervisionSet}
        for kind, target in self.paths.items():
            ctx = atomic_path(target)
            self._tmp[kind] = ctx
            self._writers[kind] = sets[kind].open_writer(ctx.__enter__())

    def write(self, dyad: Dyad) -> list[Path]:
        if not dyad.speakers:
            return []
        rates = {s.sample_rate for s in dyad.speakers}
        if len(rates) != 1:
            logger.warning("%s: partners have different sample rates %s; skipped for Lhotse", dyad.key, sorted(rates))
            self.skipped.append(dyad.key)
            return []
        rate = rates.pop()
        lengths = [s.num_samples for s in dyad.speakers]
        if (max(lengths) - min(lengths)) / rate > _tolerance_s():
            logger.warning("%s: partners' WAVs differ by %d samples, more than Lhotse's %.3f s tolerance; "
                           "skipped for Lhotse", dyad.key, max(lengths) - min(lengths), _tolerance_s())
            self.skipped.append(dyad.key)
            return []
        if not self._writers:
            self._open()
        lh = self._lhotse
        num_samples = max(lengths)
        duration = num_samples / rate
        rec = lh.Recording(
            id=dyad.key,
            sources=[lh.AudioSource(type="file", channels=[s.channel], source=str(s.paths["wav"].resolve()))
                     for s in dyad.speakers],
            sampling_rate=rate, num_samples=num_samples, duration=duration,
            channel_ids=[s.channel for s in dyad.speakers],
        )
        self._writers["recordings"].write(rec)
        for s in dyad.speakers:
            for u in s.utterances:
                span = clip_span(u.start, u.end, 0.0, duration)
                if span is None:
                    logger.warning("%s: utterance %d [%s, %s) lies outside the audio; left out",
                                   s.file_id, u.index, u.start, u.end)
                    continue
                items = []
                for w in u.words:
                    ws = clip_span(w.start, w.end, span[0], span[1])
                    if ws is not None:
                        items.append(lh.supervision.AlignmentItem(symbol=w.word, start=round(ws[0], 6),
                                                                  duration=round(ws[1] - ws[0], 6), score=w.score))
                custom: dict[str, Any] = {"file_id": s.file_id, "segment": u.index}
                if u.untimed_words:
                    custom["untimed_words"] = list(u.untimed_words)
                self._writers["supervisions"].write(lh.SupervisionSegment(
                    id=f"{s.file_id}-utt{u.index:05d}", recording_id=dyad.key, start=round(span[0], 6),
                    duration=round(span[1] - span[0], 6), channel=s.channel, text=u.text,
                    speaker=s.participant_id, alignment={"word": items} if items else None, custom=custom))
            for i, (a, b) in enumerate(s.talkspurts):
                span = clip_span(a, b, 0.0, duration)
                if span is None:
                    continue
                self._writers["supervisions_vad"].write(lh.SupervisionSegment(
                    id=f"{s.file_id}-vad{i:05d}", recording_id=dyad.key, start=round(span[0], 6),
                    duration=round(span[1] - span[0], 6), channel=s.channel, speaker=s.participant_id,
                    custom={"file_id": s.file_id, "kind": "vad"}))
        return list(self.paths.values())

    def close(self) -> list[Path]:
        """Finish the manifests; with nothing written, no file is created."""
        done = []
        for kind, writer in self._writers.items():
            writer.close()
            self._tmp[kind].__exit__(None, None, None)
            done.append(self.paths[kind])
        self._writers.clear()
        return done

    def abort(self) -> None:
        for kind, writer in self._writers.items():
            try:
                writer.close()
            finally:
                self._tmp[kind].__exit__(RuntimeError, RuntimeError("aborted"), None)
        self._writers.clear()
