"""Turn-taking measures: hand-computed cases (answers derived in the comments) and invariants."""

from __future__ import annotations

import itertools
import logging
import random

import pytest

from seamless_interaction.base import conversation as cv
from seamless_interaction.base.conversation import Piece


def approx(x):
    return pytest.approx(x, abs=1e-9)


# ---------------------------------------------------------------------------------------------
# talkspurts


def test_talkspurts_union_merges_overlapping_and_touching():
    # [0,2) and [2,3) touch -> [0,3); [5,7) and [6,6.5) overlap -> [5,7); [8,9) stands alone
    segs = [(6, 6.5), (0, 2), (8, 9), (2, 3), (5, 7)]
    assert cv.talkspurts(segs) == [(0, 3), (5, 7), (8, 9)]
    assert cv.speech_s(cv.talkspurts(segs)) == approx(3 + 2 + 1)


def test_talkspurts_drop_empty_and_reversed_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="seamless_interaction.base.conversation"):
        assert cv.talkspurts([(3, 3), (5, 4), (1, 2)]) == [(1, 2)]
    assert "dropped 2 VAD segment(s)" in caplog.text


def test_speech_ratio_and_vad_records():
    spurts = cv.talkspurts(cv.vad_segments([{"start": 1.0, "end": 3.0}, {"start": 2.5, "end": 4.0}]))
    assert spurts == [(1.0, 4.0)]
    assert cv.speech_ratio(spurts, 12.0) == approx(0.25)
    assert cv.speech_ratio(spurts, 0.0) is None
    assert cv.speech_ratio(spurts, None) is None


# ---------------------------------------------------------------------------------------------
# Case 1: gaps and an overlap.
#   A: [0,2) [2,3) [6,8)  -> talkspurts [0,3) [6,8)          speech_s(A) = 5
#   B: [3.5,5) [7.5,10)                                       speech_s(B) = 4
#   states: A[0,3] none[3,3.5] B[3.5,5] none[5,6] A[6,7.5] both[7.5,8] B[8,10]
#   overlap_s = 0.5; silence_s = 0.5 + 1.0 = 1.5
#   transfers: A->B gap +0.5, B->A gap +1.0, A->B overlap -0.5  -> FTO [0.5, 1.0, -0.5]
#   sorted FTO [-0.5, 0.5, 1.0]: median 0.5; p10 at rank 0.2 -> -0.5 + 0.2*1.0 = -0.3;
#   p90 at rank 1.8 -> 0.5 + 0.8*0.5 = 0.9; median gap (0.5,1.0) = 0.75; median overlap -0.5
#   no interruption (0.5 is not > 0.5); no backchannel (every talkspurt >= 1 s)
#   turns: A[0,3] B[3.5,5] A[6,8] B[7.5,10] -> 4 turns, longest 3.0; share_a = 5/9
CASE1_A = [(0, 2), (2, 3), (6, 8)]
CASE1_B = [(3.5, 5), (7.5, 10)]


def test_case1_states():
    pieces = cv.states(cv.talkspurts(CASE1_A), cv.talkspurts(CASE1_B))
    assert pieces == [
        Piece(0, 3, "A"),
        Piece(3, 3.5, "none"),
        Piece(3.5, 5, "B"),
        Piece(5, 6, "none"),
        Piece(6, 7.5, "A"),
        Piece(7.5, 8, "both"),
        Piece(8, 10, "B"),
    ]
    assert cv.overlap_s(pieces) == approx(0.5)
    assert cv.silence_s(pieces) == approx(1.5)


def test_case1_transitions_and_turns():
    a, b = cv.talkspurts(CASE1_A), cv.talkspurts(CASE1_B)
    kinds = [(t.before, t.after, t.kind) for t in cv.transitions(a, b)]
    assert kinds == [("A", "B", "gap"), ("B", "A", "gap"), ("A", "B", "overlap")]
    assert cv.floor_transfer_offsets(a, b) == [approx(0.5), approx(1.0), approx(-0.5)]
    assert cv.turns(a, b) == [("A", 0, 3), ("B", 3.5, 5), ("A", 6, 8), ("B", 7.5, 10)]
    assert cv.backchannels(a, b) == []
    assert cv.interruptions(a, b) == []


def test_case1_interaction_measures():
    m = cv.interaction_measures(CASE1_A, CASE1_B, 10.0)
    assert m.duration_s == 10.0
    assert m.overlap_s == approx(0.5)
    assert m.silence_s == approx(1.5)
    assert m.n_turns == 4
    assert m.fto_n == 3
    assert m.fto_median_s == approx(0.5)
    assert m.fto_p10_s == approx(-0.3)
    assert m.fto_p90_s == approx(0.9)
    assert m.median_gap_s == approx(0.75)
    assert m.median_overlap_s == approx(-0.5)
    assert m.n_overlaps == 1
    assert m.n_interruptions == 0
    assert m.n_backchannels == 0
    assert m.speech_share_a == approx(5 / 9)
    assert m.longest_turn_s == approx(3.0)
    assert m.complete_pair is True


# ---------------------------------------------------------------------------------------------
# Case 2: backchannels (inside A's speech and inside A's pause) and an interruption.
#   A: [0,4) [4.6,10)                                         speech_s(A) = 4 + 5.4 = 9.4
#   B: [2,2.5) inside A; [4.1,4.4) in A's pause; [9,15)       speech_s(B) = 0.5 + 0.3 + 6 = 6.8
#   states: A[0,2] both[2,2.5] A[2.5,4] none[4,4.1] B[4.1,4.4] none[4.4,4.6] A[4.6,9] both[9,10] B[10,15]
#   overlap_s = 0.5 + 1.0 = 1.5; silence_s = 0.1 + 0.2 = 0.3
#   backchannels: B[2,2.5) (A on both sides) and B[4.1,4.4) (A past one silence on both sides)
#   floor speech: A[0,4) A[4.6,10) B[9,15): pause [4,4.6], then A->B overlap 9 - 10 = -1.0
#   FTO [-1.0]: interruption (1.0 > 0.5); turns A[0,10] B[9,15] -> 2, longest 10
CASE2_A = [(0, 4), (4.6, 10)]
CASE2_B = [(2, 2.5), (4.1, 4.4), (9, 15)]


def test_case2_backchannels_do_not_take_the_floor():
    a, b = cv.talkspurts(CASE2_A), cv.talkspurts(CASE2_B)
    assert cv.backchannels(a, b) == [("B", (2, 2.5)), ("B", (4.1, 4.4))]
    kinds = [(t.before, t.after, t.kind) for t in cv.transitions(a, b)]
    assert kinds == [("A", "A", "pause"), ("A", "B", "overlap")]
    assert cv.floor_transfer_offsets(a, b) == [approx(-1.0)]
    assert cv.turns(a, b) == [("A", 0, 10), ("B", 9, 15)]
    assert len(cv.interruptions(a, b)) == 1


def test_case2_interaction_measures():
    m = cv.interaction_measures(CASE2_A, CASE2_B, 15.0)
    assert m.overlap_s == approx(1.5)
    assert m.silence_s == approx(0.3)
    assert m.n_backchannels == 2
    assert m.n_turns == 2
    assert (m.fto_n, m.fto_median_s, m.fto_p10_s, m.fto_p90_s) == (1, approx(-1), approx(-1), approx(-1))
    assert m.median_gap_s is None
    assert m.median_overlap_s == approx(-1.0)
    assert (m.n_overlaps, m.n_interruptions) == (1, 1)
    assert m.longest_turn_s == approx(10.0)
    assert m.speech_share_a == approx(9.4 / 16.2)


# ---------------------------------------------------------------------------------------------
# Case 3: one transition made of several pieces (none, both, none).
#   A: [0,5) [6,7)     B: [6,7) [7.5,12)
#   states: A[0,5] none[5,6] both[6,7] none[7,7.5] B[7.5,12]
#   B[6,7) and A[6,7) last exactly 1.0 s: not shorter than 1 s, so no backchannel
#   one transfer A->B over [5,7.5]: A's last talkspurt ends at 7, B's first starts at 6 -> -1.0
#   turns A[0,7] (7 s) B[6,12] (6 s) -> longest 7.0; overlap 1.0; silence 1.0 + 0.5 = 1.5
def test_case3_multi_piece_transition():
    a, b = cv.talkspurts([(0, 5), (6, 7)]), cv.talkspurts([(6, 7), (7.5, 12)])
    assert [p.state for p in cv.states(a, b)] == ["A", "none", "both", "none", "B"]
    (tr,) = cv.transitions(a, b)
    assert (tr.start, tr.end, tr.before, tr.after, tr.kind) == (5, 7.5, "A", "B", "overlap")
    assert tr.offset == approx(-1.0)
    assert cv.backchannels(a, b) == []
    assert cv.turns(a, b) == [("A", 0, 7), ("B", 6, 12)]
    m = cv.interaction_measures(a, b, 12.0)
    assert (m.overlap_s, m.silence_s, m.longest_turn_s) == (approx(1.0), approx(1.5), approx(7.0))


# Case 4: a 1.0 s spurt takes the floor; a 0.9 s one in the same place is a backchannel.
#   A: [0,3) [4,8)     B: [3.5,4.5)   (1.0 s long, so not a backchannel)
#   states: A[0,3] none[3,3.5] B[3.5,4] both[4,4.5] A[4.5,8]
#   B's spurt is 1.0 s -> floor speech; A->B gap +0.5, then B->A overlap 4 - 4.5 = -0.5
def test_case4_short_spurt_that_is_not_a_backchannel():
    a, b = cv.talkspurts([(0, 3), (4, 8)]), cv.talkspurts([(3.5, 4.5)])
    assert cv.floor_transfer_offsets(a, b) == [approx(0.5), approx(-0.5)]
    # shorten B to 0.9 s: now a backchannel in A's pause (A on both sides, past one silence)
    b2 = cv.talkspurts([(3.5, 4.4)])
    assert cv.backchannels(a, b2) == [("B", (3.5, 4.4))]
    assert cv.floor_transfer_offsets(a, b2) == []
    # transitions are read on the floor speech, where the backchannel is gone: A's silence [3,4]
    assert [t.kind for t in cv.transitions(a, b2)] == ["pause"]
    assert cv.turns(a, b2) == [("A", 0, 8)]


def test_leading_and_trailing_silence_and_simultaneous_start():
    # A [2,7) B [2,4): both[2,4] A[4,7]; nothing before 2 or after 7 is a piece
    a, b = [(2, 7)], [(2, 4)]
    assert cv.states(a, b) == [Piece(2, 4, "both"), Piece(4, 7, "A")]
    m = cv.interaction_measures(a, b, 20.0)
    assert m.silence_s == 0.0
    assert (m.n_turns, m.fto_n, m.longest_turn_s) == (1, 0, approx(5.0))
    assert m.fto_median_s is None and m.median_gap_s is None


# ---------------------------------------------------------------------------------------------
# edge cases


def test_empty_vad_gives_nulls_not_errors():
    f = cv.file_measures([], [], 30.0)
    assert (f.vad_empty, f.speech_s, f.speech_ratio, f.n_vad_segments) == (True, 0.0, 0.0, 0)
    m = cv.interaction_measures([], [], 30.0)
    assert m.complete_pair is True and m.duration_s == 30.0
    assert all(v is None for k, v in m.as_dict().items() if k not in ("duration_s", "complete_pair"))
    # one partner silent: no turn measures, but overlap/silence/share are still facts
    m = cv.interaction_measures([(1, 2), (3, 4)], [], 30.0)
    assert m.n_turns is None and m.fto_n is None and m.n_backchannels is None
    assert (m.overlap_s, m.silence_s, m.speech_share_a) == (0.0, approx(1.0), 1.0)


def test_missing_partner():
    m = cv.interaction_measures([(0, 1)], None, 5.0, complete_pair=False)
    assert m.complete_pair is False and m.duration_s == 5.0
    assert m.overlap_s is None and m.n_turns is None


def test_file_measures_words():
    transcript = [
        {"words": [{"word": "hi", "start": 0.1, "end": 0.3, "score": 0.9},
                   {"word": "there", "start": None, "end": None}],
         "start": 0.1, "end": 0.6, "transcript": "hi there"},
        {"words": [{"word": "ok", "start": 1.0, "end": 1.2}], "start": 1.0, "end": 1.2, "transcript": "ok"},
    ]
    vad = [{"start": 0.1, "end": 0.6}, {"start": 1.0, "end": 1.2}, {"start": 2.0, "end": 2.0}]
    f = cv.file_measures(vad, transcript, 30.0)
    # 3 words in 0.5 min -> 6 wpm; one without times; the zero-length VAD segment is counted as
    # given but carries no speech: speech 0.5 + 0.2 = 0.7 s of 30
    assert (f.n_words, f.n_untimed_words, f.words_per_minute) == (3, 1, approx(6.0))
    assert f.n_vad_segments == 3
    assert f.speech_s == approx(0.7) and f.speech_ratio == approx(0.7 / 30)
    assert f.vad_empty is False


def test_order_pair_and_quantile():
    assert cv.order_pair(["V00_S1_I2_P0299A", "V00_S1_I2_P0011"]) == ("V00_S1_I2_P0011", "V00_S1_I2_P0299A")
    # numpy's linear rule: [1,2,3,4] q=0.1 -> rank 0.3 -> 1.3
    assert cv.quantile([4, 1, 3, 2], 0.1) == approx(1.3)
    assert cv.quantile([], 0.5) is None


# ---------------------------------------------------------------------------------------------
# invariants over random conversations (seeded, so a failure reproduces)


def _random_segments(rng: random.Random, n: int, span: float) -> list[tuple[float, float]]:
    out = []
    for _ in range(n):
        start = round(rng.uniform(0, span), 2)
        out.append((start, round(start + rng.choice([rng.uniform(0.05, 1.2), rng.uniform(0.5, 8)]), 2)))
    return out


@pytest.mark.parametrize("seed", range(60))
def test_invariants(seed):
    rng = random.Random(seed)
    a = cv.talkspurts(_random_segments(rng, rng.randint(1, 25), 120))
    b = cv.talkspurts(_random_segments(rng, rng.randint(1, 25), 120))

    for spurts in (a, b):  # union: sorted, disjoint, not touching
        assert all(e1 < s2 for (_, e1), (s2, _) in itertools.pairwise(spurts))

    pieces = cv.states(a, b)
    assert pieces[0].start == min(a[0][0], b[0][0]) and pieces[-1].end == max(a[-1][1], b[-1][1])
    assert all(p.end == q.start and p.state != q.state for p, q in itertools.pairwise(pieces))
    total = {s: sum(p.length for p in pieces if p.state == s) for s in ("A", "B", "both", "none")}
    assert total["A"] + total["both"] == approx(cv.speech_s(a))
    assert total["B"] + total["both"] == approx(cv.speech_s(b))
    span = pieces[-1].end - pieces[0].start
    assert cv.speech_s(a) + cv.speech_s(b) - cv.overlap_s(pieces) + cv.silence_s(pieces) == approx(span)

    m = cv.interaction_measures(a, b, 130.0)
    assert m.fto_n == len(cv.floor_transfer_offsets(a, b))
    if m.n_turns:
        assert m.fto_n == m.n_turns - 1
    assert m.n_interruptions <= m.n_overlaps <= m.fto_n
    assert 0.0 <= m.speech_share_a <= 1.0
    if m.fto_n:
        assert m.fto_p10_s <= m.fto_median_s <= m.fto_p90_s

    # floor transfers alternate holders; a single-piece transfer's offset is +/- its length
    trs = [t for t in cv.transitions(a, b) if t.offset is not None]
    assert all(t1.after == t2.before for t1, t2 in itertools.pairwise(trs))
    for t in trs:
        assert t.offset <= t.end - t.start + 1e-9 and -t.offset <= t.end - t.start + 1e-9
    turns = cv.turns(a, b)
    assert all(t1[0] != t2[0] for t1, t2 in itertools.pairwise(turns))
    assert all(e > s for _, s, e in turns)
    for who, spurt in cv.backchannels(a, b):
        assert spurt[1] - spurt[0] < cv.BACKCHANNEL_MAX_S

    # swapping the partners mirrors the measures
    w = cv.interaction_measures(b, a, 130.0)
    assert (w.overlap_s, w.silence_s) == (approx(m.overlap_s), approx(m.silence_s))
    assert w.speech_share_a == approx(1 - m.speech_share_a)
    assert (w.n_turns, w.fto_n, w.n_backchannels, w.n_interruptions) == (
        m.n_turns, m.fto_n, m.n_backchannels, m.n_interruptions
    )
    assert sorted(cv.floor_transfer_offsets(b, a)) == [approx(x) for x in sorted(cv.floor_transfer_offsets(a, b))]

    # shifting the clock changes no measure (exact powers of two keep the float arithmetic exact)
    s = cv.interaction_measures([(x + 64, y + 64) for x, y in a], [(x + 64, y + 64) for x, y in b], 130.0)
    assert (s.n_turns, s.fto_n, s.n_backchannels) == (m.n_turns, m.fto_n, m.n_backchannels)
    assert s.overlap_s == pytest.approx(m.overlap_s, abs=1e-6)


def test_long_within_speaker_overlap_is_no_transfer():
    # A [0,10) B [3,5): A[0,3] both[3,5] A[5,10]; B's 2 s inside A's floor is no backchannel (>= 1 s)
    # and no transfer (A on both sides): one turn, A's, 10 s long; overlap 2 s
    a, b = [(0, 10)], [(3, 5)]
    (tr,) = cv.transitions(a, b)
    assert (tr.kind, tr.before, tr.after, tr.offset) == ("within_overlap", "A", "A", None)
    m = cv.interaction_measures(a, b, 10.0)
    assert (m.n_turns, m.fto_n, m.n_backchannels, m.overlap_s, m.longest_turn_s) == (1, 0, 0, 2.0, 10.0)
