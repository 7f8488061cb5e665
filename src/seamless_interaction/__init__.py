"""seamless_interaction: find, fetch, verify, load and look at the Seamless Interaction dataset.

Importing the package has no side effects: no log file, no network, no global random seeding.
Logging goes through the standard ``logging`` module under the ``seamless_interaction`` logger.
The main entry points are re-exported lazily so that ``import seamless_interaction`` stays light.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

# The whole error tree is light and is what callers catch, so it is imported eagerly.
from seamless_interaction.base.errors import (
    AccessDeniedError,
    CatalogError,
    ExportError,
    InsufficientSpaceError,
    IntegrityError,
    InvalidIdError,
    MissingPartError,
    NoCandidatesError,
    NotDownloadedError,
    SeamlessError,
    TransferCancelled,
    TransferError,
    UnknownIdError,
    UnsafeArchiveError,
    UnsafePathError,
    VideoDeviceError,
)

if TYPE_CHECKING:  # what the lazy names resolve to, for type checkers and IDEs
    from seamless_interaction.base.config import DatasetConfig
    from seamless_interaction.base.ids import FileId
    from seamless_interaction.catalog.tables import Catalog
    from seamless_interaction.fs import SeamlessInteractionFS
    from seamless_interaction.local.manifest import Manifest
    from seamless_interaction.remote.transfer import Transfer

__version__ = "0.1.0"

_LAZY = {
    "Catalog": "seamless_interaction.catalog.tables",
    "DatasetConfig": "seamless_interaction.base.config",
    "FileId": "seamless_interaction.base.ids",
    "Manifest": "seamless_interaction.local.manifest",
    "SeamlessInteractionFS": "seamless_interaction.fs",
    "Transfer": "seamless_interaction.remote.transfer",
}
__all__ = [
    "AccessDeniedError",
    "Catalog",
    "CatalogError",
    "DatasetConfig",
    "ExportError",
    "FileId",
    "InsufficientSpaceError",
    "IntegrityError",
    "InvalidIdError",
    "Manifest",
    "MissingPartError",
    "NoCandidatesError",
    "NotDownloadedError",
    "SeamlessError",
    "SeamlessInteractionFS",
    "Transfer",
    "TransferCancelled",
    "TransferError",
    "UnknownIdError",
    "UnsafeArchiveError",
    "UnsafePathError",
    "VideoDeviceError",
    "__version__",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'seamless_interaction' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
