"""Each package's public surface is exactly its sorted __all__ (as httpx checks its own)."""

from __future__ import annotations

import importlib
import inspect
from types import ModuleType

import pytest

PACKAGES = ["mapsync", "mapsync.connectors", "mapsync.errors", "mapsync.mapping", "mapsync.redact", "mapsync.sandbox",
            "mapsync.spec", "mapsync.state", "mapsync.sync"]


def _public_names(module: ModuleType) -> set[str]:
    """Names a user would take for the package's API: not private, not a module, and defined in the
    package itself (a helper imported from elsewhere, like an error it raises, is not its API)."""
    names = set()
    for name, value in vars(module).items():
        if name.startswith("_") or inspect.ismodule(value) or name == "annotations":
            continue
        origin = getattr(value, "__module__", None)
        if origin is not None and not str(origin).startswith(module.__name__):
            continue
        names.add(name)
    return names


def _isort_order(name: str) -> tuple[int, str]:
    """Constants, then classes, then functions: the order ruff keeps __all__ in."""
    kind = 0 if name.isupper() else 1 if name[:1].isupper() else 2
    return kind, name


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_sorted_and_matches_the_public_names(name: str) -> None:
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert exported == sorted(exported, key=_isort_order), f"{name}.__all__ is not sorted"
    for item in exported:
        assert hasattr(module, item), f"{name}.__all__ names {item!r}, which it does not have"
    unexported = _public_names(module) - set(exported)
    assert not unexported, f"{name} has public names missing from __all__: {sorted(unexported)}"
