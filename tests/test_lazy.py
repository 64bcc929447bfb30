"""Lazy package exports (climviz.utils.lazy): names are imported on first use."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from climviz.utils import lazy_exports


@pytest.fixture
def lazy_pkg(tmp_path, monkeypatch):
    """A real package on disk whose ``__init__`` exports ``heavy_fn`` lazily from ``heavy``."""
    pkg = tmp_path / "lazypkg_demo"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent(
        """
        from climviz.utils.lazy import lazy_exports
        EAGER = 1
        _LAZY = {"heavy_fn": "lazypkg_demo.heavy", "HEAVY_CONST": "lazypkg_demo.heavy"}
        __all__ = ["EAGER", *_LAZY]
        __getattr__, __dir__ = lazy_exports(__name__, _LAZY)
        """
    ))
    (pkg / "heavy.py").write_text("HEAVY_CONST = 42\n\ndef heavy_fn(x):\n    return 2 * x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "lazypkg_demo"
    for name in [m for m in sys.modules if m == "lazypkg_demo" or m.startswith("lazypkg_demo.")]:
        del sys.modules[name]


def test_submodule_is_imported_only_on_first_use_and_then_cached(lazy_pkg):
    import importlib

    mod = importlib.import_module(lazy_pkg)
    assert f"{lazy_pkg}.heavy" not in sys.modules
    assert "heavy_fn" not in vars(mod)
    assert mod.heavy_fn(21) == 42
    assert f"{lazy_pkg}.heavy" in sys.modules
    assert vars(mod)["heavy_fn"] is sys.modules[f"{lazy_pkg}.heavy"].heavy_fn  # cached in globals
    from lazypkg_demo import HEAVY_CONST  # `from pkg import name` goes through __getattr__ too

    assert HEAVY_CONST == 42


def test_unknown_name_is_an_attribute_error_naming_package_and_name(lazy_pkg):
    import importlib

    mod = importlib.import_module(lazy_pkg)
    with pytest.raises(AttributeError, match=r"'lazypkg_demo' has no attribute 'nope'"):
        mod.nope  # noqa: B018
    assert not hasattr(mod, "nope")


def test_dir_lists_lazy_names_before_they_are_imported(lazy_pkg):
    import importlib

    mod = importlib.import_module(lazy_pkg)
    names = dir(mod)
    assert {"EAGER", "heavy_fn", "HEAVY_CONST"} <= set(names)
    assert names == sorted(names)
    assert f"{lazy_pkg}.heavy" not in sys.modules


def test_building_the_hooks_imports_nothing_yet():
    getattr_, dir_ = lazy_exports("climviz", {"x": "no.such.module"})
    assert callable(getattr_) and callable(dir_)
    with pytest.raises(ModuleNotFoundError):
        getattr_("x")  # the import happens only when asked for


@pytest.mark.parametrize("pkg", ["climviz.data", "climviz.events", "climviz.labels", "climviz.viz"])
def test_subpackages_import_light_and_list_their_public_names(pkg):
    code = textwrap.dedent(
        f"""
        import importlib, sys
        mod = importlib.import_module({pkg!r})
        heavy = [m for m in ('torch', 'ray', 'holoviews', 'panel', 'bokeh') if m in sys.modules]
        missing = sorted(set(mod.__all__) - set(dir(mod)))
        print(heavy, missing)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[] []"
