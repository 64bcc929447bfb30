"""The ``.climviz`` xarray accessor: verbs give what the functions (or a hand computation) give."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import climviz as cv
from climviz.accessor import ClimvizAccessor, class_value


@pytest.fixture(scope="module")
def run() -> xr.Dataset:
    return cv.synthetic_run(6, shape=(32, 48), seed=3).load()


def test_import_registers_the_accessor_on_dataset_and_dataarray(run):
    assert isinstance(run.climviz, ClimvizAccessor)
    assert isinstance(run["TMQ"].climviz, ClimvizAccessor)


@pytest.mark.parametrize("cls, value", [(1, 1), ("tc", 1), ("TC", 1), ("tropical_cyclone", 1),
                                        (2, 2), ("ar", 2), ("atmospheric_river", 2), (0, 0)])
def test_class_value_accepts_values_keys_and_flag_meanings(cls, value):
    assert class_value(cls) == value


@pytest.mark.parametrize("bad", [3, -1, "storm", True, 1.0])
def test_class_value_rejects_anything_else_naming_it(bad):
    with pytest.raises(cv.ConfigError, match=repr(bad).replace(".", r"\.")):
        class_value(bad)


def test_frequency_is_the_fraction_of_steps_in_the_class(run):
    labels = run["LABELS"].values
    want_tc = (labels == 1).mean(axis=0)
    want_ar = (labels == 2).mean(axis=0)
    np.testing.assert_allclose(run.climviz.frequency("tc").values, want_tc)
    np.testing.assert_allclose(run["LABELS"].climviz.frequency("atmospheric_river").values, want_ar)



def test_frequency_takes_numpy_class_numbers_as_events_frequency_does(run):
    # np.unique(mask) and mask values give numpy integers; events.frequency takes them, and
    # the accessor did not fail with "'numpy.int64' object is not iterable"
    want = (run["LABELS"].values == 1).mean(axis=0)
    np.testing.assert_allclose(run.climviz.frequency(np.int64(1)).values, want)
    both = run.climviz.frequency([np.uint8(1), "ar"])
    assert both["class"].values.tolist() == [1, 2]
    with pytest.raises(cv.ConfigError, match="found np.int64.7.|found 7"):
        run.climviz.frequency(np.int64(7))

def test_events_counts_the_connected_pieces_of_each_class(run):
    from scipy import ndimage

    tab = run.climviz.events()
    labels = run["LABELS"].values
    # independent count: 8-connected pieces per step and class, joined across the seam by hand
    for t in range(labels.shape[0]):
        for cls in (1, 2):
            wrapped = np.concatenate([labels[t], labels[t][:, :1]], axis=1) == cls
            lab, n = ndimage.label(wrapped, structure=np.ones((3, 3)))
            seam = {(a, b) for a, b in zip(lab[:, 0], lab[:, -1]) if a and b and a != b}
            want = n - len({frozenset(p) for p in seam})
            got = int(((tab["step"] == t) & (tab["class"] == cls)).sum())
            assert got == want, (t, cls)


def test_events_with_fields_adds_their_statistics(run):
    labels, tab = run.climviz.events(fields=run[["PSL"]], return_labels=True)
    assert {"PSL_min", "PSL_mean", "PSL_max"} <= set(tab.columns)
    row = tab.iloc[0]
    inside = labels.isel(time=int(row["step"])).values == row["event"]
    assert row["PSL_min"] == pytest.approx(float(run["PSL"].isel(time=int(row["step"])).values[inside].min()))


def test_a_dataset_without_a_mask_is_a_clear_error(run):
    with pytest.raises(cv.DataError, match="expected a mask dataset"):
        run[["TMQ"]].climviz.frequency("tc")


def test_run_verbs_need_a_dataset(run):
    with pytest.raises(cv.DataError, match="needs a run"):
        run["TMQ"].climviz.label()


def test_label_gives_the_label_run_masks(run):
    got = run.climviz.label(ar=False)
    want = cv.labels.label_run(run, ar=False)
    xr.testing.assert_equal(got["mask"], want["mask"])


def test_predict_with_the_bundled_checkpoint_matches_predict(run):
    ckpt = Path(__file__).resolve().parents[1] / "data_samples" / "checkpoint" / "checkpoint.pt"
    got = run.climviz.predict(ckpt, progress=False)
    want = cv.predict(ckpt, run, progress=False)
    np.testing.assert_array_equal(got["mask"].values, want["mask"].values)


def test_map_draws_the_named_variable(run):
    import holoviews as hv

    plot = run.climviz.map("PSL", mask="LABELS", time=run.time.values[0])
    images = plot.traverse(lambda el: el, [hv.Image])
    assert [str(d) for d in images[0].vdims][0] == "PSL"
    # the image holds the field's values (the same set of numbers; the map repeats the seam column)
    # (PSL may be shown in hPa: the dimension's unit says which)
    dim = images[0].vdims[0]
    to_pa = 100.0 if "hPa" in (dim.unit or dim.label) else 1.0
    np.testing.assert_allclose(np.unique(images[0].dimension_values("PSL")) * to_pa,
                               np.unique(run["PSL"].isel(time=0).values), rtol=1e-5)
