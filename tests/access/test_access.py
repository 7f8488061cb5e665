from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from seamless_interaction.access import aligned as access

from seamless_interaction.base import formats
from seamless_interaction.access.aligned import EmptyMediaWarning, Participant, open_interaction, open_participant
from seamless_interaction.base.errors import IntegrityError, NotDownloadedError

from loader_builders import GRAY_STEP, placeholder_bundle, write_bundle_dir

F30 = "V00_S0001_I00000001_P0001"
F2997 = "V01_S0002_I00000002_P0003"


def expected_rows(start: str, end: str, rate: Fraction, n: int) -> tuple[int, int]:
    # Independent exact arithmetic on the decimal text: floor(t * rate + 1e-6), the documented
    # convention (a time within 1e-6 rows of a boundary is on it), clipped to the length.
    eps = Fraction(1, 10**6)
    a = math.floor(Fraction(start) * rate + eps)
    b = math.floor(Fraction(end) * rate + eps)
    return min(a, n), min(b, n)


@pytest.fixture()
def local(tmp_path, bundles):
    for i, (fid, members) in enumerate(bundles.items()):
        write_bundle_dir(tmp_path, "improvised", "dev", 0, i, fid, members)
    return tmp_path


@pytest.mark.parametrize("fid,rate,n", [(F30, Fraction(30), 60), (F2997, Fraction(30000, 1001), 75)])
@pytest.mark.parametrize("start,end", [("0", "1"), ("0.3333333333333333", "1"), ("1.001", "2.002"),
                                       ("0.5", "0.5"), ("1.9", "9")])
def test_window_cuts_every_modality_at_its_own_rate(local, fid, rate, n, start, end):
    p = open_participant(local, fid)
    assert p.frame_rate == rate and isinstance(p.frame_rate, Fraction)
    s, e = float(start), float(end)
    a, b = expected_rows(start, end, rate, n)
    feats = p.features(None, s, e)
    assert np.array_equal(feats["smplh:global_orient"][:, 0], np.arange(a, b, dtype=np.float32))
    assert feats["boxes_and_keypoints:keypoints"].shape == (b - a, 133, 3)
    ha, hb = expected_rows(start, end, rate / 15, n // 15)
    assert np.array_equal(feats["movement:hypernet_features"][:, 0], np.arange(ha, hb, dtype=np.float32))
    sa, sb = expected_rows(start, end, Fraction(48000), int(n / rate * 48000))
    assert np.array_equal(p.audio(s, e), np.arange(sa, sb, dtype=np.float32))


def test_consecutive_windows_partition_the_rows(local):
    p = open_participant(local, F2997)
    spans = access.windows(p.duration_s, 0.7, drop_last=False)
    rows = np.concatenate([p.features(["smplh:global_orient"], s, e)["smplh:global_orient"][:, 0] for s, e in spans])
    assert np.array_equal(rows, np.arange(75, dtype=np.float32))
    audio = np.concatenate([p.audio(s, e) for s, e in spans])
    assert np.array_equal(audio, np.arange(120120, dtype=np.float32))


def test_facts_and_frame_rate_without_video(local, bundles, tmp_path):
    p = open_participant(local, F2997)
    assert (p.num_frames, p.sample_rate) == (75, 48000)
    assert p.duration_s == pytest.approx(75 * 1001 / 30000)
    members = {k: v for k, v in bundles[F2997].items() if k != "mp4"}
    q = Participant.from_paths(F2997, write_bundle_dir(tmp_path / "novid", "improvised", "dev", 0, 0, F2997, members))
    assert q.frame_rate == Fraction(30000, 1001)  # N / WAV duration, exact


def test_vad_words_annotations(local):
    p = open_participant(local, F30)
    assert p.vad_segments() == [{"start": 0.1, "end": 0.305}, {"start": 0.95, "end": 1.2}]
    mask = p.vad_mask()
    assert mask.shape == (200,) and np.flatnonzero(mask).tolist() == list(range(10, 30)) + list(range(95, 120))
    assert np.array_equal(p.vad_mask(100, 0.25, 1.0), mask[25:100])
    assert [w["word"] for w in p.words(0.2, 0.96)] == ["hi", "there"]
    assert p.words(0.3, 0.95) == []
    assert [(w["word"], w["segment"]) for w in p.untimed_words()] == [("uh", 0)]
    assert p.annotations() == {"1P-IS": [{"annotation": "x", "start_ts": 0, "end_ts": 1}]}
    assert p.annotations("3P-V") == []


@pytest.mark.parametrize("fid,rate", [(F30, Fraction(30)), (F2997, Fraction(30000, 1001))])
def test_video_frames_are_the_frames_of_the_span(local, fid, rate):
    p = open_participant(local, fid)
    frames = p.video_frames(1.0, 1.5)
    a, b = expected_rows("1.0", "1.5", rate, p.num_frames)
    assert frames.dtype == np.uint8 and frames.shape == (b - a, 24, 32, 3)
    levels = [int(round(f.mean() / GRAY_STEP)) for f in frames]
    assert levels == list(range(a, b))


def test_uncompressed_npz_is_memory_mapped_and_equal(tmp_path, bundles):
    arrays = formats.decode_npz(bundles[F30]["npz"])
    path = tmp_path / "x.npz"
    path.write_bytes(formats.encode_npz(arrays, compress=False))
    reader = access.NpzReader(path)
    assert all(m.data_offset is not None for m in reader.members.values())
    for key, arr in arrays.items():
        assert np.array_equal(reader.rows(key, 3, 17), arr[3:17])


def test_placeholder_bundle_gives_empty_results_with_warning(tmp_path):
    fid = "V03_S0009_I00000009_P0009"
    p = Participant.from_paths(fid, write_bundle_dir(tmp_path, "improvised", "dev", 0, 0, fid, placeholder_bundle(fid)))
    assert p.is_placeholder and p.frame_rate is None and p.duration_s == 0.0
    with pytest.warns(EmptyMediaWarning, match=fid):
        assert p.audio(0, 1).shape == (0,)
    with pytest.warns(EmptyMediaWarning):
        assert p.features(None, 0, 1)["smplh:global_orient"].shape == (0, 3)
    with pytest.raises(IntegrityError, match=f"{fid}.mp4"):
        p.video_frames(0, 1)


def test_open_interaction_and_missing(local):
    it = open_interaction(local, "V00_S0001_I00000001")
    assert [p.file_id for p in it.participants] == [F30, "V00_S0001_I00000001_P0002A"]
    w = it.window(0.5, 1.0, ("audio", "features", "vad", "words"))
    assert [len(x["audio"]) for x in w["participants"]] == [24000, 24000]
    assert w["participants"][0]["features"]["smplh:global_orient"][0, 0] == 15
    with pytest.raises(NotDownloadedError, match="V00_S0001_I00000099"):
        open_interaction(local, "V00_S0001_I00000099")


def test_load_interaction_data_without_opencv(local):
    p = open_participant(local, F30)
    paths = [str(v) for v in p._src.values()]
    data = access.load_interaction_data(paths)
    assert set(data) == {"video", "audio", "sample_rate", "json", "npz"}
    assert data["sample_rate"] == 48000 and np.array_equal(data["audio"], np.arange(96000, dtype=np.float32))
    assert data["json"]["id"] == F30
    assert np.array_equal(data["npz"]["smplh:global_orient"][:, 0], np.arange(60, dtype=np.float32))
    cap = data["video"]
    assert cap.isOpened() and cap.get(access.CAP_PROP_FPS if hasattr(access, "CAP_PROP_FPS") else 5) == 30.0
    ok, frame = cap.read()
    assert ok and frame.shape == (24, 32, 3)
    cap.release()


# ---- spans: bad ones are ValueErrors naming them, empty ones warn
BAD_SPANS = [(2.0, 1.0), (float("nan"), 1.0), (0.0, float("nan")), (0.0, float("inf")), (float("-inf"), 1.0),
             (1e308 * 10, 1e309)]


@pytest.mark.parametrize("start,end", BAD_SPANS)
def test_bad_spans_are_value_errors_naming_the_span(local, start, end):
    p = open_participant(local, F30)
    it = open_interaction(local, F30[:19])
    calls = [lambda: p.window(start, end, ("audio", "features", "vad", "words")), lambda: p.audio(start, end),
             lambda: p.features(None, start, end), lambda: p.vad_mask(100, start, end), lambda: p.words(start, end),
             lambda: p.video_frames(start, end), lambda: it.window(start, end, ("features",))]
    for call in calls:
        with pytest.raises(ValueError, match=r"span \[") as caught:
            call()
        assert repr(start) in str(caught.value) and repr(end) in str(caught.value)


@pytest.mark.parametrize("window_s,hop_s", [(float("nan"), None), (float("inf"), None), (1.0, float("nan")),
                                            (0.0, None), (1.0, -1.0)])
def test_bad_window_lengths_are_value_errors(window_s, hop_s):
    with pytest.raises(ValueError, match="window_s and hop_s"):
        access.windows(10.0, window_s, hop_s)


def test_span_past_the_end_warns_once(local):
    it = open_interaction(local, F30[:19])
    with pytest.warns(access.EmptySpanWarning, match=r"\[10.0, 14.0\)") as caught:
        w = it.window(10.0, 14.0, modalities=("audio", "features", "vad", "words"))
    assert len([c for c in caught if issubclass(c.category, access.EmptySpanWarning)]) == 1
    assert all(len(part["audio"]) == 0 for part in w["participants"])
    with pytest.warns(access.EmptySpanWarning, match=F30):
        open_participant(local, F30).window(10.0, 14.0, ("features",))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", access.EmptySpanWarning)
        it.window(0.5, 1.5, ("features",))  # inside the recording: no warning
