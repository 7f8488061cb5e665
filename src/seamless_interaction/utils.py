"""The official toolkit's ``seamless_interaction.utils``: ``setup_logging`` and ``recursively_cast_to_float32``.

Kept for code that imports them. This package itself never calls ``setup_logging``: importing it
writes no log file and configures no handler (see the package docstring).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from seamless_interaction.base.formats import cast_float32

__all__ = ["recursively_cast_to_float32", "setup_logging"]


def setup_logging(name: str, log_file: str = "seamless_interaction_fs.log", level: int = logging.INFO
                  ) -> logging.Logger:
    """The logger ``name``, with the official handlers: ``log_file`` and the console.

    Unlike the official function this configures the named logger, not the root logger through
    ``logging.basicConfig``, and adds its handlers once however often it is called.
    """
    logger = logging.getLogger(name)
    logger.setLevel(level)
    if not getattr(logger, "_seamless_setup", False):
        fmt = logging.Formatter("%(asctime)s - %(levelname)s - %(message)s")
        for handler in (logging.FileHandler(log_file), logging.StreamHandler()):
            handler.setFormatter(fmt)
            logger.addHandler(handler)
        logger._seamless_setup = True  # type: ignore[attr-defined]
    return logger


def recursively_cast_to_float32(data: Any) -> Any:
    """float64 arrays become float32, inside lists and dicts too; everything else is returned as is."""
    if isinstance(data, np.ndarray):
        return cast_float32(data)
    if isinstance(data, list):
        return [recursively_cast_to_float32(item) for item in data]
    if isinstance(data, dict):
        return {k: recursively_cast_to_float32(v) for k, v in data.items()}
    return data
