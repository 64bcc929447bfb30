"""Dictionary round trip shared by the detector configs (:class:`TCConfig`, :class:`ARConfig`)."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from climviz.errors import ConfigError

_C = TypeVar("_C", bound="DictConfig")


def _plain(value: Any) -> Any:
    """Tuples (nested too) as lists, so the dictionary is what JSON gives back."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class DictConfig:
    """Mixin for config dataclasses: ``to_dict()`` (JSON-able) and ``from_dict()`` (strict keys)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dictionary of the settings (tuples become lists)."""
        return {k: _plain(v) for k, v in dataclasses.asdict(self).items()}  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[_C], d: dict[str, Any]) -> _C:
        """Build from a dictionary; unknown keys raise :class:`~climviz.errors.ConfigError`."""
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"{cls.__name__}: unknown key(s) {unknown}; expected some of {sorted(known)}")
        return cls(**d)
