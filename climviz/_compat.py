"""One public vocabulary, and the old spellings it replaced kept for one release.

climviz names one concept one way across its public API: the event classes are
``classes`` (one class as an int or a name such as ``"tc"``, ``"AR"`` or
``"tropical_cyclone"``, or a sequence of them), a confidence level is ``ci``
(e.g. 0.95), a detector or tracker configuration is the keyword ``config=``.

:func:`renamed_kwargs` keeps an old keyword working for one release: a call that
uses it gets a :class:`DeprecationWarning` naming the new spelling, and the
function sees the new keyword (converted where the meaning changed, e.g.
``alpha=0.05`` -> ``ci=0.95``). :func:`rename_kwargs` does the same on a
``**kwargs`` dict, for functions that cannot be wrapped. :func:`config_keyword`
keeps a config given positionally working where ``config=`` became keyword-only.
:func:`class_ids` and :func:`class_id` turn what users write for classes into class
numbers.

Examples
--------
>>> import warnings
>>> from climviz._compat import renamed_kwargs
>>> @renamed_kwargs(cls="classes", alpha=("ci", lambda a: 1 - a))
... def f(mask=None, *, classes=1, ci=0.95):
...     return classes, round(ci, 2)
>>> f(classes=2)
(2, 0.95)
>>> with warnings.catch_warnings(record=True) as w:
...     warnings.simplefilter("always")
...     f(cls=2, alpha=0.1)
(2, 0.9)
>>> str(w[0].message)
"f(): keyword 'cls' is deprecated, use 'classes=' instead (the old spelling will be removed in the next release)"
"""

from __future__ import annotations

import functools
import inspect
import operator
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any, SupportsIndex, TypeVar, cast

from climviz.data.schema import CLASS_KEYS, CLASSES
from climviz.errors import ConfigError

__all__ = ["ClassesLike", "class_id", "class_ids", "config_keyword", "is_one_class", "rename_kwargs",
           "renamed_kwargs"]

F = TypeVar("F", bound=Callable[..., Any])

#: A new keyword name, or ``(new name, conversion of the old value)``.
Renamed = str | tuple[str, Callable[[Any], Any]]

#: One class (int or name) or several.
ClassesLike = int | str | Iterable[int | str]


def _table(renames: Mapping[str, Renamed]) -> dict[str, tuple[str, Callable[[Any], Any] | None]]:
    out: dict[str, tuple[str, Callable[[Any], Any] | None]] = {}
    for old, new in renames.items():
        if isinstance(new, str):
            out[old] = (new, None)
        else:
            out[old] = (new[0], new[1])
    return out


def rename_kwargs(where: str, kwargs: dict[str, Any], renames: Mapping[str, Renamed],
                  *, stacklevel: int = 3) -> dict[str, Any]:
    """Return ``kwargs`` with old keyword names replaced by new ones, warning for each.

    Parameters
    ----------
    where
        The function's name as users call it (``"climviz.events.frequency"``).
    kwargs
        The keywords a call received; not modified.
    renames
        ``{old: new}`` or ``{old: (new, convert)}`` where ``convert`` maps an old
        value to the new meaning (``alpha`` -> ``ci``: ``lambda a: 1 - a``).
    stacklevel
        Passed to :func:`warnings.warn`; the default points at the caller of the
        function that calls this one.

    Returns
    -------
    dict
        The keywords under their new names.

    Raises
    ------
    TypeError
        When a call gives both the old and the new name.

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     rename_kwargs("f", {"cls": 1, "seed": 0}, {"cls": "classes"})
    {'seed': 0, 'classes': 1}
    """
    table = _table(renames)
    if not kwargs.keys() & table.keys():
        return kwargs
    out = dict(kwargs)
    for old, (new, convert) in table.items():
        if old not in out:
            continue
        if new in out:
            raise TypeError(f"{where}() got both {old!r} (deprecated) and {new!r}; "
                            f"give only {new}=")
        value = out.pop(old)
        out[new] = convert(value) if convert is not None else value
        warnings.warn(f"{where}(): keyword {old!r} is deprecated, use {new + '='!r} instead "
                      f"(the old spelling will be removed in the next release)",
                      DeprecationWarning, stacklevel=stacklevel)
    return out


def renamed_kwargs(**renames: Renamed) -> Callable[[F], F]:
    """Decorator: accept old keyword names for one release, with a DeprecationWarning.

    Parameters
    ----------
    **renames
        ``old="new"``, or ``old=("new", convert)`` when the meaning changed.

    Returns
    -------
    callable
        A decorator; the wrapped function keeps its signature and docstring, and
        lists its old names in ``__climviz_renamed__``.

    Examples
    --------
    >>> @renamed_kwargs(cls="classes")
    ... def g(*, classes=1):
    ...     return classes
    >>> g.__climviz_renamed__
    {'cls': 'classes'}
    """
    table = _table(renames)

    def decorate(func: F) -> F:
        where = func.__qualname__

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if kwargs and kwargs.keys() & table.keys():
                kwargs = rename_kwargs(where, kwargs, renames, stacklevel=3)
            return func(*args, **kwargs)

        wrapper.__climviz_renamed__ = {old: new for old, (new, _) in table.items()}  # type: ignore[attr-defined]
        return cast(F, wrapper)

    return decorate


_NAMES: dict[str, int] = {}
for _i, _name in CLASSES.items():
    _NAMES[_name] = _i
    _NAMES[_name.replace("_", " ")] = _i
for _i, _key in enumerate(CLASS_KEYS):
    _NAMES[_key] = _i


def config_keyword(func: F) -> F:
    """Decorate ``func`` (with a keyword-only ``config``) to accept it positionally, with a warning.

    The positional place of ``config`` is right after ``func``'s positional parameters.

    Examples
    --------
    >>> import warnings
    >>> from climviz._compat import config_keyword
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


def is_one_class(classes: ClassesLike) -> bool:
    """Whether ``classes`` names one class (an int or a name) rather than a sequence.

    Examples
    --------
    >>> is_one_class("tc"), is_one_class(2), is_one_class([2])
    (True, True, False)
    """
    return (isinstance(classes, str) or not isinstance(classes, Iterable)
            or getattr(classes, "ndim", None) == 0)


def class_id(c: SupportsIndex | str, name: str = "classes") -> int:
    """The class number of one class given as a number or a name.

    Parameters
    ----------
    c
        ``0, 1, 2`` or a name, case-insensitive: ``"background"``, ``"tc"``,
        ``"tropical_cyclone"``, ``"ar"``, ``"atmospheric_river"``.
    name
        The argument's name, for the error message.

    Returns
    -------
    int

    Raises
    ------
    ConfigError
        (a ValueError) for an unknown name or a number outside the classes.

    Examples
    --------
    >>> class_id("TC"), class_id("atmospheric_river"), class_id(2)
    (1, 2, 2)
    """
    expected = (f"a class number in {sorted(CLASSES)} or a name in "
                f"{sorted(k for k in _NAMES if ' ' not in k)}")
    if isinstance(c, str):
        key = c.strip().lower()
        if key not in _NAMES:
            raise ConfigError(f"{name}: expected {expected}, found {c!r}")
        return _NAMES[key]
    try:
        i = operator.index(c)
    except TypeError:
        i = -1
    if isinstance(c, bool) or i not in CLASSES:
        raise ConfigError(f"{name}: expected {expected}, found {c!r}")
    return i


def class_ids(classes: ClassesLike, name: str = "classes") -> tuple[int, ...]:
    """Class numbers of one class or a sequence of them (ints or names), in the order given.

    Parameters
    ----------
    classes
        One class (``1``, ``"tc"``) or several (``(1, 2)``, ``["tc", "ar"]``).
    name
        The argument's name, for the error message.

    Returns
    -------
    tuple of int

    Raises
    ------
    ConfigError
        (a ValueError) for an unknown class or an empty sequence.

    Examples
    --------
    >>> class_ids("ar"), class_ids(["TC", 2]), class_ids((1, 2))
    ((2,), (1, 2), (1, 2))
    """
    if is_one_class(classes):
        return (class_id(cast("int | str", classes), name),)
    out = tuple(class_id(c, name) for c in cast("Iterable[int | str]", classes))
    if not out:
        raise ConfigError(f"{name}: expected at least one class, found none")
    return out
