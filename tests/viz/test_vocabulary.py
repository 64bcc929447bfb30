"""One vocabulary in viz, report and the accessor: ``classes``, ``ci``, ``frame_width``/``frame_height``.

The new spellings give what a hand computation (or events.compare, the one source of the
bootstrap) gives; the old spellings (``cls``, ``alpha``, ``width``/``height``) still work for one
release, warn with a DeprecationWarning naming the new keyword, and give identical results.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import climviz as cv
import climviz.viz as viz
from climviz.errors import DataError
from climviz.report import class_frequency_percent
from tests.viz.test_stats import masks_pair


def _same(a: xr.Dataset | xr.DataArray, b: xr.Dataset | xr.DataArray) -> None:
    xr.testing.assert_identical(a, b)


def test_class_frequency_classes_by_number_name_and_old_cls():
    a, _ = masks_pair()
    want = (a.values == 2).mean(axis=0)
    new = viz.class_frequency(a, classes=cv.data.AR)
    np.testing.assert_array_equal(new.values, want)
    _same(viz.class_frequency(a, classes="ar"), new)
    _same(viz.class_frequency(a, "AR"), new)
    with pytest.warns(DeprecationWarning, match=r"'cls' is deprecated, use 'classes='"):
        old = viz.class_frequency(a, cls=2)
    _same(old, new)
    with pytest.raises(DataError, match="class must be"):
        viz.class_frequency(a, classes="background")
    with pytest.raises(TypeError, match="both 'cls'"):
        viz.class_frequency(a, cls=1, classes=1)


def test_frequency_difference_ci_is_the_interval_events_compare_computes_and_alpha_is_one_minus_ci():
    import climviz.events as events

    a, b = masks_pair()
    new = viz.frequency_difference(a, b, classes="tc", block_steps=4, ci=0.8, n_boot=300, seed=2)
    ref = events.compare(a, b, classes=(1,), block_steps=4, n_boot=300, ci=0.8, seed=2).maps
    np.testing.assert_array_equal(new["ci_low"].values, ref["ci_low_tropical_cyclone"].values)
    np.testing.assert_array_equal(new["ci_high"].values, ref["ci_high_tropical_cyclone"].values)
    assert new.attrs["ci"] == 0.8 and new.attrs["alpha"] == pytest.approx(0.2)
    assert new["significant"].attrs["long_name"] == "80% interval of b - a excludes 0"
    with pytest.warns(DeprecationWarning, match=r"'(cls|alpha)' is deprecated, use '(classes|ci)='") as rec:
        old = viz.frequency_difference(a, b, cls=1, block_steps=4, alpha=0.2, n_boot=300, seed=2)
    assert {str(w.message).split("keyword ")[1].split(" ")[0] for w in rec} == {"'cls'", "'alpha'"}
    # 1 - 0.2 is 0.8 to the last bit, so every number, interval and attribute is the same
    _same(old, new)
    with pytest.raises(DataError, match=r"ci must be in \(0, 1\), found 95"):
        viz.frequency_difference(a, b, 1, block_steps=4, ci=95)


def test_difference_map_and_frequency_map_old_spellings_draw_the_same(bokeh):
    a, b = masks_pair()
    kw = dict(block_steps=4, n_boot=200, seed=0)
    new = viz.difference_map(a, b, classes=1, ci=0.9, **kw)
    with pytest.warns(DeprecationWarning, match=r"'(cls|alpha)' is deprecated, use '(classes|ci)='"):
        old = viz.difference_map(a, b, cls=1, alpha=0.1, **kw)
    (pn,), (po,) = ([e for e in ov if e.group == "Significant"] for ov in (new, old))
    assert pn.label == po.label == "significant (90%)"
    pd.testing.assert_frame_equal(pn.dframe(), po.dframe())
    res = viz.frequency_difference(a, b, 1, ci=0.9, **kw)
    assert len(pn) == int(res["significant"].sum())
    fn = viz.frequency_map(a, classes="tc")
    with pytest.warns(DeprecationWarning, match="use 'classes='"):
        fo = viz.frequency_map(a, cls=1)
    img_n, img_o = ([e for e in ov if e.group == "Image"][0] for ov in (fn, fo))
    np.testing.assert_array_equal(img_n.dimension_values(2, flat=False), img_o.dimension_values(2, flat=False))
    assert np.nanmax(img_n.dimension_values(2)) == pytest.approx(100.0)  # cell (0, 0) is always TC


def test_histogram_frame_size_words_as_the_maps_and_old_width_height(bokeh):
    table = pd.DataFrame({"class": [1, 1, 2], "area_km2": [1e5, 2e5, 3e6]})
    new = viz.histogram(table, bins=3, frame_width=333, frame_height=222)
    with pytest.warns(DeprecationWarning, match=r"'(width|height)' is deprecated, use 'frame_(width|height)='"):
        old = viz.histogram(table, bins=3, width=333, height=222)
    for ov, size in ((new, (333, 222)), (old, (333 - 74, 222 - 74))):  # old: the whole figure's size
        for h in ov:
            plot = h.opts.get("plot").kwargs
            assert (plot["frame_width"], plot["frame_height"]) == size
    fig = bokeh.render(new)
    assert (fig.frame_width, fig.frame_height) == (333, 222)
    for hn, ho in zip(new, old):
        assert hn.dimension_values("count").tolist() == ho.dimension_values("count").tolist()


def test_histogram_old_width_height_give_the_old_figure_not_a_larger_frame(bokeh):
    # width/height used to be the whole figure (500 x 320 by default); the default frame
    # 426 x 246 was measured to give that figure, so the old defaults spelled out must give
    # the same frame as no size at all (and not a 574 x 394 figure)
    table = pd.DataFrame({"class": [1, 1, 2], "area_km2": [1e5, 2e5, 3e6]})
    default = bokeh.render(viz.histogram(table, bins=3))
    with pytest.warns(DeprecationWarning):
        spelled = bokeh.render(viz.histogram(table, bins=3, width=500, height=320))
    assert (default.frame_width, default.frame_height) == (426, 246)
    assert (spelled.frame_width, spelled.frame_height) == (426, 246)


def test_report_class_frequency_percent_classes_and_old_cls():
    a, _ = masks_pair()
    new = class_frequency_percent(a, classes="tc")
    np.testing.assert_allclose(new.values, 100.0 * (a.values == 1).mean(axis=0), rtol=1e-6)
    assert new.name == "frequency_tc" and new.attrs == {"long_name": "tropical cyclone frequency", "units": "%"}
    with pytest.warns(DeprecationWarning, match="'cls' is deprecated, use 'classes='"):
        old = class_frequency_percent(a, cls=1)
    _same(old, new)
    with pytest.raises(DataError, match="expected 1 .TC. or 2 .AR., found 0"):
        class_frequency_percent(a, 0)


def test_accessor_frequency_classes_and_old_cls():
    run = cv.synthetic_run(4, shape=(32, 48), seed=1)
    want = (run["LABELS"].values == cv.data.TC).mean(axis=0)
    new = run.climviz.frequency(classes=cv.data.TC)
    np.testing.assert_allclose(new.values, want)
    with pytest.warns(DeprecationWarning, match="'cls' is deprecated, use 'classes='"):
        old = run.climviz.frequency(cls="tc")
    _same(old, new)
