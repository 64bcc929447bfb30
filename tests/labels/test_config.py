"""TCConfig / ARConfig: checks declared in field metadata (climviz._fields), one dict round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from climviz._fields import DictConfig, plain
from climviz.errors import ConfigError
from climviz.labels import ARConfig, TCConfig
from climviz.labels.tc import ClosedContour, Threshold


@pytest.mark.parametrize("cls, changes, message", [
    (TCConfig, {"merge_distance_km": 0}, r"TCConfig\.merge_distance_km: expected a finite number > 0\.0, found 0"),
    (TCConfig, {"max_gap_h": -1}, r"TCConfig\.max_gap_h: expected a finite number >= 0\.0, found -1"),
    (TCConfig, {"max_abs_lat": 95}, r"TCConfig\.max_abs_lat: expected .*<= 90\.0, found 95"),
    (TCConfig, {"connectivity": 6}, r"TCConfig\.connectivity: expected 4 or 8, found 6"),
    (TCConfig, {"connectivity": True}, r"TCConfig\.connectivity: expected 4 or 8, found True"),
    (TCConfig, {"periodic": "yes"}, r"TCConfig\.periodic: expected None, True or False, found 'yes'"),
    (TCConfig, {"stitch": "always"}, r"TCConfig\.stitch: expected True, False or 'auto', found 'always'"),
    (TCConfig, {"warm_core": "hot"},
     r"TCConfig\.warm_core: expected 'closed_contour', 'annulus' or 'off', found 'hot'"),
    (TCConfig, {"stitch_method": "greedy"}, r"TCConfig\.stitch_method: expected 'assignment' or 'te', found 'greedy'"),
    (TCConfig, {"warm_core_outer_radius_km": 200.0},
     r"TCConfig\.warm_core_outer_radius_km: expected more than warm_core_radius_km \(300\.0\), found 200\.0"),
    (TCConfig, {"min_mask_radius_km": 900.0},
     r"TCConfig\.min_mask_radius_km: expected at most max_mask_radius_km \(800\.0\), found 900\.0"),
    (TCConfig, {"warm_core_vars": ()}, r"TCConfig\.warm_core_vars: expected at least one temperature variable"),
    (TCConfig, {"thickness_vars": ("Z300",)}, r"TCConfig\.thickness_vars: expected two height variables"),
    (TCConfig, {"wind_vars": [("U850",)]}, r"TCConfig\.wind_vars: expected \(u, v\) name pairs"),
    (TCConfig, {"time_step_h": 0}, r"TCConfig\.time_step_h: expected .*> 0\.0 or None, found 0"),
    (TCConfig, {"candidate_chunk": 0}, r"TCConfig\.candidate_chunk: expected an integer >= 1, found 0"),
    (TCConfig, {"time_block": 2.5}, r"TCConfig\.time_block: expected an integer >= 1, found 2\.5"),
    (TCConfig, {"range_km": float("nan")}, r"TCConfig\.range_km: expected a finite number > 0\.0, found nan"),
    (TCConfig, {"thresholds": [5]}, r"TCConfig\.thresholds: expected Threshold, a TE string or a dict, found 5"),
    (TCConfig, {"closed_contours": [{"field": "PSL"}]}, r"TCConfig\.closed_contours: .*delta"),
    (ARConfig, {"percentile": 100}, r"ARConfig\.percentile: expected a finite number > 0\.0 and < 100\.0 or None"),
    (ARConfig, {"percentile_scope": "time"}, r"ARConfig\.percentile_scope: expected 'cell' or 'global', found 'time'"),
    (ARConfig, {"threshold": -1}, r"ARConfig\.threshold: expected a finite number >= 0\.0 kg m-1 s-1, found -1"),
    (ARConfig, {"ivt_scale": 0}, r"ARConfig\.ivt_scale: expected a finite number > 0\.0, found 0"),
    (ARConfig, {"exclude_tropics_deg": 90}, r"ARConfig\.exclude_tropics_deg: expected .*< 90\.0 or None, found 90"),
    (ARConfig, {"time_block": 0}, r"ARConfig\.time_block: expected an integer >= 1, found 0"),
    (ARConfig, {"wind_vars": [("U850", "V850", "W850")]}, r"ARConfig\.wind_vars: expected \(u, v\) name pairs"),
    (ARConfig, {"periodic": "wrap"}, r"ARConfig\.periodic: expected None, True or False, found 'wrap'"),
])
def test_a_bad_value_names_class_field_expected_and_found(cls, changes, message):
    with pytest.raises(ConfigError, match=message):
        cls(**changes)
    with pytest.raises(ConfigError, match=message):  # the dictionary route checks the same way
        cls.from_dict(changes)


def test_good_values_pass_and_are_normalized():
    cfg = TCConfig(max_abs_lat=np.float32(40), time_block=np.int64(8), candidate_chunk=64.0,
                   connectivity=8, periodic=False, stitch=True, warm_core="off", warm_core_vars=())
    assert cfg.max_abs_lat == 40.0 and type(cfg.max_abs_lat) is float
    assert cfg.time_block == 8 and type(cfg.time_block) is int
    assert cfg.candidate_chunk == 64 and type(cfg.candidate_chunk) is int
    assert (cfg.connectivity, cfg.periodic, cfg.stitch) == (8, False, True)
    ar = ARConfig(percentile=95, percentile_scope="global", exclude_tropics_deg=None, threshold=0)
    assert (ar.percentile, ar.threshold, ar.exclude_tropics_deg) == (95.0, 0.0, None)


def test_yaml_numbers_read_as_text_are_numbers():
    # PyYAML reads 5e-5 and 1e3 (no dot) as strings; the configs take them as numbers
    d = yaml.safe_load("min_duration_h: 1e2\nrange_km: 1e3\ntime_block: 8\n")
    assert isinstance(d["range_km"], str)
    cfg = TCConfig.from_dict(d)
    assert (cfg.min_duration_h, cfg.range_km, cfg.time_block) == (100.0, 1000.0, 8)
    with pytest.raises(ConfigError, match=r"TCConfig\.range_km: expected a finite number > 0\.0, found 'far'"):
        TCConfig(range_km="far")


def test_criteria_from_te_strings_and_dicts_round_trip_through_json():
    cfg = TCConfig(closed_contours=["PSL,200.0,5.5,0", {"field": "_AVG(T200,T500)", "delta": -0.4,
                                                        "distance_km": 889.6}],
                   thresholds=[Threshold("_CYC(VORT850)", ">=", 5e-5, 300.0)])
    assert isinstance(cfg.closed_contours[0], ClosedContour) and isinstance(cfg.closed_contours[1], ClosedContour)
    assert cfg.closed_contours[0].distance_km == pytest.approx(5.5 * 111.19492664455873)
    d = json.loads(json.dumps(cfg.to_dict()))
    assert d["closed_contours"][1] == {"field": "_AVG(T200,T500)", "delta": -0.4, "distance_km": 889.6,
                                       "search_km": 0.0}
    assert d["wind_vars"] == [["U850", "V850"], ["UBOT", "VBOT"]]
    assert TCConfig.from_dict(d) == cfg
    ar = ARConfig(percentile=90, wind_vars=[["UBOT", "VBOT"]])
    assert ARConfig.from_dict(json.loads(json.dumps(ar.to_dict()))) == ar


def test_unknown_keys_are_named_with_a_suggestion():
    with pytest.raises(ConfigError, match=r"TCConfig: unknown key\(s\) \['mask_radius'\] "
                                          r"\(did you mean 'mask_radius_km'\?\)"):
        TCConfig.from_dict({"mask_radius": 3})
    with pytest.raises(ConfigError, match=r"ARConfig: expected a mapping of keys to values, found list"):
        ARConfig.from_dict([("threshold", 3)])  # type: ignore[arg-type]


def test_one_dict_round_trip_for_the_detector_configs():
    assert issubclass(TCConfig, DictConfig) and issubclass(ARConfig, DictConfig)
    assert plain({1: (2, (3, 4)), "c": ClosedContour("PSL", 200.0, 500.0)}) == {
        "1": [2, [3, 4]], "c": {"field": "PSL", "delta": 200.0, "distance_km": 500.0, "search_km": 0.0}}


@pytest.mark.parametrize("make, message", [
    (lambda: ClosedContour("PSL", 0.0, 500.0), r"ClosedContour\('PSL'\)\.delta: expected a non-zero number, found 0"),
    (lambda: ClosedContour("PSL", 200.0, -1.0),
     r"ClosedContour\('PSL'\)\.distance_km: expected a positive number, found -1"),
    (lambda: ClosedContour("PSL", 200.0, 500.0, float("inf")),
     r"ClosedContour\('PSL'\)\.search_km: expected a non-negative number, found inf"),
    (lambda: ClosedContour("_MAX(PSL)", 200.0, 500.0), r"field expression '_MAX\(PSL\)': unknown function _MAX"),
    (lambda: Threshold("PSL", "=", 1.0),
     r"Threshold\('PSL'\)\.op: expected one of \['<', '<=', '>', '>='\], found '='"),
    (lambda: Threshold("PSL", "<", "low"), r"Threshold\('PSL'\)\.value: expected a number, found 'low'"),
    (lambda: Threshold("PSL", "<", 1.0, -5.0), r"Threshold\('PSL'\)\.distance_km: expected a non-negative number"),
])
def test_criteria_name_themselves_the_field_expected_and_found(make, message):
    with pytest.raises(ConfigError, match=message):
        make()
