"""Streaming PyTorch loader: windows of both participants of each interaction, read from WebDataset shards.

``WindowDataset`` reads shards (local paths, http(s) URLs, or ``(label, split, batches)`` resolved through
a catalog and an ``hf_url`` base) with its own tar reader: members that no requested modality needs are
skipped without decoding; from a local file by seeking, over HTTP by a new Range request when the skip is
large. The frame rate comes from the mp4's own stream header, read in place (a seekable view of the
member locally, small Range reads over HTTP), else N / WAV duration; the WAV is read only as far as its
header unless audio is requested.

Work split (every window exactly once per epoch): the unit of work is an interaction (``dyadic=True``)
or a file id. With a catalog, the units of all shards are listed up front, ordered by batch and archive
(shuffled by batch when ``shuffle``), and cut into one contiguous run per global worker
``rank * num_workers + worker_id``; each worker opens only the shards holding its units. Without a
catalog, a unit belongs to worker ``crc32(unit) % world``, and every worker scans every shard's headers
(local: seeks only). Neither split depends on how much a worker reads, so an epoch is reproduced by
``(seed, epoch, world size)``.

Dyadic join and its memory bound: partners usually sit in different archives of one batch. A
participant whose partner is still unread waits in a buffer (its requested members only). With a
catalog, shards are read batch by batch, and within a batch the next shard is the one holding the most
partners of what is buffered, so the buffer never outlives a batch and holds at most the owned
interactions split across the shards read so far; without a catalog it is capped at ``max_pending``
participants, the oldest leaving unmatched (with a warning) when the cap is hit or the stream ends.
Unmatched participants are yielded alone (``participant_mask`` marks the empty slot after collate).

Speed: the features are the cost (the npz members are DEFLATE, ~2x compressed). Each participant's
requested members are inflated once, each in one C call (libdeflate when the optional ``deflate``
package is installed, else zlib), on ``decode_threads`` threads and one participant ahead of the one
being cut; windows are views of those arrays, and audio windows are cut from the WAV member's bytes
without converting them. So at most one participant beyond the join buffer is held in memory.
"""

from __future__ import annotations

import io
import os
import random
import re
import warnings
import zlib
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

import numpy as np

try:
    import torch
    from torch.utils.data import IterableDataset, get_worker_info
except ImportError as exc:  # torch is an optional extra
    raise ImportError("seamless_interaction.access.loader needs PyTorch: pip install 'seamless-interaction[loader]' "
                      "(the CPU wheel: --index-url https://download.pytorch.org/whl/cpu)") from exc

from seamless_interaction.access.aligned import (EmptyMediaWarning, Interaction, NpzReader, Participant, span_indices,
                                         windows)
from seamless_interaction.access.video import VideoSize, open_window_decoder
from seamless_interaction.constants import VAD_RATE
from seamless_interaction.base.config import DatasetConfig
from seamless_interaction.base.errors import IntegrityError, SeamlessError, TransferError
from seamless_interaction.base.tarfmt import iter_tar
from seamless_interaction.remote.transfer import Transfer
from seamless_interaction.remote.urls import hub_archive_url

__all__ = [
    "Shard",
    "ShardWarning",
    "WindowDataset",
    "collate_windows",
    "iter_members",
    "iter_samples",
    "resolve_shards",
]

LOADER_MODALITIES = ("features", "audio", "vad", "words", "video")
RANGE_SKIP_MIN = 1 << 20  # over HTTP, skips larger than this reopen the stream at an offset (Range)
WAV_HEAD_BYTES = 4096
# What a bad member can raise while it is decoded (corrupt npz/json/wav/mp4): its sample is skipped.
_SAMPLE_ERRORS = (SeamlessError, KeyError, ValueError, TypeError, AttributeError, OSError, EOFError, zlib.error)
_SHARD_RE = re.compile(r"(?P<label>[a-z]+)/(?P<split>[a-z]+)/(?P<batch>\d{4})/(?P<archive>\d{4})\.tar$")


class ShardWarning(UserWarning):
    """A shard or sample that was skipped (truncated, corrupt, placeholder media, unmatched partner)."""


# ------------------------------------------------------------------------------------------ sources
@dataclass(frozen=True)
class Shard:
    """One tar; label/split/batch/archive are known when the path or URL follows the Hub layout."""

    location: str
    label: str | None = None
    split: str | None = None
    batch: int | None = None
    archive: int | None = None

    @property
    def is_http(self) -> bool:
        return self.location.startswith(("http://", "https://"))

    @classmethod
    def parse(cls, location: str | Path) -> Shard:
        loc = str(location)
        m = _SHARD_RE.search(loc.split("?", 1)[0])
        if m is None:
            return cls(loc)
        return cls(loc, m["label"], m["split"], int(m["batch"]), int(m["archive"]))


def resolve_shards(sources: Iterable[Any] | str | Path | tuple, *, catalog=None, hf_url: str | None = None
                   ) -> list[Shard]:
    """Paths and URLs as given; ``(label, split, batches)`` tuples expand through ``catalog`` to
    ``hf_url`` resolve URLs (``batches`` an int or an iterable of ints)."""
    if isinstance(sources, (str, Path)) or (isinstance(sources, tuple) and len(sources) == 3
                                            and isinstance(sources[0], str) and not _looks_like_shard(sources[0])):
        sources = [sources]
    out: list[Shard] = []
    for src in sources:
        if isinstance(src, Shard):
            out.append(src)
        elif isinstance(src, tuple):
            label, split, batches = src
            if catalog is None or hf_url is None:
                raise ValueError(f"source {src!r} needs catalog= and hf_url= to list its archives")
            for b in [batches] if isinstance(batches, int) else batches:
                for a in catalog.archives(label, split, b):
                    out.append(Shard(hub_archive_url(hf_url, label, split, b, a), label, split, int(b), int(a)))
        else:
            out.append(Shard.parse(src))
    return out


def _file_selection(sources: Any, catalog, hf_url: str | None, dyadic: bool
                    ) -> tuple[Any, frozenset[str] | None]:
    """File ids given as sources (a list of ids, or a table with a ``file_id`` column such as a
    ``fs.query`` result) become the Hub shards that hold them plus the set of ids to keep; a
    dyadic dataset keeps both partners of each selected interaction. Other sources pass through."""
    ids: list[str] | None = None
    names = getattr(sources, "column_names", None) or list(getattr(sources, "columns", []) or [])
    if "file_id" in names:
        col = sources["file_id"]
        ids = [str(f) for f in (col.to_pylist() if hasattr(col, "to_pylist") else list(col)) if f is not None]
    elif isinstance(sources, (list, tuple)) and sources and all(
            isinstance(x, str) and _FILE_ID_RE.match(x) for x in sources):
        ids = list(sources)
    if ids is None:
        return sources, None
    if catalog is None or hf_url is None:
        raise ValueError("file ids as sources need catalog= and hf_url= to find the archives holding them")
    keep = set(ids)
    if dyadic:
        keep |= {p for f in ids for p in catalog.interaction_file_ids(f[:19])}
    refs = sorted({(r.label, r.split, r.batch, r.archive) for r in map(catalog.record, keep)})
    shards = [Shard(hub_archive_url(hf_url, *ref), ref[0], ref[1], ref[2], ref[3]) for ref in refs]
    return shards, frozenset(keep)


_FILE_ID_RE = re.compile(r"^V\d{2}_S\d{4}_I\d{8}_P\d{4}[A-Z]?$")


def _looks_like_shard(text: str) -> bool:
    return text.endswith(".tar") or "://" in text or "/" in text


# ------------------------------------------------------------------------------------------ readers
class _LocalReader:
    def __init__(self, path: str):
        self.path = path
        self._fh = open(path, "rb")
        self.pos = 0

    def read(self, n: int) -> bytes:
        data = self._fh.read(n)
        self.pos += len(data)
        return data

    def skip(self, n: int) -> None:
        self._fh.seek(n, os.SEEK_CUR)
        self.pos += n

    def opener(self, offset: int, size: int) -> Callable[[], IO[bytes]]:
        path = self.path
        # A RawIOBase is a binary file object at run time; typeshed does not count it as IO[bytes].
        return lambda: cast(IO[bytes], _SubFile(open(path, "rb"), offset, size))

    def size_ok(self, end: int) -> bool:
        return end <= os.fstat(self._fh.fileno()).st_size

    def close(self) -> None:
        self._fh.close()


class _MemberView(io.RawIOBase):
    """A seekable read-only window of ``size`` bytes at ``offset``; subclasses provide ``readinto``."""

    def __init__(self, offset: int, size: int):
        self._off, self._size, self._pos = offset, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, pos: int, whence: int = 0) -> int:
        self._pos = max(0, {0: 0, 1: self._pos, 2: self._size}[whence] + pos)
        return self._pos

    def tell(self) -> int:
        return self._pos


class _SubFile(_MemberView):
    """A view of a member of a local file (an mp4 member probed in place)."""

    def __init__(self, fh: IO[bytes], offset: int, size: int):
        super().__init__(offset, size)
        self._fh = fh

    def readinto(self, b) -> int:
        n = max(0, min(len(b), self._size - self._pos))
        if n == 0:
            return 0
        self._fh.seek(self._off + self._pos)
        data = self._fh.read(n)
        b[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def close(self) -> None:
        self._fh.close()
        super().close()


class _HttpReader:
    """Sequential reader over an HTTP body, through the transfer engine (token scope, resolves, retries).

    A dropped connection or an expired redirect target resumes at the byte reached; large skips
    reopen the stream at an offset (Range).
    """

    def __init__(self, transfer: Transfer, url: str):
        self._transfer, self.url, self.pos = transfer, url, 0
        self._it: Iterator[bytes] | None = None
        self._buf = b""
        self._open(0)

    def _open(self, offset: int) -> None:
        self.close()
        self._it, self._buf = self._transfer.stream(self.url, start=offset), b""
        self.pos = offset

    def read(self, n: int) -> bytes:
        parts, need = [], n
        while need > 0:
            if not self._buf:
                try:
                    self._buf = next(self._it)  # type: ignore[arg-type]
                except StopIteration:
                    break
            take = self._buf[:need]
            self._buf = self._buf[len(take):]
            parts.append(take)
            need -= len(take)
        data = b"".join(parts)
        self.pos += len(data)
        return data

    def _discard(self, n: int) -> None:
        while n > 0:
            got = len(self.read(min(n, 1 << 20)))
            if not got:
                return
            n -= got

    def skip(self, n: int) -> None:
        if n >= RANGE_SKIP_MIN:
            self._open(self.pos + n)
        else:
            self._discard(n)

    def opener(self, offset: int, size: int) -> Callable[[], IO[bytes]]:
        transfer, url = self._transfer, self.url
        # A RawIOBase is a binary file object at run time; typeshed does not count it as IO[bytes].
        return lambda: cast(IO[bytes], _HttpRangeFile(transfer, url, offset, size))

    def size_ok(self, end: int) -> bool:
        return True  # a short body shows up as a short read

    def close(self) -> None:
        if self._it is not None:
            self._it.close()  # type: ignore[attr-defined]  # a generator: closes its response
            self._it = None


class _HttpRangeFile(_MemberView):
    """A view of a member over HTTP Range requests, with a read-ahead block (mp4 header probes)."""

    BLOCK = 1 << 18

    def __init__(self, transfer: Transfer, url: str, offset: int, size: int):
        super().__init__(offset, size)
        self._transfer, self._url = transfer, url
        self._cache_start, self._cache = -1, b""

    def readinto(self, b) -> int:
        n = max(0, min(len(b), self._size - self._pos))
        if n == 0:
            return 0
        if not (self._cache_start <= self._pos and self._pos + n <= self._cache_start + len(self._cache)):
            lo = self._off + self._pos
            hi = min(self._off + self._size, lo + max(n, self.BLOCK))
            data = self._transfer.fetch_bytes(self._url, start=lo, end=hi)
            assert data is not None  # not optional: absence raises
            self._cache_start, self._cache = self._pos, data
        i = self._pos - self._cache_start
        data = self._cache[i:i + n]
        b[: len(data)] = data
        self._pos += len(data)
        return len(data)


# ------------------------------------------------------------------------------------------ tar members
def iter_members(reader, want: Callable[[str, str], str], where: str) -> Iterator[tuple[str, str, Any]]:
    """Yield ``(file_id, ext, payload)`` for every regular member; ``want(file_id, ext)`` says how to take it:
    ``"data"`` (bytes), ``"head"`` (the first WAV_HEAD_BYTES), ``"open"`` (an opener of a seekable
    view) or ``"skip"`` (payload None). Headers are read by :func:`~seamless_interaction.base.tarfmt.iter_tar`;
    raises IntegrityError on a bad header (not a tar) or a truncated member."""
    def read_at(offset: int, n: int) -> bytes:
        # iter_tar asks for growing offsets; what lies between (bodies not taken, padding) is skipped.
        if offset < reader.pos:
            raise IntegrityError(f"{where}: tar reader asked to go back to byte {offset} from {reader.pos}")
        if offset > reader.pos:
            reader.skip(offset - reader.pos)
        return reader.read(n)

    for member in iter_tar(read_at, where=where):
        if not member.is_file:
            continue
        name, size, start = member.name, member.size, member.offset_data
        file_id, _, ext = name.rsplit("/", 1)[-1].partition(".")
        how = want(file_id, ext)
        if how == "data":
            payload: Any = reader.read(size)
            if len(payload) < size:
                raise IntegrityError(f"{where}: member {name} truncated ({len(payload)} of {size} bytes)")
        elif how == "head":
            payload = reader.read(min(size, WAV_HEAD_BYTES))
        else:
            payload = reader.opener(start, size) if how == "open" else None
        if not reader.size_ok(start + size):
            raise IntegrityError(f"{where}: member {name} runs past the end of the file")
        yield file_id, ext, payload


def iter_samples(reader, want: Callable[[str, str], str], where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Group consecutive members by file id (the text before the first dot, as WebDataset does)."""
    current, parts = None, {}
    for file_id, ext, payload in iter_members(reader, want, where):
        if file_id != current and current is not None:
            yield current, parts
            parts = {}
        current = file_id
        if payload is not None:
            parts[ext] = payload
    if current is not None:
        yield current, parts


# ------------------------------------------------------------------------------------------ the dataset
def _dist_rank_world(rank: int | None, world_size: int | None) -> tuple[int, int]:
    if rank is not None and world_size is not None:
        return rank, world_size
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


class WindowDataset(IterableDataset):
    """Windows of ``window_s`` seconds (hop ``hop_s``, default ``window_s``) from WebDataset shards.

    Each item: ``{"key", "file_ids", "start_s", "end_s", "participants": [{"file_id", "features":
    {key: rows}, "audio": samples, "vad": mask, "words": [...]}, ...]}`` with only the requested
    modalities (``"features"``, ``"audio"``, ``"vad"``, ``"words"``, ``"video"``). Use :func:`collate_windows`.

    Args:
        sources: shard paths or URLs, or ``(label, split, batches)`` tuples (need ``catalog`` and ``hf_url``).
        dyadic: yield both participants of an interaction in one item (see the module docstring).
        shuffle, seed: per-epoch order of batches/shards and a window shuffle buffer, from ``(seed, epoch)``.
        strict: raise on a bad shard or placeholder sample instead of warning and skipping it.
        catalog: a :class:`~seamless_interaction.catalog.tables.Catalog`; enables the planned split and join.
        feature_keys: npz keys to return (default all); only these are decompressed.
        rank, world_size: override torch.distributed / RANK / WORLD_SIZE.
        drop_last: only full windows (default); else a last shorter window per interaction.
        decode_threads: threads inflating npz members (zlib and libdeflate release the GIL), which also
            inflate the next participant while the current one is cut; default 2 in the main process
            and 1 (no thread) inside a DataLoader worker, where the workers already use the cores.
        transfer: the :class:`~seamless_interaction.remote.transfer.Transfer` for HTTP shards (its
            token scope, retries and resolves); by default one per iteration, from the environment.
        video_fps: frames per second of the ``"video"`` windows (default: each file's own rate); frame k
            is the last frame shown at ``start + k / video_fps``.
        video_size: short side in pixels (default 224), or ``(height, width)`` (stretches, as
            torchvision's ``Resize``), or None for the native size; of the displayed (rotated) frame.
        video_channels_first: video windows ``(T, 3, H, W)`` instead of ``(T, H, W, 3)``.
        video_device: ``"cpu"`` (PyAV) or ``"cuda"`` (NVDEC through PyNvVideoCodec, the ``gpu`` extra;
            frames stay on the GPU; DataLoader workers must use the ``spawn`` start method).
        video_threads: FFmpeg threads per decoder; default 0 (FFmpeg's choice) in the main process and
            1 in a DataLoader worker.
    Participants whose mp4 has no video stream or cannot be read (placeholders) are skipped with a
    warning when ``"video"`` is requested. With ``shuffle``, every window in the shuffle buffer holds its
    frames (4 s at 30 fps and 224x398 is about 32 MB; on the GPU with ``video_device="cuda"``), so keep
    ``shuffle_buffer`` small (tens) when asking for video.
    """

    def __init__(self, sources, modalities: Sequence[str] = ("features",), window_s: float = 4.0,
                 hop_s: float | None = None, dyadic: bool = True, shuffle: bool = False, seed: int = 0,
                 strict: bool = False, catalog=None, feature_keys: Sequence[str] | None = None, *,
                 hf_url: str | None = None, rank: int | None = None, world_size: int | None = None,
                 drop_last: bool = True, max_pending: int = 256, shuffle_buffer: int = 512,
                 transfer: Transfer | None = None, vad_rate: int = VAD_RATE, decode_threads: int | None = None,
                 video_fps: float | None = None, video_size: VideoSize = 224, video_channels_first: bool = False,
                 video_device: str = "cpu", video_threads: int | None = None):
        super().__init__()
        bad = set(modalities) - set(LOADER_MODALITIES)
        if bad:
            raise ValueError(f"unknown modalities {sorted(bad)}; the loader supports {list(LOADER_MODALITIES)}")
        sources, self._selected = _file_selection(sources, catalog, hf_url, dyadic)
        windows(1.0, window_s, hop_s)  # ValueError now, naming them, for a window or hop <= 0, NaN or inf
        self.shards = resolve_shards(sources, catalog=catalog, hf_url=hf_url)
        self.modalities = tuple(modalities)
        self.window_s, self.hop_s = window_s, hop_s
        self.dyadic, self.shuffle, self.seed, self.strict = dyadic, shuffle, seed, strict
        self.catalog, self.feature_keys = catalog, list(feature_keys) if feature_keys else None
        self.rank, self.world_size, self.drop_last = rank, world_size, drop_last
        self.max_pending, self.shuffle_buffer, self.vad_rate = max_pending, shuffle_buffer, vad_rate
        self.hf_url = hf_url
        self._transfer = transfer
        self._own_transfer: Transfer | None = None
        self.decode_threads = decode_threads
        self.video = {"fps": video_fps, "size": video_size, "channels_first": video_channels_first,
                      "device": str(video_device), "threads": video_threads}
        if "video" in self.modalities:
            open_window_decoder(b"", **self._video_options(0))  # validates the options (opens nothing)
        self.epoch = 0

    def _video_options(self, threads: int) -> dict[str, Any]:
        v = self.video
        return {"device": v["device"], "fps": v["fps"], "size": v["size"], "channels_first": v["channels_first"],
                "threads": threads if v["threads"] is None else v["threads"]}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    # ---- planning (pure: the same on every worker)
    def _unit(self, file_id: str) -> str:
        return file_id[:19] if self.dyadic else file_id

    def _worker(self) -> tuple[int, int]:
        rank, world = _dist_rank_world(self.rank, self.world_size)
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        return rank * nw + wid, world * nw

    def _catalog_ids(self, shard: Shard) -> list[str]:
        if shard.batch is None:
            raise ValueError(f"{shard.location}: not a {{label}}/{{split}}/{{batch}}/{{archive}}.tar path; "
                             "the catalog cannot say what it holds")
        ids = self.catalog.archive_file_ids(shard.label, shard.split, shard.batch, shard.archive)
        return [f for f in ids if self._selected is None or f in self._selected]

    def plan(self, worker: int, world: int) -> tuple[list[list[Shard]], Callable[[str], bool], dict[str, int]]:
        """(shard groups in read order, ownership test on a unit, expected participants per unit)."""
        rng = random.Random(f"{self.seed}:{self.epoch}")
        if self.catalog is None:
            shards = list(self.shards)
            if self.shuffle:
                rng.shuffle(shards)
            return [shards], lambda u: zlib.crc32(u.encode()) % world == worker, {}
        groups: dict[tuple, list[Shard]] = {}
        holds: dict[Shard, list[str]] = {}
        for sh in self.shards:
            groups.setdefault((sh.label, sh.split, sh.batch), []).append(sh)
            holds[sh] = self._catalog_ids(sh)
        order = sorted(groups, key=str)
        if self.shuffle:
            rng.shuffle(order)
        units: list[str] = []
        expected: dict[str, int] = {}
        for g in order:
            for sh in sorted(groups[g], key=lambda s: s.archive or 0):
                for fid in holds[sh]:
                    u = self._unit(fid)
                    if u not in expected:
                        units.append(u)
                    expected[u] = expected.get(u, 0) + 1
        lo, hi = len(units) * worker // world, len(units) * (worker + 1) // world
        mine = set(units[lo:hi])
        if self.dyadic:
            for u in units[lo:hi]:
                n_all = len(self.catalog.interaction_file_ids(u))
                if n_all > expected[u]:
                    warnings.warn(f"{u}: {n_all - expected[u]} participant(s) sit in archives not among the "
                                  "sources; its windows carry the others alone", ShardWarning, stacklevel=3)
        read_groups = []
        for g in order:
            shards = [sh for sh in groups[g] if any(self._unit(f) in mine for f in holds[sh])]
            if shards:
                read_groups.append(self._join_order(shards, holds, rng))
        return read_groups, mine.__contains__, expected

    def _join_order(self, shards: list[Shard], holds: dict, rng: random.Random) -> list[Shard]:
        """Greedy: next, the shard holding the most partners of what has been read (keeps the buffer small)."""
        left = sorted(shards, key=lambda s: s.archive or 0)
        if self.shuffle:
            rng.shuffle(left)
        open_units: set[str] = set()
        out = []
        while left:
            best = max(range(len(left)), key=lambda i: (sum(self._unit(f) in open_units for f in holds[left[i]]), -i))
            sh = left.pop(best)
            out.append(sh)
            open_units ^= {self._unit(f) for f in holds[sh]}
        return out

    # ---- reading
    def _want(self, ext: str) -> str:
        m = self.modalities
        if ext == "npz":
            return "data" if "features" in m else "skip"
        if ext == "wav":
            return "data" if "audio" in m else "head"
        if ext == "json":
            return "data" if ("vad" in m or "words" in m) else "skip"
        if ext == "mp4":
            return "open"
        return "skip"

    def _engine(self) -> Transfer:
        """The transfer engine for HTTP shards: the caller's, else one per iteration (closed when it ends)
        with the environment's HF token, scoped to the Hub of ``hf_url`` (or the default Hub)."""
        if self._transfer is not None:
            return self._transfer
        if self._own_transfer is None:
            cfg = DatasetConfig(hf_url=self.hf_url).resolved()
            self._own_transfer = Transfer.from_config(cfg, max_connections=4)
        return self._own_transfer

    def _problem(self, message: str, exc: Exception | None = None) -> None:
        if self.strict:
            if isinstance(exc, TransferError):
                raise TransferError(message, url=exc.url, status=exc.status) from exc
            raise IntegrityError(message) from exc
        warnings.warn(message, ShardWarning, stacklevel=3)

    def _read_shard(self, shard: Shard, owned: Callable[[str], bool]) -> Iterator[tuple[Participant, dict]]:
        def want(file_id: str, ext: str) -> str:
            return self._want(ext) if owned(self._unit(file_id)) else "skip"

        reader = None
        try:
            reader = _HttpReader(self._engine(), shard.location) if shard.is_http else _LocalReader(shard.location)
            for file_id, parts in iter_samples(reader, want, shard.location):
                if owned(self._unit(file_id)):
                    yield (Participant.from_sources(file_id, parts, wav_header_only="audio" not in self.modalities),
                           parts)
        except (SeamlessError, OSError) as exc:
            # Not a tar (an HTML error page saved as .tar, random bytes), truncated, unreachable: the
            # participants read so far stand, the rest of this shard is skipped, the next shard is read.
            text = str(exc)
            named = text if shard.location in text else f"{shard.location}: {text}"
            self._problem(f"{named}; rest of the shard skipped", exc)
        finally:
            if reader is not None:
                reader.close()

    def _start(self, p: Participant, parts: dict, pool: Executor | None, where: str = ""
               ) -> Callable[[], dict[str, Any] | None]:
        """Check a participant and start inflating its features; the returned call waits for them.

        The result is what its windows are cut from: ``features`` (the requested arrays, each inflated
        once), ``audio`` (the whole float track, when asked) and ``rates``; or None when the participant
        cannot be used (a warning, or an error in strict mode, raised by the returned call so that
        problems surface in stream order).
        """
        name = f"{where}: {p.file_id}" if where else p.file_id

        def fail(message: str, exc: Exception | None = None) -> Callable[[], None]:
            return lambda: self._problem(message, exc)

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", EmptyMediaWarning)
                if p.is_placeholder or not p.frame_rate or p.duration_s <= 0:
                    return fail(f"{name}: placeholder or empty media; skipped")
            if "video" in self.modalities:
                if "mp4" not in parts:
                    return fail(f"{name}: no mp4 member; skipped")
                if p.video_info is None:
                    return fail(f"{name}: the mp4 has no video stream; skipped")
            pending = None
            if "features" in self.modalities:
                if "npz" not in parts:
                    return fail(f"{name}: no npz member; skipped")
                pending = NpzReader(parts["npz"], name=f"{p.file_id}.npz").submit_arrays(self.feature_keys, pool)
            if "vad" in self.modalities or "words" in self.modalities:
                p.json  # noqa: B018 - parse now: a corrupt json member skips its sample, not the stream
        except _SAMPLE_ERRORS as exc:
            return fail(f"{name}: {exc}; skipped", exc)

        def finish() -> dict[str, Any] | None:
            try:
                out: dict[str, Any] = {"rates": {}}
                if pending is not None:
                    got = pending()
                    if any(len(v) == 0 for v in got.values()):
                        self._problem(f"{name}: zero-length feature arrays; skipped")
                        return None
                    out["features"] = got
                    out["rates"] = {k: float(p.feature_rate(k)) for k in got}
                if "audio" in self.modalities:
                    out["audio"] = _audio_track(p, parts.get("wav"))
                # Cut once over the whole span so that a malformed json (segments that are not records)
                # fails here, per sample, and not halfway through its windows.
                if "vad" in self.modalities:
                    p.vad_mask(self.vad_rate)
                if "words" in self.modalities:
                    p.words()
                if "video" in self.modalities:
                    out["mp4"] = parts["mp4"]  # opened when its first window is cut
                return out
            except _SAMPLE_ERRORS as exc:
                self._problem(f"{name}: {exc}; skipped", exc)
                return None

        return finish

    def _loaded(self, shards: list[Shard], owned, pool: Executor | None
                ) -> Iterator[tuple[Participant, dict[str, Any] | None]]:
        """Participants with their loaded data, one ahead: the next one is read from the tar and its
        members are inflating on the pool while the current one is cut into windows and consumed."""
        ahead: deque[tuple[Participant, Callable[[], dict[str, Any] | None]]] = deque()
        for shard in shards:
            for p, parts in self._read_shard(shard, owned):
                ahead.append((p, self._start(p, parts, pool, shard.location)))
                if len(ahead) > 1:
                    q, finish = ahead.popleft()
                    yield q, finish()
        while ahead:
            q, finish = ahead.popleft()
            yield q, finish()

    def _window_items(self, group: list[tuple[Participant, dict]]) -> Iterator[dict]:
        decoders: dict[str, Any] = {}
        try:
            yield from self._cut_group(group, decoders)
        except IntegrityError as exc:  # a video that stops decoding part-way
            self._problem(f"{group[0][0].file_id[:19]}: {exc}; its remaining windows skipped", exc)
        finally:
            for dec in decoders.values():
                dec.close()

    def _video_window(self, p: Participant, data: dict, decoders: dict, start: float, end: float):
        """One participant's frames; its decoder stays open across its windows (consecutive windows
        continue decoding instead of seeking)."""
        dec = decoders.get(p.file_id)
        if dec is None:
            threads = 0 if get_worker_info() is None else 1
            dec = decoders[p.file_id] = open_window_decoder(data["mp4"], name=f"{p.file_id}.mp4",
                                                            **self._video_options(threads))
        return dec.window(start, end)

    # Audio windows own their samples (the WAV member's bytes can go); a subclass that copies the windows
    # itself (the Ray read task, into its blocks) takes views of the track instead.
    _audio_views = False

    def _audio_window(self, p: Participant, track: np.ndarray | None, start: float, end: float) -> np.ndarray:
        """One participant's samples in the span; ``track`` is the whole float track, or None where
        :meth:`Participant.audio` converts the WAV."""
        if track is None:
            return p.audio(start, end)
        return _cut_audio(track, p, start, end, copy=not self._audio_views)

    def _cut_group(self, group: list[tuple[Participant, dict]], decoders: dict) -> Iterator[dict]:
        loaded = {p.file_id: data for p, data in group}
        it = Interaction(self._unit(group[0][0].file_id), [p for p, _ in group])
        for start, end in windows(it.duration_s, self.window_s, self.hop_s, drop_last=self.drop_last):
            parts = []
            for p in it.participants:
                data = loaded[p.file_id]
                d: dict[str, Any] = {"file_id": p.file_id}
                if "features" in self.modalities:
                    d["features"] = _cut_all(data["features"], data["rates"], start, end)
                if "audio" in self.modalities:
                    d["audio"] = self._audio_window(p, data["audio"], start, end)
                if "vad" in self.modalities:
                    d["vad"] = p.vad_mask(self.vad_rate, start, end)
                if "words" in self.modalities:
                    d["words"] = p.words(start, end)
                if "video" in self.modalities:
                    d["video"] = self._video_window(p, data, decoders, start, end)
                parts.append(d)
            yield {"key": it.key, "file_ids": [p.file_id for p in it.participants], "start_s": start,
                   "end_s": end, "participants": parts}

    def _groups(self, read_groups, owned, expected, pool: Executor | None = None
                ) -> Iterator[list[tuple[Participant, dict]]]:
        for shards in read_groups:
            pending: OrderedDict[str, list[tuple[Participant, dict]]] = OrderedDict()
            for p, arrays in self._loaded(shards, owned, pool):
                u = self._unit(p.file_id)
                if arrays is None:
                    expected[u] = expected.get(u, 2) - 1
                    if u in pending and len(pending[u]) >= expected[u]:
                        yield pending.pop(u)
                    continue
                if not self.dyadic:
                    yield [(p, arrays)]
                    continue
                pending.setdefault(u, []).append((p, arrays))
                if len(pending[u]) >= expected.get(u, 2):
                    yield pending.pop(u)
                while sum(map(len, pending.values())) > self.max_pending:
                    u0, ps = pending.popitem(last=False)
                    warnings.warn(f"{u0}: partner not seen within max_pending={self.max_pending} "
                                  "participants; yielded alone", ShardWarning, stacklevel=2)
                    yield ps
            for u, ps in pending.items():
                if expected.get(u, 2) > len(ps) and (self.catalog is None or expected.get(u, 0) > 0):
                    warnings.warn(f"{u}: partner of {ps[0][0].file_id} not found in the shards read; yielded alone",
                                  ShardWarning, stacklevel=2)
                yield ps

    def __iter__(self) -> Iterator[dict]:
        worker, world = self._worker()
        read_groups, owned, expected = self.plan(worker, world)
        rng = random.Random(f"{self.seed}:{self.epoch}:{worker}")
        buf: list[dict] = []
        threads = self.decode_threads
        if threads is None:
            threads = 2 if get_worker_info() is None else 1
        pool = ThreadPoolExecutor(threads, thread_name_prefix="npz-inflate") if threads > 1 else None
        short: list[str] = []  # units too short for one window: said once at the end, not silently dropped
        try:
            for group in self._groups(read_groups, owned, dict(expected), pool):
                n = 0
                for item in self._window_items(group):
                    n += 1
                    if not self.shuffle:
                        yield item
                        continue
                    buf.append(item)
                    if len(buf) >= self.shuffle_buffer:
                        yield buf.pop(rng.randrange(len(buf)))
                if n == 0:
                    short.append(f"{self._unit(group[0][0].file_id)} "
                                 f"({min(p.duration_s for p, _ in group):.2f} s)")
            rng.shuffle(buf)
            yield from buf
            if short:
                unit = "interaction(s)" if self.dyadic else "file id(s)"
                warnings.warn(f"{len(short)} {unit} shorter than window_s={self.window_s} gave no windows "
                              f"(e.g. {', '.join(short[:3])}); lower window_s or pass drop_last=False",
                              ShardWarning, stacklevel=2)
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
            if self._own_transfer is not None:
                self._own_transfer.close()
                self._own_transfer = None


def _cut_all(arrays: dict[str, np.ndarray], rates: dict[str, float], start: float, end: float
             ) -> dict[str, np.ndarray]:
    """Rows of every array in ``[start, end)`` (views); the row range is worked out once per (rate, length).

    ``rates`` are the exact Fractions as floats, which is what :func:`span_indices` computes with.
    """
    spans: dict[tuple[float, int], tuple[int, int]] = {}
    out = {}
    for k, arr in arrays.items():
        key = (rates[k], len(arr))
        ab = spans.get(key)
        if ab is None:
            ab = spans[key] = span_indices(start, end, key[0], key[1])
        out[k] = arr[ab[0]:ab[1]]
    return out


def _audio_track(p: Participant, wav: Any) -> np.ndarray | None:
    """The whole float32 track as a view of the WAV member's bytes (``(n,)`` or ``(n, channels)``),
    or None where :meth:`Participant.audio` must convert it (integer PCM, float64)."""
    info = p.wav_info
    if not isinstance(wav, bytes) or info is None or info.format_tag != 3 or info.bits != 32 or not info.channels:
        return None
    track = np.frombuffer(wav, dtype="<f4", count=info.frames * info.channels, offset=info.data_offset)
    return track.reshape(-1, info.channels) if info.channels > 1 else track


def _cut_audio(track: np.ndarray, p: Participant, start: float, end: float, copy: bool = True) -> np.ndarray:
    if len(track) == 0:
        warnings.warn(f"{p.file_id}: audio is empty (placeholder media)", EmptyMediaWarning, stacklevel=3)
    info = p.wav_info
    assert info is not None  # a track exists only where the WAV header was read
    a, b = span_indices(start, end, info.sample_rate, len(track))
    return track[a:b].copy() if copy else track[a:b]  # owned and writable, as Participant.audio returns


# ------------------------------------------------------------------------------------------ collate
def _pad(arrays: list[list[np.ndarray | None]], dtype=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad a (B, P) grid of arrays on their first axis; returns (values, mask (B, P, T))."""
    present = [a for row in arrays for a in row if a is not None]
    tail = present[0].shape[1:] if present else ()
    t = max((len(a) for a in present), default=0)
    B, P = len(arrays), max(len(r) for r in arrays)
    dt = present[0].dtype if present else np.float32
    values = np.zeros((B, P, t, *tail), dtype=dt)
    mask = np.zeros((B, P, t), dtype=bool)
    for i, row in enumerate(arrays):
        for j, a in enumerate(row):
            if a is not None:
                values[i, j, : len(a)] = a
                mask[i, j, : len(a)] = True
    return torch.from_numpy(values), torch.from_numpy(mask)


def _pad_video(arrays: list[list[Any]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad a (B, P) grid of frame windows (numpy arrays or torch tensors, CPU or CUDA) on every axis
    to the largest (files of other rasters keep their own size with ``video_size`` an int); the mask
    (B, P, T) marks real frames. The result stays on the device of the windows."""
    present = [torch.as_tensor(a) for row in arrays for a in row if a is not None]
    B, P = len(arrays), max(len(r) for r in arrays)
    if not present:
        return torch.zeros((B, P, 0, 0, 0, 3), dtype=torch.uint8), torch.zeros((B, P, 0), dtype=torch.bool)
    ref = present[0]
    shape = [max(a.shape[d] for a in present) for d in range(ref.ndim)]
    values = torch.zeros((B, P, *shape), dtype=ref.dtype, device=ref.device)
    mask = torch.zeros((B, P, shape[0]), dtype=torch.bool, device=ref.device)
    for i, row in enumerate(arrays):
        for j, a in enumerate(row):
            if a is not None:
                t = torch.as_tensor(a)
                # Built apart: a starred item inside a subscript needs Python 3.11.
                index: tuple[int | slice, ...] = (i, j, *(slice(0, n) for n in t.shape))
                values[index] = t
                mask[i, j, : len(t)] = True
    return values, mask


def collate_windows(items: list[dict]) -> dict[str, Any]:
    """Batch window items into padded tensors with masks.

    Returns ``key`` (list), ``file_ids`` (list of lists), ``start_s``/``end_s`` (B,) float64,
    ``participant_mask`` (B, P) bool, and per requested modality: ``features[k]`` (B, P, T_k, ...) with
    ``features_mask[k]`` (B, P, T_k); ``audio`` (B, P, S) with ``audio_mask``; ``vad`` (B, P, V) with
    ``vad_mask``; ``words`` as nested lists; ``video`` (B, P, T, H, W, 3) uint8 (or (B, P, T, 3, H, W))
    with ``video_mask`` (B, P, T), on the windows' device. P is 2 in dyadic mode (1 otherwise); absent
    slots are masked.
    """
    P = max(len(it["participants"]) for it in items)
    grid = [it["participants"] + [None] * (P - len(it["participants"])) for it in items]
    out: dict[str, Any] = {
        "key": [it["key"] for it in items],
        "file_ids": [it["file_ids"] for it in items],
        "start_s": torch.tensor([it["start_s"] for it in items], dtype=torch.float64),
        "end_s": torch.tensor([it["end_s"] for it in items], dtype=torch.float64),
        "participant_mask": torch.tensor([[p is not None for p in row] for row in grid]),
    }
    first = items[0]["participants"][0]
    if "features" in first:
        out["features"], out["features_mask"] = {}, {}
        for k in first["features"]:
            v, m = _pad([[p["features"].get(k) if p else None for p in row] for row in grid])
            out["features"][k], out["features_mask"][k] = v, m
    for name in ("audio", "vad"):
        if name in first:
            out[name], out[f"{name}_mask"] = _pad([[p[name] if p else None for p in row] for row in grid])
    if "video" in first:
        out["video"], out["video_mask"] = _pad_video([[p["video"] if p else None for p in row] for row in grid])
    if "words" in first:
        out["words"] = [[p["words"] if p else [] for p in row] for row in grid]
    return out
