"""``build_index`` on Ray: the hook for the conversation index (``operations/index.py``).

Distributing the build needs one step per archive that returns its part (a table) instead of writing it,
so that the driver alone writes the parts and consolidates (as ``download`` does with the manifest).
:func:`seamless_interaction.operations.index.build_index` keeps that step inside itself and writes into
the index folder from every thread, so until it exposes one the hook raises
:class:`IndexUnavailableError` rather than fall back silently to one machine.
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
    """Build the conversation index of ``selection`` with one Ray task per archive (not available yet)."""
    raise IndexUnavailableError("build_index on Ray needs a per-archive step from seamless_interaction."
                                "operations.index, which this version does not expose; build the index on one "
                                "machine with `seamless-interaction index build`")
