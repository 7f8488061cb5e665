"""Video windows on the CPU: ours against raw PyAV doing the same windows, and consecutive against random.

One command: ``.venv/bin/python benchmarks/bench_video.py [--small] [--seconds S] [--windows N] [--repeat R]
[--threads T]``

Generates an H.264 clip with PyAV (default 1080x1920 portrait like V00/V02, 30 fps, a keyframe every
60 frames, about 20 Mbit/s), then times, in one process and round-robin ``--repeat`` times:

* ``raw PyAV, random``: the plain PyAV code a user would write for the same random windows (one open
  container; per window a seek to the keyframe before it, decode, pick frames by time, scale with
  ``to_ndarray(width=, height=)``), the baseline;
* ``ours, random``: :class:`WindowDecoder` on the same windows (target: at most 10 % slower);
* ``ours, consecutive``: the same number of windows one after another (hop = window, the loader's
  default), continuing the open decoder (target: at least 2x the random windows' rate);
* ``raw PyAV, in order``: the span of the consecutive windows decoded from its start in plain PyAV,
  every frame scaled (at the stream's rate the consecutive windows choose every frame): the work no
  consecutive reader can avoid, so ``in order / random`` bounds ``consecutive / random`` on this machine.

Windows are 4 s at 224 px (short side) by default. Frames of ours and of the baseline are checked equal,
and so are the consecutive windows and the in-order frames. The decoders' counters give how many frames
each pattern decoded per frame it returned (random windows decode from the keyframe before their start).
"""

from __future__ import annotations

import argparse
import io
import random
import statistics
import sys
import time
from fractions import Fraction
from typing import Any, cast

import numpy as np

from seamless_interaction.access.video import WindowDecoder, output_size, window_targets


def make_clip(width: int, height: int, seconds: float, fps: int = 30, gop: int = 60,
              bit_rate: int = 20_000_000) -> bytes:
    import av

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width]
    noise = rng.integers(0, 256, (height // 4, width // 4, 3), dtype=np.uint8)
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as c:
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
            img = np.empty((height, width, 3), np.uint8)
            img[..., 0] = (xx + 4 * i) % 256
            img[..., 1] = (yy + 2 * i) % 256
            img[..., 2] = (xx + yy + i) % 256
            tile = np.roll(noise, i * 3, axis=1)  # moving texture keeps the bit rate up
            img[: tile.shape[0], : tile.shape[1]] = tile
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return buf.getvalue()


class RawPyAV:
    """What plain PyAV code does for a window: seek, decode, choose by time, scale each chosen frame."""

    def __init__(self, data: bytes, size: int, threads: int = 0):
        import av

        self.c: Any = av.open(io.BytesIO(data))  # PyAV's stubs type neither side of this as used here
        self.vs: Any = cast(Any, self.c.streams.video[0])
        self.vs.thread_type = "AUTO"
        self.vs.codec_context.thread_count = threads
        self.rate = Fraction(self.vs.average_rate)
        self.tb, self.t0 = float(self.vs.time_base), self.vs.start_time or 0
        self.h, self.w = output_size((self.vs.codec_context.height, self.vs.codec_context.width), size)
        # the mp4 index holds decode times: seek that much earlier to land before the target's frame
        self.delay = max(0, self.t0 - self.vs.index_entries[0].timestamp)

    def window(self, start: float, end: float) -> np.ndarray:
        targets = window_targets(start, end, self.rate)
        self.c.seek(self.t0 + int(start / self.tb) - self.delay, stream=self.vs, backward=True)
        out: list[np.ndarray] = []
        prev: tuple[Any, np.ndarray | None] | None = None
        k, eps = 0, 1e-6 / float(self.rate)
        for f in self.c.decode(self.vs):
            t = (f.pts - self.t0) * self.tb
            while k < len(targets) and t > targets[k] + eps and prev is not None:
                out.append(prev[1] if prev[1] is not None else prev[0].to_ndarray(
                    width=self.w, height=self.h, format="rgb24"))
                prev = (prev[0], out[-1])
                k += 1
            if k == len(targets):
                break
            prev = (f, None)
        while k < len(targets) and prev is not None and targets[k] < t + 1 / float(self.rate):
            out.append(prev[1] if prev[1] is not None else prev[0].to_ndarray(width=self.w, height=self.h,
                                                                             format="rgb24"))
            prev = (prev[0], out[-1])
            k += 1
        return np.stack(out)

    def close(self) -> None:
        self.c.close()


def in_order(data: bytes, size: int, end_s: float, threads: int = 0) -> list[np.ndarray]:
    """Every frame shown before ``end_s``, decoded from the start and scaled, as one list (no windows)."""
    import av

    with av.open(io.BytesIO(data)) as c:
        vs = c.streams.video[0]
        vs.thread_type = "AUTO"
        vs.codec_context.thread_count = threads
        tb, t0 = float(vs.time_base), vs.start_time or 0
        h, w = output_size((vs.codec_context.height, vs.codec_context.width), size)
        out = []
        for f in c.decode(vs):
            if (f.pts - t0) * tb >= end_s:
                break
            out.append(f.to_ndarray(width=w, height=h, format="rgb24", threads=1))  # as fast as ours
    return out


def run(fn, windows) -> tuple[float, float, int, list[np.ndarray]]:
    """Wall seconds, process CPU seconds (all threads: steadier than wall time on a shared machine),
    frames, outputs."""
    t0, c0 = time.perf_counter(), time.process_time()
    outs = [fn(s, e) for s, e in windows]
    return time.perf_counter() - t0, time.process_time() - c0, sum(len(o) for o in outs), outs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="540x960 instead of 1080x1920 (quick check)")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--windows", type=int, default=4, help="windows per measurement")
    ap.add_argument("--window-s", type=float, default=4.0)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0,
                    help="FFmpeg decoding threads for every reader (0: FFmpeg's choice, about one per core)")
    args = ap.parse_args(argv)
    w, h = (540, 960) if args.small else (1080, 1920)
    t = time.perf_counter()
    clip = make_clip(w, h, args.seconds)
    print(f"clip: {w}x{h}, {args.seconds:.0f} s, {len(clip) * 8 / args.seconds / 1e6:.1f} Mbit/s, "
          f"made in {time.perf_counter() - t:.1f} s")
    rng = random.Random(0)
    last = args.seconds - args.window_s
    random_w = [(s, s + args.window_s) for s in (round(rng.uniform(0, last), 3) for _ in range(args.windows))]
    consec_w = [(k * args.window_s, (k + 1) * args.window_s) for k in range(args.windows)]
    if consec_w[-1][1] > args.seconds:
        print("warning: fewer consecutive windows fit in the clip than asked; raise --seconds", file=sys.stderr)
        consec_w = [x for x in consec_w if x[1] <= args.seconds]

    names = ("raw PyAV, random", "ours, random", "ours, consecutive", "raw PyAV, in order")
    wall: dict[str, list[float]] = {k: [] for k in names}
    cpu: dict[str, list[float]] = {k: [] for k in names}
    frames: dict[str, int] = {}
    decoded: dict[str, int] = {}
    outputs: dict[str, list[np.ndarray]] = {}

    def measure(name: str) -> None:
        if name == "raw PyAV, in order":
            spans = consec_w
            t0, c0 = time.perf_counter(), time.process_time()
            outs = in_order(clip, args.size, consec_w[-1][1], args.threads)
            sec, cpu_s, n = time.perf_counter() - t0, time.process_time() - c0, len(outs)
        elif name.startswith("raw"):
            dec, spans = RawPyAV(clip, args.size, args.threads), random_w
            sec, cpu_s, n, outs = run(dec.window, spans)
            dec.close()
        else:
            ours = WindowDecoder(clip, size=args.size, threads=args.threads)
            spans = consec_w if "consecutive" in name else random_w
            sec, cpu_s, n, outs = run(ours.window, spans)
            ours.close()
            decoded[name] = ours.decoded
        wall[name].append(len(spans) / sec)
        cpu[name].append(cpu_s / len(spans))
        frames[name], outputs[name] = n, outs

    for r in range(args.repeat):
        for name in (names if r % 2 == 0 else names[::-1]):  # alternate the order: load drifts
            measure(name)
        if not all(np.array_equal(a, b) for a, b in zip(outputs[names[0]], outputs[names[1]])):
            print("error: our frames differ from raw PyAV's", file=sys.stderr)
            return 1
        ordered = outputs[names[3]]
        if len(ordered) != frames[names[2]] or not np.array_equal(np.concatenate(outputs[names[2]]),
                                                                   np.stack(ordered)):
            print("error: our consecutive windows differ from the in-order frames", file=sys.stderr)
            return 1

    med = {k: statistics.median(v) for k, v in wall.items()}
    cpu_med = {k: statistics.median(v) for k, v in cpu.items()}
    base = med[names[0]]
    print(f"\n{args.window_s:.0f} s windows at {args.size} px, {args.windows} per run, median of {args.repeat} "
          "(frames checked equal to raw PyAV's)")
    print(f"{'reader':<20} {'windows/s':>10} {'best':>8} {'frames/s':>9} {'vs raw':>7} {'CPU s/window':>13}")
    for k in names:
        per_window = frames[k] / (len(random_w) if "random" in k else len(consec_w))
        print(f"{k:<20} {med[k]:>10.2f} {max(wall[k]):>8.2f} {med[k] * per_window:>9.1f} {med[k] / base:>6.2f}x "
              f"{cpu_med[k]:>13.2f}")
    overhead = base / med[names[1]] - 1
    overhead_cpu = cpu_med[names[1]] / cpu_med[names[0]] - 1
    speedup = med[names[2]] / med[names[1]]
    print(f"\noverhead of ours over raw PyAV (random windows): wall {overhead * 100:+.1f} %, "
          f"CPU {overhead_cpu * 100:+.1f} % (target <= +10 %)")
    print(f"consecutive / random windows: {speedup:.2f}x wall, "
          f"{cpu_med[names[1]] / cpu_med[names[2]]:.2f}x CPU (target >= 2x)")
    per_frame = {k: decoded[k] / frames[k] for k in decoded}
    print(f"frames decoded per frame returned: random {per_frame[names[1]]:.2f}, "
          f"consecutive {per_frame[names[2]]:.2f}")
    print(f"consecutive / in order (work no reader avoids): {med[names[2]] / med[names[3]]:.2f}x wall, "
          f"{cpu_med[names[3]] / cpu_med[names[2]]:.2f}x CPU; bound on consecutive / random here: "
          f"{med[names[3]] / med[names[1]]:.2f}x wall, {cpu_med[names[1]] / cpu_med[names[3]]:.2f}x CPU")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
