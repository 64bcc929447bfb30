"""One place for how climviz draws things: class palette, per-variable display units, colour maps, formats.

Every plotting function of :mod:`climviz.viz` (maps, tracks, histograms, the
explorer, static figures) takes its class colours from :data:`CLASS_COLORS`, so
a TC is the same colour in every figure; notebooks should use it too::

    import climviz as cv
    cv.viz.CLASS_COLORS          # {1: '#d01c8b', 2: '#ffb000'}
    cv.viz.CLASS_SHORT           # {1: 'TC', 2: 'AR'}

Fields are stored in SI units (CAM5 / ClimateNet conventions) and shown in the
units people read: sea-level pressure in hPa, precipitation in mm/day, specific
humidity in g/kg. :func:`display_field` converts a copy for display; the data
themselves are never changed. Each known variable has a colour map of the right
kind (sequential for moisture, diverging around 0 for winds and anomalies, a
pressure map centred on the standard atmosphere for PSL) and a hover format
with sensible decimals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import xarray as xr

from climviz.data.schema import AR, TC

__all__ = ["CLASS_COLORS", "CLASS_SHORT", "CLASS_LONG", "CLASS_NAMES_JS", "MASK_ALPHA", "FieldStyle",
           "field_style", "display_field", "format_number", "lon_label", "lat_label"]

#: Short class names used in legends, hover text and tables.
CLASS_SHORT: dict[int, str] = {TC: "TC", AR: "AR"}
#: Long class names used in titles.
CLASS_LONG: dict[int, str] = {TC: "tropical cyclone", AR: "atmospheric river"}
#: The one class palette of climviz: TC magenta, AR amber. Chosen so that a fill at
#: :data:`MASK_ALPHA` over any colour of the field colour maps stays far (CIE Lab) from
#: every field colour and from the other class (tests/viz/test_style.py checks it),
#: so an AR over dark-blue moisture is not a muddy brown and both read on a white map.
CLASS_COLORS: dict[int, str] = {TC: "#d01c8b", AR: "#ffb000"}
#: Default opacity of filled class regions on a field.
MASK_ALPHA = 0.6
#: JavaScript object literal mapping class values to names, for Bokeh hover formatters.
CLASS_NAMES_JS = f"{{0: 'none', {TC}: 'TC', {AR}: 'AR'}}"


#: How a field's values map to colours: one direction, or two about ``center``.
ColourKind = Literal["sequential", "diverging"]


@dataclass(frozen=True)
class FieldStyle:
    """How a variable is shown: display units, conversion from stored units, colours, number format.

    Attributes
    ----------
    units
        Units shown to readers (may differ from the stored units).
    scale, offset
        ``display = stored * scale + offset`` (applied only when the stored units match ``from_units``).
    from_units
        Stored units the conversion applies to (None: no conversion).
    cmap
        Colour map name.
    kind
        ``"sequential"``, ``"diverging"`` (colour limits symmetric about ``center``).
    center
        Centre of a diverging map in display units.
    fmt
        Bokeh number format for hover text (e.g. ``"0.0"``).
    """

    units: str
    cmap: str
    kind: ColourKind = "sequential"
    fmt: str = "0.0"
    scale: float = 1.0
    offset: float = 0.0
    from_units: str | None = None
    center: float = 0.0


_MOIST = "GnBu"
_TEMP = "inferno"
_WIND = "RdBu_r"
#: Known variables (CAM5 / ClimateNet channel names).
STYLES: dict[str, FieldStyle] = {
    "TMQ": FieldStyle("kg m-2", _MOIST, fmt="0.0"),
    "QREFHT": FieldStyle("g kg-1", _MOIST, fmt="0.0", scale=1000.0, from_units="kg kg-1"),
    "PRECT": FieldStyle("mm/day", "Blues", fmt="0.0", scale=86_400_000.0, from_units="m s-1"),
    "PSL": FieldStyle("hPa", "RdBu_r", kind="diverging", fmt="0.0", scale=0.01, from_units="Pa", center=1013.25),
    "PS": FieldStyle("hPa", "viridis", fmt="0.0", scale=0.01, from_units="Pa"),
    "U850": FieldStyle("m s-1", _WIND, kind="diverging", fmt="0.0"),
    "V850": FieldStyle("m s-1", _WIND, kind="diverging", fmt="0.0"),
    "UBOT": FieldStyle("m s-1", _WIND, kind="diverging", fmt="0.0"),
    "VBOT": FieldStyle("m s-1", _WIND, kind="diverging", fmt="0.0"),
    "T200": FieldStyle("K", _TEMP, fmt="0.0"),
    "T500": FieldStyle("K", _TEMP, fmt="0.0"),
    "TS": FieldStyle("K", _TEMP, fmt="0.0"),
    "TREFHT": FieldStyle("K", _TEMP, fmt="0.0"),
    "Z1000": FieldStyle("m", "viridis", fmt="0"),
    "Z200": FieldStyle("m", "viridis", fmt="0"),
    "ZBOT": FieldStyle("m", "viridis", fmt="0"),
}
#: Units synonyms: a stored unit string that means the same as ``from_units``.
_SAME_UNITS = {"m s-1": {"m s-1", "m/s", "m s**-1", "m.s-1"}, "Pa": {"Pa", "pa"},
               "kg kg-1": {"kg kg-1", "kg/kg", "1", "kg kg**-1"}}


def _matches(stored: str, wanted: str) -> bool:
    return stored.strip() in _SAME_UNITS.get(wanted, {wanted})


def field_style(name: str, units: str = "", values: np.ndarray | None = None) -> FieldStyle:
    """The style of variable ``name`` (known CAM5 names), else one guessed from its values.

    Unknown variables get a diverging map when their values straddle 0 with
    comparable magnitude on both sides (anomalies, winds), else a sequential one,
    and a format with 3 significant digits for their typical magnitude.
    """
    base = STYLES.get(str(name).upper())
    if base is not None and (base.from_units is None or _matches(units, base.from_units)):
        return base
    if base is not None:  # known name in other units (e.g. PSL already in hPa): keep colours, do not convert
        center = base.center if _matches(units, base.units) else 0.0
        kind: ColourKind = base.kind if (base.center == 0.0 or center) else "sequential"
        return FieldStyle(units, base.cmap if kind == base.kind else "viridis", kind, base.fmt, center=center)
    fmt = "0.000"
    kind = "sequential"
    if values is not None:
        v = np.asarray(values, dtype=float)
        v = v[np.isfinite(v)]
        if v.size:
            lo, hi = np.percentile(v, [2, 98])
            mag = max(abs(lo), abs(hi))
            fmt = _fmt_for(mag)
            if lo < 0 < hi and min(-lo, hi) > 0.2 * max(-lo, hi):
                kind = "diverging"
    return FieldStyle(units, "RdBu_r" if kind == "diverging" else "viridis", kind, fmt)


def _fmt_for(mag: float) -> str:
    """Bokeh/numbro format with about 3 significant digits for values of magnitude ``mag``."""
    if mag == 0 or not np.isfinite(mag):
        return "0.00"
    if mag >= 1e5 or mag < 1e-3:
        return "0.00e+0"
    decimals = int(max(0, 2 - np.floor(np.log10(mag))))
    return "0" if decimals == 0 else "0." + "0" * decimals


def display_field(da: xr.DataArray) -> tuple[xr.DataArray, str, str, FieldStyle]:
    """A copy of ``da`` in display units, its name, its axis/colourbar label and its style.

    The label uses the CF ``long_name`` when present (``"sea level pressure (hPa)"``),
    else the variable name. Stored data are not modified.

    Returns
    -------
    (field, name, label, style)

    Examples
    --------
    Sea-level pressure is shown in hPa (Pa x 0.01), on a diverging colour map centred
    on 1013.25 hPa:

    >>> ds = cv.synthetic_run(4, shape=(32, 48))
    >>> field, name, label, style = cv.viz.display_field(ds["PSL"])
    >>> name, label, field.attrs["units"], style.center
    ('PSL', 'sea level pressure (hPa)', 'hPa', 1013.25)
    >>> round(float(ds["PSL"][0, 0, 0]), 1), round(float(field[0, 0, 0]), 2)
    (101298.6, 1012.99)
    >>> ds["PSL"].attrs["units"]  # the stored data are unchanged
    'Pa'
    """
    name = str(da.name) if da.name is not None else "value"
    units = str(da.attrs.get("units", ""))
    sample = None
    if name.upper() not in STYLES:
        sub = da
        if "time" in sub.dims and sub.sizes["time"] > 4:
            sub = sub.isel(time=slice(0, None, max(1, sub.sizes["time"] // 4)))
        sample = np.asarray(sub.values, dtype=float)
    style = field_style(name, units, sample)
    out = da
    if style.from_units is not None and (style.scale != 1.0 or style.offset != 0.0):
        out = da * style.scale + style.offset
        out.attrs = {**da.attrs, "units": style.units}
        out.name = da.name
    long = da.attrs.get("long_name")
    text = str(long) if long else name
    shown_units = style.units if style.from_units is not None else units
    label = f"{text} ({shown_units})" if shown_units else text
    return out, name, label, style


def format_number(x: Any, decimals: int = 1) -> str:
    """A number for readers: thousands separators, fixed decimals, no exponent (``1,213.4``).

    Examples
    --------
    >>> cv.viz.format_number(1213.44), cv.viz.format_number(-1234567.891, 2), cv.viz.format_number(5)
    ('1,213.4', '-1,234,567.89', '5.0')
    >>> cv.viz.format_number(float("nan"))
    'n/a'
    """
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if not np.isfinite(v):
        return "n/a"
    return f"{v:,.{decimals}f}"


def lon_label(lon: float, decimals: int = 1) -> str:
    """A longitude in any convention as readers write it: ``41.2°W``, ``120.0°E``, ``0.0°``, ``180.0°``.

    Examples
    --------
    318.9 E and -41.1 E are the same meridian:

    >>> [cv.viz.lon_label(x) for x in (318.9, -41.1, 120, 0, 540)]
    ['41.1°W', '41.1°W', '120.0°E', '0.0°', '180.0°']
    """
    v = (float(lon) + 180.0) % 360.0 - 180.0
    v = round(v, decimals)
    if v == -180.0:
        v = 180.0
    if v == 0.0 or v == 180.0:
        return f"{abs(v):.{decimals}f}°"
    return f"{abs(v):.{decimals}f}°{'E' if v > 0 else 'W'}"


def lat_label(lat: float, decimals: int = 1) -> str:
    """A latitude as readers write it: ``20.3°N``, ``15.0°S``, ``0.0°``.

    Examples
    --------
    >>> [cv.viz.lat_label(x) for x in (20.345, -15, 0)], cv.viz.lat_label(-9.5293, decimals=2)
    (['20.3°N', '15.0°S', '0.0°'], '9.53°S')
    """
    v = round(float(lat), decimals)
    if v == 0.0:
        return f"{0.0:.{decimals}f}°"
    return f"{abs(v):.{decimals}f}°{'N' if v > 0 else 'S'}"
