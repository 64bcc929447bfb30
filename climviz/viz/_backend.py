"""Load the HoloViews/GeoViews Bokeh plotting backend on first use (scripts need no hv.extension)."""

from __future__ import annotations


def ensure_bokeh() -> None:
    """Register the Bokeh renderer and GeoViews' Bokeh plots if nobody has yet.

    In a notebook, ``hv.extension("bokeh")`` does this and also loads BokehJS into
    the page; in a script or a test, importing the plotting modules is enough to
    build, render and save plots.
    """
    import holoviews as hv

    if "bokeh" not in hv.Store.renderers:
        import holoviews.plotting.bokeh  # noqa: F401
    import geoviews.plotting.bokeh  # noqa: F401

    if hv.Store.current_backend != "bokeh":
        hv.Store.set_current_backend("bokeh")
