"""``read_windows`` on a real local Ray (one session for the module) against the loader over the same shards."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="the Ray front end is the optional [ray] extra")
pytest.importorskip("torch", reason="read_windows runs the loader, the optional torch extra")

from seamless_interaction.access.loader import (
    ShardWarning,
    WindowDataset,
    collate_windows,
)
from seamless_interaction.ray import WindowsSelectionError, batch_to_items, read_windows
from seamless_interaction.ray.windows import plan_tasks

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "remote" / "faults"))
from faultserver import Fault, FaultServer

pytestmark = pytest.mark.slow
ALL = ("features", "audio", "vad", "words")


@pytest.fixture(scope="module")
def ray_session():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def shards(sample_mirror):
    from seamless_interaction.catalog.tables import Catalog

    root = sample_mirror.root
    catalog = Catalog.load(str(root / "assets"), root.parent / "catalog-cache")
    tars = sorted(str(p) for p in (root / "hub").rglob("*.tar"))
    return tars, catalog


def reference(tars, catalog, **kw) -> list[dict]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ShardWarning)
        return list(WindowDataset(tars, catalog=catalog, **kw))


def collect(ds) -> list[dict]:
    out = []
    for batch in ds.iter_batches(batch_format="numpy", batch_size=7):
        out += batch_to_items(batch)
    return out


def key(it: dict) -> tuple:
    # file ids too: without a catalog, partners that never meet are two items of one key
    return it["key"], tuple(it["file_ids"]), it["start_s"]


def assert_same_items(ours: list[dict], theirs: list[dict]) -> None:
    """Same windows, each once, with identical arrays, masks and words."""
    assert len(ours) == len({key(i) for i in ours})  # exactly once
    a, b = {key(i): i for i in ours}, {key(i): i for i in theirs}
    assert a.keys() == b.keys()
    for k, x in a.items():
        y = b[k]
        assert (x["file_ids"], x["end_s"]) == (y["file_ids"], y["end_s"])
        for px, py in zip(x["participants"], y["participants"], strict=True):
            assert px.keys() == py.keys()
            if "features" in px:
                assert px["features"].keys() == py["features"].keys()
                for f in px["features"]:
                    assert px["features"][f].dtype == py["features"][f].dtype
                    np.testing.assert_array_equal(px["features"][f], py["features"][f])
            for m in ("audio", "vad"):
                if m in px:
                    assert px[m].dtype == py[m].dtype
                    np.testing.assert_array_equal(px[m], py[m])
            if "words" in px:
                assert px["words"] == py["words"]


@pytest.mark.parametrize("num_tasks", [1, 3, 50])
def test_windows_equal_the_loaders_over_the_same_shards(ray_session, shards, num_tasks):
    tars, catalog = shards
    ours = collect(read_windows(tars, ALL, window_s=0.5, catalog=catalog, num_tasks=num_tasks, rows_per_block=4))
    theirs = reference(tars, catalog, modalities=ALL, window_s=0.5)
    assert len(ours) == len(theirs) > 0
    assert_same_items(ours, theirs)
    assert any(len(i["participants"]) == 2 for i in ours)  # partners in other archives were joined


def test_plan_gives_every_unit_to_exactly_one_task_and_ships_no_catalog(shards):
    from seamless_interaction.access.loader import resolve_shards

    tars, catalog = shards
    plans = plan_tasks(resolve_shards(tars), catalog, dyadic=True, num_tasks=4, shuffle=False, seed=0, epoch=0)
    owned = [fid for p in plans for ids in p.owned.values() for fid in ids]
    every = [fid for t in resolve_shards(tars)
             for fid in catalog.archive_file_ids(t.label, t.split, t.batch, t.archive)]
    assert sorted(owned) == sorted(every)
    units = [{f[:19] for ids in p.owned.values() for f in ids} for p in plans]
    assert sum(map(len, units)) == len(set().union(*units))  # an interaction sits in one task only


def test_without_a_catalog_and_per_file_id(ray_session, shards):
    tars, catalog = shards
    ours = collect(read_windows(tars, ("features", "vad"), window_s=0.25, num_tasks=3))
    assert_same_items(ours, reference(tars, None, modalities=("features", "vad"), window_s=0.25))
    solo = collect(read_windows(tars, ("words",), window_s=0.5, dyadic=False, catalog=catalog, num_tasks=2))
    assert_same_items(solo, reference(tars, catalog, modalities=("words",), window_s=0.5, dyadic=False))
    assert all(len(i["participants"]) == 1 for i in solo)


def test_feature_keys_and_collate(ray_session, shards):
    tars, catalog = shards
    keys = ["smplh:global_orient", "movement:hypernet_features"]
    ds = read_windows(tars, ("features", "audio"), window_s=0.5, catalog=catalog, feature_keys=keys, num_tasks=2)
    assert {c for c in ds.columns() if ".features." in c} == {f"p{j}.features.{k}" for j in (0, 1) for k in keys}
    ours = collect(ds)
    assert_same_items(ours, reference(tars, catalog, modalities=("features", "audio"), window_s=0.5, feature_keys=keys))
    batch = collate_windows(ours[:5])
    assert batch["features"]["smplh:global_orient"].shape[:2] == (5, 2)


def test_same_set_for_a_seed_and_same_order_with_preserve_order(ray_session, shards):
    tars, catalog = shards
    ctx = ray.data.DataContext.get_current()
    old = ctx.execution_options.preserve_order
    ctx.execution_options.preserve_order = True
    try:
        runs = [[key(i) for i in collect(read_windows(tars, ("vad",), window_s=0.25, catalog=catalog, shuffle=True,
                                                      seed=7, num_tasks=3, rows_per_block=3))] for _ in range(2)]
        other = [key(i) for i in collect(read_windows(tars, ("vad",), window_s=0.25, catalog=catalog, shuffle=True,
                                                      seed=8, num_tasks=3, rows_per_block=3))]
    finally:
        ctx.execution_options.preserve_order = old
    assert runs[0] == runs[1]
    assert sorted(runs[0]) == sorted(other) and runs[0] != other


def test_epochs_back_to_back_are_each_epoch_in_turn(ray_session, shards):
    """``epochs=2`` in one dataset gives epoch 3's windows then epoch 4's, in the order each has alone."""
    tars, catalog = shards
    ctx = ray.data.DataContext.get_current()
    old = ctx.execution_options.preserve_order
    ctx.execution_options.preserve_order = True
    kw = {"window_s": 0.25, "catalog": catalog, "shuffle": True, "seed": 7, "num_tasks": 3, "rows_per_block": 3}
    try:
        both = read_windows(tars, ("vad",), epoch=3, epochs=2, **kw)
        one_by_one = [[key(i) for i in collect(read_windows(tars, ("vad",), epoch=e, **kw))] for e in (3, 4)]
        assert [key(i) for i in collect(both)] == one_by_one[0] + one_by_one[1]
    finally:
        ctx.execution_options.preserve_order = old
    assert one_by_one[0] != one_by_one[1] and sorted(one_by_one[0]) == sorted(one_by_one[1])
    # the tuning is the dataset's own: the driver's global context is left as it was
    assert both.context.op_resource_reservation_enabled is False
    assert ctx.op_resource_reservation_enabled is True
    with pytest.raises(WindowsSelectionError, match="epochs must be >= 1"):
        read_windows(tars, ("vad",), epochs=0, catalog=catalog)


def test_a_read_task_failing_once_is_retried_and_the_windows_are_complete(ray_session, shards, sample_mirror):
    """Every shard over HTTP; one drops its body halfway once, with no engine retry, so its read task
    fails; Ray reruns it and the dataset still holds each window exactly once, byte-identical."""
    tars, catalog = shards
    hub = sample_mirror.root / "hub"
    base = "/datasets/facebook/seamless-interaction/resolve/main"
    with FaultServer() as srv:
        urls = []
        for i, t in enumerate(tars):
            rel = Path(t).relative_to(hub).as_posix()
            data = Path(t).read_bytes()
            faults = [Fault.ignore_range(), Fault.drop(after=len(data) * 2 // 3)] if i == 1 else []
            srv.add(f"{base}/{rel}", data, faults=faults)
            urls.append(srv.url(f"{base}/{rel}"))
        # one task at a time (each takes both CPUs), so the fault script meets the requests in a known
        # order: the first HEAD takes ``ignore_range``, the first GET, the whole shard, is dropped
        ds = read_windows(urls, ALL, window_s=0.5, catalog=catalog, num_tasks=len(urls), rows_per_block=1,
                          hf_url=srv.url(base), transfer_options={"retries": 0}, ray_remote_args={"num_cpus": 2})
        ours = collect(ds)
        path = f"{base}/{Path(tars[1]).relative_to(hub).as_posix()}"
        assert not srv.routes[path].faults  # the drop happened
        whole = [r.sent for r in srv.requests(path) if r.headers.get("range") is None]
        size = Path(tars[1]).stat().st_size
        assert whole[0] < size and size in whole[1:]  # cut short once, then read again by the rerun task
    assert_same_items(ours, reference(tars, catalog, modalities=ALL, window_s=0.5))


def test_bad_selection_is_a_typed_error(ray_session, shards):
    with pytest.raises(WindowsSelectionError, match="unknown modalities"):
        read_windows(shards[0], ("smell",))
    with pytest.raises(WindowsSelectionError, match="needs catalog"):
        read_windows(("improvised", "dev", 0))
    with pytest.raises(WindowsSelectionError, match="names no shard"):
        read_windows([])


def test_back_to_back_windows_go_in_as_they_are_and_others_are_copied_once():
    from seamless_interaction.ray.windows import _flat, _tensor_column

    arr = np.arange(60 * 3, dtype=np.float32).reshape(60, 3)
    other = arr.copy()
    wins = [arr[i:i + 10] for i in range(0, 60, 10)]
    assert np.shares_memory(_flat(wins), arr)  # one view of the participant's rows
    np.testing.assert_array_equal(np.stack(list(_tensor_column(wins).to_numpy())), np.stack(wins))
    # a gap, another allocation, overlapping windows (hop < window): one copy, in order
    for mixed in ([arr[0:10], arr[20:30]], [arr[0:10], other[10:20]], [arr[0:10], arr[5:15]]):
        flat = _flat(mixed)
        assert not np.shares_memory(flat, arr)
        np.testing.assert_array_equal(flat, np.concatenate([m.ravel() for m in mixed]))
    # shapes that differ (a key a participant lacks is zero rows; a window a row short): variable-shaped
    mask = np.arange(40) % 3 == 0
    for ragged in ([arr[0:10], arr[0:0], arr[10:19], other[0:0], other[30:40]], [mask[0:10], mask[10:13], mask[13:13]]):
        col = _tensor_column(ragged)
        assert "Variable" in str(col.type)
        got = col.to_numpy()
        assert len(got) == len(ragged)
        for g, w in zip(got, ragged, strict=True):
            assert g.shape == w.shape and g.dtype == w.dtype
            np.testing.assert_array_equal(g, w)


def test_default_tasks_group_small_local_shards_and_keep_one_per_remote_shard(shards, tmp_path):
    from seamless_interaction.access.loader import Shard
    from seamless_interaction.ray import windows

    tars, _ = shards
    local = [Shard.parse(t) for t in tars]
    size = sum(Path(t).stat().st_size for t in tars)
    assert size < windows.TASK_BYTES and windows._default_tasks(local) == 1  # a few MB: one task
    remote = [Shard.parse(f"https://hub.example/improvised/dev/0000/{i:04d}.tar") for i in range(3)]
    assert windows._default_tasks(local + remote) == 1 + 3  # a remote size is unknown: one task each
    big = tmp_path / "improvised" / "dev" / "0000"
    big.mkdir(parents=True)
    sparse = []
    for i in range(5):  # 5 x 0.4 of TASK_BYTES (sparse files): two tasks' worth, at most one per shard
        p = big / f"{i:04d}.tar"
        with open(p, "wb") as fh:
            fh.truncate(windows.TASK_BYTES * 2 // 5)
        sparse.append(Shard.parse(p))
    assert windows._default_tasks(sparse) == 2
    assert windows._default_tasks(sparse[:1]) == 1


def test_blocks_past_the_target_go_through_ray_as_made(ray_session, shards):
    """With a small ``target_max_block_size``, a task makes several blocks: each is one Arrow chunk per
    column (Ray joined none), all but a task's last are just past the target and none is 1.5 times
    it (Ray slices those), the last is no sliver, and the windows are still the loader's, each once."""
    from ray.data.block import BlockAccessor

    tars, catalog = shards
    ds = read_windows(tars, ALL, window_s=0.5, catalog=catalog, num_tasks=1)
    target = 1 << 20  # windows of ~250 KB here
    ds.context.target_max_block_size = target
    blocks = ray.get(ds.to_arrow_refs())
    assert len(blocks) >= 3
    for b in blocks:
        assert all(c.num_chunks == 1 for c in b.columns)
        assert b.nbytes < 1.5 * target
    assert all(b.nbytes > target for b in blocks[:-1])
    assert min(b.nbytes for b in blocks) > 0.25 * target
    items = [it for b in blocks for it in batch_to_items(BlockAccessor.for_block(b).to_batch_format("numpy"))]
    assert_same_items(items, reference(tars, catalog, modalities=ALL, window_s=0.5))
