"""Download plans: per archive, the route that brings a selection home fastest, estimated before a byte moves.

Three routes can bring a file id home (see :mod:`seamless_interaction.routes`):

* ``tar``: the whole Hub archive, extracted (every file id and member of the archive);
* ``range``: only the selected members of the selected ids, by HTTP Range reads of the Hub archive;
* ``cdn``: the per-file CDN objects of the selected ids (every modality: the CDN route assembles
  whole bundles).

For each archive holding selected ids the plan estimates, from the tar member index (header reads,
cached), the index's sizes where it has them, and a link model (latency, per-connection bandwidth,
connections; given or measured), the bytes, requests and time of each route, and picks the fastest.
Time model: each request costs one latency plus its bytes over one connection's bandwidth, and the
requests start in the order the route issues them, each on the first free connection (the CDN route
sends every small part before the audio and the video; the member fetcher runs its merged ranges on 8
workers; the whole tar streams in the transfer engine's 8 MiB segments). The Hub's redirect adds round
trips before the bytes flow. Archives are fetched one after another, so their times add up.
"""

from __future__ import annotations

import heapq
import logging
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from seamless_interaction.base.errors import SeamlessError, TransferError
from seamless_interaction.constants import ANNOTATION_TYPES, BUNDLE_EXTENSIONS, FEATURE_GROUPS
from seamless_interaction.remote.tarindex import index_remote
from seamless_interaction.remote.urls import hub_archive_url
from seamless_interaction.routes.members import DEFAULT_WORKERS as RANGE_WORKERS
from seamless_interaction.routes.members import plan_members, plan_ranges

if TYPE_CHECKING:
    from seamless_interaction.catalog.tables import Catalog
    from seamless_interaction.local.manifest import Manifest
    from seamless_interaction.remote.transfer import Transfer

__all__ = ["ROUTES", "ArchivePlan", "DownloadPlan", "Estimate", "LinkModel", "execute_plan", "measure_link",
           "plan_download"]

logger = logging.getLogger(__name__)

ROUTES = ("tar", "range", "cdn")
SEGMENT_BYTES = 8 << 20  # the transfer engine's segment size (Transfer.segment_bytes)
# CDN objects per file id: wav, mp4, 41 npy (with movement_v4 probes), transcript, vad, 5 annotations.
CDN_OBJECTS = 2 + sum(len(v) for v in FEATURE_GROUPS.values()) + 2 + len(ANNOTATION_TYPES)


@dataclass(frozen=True)
class LinkModel:
    """Latency (s per request), bandwidth per connection (bytes/s) and connections used at once."""

    latency_s: float = 0.05
    bandwidth_bps: float = 50e6
    connections: int = 16

    def seconds(self, sizes: Sequence[int], *, sequential: int = 0, workers: int | None = None) -> float:
        """Time of requests of ``sizes`` bytes started in this order on the first free connection
        (how the transfer engine and the member fetcher schedule them), plus ``sequential`` round trips."""
        conns = max(1, min(self.connections, workers or self.connections))
        free = [0.0] * conns
        for s in sizes:
            t = heapq.heappop(free)
            heapq.heappush(free, t + self.latency_s + s / self.bandwidth_bps)
        return sequential * self.latency_s + max(free)


@dataclass(frozen=True)
class Estimate:
    bytes: int
    requests: int
    seconds: float

    def __add__(self, other: Estimate) -> Estimate:
        return Estimate(self.bytes + other.bytes, self.requests + other.requests, self.seconds + other.seconds)


@dataclass
class ArchivePlan:
    """One archive: the selected ids, every feasible route's estimate, and the route chosen."""

    ref: tuple[str, str, int, int]
    file_ids: list[str]
    estimates: dict[str, Estimate]
    route: str

    @property
    def chosen(self) -> Estimate:
        return self.estimates[self.route]


@dataclass
class DownloadPlan:
    """Per-archive routes for a selection, with totals against each single-route strategy."""

    archives: list[ArchivePlan]
    modalities: tuple[str, ...]
    link: LinkModel
    notes: list[str] = field(default_factory=list)

    def total(self, route: str | None = None) -> Estimate | None:
        """The plan's total (``route=None``), or the total if every archive went by ``route``
        (None when some archive cannot go that way, e.g. it is absent from the Hub)."""
        out = Estimate(0, 0, 0.0)
        for a in self.archives:
            est = a.chosen if route is None else a.estimates.get(route)
            if est is None:
                return None
            out = out + est
        return out

    def summary(self) -> str:
        head = (f"plan for {sum(len(a.file_ids) for a in self.archives)} file ids in {len(self.archives)} archives, "
                f"members {'+'.join(self.modalities)}; link: {self.link.latency_s * 1000:.0f} ms, "
                f"{self.link.bandwidth_bps / 1e6:.1f} MB/s per connection x {self.link.connections}")
        lines = [head]
        lines.append(f"{'archive':<28} {'ids':>4}  {'route':<6} {'bytes':>12} {'requests':>8} {'est. s':>8}")
        for a in self.archives:
            e = a.chosen
            lines.append(f"{'/'.join(map(str, a.ref)):<28} {len(a.file_ids):>4}  {a.route:<6} {e.bytes:>12} "
                         f"{e.requests:>8} {e.seconds:>8.2f}")
        best = self.total()
        lines.append(f"{'total (this plan)':<34} {'':<6} {best.bytes:>12} {best.requests:>8} {best.seconds:>8.2f}")
        for r in ROUTES:
            t = self.total(r)
            text = "not possible (archive missing on the Hub)" if t is None else \
                f"{t.bytes:>12} {t.requests:>8} {t.seconds:>8.2f}"
            lines.append(f"{'all ' + r:<34} {'':<6} {text}")
        lines += self.notes
        return "\n".join(lines)


def measure_link(transfer: Transfer, url: str, *, probe_bytes: int = 1 << 20, connections: int = 16) -> LinkModel:
    """Latency from three 1-byte Range reads (the fastest), bandwidth from one ``probe_bytes`` read,
    both on the redirect target of ``url`` (a Hub resolve URL would count its redirect too)."""
    info = transfer.head(url)
    url = (info.final_url if info is not None else None) or url
    lat = []
    for _ in range(3):
        t0 = time.perf_counter()
        transfer.fetch_bytes(url, start=0, end=1)
        lat.append(time.perf_counter() - t0)
    latency = min(lat)
    t0 = time.perf_counter()
    data = transfer.fetch_bytes(url, start=0, end=probe_bytes) or b""
    took = max(1e-6, time.perf_counter() - t0 - latency)
    return LinkModel(latency, max(1.0, len(data) / took), connections)


def _cdn_estimate(sizes: dict[str, dict[str, int | None]], ids: Sequence[str], link: LinkModel) -> Estimate:
    # The CDN route starts every id's small parts first, then the audio, then the video (routes.cdn).
    small: list[int] = []
    audio: list[int] = []
    video: list[int] = []
    n_npy = CDN_OBJECTS - 2 - 2 - len(ANNOTATION_TYPES)
    for fid in ids:
        s = sizes.get(fid, {})
        npz = s.get("npz_raw") or s.get("npz") or 0
        json_size = s.get("json") or 0
        small += [npz // n_npy] * n_npy + [json_size // 2] * 2 + [0] * len(ANNOTATION_TYPES)
        audio.append(s.get("wav") or 0)
        video.append(s.get("mp4") or 0)
    objs = small + audio + video
    return Estimate(sum(objs), len(objs), link.seconds(objs))


def plan_download(
    transfer: Transfer,
    catalog: Catalog,
    hf_url: str,
    file_ids: Iterable[str],
    *,
    modalities: Sequence[str] = BUNDLE_EXTENSIONS,
    link: LinkModel | None = None,
    cache_dir: Path | str | None = None,
    known_sizes: dict[str, dict[str, int | None]] | None = None,
) -> DownloadPlan:
    """Estimate every route for each archive holding ``file_ids`` and choose the fastest.

    ``known_sizes`` (file id -> {"json"|"mp4"|"npz"|"wav"|"npz_raw": bytes}, from the index) fills in
    what the tar index cannot give: ``npz_raw`` (the uncompressed npy bytes the CDN serves) and the
    sizes of ids whose archive is missing from the Hub. Without it the npz member size stands in.
    """
    link = link or LinkModel()
    groups: dict[tuple[str, str, int, int], list[str]] = {}
    for fid in dict.fromkeys(file_ids):
        r = catalog.record(fid)
        groups.setdefault((r.label, r.split, r.batch, r.archive), []).append(fid)
    plans: list[ArchivePlan] = []
    notes: list[str] = []
    for ref, ids in sorted(groups.items()):
        url = hub_archive_url(hf_url, *ref)
        est: dict[str, Estimate] = {}
        sizes: dict[str, dict[str, int | None]] = {}
        try:
            index = index_remote(transfer, url, cache_dir=cache_dir)
        except TransferError as exc:
            if exc.status not in (403, 404):
                raise
            index = None
            notes.append(f"{'/'.join(map(str, ref))}: not on the Hub; CDN only")
        if index is not None:
            for m in index.files():
                fid, _, ext = m.name.partition(".")
                sizes.setdefault(fid, {})[ext] = m.size
            pieces = max(1, math.ceil(index.total_size / SEGMENT_BYTES)) if index.total_size >= 2 * SEGMENT_BYTES else 1
            seg = [index.total_size // pieces] * pieces
            # a HEAD through the Hub's redirect (2 round trips), the GET's redirect, then the segments
            est["tar"] = Estimate(index.total_size, pieces + 2, link.seconds(seg, sequential=3))
            chosen = plan_members(index, ids, modalities)
            ranges = plan_ranges(chosen)
            # the tar index's HEAD through the redirect, then the ranges on the redirect target
            est["range"] = Estimate(sum(r.size for r in ranges), len(ranges) + 2,
                                    link.seconds([r.size for r in ranges], sequential=2, workers=RANGE_WORKERS))
        for fid in ids:
            for k, v in (known_sizes or {}).get(fid, {}).items():
                if v is not None:
                    sizes.setdefault(fid, {}).setdefault(k, v)
        if index is not None or any(sizes.get(fid, {}).get("mp4") for fid in ids):
            est["cdn"] = _cdn_estimate(sizes, ids, link)
        else:
            est["cdn"] = Estimate(0, CDN_OBJECTS * len(ids), link.seconds([0] * CDN_OBJECTS * len(ids)))
            notes.append(f"{'/'.join(map(str, ref))}: sizes unknown (not on the Hub, not indexed); CDN bytes not estimated")
        route = min(est, key=lambda r: (est[r].seconds, ROUTES.index(r)))
        plans.append(ArchivePlan(ref, ids, est, route))
    return DownloadPlan(plans, tuple(modalities), link, notes)


def execute_plan(
    plan: DownloadPlan,
    transfer: Transfer,
    catalog: Catalog,
    *,
    hf_url: str,
    cdn_url: str,
    local_dir: Path | str,
    cache_dir: Path | str | None = None,
    manifest: Manifest | None = None,
) -> list[Path]:
    """Run each archive's chosen route with the integrity engine; returns the folders or files written."""
    from seamless_interaction.routes import cdn, hub, members

    out: list[Path] = []
    for a in plan.archives:
        if a.route == "tar":
            res = hub.download_archive(transfer, hf_url, Path(local_dir), *a.ref, extract=True, manifest=manifest)
            out.append(res.path)
        elif a.route == "range":
            out += members.fetch_archive_members(transfer, None, hf_url, local_dir, *a.ref, file_ids=a.file_ids,
                                                 modalities=plan.modalities, cache_dir=cache_dir)
        elif a.route == "cdn":
            for r in cdn.gather_many(transfer, catalog, cdn_url, Path(local_dir), a.file_ids, manifest=manifest):
                out.append(r.paths["npz"].parent)
        else:  # pragma: no cover - plans only hold ROUTES
            raise SeamlessError(f"unknown route {a.route!r}")
    return out
