"""The generators under docs/ are scripts, not modules of the package: loaded from their files."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def load_script(name: str) -> ModuleType:
    """docs/<name>.py, loaded as a module."""
    spec = importlib.util.spec_from_file_location(name.lstrip("_"), ROOT / "docs" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
