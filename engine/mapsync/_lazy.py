"""Names a package re-exports but imports on first use (PEP 562), so that commands which never touch them
(`mapsync validate`, `mapsync test`) do not pay for importing them."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, origins: Mapping[str, str], namespace: dict[str, Any]) -> Callable[[str], Any]:
    """A module `__getattr__` for `package`: each name of `origins` imported from the module it maps to when
    first asked for, then kept in the package's `namespace` (its globals) so that it is looked up once."""

    def __getattr__(name: str) -> Any:
        origin = origins.get(name)
        if origin is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(origin), name)
        namespace[name] = value
        return value

    return __getattr__
