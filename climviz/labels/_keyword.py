"""``config=`` as a keyword: a detector config given positionally still works for one release.

The detectors take their settings as the keyword ``config=`` (the vocabulary of
:mod:`climviz._compat`: a detector or tracker configuration is ``config=``). Calls
written before, ``detect_tc(ds, TCConfig(...))``, keep working with a
:class:`DeprecationWarning` naming the new spelling.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable
from typing import Any, TypeVar, cast

__all__ = ["config_keyword"]

F = TypeVar("F", bound=Callable[..., Any])


def config_keyword(func: F) -> F:
    """Decorate ``func`` (with a keyword-only ``config``) to accept it positionally, with a warning.

    The positional place of ``config`` is right after ``func``'s positional parameters.

    Examples
    --------
    >>> import warnings
    >>> @config_keyword
    ... def detect(ds, *, config=None):
    ...     return config
    >>> detect(1, config="c")
    'c'
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     detect(1, "c")
    'c'
    >>> w[0].category.__name__, "use config=" in str(w[0].message)
    ('DeprecationWarning', True)
    """
    params = inspect.signature(func).parameters
    if params.get("config") is None or params["config"].kind is not inspect.Parameter.KEYWORD_ONLY:
        raise TypeError(f"{func.__qualname__}: expected a keyword-only parameter 'config'")
    n_pos = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params.values())
    where = func.__qualname__

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if len(args) > n_pos:
            if len(args) > n_pos + 1:
                raise TypeError(f"{where}() takes {n_pos} positional arguments and config=, "
                                f"but {len(args)} were given")
            if "config" in kwargs:
                raise TypeError(f"{where}() got the config both positionally and as config=")
            warnings.warn(f"{where}(): the config as a positional argument is deprecated, use config=... "
                          "instead (the positional form will be removed in the next release)",
                          DeprecationWarning, stacklevel=2)
            kwargs["config"] = args[n_pos]
            args = args[:n_pos]
        return func(*args, **kwargs)

    return cast(F, wrapper)
