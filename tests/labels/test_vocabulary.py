"""One vocabulary: detector configs are the keyword ``config=``; the positional form warns for one release."""

from __future__ import annotations

import inspect
import typing

import numpy as np
import pandas as pd
import pytest

import climviz.data.formats.products as products
import climviz.data.io as io_module
from climviz.labels import (
    ARConfig,
    TCConfig,
    detect_ar,
    detect_tc,
    detect_tc_nodes,
    integrated_vapour_transport,
    stitch_nodes,
    tc_from_nodes,
)
from tests.labels.conftest import as_run, filament_fields, grid, vortex_fields

LAT, LON = grid(1.0, 1.25)


def storm_run(n_steps: int = 10):
    fields = [vortex_fields(LAT, LON, 15.0 + 0.2 * k, 150.0 - 1.5 * k) for k in range(n_steps)]
    return as_run(fields, LAT, LON, freq="6h")


def filament_run():
    return as_run([filament_fields(LAT, LON, 40.0, 200.0, length_km=3000, width_km=500)], LAT, LON)


def old_and_new(func, args, config):
    """The result of the old positional call (which must warn, naming config=) and of the keyword call."""
    with pytest.warns(DeprecationWarning, match=rf"{func.__name__}\(\): the config as a positional argument "
                                                r"is deprecated, use config=\.\.\. instead"):
        old = func(*args, config)
    return old, func(*args, config=config)


def test_detect_tc_nodes_and_detect_tc_positional_config_warn_and_agree():
    ds = storm_run()
    cfg = TCConfig(min_duration_h=24.0)
    old, new = old_and_new(detect_tc_nodes, (ds,), cfg)
    assert len(new) == 10  # one centre per step
    pd.testing.assert_frame_equal(old, new)
    old, new = old_and_new(detect_tc, (ds,), cfg)
    assert new.stitched and len(new.tracks) == 1
    pd.testing.assert_frame_equal(old.nodes, new.nodes)
    pd.testing.assert_frame_equal(old.tracks, new.tracks)
    np.testing.assert_array_equal(old.mask.values, new.mask.values)


def test_stitch_nodes_and_tc_from_nodes_positional_config_warn_and_agree():
    ds = storm_run()
    cfg = TCConfig(min_duration_h=24.0)
    nodes = detect_tc_nodes(ds, config=cfg)
    hours = np.arange(10) * 6.0
    (old_ids, old_tracks), (ids, tracks) = old_and_new(stitch_nodes, (nodes, hours), cfg)
    assert len(tracks) == 1 and set(ids) == {0}
    np.testing.assert_array_equal(old_ids, ids)
    pd.testing.assert_frame_equal(old_tracks, tracks)
    old, new = old_and_new(tc_from_nodes, (nodes, ds), cfg)
    pd.testing.assert_frame_equal(old.tracks, new.tracks)


def test_detect_ar_and_ivt_positional_config_warn_and_agree():
    ds = filament_run()
    cfg = ARConfig(threshold=300.0)
    old, new = old_and_new(integrated_vapour_transport, (ds,), cfg)
    np.testing.assert_array_equal(old.values, new.values)
    old, new = old_and_new(detect_ar, (ds,), cfg)
    assert new.regions["is_ar"].sum() == 1
    pd.testing.assert_frame_equal(old.regions, new.regions)
    np.testing.assert_array_equal(old.mask.values, new.mask.values)


def test_config_given_twice_or_extra_positionals_are_type_errors():
    ds = filament_run()
    with pytest.raises(TypeError, match="both positionally and as config="):
        detect_ar(ds, ARConfig(), config=ARConfig())
    with pytest.raises(TypeError, match=r"takes 1 positional arguments and config=, but 3 were given"):
        detect_ar(ds, ARConfig(), 3)


@pytest.mark.parametrize("func", [detect_tc_nodes, detect_tc, stitch_nodes, tc_from_nodes, detect_ar,
                                  integrated_vapour_transport])
def test_config_is_keyword_only_in_the_signature(func):
    assert inspect.signature(func).parameters["config"].kind is inspect.Parameter.KEYWORD_ONLY


@pytest.mark.parametrize("func, name, options", [
    (io_module.open_run, "nan_policy", {"raise", "mask"}),
    (io_module.open_run, "check_values", {"lazy", "eager", "none"}),
    (io_module.write_run, "format", {"netcdf", "zarr", "deepcam"}),
    (io_module.open_run, "channels", {"available"}),
    (products.find_channels, "channels", {"available"}),
    (products.canonical_variables, "channels", {"available"}),
    (detect_tc_nodes, "coarse", {"auto"}),
    (detect_tc, "coarse", {"auto"}),
])
def test_string_options_are_typed_literals(func, name, options):
    hint = typing.get_type_hints(func)[name]

    def literals(t):
        if typing.get_origin(t) is typing.Literal:
            return set(typing.get_args(t))
        return set().union(*(literals(a) for a in typing.get_args(t)))

    assert literals(hint) == options
