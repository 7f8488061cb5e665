"""Ray front end (optional extra ``[ray]``): stream aligned windows, download and index on a cluster.

- :func:`read_windows`: the streaming loader's windows as a ``ray.data.Dataset``; read tasks are
  planned runs of whole interactions, so each joins partners itself. :func:`batch_to_items` turns a
  numpy batch back into the loader's items for ``collate_windows``.
- :func:`download`: the CLI's download plan as Ray tasks writing into one (shared) folder; the
  driver writes the manifest; one Hub resolve limiter for the whole job.
- :func:`build_index`: the conversation index built a few archives per task; the driver writes it.

``ray`` itself is imported only when these run, so importing this package costs nothing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Eager: cheap, and ``download`` is also the name of its module (imported by every download task),
# which would otherwise shadow the function here.
from seamless_interaction.ray.cluster import ResolveLimiter, connect
from seamless_interaction.ray.download import DownloadError, DownloadResult, download, plan_download

if TYPE_CHECKING:
    from seamless_interaction.ray.index import IndexUnavailableError, build_index
    from seamless_interaction.ray.windows import WindowsSelectionError, batch_to_items, read_windows

# On first use: they import the catalog tables and pandas, which a Ray worker running a download
# task does not need (its imports are repeated in every worker process Ray starts: ~0.3 s of CPU).
_LAZY = {
    "IndexUnavailableError": "index", "build_index": "index",
    "WindowsSelectionError": "windows", "batch_to_items": "windows", "read_windows": "windows",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)


__all__ = [
    "DownloadError", "DownloadResult", "IndexUnavailableError", "ResolveLimiter", "WindowsSelectionError",
    "batch_to_items", "build_index", "connect", "download", "plan_download", "read_windows",
]
