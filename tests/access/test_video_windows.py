"""Video windows (the ``"video"`` modality) against an independent reference.

The reference below decodes the whole file in order with PyAV, never seeking, keeps every frame's
time, applies the selection rule by itself (frame k of a window is the last frame shown at
``start + k / fps``) and converts the chosen frames with PyAV's own ``to_ndarray`` at the same scaler
settings; the decoder under test must agree on which frames, their order, and every pixel.
"""

from __future__ import annotations

import io
import math
import multiprocessing
import random
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the loader is the optional torch extra")

from loader_builders import make_bundle, write_bundle_dir, write_tar

from seamless_interaction.access.aligned import Interaction, Participant
from seamless_interaction.access.loader import (
    ShardWarning,
    WindowDataset,
    collate_windows,
)
from seamless_interaction.access.video import (
    GpuWindowDecoder,
    WindowDecoder,
    decode_frames,
    open_window_decoder,
)
from seamless_interaction.base.errors import IntegrityError, VideoDeviceError


# ------------------------------------------------------------------------------ test media
def encode(n: int, rate: Fraction, *, width: int = 96, height: int = 64, gop: int = 12, bframes: int = 2,
           rotation: int = 0, times: list[Fraction] | None = None, seed: int = 0) -> bytes:
    """Noisy frames (every frame distinct); ``times`` (seconds) gives a variable frame rate."""
    import av

    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=rate)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.codec_context.gop_size = gop
        # Tagged BT.709 like phone recordings: untagged streams are read as BT.601 by swscale and as
        # BT.709 by NVDEC's colour conversion, which would differ by far more than the codecs do.
        cc = s.codec_context
        cc.colorspace = cc.color_primaries = cc.color_trc = 1  # BT.709
        cc.color_range = 1  # limited (MPEG)
        s.options = {"bf": str(bframes), "keyint_min": str(gop), "sc_threshold": "0"}
        if times is not None:
            s.codec_context.time_base = Fraction(1, 90000)
        if rotation:
            s.set_display_rotation(rotation)
        for i in range(n):
            img = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            img[: height // 4] = (i * 7) % 256  # a band that names the frame
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            if times is not None:
                frame.pts, frame.time_base = int(times[i] * 90000), Fraction(1, 90000)
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return buf.getvalue()


def mp4_without_video() -> bytes:
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as c:
        s = c.add_stream("aac", rate=48000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 48000
        for _ in range(10):
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return buf.getvalue()


# ------------------------------------------------------------------------------ the reference
class Reference:
    """Every frame of a file, decoded in order without a seek."""

    def __init__(self, data: bytes):
        import av

        with av.open(io.BytesIO(data)) as c:
            vs = c.streams.video[0]
            self.rate = Fraction(vs.average_rate)
            t0, tb = vs.start_time or 0, vs.time_base
            self.frames = [(Fraction(f.pts - t0) * tb, f) for f in c.decode(vs)]
        self.rotation = self.frames[0][1].rotation

    def select(self, start: float, end: float, fps) -> list[int]:
        """Indices (in presentation order) that the rule picks, computed in exact fractions."""
        fps = Fraction(fps).limit_denominator(10**6) if not isinstance(fps, Fraction) else fps
        s, e = Fraction(start).limit_denominator(10**9), Fraction(end).limit_denominator(10**9)
        times = [t for t, _ in self.frames]
        stop = times[-1] + 1 / self.rate
        out, k = [], 0
        while s + k / fps < e:
            t = s + k / fps
            if t >= stop:
                break
            picked = [i for i, ti in enumerate(times) if ti <= t]
            out.append(picked[-1] if picked else 0)
            k += 1
        return out

    def size(self, size) -> tuple[int, int]:
        f = self.frames[0][1]
        h, w = (f.width, f.height) if self.rotation % 180 else (f.height, f.width)
        if size is None:
            return h, w
        if isinstance(size, int):
            return (size, int(size * w / h)) if h <= w else (int(size * h / w), size)
        return tuple(size)

    def images(self, idx: list[int], size=None) -> np.ndarray:
        h, w = self.size(size)
        turned = self.rotation % 180 != 0
        out = []
        for i in idx:
            f = self.frames[i][1]
            img = f.to_ndarray(width=h if turned else w, height=w if turned else h, format="rgb24",
                               interpolation="BILINEAR")
            out.append(np.rot90(img, (self.rotation // 90) % 4))
        return np.stack(out) if out else np.zeros((0, h, w, 3), np.uint8)


FILES = {
    "cfr30_bframes": {"n": 90, "rate": Fraction(30), "gop": 15, "bframes": 2},
    "ntsc_no_bframes": {"n": 75, "rate": Fraction(30000, 1001), "gop": 10, "bframes": 0},
    "rotated_portrait": {"n": 60, "rate": Fraction(30), "gop": 20, "bframes": 3, "rotation": -90, "width": 64,
                         "height": 48},
    "vfr": {"n": 60, "rate": Fraction(30), "gop": 12, "bframes": 0,
            "times": [Fraction(i, 30) + (Fraction(1, 90) if i % 3 == 1 else 0) for i in range(40)]
            + [Fraction(40, 30) + Fraction(i, 20) for i in range(20)]},
}


@pytest.fixture(scope="module")
def media():
    return {name: encode(**spec) for name, spec in FILES.items()}


@pytest.fixture(scope="module")
def refs(media):
    return {name: Reference(data) for name, data in media.items()}


def check(dec: WindowDecoder, ref: Reference, start: float, end: float, fps, size) -> None:
    got = dec.window(start, end)
    want = ref.images(ref.select(start, end, fps or ref.rate), size)
    assert got.dtype == np.uint8 and got.shape == want.shape, (start, end, got.shape, want.shape)
    assert np.array_equal(got, want), (start, end)


@pytest.mark.parametrize("name", list(FILES))
@pytest.mark.parametrize("fps,size", [(None, None), (None, 40), (10, (30, 50)), (45, 32)])
def test_consecutive_windows_equal_the_reference_with_one_seek(media, refs, name, fps, size):
    dec = WindowDecoder(media[name], fps=fps, size=size)
    ref = refs[name]
    duration = float(ref.frames[-1][0] + 1 / ref.rate)
    spans = [(k * 0.4, k * 0.4 + 0.4) for k in range(int(duration / 0.4) + 2)]  # the last ones run past the end
    for s, e in spans:
        check(dec, ref, s, e, fps, size)
    assert dec.seeks == 1  # the first window only: the others continue the open decoder
    assert dec.decoded == len(ref.frames)  # every frame decoded once, none again for a later window
    chosen = {i for s, e in spans for i in ref.select(s, e, fps or ref.rate)}
    assert dec.converted == len(chosen)  # only chosen frames are scaled, each once


@pytest.mark.parametrize("name", list(FILES))
def test_random_and_overlapping_windows_equal_the_reference(media, refs, name):
    ref = refs[name]
    rng = random.Random(name)
    dec = WindowDecoder(media[name], size=36)
    for _ in range(12):
        s = rng.uniform(0, 2.2)
        check(dec, ref, s, s + rng.uniform(0.05, 0.7), None, 36)
    overlapping = WindowDecoder(media[name], fps=Fraction(30000, 1001))
    spans = [(k * 0.25, k * 0.25 + 0.5) for k in range(6)]
    for s, e in spans:  # hop 0.25 s, window 0.5 s: frames of the overlap are reused, not decoded again
        check(overlapping, ref, s, e, Fraction(30000, 1001), None)
    if name != "vfr":  # at a constant rate the previous window converted every frame of the overlap
        assert overlapping.seeks == 1
        chosen = {i for s, e in spans for i in ref.select(s, e, Fraction(30000, 1001))}
        assert overlapping.converted == len(chosen)
        assert overlapping.decoded <= max(chosen) + 2  # in order, at most one frame read past the last


def test_rotation_gives_display_orientation_and_size(media, refs):
    dec = WindowDecoder(media["rotated_portrait"], size=(80, 30))
    out = dec.window(0, 0.2)
    assert refs["rotated_portrait"].rotation == -90
    assert out.shape == (6, 80, 30, 3)  # 64x48 coded, shown 48 wide and 64 high, stretched to (80, 30)
    native = WindowDecoder(media["rotated_portrait"]).window(0, 0.1)
    assert native.shape[1:] == (64, 48, 3)
    short = WindowDecoder(media["rotated_portrait"], size=24).window(0, 0.1)
    assert short.shape[1:] == (32, 24, 3)  # short side 24 of a 48x64 (w x h) display


def test_channels_first_and_frame_counts(media, refs):
    dec = WindowDecoder(media["cfr30_bframes"], size=(20, 30), channels_first=True, fps=12.5)
    out = dec.window(1.0, 2.0)
    assert out.shape == (13, 3, 20, 30) and out.flags.c_contiguous  # ceil(12.5) targets
    ref = refs["cfr30_bframes"]
    want = ref.images(ref.select(1.0, 2.0, 12.5), (20, 30)).transpose(0, 3, 1, 2)
    assert np.array_equal(out, want)
    assert WindowDecoder(media["cfr30_bframes"]).window(5.0, 6.0).shape == (0, 64, 96, 3)


def test_seeking_reads_less_than_decoding_from_zero(media):
    data = encode(240, Fraction(30), width=160, height=120, gop=30, bframes=2)

    class Counting(io.BytesIO):
        read_bytes = 0

        def read(self, n=-1):
            out = super().read(n)
            Counting.read_bytes += len(out)
            return out

    WindowDecoder(lambda: Counting(data)).window(7.0, 7.3)
    late = Counting.read_bytes
    Counting.read_bytes = 0
    WindowDecoder(lambda: Counting(data)).window(0, 7.3)
    assert late < Counting.read_bytes * 0.3


def test_decode_frames_uses_the_same_decoder(media, refs):
    ref = refs["ntsc_no_bframes"]
    out = decode_frames(media["ntsc_no_bframes"], 1.0, 1.5)
    a, b = math.floor(1.0 * ref.rate + Fraction(1, 10**6)), math.floor(Fraction(3, 2) * ref.rate + Fraction(1, 10**6))
    assert np.array_equal(out, ref.images(list(range(a, b))))


def test_no_video_stream_and_placeholders_raise_integrity_errors():
    with pytest.raises(IntegrityError, match="no video stream"):
        WindowDecoder(mp4_without_video(), name="x.mp4").window(0, 1)
    with pytest.raises(IntegrityError, match="placeholder"):
        WindowDecoder(b"\x00" * 261, name="p.mp4").window(0, 1)
    with pytest.raises(ValueError, match="video_size"):
        WindowDecoder(b"", size=(0, 3))
    with pytest.raises(ValueError, match="video_device"):
        open_window_decoder(b"", device="tpu")


# ------------------------------------------------------------------------------ participant / interaction
def test_participant_window_leaves_video_out_unless_asked(tmp_path, media, refs):
    fid = "V00_S0001_I00000001_P0001"
    bundle = make_bundle(fid, 90, Fraction(30))
    bundle["mp4"] = media["cfr30_bframes"]
    p = Participant.from_paths(fid, write_bundle_dir(tmp_path, "improvised", "dev", 0, 0, fid, bundle))
    assert isinstance(p._src["mp4"], Path)  # a local file, read in place
    assert "video" not in p.window(0, 1)
    ref = refs["cfr30_bframes"]
    for k in range(3):
        w = p.window(k * 0.5, k * 0.5 + 0.5, ("video",), video_size=40)
        assert np.array_equal(w["video"], ref.images(ref.select(k * 0.5, k * 0.5 + 0.5, 30), 40))
    assert p._video_dec[1].seeks == 1  # consecutive calls continued one decoder
    it = Interaction("V00_S0001_I00000001", [p])
    w = it.window(0.5, 1.0, ("features", "video"), video_size=(16, 16), video_channels_first=True)
    assert w["participants"][0]["video"].shape == (15, 3, 16, 16)
    it.close()
    assert p._video_dec is None


# ------------------------------------------------------------------------------ loader
IDS = ["V00_S0001_I00000001_P0001", "V00_S0001_I00000001_P0002", "V01_S0002_I00000002_P0003",
       "V01_S0002_I00000002_P0004", "V03_S0003_I00000003_P0005", "V03_S0003_I00000003_P0006"]


@pytest.fixture(scope="module")
def shards(tmp_path_factory, media):
    """Three shards, partners split across them; one participant has an mp4 without a video stream,
    one a 261-byte placeholder mp4 (with real audio and features)."""
    b = {
        IDS[0]: make_bundle(IDS[0], 90, Fraction(30)), IDS[1]: make_bundle(IDS[1], 90, Fraction(30)),
        IDS[2]: make_bundle(IDS[2], 75, Fraction(30000, 1001)), IDS[3]: make_bundle(IDS[3], 75, Fraction(30000, 1001)),
        IDS[4]: make_bundle(IDS[4], 60, Fraction(30)), IDS[5]: make_bundle(IDS[5], 60, Fraction(30)),
    }
    b[IDS[0]]["mp4"] = media["cfr30_bframes"]
    b[IDS[1]]["mp4"] = encode(90, Fraction(30), width=64, height=48, rotation=90, seed=1)
    b[IDS[2]]["mp4"] = media["ntsc_no_bframes"]
    b[IDS[3]]["mp4"] = encode(75, Fraction(30000, 1001), width=48, height=96, seed=2)
    b[IDS[4]]["mp4"] = mp4_without_video()
    b[IDS[5]]["mp4"] = b"\x00" * 261
    d = tmp_path_factory.mktemp("vshards")
    root = d / "hub" / "improvised" / "dev" / "0000"
    paths = [write_tar(root / "0000.tar", {IDS[0]: b[IDS[0]], IDS[2]: b[IDS[2]], IDS[4]: b[IDS[4]]}),
             write_tar(root / "0001.tar", {IDS[3]: b[IDS[3]], IDS[5]: b[IDS[5]]}),
             write_tar(root / "0002.tar", {IDS[1]: b[IDS[1]]})]
    return d, [str(p) for p in paths], b


def loader_items(sources, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        items = list(WindowDataset(sources, modalities=("features", "video"), window_s=0.5, **kw))
    return items, [str(w.message) for w in caught if issubclass(w.category, ShardWarning)]


def check_items(items, bundles, size, fps=None):
    assert items
    for it in items:
        for part in it["participants"]:
            ref = Reference(bundles[part["file_id"]]["mp4"])
            want = ref.images(ref.select(it["start_s"], it["end_s"], fps or ref.rate), size)
            assert np.array_equal(part["video"], want), (part["file_id"], it["start_s"])


def test_loader_video_equals_the_reference_and_skips_bad_mp4s(shards):
    _, paths, bundles = shards
    items, messages = loader_items(paths, video_size=32)
    check_items(items, bundles, 32)
    seen = {fid for it in items for fid in it["file_ids"]}
    assert seen == set(IDS[:4])
    assert any(IDS[4] in m and "no video stream" in m for m in messages)
    assert any(IDS[5] in m for m in messages)
    batch = collate_windows(items[:4])
    assert batch["video"].dtype == torch.uint8 and batch["video"].shape[:2] == (4, 2)
    lengths = batch["video_mask"].sum(-1)
    assert lengths.tolist() == [[len(p["video"]) for p in it["participants"]] for it in items[:4]]


def test_loader_video_over_http_range_reads(shards):
    from seamless_interaction.mirror.server import MirrorServer

    root, _, bundles = shards
    with MirrorServer(root) as srv:
        urls = [f"{srv.hf_url}/improvised/dev/0000/{a:04d}.tar" for a in range(3)]
        items, _ = loader_items(urls, video_size=(24, 24), video_fps=10)
    check_items(items, bundles, (24, 24), fps=10)
    assert {tuple(it["file_ids"]) for it in items} == {tuple(IDS[0:2]), tuple(IDS[2:4])}


def _identity(x):
    return x


def test_window_counts_over_several_workers(shards):
    _, paths, _ = shards
    single, _ = loader_items(paths, video_size=16, dyadic=False)
    ds = WindowDataset(paths, modalities=("video",), window_s=0.5, video_size=16, dyadic=False)
    dl = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2, collate_fn=_identity)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ShardWarning)
        multi = list(dl)

    def key(it):
        return it["file_ids"][0], it["start_s"]

    assert sorted(map(key, multi)) == sorted(map(key, single)) and len(multi) == len(set(map(key, multi)))
    by_key = {key(it): it for it in single}
    for it in multi:
        assert np.array_equal(it["participants"][0]["video"], by_key[key(it)]["participants"][0]["video"])


# ------------------------------------------------------------------------------ GPU path
def _has_gpu_path() -> str | None:
    try:
        import PyNvVideoCodec  # noqa: F401
    except ImportError:
        return "PyNvVideoCodec (the gpu extra) is not installed"
    if not torch.cuda.is_available():
        return "no CUDA device"
    return None


def test_cuda_without_the_extra_or_a_gpu_is_a_clear_error():
    reason = _has_gpu_path()
    if reason is None:
        pytest.skip("a GPU and PyNvVideoCodec are present: the error path cannot be reached")
    with pytest.raises(VideoDeviceError, match="PyNvVideoCodec|GPU|CUDA"):
        WindowDataset(["x.tar"], modalities=("video",), video_device="cuda")


def _require_in_child(q):
    from seamless_interaction.access.video import _require_gpu

    try:
        _require_gpu()
        q.put("no error")
    except VideoDeviceError as exc:
        q.put(str(exc))


def test_cuda_in_a_forked_worker_says_to_use_spawn():
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    proc = ctx.Process(target=_require_in_child, args=(q,))
    proc.start()
    message = q.get(timeout=60)
    proc.join(60)
    assert "spawn" in message and "fork" in message


@pytest.mark.skipif(_has_gpu_path() is not None, reason=str(_has_gpu_path()))
def test_gpu_windows_match_the_cpu_path(media, tmp_path):
    path = tmp_path / "a.mp4"
    path.write_bytes(media["cfr30_bframes"])
    for src in (str(path), media["cfr30_bframes"]):
        gpu = GpuWindowDecoder(src, size=32)
        cpu = WindowDecoder(src, size=32)
        for s in (0.0, 0.5, 2.0, 1.0):
            g, c = gpu.window(s, s + 0.5), cpu.window(s, s + 0.5)
            assert g.is_cuda and tuple(g.shape) == c.shape
            assert float((g.cpu().float() - torch.from_numpy(c).float()).abs().mean()) < 3
        gpu.close()
        if not isinstance(src, str):
            assert gpu._tmp is None
    assert Path(path).exists()
