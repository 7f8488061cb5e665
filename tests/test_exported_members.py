"""The public surface: the top-level exports are complete and sorted, and every public module says what it
exports (``__all__``), names that exist, and leaves none of its public classes or functions out.
(After httpx's tests/test_exported_members.py.)"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

import seamless_interaction
from seamless_interaction.base import errors

# Streamlit page scripts run their page when imported; the package's __main__ runs the CLI.
SCRIPTS = ("seamless_interaction.__main__", "seamless_interaction.app.Welcome", "seamless_interaction.app.views.")


def _defined_here(module: ModuleType) -> set[str]:
    """Public classes and functions whose home is ``module`` (not ones it imports)."""
    return {name for name, obj in vars(module).items()
            if not name.startswith("_") and (inspect.isclass(obj) or inspect.isfunction(obj))
            and obj.__module__ == module.__name__}


def test_top_level_exports_are_complete_and_sorted() -> None:
    names = seamless_interaction.__all__
    assert names == sorted(set(names), key=lambda n: (n.startswith("_"), n)), "sorted, unique"
    for name in names:
        assert getattr(seamless_interaction, name) is not None
    # Everything public that the package binds, lazily or not, is listed; and the whole error tree is there.
    ours = {n for n in dir(seamless_interaction) if not n.startswith("_")
            and getattr(getattr(seamless_interaction, n), "__module__", "").startswith("seamless_interaction")}
    assert ours <= set(names)
    assert set(errors.__all__) <= set(names)
    assert set(errors.__all__) == {n for n, obj in vars(errors).items()
                                   if inspect.isclass(obj) and issubclass(obj, Exception)}


def _public_modules() -> list[str]:
    out = []
    for info in pkgutil.walk_packages(seamless_interaction.__path__, "seamless_interaction."):
        if not info.name.startswith(SCRIPTS):
            out.append(info.name)
    return out


@pytest.mark.parametrize("name", _public_modules())
def test_every_public_module_declares_its_exports(name: str) -> None:
    try:
        module = importlib.import_module(name)
    except ImportError as exc:  # an optional extra that is not installed
        pytest.skip(f"{name}: {exc}")
    assert hasattr(module, "__all__"), f"{name} has no __all__"
    listed = list(module.__all__)
    assert len(listed) == len(set(listed)), f"{name}: duplicates in __all__"
    for item in listed:
        assert hasattr(module, item), f"{name}.__all__ names {item!r}, which does not exist"
    missing = _defined_here(module) - set(listed)
    assert not missing, f"{name}: public but not in __all__: {sorted(missing)}"
