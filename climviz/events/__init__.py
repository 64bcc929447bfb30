"""Events on the sphere: connected components of masks, tables, tracks and statistics.

Follows the climviz event conventions (see DESIGN.md): components per time step
and class with 8-connectivity, periodic in longitude and not across the poles;
cell areas on a sphere of radius 6371.0 km; area-weighted centroids with a
circular longitude mean.

>>> import climviz as cv
>>> lab, tab = cv.events.label_table(masks["mask"], fields=ds[["PSL", "TMQ"]])  # doctest: +SKIP
>>> trk = cv.events.track(tab, lab)  # doctest: +SKIP

Public names are imported on first use, so ``import climviz.events`` (and the
command line) stays light. Some functions share their module's name
(``label``, ``table``, ``track``, ``compare``, ``skill``): ``climviz.events.label``
is always the function; the module is ``sys.modules["climviz.events.label"]``
(``from climviz.events.label import ...`` works as usual).
"""

from __future__ import annotations

import sys
import types
from typing import Any

from climviz.utils.lazy import lazy_exports

_LAZY = {
    "EARTH_RADIUS_KM": "climviz.events.geometry",
    "cell_areas": "climviz.events.geometry",
    "circular_mean_deg": "climviz.events.geometry",
    "great_circle_km": "climviz.events.geometry",
    "lat_edges": "climviz.events.geometry",
    "lon_widths": "climviz.events.geometry",
    "is_global_lon": "climviz.events.geometry",
    "label": "climviz.events.label",
    "label_step": "climviz.events.label",
    "table": "climviz.events.table",
    "label_table": "climviz.events.table",
    "track": "climviz.events.track",
    "track_masks": "climviz.events.track",
    "overlaps": "climviz.events.track",
    "Tracks": "climviz.events.track",
    "TrackConfig": "climviz.events.track",
    "frequency": "climviz.events.stats",
    "summarize": "climviz.events.stats",
    "run_years": "climviz.events.stats",
    "land_lookup": "climviz.events.stats",
    "compare": "climviz.events.compare",
    "Comparison": "climviz.events.compare",
    "skill": "climviz.events.skill",
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


class _EventsPackage(types.ModuleType):
    """Keeps public functions from being replaced by same-named submodules on import."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _LAZY and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _EventsPackage
