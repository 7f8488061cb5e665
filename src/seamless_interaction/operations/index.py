"""The conversation index: per-file and per-interaction statistics from a tiny fraction of the bytes.

For every file id in scope the index reads only what its statistics need: the bundle json
(transcript, VAD, annotations), the npz's zip central directory and the npy headers of one array per
feature group (shapes, no array bytes), the WAV header, the MP4's top-level box headers and its
``moov`` (for the video frame rate), and member sizes from the tar member index. Per archive it picks
the cheaper route by estimated time (requests x latency + bytes / bandwidth):

* ``hub``: HTTP Range reads inside the Hub tar (the member index, then every small read of the
  archive merged into as few requests as gaps allow);
* ``cdn``: the per-file CDN objects (vad/transcript jsonl, annotation files, the first bytes of the
  .npy, .wav and .mp4 objects). Member sizes are then unknown (null).

An archive absent from the Hub always goes by the CDN. Results land per archive in
``parts/*.parquet`` as soon as the archive is done (atomic writes), so an interrupted build resumes
where it stopped; a rerun re-reads only archives whose size or sha256 changed. The catalog version
(sha256 of filelist.csv and the Hub commit) is stored with the index; a build for another version
starts over instead of mixing. Turn-taking measures come from :mod:`seamless_interaction.base.conversation`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from seamless_interaction.base import conversation as cv
from seamless_interaction.base import headers as hd
from seamless_interaction.base.errors import (
    IntegrityError,
    SeamlessError,
    TransferError,
)
from seamless_interaction.base.formats import parse_jsonl, read_wav_info
from seamless_interaction.catalog.assets import load_tables, source_cache_dir
from seamless_interaction.constants import ANNOTATION_TYPES, FEATURE_GROUPS
from seamless_interaction.remote.tarindex import index_cache_path, index_remote
from seamless_interaction.remote.urls import cdn_parts, hub_archive_url

if TYPE_CHECKING:
    from seamless_interaction.catalog.tables import Catalog
    from seamless_interaction.remote.transfer import Transfer

__all__ = [
    "ARCHIVE_COLUMNS",
    "FILE_COLUMNS",
    "INTERACTION_COLUMNS",
    "BuildReport",
    "IndexStaleError",
    "IndexVersion",
    "NoIndexError",
    "Route",
    "build_index",
    "catalog_version",
    "choose_route",
    "index_dir",
    "interaction_table",
    "read_meta",
]

logger = logging.getLogger(__name__)

# Bump when a column's meaning or the part layout changes: older indexes are rebuilt.
SCHEMA_VERSION = 1
# Range reads closer than this inside one archive share a request: a few KB of unwanted bytes
# cost less than another round trip.
MERGE_GAP = 16 * 1024
# Enough for ftyp + free + the mdat header of an MP4 (when moov comes first, it is read separately).
MP4_HEAD = 1024
WAV_HEAD = 1024
NPY_HEAD = 128  # numpy pads .npy headers to a multiple of 64 bytes; 128 covers every shape here
MOOV_MAX = 8 << 20
TAR_READAHEAD = 2048  # index hops: PAX + ustar headers are 1.5 KB, plus the start of the member
ARCHIVE_WORKERS = 4
RANGE_WORKERS = 8
# Placeholder media (FORMAT.md section 3): a WAV without samples or an MP4 without a video track.
PLACEHOLDER_MP4_MAX = 1024
# Default link model for the route choice when none is measured: Hub/CDN over a decent connection.
DEFAULT_LATENCY_S = 0.05
DEFAULT_BANDWIDTH_BPS = 50e6

FILE_COLUMNS: dict[str, pa.DataType] = {
    "file_id": pa.string(), "interaction_key": pa.string(), "label": pa.string(), "split": pa.string(),
    "batch": pa.int32(), "archive": pa.int32(), "vendor": pa.string(), "route": pa.string(),
    "duration_s": pa.float64(), "n_frames": pa.int64(), "n_frames_boxes": pa.int64(),
    "n_frames_movement": pa.int64(), "frame_rate": pa.float64(), "video_rate": pa.float64(),
    "frame_rate_ok": pa.bool_(), "speech_s": pa.float64(), "speech_ratio": pa.float64(),
    "n_vad_segments": pa.int64(), "n_words": pa.int64(), "n_untimed_words": pa.int64(),
    "words_per_minute": pa.float64(), "vad_empty": pa.bool_(), "has_transcript": pa.bool_(),
    "placeholder_media": pa.bool_(),
    **{f"has_{g}": pa.bool_() for g in FEATURE_GROUPS},
    "annotation_types": pa.string(), "n_annotation_types": pa.int32(),
    "json_bytes": pa.int64(), "mp4_bytes": pa.int64(), "npz_bytes": pa.int64(), "wav_bytes": pa.int64(),
    "npz_raw_bytes": pa.int64(),
}
# Kept beside file_stats (not a view column): each file's VAD, for interaction measures and the app.
VAD_COLUMNS = {"file_id": pa.string(), "vad_start": pa.list_(pa.float64()), "vad_end": pa.list_(pa.float64())}
INTERACTION_COLUMNS: dict[str, pa.DataType] = {
    "interaction_key": pa.string(), "file_id_a": pa.string(), "file_id_b": pa.string(),
    "duration_s": pa.float64(), "overlap_s": pa.float64(), "silence_s": pa.float64(), "n_turns": pa.int64(),
    "fto_n": pa.int64(), "fto_median_s": pa.float64(), "fto_p10_s": pa.float64(), "fto_p90_s": pa.float64(),
    "median_gap_s": pa.float64(), "median_overlap_s": pa.float64(), "n_overlaps": pa.int64(),
    "n_backchannels": pa.int64(), "n_interruptions": pa.int64(), "speech_share_a": pa.float64(),
    "longest_turn_s": pa.float64(), "complete_pair": pa.bool_(),
}
ARCHIVE_COLUMNS: dict[str, pa.DataType] = {
    "label": pa.string(), "split": pa.string(), "batch": pa.int32(), "archive": pa.int32(),
    "size": pa.int64(), "sha256": pa.string(), "members": pa.int64(), "n_files": pa.int64(),
    "route": pa.string(), "index_requests": pa.int64(), "index_bytes": pa.int64(),
}

ArchiveRef = tuple[str, str, int, int]


class NoIndexError(SeamlessError, FileNotFoundError):
    """A statistics table was asked for but no index has been built."""


class IndexStaleError(SeamlessError):
    """The index on disk was built for another catalog version (filelist or Hub commit)."""


@dataclass(frozen=True)
class IndexVersion:
    """What an index was built from: the filelist's sha256 and the Hub commit (None when unknown)."""

    filelist_sha256: str
    hub_commit: str | None
    schema: int = SCHEMA_VERSION

    def to_json(self) -> dict[str, Any]:
        return {"filelist_sha256": self.filelist_sha256, "hub_commit": self.hub_commit, "schema": self.schema}


@dataclass(frozen=True)
class Route:
    """The estimated cost of indexing one archive one way."""

    name: str  # "hub" or "cdn"
    requests: int
    bytes: int
    seconds: float


@dataclass
class BuildReport:
    """What a build did, for the closing note."""

    folder: Path
    archives: int = 0
    indexed: int = 0
    skipped: int = 0
    failed: list[str] = field(default_factory=list)
    routes: dict[str, int] = field(default_factory=dict)
    files: int = 0
    interactions: int = 0
    requests: int = 0
    bytes_read: int = 0
    archive_bytes: int = 0
    rebuilt: bool = False
    seconds: float = 0.0

    def summary(self) -> str:
        share = f" ({100 * self.bytes_read / self.archive_bytes:.3f} % of {self.archive_bytes} archive bytes)" \
            if self.archive_bytes else ""
        routes = ", ".join(f"{n} by {r}" for r, n in sorted(self.routes.items())) or "none"
        lines = [
            f"index in {self.folder}: {self.files} files, {self.interactions} interactions",
            f"{self.archives} archives in scope: {self.indexed} indexed ({routes}), {self.skipped} unchanged",
            f"read {self.bytes_read} bytes in {self.requests} requests{share} in {self.seconds:.1f} s",
        ]
        if self.rebuilt:
            lines.append("the catalog version changed since the last build: the index was rebuilt")
        if self.failed:
            lines.append(f"{len(self.failed)} archive(s) failed (rerun to retry): {'; '.join(self.failed[:3])}")
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------- layout
def index_dir(cache_dir: Path | str, assets: str, hf_url: str) -> Path:
    """The index folder of one catalog source and Hub endpoint, under ``cache_dir/index``."""
    digest = hashlib.sha256(f"{assets}\n{hf_url}".encode()).hexdigest()[:16]
    return Path(cache_dir) / "index" / f"{source_cache_dir(assets, cache_dir).name}-{digest}"


def read_meta(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return None


def _write_atomic(path: Path, write: Callable[[str], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_table(path: Path, table: pa.Table) -> None:
    _write_atomic(path, lambda tmp: pq.write_table(table, tmp))


def _table(rows: Sequence[dict[str, Any]], schema: dict[str, pa.DataType]) -> pa.Table:
    return pa.table({k: pa.array([r.get(k) for r in rows], type=t) for k, t in schema.items()})


def _part_name(ref: ArchiveRef) -> str:
    return f"{ref[0]}_{ref[1]}_{ref[2]:04d}_{ref[3]:04d}.parquet"


# -------------------------------------------------------------------------------------- versions
def catalog_version(transfer: Transfer, assets: str, cache_dir: Path | str, hf_url: str) -> IndexVersion:
    """sha256 of the catalog's filelist.csv (as cached locally) and the Hub commit (None if unknown)."""
    paths = load_tables(assets, cache_dir)
    h = hashlib.sha256()
    with open(paths["filelist.csv"], "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return IndexVersion(h.hexdigest(), _hub_commit(transfer, hf_url))


def _hub_commit(transfer: Transfer, hf_url: str) -> str | None:
    # ".../datasets/{repo}/resolve/{rev}" -> ".../api/datasets/{repo}/revision/{rev}" (huggingface_hub's
    # dataset_info call); any other layout, or no answer, leaves the commit unknown.
    head, sep, rev = hf_url.rstrip("/").rpartition("/resolve/")
    root, sep2, repo = head.rpartition("/datasets/")
    if not sep or not sep2:
        return None
    try:
        data = transfer.fetch_bytes(f"{root}/api/datasets/{repo}/revision/{rev}", optional=True)
        return str(json.loads(data)["sha"]) if data else None
    except (TransferError, ValueError, KeyError, TypeError):
        logger.info("no Hub commit from %s; the index is versioned by the filelist only", hf_url)
        return None


# ------------------------------------------------------------------------------------ range reads
class _Reader:
    """Counted Range reads of one URL, with small reads merged and run concurrently."""

    def __init__(self, transfer: Transfer, url: str, workers: int = RANGE_WORKERS):
        self.transfer = transfer
        self.url = url
        self.workers = workers
        self.requests = 0
        self.bytes = 0
        self._lock = threading.Lock()

    def read(self, start: int, end: int, *, optional: bool = False) -> bytes | None:
        data = self.transfer.fetch_bytes(self.url, start=start, end=end, optional=optional)
        with self._lock:
            self.requests += 1
            self.bytes += len(data or b"")
        return data

    def read_many(self, spans: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """Bytes of every ``[start, end)`` span, reading merged runs of close spans once each."""
        wanted = sorted({s for s in spans if s[1] > s[0]})
        runs: list[list[int]] = []
        for a, b in wanted:
            if runs and a - runs[-1][1] <= MERGE_GAP:
                runs[-1][1] = max(runs[-1][1], b)
            else:
                runs.append([a, b])

        def fetch(run: list[int]) -> tuple[int, bytes]:
            data = self.read(run[0], run[1])
            if data is None or len(data) != run[1] - run[0]:
                raise IntegrityError(f"{self.url}: short read of [{run[0]}, {run[1]})")
            return run[0], data

        if len(runs) > 1 and self.workers > 1:
            with ThreadPoolExecutor(max_workers=min(self.workers, len(runs))) as pool:
                got = list(pool.map(fetch, runs))
        else:
            got = [fetch(r) for r in runs]
        out: dict[tuple[int, int], bytes] = {}
        for a, b in wanted:
            for start, data in got:
                if start <= a and b <= start + len(data):
                    out[(a, b)] = data[a - start : b - start]
                    break
        return out


# ------------------------------------------------------------------------------- one file's stats
@dataclass
class _Raw:
    """What was read about one file id, before it becomes a row."""

    file_id: str
    doc: dict[str, Any] | None = None  # bundle json (hub) or the pieces of it (cdn)
    wav: Any = None  # base.formats.WavInfo
    video_rate: float | None = None
    mp4_has_video: bool = False
    mp4_size: int | None = None
    groups: dict[str, int | None] = field(default_factory=dict)  # feature group -> rows (None: absent)
    sizes: dict[str, int | None] = field(default_factory=dict)


def _file_row(raw: _Raw, rec: Any, route: str) -> tuple[dict[str, Any], dict[str, Any]]:
    doc = raw.doc or {}
    vad = doc.get("metadata:vad") or []
    transcript = doc.get("metadata:transcript")
    duration = raw.wav.duration_s if raw.wav is not None else None
    m = cv.file_measures(vad, transcript, duration)
    n_frames = raw.groups.get("smplh")
    frame_rate = n_frames / duration if n_frames is not None and duration else None
    rate_ok = None
    if frame_rate is not None and raw.video_rate:
        rate_ok = abs(frame_rate - raw.video_rate) <= 0.01 * raw.video_rate
    annotations = sorted(k.split(":", 1)[1] for k in doc if k.startswith("annotations:"))
    placeholder = (raw.wav is not None and raw.wav.frames == 0) or (
        raw.mp4_size is not None and raw.mp4_size <= PLACEHOLDER_MP4_MAX and not raw.mp4_has_video)
    row = {
        "file_id": raw.file_id, "interaction_key": rec.interaction_key, "label": rec.label, "split": rec.split,
        "batch": rec.batch, "archive": rec.archive, "vendor": rec.vendor, "route": route,
        "duration_s": duration, "n_frames": n_frames, "n_frames_boxes": raw.groups.get("boxes_and_keypoints"),
        "n_frames_movement": raw.groups.get("movement"), "frame_rate": frame_rate, "video_rate": raw.video_rate,
        "frame_rate_ok": rate_ok, "speech_s": m.speech_s, "speech_ratio": m.speech_ratio,
        "n_vad_segments": m.n_vad_segments, "n_words": m.n_words, "n_untimed_words": m.n_untimed_words,
        "words_per_minute": m.words_per_minute, "vad_empty": m.vad_empty,
        "has_transcript": transcript is not None, "placeholder_media": placeholder,
        **{f"has_{g}": g in raw.groups for g in FEATURE_GROUPS},
        "annotation_types": ",".join(annotations), "n_annotation_types": len(annotations),
        **{f"{ext}_bytes": raw.sizes.get(ext) for ext in ("json", "mp4", "npz", "wav")},
        "npz_raw_bytes": raw.sizes.get("npz_raw"),
    }
    spurts = cv.talkspurts(cv.vad_segments(vad))
    vad_row = {"file_id": raw.file_id, "vad_start": [s for s, _ in spurts], "vad_end": [e for _, e in spurts]}
    return row, vad_row


def _group_of(npz_name: str) -> str:
    return npz_name.split(":", 1)[0]


def _representatives(names: Iterable[str]) -> dict[str, str]:
    """One frame-aligned array per feature group (hypernet features have one row per 15 frames)."""
    out: dict[str, str] = {}
    for name in sorted(names):
        group = _group_of(name)
        if group in FEATURE_GROUPS and group not in out and "hypernet" not in name:
            out[group] = name
    return out


# ------------------------------------------------------------------------------------ hub route
def _index_hub_archive(transfer: Transfer, url: str, ids: Sequence[str], cache_dir: Path | str,
                       ) -> tuple[list[_Raw], int, int, int]:
    """Stats of ``ids`` out of one Hub tar: (raws, requests, bytes, members)."""
    cached = index_cache_path(cache_dir, url).exists()
    index = index_remote(transfer, url, cache_dir=cache_dir, readahead=TAR_READAHEAD)
    requests = 0 if cached else 1 + max(1, len(index.members))  # HEAD + about one hop per member
    nbytes = index.header_bytes
    reader = _Reader(transfer, index.read_url or url)
    members = {m.name: m for m in index.files()}
    wanted = set(ids)
    by_id: dict[str, dict[str, Any]] = {}
    for name, m in members.items():
        fid, _, ext = name.partition(".")
        if fid in wanted:
            by_id.setdefault(fid, {})[ext] = m

    # phase 1: json whole, the first bytes of mp4 and wav, the tail of the npz
    spans: dict[tuple[str, str], tuple[int, int]] = {}
    for fid, ms in by_id.items():
        if "json" in ms:
            spans[(fid, "json")] = (ms["json"].offset_data, ms["json"].end)
        if "mp4" in ms:
            spans[(fid, "mp4")] = (ms["mp4"].offset_data, ms["mp4"].offset_data + min(ms["mp4"].size, MP4_HEAD))
        if "wav" in ms:
            spans[(fid, "wav")] = (ms["wav"].offset_data, ms["wav"].offset_data + min(ms["wav"].size, WAV_HEAD))
        if "npz" in ms:
            n = min(ms["npz"].size, hd.EOCD_READ)
            spans[(fid, "npz")] = (ms["npz"].end - n, ms["npz"].end)
    got = reader.read_many(spans.values())
    raws: dict[str, _Raw] = {}
    second: dict[tuple[str, str], tuple[int, int]] = {}
    later: dict[str, dict[str, Any]] = {}
    for fid in ids:
        raw = raws[fid] = _Raw(fid)
        ms = by_id.get(fid, {})
        raw.sizes = {ext: (ms[ext].size if ext in ms else None) for ext in ("json", "mp4", "npz", "wav")}
        if "json" in ms:
            raw.doc = json.loads(got[spans[(fid, "json")]])
        if "wav" in ms and ms["wav"].size:
            raw.wav = read_wav_info(got[spans[(fid, "wav")]], name=f"{fid}.wav")
        if "mp4" in ms:
            m = ms["mp4"]
            raw.mp4_size = m.size
            base = m.offset_data
            boxes = hd.mp4_top_boxes(lambda o, n, b=base: reader.read(b + o, b + o + n) or b"", m.size,
                                     head=got[spans[(fid, "mp4")]])
            if b"moov" in boxes:
                off, size = boxes[b"moov"]
                second[(fid, "moov")] = (base + off, base + off + min(size, MOOV_MAX))
        if "npz" in ms:
            m = ms["npz"]
            base = m.offset_data
            entries = hd.zip_directory(lambda o, n, b=base: reader.read(b + o, b + o + n) or b"", m.size,
                                       where=f"{fid}.npz", tail=got[spans[(fid, "npz")]])
            raw.sizes["npz_raw"] = sum(e.size for e in entries)  # the npy bytes, as the CDN serves them
            reps = _representatives(e.name.removesuffix(".npy") for e in entries)
            by_name = {e.name.removesuffix(".npy"): e for e in entries}
            for group in FEATURE_GROUPS:
                if any(_group_of(e.name) == group for e in entries):
                    raw.groups[group] = None
            later[fid] = {}
            for group, name in reps.items():
                e = by_name[name]
                start = base + e.local_offset
                end = min(m.end, start + hd.LOCAL_READ)
                second[(fid, "npy:" + group)] = (start, end)
                later[fid][group] = e
    got2 = reader.read_many(second.values())
    for fid, raw in raws.items():
        if (fid, "moov") in second:
            moov = got2[second[(fid, "moov")]]
            raw.video_rate = hd.mp4_video_rate(moov)
            raw.mp4_has_video = raw.video_rate is not None
        for group, e in later.get(fid, {}).items():
            span = second[(fid, "npy:" + group)]
            header = hd.npy_header(got2[span], e.method, where=f"{fid}.npz:{e.name}")
            if header is None:  # an unusually long header: read the whole local prefix
                more = reader.read(span[0], min(span[0] + 64 * hd.LOCAL_READ, by_id[fid]["npz"].end)) or b""
                header = hd.npy_header(more, e.method, where=f"{fid}.npz:{e.name}")
            raw.groups[group] = header.shape[0] if header and header.shape else None
    return list(raws.values()), requests + reader.requests, nbytes + reader.bytes, len(index.members)


# ------------------------------------------------------------------------------------ cdn route
def _index_cdn_file(transfer: Transfer, cdn_url: str, rec: Any) -> tuple[_Raw, int, int]:
    """Stats of one file id from its CDN objects: (raw, requests, bytes)."""
    parts = {p.name: p for p in cdn_parts(cdn_url, rec.label, rec.split, rec.file_id)}
    raw = _Raw(rec.file_id)
    requests = nbytes = 0

    def get(url: str, start: int | None = None, end: int | None = None) -> bytes | None:
        nonlocal requests, nbytes
        data = transfer.fetch_bytes(url, optional=True, start=start, end=end)
        requests += 1
        nbytes += len(data or b"")
        return data

    def head(url: str):
        nonlocal requests
        requests += 1
        return transfer.head(url, optional=True)

    doc: dict[str, Any] = {}
    vad = get(parts["metadata:vad"].url)
    doc["metadata:vad"] = parse_jsonl(vad, name=f"{rec.file_id} vad") if vad is not None else []
    transcript = get(parts["metadata:transcript"].url)
    if transcript is not None:
        doc["metadata:transcript"] = parse_jsonl(transcript, name=f"{rec.file_id} transcript")
    flags = {"1P": rec.has_annotation_1p, "3P": rec.has_annotation_3p}
    for kind in ANNOTATION_TYPES:
        if flags[kind[:2]] is False:
            continue  # the filelist says there is none: no request
        data = get(parts[f"annotations:{kind}"].url)
        if data is not None:
            doc[f"annotations:{kind}"] = parse_jsonl(data, name=f"{rec.file_id} {kind}")
    raw.doc = doc
    for group, names in FEATURE_GROUPS.items():
        rep = _representatives(f"{group}:{n}" for n in names).get(group)
        if rep is None:
            continue
        data = get(parts[rep].url, 0, NPY_HEAD)
        if data is None:
            continue
        header = hd.parse_npy(data, where=parts[rep].url)
        if header is None:
            header = hd.parse_npy(get(parts[rep].url, 0, 64 * NPY_HEAD) or b"", where=parts[rep].url)
        raw.groups[group] = header.shape[0] if header and header.shape else None
    info = head(parts["wav"].url)
    raw.sizes = {"json": None, "npz": None, "mp4": None, "wav": info.size if info is not None else None}
    if info is not None and info.size:
        raw.wav = read_wav_info(get(parts["wav"].url, 0, min(info.size, WAV_HEAD)) or b"", name=f"{rec.file_id}.wav")
    info = head(parts["mp4"].url)
    raw.sizes["mp4"] = info.size if info is not None else None
    if info is not None and info.size:
        url, size = parts["mp4"].url, info.size
        raw.mp4_size = size
        first = get(url, 0, min(size, MP4_HEAD)) or b""
        boxes = hd.mp4_top_boxes(lambda o, n: get(url, o, o + n) or b"", size, head=first)
        if b"moov" in boxes:
            off, n = boxes[b"moov"]
            raw.video_rate = hd.mp4_video_rate(get(url, off, off + min(n, MOOV_MAX)) or b"")
            raw.mp4_has_video = raw.video_rate is not None
    return raw, requests, nbytes


# ---------------------------------------------------------------------------------- route choice
def choose_route(n_files: int, members: int | None, *, index_cached: bool, on_hub: bool,
                 latency_s: float = DEFAULT_LATENCY_S, bandwidth_bps: float = DEFAULT_BANDWIDTH_BPS,
                 workers: int = RANGE_WORKERS) -> tuple[Route, list[Route]]:
    """The cheaper way to index an archive of ``n_files`` ids, and every estimate considered.

    Hub: one HEAD plus about one 4 KB hop per member to index the tar (none when cached), then two
    rounds of merged reads per archive (about 2 and 5 requests per file id). CDN: per file id about
    14 requests (jsonl, annotations, 4 npy headers, 2 HEADs and 4 reads for the wav and mp4).
    Requests run ``workers`` at a time, so latency counts once per round of ``workers``.
    """
    members = members if members is not None else 4 * n_files
    est: list[Route] = []
    if on_hub:
        hops = 0 if index_cached else 1 + members
        req = hops + 7 * n_files
        nbytes = hops * TAR_READAHEAD + n_files * (2 * hd.EOCD_READ + MP4_HEAD + WAV_HEAD + 4 * hd.LOCAL_READ + 16384)
        # hops are sequential (each header says where the next is); the rest runs in parallel
        secs = hops * latency_s + (-(-7 * n_files // workers)) * latency_s + nbytes / bandwidth_bps
        est.append(Route("hub", req, nbytes, secs))
    req = 14 * n_files
    nbytes = n_files * (4 * NPY_HEAD + MP4_HEAD + WAV_HEAD + 16384 + 8192)
    secs = req * latency_s + nbytes / bandwidth_bps  # one file's requests are sequential
    est.append(Route("cdn", req, nbytes, secs))
    return min(est, key=lambda r: r.seconds), est


# ------------------------------------------------------------------------------------- the build
def _scope(catalog: Catalog, label: str | None, split: str | None, batch: int | None,
           archives: Iterable[ArchiveRef] | None) -> dict[ArchiveRef, list[str]]:
    groups: dict[ArchiveRef, list[str]] = {}
    if archives is not None:
        for ref in archives:
            ref = (ref[0], ref[1], int(ref[2]), int(ref[3]))
            groups[ref] = catalog.archive_file_ids(*ref)
        return groups
    for lab, spl in catalog.labels_splits():
        if (label and lab != label) or (split and spl != split):
            continue
        for b in catalog.batches(lab, spl):
            if batch is not None and b != int(batch):
                continue
            for a in catalog.archives(lab, spl, b):
                groups[(lab, spl, b, a)] = catalog.archive_file_ids(lab, spl, b, a)
    return groups


def build_index(
    transfer: Transfer,
    catalog: Catalog,
    *,
    assets: str,
    hf_url: str,
    cdn_url: str,
    cache_dir: Path | str,
    label: str | None = None,
    split: str | None = None,
    batch: int | None = None,
    archives: Iterable[ArchiveRef] | None = None,
    route: str = "auto",
    latency_s: float = DEFAULT_LATENCY_S,
    bandwidth_bps: float = DEFAULT_BANDWIDTH_BPS,
    workers: int = ARCHIVE_WORKERS,
    quiet: bool = False,
    version: IndexVersion | None = None,
) -> BuildReport:
    """Build or update the index for the archives in scope (every archive by default).

    ``route`` forces ``"hub"`` or ``"cdn"`` instead of the estimate (an archive absent from the Hub
    always goes by the CDN). Archives already indexed with the same size and sha256 are skipped.
    """
    if route not in ("auto", "hub", "cdn"):
        raise ValueError(f"route {route!r}: expected auto, hub or cdn")
    t0 = time.monotonic()
    folder = index_dir(cache_dir, assets, hf_url)
    parts_dir = folder / "parts"
    report = BuildReport(folder)
    version = version or catalog_version(transfer, assets, cache_dir, hf_url)
    meta = read_meta(folder)
    if meta is not None and meta.get("version") != version.to_json():
        logger.warning("index at %s was built for another catalog version; rebuilding", folder)
        shutil.rmtree(folder, ignore_errors=True)
        report.rebuilt = True
    parts_dir.mkdir(parents=True, exist_ok=True)
    _write_atomic(folder / "meta.json", lambda tmp: Path(tmp).write_text(json.dumps(
        {"version": version.to_json(), "assets": assets, "hf_url": hf_url, "complete": False}, indent=2)))

    scope = _scope(catalog, label, split, batch, archives)
    report.archives = len(scope)
    lock = threading.Lock()

    def one(item: tuple[ArchiveRef, list[str]]) -> None:
        ref, ids = item
        url = hub_archive_url(hf_url, *ref)
        part = parts_dir / _part_name(ref)
        info = transfer.head(url, optional=True)
        size = info.size if info is not None else None
        # The Hub's sha256 (X-Linked-Etag), never a redirect target's ETag: that one is not the content
        # hash for Xet-stored files. Without a sha256 the archive is re-read (it costs headers only).
        sha = info.sha256 if info is not None else None
        old = _part_meta(part)
        same_ids = old is not None and sorted(old.get("file_ids", [])) == sorted(ids)
        unchanged = same_ids and (
            (info is None and old.get("route") == "cdn" and old.get("size") is None)  # still CDN only
            or (sha is not None and old.get("sha256") == sha and old.get("size") == size))
        if unchanged:
            with lock:
                report.skipped += 1
                report.archive_bytes += size or 0
            return
        cached = index_cache_path(cache_dir, url).exists()
        best, _ = choose_route(len(ids), None, index_cached=cached, on_hub=info is not None,
                               latency_s=latency_s, bandwidth_bps=bandwidth_bps)
        chosen = best.name if route == "auto" or info is None else route
        recs = {fid: catalog.record(fid) for fid in ids}
        if chosen == "hub":
            raws, req, nbytes, members = _index_hub_archive(transfer, url, ids, cache_dir)
            req += 1  # the HEAD above
        else:
            raws, req, nbytes, members = [], 1, 0, None
            for fid in ids:
                raw, r, b = _index_cdn_file(transfer, cdn_url, recs[fid])
                raws.append(raw)
                req += r
                nbytes += b
        rows, vads = zip(*(_file_row(raw, recs[raw.file_id], chosen) for raw in raws)) if raws else ((), ())
        arch = {"label": ref[0], "split": ref[1], "batch": ref[2], "archive": ref[3], "size": size, "sha256": sha,
                "members": members, "n_files": len(ids), "route": chosen, "index_requests": req,
                "index_bytes": nbytes}
        table = _table(rows, FILE_COLUMNS)
        vad_table = _table(vads, VAD_COLUMNS)
        combined = table.append_column("vad_start", vad_table["vad_start"]).append_column("vad_end", vad_table["vad_end"])
        combined = combined.replace_schema_metadata({b"archive": json.dumps({**arch, "file_ids": list(ids)}).encode()})
        _write_table(part, combined)
        with lock:
            report.indexed += 1
            report.routes[chosen] = report.routes.get(chosen, 0) + 1
            report.requests += req
            report.bytes_read += nbytes
            report.archive_bytes += size or 0

    items = sorted(scope.items())
    bar = _bar(len(items), quiet)
    try:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            futures = {pool.submit(one, item): item[0] for item in items}
            for fut, ref in futures.items():
                try:
                    fut.result()
                except (SeamlessError, OSError, ValueError) as exc:
                    report.failed.append(f"{'/'.join(map(str, ref))}: {exc}")
                    logger.warning("indexing %s failed: %s", ref, exc)
                bar.update(1)
    finally:
        bar.close()
    _consolidate(folder, catalog, report)
    meta_doc = {"version": version.to_json(), "assets": assets, "hf_url": hf_url, "complete": not report.failed,
                "built_at": time.time()}
    _write_atomic(folder / "meta.json", lambda tmp: Path(tmp).write_text(json.dumps(meta_doc, indent=2)))
    report.seconds = time.monotonic() - t0
    return report


def _bar(total: int, quiet: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="archive", desc="index", disable=quiet, leave=False)


def _part_meta(path: Path) -> dict[str, Any] | None:
    try:
        md = pq.read_schema(path).metadata or {}
        return json.loads(md[b"archive"])
    except (OSError, KeyError, ValueError, pa.ArrowInvalid):
        return None


def _consolidate(folder: Path, catalog: Catalog, report: BuildReport) -> None:
    """Merge the per-archive parts into file_stats, vad, interaction_stats and archives tables."""
    parts = sorted((folder / "parts").glob("*.parquet"))
    tables, arch_rows = [], []
    for p in parts:
        meta = _part_meta(p)
        if meta is None:
            continue
        tables.append(pq.read_table(p))
        arch_rows.append(meta)
    if tables:
        merged = pa.concat_tables(tables).sort_by("file_id")
    else:
        merged = _table([], {**FILE_COLUMNS, "vad_start": VAD_COLUMNS["vad_start"], "vad_end": VAD_COLUMNS["vad_end"]})
    files = merged.select(list(FILE_COLUMNS))
    vad = merged.select(list(VAD_COLUMNS))
    _write_table(folder / "file_stats.parquet", files)
    _write_table(folder / "vad.parquet", vad)
    inter = interaction_table(catalog, files, vad)
    _write_table(folder / "interaction_stats.parquet", inter)
    indexed = {(r["label"], r["split"], r["batch"], r["archive"]): r for r in arch_rows}
    rows = []
    for lab, spl in catalog.labels_splits():
        for b in catalog.batches(lab, spl):
            for a in catalog.archives(lab, spl, b):
                r = indexed.get((lab, spl, b, a), {})
                rows.append({"label": lab, "split": spl, "batch": b, "archive": a, "size": r.get("size"),
                             "sha256": r.get("sha256"), "members": r.get("members"),
                             "n_files": len(catalog.archive_file_ids(lab, spl, b, a)), "route": r.get("route"),
                             "index_requests": r.get("index_requests"), "index_bytes": r.get("index_bytes")})
    _write_table(folder / "archives.parquet", _table(rows, ARCHIVE_COLUMNS))
    report.files = files.num_rows
    report.interactions = inter.num_rows


def interaction_table(catalog: Catalog, files: pa.Table, vad: pa.Table) -> pa.Table:
    """interaction_stats rows for every interaction with at least one indexed file.

    Partner A is the first file id in sorted order. A pair counts as complete when the catalog lists
    two files and both are indexed; otherwise only ``duration_s`` is filled and ``complete_pair`` is false.
    """
    ids = files["file_id"].to_pylist()
    dur = dict(zip(ids, files["duration_s"].to_pylist()))
    spans = {f: list(zip(s, e)) for f, s, e in zip(vad["file_id"].to_pylist(), vad["vad_start"].to_pylist(),
                                                   vad["vad_end"].to_pylist())}
    keys = sorted({f[:19] for f in ids})
    rows = []
    for key in keys:
        try:
            members = cv.order_pair(catalog.interaction_file_ids(key))
        except SeamlessError:
            members = tuple(sorted(f for f in ids if f.startswith(key)))
        present = [f for f in members if f in dur]
        complete = len(members) == 2 and len(present) == 2
        durations = [dur[f] for f in present if dur[f] is not None]
        duration = max(durations) if durations else None
        if complete:
            m = cv.interaction_measures(spans[members[0]], spans[members[1]], duration)
        else:
            m = cv.interaction_measures(None, None, duration, complete_pair=False)
        rows.append({"interaction_key": key, "file_id_a": members[0] if members else None,
                     "file_id_b": members[1] if len(members) > 1 else None, **m.as_dict()})
    return _table(rows, INTERACTION_COLUMNS)
