"""Fixtures for the loading tests; the builders live in loader_builders.py."""

from __future__ import annotations

from fractions import Fraction

import pytest
from loader_builders import make_bundle


@pytest.fixture(scope="session")
def bundles():
    """Cached bundles: 30 fps (60 frames) and 30000/1001 fps (75 frames) with partners."""
    return {
        "V00_S0001_I00000001_P0001": make_bundle(
            "V00_S0001_I00000001_P0001", 60, Fraction(30),
            annotations={"1P-IS": [{"annotation": "x", "start_ts": 0, "end_ts": 1}]}),
        "V00_S0001_I00000001_P0002A": make_bundle("V00_S0001_I00000001_P0002A", 60, Fraction(30)),
        "V01_S0002_I00000002_P0003": make_bundle("V01_S0002_I00000002_P0003", 75, Fraction(30000, 1001)),
        "V01_S0002_I00000002_P0004": make_bundle("V01_S0002_I00000002_P0004", 75, Fraction(30000, 1001),
                                                 transcript=False),
    }
