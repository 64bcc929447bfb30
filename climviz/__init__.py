"""climviz: segment and study extreme weather in climate model output.

Open climate runs (:func:`open_run`), make synthetic ones for teaching
(:func:`synthetic_run`), train DeepLabv3+ / Tiramisu on Ray (:func:`train`),
predict masks (:func:`predict`), and study events (:mod:`climviz.events`) on
interactive maps (:mod:`climviz.viz`).

Heavy dependencies (torch, ray, holoviews) are imported on first use, so
``import climviz`` stays fast.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

# OpenMP threads that spin at barriers make torch 10-30x slower whenever another process shares
# the cores (Ray workers, a notebook beside a data loader). Passive waiting costs nothing when the
# cores are free. Read by libgomp when torch loads, so set it before climviz imports torch;
# an explicit user setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# eccodes (cfgrib's GRIB library, loaded by xarray as soon as it lists its engines in the first
# open_dataset) brings its own PROJ/SQLite. Loaded before pyproj, it leaves pyproj without its
# database: "UserWarning: pyproj unable to set PROJ database path", failing cartopy projections and
# a "double free or corruption" at exit. Loading pyproj first (when installed) avoids all three.
try:  # noqa: SIM105
    import pyproj  # noqa: F401
except ImportError:
    pass

from climviz._version import __version__
from climviz.errors import (
    CheckpointError,
    ClimvizError,
    ClusterError,
    ConfigError,
    DataError,
    FetchError,
    OutputError,
    OutputExistsError,
)
from climviz.accessor import register as _register_accessor

_register_accessor()  # ``ds.climviz`` / ``da.climviz`` on every xarray object

# public name -> module that defines it
_LAZY = {
    "open_run": "climviz.data.io",
    "write_run": "climviz.data.io",
    "validate_run": "climviz.data.io",
    "synthetic_run": "climviz.data.synthetic",
    "Normalizer": "climviz.data.normalize",
    "TrainConfig": "climviz.training.config",
    "TrainResult": "climviz.training.result",
    "train": "climviz.training.api",
    "predict": "climviz.inference.predict",
}
_SUBMODULES = ("data", "models", "training", "inference", "events", "labels", "viz", "cli")

__all__ = [
    "__version__",
    "ClimvizError",
    "DataError",
    "ConfigError",
    "CheckpointError",
    "FetchError",
    "ClusterError",
    "OutputError",
    "OutputExistsError",
    *_LAZY,
    *_SUBMODULES,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        module = importlib.import_module(f"climviz.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'climviz' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
