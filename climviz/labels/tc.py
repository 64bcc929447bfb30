"""Tropical cyclone detector: TempestExtremes DetectNodes + StitchNodes, in numpy.

Detection per time step (vectorized over the time steps of a block), in the
order and with the semantics of TempestExtremes' ``DetectNodes`` (Ullrich &
Zarzycki 2017; Ullrich et al. 2021, GMD 14, 5023):

1. **Candidates**: local minima of sea-level pressure (``PSL``): cells with no
   strictly lower neighbour, the neighbours being the 4 cells of TE's default
   rectilinear connectivity (``connectivity=8`` is TE's ``--diag_connect``).
   Longitude wraps only on a global grid (see :class:`~climviz.labels._grid.Grid`;
   ``periodic=`` overrides it, TE's ``--regional``).
2. **Location**: ``|lat| <= max_abs_lat`` (TE ``--minlat/--maxlat``), applied
   before merging, as TE does.
3. **Merge**: a candidate is dropped when another candidate with strictly lower
   PSL lies within ``merge_distance_km`` on the sphere (great-circle distance;
   TE ``--mergedist``, a kd-tree range query on the unit sphere). Nothing else
   suppresses a candidate: a deeper low farther away, or a lower cell that is not
   itself a candidate, does not. Of equal minima within that distance the first
   (in grid order) is kept, as with TE's ``--mergeequal``.
4. **Thresholds** (:class:`Threshold`, TE ``--thresholdcmd``): the largest (for
   ``>``/``>=``) or smallest (``<``/``<=``) value of a field expression within a
   great-circle distance of the candidate is compared with a value. The default
   set is built from whichever fields the run has: hemisphere-signed 850 hPa
   relative vorticity (from ``U850``/``V850``, a ``VORT850`` variable, or
   ``ABSV850`` minus the Coriolis parameter; the lowest model level as a
   fallback) and the 850 hPa wind speed.
5. **Closed contours** (:class:`ClosedContour`, TE ``--closedcontourcmd``): from
   the candidate (or from the extremum of the field within ``search_km`` of it),
   a flood fill through neighbouring cells whose value has not yet changed by
   ``delta`` must not reach a cell farther than ``distance_km``. The defaults are
   the published TC recipe: ``PSL,200.0,5.5,0`` (PSL rises by 200 Pa within 5.5°;
   Zarzycki & Ullrich 2017, Ullrich et al. 2021) and a warm core,
   ``_AVG(T200,T500),-0.4,8.0,1.1`` (the upper-tropospheric mean temperature
   falls by 0.4 K within 8° of its maximum within 1.1°; the CAM recipe of
   TempestExtremes' documentation, Zarzycki & Ullrich 2017) or, for runs with
   geopotential height instead, the 300–500 hPa thickness
   ``_DIFF(Z300,Z500),-6.0,6.5,1.0`` (TE's ``-58.8`` m² s⁻² of geopotential is
   6.0 m of height; Zarzycki & Ullrich 2017, Ullrich et al. 2021).

Which criteria ran, and how many candidates each rejected, is recorded in the
nodes table's ``attrs`` (``criteria``, ``skipped``, ``rejected``) and in
:class:`TCResult`.

Accepted nodes are stitched into tracks (as ``StitchNodes``): a node continues
the track whose last node is nearest, within ``max_speed_km_per_h`` times the
elapsed hours (TE ``--range 8.0`` degrees per 6 h), allowing gaps up to
``max_gap_h`` (``--maxgap 24h``); tracks shorter than ``min_duration_h``
(``--mintime 54h``) are dropped, and optionally tracks whose first node lies
poleward of ``genesis_max_abs_lat``. A disc is drawn around each node of a kept
track as the TC mask, its radius taken from the wind field, the pressure field,
or fixed.
"""

from __future__ import annotations

import dataclasses
import math
import re
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

from climviz._fields import DictConfig, Float, Int, OneOf, Rule, bad_value, coerce_numbers, spec, validate
from climviz.errors import ConfigError, DataError
from climviz.events.geometry import EARTH_RADIUS_KM, great_circle_km
from climviz._compat import config_keyword
from climviz.labels._grid import (
    Grid,
    gather_windows,
    window_index,
    normalize_run,
    relative_vorticity,
    time_hours,
)

__all__ = [
    "COARSE_GRID",
    "ClosedContour",
    "TCConfig",
    "TCResult",
    "Threshold",
    "detect_tc",
    "detect_tc_nodes",
    "stitch_nodes",
    "tc_mask",
]

#: Kilometres per degree of great circle on the climviz sphere (R = 6371.0 km): 111.195 km.
KM_PER_DEG = float(np.deg2rad(1.0) * EARTH_RADIUS_KM)
_OMEGA = 7.292115e-5  # Earth's rotation rate (s⁻¹), for the Coriolis parameter f = 2Ω sin φ


def _cross(conn: int) -> np.ndarray:
    """3-D structuring element joining cells within one time step only (4 or 8 neighbours)."""
    st = np.zeros((3, 3, 3), dtype=bool)
    st[1] = ndimage.generate_binary_structure(2, 1 if conn == 4 else 2)
    return st


# --------------------------------------------------------------------------- field expressions

_FUNCS = {"_AVG", "_DIFF", "_SUM", "_VECMAG", "_CYC", "_ABS", "_NEG"}


def _parse(expr: str) -> Any:
    """Parse a TE-style field expression: ``NAME`` or ``_FUNC(expr, ...)`` → nested tuples."""
    s = expr.replace(" ", "")
    pos = 0

    def node() -> Any:
        nonlocal pos
        m = re.compile(r"_?[A-Za-z][A-Za-z0-9_]*").match(s, pos)
        if not m:
            raise ConfigError(f"field expression {expr!r}: expected a name or _FUNC(...) at position {pos}")
        name = m.group(0)
        pos = m.end()
        if pos < len(s) and s[pos] == "(":
            if name not in _FUNCS:
                raise ConfigError(
                    f"field expression {expr!r}: unknown function {name}; expected one of {sorted(_FUNCS)}")
            pos += 1
            args = [node()]
            while pos < len(s) and s[pos] == ",":
                pos += 1
                args.append(node())
            if pos >= len(s) or s[pos] != ")":
                raise ConfigError(f"field expression {expr!r}: expected ')' at position {pos}")
            pos += 1
            nargs = {"_DIFF": 2, "_VECMAG": 2, "_CYC": 1, "_ABS": 1, "_NEG": 1}.get(name)
            if nargs is not None and len(args) != nargs:
                raise ConfigError(f"field expression {expr!r}: {name} takes {nargs} argument(s), found {len(args)}")
            return (name, *args)
        return name

    tree = node()
    if pos != len(s):
        raise ConfigError(f"field expression {expr!r}: unexpected text {s[pos:]!r}")
    return tree


def _leaves(tree: Any) -> list[str]:
    if isinstance(tree, str):
        return [tree]
    return [leaf for arg in tree[1:] for leaf in _leaves(arg)]


_VORT = re.compile(r"^VORT(\w+)$")


class _Fields:
    """Evaluates field expressions on one block of a normalized run (cached).

    Leaf names are variables of the run, or derived: ``VORT<lev>`` is the
    relative vorticity (s⁻¹) of level ``<lev>``: the run's own ``VORT<lev>``
    variable, else computed from ``U<lev>``/``V<lev>``, else ``ABSV<lev>`` minus
    the Coriolis parameter.
    """

    def __init__(self, ds: xr.Dataset, grid: Grid) -> None:
        self.ds = ds
        self.grid = grid
        self.cache: dict[str, np.ndarray] = {}

    @staticmethod
    def sources(name: str, names: set[str]) -> list[str] | None:
        """Run variables a leaf needs, or None if the run cannot provide it."""
        if name in names:
            return [name]
        m = _VORT.match(name)
        if m:
            lev = m.group(1)
            if f"U{lev}" in names and f"V{lev}" in names:
                return [f"U{lev}", f"V{lev}"]
            if f"ABSV{lev}" in names:
                return [f"ABSV{lev}"]
        return None

    def leaf(self, name: str) -> np.ndarray:
        if name in self.cache:
            return self.cache[name]
        names = set(map(str, self.ds.data_vars))
        if name in names:
            out = np.asarray(self.ds[name].values, dtype=np.float64)
        else:
            src = self.sources(name, names)
            if src is None:
                raise DataError(f"run: expected variable {name!r} (or what derives it), found {sorted(names)}")
            if len(src) == 2:
                out = relative_vorticity(self.ds[src[0]].values, self.ds[src[1]].values, self.grid).astype(np.float64)
            else:
                f = 2 * _OMEGA * np.sin(np.deg2rad(self.grid.lat))[:, None]
                out = np.asarray(self.ds[src[0]].values, dtype=np.float64) - f
        self.cache[name] = out
        return out

    def eval(self, expr: str) -> np.ndarray:
        if expr in self.cache:
            return self.cache[expr]
        out = self._eval(_parse(expr))
        self.cache[expr] = out
        return out

    def _eval(self, tree: Any) -> np.ndarray:
        if isinstance(tree, str):
            return self.leaf(tree)
        name, *args = tree
        vals = [self._eval(a) for a in args]
        if name == "_AVG":
            return np.mean(vals, axis=0)
        if name == "_SUM":
            return np.sum(vals, axis=0)
        if name == "_DIFF":
            return vals[0] - vals[1]
        if name == "_VECMAG":
            return np.hypot(vals[0], vals[1])
        if name == "_CYC":  # hemisphere-signed: cyclonic positive in both hemispheres
            return vals[0] * np.sign(self.grid.lat)[:, None]
        if name == "_ABS":
            return np.abs(vals[0])
        return -vals[0]  # _NEG


# --------------------------------------------------------------------------- criteria


def _km(deg: float) -> float:
    return float(deg) * KM_PER_DEG


def _check_expression(obj: Any, name: str) -> None:
    """A criterion's field expression parses (ConfigError naming the expression and the position)."""
    _parse(getattr(obj, name))


# Field checks of the criteria (climviz._fields); messages name the criterion by its field
_EXPRESSION = _check_expression
_POSITIVE_NUMBER = Rule(lambda v: np.isfinite(v) and v > 0, "a positive number")
_NON_NEGATIVE_NUMBER = Rule(lambda v: np.isfinite(v) and v >= 0, "a non-negative number")


@dataclass(frozen=True)
class ClosedContour:
    """A closed-contour criterion (TempestExtremes ``--closedcontourcmd``).

    Attributes
    ----------
    field
        Field expression: a variable (``"PSL"``), or ``_AVG(a,b,...)``,
        ``_DIFF(a,b)``, ``_SUM(...)``, ``_VECMAG(u,v)``, ``_CYC(x)`` (times the
        sign of the latitude), ``_ABS(x)``, ``_NEG(x)``, nested.
    delta
        Change of the field (its units) that closes the contour: positive, the
        field must *rise* by ``delta`` around a minimum; negative, it must
        *fall* by ``-delta`` around a maximum (a warm core).
    distance_km
        ... within this great-circle distance (km) of the reference point.
    search_km
        The reference point is the minimum (``delta > 0``) or maximum
        (``delta < 0``) of the field within this distance (km) of the candidate;
        0 means the candidate itself (TE's 4th argument, in degrees there).

    Examples
    --------
    The recipe's PSL contour (a 200 Pa rise within 5.5 degrees), as in
    ``TCConfig(closed_contours=...)``:

    >>> cv.labels.ClosedContour("PSL", 200.0, 611.6)
    ClosedContour(field='PSL', delta=200.0, distance_km=611.6, search_km=0.0)
    >>> cv.labels.ClosedContour("PSL", 0.0, 611.6)
    Traceback (most recent call last):
    ...
    climviz.errors.ConfigError: ClosedContour('PSL').delta: expected a non-zero number, found 0.0
    """

    field: str = dataclasses.field(metadata=spec(_EXPRESSION))
    delta: float = dataclasses.field(metadata=spec(Rule(lambda v: np.isfinite(v) and v != 0, "a non-zero number")))
    distance_km: float = dataclasses.field(metadata=spec(_POSITIVE_NUMBER))
    search_km: float = dataclasses.field(default=0.0, metadata=spec(_NON_NEGATIVE_NUMBER))

    def __post_init__(self) -> None:
        validate(self)

    def _field_message(self, name: str, expected: str) -> str:
        return f"ClosedContour({self.field!r}).{name}: expected {expected}, found {getattr(self, name)!r}"

    @classmethod
    def from_te(cls, text: str) -> ClosedContour:
        """From TempestExtremes' syntax ``"var,delta,dist_deg,minmaxdist_deg"`` (degrees of great circle)."""
        parts = [p.strip() for p in _split_top(text)]
        if len(parts) != 4:
            raise ConfigError(f"closed contour {text!r}: expected 'field,delta,distance_deg,search_deg'")
        try:
            return cls(parts[0], float(parts[1]), _km(float(parts[2])), _km(float(parts[3])))
        except ValueError as exc:
            raise ConfigError(f"closed contour {text!r}: {exc}") from exc

    def describe(self) -> str:
        """One line saying what the criterion tests."""
        kind = "rises" if self.delta > 0 else "falls"
        ref = (f" of its {'minimum' if self.delta > 0 else 'maximum'} within {self.search_km:.0f} km"
               if self.search_km > 0 else "")
        return f"closed contour: {self.field} {kind} by {abs(self.delta):g} within {self.distance_km:.0f} km{ref}"


_OPS = {">": np.greater, ">=": np.greater_equal, "<": np.less, "<=": np.less_equal}


@dataclass(frozen=True)
class Threshold:
    """A threshold criterion (TempestExtremes ``--thresholdcmd``).

    The largest (``op`` ``>``/``>=``) or smallest (``<``/``<=``) value of
    ``field`` within ``distance_km`` of the candidate (the candidate's own cell
    when 0) must satisfy ``op value``.

    Examples
    --------
    The 850 hPa wind speed reaches 10 m s⁻¹ within 300 km of the candidate:

    >>> cv.labels.Threshold("_VECMAG(U850,V850)", ">=", 10.0, 300.0)
    Threshold(field='_VECMAG(U850,V850)', op='>=', value=10.0, distance_km=300.0)
    >>> cv.labels.Threshold("PSL", "=>", 1.0)
    Traceback (most recent call last):
    ...
    climviz.errors.ConfigError: Threshold('PSL').op: expected one of ['<', '<=', '>', '>='], found '=>'
    """

    field: str = dataclasses.field(metadata=spec(_EXPRESSION))
    op: str = dataclasses.field(metadata=spec(Rule(lambda v: v in _OPS, f"one of {sorted(_OPS)}")))
    value: float = dataclasses.field(metadata=spec(Rule(np.isfinite, "a number")))
    distance_km: float = dataclasses.field(default=0.0, metadata=spec(_NON_NEGATIVE_NUMBER))

    def __post_init__(self) -> None:
        validate(self)

    def _field_message(self, name: str, expected: str) -> str:
        return f"Threshold({self.field!r}).{name}: expected {expected}, found {getattr(self, name)!r}"

    @classmethod
    def from_te(cls, text: str) -> Threshold:
        """From TempestExtremes' syntax ``"var,op,value,dist_deg"``."""
        parts = [p.strip() for p in _split_top(text)]
        if len(parts) != 4:
            raise ConfigError(f"threshold {text!r}: expected 'field,op,value,distance_deg'")
        try:
            return cls(parts[0], parts[1], float(parts[2]), _km(float(parts[3])))
        except ValueError as exc:
            raise ConfigError(f"threshold {text!r}: {exc}") from exc

    def describe(self) -> str:
        """One line saying what the criterion tests."""
        stat = "max" if self.op.startswith(">") else "min"
        where = f" within {self.distance_km:.0f} km" if self.distance_km > 0 else " at the centre"
        return f"threshold: {stat} of {self.field}{where} {self.op} {self.value:g}"


def _split_top(text: str) -> list[str]:
    """Split on commas outside parentheses."""
    out, depth, cur = [], 0, ""
    for ch in text:
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
            continue
        depth += (ch == "(") - (ch == ")")
        cur += ch
    out.append(cur)
    return out


def _as_criterion(value: Any, cls: type, name: str) -> Any:
    if isinstance(value, cls):
        return value
    if isinstance(value, str):
        return cls.from_te(value)  # type: ignore[attr-defined]
    if isinstance(value, dict):
        try:
            return cls(**value)
        except TypeError as exc:
            raise ConfigError(f"TCConfig.{name}: {exc}") from exc
    raise ConfigError(f"TCConfig.{name}: expected {cls.__name__}, a TE string or a dict, found {value!r}")


# --------------------------------------------------------------------------- configuration

# Field checks of TCConfig (climviz._fields: metadata + one validator). Numbers accept
# ints, numpy scalars and numeric text (YAML reads 5e-5 as text) and are stored as floats.
_POSITIVE = Float(0.0, lo_open=True)
_NON_NEGATIVE = Float(0.0)
_LATITUDE = Float(0.0, 90.0, lo_open=True)
_WIND_PAIRS = Rule(lambda v: len(v) > 0 and all(len(p) == 2 for p in v), "(u, v) name pairs")


@dataclass(frozen=True)
class _Criteria:
    """``closed_contours`` / ``thresholds``: None, or criteria given as objects, TE strings or dicts."""

    kind: type

    def __call__(self, cfg: Any, name: str) -> None:
        value = getattr(cfg, name)
        if value is not None:
            setattr(cfg, name, tuple(_as_criterion(c, self.kind, name) for c in value))


def _check_warm_core_vars(cfg: TCConfig, name: str) -> None:
    if cfg.warm_core != "off" and not cfg.warm_core_vars:
        raise ConfigError("TCConfig.warm_core_vars: expected at least one temperature variable, found none")


def _check_outer_radius(cfg: TCConfig, name: str) -> None:
    if cfg.warm_core_outer_radius_km <= cfg.warm_core_radius_km:
        raise bad_value(cfg, name, f"more than warm_core_radius_km ({cfg.warm_core_radius_km})")


def _check_mask_radii(cfg: TCConfig, name: str) -> None:
    if cfg.min_mask_radius_km > cfg.max_mask_radius_km:
        raise bad_value(cfg, "min_mask_radius_km", f"at most max_mask_radius_km ({cfg.max_mask_radius_km})")




@dataclass
class TCConfig(DictConfig):
    """Settings of the tropical cyclone detector (all lengths are great-circle km).

    Defaults follow TempestExtremes' published TC recipe (Zarzycki & Ullrich
    2017; Ullrich et al. 2021) on 0.25–1° grids; :data:`COARSE_GRID` holds the
    changes for 2–2.5° grids.

    Attributes
    ----------
    psl_var
        Sea-level pressure variable (Pa), searched for minima. Default ``"PSL"``.
    wind_vars
        Pairs of (eastward, northward) wind variables (m s⁻¹), tried in order:
        default 850 hPa winds, else the lowest model level.
    vorticity_vars
        Relative-vorticity leaves tried in order when no wind pair is complete
        (``VORT850``: the run's variable, or ``ABSV850`` minus f).
    warm_core_vars
        Temperatures (K) averaged for the warm-core test. Default ``("T200", "T500")``.
    thickness_vars
        Geopotential heights (m) whose difference is the warm-core field when
        the temperatures are missing. Default ``("Z300", "Z500")``.
    connectivity
        Neighbours of a cell for local minima and flood fills: 4 (TE's default
        on rectilinear grids) or 8 (TE ``--diag_connect``).
    periodic
        Longitude wraps around: None (default) when the grid covers the globe.
    max_abs_lat
        Candidates lie within ``|lat| <= max_abs_lat`` (degrees). Default 50
        (the recipe's latitude threshold).
    merge_distance_km
        A candidate is dropped if a deeper candidate lies within this distance.
        Default 667.2 km (6°, ``--mergedist 6.0``).
    closed_contour_dpsl_pa, closed_contour_radius_km
        The default PSL closed contour: a 200 Pa rise within 611.6 km (5.5°).
    warm_core
        ``"closed_contour"`` (default; the recipe), ``"annulus"`` (the older
        climviz test: the mean within ``warm_core_radius_km`` exceeds the mean of
        the annulus out to ``warm_core_outer_radius_km`` by ``min_warm_core_k``)
        or ``"off"``.
    warm_core_delta_k, warm_core_distance_km, warm_core_search_km
        The default warm-core closed contour: the T200/T500 mean falls by 0.4 K
        within 889.6 km (8°) of its maximum within 122.3 km (1.1°).
    warm_core_source
        Which warm-core field the default contour uses: ``"auto"`` (default):
        the thickness when the run has ``thickness_vars`` (the recipe of Ullrich
        et al. 2021), else the temperatures; ``"thickness"`` / ``"temperature"``
        prefer one (falling back to the other, recorded in ``skipped``).
    thickness_delta_m, thickness_distance_km, thickness_search_km
        The thickness variant: Z300−Z500 falls by 6.0 m within 722.8 km (6.5°)
        of its maximum within 111.2 km (1.0°) (TE's ``-58.8`` m² s⁻² of geopotential).
    closed_contours
        None (default): the PSL and warm-core contours above. Otherwise the full
        list, each a :class:`ClosedContour`, a TE string (``"PSL,200.0,5.5,0"``,
        degrees) or a dict.
    thresholds
        None (default): cyclonic vorticity and wind speed (below), each when the
        run has the fields. Otherwise the full list, each a :class:`Threshold`,
        a TE string (``"_CYC(VORT850),>=,5e-5,2.7"``) or a dict.
    min_vorticity_per_s, vorticity_radius_km
        Default vorticity criterion: hemisphere-signed 850 hPa relative
        vorticity reaches 5e-5 s⁻¹ within 300 km (a TECA-style test; TE's recipe
        has none, the PSL contour does its work on fine grids). None disables it.
    min_wind_ms, wind_radius_km
        Default wind criterion: 850 hPa wind speed reaches 10 m s⁻¹ within 300 km
        (the recipe applies ``wind >= 10`` in StitchNodes). None disables it.
    stitch
        ``"auto"`` (default) stitches into tracks when the run spans at least
        ``min_duration_h``, and otherwise keeps every node with a warning; True
        always stitches; False never.
    stitch_method
        ``"assignment"`` (default; one-to-one links by least total distance,
        the range growing with the time elapsed) or ``"te"`` (StitchNodes'
        basic method); see :func:`stitch_nodes`.
    range_km
        ``"te"`` method: largest distance (km) between linked nodes, whatever
        the gap (``--range 8.0``, 889.6 km).
    max_speed_km_per_h
        Largest distance (km) a centre may move per hour between two nodes of a
        track. Default 148 km/h (8° per 6 h, ``--range 8.0``).
    max_gap_h
        Longest gap (hours) inside a track. Default 24 h (``--maxgap 24h``).
    min_duration_h
        Shortest kept track, first to last node (hours). Default 54 h (``--mintime 54h``).
    genesis_max_abs_lat
        Keep only tracks whose first node has ``|lat|`` at most this (degrees);
        None (default) keeps all.
    time_step_h
        Hours between time steps, only needed when the time coordinate is numeric.
    mask_method
        How the TC mask radius is found: ``"wind"`` (default; falls back to
        ``"psl"`` when the run has no complete wind pair), ``"psl"`` or ``"fixed"``.
    mask_wind_ms, mask_dpsl_pa, mask_radius_km, min_mask_radius_km, max_mask_radius_km
        Mask radius settings (see :func:`tc_mask`).
    candidate_chunk, time_block
        Candidates / time steps processed at once (memory bound).

    Examples
    --------
    >>> cfg = cv.labels.TCConfig(min_duration_h=24.0)
    >>> cfg.psl_var, round(cfg.merge_distance_km / 111.19492664455873, 3)  # 6 degrees
    ('PSL', 6.0)
    >>> cv.labels.TCConfig(connectivity=6)
    Traceback (most recent call last):
    ...
    climviz.errors.ConfigError: TCConfig.connectivity: expected 4 or 8, found 6
    """

    psl_var: str = "PSL"
    wind_vars: tuple[tuple[str, str], ...] = field(
        default=(("U850", "V850"), ("UBOT", "VBOT")), metadata=spec(_WIND_PAIRS))
    vorticity_vars: tuple[str, ...] = ("VORT850", "VORTBOT")
    warm_core_vars: tuple[str, ...] = field(default=("T200", "T500"), metadata=spec(_check_warm_core_vars))
    thickness_vars: tuple[str, str] = field(default=("Z300", "Z500"), metadata=spec(
        Rule(lambda v: len(v) == 2, "two height variables")))
    connectivity: int = field(default=4, metadata=spec(OneOf((4, 8))))
    periodic: bool | None = field(default=None, metadata=spec(OneOf((None, True, False))))
    max_abs_lat: float = field(default=50.0, metadata=spec(_LATITUDE))
    merge_distance_km: float = field(default=6.0 * KM_PER_DEG, metadata=spec(_POSITIVE))
    closed_contour_dpsl_pa: float = field(default=200.0, metadata=spec(_NON_NEGATIVE))
    closed_contour_radius_km: float = field(default=5.5 * KM_PER_DEG, metadata=spec(_POSITIVE))
    warm_core: Literal["closed_contour", "annulus", "off"] = field(
        default="closed_contour", metadata=spec(OneOf(("closed_contour", "annulus", "off"))))
    warm_core_source: Literal["auto", "thickness", "temperature"] = field(
        default="auto", metadata=spec(OneOf(("auto", "thickness", "temperature"))))
    warm_core_delta_k: float = field(default=0.4, metadata=spec(_POSITIVE))
    warm_core_distance_km: float = field(default=8.0 * KM_PER_DEG, metadata=spec(_POSITIVE))
    warm_core_search_km: float = field(default=1.1 * KM_PER_DEG, metadata=spec(_NON_NEGATIVE))
    thickness_delta_m: float = field(default=6.0, metadata=spec(_POSITIVE))
    thickness_distance_km: float = field(default=6.5 * KM_PER_DEG, metadata=spec(_POSITIVE))
    thickness_search_km: float = field(default=1.0 * KM_PER_DEG, metadata=spec(_NON_NEGATIVE))
    min_warm_core_k: float = 0.5
    warm_core_radius_km: float = field(default=300.0, metadata=spec(_POSITIVE))
    warm_core_outer_radius_km: float = field(default=900.0, metadata=spec(_POSITIVE, after=_check_outer_radius))
    closed_contours: tuple[Any, ...] | None = field(default=None, metadata=spec(_Criteria(ClosedContour)))
    thresholds: tuple[Any, ...] | None = field(default=None, metadata=spec(_Criteria(Threshold)))
    min_vorticity_per_s: float | None = 5e-5
    vorticity_radius_km: float = field(default=300.0, metadata=spec(_POSITIVE))
    min_wind_ms: float | None = 10.0
    wind_radius_km: float = field(default=300.0, metadata=spec(_POSITIVE))
    stitch: bool | Literal["auto"] = field(default="auto", metadata=spec(OneOf((True, False, "auto"))))
    stitch_method: Literal["assignment", "te"] = field(
        default="assignment", metadata=spec(OneOf(("assignment", "te"))))
    range_km: float = field(default=8.0 * KM_PER_DEG, metadata=spec(_POSITIVE))
    max_speed_km_per_h: float = field(default=148.0, metadata=spec(_POSITIVE))
    max_gap_h: float = field(default=24.0, metadata=spec(_NON_NEGATIVE))
    min_duration_h: float = field(default=54.0, metadata=spec(_NON_NEGATIVE))
    genesis_max_abs_lat: float | None = field(default=None, metadata=spec(
        Float(0.0, 90.0, lo_open=True, optional=True)))
    time_step_h: float | None = field(default=None, metadata=spec(Float(0.0, lo_open=True, optional=True)))
    mask_method: Literal["wind", "psl", "fixed"] = field(
        default="wind", metadata=spec(OneOf(("wind", "psl", "fixed"))))
    mask_wind_ms: float = 12.0
    mask_dpsl_pa: float = field(default=500.0, metadata=spec(_NON_NEGATIVE))
    mask_radius_km: float = field(default=300.0, metadata=spec(_POSITIVE))
    min_mask_radius_km: float = field(default=100.0, metadata=spec(_NON_NEGATIVE))
    max_mask_radius_km: float = field(default=800.0, metadata=spec(_POSITIVE, after=_check_mask_radii))
    candidate_chunk: int = field(default=256, metadata=spec(Int(1)))
    time_block: int = field(default=16, metadata=spec(Int(1)))

    def __post_init__(self) -> None:
        self.wind_vars = tuple(tuple(p) for p in self.wind_vars)  # type: ignore[misc]
        self.warm_core_vars = tuple(self.warm_core_vars)
        self.vorticity_vars = tuple(self.vorticity_vars)
        self.thickness_vars = tuple(self.thickness_vars)  # type: ignore[assignment]
        coerce_numbers(self)
        validate(self)


#: ``coarse=`` of the detectors: the coarse-grid defaults always, never, or when the latitude step is >= 2°.
Coarse = bool | Literal["auto"]

#: Changes to :class:`TCConfig` for coarse (2° and coarser) grids, such as the GFS 2.5° file.
#: The warm core is taken from the 1000–200 hPa thickness ``Z200 - Z1000`` (the channels
#: climviz runs carry), which must fall by 18.8 m within 8° of its maximum within 1.1°:
#: by the hypsometric equation a layer-mean warming of ΔT raises the thickness by
#: (R_d/g)·ln(1000/200)·ΔT = 47.1 m K⁻¹ · ΔT, so 18.8 m is the recipe's 0.4 K (as TE's
#: 58.8 m² s⁻² = 6.0 m of 300–500 hPa thickness is 0.4 K times 14.95 m K⁻¹). Why not the
#: T200/T500 mean: 200 hPa is near the tropopause, and above an extratropical low the
#: lowered tropopause puts warm stratospheric air at 200 hPa; on the GFS file a 1011 hPa
#: low at 35°S 5°W passes the T200/T500 contour while the thickness, which integrates
#: the whole troposphere, rejects it and keeps Jova and Irwin. Without Z200/Z1000 the
#: T200/T500 contour is used. ``detect_tc_nodes`` applies this when the latitude spacing
#: is 2° or more and no config is given (``coarse="auto"``).
COARSE_GRID: dict[str, Any] = {
    "thickness_vars": ("Z200", "Z1000"),
    "thickness_delta_m": 18.8,
    "thickness_distance_km": 8.0 * KM_PER_DEG,
    "thickness_search_km": 1.1 * KM_PER_DEG,
}


@dataclass
class TCResult:
    """Output of :func:`detect_tc`.

    Attributes
    ----------
    nodes
        One row per node that passed every test: ``time_index, time, lat, lon,
        psl_pa, vorticity_per_s`` (hemisphere-signed maximum within
        ``vorticity_radius_km``; NaN when the run has no vorticity), ``max_wind_ms``
        (NaN without a wind pair), ``warm_core_k`` (the warm-core field's
        maximum near the centre minus its mean at the contour distance, in K: a
        thickness anomaly is turned into the layer-mean warming by the hypsometric
        equation, :func:`thickness_k_per_m`; for the ``"annulus"`` method, the
        disc-minus-annulus difference), ``radius_km``
        (mask radius) and ``track_id`` (-1 when not in a kept track, or when
        stitching was off).
    tracks
        One row per kept track: ``track_id, start, end, duration_h, n_nodes,
        min_psl_pa, max_wind_ms, path_km, lat_start, lon_start``.
    mask
        Boolean TC mask, DataArray (time, lat, lon).
    stitched
        Whether nodes were stitched into tracks (only nodes of kept tracks are
        in the mask then).
    config
        The settings used.
    criteria
        Descriptions of the criteria that ran, in order.
    skipped
        Criteria that could not run, with the reason (fields missing).
    """

    nodes: pd.DataFrame
    tracks: pd.DataFrame
    mask: xr.DataArray
    stitched: bool
    config: TCConfig = field(default_factory=TCConfig)
    criteria: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- the plan: which criteria run


@dataclass
class _Plan:
    thresholds: list[Threshold]
    contours: list[ClosedContour]
    warm_contour: int | None  # index in contours of the warm-core contour (for warm_core_k)
    annulus: bool
    wind: tuple[str, str] | None
    vort: str | None
    needed: list[str]
    criteria: list[str]
    skipped: list[str]
    warm_k_per_unit: float = 1.0  # warm_core_k per unit of the warm-core field (K per m for a thickness)


#: Dry-air gas constant (J kg⁻¹ K⁻¹) and standard gravity (m s⁻²), for the hypsometric equation.
R_DRY, G0 = 287.05, 9.80665


def thickness_k_per_m(upper: str, lower: str) -> float:
    """Layer-mean warming (K) per metre of thickness between two height variables named by level.

    By the hypsometric equation the thickness of the layer between ``p_upper`` and
    ``p_lower`` (hPa, read from names such as ``Z300`` and ``Z500``) is
    ``(R_d / g) ln(p_lower / p_upper) T_mean``, so one metre is
    ``g / (R_d ln(p_lower / p_upper))`` kelvin. NaN when the names carry no levels.

    Examples
    --------
    >>> round(1.0 / cv.labels.tc.thickness_k_per_m("Z300", "Z500"), 2)  # m per K, TE's 6.0 m = 0.4 K
    14.95
    >>> round(1.0 / cv.labels.tc.thickness_k_per_m("Z200", "Z1000"), 1)
    47.1
    """
    levels = [re.fullmatch(r"[A-Za-z_]+(\d+(?:\.\d+)?)", v) for v in (upper, lower)]
    if not all(levels):
        return float("nan")
    p_up, p_low = (float(m.group(1)) for m in levels if m is not None)
    if p_up <= 0 or p_low <= p_up:
        return float("nan")
    return G0 / (R_DRY * math.log(p_low / p_up))


def _plan(ds: xr.Dataset, cfg: TCConfig) -> _Plan:
    """Decide which criteria run on this run, from its variables.

    Stages: the wind pair and vorticity leaf the run has (:func:`_plan_dynamics`), the
    threshold criteria (:func:`_plan_thresholds`), the closed contours and warm-core test
    (:func:`_plan_contours`), the variables they read and the criteria in words.
    """
    names = set(map(str, ds.data_vars))
    skipped: list[str] = []
    wind, vort = _plan_dynamics(cfg, names)
    thresholds = _plan_thresholds(cfg, names, wind, vort, skipped)
    contours, warm_contour, annulus = _plan_contours(cfg, names, skipped)
    needed = {cfg.psl_var}
    for expr in [t.field for t in thresholds] + [c.field for c in contours]:
        for leaf in _leaves(_parse(expr)):
            src = _Fields.sources(leaf, names)
            if src is None:
                raise DataError(f"run: expected variable {leaf!r} (used by {expr!r}) for TC detection, "
                                f"found variables {sorted(names)}")
            needed.update(src)
    if annulus:
        needed.update(cfg.warm_core_vars)
    if wind is not None:
        needed.update(wind)
    if vort is not None:
        needed.update(_Fields.sources(vort, names) or [])
    criteria = [(f"candidates: local minima of {cfg.psl_var} ({cfg.connectivity} neighbours), "
                 f"|lat| <= {cfg.max_abs_lat:g}, merged within {cfg.merge_distance_km:.0f} km")]
    criteria += [t.describe() for t in thresholds]
    criteria += [c.describe() for c in contours]
    if annulus:
        criteria.append(f"warm core (annulus): mean of {list(cfg.warm_core_vars)} within "
                        f"{cfg.warm_core_radius_km:g} km "
                        f"exceeds the {cfg.warm_core_outer_radius_km:g} km annulus by {cfg.min_warm_core_k:g} K")
    k_per_unit = 1.0
    if warm_contour is not None and contours[warm_contour].field.startswith("_DIFF("):  # a thickness, in m
        k_per_unit = thickness_k_per_m(*cfg.thickness_vars)
    return _Plan(thresholds, contours, warm_contour, annulus, wind, vort, sorted(needed), criteria, skipped,
                 k_per_unit)


def _plan_dynamics(cfg: TCConfig, names: set[str]) -> tuple[tuple[str, str] | None, str | None]:
    """The first complete wind pair, and the vorticity leaf (of that pair's level first) the run can give."""
    wind = next(((u, v) for u, v in cfg.wind_vars if u in names and v in names), None)
    vort_leaves = [f"VORT{u[1:]}" for u, _ in cfg.wind_vars if u.startswith("U")] if wind is None else [
        f"VORT{wind[0][1:]}"]
    order = [*vort_leaves, *cfg.vorticity_vars] if wind is not None else [*cfg.vorticity_vars, *vort_leaves]
    vort = next((leaf for leaf in order if _Fields.sources(leaf, names) is not None), None)
    return wind, vort


def _plan_thresholds(cfg: TCConfig, names: set[str], wind: tuple[str, str] | None, vort: str | None,
                     skipped: list[str]) -> list[Threshold]:
    """The configured thresholds, or cyclonic vorticity and wind speed where the run has them."""
    if cfg.thresholds is not None:
        return list(cfg.thresholds)
    thresholds: list[Threshold] = []
    if cfg.min_vorticity_per_s is not None:
        if vort is not None:
            thresholds.append(Threshold(f"_CYC({vort})", ">=", cfg.min_vorticity_per_s, cfg.vorticity_radius_km))
        else:
            skipped.append("vorticity: no 850 hPa / lowest-level winds, VORT850 or ABSV850 in the run")
    if cfg.min_wind_ms is not None:
        if wind is not None:
            thresholds.append(Threshold(f"_VECMAG({wind[0]},{wind[1]})", ">=", cfg.min_wind_ms, cfg.wind_radius_km))
        else:
            skipped.append(f"wind speed: none of the wind pairs {[list(p) for p in cfg.wind_vars]} is complete")
    if not thresholds and (cfg.min_vorticity_per_s is not None or cfg.min_wind_ms is not None):
        raise DataError(
            f"run: expected one of the wind pairs {[list(p) for p in cfg.wind_vars]} or a vorticity variable "
            f"{list(cfg.vorticity_vars)} (or ABSV850) for TC detection, found variables {sorted(names)}"
        )
    return thresholds


def _plan_contours(cfg: TCConfig, names: set[str],
                   skipped: list[str]) -> tuple[list[ClosedContour], int | None, bool]:
    """The closed contours, the index of the warm-core one (None: none), and whether the annulus test runs."""
    if cfg.closed_contours is not None:
        contours = list(cfg.closed_contours)
        warm = next((k for k, c in enumerate(contours) if c.delta < 0), None)
        return contours, warm, False
    contours = [ClosedContour(cfg.psl_var, cfg.closed_contour_dpsl_pa, cfg.closed_contour_radius_km, 0.0)]
    if cfg.warm_core == "closed_contour":
        return [*contours, _warm_core_contour(cfg, names, skipped)], 1, False
    if cfg.warm_core == "annulus":
        missing = [v for v in cfg.warm_core_vars if v not in names]
        if missing:
            raise DataError(f"run: expected variable(s) {missing} for the warm-core test, found {sorted(names)}")
        return contours, None, True
    skipped.append("warm core: warm_core='off'")
    return contours, None, False


def _warm_core_contour(cfg: TCConfig, names: set[str], skipped: list[str]) -> ClosedContour:
    """The warm-core contour: of the thickness or of the temperatures, as ``warm_core_source`` and the run allow."""
    has_thick = all(v in names for v in cfg.thickness_vars)
    has_temp = all(v in names for v in cfg.warm_core_vars)

    def thickness() -> ClosedContour:
        return ClosedContour(f"_DIFF({cfg.thickness_vars[0]},{cfg.thickness_vars[1]})", -cfg.thickness_delta_m,
                             cfg.thickness_distance_km, cfg.thickness_search_km)

    if has_thick and cfg.warm_core_source in ("auto", "thickness"):
        return thickness()
    if has_temp:  # every source falls back to the temperatures
        if cfg.warm_core_source == "thickness":
            skipped.append(f"warm core from the thickness {list(cfg.thickness_vars)}: not in the run; "
                           f"the temperatures {list(cfg.warm_core_vars)} are used")
        fld = cfg.warm_core_vars[0] if len(cfg.warm_core_vars) == 1 else f"_AVG({','.join(cfg.warm_core_vars)})"
        return ClosedContour(fld, -cfg.warm_core_delta_k, cfg.warm_core_distance_km, cfg.warm_core_search_km)
    if has_thick:
        return thickness()
    raise DataError(
        f"run: expected the warm-core temperatures {list(cfg.warm_core_vars)} or the heights "
        f"{list(cfg.thickness_vars)} for TC detection (or warm_core='off'), found variables {sorted(names)}"
    )


# --------------------------------------------------------------------------- the engine


def _windows(field_: np.ndarray, t: np.ndarray, i: np.ndarray, j: np.ndarray, km: float, grid: Grid):
    """Windows around K cells reaching ``km`` (plus one cell) everywhere; values, validity, lat, lon."""
    lat_max = float(np.abs(grid.lat[i]).max()) if i.size else 0.0
    hy, hx = grid.cells_for_km(km + 1.5 * grid.dlat_min_deg * KM_PER_DEG, lat_max)
    hx = max(hx, 1)
    rows_c, cols_c, valid = window_index(i, j, hy, hx, grid)
    win = field_[t[:, None, None], rows_c[:, :, None], cols_c[:, None, :]]
    return win, valid, grid.lat[rows_c], grid.lon[cols_c], hy, hx


def _local_minima(psl: np.ndarray, grid: Grid, cfg: TCConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cells with no strictly lower neighbour (TE FindAllLocalMinima), within the latitude bounds."""
    ff = np.where(np.isfinite(psl), psl, np.inf)
    pad = np.pad(ff, ((0, 0), (1, 1), (0, 0)), mode="edge")  # no neighbour beyond the poles
    pad = np.pad(pad, ((0, 0), (0, 0), (1, 1)), mode="wrap" if grid.periodic else "edge")
    ny, nx = psl.shape[1:]
    cand = np.isfinite(psl) & (np.abs(grid.lat) <= cfg.max_abs_lat)[None, :, None]
    offsets = [(-1, 0), (1, 0), (0, -1), (0, 1)]
    if cfg.connectivity == 8:
        offsets += [(-1, -1), (-1, 1), (1, -1), (1, 1)]
    for dy, dx in offsets:  # a neighbour strictly lower: not a minimum (edge copies are equal, never lower)
        cand &= ~(pad[:, 1 + dy:1 + dy + ny, 1 + dx:1 + dx + nx] < ff)
    t, i, j = np.nonzero(cand)
    return t, i, j


class _RowRanks:
    """Candidates' ranks by (step, row, column), for the smallest rank in a run of columns of one row.

    Exactly what a 1-D running minimum of the rank field (``inf`` off the candidates) gives
    at the queried cells, without building that (time, lat, lon) field: the candidates are
    sorted by their flat grid index, and a sparse table answers range minima.
    """

    def __init__(self, t: np.ndarray, i: np.ndarray, j: np.ndarray, rank: np.ndarray, nlat: int,
                 nlon: int) -> None:
        self.nlat, self.nlon = nlat, nlon
        key = (t.astype(np.int64) * nlat + i) * nlon + j
        order = np.argsort(key, kind="stable")
        self.key = key[order]
        table = [rank[order].astype(np.float64)]
        while 2 ** len(table) <= table[0].size:
            prev, half = table[-1], 2 ** (len(table) - 1)
            table.append(np.minimum(prev[:-half], prev[half:]))
        self.table = table

    def _range_min(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Smallest rank among candidates with flat index in [a, b) (inf if none)."""
        lo = np.searchsorted(self.key, a, side="left")
        hi = np.searchsorted(self.key, b, side="left")
        n = hi - lo
        out = np.full(a.shape, np.inf)
        some = n > 0
        if some.any():
            lvl = np.floor(np.log2(np.maximum(n[some], 1))).astype(np.int64)
            lo_s, hi_s = lo[some], hi[some]
            vals = np.full(lo_s.shape, np.inf)
            for level in np.unique(lvl):
                sel = lvl == level
                tab = self.table[level]
                vals[sel] = np.minimum(tab[lo_s[sel]], tab[hi_s[sel] - 2 ** level])
            out[some] = vals
        return out

    def window_min(self, t: np.ndarray, rows: np.ndarray, j: np.ndarray, width: np.ndarray,
                   periodic: bool) -> np.ndarray:
        """Smallest rank in columns ``j - width .. j + width`` of row ``rows`` at step ``t``.

        The run of columns wraps around in longitude when ``periodic`` (a window as wide
        as the row is the whole row), and is clipped at the edges otherwise.
        """
        nlon = self.nlon
        base = (t.astype(np.int64) * self.nlat + rows) * nlon
        lo, hi = j - width, j + width + 1
        if periodic:  # a window as wide as the row: the whole row
            full = 2 * width + 1 >= nlon
            lo, hi = np.where(full, 0, lo), np.where(full, nlon, hi)
        out = self._range_min(base + np.maximum(lo, 0), base + np.minimum(hi, nlon))
        if periodic:  # the part of the window that wraps around the row's end
            left, right = lo < 0, hi > nlon
            if left.any():
                b = base[left] + nlon
                out[left] = np.minimum(out[left], self._range_min(b + lo[left], b))
            if right.any():
                b = base[right]
                out[right] = np.minimum(out[right], self._range_min(b, b + hi[right] - nlon))
        return out


def _merge(t: np.ndarray, i: np.ndarray, j: np.ndarray, val: np.ndarray, grid: Grid, km: float,
           shape: tuple[int, int, int]) -> np.ndarray:
    """Keep-mask of candidates: none of the same step is deeper within ``km`` (TE ``--mergedist``).

    "Deeper" is a lower value, or an equal value earlier in grid order (so of equal
    minima within ``km`` the first stays, as TE's ``--mergeequal``; plain TE keeps
    both). Exact on the sphere: the candidates' ranks are put on the grid, and for
    each pair (row, row offset) the longitudes within ``km`` of a cell centre form
    one contiguous range, so the smallest rank within the great-circle disc is the
    smallest over row offsets of a 1-D running minimum of the right width (taken at
    the candidates only, :class:`_RowRanks`, rather than over the whole field).
    """
    k = t.size
    if k < 2:
        return np.ones(k, dtype=bool)
    order = np.lexsort((j, i, t, val))  # by value, then grid order
    rank = np.empty(k, dtype=np.float64)
    rank[order] = np.arange(k, dtype=np.float64)
    nlat, nlon = grid.shape
    ranks = _RowRanks(t, i, j, rank, nlat, nlon)
    phi = np.deg2rad(grid.lat)
    cos_r = np.cos(km / EARTH_RADIUS_KM)
    hy = min(int(np.ceil(np.rad2deg(km / EARTH_RADIUS_KM) / grid.dlat_min_deg)) + 1, nlat - 1)
    best = np.full(k, np.inf)
    for dy in range(-hy, hy + 1):
        rows2 = i + dy
        ok = (rows2 >= 0) & (rows2 < nlat)
        if not ok.any():
            continue
        p1, p2 = phi[i[ok]], phi[rows2[ok]]
        with np.errstate(invalid="ignore", divide="ignore"):
            c = (cos_r - np.sin(p1) * np.sin(p2)) / (np.cos(p1) * np.cos(p2))
        reach = c <= 1.0 + 1e-12
        dlam = np.rad2deg(np.arccos(np.clip(c, -1.0, 1.0)))
        w = np.floor(dlam / grid.dlon_deg + 1e-9).astype(np.int64)
        w = np.where(np.cos(p1) * np.cos(p2) <= 1e-12, nlon, w)  # a pole row: every column
        m = np.flatnonzero(ok)[reach]
        if m.size:
            width = np.minimum(w[reach], nlon)
            best[m] = np.minimum(best[m], ranks.window_min(t[m], rows2[m], j[m], width, grid.periodic))
    return ~(best < rank)


def _threshold_stat(fld: np.ndarray, t, i, j, crit: Threshold, grid: Grid) -> np.ndarray:
    if crit.distance_km == 0:
        return fld[t, i, j]
    win, valid, la, lo, _, _ = _windows(fld, t, i, j, crit.distance_km, grid)
    d = great_circle_km(grid.lat[i][:, None, None], grid.lon[j][:, None, None], la[:, :, None], lo[:, None, :])
    inside = valid & (d <= crit.distance_km) & np.isfinite(win)
    if crit.op.startswith(">"):
        return np.where(inside, win, -np.inf).max(axis=(1, 2))
    return np.where(inside, win, np.inf).min(axis=(1, 2))


def _closed_contour(
    fld: np.ndarray, t: np.ndarray, i: np.ndarray, j: np.ndarray, cc: ClosedContour, grid: Grid, conn: int
) -> tuple[np.ndarray, np.ndarray]:
    """TE HasClosedContour for K candidates at once; returns (passed, core-minus-ring value).

    From the reference cell (the candidate, or the extremum within ``search_km``),
    cells are visited breadth-first through the grid's neighbours; the fill goes on
    from a cell while the field has changed by less than ``delta`` there, and the
    test fails as soon as a visited cell lies farther than ``distance_km`` from the
    reference. Equivalently: with S the connected set of cells, containing the
    reference, that have changed by less than ``delta``, S and its neighbours
    must all lie within ``distance_km``.
    """
    k = t.size
    if k == 0:
        return np.zeros(0, bool), np.zeros(0)
    win, valid, la, lo, hy, hx = _windows(fld, t, i, j, cc.search_km + cc.distance_km, grid)
    finite = valid & np.isfinite(win)
    kk = np.arange(k)
    if cc.search_km > 0:
        d0 = great_circle_km(grid.lat[i][:, None, None], grid.lon[j][:, None, None], la[:, :, None], lo[:, None, :])
        near = finite & (d0 <= cc.search_km)
        near[:, hy, hx] = True
        score = np.where(near, win if cc.delta < 0 else -win, -np.inf)
        flat = score.reshape(k, -1).argmax(axis=1)
        oy, ox = np.unravel_index(flat, win.shape[1:])
    else:
        oy, ox = np.full(k, hy), np.full(k, hx)
    ref = win[kk, oy, ox]
    d = great_circle_km(la[kk, oy][:, None, None], lo[kk, ox][:, None, None], la[:, :, None], lo[:, None, :])
    change = (win - ref[:, None, None]) if cc.delta > 0 else (ref[:, None, None] - win)
    grow = finite & (change < abs(cc.delta))
    grow[kk, oy, ox] = True
    st = _cross(conn)
    lab, _ = ndimage.label(grow, structure=st)
    own = lab == lab[kk, oy, ox][:, None, None]
    reach = ndimage.binary_dilation(own, structure=st) & valid
    passed = ~(reach & (d > cc.distance_km)).any(axis=(1, 2))
    cell_km = grid.dlat_min_deg * KM_PER_DEG
    ring = finite & (d <= cc.distance_km) & (d > cc.distance_km - 1.5 * cell_km)
    with np.errstate(invalid="ignore", divide="ignore"):
        ring_mean = np.where(ring, win, 0.0).sum(axis=(1, 2)) / ring.sum(axis=(1, 2))
    depth = (ref - ring_mean) if cc.delta < 0 else (ring_mean - ref)
    return passed, depth


def _annulus_warm_core(tcore: np.ndarray, t, i, j, grid: Grid, cfg: TCConfig) -> np.ndarray:
    ry, rx = grid.cells_for_km(cfg.warm_core_outer_radius_km, cfg.max_abs_lat)
    win, d, rows = gather_windows(tcore, t, i, j, ry, rx, grid)
    w = np.cos(np.deg2rad(grid.lat[rows]))[:, :, None] * np.isfinite(win)
    win0 = np.nan_to_num(win)
    inner = d <= cfg.warm_core_radius_km
    ring = (d > cfg.warm_core_radius_km) & (d <= cfg.warm_core_outer_radius_km)
    with np.errstate(invalid="ignore", divide="ignore"):
        m_in = (win0 * w * inner).sum((1, 2)) / (w * inner).sum((1, 2))
        m_out = (win0 * w * ring).sum((1, 2)) / (w * ring).sum((1, 2))
    return m_in - m_out


def _radial_profile(win: np.ndarray, dist: np.ndarray, dr: float, nbins: int) -> np.ndarray:
    """Azimuthal means in rings [k·dr, (k+1)·dr), shape (K, nbins); NaN for empty rings."""
    k = win.shape[0]
    b = np.floor(dist / dr)
    ok = np.isfinite(b) & (b < nbins) & np.isfinite(win)
    idx = (np.arange(k)[:, None, None] * nbins + np.where(ok, b, 0).astype(np.int64))[ok]
    s = np.bincount(idx, weights=win[ok], minlength=k * nbins).reshape(k, nbins)
    c = np.bincount(idx, minlength=k * nbins).reshape(k, nbins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return s / c


def _first_true(cond: np.ndarray) -> np.ndarray:
    """Index of the first True along the last axis, -1 if none."""
    first = cond.argmax(axis=-1)
    return np.where(cond.any(axis=-1), first, -1)


def _mask_radius(
    method: str, cfg: TCConfig, psl_win: np.ndarray, spd_win: np.ndarray | None, dist: np.ndarray, dr: float
) -> np.ndarray:
    k = psl_win.shape[0]
    if method == "fixed" or k == 0:
        return np.full(k, cfg.mask_radius_km)
    nbins = int(np.ceil(cfg.max_mask_radius_km / dr)) + 1
    edges = np.arange(nbins) * dr  # inner edge of each ring
    if method == "wind" and spd_win is not None:
        prof = _radial_profile(spd_win, dist, dr, nbins)
        rmw = np.nanargmax(np.where(np.isnan(prof), -np.inf, prof), axis=1)
        after = np.arange(nbins)[None, :] > rmw[:, None]
        idx = _first_true(after & (prof < cfg.mask_wind_ms))
    else:
        prof = _radial_profile(psl_win, dist, dr, nbins)
        outer = prof[:, -1]  # azimuthal-mean PSL at max_mask_radius_km: the environment
        idx = _first_true((outer[:, None] - prof) < cfg.mask_dpsl_pa)
    radius = np.where(idx >= 0, edges[np.maximum(idx, 0)], cfg.max_mask_radius_km)
    return np.clip(radius, cfg.min_mask_radius_km, cfg.max_mask_radius_km)


_COLUMNS = ["time_index", "lat", "lon", "psl_pa", "vorticity_per_s", "max_wind_ms", "warm_core_k", "radius_km"]


def _block_nodes(blk: xr.Dataset, grid: Grid, cfg: TCConfig, plan: _Plan, rejected: dict[str, int]) -> dict:
    """Nodes of one block of time steps (time, lat, lon); vectorized over time and candidates."""
    fields = _Fields(blk, grid)
    psl = fields.leaf(cfg.psl_var)
    t, i, j = _local_minima(psl, grid, cfg)
    keep = _merge(t, i, j, psl[t, i, j], grid, cfg.merge_distance_km, psl.shape)
    rejected["merge"] = rejected.get("merge", 0) + int((~keep).sum())
    t, i, j = t[keep], i[keep], j[keep]
    out: dict[str, list[np.ndarray]] = {k: [] for k in ("t", "i", "j", "vort", "wind", "warm", "radius")}
    mask_method = cfg.mask_method if (cfg.mask_method != "wind" or plan.wind is not None) else "psl"
    dr = max(grid.dlat_min_deg * 111.195, 25.0)
    chunk = int(cfg.candidate_chunk)
    for s in range(0, t.size, chunk):
        tt, ii, jj = t[s:s + chunk], i[s:s + chunk], j[s:s + chunk]
        for crit in plan.thresholds:
            stat = _threshold_stat(fields.eval(crit.field), tt, ii, jj, crit, grid)
            ok = _OPS[crit.op](stat, crit.value)
            rejected[crit.describe()] = rejected.get(crit.describe(), 0) + int((~ok).sum())
            tt, ii, jj = tt[ok], ii[ok], jj[ok]
        warm = np.full(tt.size, np.nan)
        for n, cc in enumerate(plan.contours):
            ok, depth = _closed_contour(fields.eval(cc.field), tt, ii, jj, cc, grid, cfg.connectivity)
            rejected[cc.describe()] = rejected.get(cc.describe(), 0) + int((~ok).sum())
            if n == plan.warm_contour:
                warm = depth
            tt, ii, jj, warm = tt[ok], ii[ok], jj[ok], warm[ok]
        if plan.annulus:
            tcore = fields.eval(f"_AVG({','.join(cfg.warm_core_vars)})" if len(cfg.warm_core_vars) > 1
                                else cfg.warm_core_vars[0])
            warm = _annulus_warm_core(tcore, tt, ii, jj, grid, cfg)
            ok = warm >= cfg.min_warm_core_k
            key = "warm core (annulus)"
            rejected[key] = rejected.get(key, 0) + int((~ok).sum())
            tt, ii, jj, warm = tt[ok], ii[ok], jj[ok], warm[ok]
        # reported values (whether or not they were criteria)
        vort = (_threshold_stat(fields.eval(f"_CYC({plan.vort})"), tt, ii, jj,
                                Threshold("PSL", ">=", 0.0, cfg.vorticity_radius_km), grid)
                if plan.vort is not None else np.full(tt.size, np.nan))
        speed = fields.eval(f"_VECMAG({plan.wind[0]},{plan.wind[1]})") if plan.wind is not None else None
        wind = (_threshold_stat(speed, tt, ii, jj, Threshold("PSL", ">=", 0.0, cfg.wind_radius_km), grid)
                if speed is not None else np.full(tt.size, np.nan))
        if mask_method == "fixed" or tt.size == 0:
            radius = np.full(tt.size, cfg.mask_radius_km)
        else:
            ry, rx = grid.cells_for_km(cfg.max_mask_radius_km, cfg.max_abs_lat)
            pw, d, _ = gather_windows(psl, tt, ii, jj, ry, rx, grid)
            sw = gather_windows(speed, tt, ii, jj, ry, rx, grid)[0] if speed is not None else None
            radius = _mask_radius(mask_method, cfg, pw, sw, d, dr)
        for key, val in zip(out, (tt, ii, jj, vort, wind, warm, radius)):
            out[key].append(np.asarray(val))
    res = {k: (np.concatenate(v) if v else np.zeros(0)) for k, v in out.items()}
    res["psl"] = psl[res["t"].astype(np.int64), res["i"].astype(np.int64), res["j"].astype(np.int64)] \
        if res["t"].size else np.zeros(0)
    return res


def _window_rows_cols(i: np.ndarray, j: np.ndarray, hy: int, hx: int, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    nlat, nlon = grid.shape
    rows = np.clip(i[:, None] + np.arange(-hy, hy + 1)[None, :], 0, nlat - 1)
    cols = j[:, None] + np.arange(-hx, hx + 1)[None, :]
    cols = np.mod(cols, nlon) if grid.periodic else np.clip(cols, 0, nlon - 1)
    return rows[:, :, None], cols[:, None, :]


def resolve_config(config: TCConfig | dict | None, ds: xr.Dataset | None = None, *, coarse: Coarse = "auto",
                   **settings: Any) -> TCConfig:
    """The :class:`TCConfig` that :func:`detect_tc_nodes` would use for ``ds`` (coarse-grid defaults applied)."""
    return _resolve_config(config, settings, ds, coarse)


def _resolve_config(config: TCConfig | dict | None, overrides: dict[str, Any], ds: xr.Dataset | None,
                    coarse: Coarse) -> TCConfig:
    if isinstance(config, dict):
        config = TCConfig.from_dict(config)
    if config is not None and not isinstance(config, TCConfig):
        raise ConfigError(f"config: expected a TCConfig, a dict or None, found {type(config).__name__}")
    if coarse not in (True, False, "auto"):
        raise ConfigError(f"coarse: expected True, False or 'auto', found {coarse!r}")
    use_coarse = False
    if coarse == "auto" and config is None and ds is not None and "lat" in ds.coords and ds["lat"].size > 1:
        use_coarse = float(np.abs(np.diff(ds["lat"].values.astype(np.float64))).min()) >= 2.0
    elif coarse is True:
        use_coarse = True
    base = dataclasses.asdict(config) if config is not None else {}
    if use_coarse:
        base = {**base, **COARSE_GRID}
    if overrides:
        known = {f.name for f in dataclasses.fields(TCConfig)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(f"detect_tc_nodes: unknown setting(s) {unknown}; expected TCConfig fields")
        base = {**base, **overrides}
    if config is not None and not use_coarse and not overrides:
        return config
    return TCConfig(**base)


def _prepare(ds: xr.Dataset, cfg: TCConfig) -> tuple[xr.Dataset, _Plan, Grid]:
    if not isinstance(ds, xr.Dataset):
        raise DataError(f"run: expected an xarray.Dataset, found {type(ds).__name__}")
    if cfg.psl_var not in ds.data_vars:
        raise DataError(f"run: expected variable {cfg.psl_var!r} (sea-level pressure, Pa) for TC detection, "
                        f"found variables {sorted(map(str, ds.data_vars))}")
    plan = _plan(ds, cfg)
    ds = normalize_run(ds, plan.needed)
    return ds, plan, Grid.from_coords(ds.lat.values, ds.lon.values, cfg.periodic)


@config_keyword
def detect_tc_nodes(ds: xr.Dataset, *, config: TCConfig | dict | None = None, coarse: Coarse = "auto",
                    **settings: Any) -> pd.DataFrame:
    """Find TC centres (nodes) at every time step, as TempestExtremes' DetectNodes.

    Parameters
    ----------
    ds
        Run on (time, lat, lon) (or one time step on (lat, lon)) with ``PSL``
        (Pa); for the default criteria also ``T200``/``T500`` (K) or
        ``Z300``/``Z500`` (m), and 850 hPa or lowest-level winds (m s⁻¹) and/or
        ``VORT850``/``ABSV850`` (s⁻¹). Criteria whose fields are missing are
        skipped (recorded), but at least one wind or vorticity test must run.
    config
        Settings: a :class:`TCConfig`, a dict of its fields, or None (defaults).
    coarse
        ``"auto"`` (default): with no ``config`` given and a latitude spacing of
        2° or more, apply :data:`COARSE_GRID`; True always, False never.
    **settings
        :class:`TCConfig` fields overriding ``config`` (e.g. ``periodic=False``,
        ``max_abs_lat=40``).

    Returns
    -------
    pandas.DataFrame
        ``time_index, time, lat, lon, psl_pa, vorticity_per_s, max_wind_ms,
        warm_core_k, radius_km``, ordered by time. ``attrs``: ``criteria`` (what
        ran), ``skipped`` (what could not, and why), ``rejected`` (candidates
        each criterion removed), ``config`` (the settings, as a dict).

    Examples
    --------
    A synthetic run on a 1.875 degree grid with 3 TCs at every step (the detector needs
    about 2 degrees or finer):

    >>> ds, features = cv.synthetic_run(4, shape=(96, 144), return_features=True)
    >>> nodes = cv.labels.detect_tc_nodes(ds)
    >>> nodes.groupby("time_index").size().tolist()
    [3, 3, 3, 3]
    >>> first = nodes[nodes["time_index"] == 0]
    >>> first[["lat", "lon"]].round(1).values.tolist()  # grid cell of each centre
    [[-10.3, 112.5], [19.7, 77.5], [19.7, 320.0]]
    >>> (first["psl_pa"] / 100).round().tolist()  # central pressure, hPa
    [978.0, 962.0, 974.0]
    >>> truth = features[(features["kind"] == "tc") & (features["time"] == ds["time"].values[0])]
    >>> truth.sort_values("lat")[["lat", "lon"]].round(1).values.tolist()  # the storms' true centres
    [[-9.5, 111.6], [19.0, 77.4], [20.5, 318.9]]
    >>> nodes.attrs["skipped"]
    []
    """
    cfg = _resolve_config(config, settings, ds if isinstance(ds, xr.Dataset) else None, coarse)
    norm, plan, grid = _prepare(ds, cfg)
    parts = []
    rejected: dict[str, int] = {}
    nt = norm.sizes["time"]
    for t0 in range(0, nt, int(cfg.time_block)):
        blk = norm.isel(time=slice(t0, t0 + cfg.time_block)).load()
        r = _block_nodes(blk, grid, cfg, plan, rejected)
        parts.append(pd.DataFrame({
            "time_index": r["t"].astype(np.int64) + t0,
            "lat": grid.lat[r["i"].astype(np.int64)],
            "lon": np.mod(grid.lon[r["j"].astype(np.int64)], 360.0),
            "psl_pa": r["psl"].astype(np.float64),
            "vorticity_per_s": r["vort"].astype(np.float64),
            "max_wind_ms": r["wind"].astype(np.float64),
            "warm_core_k": r["warm"].astype(np.float64) * plan.warm_k_per_unit,
            "radius_km": r["radius"].astype(np.float64),
        }))
    nodes = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        {c: np.zeros(0, dtype=np.int64 if c == "time_index" else np.float64) for c in _COLUMNS})
    nodes.insert(1, "time", norm.time.values[nodes["time_index"].to_numpy(dtype=np.int64)])
    nodes = nodes.sort_values(["time_index", "lat", "lon"], ignore_index=True)
    nodes.attrs.update(criteria=list(plan.criteria), skipped=list(plan.skipped), rejected=dict(rejected),
                       config=cfg.to_dict())
    return nodes


def _stitch_te(ti: np.ndarray, lat: np.ndarray, lon: np.ndarray, hours: np.ndarray, cfg: TCConfig) -> np.ndarray:
    """StitchNodes' GeneratePathSegmentsSetBasic + GeneratePathsBasic; raw path id per node (-1: none)."""
    n = ti.size
    steps = np.unique(ti)
    by_step = {int(s): np.flatnonzero(ti == s) for s in steps}
    nxt = np.full(n, -1, dtype=np.int64)
    for a, s in enumerate(steps):
        for k in by_step[int(s)]:
            for s2 in steps[a + 1:]:
                if hours[s2] - hours[s] > cfg.max_gap_h + 1e-9:
                    break
                cand = by_step[int(s2)]
                d = great_circle_km(lat[k], lon[k], lat[cand], lon[cand])
                m = int(np.argmin(d))  # TE: the nearest node at that step (kd_nearest3), then the range test
                if d[m] <= cfg.range_km:
                    nxt[k] = cand[m]
                    break
    raw = np.full(n, -1, dtype=np.int64)
    used = np.zeros(n, dtype=bool)  # segments already followed
    pid = 0
    for s in steps:
        for k in by_step[int(s)]:
            if nxt[k] < 0 or used[k]:
                continue
            cur = k
            if raw[cur] < 0:
                raw[cur] = pid
            while nxt[cur] >= 0 and not used[cur]:
                used[cur] = True
                cur = nxt[cur]
                if raw[cur] >= 0:
                    break
                raw[cur] = pid
            pid += 1
    return raw


_STITCH_COLUMNS = ("time_index", "time", "lat", "lon", "psl_pa", "max_wind_ms")


@config_keyword
def stitch_nodes(
    nodes: pd.DataFrame, hours: np.ndarray, *, config: TCConfig | None = None
) -> tuple[np.ndarray, pd.DataFrame]:
    """Link nodes into tracks (StitchNodes-style) and keep the long-lived ones.

    ``stitch_method="assignment"`` (default): at each time step the nodes are
    matched one-to-one to the open tracks by minimum total great-circle
    distance (:func:`scipy.optimize.linear_sum_assignment`), a match allowed
    only within ``max_speed_km_per_h`` × hours elapsed since the track's last
    node and ``max_gap_h`` without a node; unmatched nodes start new tracks.

    ``stitch_method="te"``: TempestExtremes StitchNodes' default ("basic",
    first come first served): each node links forward to the *nearest* node of
    the first later step (up to ``max_gap_h`` ahead) whose nearest node lies
    within ``range_km``; paths are then followed from the earliest, lowest-index
    segment. Where two nodes link to the same later node TE lists that node in
    both paths; here it stays in the first path and the second ends before it.

    Parameters
    ----------
    nodes
        Output of :func:`detect_tc_nodes`: at least the columns ``time_index, time, lat,
        lon, psl_pa, max_wind_ms``.
    hours
        Hours since the start for every time index of the run.
    config
        ``stitch_method``, ``max_speed_km_per_h`` or ``range_km``, ``max_gap_h``,
        ``min_duration_h``, ``genesis_max_abs_lat``.

    Returns
    -------
    track_id : numpy.ndarray
        Per node, its kept track (0, 1, ...) or -1.
    tracks : pandas.DataFrame
        One row per kept track (see :class:`TCResult`).

    Examples
    --------
    Two storms, 6-hourly: one moves 1 degree west per step at 15 N for 66 h, the other
    stays put for 18 h, shorter than ``min_duration_h`` (54 h), and is dropped. The
    kept track is 11 steps of ``111.19 * cos(15 deg)`` = 107.4 km, 1181.4 km in all:

    >>> import pandas as pd
    >>> long = pd.DataFrame({"time_index": range(12), "lat": 15.0, "lon": 140.0 - np.arange(12),
    ...                      "psl_pa": 99000.0 - 100 * np.arange(12), "max_wind_ms": 20.0})
    >>> short = pd.DataFrame({"time_index": range(4), "lat": -12.0, "lon": 60.0,
    ...                       "psl_pa": 99500.0, "max_wind_ms": 18.0})
    >>> nodes = pd.concat([long, short]).sort_values("time_index", kind="stable")
    >>> nodes["time"] = pd.Timestamp("2000-01-01") + pd.to_timedelta(6 * nodes["time_index"], unit="h")
    >>> track_id, tracks = cv.labels.stitch_nodes(nodes, hours=6.0 * np.arange(12))
    >>> track_id.tolist()
    [0, -1, 0, -1, 0, -1, 0, -1, 0, 0, 0, 0, 0, 0, 0, 0]
    >>> tracks[["duration_h", "n_nodes", "min_psl_pa", "path_km"]].round(1).to_dict("records")
    [{'duration_h': 66.0, 'n_nodes': 12, 'min_psl_pa': 97900.0, 'path_km': 1181.5}]
    """
    cfg = config or TCConfig()
    n = len(nodes)
    missing = [c for c in _STITCH_COLUMNS if c not in nodes.columns]
    if missing:
        raise DataError(f"stitch_nodes: the nodes table lacks the column(s) {missing}; expected the "
                        f"columns of detect_tc_nodes' output {list(_STITCH_COLUMNS)}, found {list(nodes.columns)}")
    ti = nodes["time_index"].to_numpy(dtype=np.int64)
    lat = nodes["lat"].to_numpy(dtype=np.float64)
    lon = nodes["lon"].to_numpy(dtype=np.float64)
    hours = np.asarray(hours, dtype=np.float64)
    if n and (ti.min() < 0 or ti.max() >= hours.size):
        raise DataError(f"stitch_nodes: node time_index values run from {ti.min()} to {ti.max()}, but hours "
                        f"has {hours.size} entries (one per time step of the run expected)")
    hrs = hours[ti] if n else np.zeros(0)
    if cfg.stitch_method == "te":
        raw = _stitch_te(ti, lat, lon, hours, cfg)
    else:
        raw = _stitch_assignment(ti, lat, lon, hours, cfg)
    if n == 0:
        return raw, _empty_tracks()
    df = pd.DataFrame({"raw": raw, "h": hrs, "lat": lat, "lon": lon, "time": nodes["time"].to_numpy(),
                       "psl": nodes["psl_pa"].to_numpy(), "wind": nodes["max_wind_ms"].to_numpy()})
    kept = _kept_paths(df, cfg)
    track_id = df["raw"].map(pd.Series(np.arange(kept.size), index=kept)).fillna(-1).to_numpy(dtype=np.int64)
    return track_id, _track_table(df, kept)


def _stitch_assignment(ti: np.ndarray, lat: np.ndarray, lon: np.ndarray, hours: np.ndarray,
                       cfg: TCConfig) -> np.ndarray:
    """Path number of every node, linking each step's nodes to the open paths one-to-one by least total distance."""
    raw = np.full(ti.size, -1, dtype=np.int64)
    # open paths: id, last node's hour, lat, lon
    o_id = np.zeros(0, np.int64)
    o_h = np.zeros(0)
    o_lat = np.zeros(0)
    o_lon = np.zeros(0)
    next_id = 0
    for step in np.unique(ti):
        sel = np.flatnonzero(ti == step)
        h = hours[step]
        # a path stays open while the time without a node (beyond one step) is at most max_gap_h
        dt_prev = float(hours[step] - hours[step - 1]) if step > 0 else 0.0
        alive = (h - o_h - dt_prev) <= cfg.max_gap_h + 1e-9
        o_id, o_h, o_lat, o_lon = o_id[alive], o_h[alive], o_lat[alive], o_lon[alive]
        assigned = np.full(sel.size, -1, dtype=np.int64)
        if o_id.size:
            dist = great_circle_km(o_lat[:, None], o_lon[:, None], lat[sel][None, :], lon[sel][None, :])
            limit = cfg.max_speed_km_per_h * (h - o_h)[:, None]
            cost = np.where(dist <= limit, dist, 1e12)
            r, c = linear_sum_assignment(cost)
            good = cost[r, c] < 1e12
            assigned[c[good]] = o_id[r[good]]
            o_h[r[good]] = h
            o_lat[r[good]] = lat[sel][c[good]]
            o_lon[r[good]] = lon[sel][c[good]]
        new = assigned < 0
        new_ids = next_id + np.arange(new.sum())
        next_id += int(new.sum())
        assigned[new] = new_ids
        o_id = np.concatenate([o_id, new_ids])
        o_h = np.concatenate([o_h, np.full(new_ids.size, h)])
        o_lat = np.concatenate([o_lat, lat[sel][new]])
        o_lon = np.concatenate([o_lon, lon[sel][new]])
        raw[sel] = assigned
    return raw


def _kept_paths(df: pd.DataFrame, cfg: TCConfig) -> pd.Index:
    """The path numbers (column ``raw``) long enough, and born equatorward enough, to be tracks."""
    g = df.groupby("raw", sort=True)
    dur = g["h"].max() - g["h"].min()
    ok = (dur.to_numpy() >= cfg.min_duration_h - 1e-9) & (dur.index.to_numpy() >= 0)  # -1: in no path
    if cfg.genesis_max_abs_lat is not None:
        first_lat = df.sort_values("h").groupby("raw", sort=True)["lat"].first().reindex(dur.index)
        ok &= np.abs(first_lat.to_numpy()) <= cfg.genesis_max_abs_lat
    return dur.index[ok]


def _track_table(df: pd.DataFrame, kept: pd.Index) -> pd.DataFrame:
    """One row per kept path (numbered 0, 1, ... in order): times, duration, depth, wind, path length."""
    rows = []
    for new_id, raw_id in enumerate(kept):
        part = df[df["raw"] == raw_id].sort_values("h")
        steps = great_circle_km(part["lat"].to_numpy()[:-1], part["lon"].to_numpy()[:-1],
                                part["lat"].to_numpy()[1:], part["lon"].to_numpy()[1:])
        rows.append({
            "track_id": new_id, "start": part["time"].iloc[0], "end": part["time"].iloc[-1],
            "duration_h": float(part["h"].iloc[-1] - part["h"].iloc[0]), "n_nodes": len(part),
            "min_psl_pa": float(part["psl"].min()), "max_wind_ms": float(part["wind"].max()),
            "path_km": float(np.sum(steps)), "lat_start": float(part["lat"].iloc[0]),
            "lon_start": float(part["lon"].iloc[0]),
        })
    return pd.DataFrame(rows) if rows else _empty_tracks()


def _empty_tracks() -> pd.DataFrame:
    return pd.DataFrame(columns=["track_id", "start", "end", "duration_h", "n_nodes", "min_psl_pa",
                                 "max_wind_ms", "path_km", "lat_start", "lon_start"])


def tc_mask(nodes: pd.DataFrame, like: xr.Dataset | xr.DataArray, periodic: bool | None = None) -> xr.DataArray:
    """Paint a disc of ``radius_km`` around every node; boolean DataArray (time, lat, lon).

    Parameters
    ----------
    nodes
        ``time_index, lat, lon, radius_km`` per node (lat/lon on the grid of ``like``).
    like
        Provides the ``time``, ``lat`` (ascending) and ``lon`` coordinates.
    periodic
        Discs wrap across the 0/360° seam: None (default) when the grid is global.

    Examples
    --------
    A 1000 km disc around the cell at 2.81 N, 180 E of the 5.625 x 7.5 degree grid: the
    cell itself, its east and west neighbours (834 km) and the cells north and south
    (625 km); the diagonal cells lie 1040 km away:

    >>> import pandas as pd
    >>> ds = cv.synthetic_run(4, shape=(32, 48))
    >>> node = pd.DataFrame({"time_index": [0], "lat": [2.8125], "lon": [180.0], "radius_km": [1000.0]})
    >>> mask = cv.labels.tc_mask(node, ds)
    >>> mask.dims, mask.shape, int(mask.sum()), int(mask[1:].sum())
    (('time', 'lat', 'lon'), (4, 32, 48), 5, 0)
    >>> disc = mask.isel(time=0)
    >>> disc.where(disc, drop=True).lat.values.tolist(), disc.where(disc, drop=True).lon.values.tolist()
    ([-2.8125, 2.8125, 8.4375], [172.5, 180.0, 187.5])
    """
    grid = Grid.from_coords(like["lat"].values, like["lon"].values, periodic)
    nt = like.sizes["time"] if "time" in like.dims else 1
    mask = np.zeros((nt, *grid.shape), dtype=bool)
    if len(nodes):
        ti = nodes["time_index"].to_numpy(dtype=np.int64)
        # nearest grid cell of each centre (longitude compared on the circle)
        ii = np.abs(grid.lat[None, :] - nodes["lat"].to_numpy(dtype=np.float64)[:, None]).argmin(axis=1)
        dlon = (grid.lon[None, :] - nodes["lon"].to_numpy(dtype=np.float64)[:, None] + 180.0) % 360.0 - 180.0
        jj = np.abs(dlon).argmin(axis=1)
        rad = nodes["radius_km"].to_numpy(dtype=np.float64)
        lat_max = float(np.abs(nodes["lat"]).max())
        hy, hx = grid.cells_for_km(float(rad.max()), lat_max)
        for s in range(0, ti.size, 256):
            sl = slice(s, s + 256)
            rows, cols = _window_rows_cols(ii[sl], jj[sl], hy, hx, grid)
            d = great_circle_km(grid.lat[ii[sl]][:, None, None], grid.lon[jj[sl]][:, None, None],
                                grid.lat[rows], grid.lon[cols])
            inside = d <= rad[sl][:, None, None]
            tt = np.broadcast_to(ti[sl][:, None, None], inside.shape)
            rr = np.broadcast_to(rows, inside.shape)
            cc = np.broadcast_to(cols, inside.shape)
            mask[tt[inside], rr[inside], cc[inside]] = True
    coords = {"lat": like["lat"].values, "lon": like["lon"].values}
    if "time" in like.coords:
        coords["time"] = like["time"].values
    return xr.DataArray(mask, dims=("time", "lat", "lon"), coords=coords, name="tc_mask",
                        attrs={"long_name": "tropical cyclone mask (heuristic)"})


@config_keyword
def detect_tc(ds: xr.Dataset, *, config: TCConfig | dict | None = None, coarse: Coarse = "auto",
              **settings: Any) -> TCResult:
    """Detect tropical cyclones: nodes (:func:`detect_tc_nodes`), tracks (:func:`stitch_nodes`) and a mask.

    Parameters
    ----------
    ds
        A climate run (see :func:`detect_tc_nodes` for the variables needed).
    config, coarse, **settings
        As :func:`detect_tc_nodes`.

    Returns
    -------
    TCResult
        Nodes, tracks, the boolean mask (on the run's grid normalized to
        latitude ascending, longitude in [0, 360)), whether nodes were stitched,
        and which criteria ran.

    Examples
    --------
    The default recipe needs grids of about 2.5 degrees or finer (its closed PSL contour
    lies within 612 km), so this run is on a 1.875 x 2.5 degree grid; its 3 storms
    are found at each of the 4 steps, within one cell of their true centres. 9 hours
    are too short to stitch tracks:

    >>> ds, truth = cv.synthetic_run(4, shape=(96, 144), return_features=True)
    >>> result = cv.labels.detect_tc(ds, stitch=False)
    >>> result.nodes.groupby("time_index").size().tolist(), result.stitched
    ([3, 3, 3, 3], False)
    >>> result.nodes.sort_values(["time_index", "lon"])[["lat", "lon"]].head(3).round(1).values.tolist()
    [[19.7, 77.5], [-10.3, 112.5], [19.7, 320.0]]
    >>> truth.query("kind == 'tc'").sort_values(["time", "lon"])[["lat", "lon"]].head(3).round(1).values.tolist()
    [[19.0, 77.4], [-9.5, 111.6], [20.5, 318.9]]
    >>> result.mask.dims, result.mask.dtype.name, int(result.mask.isel(time=0).sum()) > 0
    (('time', 'lat', 'lon'), 'bool', True)
    """
    cfg = _resolve_config(config, settings, ds if isinstance(ds, xr.Dataset) else None, coarse)
    return tc_from_nodes(detect_tc_nodes(ds, config=cfg), ds, config=cfg)


@config_keyword
def tc_from_nodes(nodes: pd.DataFrame, ds: xr.Dataset, *, config: TCConfig) -> TCResult:
    """Tracks and mask from the nodes of a whole run (the serial part of :func:`detect_tc`).

    Parameters
    ----------
    nodes
        :func:`detect_tc_nodes` output for every time step of ``ds`` (e.g. the
        concatenated tables of blocks of time steps, with global ``time_index``).
    ds
        The run (for its times and grid).
    config
        The settings the nodes were found with.

    Returns
    -------
    TCResult

    Examples
    --------
    Nodes found block by block (as :func:`climviz.labels.label_run` does in parallel),
    then tracks and mask for the whole run:

    >>> import pandas as pd
    >>> ds = cv.synthetic_run(4, shape=(96, 144))
    >>> cfg = cv.labels.TCConfig(stitch=False)
    >>> blocks = [cv.labels.detect_tc_nodes(ds.isel(time=slice(i, i + 2)), config=cfg) for i in (0, 2)]
    >>> blocks[1]["time_index"] += 2  # block-local to run-wide time indices
    >>> result = cv.labels.tc_from_nodes(pd.concat(blocks, ignore_index=True), ds, config=cfg)
    >>> len(result.nodes), result.mask.shape
    (12, (4, 96, 144))
    """
    cfg = config
    norm, plan, _ = _prepare(ds, cfg)
    hours = time_hours(norm["time"], cfg.time_step_h)
    span = float(hours[-1] - hours[0]) if hours.size else 0.0
    stitch = cfg.stitch
    if stitch == "auto":
        stitch = span >= cfg.min_duration_h
        if not stitch:
            warnings.warn(
                f"TC detection: the run spans {span:g} h, less than min_duration_h={cfg.min_duration_h:g} h; "
                "nodes are not stitched into tracks and every detected node is kept",
                UserWarning, stacklevel=3,
            )
    attrs = dict(nodes.attrs)
    if stitch:
        track_id, tracks = stitch_nodes(nodes, hours, config=cfg)
        nodes = nodes.assign(track_id=track_id)
        kept = nodes[nodes["track_id"] >= 0]
    else:
        nodes = nodes.assign(track_id=np.full(len(nodes), -1, dtype=np.int64))
        tracks = _empty_tracks()
        kept = nodes
    nodes.attrs.update(attrs)
    mask = tc_mask(kept, norm, periodic=cfg.periodic)
    return TCResult(nodes=nodes, tracks=tracks, mask=mask, stitched=bool(stitch), config=cfg,
                    criteria=list(plan.criteria), skipped=list(plan.skipped))
