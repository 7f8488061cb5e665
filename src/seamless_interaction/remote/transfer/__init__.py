"""HTTP transfer engine: one pooled client, retries, byte-level resume, segments, locks, verification.

Every download route (per-file CDN, Hub archives, tar range reads) goes through :class:`Transfer`.
The package is split along its seams:

- ``policy``: header parsing, the retry policy, the token's scope (pure, no I/O);
- ``client``: the pooled httpx client with connection slots, status rules and retries;
- ``disk``: free space, hashing, the download lock, the part's sidecar;
- ``part``: one file's download into its part (single stream or segments);
- ``engine``: :class:`Transfer` and the fetch_many scheduler.
"""

from __future__ import annotations

from seamless_interaction.remote.transfer.disk import check_free_space, fsync_dir
from seamless_interaction.remote.transfer.engine import Transfer
from seamless_interaction.remote.transfer.records import (
    FetchResult,
    Job,
    NullProgress,
    Progress,
    RemoteInfo,
    TqdmProgress,
)

__all__ = [
    "FetchResult",
    "Job",
    "NullProgress",
    "Progress",
    "RemoteInfo",
    "TqdmProgress",
    "Transfer",
    "check_free_space",
    "fsync_dir",
]
