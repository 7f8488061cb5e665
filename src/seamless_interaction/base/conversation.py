"""Turn-taking measures from two partners' VAD segments, as ``CONVERSATION.md`` defines them.

Pure functions over lists of ``(start, end)`` seconds, so that the index, the app and the exports
show the same numbers for the same interaction. The vocabulary (pauses, gaps, between- and
within-speaker overlaps) follows Heldner & Edlund (2010), "Pauses, gaps and overlaps in
conversations", Journal of Phonetics 38(4): 555-568; the floor-transfer offset (FTO, positive for a
gap, negative for an overlap) follows the convention reviewed in Levinson & Torreira (2015), "Timing
in turn-taking and its implications for processing models of language", Frontiers in Psychology 6:731.

Two heuristics, stated here because they are choices and not facts about the data:

* a **backchannel** is a listener talkspurt shorter than :data:`BACKCHANNEL_MAX_S` that does not take
  the floor: it lies inside a within-speaker overlap or inside a pause of the floor holder, i.e. the
  nearest single-speaker states on both sides of it (looking past at most one silence) belong to the
  other partner. Backchannels are left out when floor transfers are found, so that "mm-hm" in the
  holder's pause is not counted as two floor transfers (the table in CONVERSATION.md would otherwise
  read that pause as two gaps);
* an **interruption** is a between-speaker overlap longer than :data:`INTERRUPTION_MIN_S`.

Partner A is the first of the two file ids in sorted order (the data does not say who had prompt A).
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "BACKCHANNEL_MAX_S",
    "INTERRUPTION_MIN_S",
    "FileMeasures",
    "InteractionMeasures",
    "Piece",
    "Transition",
    "backchannels",
    "file_measures",
    "floor_transfer_offsets",
    "interaction_measures",
    "interruptions",
    "order_pair",
    "overlap_s",
    "quantile",
    "silence_s",
    "speech_ratio",
    "speech_s",
    "speech_share_a",
    "states",
    "talkspurts",
    "transitions",
    "turns",
    "vad_segments",
    "word_counts",
]

logger = logging.getLogger(__name__)

BACKCHANNEL_MAX_S = 1.0
INTERRUPTION_MIN_S = 0.5

Span = tuple[float, float]

NONE, A, B, BOTH = "none", "A", "B", "both"


@dataclass(frozen=True)
class Piece:
    """A stretch of the time line in one state: ``none``, ``A``, ``B`` or ``both``."""

    start: float
    end: float
    state: str

    @property
    def length(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Transition:
    """The run of ``none``/``both`` pieces between two single-speaker states.

    ``kind`` is ``gap`` or ``overlap`` (between-speaker: a floor transfer, ``offset`` set) or
    ``pause`` or ``within_overlap`` (the same speaker on both sides, ``offset`` is None). A floor
    transfer whose offset is exactly 0 (one stops as the other starts, through a multi-piece run)
    has kind ``gap``.
    """

    start: float
    end: float
    before: str
    after: str
    kind: str
    offset: float | None


@dataclass(frozen=True)
class FileMeasures:
    """Per-file measures (one participant's VAD and transcript)."""

    speech_s: float
    speech_ratio: float | None
    n_vad_segments: int
    n_words: int
    n_untimed_words: int
    words_per_minute: float | None
    vad_empty: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class InteractionMeasures:
    """Per-interaction measures from both partners' VAD on one clock (A = first file id sorted)."""

    duration_s: float | None
    overlap_s: float | None
    silence_s: float | None
    n_turns: int | None
    fto_n: int | None
    fto_median_s: float | None
    fto_p10_s: float | None
    fto_p90_s: float | None
    median_gap_s: float | None
    median_overlap_s: float | None
    n_overlaps: int | None
    n_backchannels: int | None
    n_interruptions: int | None
    speech_share_a: float | None
    longest_turn_s: float | None
    complete_pair: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------------------------
# segments -> talkspurts -> states


def vad_segments(vad: Iterable[Mapping[str, Any]] | None) -> list[Span]:
    """``metadata:vad`` records (``{"start", "end"}``) as ``(start, end)`` float pairs, as given."""
    out: list[Span] = []
    for rec in vad or ():
        start, end = rec.get("start"), rec.get("end")
        if start is None or end is None:
            continue
        out.append((float(start), float(end)))
    return out


def talkspurts(segments: Iterable[Sequence[float]]) -> list[Span]:
    """The union of half-open segments: sorted, merged where they overlap or touch.

    Segments with ``end <= start`` carry no speech; they are dropped with one warning.
    """
    good: list[Span] = []
    dropped = 0
    for seg in segments:
        start, end = float(seg[0]), float(seg[1])
        if not end > start:  # also catches NaN
            dropped += 1
            continue
        good.append((start, end))
    if dropped:
        logger.warning("dropped %d VAD segment(s) with end <= start", dropped)
    good.sort()
    merged: list[list[float]] = []
    for start, end in good:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(s, e) for s, e in merged]


def speech_s(spurts: Sequence[Span]) -> float:
    """Total length of a participant's talkspurts (pass the output of :func:`talkspurts`)."""
    return float(sum(e - s for s, e in spurts))


def speech_ratio(spurts: Sequence[Span], duration_s: float | None) -> float | None:
    """``speech_s / duration_s``; None without a positive duration."""
    if duration_s is None or not duration_s > 0:
        return None
    return speech_s(spurts) / duration_s


def states(spurts_a: Sequence[Span], spurts_b: Sequence[Span]) -> list[Piece]:
    """Cut the time line at every talkspurt edge of either partner, from the first speech to the last.

    Leading and trailing silence are not pieces. Adjacent pieces always differ in state.
    """
    edges = sorted({t for s in (*spurts_a, *spurts_b) for t in s})
    pieces: list[Piece] = []
    ia = ib = 0
    for lo, hi in itertools.pairwise(edges):
        mid = (lo + hi) / 2
        # talkspurts are sorted and disjoint, so one forward pointer each suffices
        while ia < len(spurts_a) and spurts_a[ia][1] <= mid:
            ia += 1
        while ib < len(spurts_b) and spurts_b[ib][1] <= mid:
            ib += 1
        in_a = ia < len(spurts_a) and spurts_a[ia][0] <= mid
        in_b = ib < len(spurts_b) and spurts_b[ib][0] <= mid
        state = BOTH if in_a and in_b else A if in_a else B if in_b else NONE
        if pieces and pieces[-1].state == state:
            pieces[-1] = Piece(pieces[-1].start, hi, state)
        else:
            pieces.append(Piece(lo, hi, state))
    return pieces


def overlap_s(pieces: Sequence[Piece]) -> float:
    """Total length of the ``both`` state."""
    return float(sum(p.length for p in pieces if p.state == BOTH))


def silence_s(pieces: Sequence[Piece]) -> float:
    """Total length of ``none`` between the first and the last speech."""
    return float(sum(p.length for p in pieces if p.state == NONE))


# ---------------------------------------------------------------------------------------------
# transitions, floor transfers, turns


def _other(who: str) -> str:
    return B if who == A else A


def backchannels(spurts_a: Sequence[Span], spurts_b: Sequence[Span]) -> list[tuple[str, Span]]:
    """Listener talkspurts shorter than 1 s that do not take the floor, as ``(who, spurt)``.

    A talkspurt of p qualifies when, in :func:`states`, the nearest piece before it and the nearest
    piece after it, looking past at most one ``none`` piece, are the other partner speaking alone.
    """
    pieces = states(spurts_a, spurts_b)
    starts = {p.start: i for i, p in enumerate(pieces)}
    ends = {p.end: i for i, p in enumerate(pieces)}
    found: list[tuple[str, Span]] = []
    for who, spurts in ((A, spurts_a), (B, spurts_b)):
        holder = _other(who)
        for spurt in spurts:
            if not spurt[1] - spurt[0] < BACKCHANNEL_MAX_S:
                continue
            first, last = starts[spurt[0]], ends[spurt[1]]
            if _neighbour(pieces, first, -1) == holder and _neighbour(pieces, last, +1) == holder:
                found.append((who, spurt))
    found.sort(key=lambda w: w[1])
    return found


def _neighbour(pieces: Sequence[Piece], i: int, step: int) -> str | None:
    j = i + step
    if 0 <= j < len(pieces) and pieces[j].state == NONE:
        j += step
    return pieces[j].state if 0 <= j < len(pieces) else None


def _floor_spurts(spurts_a: Sequence[Span], spurts_b: Sequence[Span]) -> tuple[list[Span], list[Span]]:
    """Talkspurts with backchannels removed: the speech that can hold or take the floor."""
    bc = set(backchannels(spurts_a, spurts_b))
    return (
        [s for s in spurts_a if (A, s) not in bc],
        [s for s in spurts_b if (B, s) not in bc],
    )


def transitions(spurts_a: Sequence[Span], spurts_b: Sequence[Span]) -> list[Transition]:
    """Every run of ``none``/``both`` pieces between two single-speaker states, classified.

    Computed on the floor speech (backchannels removed, see the module doc). For a floor transfer
    X -> Y the offset is the start of Y's first talkspurt in the run minus the end of X's last one,
    which for a single piece is + its length (gap) or - its length (between-speaker overlap).
    Runs before the first or after the last single-speaker state have no side to classify by and
    are not transitions.
    """
    fa, fb = _floor_spurts(spurts_a, spurts_b)
    pieces = states(fa, fb)
    out: list[Transition] = []
    prev_single: int | None = None
    for i, p in enumerate(pieces):
        if p.state not in (A, B):
            continue
        if prev_single is not None and i - prev_single > 1:
            run = pieces[prev_single + 1 : i]
            x, y = pieces[prev_single].state, p.state
            r0, r1 = run[0].start, run[-1].end
            if x == y:
                kind = "within_overlap" if any(q.state == BOTH for q in run) else "pause"
                out.append(Transition(r0, r1, x, y, kind, None))
            else:
                sx, sy = (fa, fb) if x == A else (fb, fa)
                x_end = max(e for s, e in sx if r0 <= e <= r1)
                y_start = min(s for s, e in sy if r0 <= s <= r1)
                offset = y_start - x_end
                out.append(Transition(r0, r1, x, y, "overlap" if offset < 0 else "gap", offset))
        prev_single = i
    return out


def floor_transfer_offsets(spurts_a: Sequence[Span], spurts_b: Sequence[Span]) -> list[float]:
    """One offset per floor transfer, in time order: positive for gaps, negative for overlaps."""
    return [t.offset for t in transitions(spurts_a, spurts_b) if t.offset is not None]


def interruptions(spurts_a: Sequence[Span], spurts_b: Sequence[Span]) -> list[Transition]:
    """Floor transfers through an overlap longer than 0.5 s (a heuristic)."""
    return [
        t
        for t in transitions(spurts_a, spurts_b)
        if t.offset is not None and -t.offset > INTERRUPTION_MIN_S
    ]


def turns(spurts_a: Sequence[Span], spurts_b: Sequence[Span]) -> list[tuple[str, float, float]]:
    """The floor holders in order, as ``(who, start, end)``; a new turn starts at each floor transfer.

    A turn runs from the start of its holder's first talkspurt (for a later turn: the first one in
    the transfer that began it) to the end of the holder's last talkspurt before the next transfer
    (or before the holder's last single-speaker piece ends, for the last turn).
    """
    fa, fb = _floor_spurts(spurts_a, spurts_b)
    pieces = states(fa, fb)
    singles = [p for p in pieces if p.state in (A, B)]
    if not singles:
        return []

    def covering(who: str, t: float) -> Span:
        spurts = fa if who == A else fb
        return next(s for s in spurts if s[0] <= t < s[1])

    first = singles[0]
    holder, start = first.state, covering(first.state, first.start)[0]
    out: list[tuple[str, float, float]] = []
    for tr in transitions(spurts_a, spurts_b):
        if tr.offset is None:
            continue
        sx, sy = (fa, fb) if tr.before == A else (fb, fa)
        x_end = max(e for s, e in sx if tr.start <= e <= tr.end)
        out.append((holder, start, x_end))
        holder, start = tr.after, min(s for s, e in sy if tr.start <= s <= tr.end)
    last = singles[-1]
    out.append((holder, start, covering(last.state, last.start)[1]))
    return out


# ---------------------------------------------------------------------------------------------
# summaries


def quantile(values: Sequence[float], q: float) -> float | None:
    """The q-quantile with linear interpolation between order statistics (numpy's default)."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def order_pair(file_ids: Sequence[str]) -> tuple[str, ...]:
    """The partners in A, B order: sorted file ids."""
    return tuple(sorted(file_ids))


def speech_share_a(spurts_a: Sequence[Span], spurts_b: Sequence[Span]) -> float | None:
    """``speech_s(A) / (speech_s(A) + speech_s(B))``; None when neither speaks."""
    sa, sb = speech_s(spurts_a), speech_s(spurts_b)
    return sa / (sa + sb) if sa + sb > 0 else None


def word_counts(transcript: Iterable[Mapping[str, Any]] | None) -> tuple[int, int]:
    """``(n_words, n_untimed_words)`` of a ``metadata:transcript`` segment list."""
    n = untimed = 0
    for seg in transcript or ():
        for word in seg.get("words") or ():
            n += 1
            if word.get("start") is None or word.get("end") is None:
                untimed += 1
    return n, untimed


def file_measures(
    vad: Iterable[Mapping[str, Any]] | None,
    transcript: Iterable[Mapping[str, Any]] | None,
    duration_s: float | None,
) -> FileMeasures:
    """Per-file measures from one participant's ``metadata:vad`` and ``metadata:transcript``."""
    segs = vad_segments(vad)
    spurts = talkspurts(segs)
    n_words, n_untimed = word_counts(transcript)
    wpm = n_words / (duration_s / 60.0) if duration_s is not None and duration_s > 0 else None
    return FileMeasures(
        speech_s=speech_s(spurts),
        speech_ratio=speech_ratio(spurts, duration_s),
        n_vad_segments=len(segs),
        n_words=n_words,
        n_untimed_words=n_untimed,
        words_per_minute=wpm,
        vad_empty=not spurts,
    )


def _median(values: Sequence[float]) -> float | None:
    return quantile(values, 0.5)


def interaction_measures(
    vad_a: Iterable[Mapping[str, Any]] | Sequence[Span] | None,
    vad_b: Iterable[Mapping[str, Any]] | Sequence[Span] | None,
    duration_s: float | None,
    *,
    complete_pair: bool = True,
) -> InteractionMeasures:
    """Per-interaction measures from partner A's and partner B's VAD (records or ``(start, end)``).

    With ``complete_pair=False`` (a partner is missing) only ``duration_s`` is filled. When either
    partner's VAD is empty, the turn measures are None (never an error); overlap and silence are
    still reported while somebody speaks.
    """
    if not complete_pair:
        return _empty(duration_s, complete_pair=False)
    sa = talkspurts(_as_spans(vad_a))
    sb = talkspurts(_as_spans(vad_b))
    pieces = states(sa, sb)
    base = _empty(duration_s, complete_pair=True)
    if not pieces:
        return base
    fields = base.as_dict()
    fields.update(
        overlap_s=overlap_s(pieces),
        silence_s=silence_s(pieces),
        speech_share_a=speech_share_a(sa, sb),
    )
    if sa and sb:
        ftos = floor_transfer_offsets(sa, sb)
        gaps = [f for f in ftos if f > 0]
        overlaps = [f for f in ftos if f < 0]
        spans = turns(sa, sb)
        fields.update(
            n_turns=len(spans),
            fto_n=len(ftos),
            fto_median_s=_median(ftos),
            fto_p10_s=quantile(ftos, 0.1),
            fto_p90_s=quantile(ftos, 0.9),
            median_gap_s=_median(gaps),
            median_overlap_s=_median(overlaps),
            n_overlaps=len(overlaps),
            n_backchannels=len(backchannels(sa, sb)),
            n_interruptions=sum(1 for f in overlaps if -f > INTERRUPTION_MIN_S),
            longest_turn_s=max((e - s for _, s, e in spans), default=None),
        )
    return InteractionMeasures(**fields)


def _as_spans(vad: Iterable[Mapping[str, Any]] | Sequence[Span] | None) -> list[Span]:
    items = list(vad or ())
    if items and isinstance(items[0], Mapping):
        return vad_segments(items)  # type: ignore[arg-type]
    return [(float(s), float(e)) for s, e in items]  # type: ignore[misc]


def _empty(duration_s: float | None, *, complete_pair: bool) -> InteractionMeasures:
    return InteractionMeasures(
        duration_s=duration_s,
        overlap_s=None,
        silence_s=None,
        n_turns=None,
        fto_n=None,
        fto_median_s=None,
        fto_p10_s=None,
        fto_p90_s=None,
        median_gap_s=None,
        median_overlap_s=None,
        n_overlaps=None,
        n_backchannels=None,
        n_interruptions=None,
        speech_share_a=None,
        longest_turn_s=None,
        complete_pair=complete_pair,
    )
