"""One vocabulary across climviz.events: ``classes``, ``config=`` as a keyword, Literal string options."""

from __future__ import annotations

import inspect
import typing

import pytest
import xarray as xr

from climviz.events import best_track, comparison, scores, stats, tracking


def _hints(obj):
    mod = inspect.getmodule(obj)
    return typing.get_type_hints(obj, globalns={**vars(mod), "xr": xr})


def _literals(t) -> set:
    if typing.get_origin(t) is typing.Literal:
        return set(typing.get_args(t))
    return set().union(*(_literals(a) for a in typing.get_args(t)))


@pytest.mark.parametrize("obj, name, options", [
    (stats.frequency, "by", {"season", "month", "year", "dayofyear", "hour"}),
    (tracking.TrackConfig, "continue_by", {"overlap_km2", "iou"}),
    (tracking.track_masks, "centroid", {"circular", "cartesian"}),
    (best_track.read_ibtracs, "subset", {"offline-usa", "offline-wmo"}),
])
def test_string_options_are_typed_literals(obj, name, options):
    assert _literals(_hints(obj)[name]) == options


@pytest.mark.parametrize("func", [tracking.track, tracking.track_masks])
def test_tracker_config_is_keyword_only(func):
    assert inspect.signature(func).parameters["config"].kind is inspect.Parameter.KEYWORD_ONLY


@pytest.mark.parametrize("func", [stats.frequency, comparison.compare, scores.skill])
def test_class_argument_is_named_classes_and_takes_names(func):
    params = inspect.signature(func).parameters
    assert "classes" in params and "cls" not in params
    assert str in typing.get_args(_hints(func)["classes"])


def test_frequency_keeps_the_old_cls_name_for_one_release():
    assert stats.frequency.__climviz_renamed__ == {"cls": "classes"}
