"""seamless_interaction: find, fetch, verify, load and look at the Seamless Interaction dataset.

Importing the package has no side effects: no log file, no network, no global random seeding.
Logging goes through the standard ``logging`` module under the ``seamless_interaction`` logger.
The main entry points are re-exported lazily so that ``import seamless_interaction`` stays light.
"""

import logging

from seamless_interaction.base.errors import SeamlessError

__version__ = "0.1.0"

_LAZY = {
    "SeamlessInteractionFS": "seamless_interaction.fs",
    "DatasetConfig": "seamless_interaction.base.config",
    "Catalog": "seamless_interaction.catalog.tables",
    "Transfer": "seamless_interaction.remote.transfer",
    "Manifest": "seamless_interaction.local.manifest",
    "FileId": "seamless_interaction.base.ids",
}
__all__ = ["SeamlessError", "__version__", *_LAZY]

logging.getLogger(__name__).addHandler(logging.NullHandler())


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'seamless_interaction' has no attribute {name!r}")
