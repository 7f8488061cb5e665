from __future__ import annotations

import io
from fractions import Fraction

import pytest
from loader_builders import GRAY_STEP, make_mp4

from seamless_interaction.base.errors import IntegrityError
from seamless_interaction.access.video import VideoReader, decode_frames, probe_video, time_to_index


class CountingFile(io.BytesIO):
    """Counts bytes handed to the demuxer, to tell a seek from a decode-from-zero."""

    def __init__(self, data: bytes, counter: list[int]):
        super().__init__(data)
        self.counter = counter

    def read(self, n=-1):
        out = super().read(n)
        self.counter[0] += len(out)
        return out


@pytest.fixture(scope="module")
def long_mp4():
    return make_mp4(60, Fraction(30000, 1001), width=320, height=240, gop=10, noise=True)


def test_time_to_index_boundaries():
    assert time_to_index(1 / 3, 30) == 10  # 10.000000000000002 and 9.999999999999999 both land on 10
    assert time_to_index(0.3333333333333333, 30) == 10
    assert time_to_index(1.001, Fraction(30000, 1001)) == 30
    assert time_to_index(1.0, Fraction(30000, 1001)) == 29


def test_probe_reports_the_exact_rate(long_mp4):
    info = probe_video(long_mp4)
    assert info.frame_rate == Fraction(30000, 1001) and info.num_frames == 60
    assert (info.width, info.height) == (320, 240)


def test_decode_seeks_instead_of_decoding_from_zero(long_mp4):
    full, late = [0], [0]
    decode_frames(lambda: CountingFile(long_mp4, full), 0, 0.1)
    frames = decode_frames(lambda: CountingFile(long_mp4, late), 1.7, 1.8)
    a, b = time_to_index(1.7, Fraction(30000, 1001)), time_to_index(1.8, Fraction(30000, 1001))
    assert [int(round(f[:120].mean() / GRAY_STEP)) for f in frames] == list(range(a, b))
    everything = [0]
    decode_frames(lambda: CountingFile(long_mp4, everything), 0, 2.1)
    # From the keyframe at 50 onwards only: well under what decoding every frame reads.
    assert late[0] < everything[0] * 0.6


def test_placeholder_and_reader(long_mp4):
    with pytest.raises(IntegrityError, match="placeholder"):
        probe_video(b"\x00" * 261, name="V03_S0001_I00000001_P0001.mp4")
    cap = VideoReader(b"\x00" * 261)
    assert not cap.isOpened() and cap.read() == (False, None)
    cap = VideoReader(long_mp4)
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 60 and cap.get(5) == pytest.approx(30000 / 1001) and cap.get(7) == 60
