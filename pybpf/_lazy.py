"""Package attributes imported on first use (PEP 562), so that importing a package
does not import every module behind its public names."""

from __future__ import annotations

import importlib
from typing import Any, Callable, Dict, MutableMapping

__all__ = ["lazy_exports"]


def lazy_exports(package: str, homes: Dict[str, str],
                 namespace: MutableMapping[str, Any]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``homes`` maps each public name to the
    submodule defining it, imported when the name is first asked for; the value is then
    kept in ``namespace`` (the package's ``globals()``), so later look-ups are plain."""
    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{home}"), name)
        namespace[name] = value
        return value
    return __getattr__
