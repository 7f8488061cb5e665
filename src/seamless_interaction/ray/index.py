"""``build_index`` on Ray: the hook for the metadata index (``operations/index.py``).

The index operation is not in this tree yet; until it lands, the hook raises
:class:`IndexUnavailableError` (rather than a silent single-machine fallback).
"""

from __future__ import annotations

import logging
from typing import Any

from seamless_interaction.base.errors import SeamlessError

logger = logging.getLogger(__name__)

__all__ = ["IndexUnavailableError", "build_index"]


class IndexUnavailableError(SeamlessError, NotImplementedError):
    """The index operation this hook distributes is not part of this installation."""


def build_index(selection: Any = None, **kwargs: Any) -> Any:
    """Build the metadata index of ``selection`` with one Ray task per archive (not available yet)."""
    raise IndexUnavailableError("build_index on Ray needs seamless_interaction.operations.index, which this "
                                "version does not have; build the index on one machine or upgrade")
