"""Helpers the format writers share: atomic writes, interval tiers without overlaps, optional imports."""

from __future__ import annotations

import contextlib
import importlib
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from seamless_interaction.base.errors import ExportError

T = TypeVar("T")


def require(module: str, fmt: str) -> Any:
    """Import a format library, or say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ExportError(f"exporting to {fmt} needs the {module.split('.')[0]!r} package: "
                          "pip install 'seamless-interaction[export]'") from exc


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """A temporary path beside ``target`` (same suffixes) renamed onto it when the block succeeds."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix="".join(target.suffixes) or ".tmp",
                               dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text_atomic(target: Path, text: str) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return target


def layers(items: Sequence[T], span: Callable[[T], tuple[float, float]]) -> list[list[T]]:
    """Split items into lists whose spans do not overlap (first fit, by start time).

    ELAN and Praat tiers cannot hold overlapping intervals, while transcript segments, words and
    annotation records of one participant sometimes overlap; an overlapping item goes to a second
    tier instead of being moved or cut.
    """
    out: list[list[T]] = []
    ends: list[float] = []
    for item in sorted(items, key=lambda x: span(x)):
        start, end = span(item)
        for i, last in enumerate(ends):
            if start >= last - 1e-9:
                out[i].append(item)
                ends[i] = end
                break
        else:
            out.append([item])
            ends.append(end)
    return out


def clip_span(start: float, end: float, lo: float, hi: float) -> tuple[float, float] | None:
    """``[start, end)`` clipped to ``[lo, hi]``, or None when nothing positive is left."""
    s, e = max(start, lo), min(end, hi)
    return (s, e) if e > s else None


def tier_name(base: str, layer: int) -> str:
    return base if layer == 0 else f"{base} ({layer + 1})"
