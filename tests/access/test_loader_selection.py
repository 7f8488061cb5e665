"""WindowDataset over a selection: file ids, or a table with a file_id column (e.g. an fs.query result)."""

from __future__ import annotations

import warnings

import pyarrow as pa
import pytest

pytest.importorskip("torch", reason="the loader is the optional torch extra")

from seamless_interaction.access.loader import ShardWarning, WindowDataset


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    from seamless_interaction.catalog.tables import Catalog
    from seamless_interaction.mirror.generate import build_mirror

    root = tmp_path_factory.mktemp("mirror") / "m"
    info = build_mirror(root)
    return info, Catalog.load(str(root / "assets"), root.parent / "cache")


def _items(ds) -> list[dict]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ShardWarning)
        return list(ds)


def test_a_table_of_file_ids_selects_their_interactions(mirror):
    info, catalog = mirror
    a, b = info.split_pairs[0]  # partners in two archives: both shards are read
    other = next(p for p in info.pairs if a not in p and not set(p) & set(info.placeholder)
                 and not set(p) & set(info.missing_archive_ids))
    table = pa.table({"file_id": [a, other[0]], "speech_s": [1.0, 2.0]})
    ds = WindowDataset(table, window_s=0.25, catalog=catalog, hf_url=str(info.hub_dir),
                       feature_keys=["smplh:is_valid"])
    items = _items(ds)
    assert {it["key"] for it in items} == {a[:19], other[0][:19]}
    assert {tuple(it["file_ids"]) for it in items} == {tuple(sorted((a, b))), tuple(sorted(other))}


def test_a_list_of_file_ids_without_pairs(mirror):
    info, catalog = mirror
    a, _ = info.split_pairs[0]
    ds = WindowDataset([a], window_s=0.25, catalog=catalog, hf_url=str(info.hub_dir), dyadic=False,
                       feature_keys=["smplh:is_valid"])
    items = _items(ds)
    assert items and {fid for it in items for fid in it["file_ids"]} == {a}


def test_file_ids_need_the_catalog(mirror):
    info, _ = mirror
    with pytest.raises(ValueError, match="catalog= and hf_url="):
        WindowDataset([info.file_ids[0]])
