"""Events on the sphere: connected components of masks, tables, tracks and statistics.

Follows the climviz event conventions (see DESIGN.md): components per time step
and class with 8-connectivity, periodic in longitude and not across the poles;
cell areas on a sphere of radius 6371.0 km; area-weighted centroids with a
circular longitude mean.

>>> import climviz as cv
>>> lab, tab = cv.events.label_table(masks["mask"], fields=ds[["PSL", "TMQ"]])  # doctest: +SKIP
>>> trk = cv.events.track(tab, lab)  # doctest: +SKIP

The function names equal some module names (``label``, ``table``, ``track``,
``compare``, ``skill``), so the functions are imported here eagerly (numpy, scipy and pandas only;
xarray and dask are imported inside the functions that need them).
"""

from __future__ import annotations

import importlib
from typing import Any

from climviz.events.geometry import (
    EARTH_RADIUS_KM,
    cell_areas,
    circular_mean_deg,
    great_circle_km,
    lat_edges,
    lon_widths,
)
from climviz.events.label import label, label_step
from climviz.events.table import label_table, table
from climviz.events.track import TrackConfig, Tracks, overlaps, track, track_masks
from climviz.events.stats import frequency, land_lookup, run_years, summarize
from climviz.events.compare import Comparison, compare
from climviz.events.skill import skill

_LAZY: dict[str, str] = {}

__all__ = sorted([
    "EARTH_RADIUS_KM", "cell_areas", "circular_mean_deg", "great_circle_km", "lat_edges", "lon_widths",
    "label", "label_step", "label_table", "table",
    "TrackConfig", "Tracks", "overlaps", "track", "track_masks",
    "frequency", "summarize", "run_years", "land_lookup", "Comparison", "compare", "skill",
])


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'climviz.events' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
