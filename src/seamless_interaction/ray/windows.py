"""``read_windows``: the streaming loader's windows as a Ray Dataset, one read task per planned run of units.

Planning happens on the driver, where the catalog lives: the units (interactions when ``dyadic``, else
file ids) of every shard are listed in the loader's order (by batch, shuffled by batch when ``shuffle``,
then by archive) and cut into ``num_tasks`` contiguous runs. A read task gets only its run: the shards
holding its units and, per shard, the file ids it owns, so a task joins partners itself and never
needs the catalog (which stays on the driver). Inside the task the loader's own
:class:`~seamless_interaction.access.loader.WindowDataset` reads those shards (local files by seeking,
HTTP members by Range through the transfer engine) and cuts the windows: one implementation of the
join and the cut for both front ends.

Without a catalog (or for shards outside the Hub layout) every task reads every shard and keeps the
units ``crc32(unit) % num_tasks`` assigns to it, as the loader's uncatalogued split does.

Every window is produced exactly once per epoch; the set depends on nothing but the sources and the
window options, and with ``shuffle`` the order within a task comes from ``(seed, epoch, task)``; with
``DataContext.execution_options.preserve_order`` the dataset's order is reproduced run to run (it
depends on ``num_tasks``, not on the cluster).

Row schema (one row per window; ``P`` is 2 when ``dyadic`` else 1, slot ``j`` in file-id order):

==========================  ===============================  ===================================================
column                      type                             value
==========================  ===============================  ===================================================
``key``                     string                           interaction key (the file id when not dyadic)
``file_ids``                list<string> of length ``P``     participants' file ids, ``""`` for an empty slot
``start_s``, ``end_s``      float64                          the window's half-open span on the shared clock
``p{j}.file_id``            string                           ``""`` when the slot is empty (partner missing)
``p{j}.feature_keys``       list<string>                     the npz keys this participant has
``p{j}.features.{key}``     tensor ``(T, ...)``              rows of npz array ``key`` in the span
``p{j}.audio``              float32 tensor ``(S,)``          samples at the WAV's rate (``(S, ch)`` if stereo)
``p{j}.vad``                bool tensor ``(V,)``             speech mask at ``vad_rate``
``p{j}.words``              string                           JSON list of the words overlapping the span
==========================  ===============================  ===================================================

Blocks: just past ``ds.context.target_max_block_size`` (Ray passes them on as they are), of the windows
in the task's order. A participant's back-to-back windows (hop == window) go into a tensor column as a
view of its rows; others are copied once.

Only the requested modalities' columns exist. The feature columns are ``feature_keys`` when given (the
loader skips participants lacking one), else every key of the archives' format (:data:`FEATURE_SCHEMA`,
FORMAT.md 5) in its format dtype; a key a participant lacks, and every array of an empty slot, is
stored as zero rows of the column's shape, so every block has the same columns, each with one dtype and
rank (tensor columns are fixed-shape within a block when they can be, else variable-shaped; Ray unifies
them). :func:`batch_to_items` turns a numpy batch back into exactly the loader's items (absent keys and
empty slots dropped) for :func:`~seamless_interaction.access.loader.collate_windows`.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import random
import warnings
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from seamless_interaction.base.errors import (
    AccessDeniedError,
    MissingPartError,
    SeamlessError,
    TransferError,
)
from seamless_interaction.ray.cluster import token_runtime_env

logger = logging.getLogger(__name__)

__all__ = [
    "FEATURE_SCHEMA",
    "WindowsDatasource",
    "WindowsSelectionError",
    "batch_to_items",
    "items_to_table",
    "plan_tasks",
    "read_windows",
]

# Blocks of Ray's own target size (``DataContext.target_max_block_size``, 128 MB by default; this when
# it is None). Ray's costs are per block and per column (~50 tensor columns: building, sizing, pickling,
# the driver's executor and unpickling) and per task: on 2 CPUs, 15-window blocks (one per task) cost
# 2.4 ms of CPU per window in all, ~120-window blocks 1.9 ms.
BLOCK_BYTES = 128 << 20
# The default read tasks per epoch: one per shard, but a task reads at least this many archive bytes
# where they are known (local shards). A read task costs ~20 ms of CPU besides its windows (scheduling
# on the driver and the raylet, setting up the worker's loader); a Hub archive (~1.1 GB, FORMAT.md)
# is well above it, a small local shard (a mirror, a subset) is not.
TASK_BYTES = 256 << 20
_ROW_BYTES = 64  # key, file ids, times and offsets of one row, beside its arrays


@dataclass(frozen=True)
class _TaskPlan:
    """What one read task reads: shard locations in order, and (planned) the file ids it owns per shard."""

    shards: tuple[str, ...]
    owned: dict[str, list[str]] | None  # location -> file ids; None: uncatalogued, owned by crc32 % world
    interactions: dict[str, list[str]] | None  # unit -> all its file ids in the catalog (join bookkeeping)
    index: int
    world: int
    epoch: int = 0


class _PlannedCatalog:
    """The two catalog lookups the loader makes, answered from one task's plan (so no catalog ships)."""

    def __init__(self, owned: dict[str, list[str]], interactions: dict[str, list[str]]):
        from seamless_interaction.access.loader import Shard

        self._ids: dict[tuple, list[str]] = {}
        for loc, ids in owned.items():
            sh = Shard.parse(loc)
            self._ids[(sh.label, sh.split, sh.batch, sh.archive)] = ids
        self._interactions = interactions

    def archive_file_ids(self, label: str, split: str, batch: int, archive: int) -> list[str]:
        return list(self._ids.get((label, split, int(batch), int(archive)), []))

    def interaction_file_ids(self, key: str) -> list[str]:
        return list(self._interactions.get(key, []))


def _unit(file_id: str, dyadic: bool) -> str:
    return file_id[:19] if dyadic else file_id


def plan_tasks(shards: Sequence[Any], catalog, *, dyadic: bool, num_tasks: int | None, shuffle: bool,
               seed: int, epoch: int) -> list[_TaskPlan]:
    """Cut the sources' units into contiguous runs, one per read task (see the module docstring)."""
    if catalog is None or any(sh.batch is None for sh in shards):
        n = max(1, num_tasks or _default_tasks(shards))
        locs = tuple(sh.location for sh in shards)
        return [_TaskPlan(locs, None, None, i, n, epoch) for i in range(n)]
    groups: dict[tuple, list[Any]] = {}
    for sh in shards:
        groups.setdefault((sh.label, sh.split, sh.batch), []).append(sh)
    order = sorted(groups, key=str)
    if shuffle:
        random.Random(f"{seed}:{epoch}").shuffle(order)
    units: list[str] = []
    where: dict[str, list[tuple[str, str]]] = {}
    for g in order:
        for sh in sorted(groups[g], key=lambda s: s.archive or 0):
            for fid in catalog.archive_file_ids(sh.label, sh.split, sh.batch, sh.archive):
                u = _unit(fid, dyadic)
                if u not in where:
                    units.append(u)
                    where[u] = []
                where[u].append((sh.location, fid))
    n = max(1, min(num_tasks or _default_tasks(shards), len(units) or 1))
    rank = {sh.location: i for i, sh in enumerate(shards)}
    plans = []
    for i in range(n):
        run = units[len(units) * i // n: len(units) * (i + 1) // n]
        owned: dict[str, list[str]] = {}
        for u in run:
            for loc, fid in where[u]:
                owned.setdefault(loc, []).append(fid)
        inter = {u: list(catalog.interaction_file_ids(u)) for u in run} if dyadic else {}
        plans.append(_TaskPlan(tuple(sorted(owned, key=rank.__getitem__)), owned, inter, i, n, epoch))
    return plans


def _default_tasks(shards: Sequence[Any]) -> int:
    """One task per shard, but at least :data:`TASK_BYTES` of archives per task where the sizes are known
    (local shards; a shard over HTTP counts as one task, as a Hub archive is larger). Depends on the
    sources only, so the order it gives is the same on any cluster."""
    local = [sh for sh in shards if not sh.is_http]
    size = 0
    for sh in local:
        try:
            size += os.path.getsize(sh.location)
        except OSError:  # absent: the task that reads it warns (or raises with ``strict``)
            size += TASK_BYTES
    return max(1, len(shards) - len(local) + min(len(local), math.ceil(size / TASK_BYTES)))


# ------------------------------------------------------------------------------------------ rows
# Tail shape and dtype of every npz key of the archives (FORMAT.md 5.1-5.3): an absent key is stored as
# zero rows of this shape, so every block has the same columns and each column one dtype and rank.
_F32 = "float32"
FEATURE_SCHEMA: dict[str, tuple[str, tuple[int, ...]]] = {
    "boxes_and_keypoints:box": (_F32, (4,)), "boxes_and_keypoints:is_valid_box": ("bool", ()),
    "boxes_and_keypoints:keypoints": (_F32, (133, 3)),
    "smplh:body_pose": (_F32, (21, 3)), "smplh:global_orient": (_F32, (3,)), "smplh:left_hand_pose": (_F32, (15, 3)),
    "smplh:right_hand_pose": (_F32, (15, 3)), "smplh:translation": (_F32, (3,)), "smplh:is_valid": ("bool", ()),
    "movement:EmotionArousalToken": (_F32, (1,)), "movement:EmotionValenceToken": (_F32, (1,)),
    "movement:FAUToken": (_F32, (1,)), "movement:FAUValue": (_F32, (24,)),
    "movement:alignment_head_rotation": (_F32, (3,)), "movement:alignment_translation": (_F32, (2, 3)),
    "movement:emotion_arousal": (_F32, (1,)), "movement:emotion_valence": (_F32, (1,)),
    "movement:emotion_scores": (_F32, (8,)), "movement:expression": (_F32, (128,)),
    "movement:frame_latent": (_F32, (64,)), "movement:gaze_encodings": (_F32, (2,)),
    "movement:head_encodings": (_F32, (3,)), "movement:hypernet_features": (_F32, (5120,)),
    "movement:is_valid": (_F32, (1,)),
}


def _tensor_column(values: list[np.ndarray]):
    """A fixed-shape tensor column when the block's shapes agree (one buffer, ~10x cheaper to build),
    else a variable-shaped one; Ray unifies the two across blocks (dtype and rank are the same).

    Windows that are back-to-back slices of one array (a participant's rows cut with hop == window)
    go in as they are; the rest are copied once."""
    from ray.data.extensions import ArrowTensorArray, ArrowVariableShapedTensorArray

    v0 = values[0]
    if any(v.dtype != v0.dtype or v.ndim != v0.ndim for v in values):  # Ray's own conversion (and errors)
        if all(v.shape == v0.shape for v in values):
            return ArrowTensorArray.from_numpy(np.stack(values))
        return ArrowVariableShapedTensorArray.from_numpy(values)
    if all(v.shape == v0.shape for v in values):
        return ArrowTensorArray.from_numpy(_flat(values).reshape(len(values), *v0.shape))
    return _ragged_column(values, _flat(values))


def _ragged_column(values: list[np.ndarray], flat: np.ndarray):
    """Ray's variable-shaped tensor column (its storage: raveled data with offsets, and each shape)
    over ``flat``, the values' elements back to back; as ``ArrowVariableShapedTensorArray.from_numpy``
    builds it, without its per-row ravel and concatenation."""
    import pyarrow as pa
    from ray.data.extensions import ArrowVariableShapedTensorType

    offsets = np.zeros(len(values) + 1, np.int64)
    np.cumsum([v.size for v in values], out=offsets[1:])
    value_type = pa.from_numpy_dtype(flat.dtype)
    data = np.packbits(flat, bitorder="little") if flat.dtype == np.bool_ and flat.size else flat
    storage = pa.StructArray.from_arrays(
        [pa.LargeListArray.from_arrays(pa.array(offsets),
                                       pa.Array.from_buffers(value_type, flat.size, [None, pa.py_buffer(data)])),
         pa.array([v.shape for v in values])],
        ["data", "shape"])
    return ArrowVariableShapedTensorType(value_type, values[0].ndim).wrap_array(storage)


def _flat(values: list[np.ndarray]) -> np.ndarray:
    """The values' elements back to back as one 1-D array: a view when they already lie so in memory,
    else one copy."""
    runs = _runs([v for v in values if v.size])
    if len(runs) == 1:
        return runs[0]
    total = sum(r.size for r in runs)
    out = np.empty(total, values[0].dtype)
    at = 0
    for r in runs:
        out[at:at + r.size] = r
        at += r.size
    return out


def _runs(values: list[np.ndarray]) -> list[np.ndarray]:
    """Runs of arrays that are back-to-back slices of one allocation, each as one 1-D view (no copy)."""
    runs: list[np.ndarray] = []
    start = 0
    addr = [v.__array_interface__["data"][0] for v in values]
    for i in range(1, len(values) + 1):
        if i < len(values):
            v, prev = values[i], values[i - 1]
            # the same owner (kept alive by the view) and the next bytes of it
            if (v.base is not None and v.base is prev.base and addr[i] == addr[i - 1] + prev.nbytes
                    and v.flags.c_contiguous and prev.flags.c_contiguous):
                continue
        first = values[start]
        if i - start == 1:
            runs.append(first.reshape(-1))
        else:
            count = (addr[i - 1] + values[i - 1].nbytes - addr[start]) // first.itemsize
            runs.append(np.lib.stride_tricks.as_strided(first, shape=(count,), strides=(first.itemsize,),
                                                        writeable=False))
        start = i
    return runs


def items_to_table(items: list[dict], slots: int, feature_keys: Sequence[str] | None = None,
                   audio: bool = False, vad: bool = False, words: bool = False, features: bool = True):
    """Loader items -> a pyarrow Table in the row schema of the module docstring."""
    import pyarrow as pa

    keys = (list(feature_keys) if feature_keys else list(FEATURE_SCHEMA)) if features else []
    known: dict[tuple[str, ...], list[str]] = {}

    def present(arrays: dict[str, np.ndarray]) -> list[str]:
        # a participant's windows all have its key set: worked out once per set, not per window
        have = tuple(arrays)
        got = known.get(have)
        if got is None:
            got = known[have] = [k for k in keys if k in arrays]
        return got

    cols: dict[str, Any] = {
        "key": pa.array([it["key"] for it in items], pa.string()),
        "file_ids": pa.array([[p["file_id"] for p in it["participants"]] + [""] * (slots - len(it["participants"]))
                              for it in items], pa.list_(pa.string())),
        "start_s": pa.array([it["start_s"] for it in items], pa.float64()),
        "end_s": pa.array([it["end_s"] for it in items], pa.float64()),
    }
    for j in range(slots):
        parts = [it["participants"][j] if j < len(it["participants"]) else None for it in items]
        pre = f"p{j}."
        cols[pre + "file_id"] = pa.array([p["file_id"] if p else "" for p in parts], pa.string())
        if features:
            cols[pre + "feature_keys"] = pa.array([present(p["features"]) if p else [] for p in parts],
                                                  pa.list_(pa.string()))
            for k in keys:
                vals = []
                for p in parts:
                    got = p["features"].get(k) if p else None
                    vals.append(_fit(k, got, items))
                cols[f"{pre}features.{k}"] = _tensor_column(vals)
        for name, on, dtype in (("audio", audio, np.float32), ("vad", vad, np.bool_)):
            if on:
                ref = next((p[name] for it in items for p in it["participants"]), np.zeros(0, dtype))
                cols[pre + name] = _tensor_column([p[name] if p else np.zeros((0, *ref.shape[1:]), ref.dtype)
                                                   for p in parts])
        if words:
            cols[pre + "words"] = pa.array([json.dumps(p["words"]) if p else "[]" for p in parts], pa.string())
    return pa.table(cols)


def _fit(key: str, arr: np.ndarray | None, items: list[dict]) -> np.ndarray:
    """``arr`` in the column's dtype, or zero rows of the column's shape when the key is absent."""
    spec = FEATURE_SCHEMA.get(key)
    if spec is None:  # a key asked for by name: the loader guarantees it is present
        if arr is not None:
            return arr
        ref = next(p["features"][key] for it in items for p in it["participants"] if key in p["features"])
        return np.zeros((0, *ref.shape[1:]), ref.dtype)
    dtype, tail = spec
    if arr is None or arr.ndim != 1 + len(tail):
        return np.zeros((0, *tail), dtype)
    return arr if arr.dtype == np.dtype(dtype) else arr.astype(dtype)


def batch_to_items(batch: dict[str, Any]) -> list[dict]:
    """A numpy batch of :func:`read_windows` rows -> the loader's window items (for ``collate_windows``).

    Empty slots are dropped, so an item has the same participants the loader would have yielded.
    """
    n = len(batch["key"])
    slots = sorted({int(c[1:].split(".", 1)[0]) for c in batch if c.startswith("p") and ".file_id" in c})
    feats = {j: [c for c in batch if c.startswith(f"p{j}.features.")] for j in slots}
    items = []
    for i in range(n):
        parts = []
        for j in slots:
            fid = str(batch[f"p{j}.file_id"][i])
            if not fid:
                continue
            d: dict[str, Any] = {"file_id": fid}
            if feats[j]:
                present = set(batch[f"p{j}.feature_keys"][i])
                d["features"] = {k: np.asarray(batch[c][i]) for c in feats[j]
                                 if (k := c[len(f"p{j}.features."):]) in present}
            for name in ("audio", "vad"):
                if f"p{j}.{name}" in batch:
                    d[name] = np.asarray(batch[f"p{j}.{name}"][i])
            if f"p{j}.words" in batch:
                d["words"] = json.loads(batch[f"p{j}.words"][i])
            parts.append(d)
        items.append({"key": str(batch["key"][i]), "file_ids": [p["file_id"] for p in parts],
                      "start_s": float(batch["start_s"][i]), "end_s": float(batch["end_s"][i]),
                      "participants": parts})
    return items


# ------------------------------------------------------------------------------------------ read tasks
@dataclass(frozen=True)
class _Options:
    modalities: tuple[str, ...]
    window_s: float
    hop_s: float | None
    dyadic: bool
    shuffle: bool
    seed: int
    strict: bool
    feature_keys: tuple[str, ...] | None
    drop_last: bool
    vad_rate: int
    hf_url: str | None
    decode_threads: int
    rows_per_block: int | None
    transfer_options: tuple[tuple[str, Any], ...] = ()


def _task_dataset(plan: _TaskPlan, opts: _Options):
    from seamless_interaction.access.loader import WindowDataset

    class _TaskWindows(WindowDataset):
        # A transfer that failed after the engine's retries fails the task, so Ray retries it (the
        # loader alone would warn and skip the rest of the shard); an absent or refused shard and
        # other problems behave as in the loader (a warning, or an error with ``strict``).
        def _problem(self, message: str, exc: Exception | None = None) -> None:
            if isinstance(exc, TransferError) and not isinstance(exc, (MissingPartError, AccessDeniedError)):
                raise exc
            super()._problem(message, exc)

        # Views of the WAV member: the block copies the windows anyway (once, or not at all for one
        # participant's back-to-back windows), so the loader's own copy would be a second one.
        _audio_views = True

        def _engine(self):
            if self._transfer is None and self._own_transfer is None and opts.transfer_options:
                from seamless_interaction.base.config import DatasetConfig
                from seamless_interaction.remote.transfer import Transfer

                cfg = DatasetConfig(hf_url=self.hf_url).resolved()
                self._own_transfer = Transfer.from_config(cfg, **{"max_connections": 4,
                                                                  **dict(opts.transfer_options)})
            return super()._engine()

    planned = plan.owned is not None
    ds = _TaskWindows(
        list(plan.shards), modalities=opts.modalities, window_s=opts.window_s, hop_s=opts.hop_s,
        dyadic=opts.dyadic, shuffle=opts.shuffle, seed=opts.seed * 1_000_003 + plan.index, strict=opts.strict,
        catalog=_PlannedCatalog(plan.owned, plan.interactions or {}) if plan.owned is not None else None,
        feature_keys=opts.feature_keys, hf_url=opts.hf_url, rank=0 if planned else plan.index,
        world_size=1 if planned else plan.world, drop_last=opts.drop_last, vad_rate=opts.vad_rate,
        decode_threads=opts.decode_threads)
    ds.set_epoch(plan.epoch)
    return ds


def _item_bytes(item: dict) -> int:
    """The row's size in a block: its arrays (a bool tensor is bit-packed) and :data:`_ROW_BYTES`."""
    n = _ROW_BYTES
    for p in item["participants"]:
        for a in (*p.get("features", {}).values(), *(p[m] for m in ("audio", "vad") if m in p)):
            n += a.size // 8 if a.dtype == np.bool_ else a.nbytes
    return n


def _block_bytes() -> int:
    from ray.data.context import DataContext

    return DataContext.get_current().target_max_block_size or BLOCK_BYTES


def _read(plan: _TaskPlan, opts: _Options) -> Iterator[Any]:
    slots = 2 if opts.dyadic else 1
    m = opts.modalities

    def block(items: list[dict]):
        return items_to_table(items, slots, opts.feature_keys, audio="audio" in m, vad="vad" in m,
                              words="words" in m, features="features" in m)

    if opts.rows_per_block:
        buf: list[dict] = []
        for item in _task_dataset(plan, opts):
            buf.append(item)
            if len(buf) >= opts.rows_per_block:
                yield block(buf)
                buf = []
        if buf:
            yield block(buf)
        return
    # Ray's output buffer joins the blocks a task yields until they pass ``target_max_block_size`` T
    # (one chunk per block in every column, which the driver then copies into one array per column),
    # and slices those of 1.5 T or more. So a block is cut just past T (a sixty-fourth more, as the
    # estimate is not the table's exact size) and goes through as it is. Windows are held back
    # until 0.45 T more have come, so the task's last block, which goes through at any size, is not a
    # sliver: Ray holds the read back while its consumer holds little (it compares what the read has
    # queued with what the consumer has taken), so a one-window block stalled the reads.
    limit = _block_bytes()
    cut, hold = limit + limit // 64, limit * 45 // 100
    held: deque[tuple[dict, int]] = deque()
    size = 0
    for item in _task_dataset(plan, opts):
        n = _item_bytes(item)
        held.append((item, n))
        size += n
        if size >= cut + hold:
            out, got = [], 0
            while got <= cut:
                it, n = held.popleft()
                out.append(it)
                got += n
            size -= got
            yield block(out)
    if held:
        yield block([it for it, _ in held])


class WindowsDatasource:
    """The Ray Datasource behind :func:`read_windows` (built lazily: Ray is an optional extra)."""

    def __new__(cls, *args: Any, **kwargs: Any):
        return _datasource_class()(*args, **kwargs)


def _datasource_class():
    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask

    class _WindowsDatasource(Datasource):
        def __init__(self, plans: list[_TaskPlan], opts: _Options):
            self.plans, self.opts = plans, opts

        def get_name(self) -> str:
            return "SeamlessWindows"

        def estimate_inmemory_data_size(self) -> int | None:
            return None

        def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None,
                           data_context: Any = None) -> list[ReadTask]:
            # The plan fixes the tasks (and so the order): ``parallelism`` does not change which
            # task owns which unit, so a run is reproduced on any cluster.
            tasks = []
            for plan in self.plans:
                meta = BlockMetadata(num_rows=None, size_bytes=None, input_files=tuple(plan.shards), exec_stats=None)
                tasks.append(ReadTask(functools.partial(_read, plan, self.opts), meta,
                                      per_task_row_limit=per_task_row_limit))
            return tasks

    return _WindowsDatasource


class WindowsSelectionError(SeamlessError, ValueError):
    """A ``read_windows`` selection that names no shard, or options the loader does not accept."""


def read_windows(
    selection: Iterable[Any] | str | tuple,
    modalities: Sequence[str] = ("features",),
    window_s: float = 4.0,
    hop_s: float | None = None,
    dyadic: bool = True,
    *,
    catalog=None,
    hf_url: str | None = None,
    shuffle: bool = False,
    seed: int = 0,
    epoch: int = 0,
    epochs: int = 1,
    strict: bool = False,
    feature_keys: Sequence[str] | None = None,
    drop_last: bool = True,
    vad_rate: int | None = None,
    num_tasks: int | None = None,
    decode_threads: int = 1,
    rows_per_block: int | None = None,
    retries: int = 3,
    transfer_options: dict[str, Any] | None = None,
    ray_remote_args: dict[str, Any] | None = None,
):
    """Windows of ``selection`` as a :class:`ray.data.Dataset` (schema and guarantees: module docstring).

    The dataset's own ``ds.context`` has Ray Data's per-operator resource reservation off (see
    :func:`_tune_context`), and its read tasks run with pyarrow's pickling of the blocks.

    Args:
        selection: shard paths or URLs, or ``(label, split, batches)`` tuples (need ``catalog`` and
            ``hf_url``), as :class:`~seamless_interaction.access.loader.WindowDataset` takes them.
        catalog: enables the planned split (tasks own whole interactions); without it every task
            scans every shard's headers.
        epoch, epochs: the windows of epochs ``epoch .. epoch + epochs - 1``, one after the other in
            one dataset (one Ray execution, so no per-epoch start-up; with ``preserve_order`` epoch by
            epoch). Each epoch is what ``read_windows(..., epoch=e)`` alone gives.
        num_tasks: read tasks per epoch (default: one per shard, but at least :data:`TASK_BYTES` of
            local archives per task; at most one per unit); fixes the order.
        decode_threads: npz inflate threads inside each task (Ray already runs one task per CPU).
        rows_per_block: windows per output block (default: blocks just past the dataset context's
            ``target_max_block_size``, Ray's 128 MB, which Ray passes on as they are; smaller
            blocks of one task are joined by Ray up to that size).
        retries: Ray retries of a task whose transfer failed after the engine's own retries.
        transfer_options: options of each task's transfer engine for HTTP shards (``retries``,
            ``max_connections``, ...); the token comes from the worker's environment.
        ray_remote_args: extra options of the read tasks (``num_cpus``, ``memory``, ...).
    """
    import ray

    from seamless_interaction.access.loader import LOADER_MODALITIES, resolve_shards
    from seamless_interaction.constants import VAD_RATE

    bad = set(modalities) - set(LOADER_MODALITIES)
    if bad:
        raise WindowsSelectionError(f"unknown modalities {sorted(bad)}; read_windows supports "
                                    f"{list(LOADER_MODALITIES)}")
    try:
        shards = resolve_shards(selection, catalog=catalog, hf_url=hf_url)
    except ValueError as exc:
        raise WindowsSelectionError(str(exc)) from exc
    if not shards:
        raise WindowsSelectionError(f"selection {selection!r} names no shard")
    if epochs < 1:
        raise WindowsSelectionError(f"epochs must be >= 1, got {epochs!r}")
    plans = [p for e in range(epoch, epoch + epochs)
             for p in plan_tasks(shards, catalog, dyadic=dyadic, num_tasks=num_tasks, shuffle=shuffle, seed=seed,
                                 epoch=e)]
    opts = _Options(tuple(modalities), float(window_s), hop_s, dyadic, shuffle, seed, strict,
                    tuple(feature_keys) if feature_keys else None, drop_last, vad_rate or VAD_RATE, hf_url,
                    decode_threads, rows_per_block, tuple(sorted((transfer_options or {}).items())))
    remote_args = {"max_retries": retries, "retry_exceptions": [TransferError], **(ray_remote_args or {})}
    env = dict(_READ_ENV)
    if any(sh.is_http for sh in shards):
        env.update((token_runtime_env() or {}).get("env_vars", {}))
    logger.debug("read_windows: %d shards in %d read tasks", len(shards), len(plans))
    with warnings.catch_warnings():
        # Ray 2.60 deprecates ray_remote_args for its named parameters, which have no max_retries or
        # retry_exceptions yet (its own readers still pass them this way); pinned below 2.64.
        warnings.filterwarnings("ignore", message=".*ray_remote_args. is deprecated")
        ds = ray.data.read_datasource(WindowsDatasource(plans, opts), override_num_blocks=len(plans),
                                      runtime_env={"env_vars": env}, ray_remote_args=remote_args)
    _tune_context(ds.context)
    return ds


# Ray's own reducer for Arrow tables (RAY_DISABLE_CUSTOM_ARROW_DATA_SERIALIZATION, ray/_private/
# arrow_serialization.py) rebuilds every column's buffers in Python and pickles them in-band: for our
# ~50 tensor columns it cost more than the copy itself (8 MB block: 4.2 ms to serialize, 2.7 ms to get
# back, against 1.6 ms and 0.7 ms with pyarrow's own pickling, whose buffers go out of band into the
# object store). It exists for array slices that would drag their whole parent buffer along; our
# blocks are built fresh, never sliced. Set in the read tasks' environment only (their own workers).
_READ_ENV = {"RAY_DISABLE_CUSTOM_ARROW_DATA_SERIALIZATION": "1"}


def _tune_context(ctx) -> None:
    """Settings of the returned dataset's own DataContext copy (the global one is left alone).

    Ray Data's per-operator reservation (``op_resource_reservation_enabled``) budgets CPUs from what
    its autoscaling coordinator has granted the execution. A new execution is granted nothing for
    its first ~2 s, and Ray then runs one read task at a time; several unioned reads (one per epoch)
    each reserve a whole CPU, so on a small cluster they ran one task at a time throughout (measured
    on 2 CPUs: ~1 task running on average, 0.4 of the CPUs used). The reads are the source stage;
    a pipeline that maps the windows on reserved GPUs can set it back on ``ds.context``.
    """
    ctx.op_resource_reservation_enabled = False
    # Ray samples every map task's USS (/proc/<pid>/smaps, every second and at the end) for its stats:
    # 3-4% of a read worker's time in profiles, for a number only the dashboard shows.
    ctx.memory_usage_poll_interval_s = None
