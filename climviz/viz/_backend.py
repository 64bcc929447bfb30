"""Load the HoloViews/GeoViews Bokeh plotting backend on first use (no hv.extension needed)."""

from __future__ import annotations

_NOTEBOOK_READY = False


def _in_notebook_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    ip = get_ipython()
    return ip is not None and getattr(ip, "kernel", None) is not None


def ensure_bokeh() -> None:
    """Register the Bokeh renderer (and GeoViews' Bokeh plots) if nobody has yet.

    In a script or a test, importing the plotting modules is enough to build,
    render and save plots. In a Jupyter kernel, the first call also runs
    ``pn.extension("tabulator", inline=True)`` and ``hv.extension("bokeh")`` once:
    they load BokehJS, Panel and the Tabulator table of the explorer into the page,
    with the JavaScript inlined in the notebook output (not fetched from a CDN), so
    a notebook saved or exported to HTML still draws its maps offline.
    """
    global _NOTEBOOK_READY
    import holoviews as hv

    if "bokeh" not in hv.Store.renderers:
        import holoviews.plotting.bokeh  # noqa: F401
    import geoviews.plotting.bokeh  # noqa: F401

    if hv.Store.current_backend != "bokeh":
        hv.Store.set_current_backend("bokeh")
    if not _NOTEBOOK_READY and _in_notebook_kernel():
        import panel as pn

        # "tabulator": the explorer's event table (pn.widgets.Tabulator) needs its JS loaded up front.
        pn.extension("tabulator", inline=True)
        hv.extension("bokeh", logo=False, inline=True)
        _NOTEBOOK_READY = True


def fixed_size_hook(plot, element) -> None:
    """HoloViews hook for maps sized by ``frame_width``/``frame_height``: no Bokeh W-1005 warning.

    HoloViews marks such figures ``sizing_mode="fixed"`` without ``width``/``height``
    (the frame, not the whole figure, has the fixed size), and Bokeh's validator then
    prints ``W-1005 (FIXED_SIZING_MODE)`` each time the figure is saved or shown,
    although the size is fully determined. Leaving ``sizing_mode`` unset keeps the
    same layout and says nothing.
    """
    plot.state.sizing_mode = None
