"""Units of climate channels: parse CF unit strings, convert to climviz's canonical units, or refuse.

Unit strings are parsed with `pint <https://pint.readthedocs.io>`_ using cf-xarray's
CF-aware registry (:mod:`cf_xarray.units`), which understands UDUNITS spellings such as
``"kg m-2"``, ``"m s**-1"``, ``"gpm"``, ``"hPa"``, ``"mbar"``, ``"degC"`` or ``"mm/day"``.

Canonical units (:data:`CANONICAL_UNITS`) are those of ClimateNet / DeepCAM (CAM5 output):
Pa for pressures, K for temperatures, m s-1 for winds and for the precipitation rate
(liquid water equivalent), kg m-2 for precipitable water, kg kg-1 for specific humidity,
m for geopotential heights and s-1 for relative vorticity (``VORT850``).

Besides the conversions pint knows (hPa -> Pa, degC -> K, mm/day -> m s-1, ...), three
physical conversions between dimensions are applied, each with a named constant:

* water amount: 1 mm of liquid water = 1 kg m-2 (density of liquid water
  :data:`RHO_WATER` = 1000 kg m-3), so precipitable water in mm becomes kg m-2 and a
  precipitation flux in kg m-2 s-1 becomes a rate in m s-1;
* geopotential (m2 s-2) becomes geopotential height (m) by dividing by standard gravity
  :data:`G0` = 9.80665 m s-2 (WMO);

A channel whose ``units`` attribute is missing is, by default, checked against the
*plausibility range* of its canonical unit (:data:`PLAUSIBLE_RANGES`, the range of values
the channel can take anywhere on Earth in that unit, with margin). If every finite value
of the first time step lies inside, the canonical unit is assumed, a warning says so and the
variable's attribute ``units_assumed`` records it; otherwise a :class:`~climviz.errors.DataError`
names the file, the variable, the values found and asks for ``assume_units=``. An unknown
unit string, or one that cannot be converted to the canonical unit, is always a
:class:`~climviz.errors.DataError` naming file, variable, found and expected units.

Public functions
----------------
:func:`parse_units`, :func:`conversion`, :func:`convert_values`, :func:`to_canonical`,
:func:`canonicalize_units`, :func:`check_plausible`.
"""

from __future__ import annotations

import functools
import logging
import warnings
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import xarray as xr

from climviz.data.schema import CHANNEL_ATTRS, CHANNELS
from climviz.errors import DataError

__all__ = [
    "CANONICAL_UNITS", "PLAUSIBLE_RANGES", "RHO_WATER", "G0", "VORT850", "Conversion",
    "parse_units", "conversion", "convert_values", "to_canonical", "canonicalize_units",
    "check_plausible", "plausible",
]

#: Density of liquid water used to turn water amounts into depths (kg m-3).
RHO_WATER = 1000.0
#: Standard gravity (m s-2, WMO): geopotential / G0 = geopotential height.
G0 = 9.80665

#: Name of the 850 hPa relative vorticity channel (s-1), available where a product has the
#: 850 hPa relative vorticity (ERA5 ``vo``) or the absolute vorticity (GFS ``absv``, with the
#: Coriolis parameter f = 2 Omega sin(lat) removed).
VORT850 = "VORT850"

#: Canonical unit of every channel (the 16 ClimateNet channels and VORT850).
CANONICAL_UNITS: dict[str, str] = {c: CHANNEL_ATTRS[c]["units"] for c in CHANNELS}
CANONICAL_UNITS[VORT850] = "s-1"

#: Plausibility ranges (lowest, highest) in the canonical unit: every value a channel can
#: take anywhere on Earth, with margin. Used to accept a channel with no ``units`` attribute
#: (values inside: the canonical unit is assumed and said so) and to catch obvious swaps
#: of channels (e.g. DeepCAM files read in the wrong channel order).
PLAUSIBLE_RANGES: dict[str, tuple[float, float]] = {
    "TMQ": (0.0, 200.0),            # kg m-2; observed maxima ~ 80
    "U850": (-150.0, 150.0),        # m s-1
    "V850": (-150.0, 150.0),
    "UBOT": (-150.0, 150.0),
    "VBOT": (-150.0, 150.0),
    "QREFHT": (0.0, 0.1),           # kg kg-1; saturation at 40 degC ~ 0.05
    "PS": (30_000.0, 115_000.0),    # Pa; summit of Everest ~ 33,000 Pa
    "PSL": (80_000.0, 115_000.0),   # Pa; record low 87,000, reduced values over ice sheets high
    "T200": (150.0, 280.0),         # K
    "T500": (180.0, 310.0),
    "PRECT": (-1e-6, 1e-3),         # m s-1; 1e-3 m s-1 = 3600 mm per hour (tiny negatives: packing)
    "TS": (150.0, 360.0),
    "TREFHT": (150.0, 350.0),
    "Z1000": (-1_500.0, 1_500.0),   # m
    "Z200": (9_000.0, 14_000.0),
    "ZBOT": (0.0, 1_000.0),         # height of the lowest model level above the surface
    VORT850: (-0.01, 0.01),         # s-1; strongest mesoscale vortices ~ 1e-2
}

_WATER_CHANNELS = {"TMQ"}
_RATE_CHANNELS = {"PRECT"}
_HEIGHT_CHANNELS = {"Z1000", "Z200", "ZBOT"}


@functools.lru_cache(maxsize=1)
def _registry():
    # cf-xarray redefines a few pint units (percent, degrees_north, ...) on import, and pint
    # logs each redefinition as a WARNING: expected, not the user's concern, so kept quiet.
    pint_log = logging.getLogger("pint.util")
    level = pint_log.level
    pint_log.setLevel(logging.ERROR)
    # cf-xarray also makes its registry pint's application registry on import; a package
    # that already holds quantities of the old one (MetPy, loaded by xarray's backend
    # entry points, then huracanpy) would then mix registries, so the old one is put back
    import pint

    app = pint.get_application_registry().get()
    try:
        from cf_xarray.units import units  # pint registry that knows UDUNITS/CF spellings
    finally:
        pint.set_application_registry(app)
        pint_log.setLevel(level)
    return units


@functools.lru_cache(maxsize=512)
def _parse(s: str):
    return _registry().Unit(s)


def parse_units(units: str, *, file: Any = None, variable: str | None = None):
    """Parse a CF/UDUNITS unit string with pint (cf-xarray's registry).

    Parameters
    ----------
    units
        E.g. ``"kg m-2"``, ``"m s**-1"``, ``"hPa"``, ``"degC"``, ``"mm/day"``, ``"gpm"``.
    file, variable
        Named in the error message.

    Returns
    -------
    pint.Unit

    Raises
    ------
    DataError
        The string is not a unit pint/UDUNITS knows.
    """
    s = str(units).strip()
    try:
        return _parse(s)
    except Exception as exc:  # noqa: BLE001 - pint raises UndefinedUnitError, DefinitionSyntaxError, ...
        raise DataError(
            f"{_where(file, variable)}: units {s!r} are not a unit climviz understands "
            f"(parsed with pint/cf-xarray: {type(exc).__name__}: {exc})"
        ) from exc


def _where(file: Any, variable: str | None) -> str:
    f = str(file) if file is not None else "<dataset>"
    return f"{f}: variable {variable}" if variable else f


@dataclass(frozen=True)
class Conversion:
    """A linear conversion ``canonical = value * scale + offset`` and how it was found."""

    scale: float
    offset: float
    found: str
    expected: str
    note: str = ""

    @property
    def identity(self) -> bool:
        """True when the values are already in the canonical unit."""
        return self.scale == 1.0 and self.offset == 0.0

    def describe(self) -> str:
        """One line for attributes and messages: what was converted, and how."""
        if self.identity:
            return f"units {self.found!r} (canonical)"
        extra = f", {self.note}" if self.note else ""
        return f"converted from {self.found!r} to {self.expected!r} (x * {self.scale:.6g} + {self.offset:.6g}{extra})"


def conversion(found: str, expected: str, *, channel: str | None = None, file: Any = None,
               variable: str | None = None) -> Conversion:
    """How to convert values in ``found`` units to ``expected`` (canonical) units.

    Parameters
    ----------
    found
        The variable's ``units`` attribute.
    expected
        The canonical unit, e.g. ``CANONICAL_UNITS["PSL"]``.
    channel
        The climviz channel: allows the water-amount (TMQ: mm -> kg m-2), water-flux
        (PRECT: kg m-2 s-1 -> m s-1) and geopotential (Z*: m2 s-2 -> m) conversions;
        relative humidity (``%``) is never taken as specific humidity.
    file, variable
        Named in error messages.

    Returns
    -------
    Conversion

    Raises
    ------
    DataError
        Unknown unit string, or not convertible to ``expected`` (naming both).
    """
    where = _where(file, variable if variable is not None else channel)
    u_found = parse_units(found, file=file, variable=variable if variable is not None else channel)
    u_exp = _parse(expected)
    reg = _registry()
    if channel == "QREFHT" and str(found).strip() in ("%", "percent"):
        raise DataError(f"{where}: expected units {expected!r} (specific humidity), found {found!r} "
                        "(a relative humidity cannot be converted to a specific humidity)")
    dim_f, dim_e = u_found.dimensionality, u_exp.dimensionality
    if dim_f != dim_e:
        # physical conversions between dimensions: (unit the value is first expressed in,
        # factor to the canonical-dimension unit, the canonical-dimension unit, note)
        bridges = {
            "water": ("m", RHO_WATER, "kg m-2", "liquid water depth times 1000 kg m-3"),
            "flux": ("kg m-2 s-1", 1.0 / RHO_WATER, "m s-1", "water mass flux divided by 1000 kg m-3"),
            "geopotential": ("m2 s-2", 1.0 / G0, "m", f"geopotential divided by g0 = {G0} m s-2"),
        }
        key = None
        if channel in _WATER_CHANNELS and dim_f == _parse("m").dimensionality:
            key = "water"
        elif channel in _RATE_CHANNELS and dim_f == _parse("kg m-2 s-1").dimensionality:
            key = "flux"
        elif channel in _HEIGHT_CHANNELS and dim_f == _parse("m2 s-2").dimensionality:
            key = "geopotential"
        if key is None or _parse(bridges[key][2]).dimensionality != dim_e:
            raise DataError(
                f"{where}: expected units {expected!r} (or convertible to it), found {found!r} "
                f"({dim_f} cannot be converted to {dim_e})"
            )
        via, factor, to_unit, note = bridges[key]
        scale = reg.Quantity(1.0, u_found).to(via).magnitude * factor * reg.Quantity(1.0, to_unit).to(u_exp).magnitude
        return Conversion(float(scale), 0.0, str(found), expected, note)
    try:
        zero = reg.Quantity(0.0, u_found).to(u_exp).magnitude
        one = reg.Quantity(1.0, u_found).to(u_exp).magnitude
    except Exception as exc:  # noqa: BLE001 - pint DimensionalityError / OffsetUnitCalculusError
        raise DataError(f"{where}: expected units {expected!r}, found {found!r}, which cannot be converted "
                        f"({type(exc).__name__}: {exc})") from exc
    scale, offset = float(one - zero), float(zero)
    if abs(scale - 1.0) < 1e-12:
        scale = 1.0
    if abs(offset) < 1e-9:
        offset = 0.0
    return Conversion(scale, offset, str(found), expected)


def convert_values(values, conv: Conversion):
    """Apply a :class:`Conversion` to numbers, a numpy/dask array or a DataArray (float32 kept)."""
    if conv.identity:
        return values
    out = values * conv.scale + conv.offset if conv.offset else values * conv.scale
    dt = getattr(values, "dtype", None)
    if dt is not None and np.dtype(dt).kind == "f" and getattr(out, "dtype", dt) != dt:
        out = out.astype(dt)
    return out


def plausible(values, channel: str) -> tuple[bool, float, float]:
    """Whether all finite ``values`` lie in ``PLAUSIBLE_RANGES[channel]``; also their min and max.

    Channels without a range are plausible. An array with no finite value is plausible
    (NaN/inf are the value checks' business).
    """
    a = np.asarray(values, dtype=np.float64)
    fin = a[np.isfinite(a)]
    if fin.size == 0:
        return True, float("nan"), float("nan")
    lo, hi = float(fin.min()), float(fin.max())
    rng = PLAUSIBLE_RANGES.get(channel)
    if rng is None:
        return True, lo, hi
    return (rng[0] <= lo and hi <= rng[1]), lo, hi


def check_plausible(values, channel: str, *, file: Any = None, variable: str | None = None,
                    hint: str = "") -> None:
    """Raise :class:`DataError` when values of ``channel`` (canonical units) are implausible.

    The test: every finite value inside :data:`PLAUSIBLE_RANGES` ``[channel]``. It catches
    wrong units (PSL in hPa read as Pa) and swapped channels (T200 where PS should be).
    """
    ok, lo, hi = plausible(values, channel)
    if not ok:
        rng = PLAUSIBLE_RANGES[channel]
        raise DataError(
            f"{_where(file, variable or channel)}: expected {channel} values in {rng[0]:g}..{rng[1]:g} "
            f"{CANONICAL_UNITS.get(channel, '')} (plausible range), found {lo:.6g}..{hi:.6g}{hint}"
        )


def _sample(values) -> np.ndarray:
    """The first time step (or all) of an array, as numpy: cheap for dask-backed data."""
    v = values
    if getattr(v, "ndim", 0) >= 3:
        v = v[0]
    if hasattr(v, "compute"):
        v = v.compute()
    return np.asarray(v)


def _assumed_for(channel: str, variable: str | None, assume_units) -> str | None:
    if assume_units is None:
        return None
    if isinstance(assume_units, str):
        return assume_units
    if isinstance(assume_units, Mapping):
        for k in (channel, variable):
            if k is not None and k in assume_units:
                return str(assume_units[k])
        return None
    from climviz.errors import ConfigError

    raise ConfigError(f"assume_units: expected a unit string or a dict channel -> units, found {assume_units!r}")


def resolve(channel: str, attrs: Mapping[str, Any], values=None, *, file: Any = None,
            variable: str | None = None, assume_units: str | Mapping[str, str] | None = None,
            defer: bool = False) -> tuple[Conversion, str]:
    """The conversion of one channel to canonical units and a sentence saying how it was decided.

    ``values`` (numpy/dask/DataArray, canonical dims with time first) are read only when the
    ``units`` attribute is missing and no ``assume_units`` applies (first time step only).
    With ``defer=True`` nothing is read: the canonical unit is assumed (``note="assumed"``) and
    the caller checks the plausible range as the values are read (``open_run`` does).
    """
    expected = CANONICAL_UNITS[channel]
    found = attrs.get("units")
    if isinstance(found, bytes):
        found = found.decode(errors="replace")
    if found is not None and str(found).strip() == "" and channel == "QREFHT":
        found = "1"
    if found is None or str(found).strip() == "":
        given = _assumed_for(channel, variable, assume_units)
        if given is not None:
            conv = conversion(given, expected, channel=channel, file=file, variable=variable)
            return conv, f"no units attribute; assume_units gave {given!r}; {conv.describe()}"
        if defer:
            rng = PLAUSIBLE_RANGES.get(channel)
            return Conversion(1.0, 0.0, expected, expected, "assumed"), (
                f"no units attribute; assumed the canonical unit {expected!r}"
                + (f", values checked against its plausible range {rng[0]:g}..{rng[1]:g} as they are read"
                   if rng else ""))
        if values is None:
            raise DataError(f"{_where(file, variable or channel)}: no units attribute (expected {expected!r}); "
                            f"pass assume_units={{{channel!r}: '<units>'}}")
        ok, lo, hi = plausible(_sample(values), channel)
        if not ok:
            rng = PLAUSIBLE_RANGES[channel]
            raise DataError(
                f"{_where(file, variable or channel)}: no units attribute, and the values {lo:.6g}..{hi:.6g} are "
                f"not plausible in the canonical unit {expected!r} (expected {rng[0]:g}..{rng[1]:g}); "
                f"pass assume_units={{{channel!r}: '<units>'}} to open_run"
            )
        msg = (f"no units attribute; assumed the canonical unit {expected!r} because the values "
               f"{lo:.6g}..{hi:.6g} lie in its plausible range {PLAUSIBLE_RANGES[channel]}")
        warnings.warn(f"{_where(file, variable or channel)}: {msg}", stacklevel=3)
        return Conversion(1.0, 0.0, expected, expected, "assumed"), msg
    conv = conversion(str(found), expected, channel=channel, file=file, variable=variable)
    return conv, conv.describe()


def to_canonical(da: xr.DataArray, channel: str, *, file: Any = None, variable: str | None = None,
                 assume_units: str | Mapping[str, str] | None = None) -> xr.DataArray:
    """Return ``da`` (a channel) in its canonical unit, with CF attributes saying what was done.

    Parameters
    ----------
    da
        The channel's values (numpy- or dask-backed); its ``units`` attribute is read.
    channel
        The climviz channel name (a key of :data:`CANONICAL_UNITS`).
    file, variable
        Named in error messages (file path and the variable's name in the file).
    assume_units
        Units for a variable without a ``units`` attribute: one string, or a dict
        channel (or variable) -> units.

    Returns
    -------
    xarray.DataArray
        Values converted; ``units`` is the canonical unit; ``units_converted_from`` or
        ``units_assumed`` record the original (when different).

    Raises
    ------
    DataError
        Unknown or non-convertible units; missing units with implausible values.

    Examples
    --------
    >>> from climviz.data.units import to_canonical
    >>> slp = xr.DataArray([1013.25, 990.0], dims="x", attrs={"units": "hPa"})
    >>> psl = to_canonical(slp, "PSL")
    >>> psl.values.tolist(), psl.attrs
    ([101325.0, 99000.0], {'units': 'Pa', 'units_converted_from': 'hPa'})
    >>> to_canonical(xr.DataArray([15.0], dims="x", attrs={"units": "degC"}), "TS").values.round(2).tolist()
    [288.15]
    >>> gph = xr.DataArray([9806.65], dims="x", attrs={"units": "m2 s-2"})  # geopotential
    >>> to_canonical(gph, "Z1000").values.round(3).tolist()  # geopotential height, m
    [1000.0]
    >>> to_canonical(xr.DataArray([1.0], dims="x", attrs={"units": "K"}), "PSL", file="a.nc", variable="slp")
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    climviz.errors.DataError: a.nc: variable slp: expected units 'Pa' (or convertible to it), found 'K' ...
    """
    if channel not in CANONICAL_UNITS:
        raise DataError(f"{_where(file, variable)}: unknown channel {channel!r}; expected one of "
                        f"{sorted(CANONICAL_UNITS)}")
    conv, how = resolve(channel, da.attrs, da.data, file=file, variable=variable, assume_units=assume_units)
    out = da if conv.identity else convert_values(da, conv)
    attrs = dict(da.attrs)
    if conv.note == "assumed":
        attrs["units_assumed"] = how
    elif not conv.identity or conv.note:
        attrs["units_converted_from"] = conv.found
    elif "units" in attrs and "assume" in how:
        attrs["units_assumed"] = how
    attrs["units"] = CANONICAL_UNITS[channel]
    out = out.copy(data=out.data) if out is da else out
    out.attrs = attrs
    return out


def canonicalize_units(ds: xr.Dataset, *, channels=None, file: Any = None,
                       assume_units: str | Mapping[str, str] | None = None) -> xr.Dataset:
    """Convert every climviz channel of ``ds`` to its canonical unit (see :func:`to_canonical`).

    Variables that are not channels (``LABELS``, ``mask``, coordinates...) are left as they are.
    Use it on any in-memory dataset before computing on channel values.

    Parameters
    ----------
    ds
        A dataset whose channels are named as in :data:`CANONICAL_UNITS` (``PSL``, ``TMQ``...).
    channels
        Only these channels (default: all channel names present).
    file
        Named in error messages (default ``ds.encoding["source"]`` or ``<dataset>``).
    assume_units
        See :func:`to_canonical`.

    Returns
    -------
    xarray.Dataset
        A shallow copy with converted channels (unchanged ones share memory).

    Examples
    --------
    Sea-level pressure in hPa comes back in Pa (x 100); TMQ is already canonical:

    >>> ds = cv.synthetic_run(4, shape=(32, 48))[["PSL", "TMQ"]]
    >>> hpa = ds.assign(PSL=(ds["PSL"] / 100).assign_attrs(units="hPa"))
    >>> out = cv.data.canonicalize_units(hpa)
    >>> out["PSL"].attrs["units"], out["PSL"].attrs["units_converted_from"], out["TMQ"].attrs["units"]
    ('Pa', 'hPa', 'kg m-2')
    >>> bool(np.allclose(out["PSL"], ds["PSL"], rtol=1e-6))
    True
    """
    file = file if file is not None else ds.encoding.get("source", "<dataset>")
    names = [c for c in (channels if channels is not None else CANONICAL_UNITS) if c in ds.data_vars]
    out = ds.copy(deep=False)
    for c in names:
        out[c] = to_canonical(ds[c], c, file=file, variable=c, assume_units=assume_units)
    return out
