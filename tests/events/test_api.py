"""The events package: public names are the functions, whatever modules were imported."""

from __future__ import annotations

import importlib
import types

import climviz.events as events

MODULES = ("labelling", "tables", "tracking", "comparison", "scores", "stats", "geometry")


def test_public_names_stay_functions_after_every_module_is_imported():
    for m in MODULES:
        importlib.import_module(f"climviz.events.{m}")
    for name in events.__all__:
        obj = getattr(events, name)
        assert not isinstance(obj, types.ModuleType), name
    assert events.label.__module__ == "climviz.events.labelling"
    assert events.table.__module__ == "climviz.events.tables"
    assert events.track.__module__ == "climviz.events.tracking"
    assert events.compare.__module__ == "climviz.events.comparison"
    assert events.skill.__module__ == "climviz.events.scores"
    # no module of the package is named like one of its public names
    assert not set(MODULES) & set(events.__all__)
    assert type(events) is types.ModuleType  # no attribute-guarding subclass any more
