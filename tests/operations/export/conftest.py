"""Fixtures for the export tests; the builders live in export_builders.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from export_builders import MISMATCH_SAMPLES, DirtyTree, bundle, clone, extract


@pytest.fixture(scope="session")
def local_tree(sample_mirror, tmp_path_factory) -> Path:
    """The mirror sample as a downloaded tree: ``root/{label}/{split}/{batch}/{archive}/{id}.*``."""
    return extract(sample_mirror, tmp_path_factory.mktemp("export_local") / "data")


@pytest.fixture(scope="session")
def dirty_tree(sample_mirror, local_tree, tmp_path_factory) -> DirtyTree:
    root = tmp_path_factory.mktemp("export_dirty") / "data"
    a, b = next(p for p in sample_mirror.pairs if p[0] in sample_mirror.suffixed or p[1] in sample_mirror.suffixed)
    sa, sb = bundle(local_tree, a), bundle(local_tree, b)
    clone(sa, root, "V00_S0001_I00000001_P0001A")
    clone(sb, root, "V00_S0001_I00000001_P0002", drop_samples=MISMATCH_SAMPLES)
    clone(sa, root, "V00_S0002_I00000002_P0003")
    clone(sb, root, "V00_S0002_I00000002_P0004", vad=[])
    clone(sa, root, "V00_S0003_I00000003_P0005B")
    with np.load(sa["npz"]) as npz:
        n = len(npz["smplh:is_valid"])
    rows = np.arange(n, dtype=np.float32)
    clone(sa, root, "V00_S0004_I00000004_P0007", extra_arrays={
        "movement_v4:pred_vertices": np.stack([np.stack([rows, rows + 1, rows + 2], axis=-1)] * 5, axis=1),
        "movement_v4:emotion_valence": (rows / max(n, 1)).reshape(n, 1),
    })
    clone(sb, root, "V00_S0004_I00000004_P0008")
    return DirtyTree(root, "V00_S0001_I00000001", "V00_S0002_I00000002", "V00_S0003_I00000003",
                     "V00_S0004_I00000004")

