"""Lazy exports for package ``__init__`` modules (PEP 562 module ``__getattr__``).

A subpackage lists its public names and the submodule that defines each; the
submodule is imported only when the name is first used, so ``import climviz.X``
stays light (no torch, Ray or HoloViews at import time).

In a package's ``__init__.py`` (here ``climviz.data``'s):

>>> __getattr__, __dir__ = lazy_exports("climviz.data", {"open_run": "climviz.data.io"})
>>> __getattr__("open_run") is cv.open_run  # imported on first use
True
>>> "open_run" in __dir__()
True
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    module_name: str, mapping: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Build ``__getattr__`` and ``__dir__`` for a package with lazily imported names.

    Parameters
    ----------
    module_name : str
        The package's ``__name__`` (the module whose globals receive the names).
    mapping : Mapping[str, str]
        Public name -> dotted name of the module that defines it.

    Returns
    -------
    (__getattr__, __dir__) : tuple of callables
        ``__getattr__(name)`` imports ``mapping[name]``, caches the attribute in
        the package's globals (later lookups skip ``__getattr__``) and returns it;
        an unknown name raises :class:`AttributeError` naming the package.
        ``__dir__()`` lists the package's globals, its ``__all__`` and the lazy names.
    """
    lazy = dict(mapping)

    def __getattr__(name: str) -> Any:
        if name in lazy:
            value = getattr(importlib.import_module(lazy[name]), name)
            vars(sys.modules[module_name])[name] = value
            return value
        raise AttributeError(f"module {module_name!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        namespace = vars(sys.modules[module_name])
        return sorted(set(namespace) | set(namespace.get("__all__", ())) | set(lazy))

    return __getattr__, __dir__
