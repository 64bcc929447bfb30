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
after the field's own check (``spec(Int(1), after=some_function)``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from climviz.errors import ConfigError

__all__ = ["Bool", "Choice", "Float", "Int", "bad_value", "coerce_numbers", "spec", "validate"]

_KEY = "climviz_check"


def bad_value(obj: Any, name: str, expected: str) -> ConfigError:
    """``ConfigError("<Class>.<name>: expected <expected>, found <value!r>")``."""
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
                            + (" or null" if self.optional else ""))


@dataclass(frozen=True)
class Float:
    """A finite number in ``[lo, hi]`` (ends open when asked; None when ``optional``)."""

    lo: float
    hi: float = math.inf
    lo_open: bool = False
    hi_open: bool = False
    optional: bool = False

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
                            + (" or null" if self.optional else ""))


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


Check = Callable[[Any, str], None]


def spec(*checks: Check, after: Check | Sequence[Check] = ()) -> dict[str, Any]:
    """Field metadata holding ``checks`` (then ``after``, for cross-field rules)."""
    more = (after,) if callable(after) else tuple(after)
    return {_KEY: (*checks, *more)}


def validate(obj: Any) -> None:
    """Run every field's checks, in field order; the first failure raises ConfigError."""
    for f in dataclasses.fields(obj):
        for check in f.metadata.get(_KEY, ()):
            check(obj, f.name)


def coerce_numbers(obj: Any) -> None:
    """Coerce YAML-read numbers before :func:`validate`.

    Integral floats -> int for :class:`Int` fields; ints and numeric text -> float for
    :class:`Float` fields.
    """
    for f in dataclasses.fields(obj):
        checks = f.metadata.get(_KEY, ())
        v = getattr(obj, f.name)
        if any(isinstance(c, Int) and c.coerce for c in checks):
            if isinstance(v, float) and v.is_integer():
                setattr(obj, f.name, int(v))
        elif any(isinstance(c, Float) for c in checks):
            if isinstance(v, int) and not isinstance(v, bool):
                setattr(obj, f.name, float(v))
            elif isinstance(v, str):
                try:
                    setattr(obj, f.name, float(v))
                except ValueError:
                    pass
