"""Declarative validation of config dataclasses: field metadata + one validator.

A config field states what it accepts in its metadata::

    epochs: int = field(default=10, metadata=spec(Int(1)))
    lr: float = field(default=1e-3, metadata=spec(Float(0.0, lo_open=True)))
    schedule: str = field(default="cosine", metadata=spec(Choice(SCHEDULES)))

and ``validate(self)`` (called from ``__post_init__``) runs the checks in field order.
A failed check raises :class:`~climviz.errors.ConfigError` with the message
``"<Class>.<field>: expected <what>, found <value>"``. Checks may normalize the value
(:class:`Choice` lower-cases it); :func:`coerce_numbers` turns integral floats into
ints and ints or numeric text into floats before validation (YAML reads ``1e3`` as a
float and ``1e-3`` as text).

Checks that involve several fields are plain callables ``check(obj, name)``, listed
after the field's own check (``spec(Int(1), after=some_function)``). :class:`OneOf`
accepts a fixed set of values (``4 or 8``, ``'cell' or 'global'``) and :class:`Rule`
any predicate with the words for what it accepts.

A class may word its messages differently by defining ``_field_message(name,
expected)`` (the model configs say ``"tiramisu option 'dropout' must be in [0, 1),
got 1.5"``); :func:`bad_value` uses it. :class:`DictConfig` gives a config class
``to_dict()`` (JSON-able, by :func:`plain`) and ``from_dict()`` (unknown keys refused).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from climviz.errors import ConfigError

__all__ = ["Bool", "Choice", "DictConfig", "Float", "Int", "OneOf", "Rule", "bad_value", "coerce_numbers",
           "plain", "spec", "validate"]

_KEY = "climviz_check"


def bad_value(obj: Any, name: str, expected: str) -> ConfigError:
    """``ConfigError("<Class>.<name>: expected <expected>, found <value!r>")``.

    A class defining ``_field_message(name, expected) -> str`` words the message itself.
    """
    custom = getattr(obj, "_field_message", None)
    if callable(custom):
        return ConfigError(custom(name, expected))
    return ConfigError(f"{type(obj).__name__}.{name}: expected {expected}, "
                       f"found {getattr(obj, name)!r}")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


@dataclass(frozen=True)
class Int:
    """An integer ``>= minimum`` (or None when ``optional``).

    ``coerce``: accept integral floats (``1e3`` in YAML) as ints.
    """

    minimum: int
    optional: bool = False
    coerce: bool = True

    def __call__(self, obj: Any, name: str) -> None:
        v = getattr(obj, name)
        if self.optional and v is None:
            return
        if not isinstance(v, int) or isinstance(v, bool) or v < self.minimum:
            raise bad_value(obj, name, f"an integer >= {self.minimum}"
                            + (" or None" if self.optional else ""))


@dataclass(frozen=True)
class Float:
    """A finite number in ``[lo, hi]`` (ends open when asked; None when ``optional``).

    ``units``: named in the message (``"kg m-1 s-1"``).
    """

    lo: float
    hi: float = math.inf
    lo_open: bool = False
    hi_open: bool = False
    optional: bool = False
    units: str = ""

    def __call__(self, obj: Any, name: str) -> None:
        v = getattr(obj, name)
        if self.optional and v is None:
            return
        ok = _is_number(v) and math.isfinite(v)
        if ok:
            ok = ((v > self.lo if self.lo_open else v >= self.lo)
                  and (v < self.hi if self.hi_open else v <= self.hi))
        if not ok:
            lo_s = f"> {self.lo}" if self.lo_open else f">= {self.lo}"
            hi_s = ("" if self.hi == math.inf
                    else (f" and < {self.hi}" if self.hi_open else f" and <= {self.hi}"))
            raise bad_value(obj, name, f"a finite number {lo_s}{hi_s}"
                            + (f" {self.units}" if self.units else "")
                            + (" or None" if self.optional else ""))


@dataclass(frozen=True)
class Choice:
    """One of ``choices`` (case-insensitive; stored lower-case)."""

    choices: tuple[str, ...]

    def __call__(self, obj: Any, name: str) -> None:
        v = getattr(obj, name)
        if not isinstance(v, str) or v.lower() not in self.choices:
            raise bad_value(obj, name, f"one of {list(self.choices)}")
        setattr(obj, name, v.lower())


@dataclass(frozen=True)
class Bool:
    """``True`` or ``False``."""

    def __call__(self, obj: Any, name: str) -> None:
        if not isinstance(getattr(obj, name), bool):
            raise bad_value(obj, name, "true or false")


def _words(values: Sequence[Any]) -> str:
    """``"4 or 8"``, ``"'cell', 'global' or None"``: the values as repr, joined for a message."""
    shown = [repr(v) for v in values]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " or " + shown[-1]


@dataclass(frozen=True)
class OneOf:
    """One of ``values`` exactly (compared with ``==``; no case folding, unlike :class:`Choice`).

    The message lists them: ``"expected 'wind', 'psl' or 'fixed'"``.

    Examples
    --------
    >>> from dataclasses import dataclass, field
    >>> @dataclass
    ... class Demo:
    ...     connectivity: int = field(default=4, metadata=spec(OneOf((4, 8))))
    ...     def __post_init__(self):
    ...         validate(self)
    >>> Demo(8).connectivity
    8
    >>> Demo(6)
    Traceback (most recent call last):
    ...
    climviz.errors.ConfigError: Demo.connectivity: expected 4 or 8, found 6
    """

    values: tuple[Any, ...]

    def __call__(self, obj: Any, name: str) -> None:
        v = getattr(obj, name)
        try:
            ok = any(v == x and type(v) is not bool or v is x for x in self.values)
        except (TypeError, ValueError):  # arrays compare element-wise
            ok = False
        if not ok:
            raise bad_value(obj, name, _words(self.values))


@dataclass(frozen=True)
class Rule:
    """A value for which ``ok(value)`` is true (or None when ``optional``).

    ``expected`` words what passes; ``ok`` raising TypeError or ValueError counts as a
    failure; ``convert`` (e.g. ``int``) is applied to a value that passed.
    """

    ok: Callable[[Any], bool]
    expected: str
    optional: bool = False
    convert: Callable[[Any], Any] | None = None

    def __call__(self, obj: Any, name: str) -> None:
        v = getattr(obj, name)
        if self.optional and v is None:
            return
        try:
            good = bool(self.ok(v))
        except (TypeError, ValueError):
            good = False
        if not good:
            raise bad_value(obj, name, self.expected)
        if self.convert is not None:
            setattr(obj, name, self.convert(v))


Check = Callable[[Any, str], None]


def spec(*checks: Check, after: Check | Sequence[Check] = ()) -> dict[str, Any]:
    """Field metadata holding ``checks`` (then ``after``, for cross-field rules)."""
    more = (after,) if callable(after) else tuple(after)
    return {_KEY: (*checks, *more)}


_FieldChecks = tuple[tuple[str, tuple[Check, ...], str], ...]
_CHECKS: dict[type, _FieldChecks] = {}


def _field_checks(cls: type) -> _FieldChecks:
    """Per field of dataclass ``cls``: name, checks, and how YAML numbers are coerced (``"int"``, ``"float"``, "").

    Worked out once per class (fields and their metadata do not change).
    """
    got = _CHECKS.get(cls)
    if got is None:
        out = []
        for f in dataclasses.fields(cls):
            checks = tuple(f.metadata.get(_KEY, ()))
            kind = ("int" if any(isinstance(c, Int) and c.coerce for c in checks)
                    else "float" if any(isinstance(c, Float) for c in checks) else "")
            out.append((f.name, checks, kind))
        got = _CHECKS[cls] = tuple(out)
    return got


def validate(obj: Any) -> None:
    """Run every field's checks, in field order; the first failure raises ConfigError."""
    for name, checks, _ in _field_checks(type(obj)):
        for check in checks:
            check(obj, name)


def coerce_numbers(obj: Any) -> None:
    """Coerce YAML-read numbers before :func:`validate`.

    Integral floats -> int for :class:`Int` fields; ints and numeric text -> float for
    :class:`Float` fields.
    """
    for name, _, kind in _field_checks(type(obj)):
        if not kind:
            continue
        v = getattr(obj, name)
        if kind == "int":
            if isinstance(v, float) and v.is_integer():
                setattr(obj, name, int(v))
            elif isinstance(v, numbers.Integral) and not isinstance(v, (bool, int)):  # numpy ints
                setattr(obj, name, int(v))
        elif type(v) is not float:
            if isinstance(v, numbers.Real) and not isinstance(v, (bool, float)):  # ints, numpy numbers
                setattr(obj, name, float(v))
            elif isinstance(v, str):
                try:
                    setattr(obj, name, float(v))
                except ValueError:
                    pass


def plain(value: Any) -> Any:
    """``value`` as JSON/YAML gives it back: tuples (nested too) as lists, keys as text, paths as text.

    Dataclasses inside become dictionaries of their fields.

    Examples
    --------
    >>> from pathlib import Path
    >>> plain({"pairs": (("U850", "V850"),), 3: Path("runs/a.nc")})
    {'pairs': [['U850', 'V850']], '3': 'runs/a.nc'}
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


_C = TypeVar("_C", bound="DictConfig")


class DictConfig:
    """Mixin for config dataclasses: ``to_dict()`` (JSON-able) and ``from_dict()`` (strict keys)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dictionary of the settings (tuples become lists, nested dataclasses dicts)."""
        return {f.name: plain(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls: type[_C], d: Mapping[str, Any]) -> _C:
        """Build from a mapping; unknown keys raise :class:`~climviz.errors.ConfigError` naming them."""
        if not isinstance(d, Mapping):
            raise ConfigError(f"{cls.__name__}: expected a mapping of keys to values, found {type(d).__name__}")
        known = sorted(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]
        unknown = sorted(str(k) for k in set(d) - set(known))
        if unknown:
            close = difflib.get_close_matches(unknown[0], known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{cls.__name__}: unknown key(s) {unknown}{hint}; expected some of {known}")
        return cls(**dict(d))
