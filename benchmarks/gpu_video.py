"""GPU video windows (NVDEC through PyNvVideoCodec) against the CPU path (PyAV), on one machine.

One command, for a machine with an NVIDIA GPU and torch with CUDA::

    pip install av PyNvVideoCodec            # or the wheels you carry
    PYTHONPATH=src python benchmarks/gpu_video.py [--seconds 20] [--windows 24] [--cpu-windows 8]

Self-contained: it makes its own clip with PyAV (1080x1920 portrait H.264, 30 fps, about 20 Mbit/s, a
keyframe every 60 frames; a band whose grey level names each frame, so a wrong frame cannot pass),
then reports, for random 4 s windows at 224 px (short side):

* GPU windows/s (one ``GpuWindowDecoder``, frames kept on the GPU) against the CPU path
  (``WindowDecoder``, FFmpeg threads) in the same process; target at least 3x;
* GPU consecutive windows, and the loader (``WindowDataset(video_device="cuda")`` over a tar member);
* that the GPU frames match the CPU frames within a mean absolute difference of 3.

Runs on a CPU-only machine up to the point where it needs CUDA, then exits (status 2) saying what is
missing. Designed to finish in under 4 minutes on a 16-core machine with one GPU.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import sys
import tarfile
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np


def make_clip(path: Path, seconds: float, width: int = 1080, height: int = 1920, fps: int = 30, gop: int = 60,
              bit_rate: int = 20_000_000) -> None:
    import av

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.int32)
    noise = rng.integers(0, 256, (height // 4, width // 2, 3), dtype=np.uint8)
    base = np.empty((height, width, 3), np.uint8)
    with av.open(str(path), "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.bit_rate = bit_rate
        s.codec_context.gop_size = gop
        # Tagged BT.709 like phone recordings: untagged streams are read as BT.601 by swscale and as
        # BT.709 by NVDEC's colour conversion, which would differ by far more than the codecs do.
        cc = s.codec_context
        cc.colorspace = cc.color_primaries = cc.color_trc = 1  # BT.709
        cc.color_range = 1  # limited (MPEG)
        s.options = {"preset": "veryfast", "keyint_min": str(gop), "sc_threshold": "0", "bf": "2"}
        for i in range(int(seconds * fps)):
            base[..., 0] = (xx + 4 * i) % 256
            base[..., 1] = (yy + 2 * i) % 256
            base[..., 2] = (xx + yy + i) % 256
            base[height // 2: height // 2 + noise.shape[0], : noise.shape[1]] = np.roll(noise, 5 * i, axis=1)
            base[: height // 4] = (i * 37) % 256  # names the frame: a neighbour differs by 37 levels
            for p in s.encode(av.VideoFrame.from_ndarray(base, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def one_sample_tar(path: Path, clip: bytes, seconds: float) -> None:
    """A WebDataset shard holding one participant (wav, mp4, npz, json), for the loader row."""
    from seamless_interaction.base import formats

    fid = "V00_S0001_I00000001_P0001"
    n = int(seconds * 30)
    members = {
        "json": formats.encode_json(formats.bundle_json(fid, [], [])),
        "mp4": clip,
        "npz": formats.encode_npz({"smplh:is_valid": np.ones(n, bool)}),
        "wav": formats.encode_wav_float32(np.zeros(int(seconds * 48000), np.float32)),
    }
    with tarfile.open(path, "w") as tf:
        for ext in sorted(members):
            info = tarfile.TarInfo(f"{fid}.{ext}")
            info.size = len(members[ext])
            tf.addfile(info, io.BytesIO(members[ext]))


def timed(fn, windows, sync=None):
    t0 = time.perf_counter()
    outs = [fn(s, e) for s, e in windows]
    if sync:
        sync()
    return time.perf_counter() - t0, outs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--windows", type=int, default=24, help="random windows for the GPU")
    ap.add_argument("--cpu-windows", type=int, default=8, help="random windows for the CPU (a subset)")
    ap.add_argument("--window-s", type=float, default=4.0)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--dir", default=None, help="where to write the clip (default: a temporary folder)")
    args = ap.parse_args(argv)
    started = time.perf_counter()

    try:
        import av
        import torch

        from seamless_interaction.access.video import (
            GpuWindowDecoder,
            WindowDecoder,
            _require_gpu,
        )
    except ImportError as exc:
        print(f"error: {exc}. Needs PyAV, torch, and seamless_interaction on PYTHONPATH (PYTHONPATH=src).",
              file=sys.stderr)
        return 2
    print(f"PyAV {av.__version__}, torch {torch.__version__}, cpu cores {os.cpu_count()}")

    work = Path(args.dir or tempfile.mkdtemp(prefix="gpu_video_"))
    work.mkdir(parents=True, exist_ok=True)
    clip_path = work / "clip_1080x1920.mp4"
    if not clip_path.exists():
        t = time.perf_counter()
        make_clip(clip_path, args.seconds)
        print(f"clip: 1080x1920, {args.seconds:.0f} s, {clip_path.stat().st_size * 8 / args.seconds / 1e6:.1f} Mbit/s, "
              f"made in {time.perf_counter() - t:.1f} s ({clip_path})")

    from seamless_interaction.base.errors import VideoDeviceError

    try:
        _require_gpu()
    except VideoDeviceError as exc:  # no CUDA device, or no PyNvVideoCodec
        print(f"error: cannot run the GPU path here: {exc}", file=sys.stderr)
        return 2
    import PyNvVideoCodec as nvc

    print(f"PyNvVideoCodec {getattr(nvc, '__version__', '?')}, GPU {torch.cuda.get_device_name(0)}")

    rng = random.Random(0)
    last = args.seconds - args.window_s
    random_w = [(s, s + args.window_s) for s in (round(rng.uniform(0, last), 3) for _ in range(args.windows))]
    consec_w = [(k * args.window_s, (k + 1) * args.window_s) for k in range(int(args.seconds // args.window_s))]
    cpu_w = random_w[: args.cpu_windows]
    rows: list[tuple[str, float, float]] = []
    failures = 0

    # GPU, random windows (the first window is a warm-up: CUDA context and NVDEC session)
    t = time.perf_counter()
    gpu = GpuWindowDecoder(str(clip_path), size=args.size)
    gpu.window(*random_w[0])
    torch.cuda.synchronize()
    warm = time.perf_counter() - t
    sec, gpu_out = timed(gpu.window, random_w, torch.cuda.synchronize)
    frames = sum(len(o) for o in gpu_out)
    rows.append(("GPU, random", len(random_w) / sec, frames / sec))
    sec, out = timed(gpu.window, consec_w, torch.cuda.synchronize)
    rows.append(("GPU, consecutive", len(consec_w) / sec, sum(len(o) for o in out) / sec))
    gpu.close()

    # CPU path, same random windows (a subset: it is the slow one)
    cpu = WindowDecoder(str(clip_path), size=args.size)
    sec, cpu_out = timed(cpu.window, cpu_w)
    rows.append(("CPU (PyAV), random", len(cpu_w) / sec, sum(len(o) for o in cpu_out) / sec))
    cpu.close()

    # Frames: GPU against CPU, window by window
    diffs = []
    for (s, e), g, c in zip(cpu_w, gpu_out, cpu_out):
        if tuple(g.shape) != c.shape:
            print(f"MISMATCH: window {s:.3f}-{e:.3f}: GPU shape {tuple(g.shape)}, CPU {c.shape}")
            failures += 1
            continue
        diffs.append(float((g.cpu().float() - torch.from_numpy(c).float()).abs().mean()))
    worst = max(diffs) if diffs else float("nan")

    # The loader over a tar member (spooled to a temporary file for NVDEC)
    loader_note = ""
    try:
        from seamless_interaction.access.loader import WindowDataset

        tar = work / "one.tar"
        one_sample_tar(tar, clip_path.read_bytes(), args.seconds)
        ds = WindowDataset([str(tar)], modalities=("video",), window_s=args.window_s, dyadic=False,
                           video_size=args.size, video_device="cuda")
        t = time.perf_counter()
        items = list(ds)
        torch.cuda.synchronize()
        sec = time.perf_counter() - t
        rows.append(("loader, GPU, tar member", len(items) / sec,
                     sum(len(it["participants"][0]["video"]) for it in items) / sec))
        ref = list(WindowDataset([str(tar)], modalities=("video",), window_s=args.window_s, dyadic=False,
                                 video_size=args.size))
        ld = [float((a["participants"][0]["video"].cpu().float()
                     - torch.from_numpy(b["participants"][0]["video"]).float()).abs().mean())
              for a, b in zip(items, ref)]
        loader_note = f"loader GPU vs CPU windows: {len(items)} vs {len(ref)}, worst mean abs diff {max(ld):.2f}"
        if len(items) != len(ref) or max(ld) >= 3:
            failures += 1
    except Exception:  # noqa: BLE001 - report any failure of this row and go on to the table
        traceback.print_exc()
        loader_note = "loader row FAILED (traceback above)"
        failures += 1

    cpu_rate = rows[2][1]
    print(f"\n{args.window_s:.0f} s windows at {args.size} px (short side), 1080x1920 H.264; GPU warm-up {warm:.2f} s")
    print(f"{'path':<26} {'windows/s':>10} {'frames/s':>10} {'vs CPU':>7}")
    for name, wps, fps in rows:
        print(f"{name:<26} {wps:>10.2f} {fps:>10.1f} {wps / cpu_rate:>6.2f}x")
    ok_speed = rows[0][1] / cpu_rate >= 3
    ok_match = diffs and worst < 3
    print(f"\nGPU vs CPU frames: {len(diffs)} windows, worst mean abs diff {worst:.2f} (target < 3): "
          f"{'ok' if ok_match else 'FAIL'}")
    print(f"GPU random windows / CPU random windows: {rows[0][1] / cpu_rate:.2f}x (target >= 3x): "
          f"{'ok' if ok_speed else 'below target'}")
    print(loader_note)
    print(f"total {time.perf_counter() - started:.0f} s")
    return 0 if (ok_match and not failures) else 1


if __name__ == "__main__":
    raise SystemExit(main())
