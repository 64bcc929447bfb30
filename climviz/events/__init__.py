"""Events on the sphere: connected components of masks, tables, tracks and statistics.

Follows the climviz event conventions (see DESIGN.md): components per time step
and class with 8-connectivity (4 on request), periodic in longitude only on a
global grid and never across the poles;
cell areas on a sphere of radius 6371.0 km; area-weighted centroids with a
circular longitude mean.

>>> import climviz as cv
>>> lab, tab = cv.events.label_table(masks["mask"], fields=ds[["PSL", "TMQ"]])  # doctest: +SKIP
>>> trk = cv.events.track(tab, lab)  # doctest: +SKIP

Public names are imported on first use, so ``import climviz.events`` (and the
command line) stays light. The modules are named apart from the functions they
hold: ``labelling`` (``label``, ``label_step``), ``tables`` (``table``,
``label_table``), ``tracking`` (``track``, ``track_masks``, ``Tracks``,
``TrackConfig``), ``comparison`` (``compare``), ``scores`` (``skill``),
``geometry``, ``stats``, ``best_track`` (IBTrACS matching) and ``distributed``
(``label_table_on_ray``, ``frequency_on_ray``: the per-step work of a long run on Ray
workers, block by block, resumable); ``climviz.events.label`` is always the function.

One vocabulary: a class argument is ``classes``, one class as a number or a name
(``1``, ``"tc"``, ``"tropical_cyclone"``; ``2``, ``"ar"``) or a sequence of them
(``frequency(mask, "tc")``, ``compare(a, b, classes=("tc", "ar"))``); a confidence
level is ``ci`` (0.95); a tracker configuration is ``config=TrackConfig(...)``.
Old spellings (``frequency(mask, cls=1)``) still work for one release and warn
with a :class:`DeprecationWarning` naming the new one (see :mod:`climviz._compat`).
"""

from __future__ import annotations

from climviz.utils.lazy import lazy_exports

_LAZY = {
    "EARTH_RADIUS_KM": "climviz.events.geometry",
    "cell_areas": "climviz.events.geometry",
    "circular_mean_deg": "climviz.events.geometry",
    "great_circle_km": "climviz.events.geometry",
    "lat_edges": "climviz.events.geometry",
    "lon_widths": "climviz.events.geometry",
    "is_global_lon": "climviz.events.geometry",
    "label": "climviz.events.labelling",
    "label_step": "climviz.events.labelling",
    "table": "climviz.events.tables",
    "label_table": "climviz.events.tables",
    "track": "climviz.events.tracking",
    "track_masks": "climviz.events.tracking",
    "overlaps": "climviz.events.tracking",
    "Tracks": "climviz.events.tracking",
    "TrackConfig": "climviz.events.tracking",
    "frequency": "climviz.events.stats",
    "summarize": "climviz.events.stats",
    "run_years": "climviz.events.stats",
    "land_lookup": "climviz.events.stats",
    "compare": "climviz.events.comparison",
    "Comparison": "climviz.events.comparison",
    "skill": "climviz.events.scores",
    "read_ibtracs": "climviz.events.best_track",
    "storms_at": "climviz.events.best_track",
    "match_best_track": "climviz.events.best_track",
    "BestTrackMatch": "climviz.events.best_track",
    "label_table_on_ray": "climviz.events.distributed",
    "frequency_on_ray": "climviz.events.distributed",
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)

