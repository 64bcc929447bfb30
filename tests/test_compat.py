"""climviz._compat: old keyword spellings warn, name the new one, and give the same result."""

import warnings

import pytest

from climviz._compat import class_id, class_ids, is_one_class, rename_kwargs, renamed_kwargs
from climviz.errors import ConfigError


@renamed_kwargs(cls="classes", alpha=("ci", lambda a: 1 - a))
def _f(x, *, classes=1, ci=0.95):
    """Doc kept."""
    return x, classes, ci


def test_new_spelling_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _f(3, classes=2, ci=0.9) == (3, 2, 0.9)


def test_old_spelling_warns_naming_new_and_converts():
    with pytest.warns(DeprecationWarning, match="'classes='") as rec:
        out = _f(3, cls=2)
    assert out == (3, 2, 0.95)
    assert rec[0].filename == __file__  # points at the caller
    with pytest.warns(DeprecationWarning, match="'ci='"):
        x, c, ci = _f(3, alpha=0.1)
    assert (x, c) == (3, 1) and ci == pytest.approx(0.9)


def test_both_spellings_is_an_error():
    with pytest.raises(TypeError, match="both 'cls'.*'classes'"):
        _f(1, cls=1, classes=2)


def test_wrapper_keeps_metadata():
    assert _f.__doc__ == "Doc kept." and _f.__name__ == "_f"
    assert _f.__climviz_renamed__ == {"cls": "classes", "alpha": "ci"}


def test_rename_kwargs_leaves_input_alone():
    kw = {"cls": 1}
    with pytest.warns(DeprecationWarning, match="classes"):
        out = rename_kwargs("g", kw, {"cls": "classes"})
    assert kw == {"cls": 1} and out == {"classes": 1}
    same = {"seed": 1}
    assert rename_kwargs("g", same, {"cls": "classes"}) is same


@pytest.mark.parametrize("given, expected", [
    (1, (1,)), ("tc", (1,)), ("TC", (1,)), ("ar", (2,)), ("atmospheric_river", (2,)),
    ("Tropical Cyclone", (1,)), ((1, 2), (1, 2)), (["ar", "tc"], (2, 1)), ("background", (0,)),
])
def test_class_ids(given, expected):
    assert class_ids(given) == expected


def test_class_ids_numpy_int():
    np = pytest.importorskip("numpy")
    assert class_ids(np.int64(2)) == (2,)
    assert class_ids(np.array([1, 2])) == (1, 2)


@pytest.mark.parametrize("bad", ["hurricane", 3, -1, True, 1.5, ()])
def test_class_ids_rejects(bad):
    with pytest.raises(ValueError, match="class"):
        class_ids(bad)


def test_class_id_message_names_argument_expected_and_found():
    with pytest.raises(ConfigError, match=r"distance_classes: expected .*'tc'.*found 'hurricane'"):
        class_id("hurricane", "distance_classes")
    with pytest.raises(ConfigError, match=r"classes: expected a class number in \[0, 1, 2\].*found 7"):
        class_ids([1, 7])


def test_is_one_class():
    np = pytest.importorskip("numpy")
    assert is_one_class("ar") and is_one_class(1) and is_one_class(np.int8(2))
    assert not is_one_class((1,)) and not is_one_class(np.array([1, 2]))
