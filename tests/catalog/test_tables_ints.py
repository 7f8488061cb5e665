"""The Arrow-to-numpy reader the catalog uses instead of pyarrow's to_numpy (which imports pandas)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from seamless_interaction.catalog.tables import _ints


def test_ints_nulls_offsets_and_chunks() -> None:
    arr = pa.array([5, None, 7, 8, None, 10], pa.int8())
    assert _ints(arr).tolist() == [5, -1, 7, 8, -1, 10]
    assert _ints(arr.slice(2, 3)).tolist() == [7, 8, -1]  # a slice keeps its parent's buffers
    chunked = pa.chunked_array([pa.array([1, 2], pa.int64()), pa.array([None, 4], pa.int64())])
    out = _ints(chunked)
    assert out.dtype == np.int64 and out.tolist() == [1, 2, -1, 4]
    assert _ints(pa.array([], pa.int32())).tolist() == []
    assert _ints(pa.array([3, 4], pa.uint16())).dtype == np.uint16
