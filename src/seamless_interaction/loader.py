"""The streaming PyTorch loader's public home: ``from seamless_interaction.loader import WindowDataset``.

The implementation lives in the access layer (:mod:`seamless_interaction.access.loader`); this module keeps
the short import path the README documents. Needs the ``loader`` extra (torch).
"""

from seamless_interaction.access.loader import ShardWarning, WindowDataset, collate_windows, resolve_shards

__all__ = ["ShardWarning", "WindowDataset", "collate_windows", "resolve_shards"]
