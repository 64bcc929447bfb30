"""Events on the sphere: connected components of masks, tables, tracks and statistics.

Follows the climviz event conventions (see DESIGN.md): components per time step
and class with 8-connectivity, periodic in longitude and not across the poles;
cell areas on a sphere of radius 6371.0 km; area-weighted centroids with a
circular longitude mean.

Submodules are imported on first use, so ``import climviz.events`` is light.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "EARTH_RADIUS_KM": "climviz.events.geometry",
    "cell_areas": "climviz.events.geometry",
    "great_circle_km": "climviz.events.geometry",
    "circular_mean_deg": "climviz.events.geometry",
    "lat_edges": "climviz.events.geometry",
    "lon_widths": "climviz.events.geometry",
    "label": "climviz.events.label",
    "label_step": "climviz.events.label",
    "table": "climviz.events.table",
    "label_table": "climviz.events.table",
    "track": "climviz.events.track",
    "Tracks": "climviz.events.track",
    "TrackConfig": "climviz.events.track",
    "frequency": "climviz.events.stats",
    "summarize": "climviz.events.stats",
    "compare": "climviz.events.compare",
    "skill": "climviz.events.skill",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'climviz.events' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
