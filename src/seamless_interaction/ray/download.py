"""``download``: the CLI's download plan, executed as Ray tasks that write into one shared folder.

The plan is the CLI's (``seamless-interaction download``): whole Hub archives (fetched, checked
against the Hub's sha256 and extracted) for ``archives``/``batches``; member Range reads of the
archives for ``only=...`` or whole ``splits``; the CDN route for file ids (the Hub member route with
``source="hub"``). Whole archives (tars, or the chosen members of every file id in them) go to
tasks in groups (by default one per node), file ids in tasks of ``ids_per_task`` (grouped by archive
on the member route). Every task runs the same route code as the CLI with its own engine
(resumable ``.part`` files, size and sha256 checks, atomic renames), so a task that fails is retried
by Ray (``retries``) and resumes at the bytes already on disk.

Tasks do not append to the manifest: they return its records and the driver writes them, because
file locks on shared (network) folders are not reliable. The catalog is put in the object store
once (one copy per node); the HF token reaches the workers through their environment (see
:mod:`seamless_interaction.ray.cluster`), and every engine takes its Hub resolves from one
limiter for the whole job (an actor; a job of one task keeps the limiter itself).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seamless_interaction.base.config import DatasetConfig
from seamless_interaction.base.errors import (
    AccessDeniedError,
    InvalidIdError,
    MissingPartError,
    SeamlessError,
    TransferError,
    UnsafeArchiveError,
)
from seamless_interaction.local.manifest import Manifest, ManifestEntry
from seamless_interaction.ray.cluster import (
    ResolveLimiter,
    connect,
    limiter_actor,
    share_limits,
    token_runtime_env,
)

logger = logging.getLogger(__name__)

__all__ = ["DownloadError", "DownloadJob", "DownloadResult", "download", "plan_download"]

ALL_EXTS = ("json", "mp4", "npz", "wav")
IDS_PER_TASK = 16
# Whole archives per task at most (default grouping): a retry or a straggler costs at most this many.
MAX_ARCHIVES_PER_TASK = 32
ArchiveRef = tuple[str, str, int, int]


@dataclass(frozen=True)
class DownloadJob:
    """One task's work: ``route`` is "archive" (whole tars: ``archive``, or the group ``archives``
    through one engine), "members" (Range reads) or "cdn"."""

    route: str
    archive: ArchiveRef | None = None
    file_ids: tuple[str, ...] | None = None  # None with "members": every file id of the archive
    exts: tuple[str, ...] = ALL_EXTS
    extract: bool = True
    archives: tuple[ArchiveRef, ...] | None = None

    def describe(self) -> str:
        if self.archives:
            return f"{self.route} {', '.join(map(str, self.archives))}"
        return f"{self.route} {self.archive or ','.join(self.file_ids or ())}"


@dataclass
class DownloadResult:
    """What a :func:`download` did: tasks run, files in place, manifest records written."""

    dest: Path
    tasks: int = 0
    files: int = 0
    records: int = 0
    resolves: int = 0  # Hub resolves the job's limiter granted (every engine of every task)
    paths: list[Path] = field(default_factory=list)


def _expand(selection: Iterable[Any] | str | tuple, catalog) -> tuple[list[str], list[ArchiveRef], list[tuple]]:
    """``(file_ids, archives, splits)`` from a mixed selection, in the CLI's terms."""
    from seamless_interaction.base.ids import classify_key, validate_file_id

    if isinstance(selection, (str, tuple)):
        selection = [selection]
    file_ids: list[str] = []
    archives: list[ArchiveRef] = []
    splits: list[tuple] = []
    for item in selection:
        if isinstance(item, str):
            kind = classify_key(item)
            if kind == "file":
                file_ids.append(validate_file_id(item))
            elif kind == "interaction":
                file_ids.extend(catalog.interaction_file_ids(item))
            else:
                file_ids.extend(catalog.session_file_ids(item))
        elif isinstance(item, tuple) and len(item) == 4:
            archives.append((item[0], item[1], int(item[2]), int(item[3])))
        elif isinstance(item, tuple) and len(item) == 3:
            batches = [item[2]] if isinstance(item[2], int) else list(item[2])
            archives += [(item[0], item[1], int(b), int(a)) for b in batches
                         for a in catalog.archives(item[0], item[1], int(b))]
        elif isinstance(item, tuple) and len(item) == 2:
            splits.append((item[0], item[1]))
        else:
            raise InvalidIdError(f"selection item {item!r}: expected a file id, interaction or session key, "
                                 "(label, split), (label, split, batch) or (label, split, batch, archive)")
    for fid in file_ids:
        catalog.record(fid)  # unknown ids fail before anything is fetched, as in the CLI
    return list(dict.fromkeys(file_ids)), list(dict.fromkeys(archives)), splits


def plan_download(selection, catalog, *, only: Sequence[str] | None = None, source: str = "cdn",
                  keep_tar: bool = False, ids_per_task: int = IDS_PER_TASK,
                  archives_per_task: int = 1) -> list[DownloadJob]:
    """The CLI's plan for ``selection``, cut into tasks (per ``archives_per_task`` whole archives, as tars
    or as members of every file id; per archive for the members of chosen file ids; per ``ids_per_task``
    file ids on the CDN)."""
    file_ids, archives, splits = _expand(selection, catalog)
    exts = tuple(only) if only else None
    if exts:
        bad = [x for x in exts if x not in ALL_EXTS]
        if bad:
            raise InvalidIdError(f"only={list(exts)!r}: expected some of {list(ALL_EXTS)}")
    if not (file_ids or archives or splits):
        raise InvalidIdError("nothing to download: the selection names no file id, archive, batch or split")
    jobs: list[DownloadJob] = []
    if exts or source == "hub" or splits:
        exts = exts or ALL_EXTS
        for label, split in splits:
            archives += [(label, split, b, a) for b in catalog.batches(label, split)
                         for a in catalog.archives(label, split, b)]
        jobs += [DownloadJob("members", ref, None, exts) for ref in dict.fromkeys(archives)]
        by_archive: dict[ArchiveRef, list[str]] = {}
        for fid in file_ids:
            r = catalog.record(fid)
            by_archive.setdefault((r.label, r.split, int(r.batch), int(r.archive)), []).append(fid)
        jobs += [DownloadJob("members", ref, tuple(ids), exts) for ref, ids in by_archive.items()]
        return _group_archives(jobs, archives_per_task)
    jobs += [DownloadJob("archive", ref, extract=not keep_tar) for ref in archives]
    for i in range(0, len(file_ids), ids_per_task):
        jobs.append(DownloadJob("cdn", file_ids=tuple(file_ids[i:i + ids_per_task])))
    return _group_archives(jobs, archives_per_task)


def _groupable(j: DownloadJob) -> bool:
    """A job over one whole archive: the tar itself, or the chosen members of every file id in it."""
    return j.archive is not None and not j.archives and (
        j.route == "archive" or (j.route == "members" and j.file_ids is None))


def _group_archives(jobs: list[DownloadJob], archives_per_task: int) -> list[DownloadJob]:
    """``jobs`` with their whole-archive jobs (tars, or members of every file id) joined in groups of
    ``archives_per_task`` (in order, first), one engine per group; the other jobs as they are."""
    if archives_per_task < 1:
        raise InvalidIdError(f"archives_per_task={archives_per_task!r}: expected a whole number >= 1")
    singles = [j for j in jobs if _groupable(j)]
    if archives_per_task == 1 or len(singles) < 2:
        return jobs
    kinds: dict[tuple, list[DownloadJob]] = {}
    for j in singles:
        kinds.setdefault((j.route, j.exts, j.extract), []).append(j)
    grouped = []
    for (route, exts, extract), same in kinds.items():
        for i in range(0, len(same), archives_per_task):
            group = same[i:i + archives_per_task]
            grouped.append(group[0] if len(group) == 1 else DownloadJob(
                route, exts=exts, extract=extract, archives=tuple(j.archive for j in group if j.archive)))
    return grouped + [j for j in jobs if not _groupable(j)]


class _Collected(Manifest):
    """A task's view of the manifest: reads the driver's file, keeps its own records for the driver."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.collected: list[tuple[str, Any]] = []

    def record(self, path, url: str, size: int, sha256: str) -> ManifestEntry:  # type: ignore[override]
        entry = ManifestEntry(path=self.relpath(path), url=url, size=int(size), sha256=sha256, time=0.0)
        self.collected.append(("record", entry))
        return entry

    def remove(self, path) -> None:  # type: ignore[override]
        self.collected.append(("remove", self.relpath(path)))


def _run_job(job: DownloadJob, config: DatasetConfig, catalog_ref, limiter,
             transfer_options: dict[str, Any]) -> dict[str, Any]:
    """One task: the route's own code with a fresh engine (token from this worker's environment)."""
    cfg = config.resolved()
    assert cfg.local_dir is not None  # resolved() fills it
    dest = Path(cfg.local_dir)
    manifest = _Collected(dest)
    # Files an earlier attempt of this task completed are skipped by this one (complete on disk), so
    # their records, kept beside the tree by that attempt, come back with this one's.
    carry = dest / ".seamless_interaction" / "ray" / f"{hashlib.sha1(repr(job).encode()).hexdigest()}.json"
    earlier = json.loads(carry.read_text()) if carry.exists() else []

    def records() -> list:
        return earlier + [[op, dataclasses.asdict(e) if op == "record" else e] for op, e in manifest.collected]

    # The job's only task keeps the job's resolve limits itself (see share_limits).
    local = ResolveLimiter(*limiter) if isinstance(limiter, tuple) else None
    try:
        paths = _route(job, cfg, dest, manifest, catalog_ref, local if local is not None else limiter,
                       transfer_options)
    except _PERMANENT as exc:  # no retry can help: reported by the driver, the other tasks go on
        carry.unlink(missing_ok=True)
        return {"paths": [], "records": records(), "error": f"{type(exc).__name__}: {exc}",
                "resolves": local.grants if local else 0}
    except BaseException:
        if manifest.collected:
            carry.parent.mkdir(parents=True, exist_ok=True)
            tmp = carry.with_name(carry.name + ".tmp")
            tmp.write_text(json.dumps(records()))
            os.replace(tmp, carry)
        raise
    out = {"paths": [str(p) for p in paths], "records": records(), "resolves": local.grants if local else 0}
    carry.unlink(missing_ok=True)
    return out


# Errors that a rerun of the task would meet again (absent or refused files, unsafe archives).
_PERMANENT = (MissingPartError, AccessDeniedError, UnsafeArchiveError, InvalidIdError)


def _route(job: DownloadJob, cfg: DatasetConfig, dest: Path, manifest: _Collected, catalog_ref, limiter,
           transfer_options: dict[str, Any]) -> list[Path]:
    import ray

    from seamless_interaction.remote.transfer import Transfer

    # Each route's module only where it runs: a worker process imports it once, and Ray starts them often.
    assert cfg.hf_url and cfg.cdn_url  # resolved() fills every endpoint
    with Transfer.from_config(cfg, **transfer_options) as transfer:
        if limiter is not None:
            share_limits(transfer, limiter)
        if job.route == "archive":
            from seamless_interaction.routes import hub

            if job.archives:
                done = hub.download_archives(transfer, cfg.hf_url, dest, job.archives, extract=job.extract,
                                             manifest=manifest)
                paths = [r.path for r in done]
            else:
                assert job.archive is not None
                res = hub.download_archive(transfer, cfg.hf_url, dest, *job.archive, extract=job.extract,
                                           manifest=manifest)
                paths = [res.path]
        elif job.route == "members":
            from seamless_interaction.routes import members

            if job.archives:  # several archives at once through the one engine, as the CLI does
                paths = members.fetch_archives(transfer, cfg.hf_url, dest, job.archives, modalities=job.exts,
                                               cache_dir=cfg.cache_dir, manifest=manifest)
            else:
                assert job.archive is not None
                paths = members.fetch_archive_members(transfer, None, cfg.hf_url, dest, *job.archive,
                                                      file_ids=job.file_ids, modalities=job.exts,
                                                      cache_dir=cfg.cache_dir, manifest=manifest)
        else:
            from seamless_interaction.routes import cdn

            catalog = ray.get(catalog_ref) if isinstance(catalog_ref, ray.ObjectRef) else catalog_ref
            results = cdn.gather_many(transfer, catalog, cfg.cdn_url, dest, list(job.file_ids or ()),
                                      manifest=manifest)
            paths = [p for r in results for p in r.paths.values()]
    return paths


class DownloadError(SeamlessError):
    """Some download tasks failed after Ray's retries; the others' files and records are kept."""


def download(
    selection,
    only: Sequence[str] | None = None,
    dest: Path | str | None = None,
    *,
    config: DatasetConfig | None = None,
    catalog=None,
    source: str = "cdn",
    keep_tar: bool = False,
    ids_per_task: int = IDS_PER_TASK,
    archives_per_task: int | None = None,
    retries: int = 3,
    resolve_quota: int | None = None,
    resolve_window_s: float = 300.0,
    address: str | None = None,
    num_cpus_per_task: float = 0.25,
    transfer_options: dict[str, Any] | None = None,
) -> DownloadResult:
    """Download ``selection`` into ``dest`` with Ray tasks (module docstring); returns what was done.

    ``selection``: file ids, interaction or session keys, ``(label, split)``, ``(label, split, batch)``
    or ``(label, split, batch, archive)``, alone or in a list. ``only``: extensions fetched from the
    archives by Range (e.g. ``("npz", "json")``). ``dest``: a local folder or one every node shares
    (NFS, a mounted bucket); default the config's ``local_dir``. ``resolve_quota``: Hub resolves per
    ``resolve_window_s`` for the whole job (None: only the Hub's own 429s pace it, shared by all).
    ``transfer_options``: options of each task's transfer engine (``retries``, ``max_connections``, ...).
    ``num_cpus_per_task``: a task mostly waits on the network (hashing and extracting are a fraction of
    its time), so four share a CPU by default. ``archives_per_task``: whole archives (tars, or with
    ``only`` the members of all their file ids) go to a task in groups, which one engine fetches
    together as the CLI does (32 connections), the task reserving
    ``num_cpus_per_task`` per archive up to one CPU, the groups spread over the nodes. None: one group
    per node of the cluster, of at most ``MAX_ARCHIVES_PER_TASK``. Each task is a worker process with its
    own engine, threads and imports: on 2 CPUs (``benchmarks/bench_ray.py``, 25 archives) one archive per
    task took 2.5 s at 0.25 CPU per task (5.4 s at 1.0), two groups 2.2 s, one 2.1 s, the CLI 1.7 s;
    with the job's one task keeping the resolve limits itself (no actor to start), one group and the CLI
    both took 1.6-1.7 s.
    Joins ``address`` (else ``RAY_ADDRESS``, else a local Ray) unless Ray is already initialised.
    """
    import ray

    from seamless_interaction.catalog.tables import Catalog

    cfg = (config or DatasetConfig()).resolved()
    if dest is not None:
        cfg = dataclasses.replace(cfg, local_dir=Path(dest).expanduser())
    if catalog is None:
        assert cfg.assets and cfg.cache_dir  # resolved() fills both
        catalog = Catalog.load(cfg.assets, cfg.cache_dir)
    # The selection is checked before Ray starts; the default groups need the cluster's node count.
    jobs = plan_download(selection, catalog, only=only, source=source, keep_tar=keep_tar, ids_per_task=ids_per_task,
                         archives_per_task=archives_per_task or 1)
    connect(address)
    if archives_per_task is None:
        whole = sum(1 for j in jobs if _groupable(j))
        nodes = max(1, sum(1 for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU")))
        jobs = _group_archives(jobs, min(MAX_ARCHIVES_PER_TASK, max(1, math.ceil(whole / nodes))))
    assert cfg.local_dir is not None  # resolved() fills it
    root = Path(cfg.local_dir)
    root.mkdir(parents=True, exist_ok=True)
    runtime_env = token_runtime_env(cfg.hf_token)
    worker_cfg = dataclasses.replace(cfg, hf_token=None)  # the token goes by the environment only
    catalog_ref = ray.put(catalog) if any(j.route == "cdn" for j in jobs) else None
    # One task (the default for whole archives on one node) keeps the limits itself: the actor's own
    # worker process took ~0.3 s to start on 2 CPUs, and the task's first resolve waited for it.
    actor = limiter_actor(resolve_quota, resolve_window_s) if len(jobs) > 1 else None
    limiter: Any = actor if actor is not None else (resolve_quota, resolve_window_s)
    task = ray.remote(_run_job)
    task_options = {"max_retries": retries, "retry_exceptions": [TransferError, OSError],
                    **({"runtime_env": runtime_env} if runtime_env else {})}

    def options_for(job: DownloadJob) -> dict[str, Any]:
        if not job.archives:
            return {"num_cpus": num_cpus_per_task, **task_options}
        return {"num_cpus": min(1.0, num_cpus_per_task * len(job.archives)), "scheduling_strategy": "SPREAD",
                **task_options}

    pending = {task.options(**options_for(job)).remote(
        job, worker_cfg, catalog_ref, limiter, dict(transfer_options or {})): job for job in jobs}
    manifest = Manifest(root)
    result = DownloadResult(root, tasks=len(jobs))
    failures: list[str] = []
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        job = pending.pop(done[0])
        try:
            out = ray.get(done[0])
        except (ray.exceptions.RayError, SeamlessError, OSError) as exc:  # failed after its retries: keep the rest
            cause = getattr(exc, "cause", None) or exc
            failures.append(f"{job.describe()}: {cause}")
            continue
        if out.get("error"):
            failures.append(f"{job.describe()}: {out['error']}")
        result.resolves += out.get("resolves", 0)
        for op, rec in out["records"]:  # the driver is the manifest's one writer
            if op == "record":
                manifest.record(rec["path"], rec["url"], rec["size"], rec["sha256"])
            else:
                manifest.remove(rec)
            result.records += 1
        result.paths += [Path(p) for p in out["paths"]]
    result.files = len(result.paths)
    if actor is not None:
        result.resolves += ray.get(actor.stats.remote())["grants"]
        ray.kill(actor)
    if failures:
        raise DownloadError(f"{len(failures)} of {len(jobs)} download tasks failed (transfer errors after "
                            f"{retries} retries); re-run to resume. First: {failures[0]}")
    return result
