"""Export time of one 10-minute interaction to every format but Rerun, plus a re-encoded clip.

One command: ``.venv/bin/python benchmarks/bench_export.py [--minutes 10] [--clip-s 10] [--dir DIR] [--rerun]``

The pair is made by the mirror's generator (its per-file writer, the same code that builds the
test mirror: 48 kHz float WAVs, the 24 V00 npz keys at 30 fps, a transcript with an untimed word,
VAD, an H.264 video at ``--width`` x ``--height``), then laid out as a downloaded tree. Every
export runs on the same files in one run, after a raw read of every input byte (the baseline: the
page cache is warm for all). The table gives seconds and the ratio to that raw read; the target is
the total (Lhotse + ELAN + TextGrid + RTTM + a re-encoded clip) within 20 s. ``--dir`` keeps the
generated pair and reuses it.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

from seamless_interaction.local import layout
from seamless_interaction.mirror import generate
from seamless_interaction.operations.export import export

KEY = "V00_S0100_I00000100"
IDS = (f"{KEY}_P0101A", f"{KEY}_P0102")
TARGET_S = 20.0


def make_pair(root: Path, minutes: float, width: int, height: int) -> None:
    """Both participants' bundles, written with the mirror generator's per-file writer."""
    spec = generate.MirrorSpec(duration_s=minutes * 60, width=width, height=height)
    n_frames = int(spec.duration_s * spec.fps)
    scratch = root.parent / ".bench-cdn"
    for speaker, fid in enumerate(IDS):
        rec = generate.FileRecord(
            file_id=fid, label="improvised", split="dev", batch=0, archive=speaker, vendor="V00", fps="30/1",
            n_frames=n_frames, wav_frames=int(round(spec.duration_s * 48_000)), has_transcript=True,
            annotations=("3P-IS",) if speaker else (), placeholder=False, movement=True)
        members = generate._write_cdn(scratch, spec, rec, speaker, 2)  # the generator's bundle writer
        paths = layout.bundle_paths(root, "improvised", "dev", 0, speaker, fid)
        paths["json"].parent.mkdir(parents=True, exist_ok=True)
        for ext, data in members.items():
            paths[ext].write_bytes(data)
    shutil.rmtree(scratch, ignore_errors=True)


def raw_read(root: Path) -> tuple[float, int]:
    t, n = time.perf_counter(), 0
    for p in sorted(root.rglob(f"{KEY}_P*.*")):
        with open(p, "rb") as fh:
            while block := fh.read(1 << 22):
                n += len(block)
    return time.perf_counter() - t, n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--clip-s", type=float, default=10.0, help="length of the re-encoded clip")
    ap.add_argument("--width", type=int, default=192)
    ap.add_argument("--height", type=int, default=320)
    ap.add_argument("--dir", type=Path, help="keep the generated pair here and reuse it")
    ap.add_argument("--rerun", action="store_true", help="also time the Rerun export (not in the target)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    work = args.dir or Path(tempfile.mkdtemp(prefix="bench-export-"))
    data, out = work / "data", work / "out"
    try:
        if not all(layout.find_bundle(data, f).keys() == {"json", "mp4", "npz", "wav"} for f in IDS):
            t = time.perf_counter()
            make_pair(data, args.minutes, args.width, args.height)
            print(f"generated a {args.minutes:g}-minute pair ({args.width}x{args.height}) in "
                  f"{time.perf_counter() - t:.1f} s", file=sys.stderr)
        shutil.rmtree(out, ignore_errors=True)
        raw_read(data)  # warm the page cache for every reader alike
        base, nbytes = raw_read(data)
        start = args.minutes * 60 / 2 + 0.37  # between keyframes: the clip must re-encode
        runs = [("lhotse", {}), ("elan", {}), ("textgrid", {}), ("rttm", {}),
                ("clip", {"start_s": start, "end_s": start + args.clip_s, "force_reencode": True})]
        if args.rerun:
            runs.append(("rerun", {}))
        rows, total = [], 0.0
        for fmt, opts in runs:
            t = time.perf_counter()
            res = export([KEY], to=fmt, out=out / fmt, local_dir=data, **opts)
            dt = time.perf_counter() - t
            if fmt != "rerun":
                total += dt
            extra = f" ({res.cut_modes[KEY]}, {args.clip_s:g} s)" if fmt == "clip" else ""
            rows.append((fmt + extra, dt, sum(p.stat().st_size for p in res.paths)))
        print(f"{args.minutes:g}-minute interaction, {nbytes / 2**20:.0f} MiB of input; baseline: raw read "
              f"of every input byte {base:.3f} s")
        print(f"{'export':<28}{'seconds':>10}{'x raw read':>12}{'output MiB':>12}")
        for name, dt, size in rows:
            print(f"{name:<28}{dt:>10.2f}{dt / base:>12.1f}{size / 2**20:>12.2f}")
        verdict = "within" if total <= TARGET_S else "OVER"
        print(f"{'total (all but rerun)':<28}{total:>10.2f}{total / base:>12.1f}   {verdict} the {TARGET_S:g} s target")
        return 0 if total <= TARGET_S else 1
    finally:
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
