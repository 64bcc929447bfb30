"""Find climviz channels in the variables of real products: CF standard names, then product names.

How a channel is found, in this order (the first that matches wins):

1. ``channel_map`` given by the user: ``{"PSL": "my_slp", "U850": "uwnd"}`` (a level channel
   mapped to a variable with a pressure coordinate is selected at its level);
2. the climviz/ClimateNet name itself (``PSL``, ``U850``...: CESM/CAM history files carry
   most of them, e.g. ``TMQ``, ``PSL``, ``U850``, ``T500``, ``Z200``);
3. the CF ``standard_name`` (found with cf-xarray where the variables form a dataset):
   see :data:`STANDARD_NAMES`; level channels (``U850, V850, T200, T500, Z200, Z1000,
   VORT850``) need a pressure coordinate (hPa, Pa, mbar...: any unit pint converts to Pa)
   holding the level; single-level channels only use standard names that are not ambiguous
   (``air_temperature`` alone could be any level, so ``TREFHT`` is found by name);
4. known product names (:data:`PRODUCT_NAMES`): ERA5 (``msl, tcwv, u, v, t, z, vo, sp, skt,
   t2m, tp, mtpr``), CMIP6 (``psl, prw, ua, va, ta, zg, ps, ts, tas, huss, pr``), GFS GRIB
   (``prmsl, pwat, u, v, t, gh, absv, sp, t@surface, t2m, sh2, prate, tp``).

Transformations (each recorded in the channel's ``climviz_source`` attribute):

* units converted to canonical ones (:mod:`climviz.data.units`): hPa -> Pa, degC -> K,
  geopotential m2 s-2 -> geopotential height m (divided by g0), kg m-2 s-1 -> m s-1 ...;
* accumulated precipitation (GRIB ``stepType = accum``, or an amount in m or kg m-2 such as
  ERA5's ``tp``) becomes a rate: divided by the accumulation period (GRIB step range, e.g.
  ``66-72`` h -> 6 h; ERA5 hourly ``tp``: 1 h);
* ``VORT850`` (s-1) is the relative vorticity at 850 hPa: ERA5 ``vo`` as is, or the absolute
  vorticity (GFS ``absv``) minus the Coriolis parameter f = 2 Omega sin(lat),
  Omega = 7.2921e-5 s-1.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal, Mapping, Sequence

import numpy as np
import xarray as xr

from climviz.data.grid import LAT_NAMES, LON_NAMES, TIME_NAMES, spatial_names
from climviz.data.schema import CHANNELS
from climviz.data.units import CANONICAL_UNITS, VORT850, parse_units, to_canonical
from climviz.errors import ConfigError, DataError

__all__ = [
    "ALL_CHANNELS", "LEVEL_CHANNELS", "STANDARD_NAMES", "PRODUCT_NAMES", "OMEGA", "Found",
    "find_channels", "extract", "canonical_variables",
]

#: Every channel climviz can produce: the 16 ClimateNet channels and VORT850.
ALL_CHANNELS: tuple[str, ...] = (*CHANNELS, VORT850)
#: Pressure-level channels and their level (hPa).
LEVEL_CHANNELS: dict[str, float] = {"U850": 850.0, "V850": 850.0, "T200": 200.0, "T500": 500.0,
                                    "Z1000": 1000.0, "Z200": 200.0, VORT850: 850.0}
#: Earth's angular velocity (s-1) for the Coriolis parameter f = 2 OMEGA sin(lat).
OMEGA = 7.2921e-5

#: CF standard names per channel (level channels: on a pressure coordinate).
STANDARD_NAMES: dict[str, tuple[str, ...]] = {
    "TMQ": ("atmosphere_mass_content_of_water_vapor", "lwe_thickness_of_atmosphere_mass_content_of_water_vapor"),
    "PSL": ("air_pressure_at_mean_sea_level", "air_pressure_at_sea_level"),
    "PS": ("surface_air_pressure",),
    "PRECT": ("lwe_precipitation_rate", "precipitation_flux"),
    "TS": ("surface_temperature",),
    "U850": ("eastward_wind",), "V850": ("northward_wind",),
    "T200": ("air_temperature",), "T500": ("air_temperature",),
    "Z1000": ("geopotential_height", "geopotential"), "Z200": ("geopotential_height", "geopotential"),
    VORT850: ("atmosphere_relative_vorticity", "atmosphere_absolute_vorticity"),
}

#: Known product variable names per channel: (product, name). A GRIB name is
#: ``"<cfVarName>@<typeOfLevel>"`` (see :mod:`climviz.data.formats.grib`).
PRODUCT_NAMES: dict[str, tuple[tuple[str, str], ...]] = {
    "TMQ": (("ERA5", "tcwv"), ("CMIP6", "prw"), ("GFS", "pwat@atmosphereSingleLayer"), ("GFS", "pwat"),
            ("ERA5", "tcwv@surface"), ("ERA5", "tcwv@entireAtmosphere")),
    "PSL": (("ERA5", "msl"), ("CMIP6", "psl"), ("GFS", "prmsl@meanSea"), ("GFS", "prmsl"),
            ("ERA5", "msl@surface"), ("ERA5", "msl@meanSea")),
    "PS": (("ERA5", "sp"), ("CMIP6", "ps"), ("GFS", "sp@surface")),
    "U850": (("ERA5/GFS", "u"), ("CMIP6", "ua"), ("GFS", "u@isobaricInhPa")),
    "V850": (("ERA5/GFS", "v"), ("CMIP6", "va"), ("GFS", "v@isobaricInhPa")),
    "T200": (("ERA5/GFS", "t"), ("CMIP6", "ta"), ("GFS", "t@isobaricInhPa")),
    "T500": (("ERA5/GFS", "t"), ("CMIP6", "ta"), ("GFS", "t@isobaricInhPa")),
    "Z1000": (("ERA5", "z"), ("CMIP6", "zg"), ("GFS", "gh@isobaricInhPa"), ("GFS", "gh"), ("ERA5", "z@isobaricInhPa")),
    "Z200": (("ERA5", "z"), ("CMIP6", "zg"), ("GFS", "gh@isobaricInhPa"), ("GFS", "gh"), ("ERA5", "z@isobaricInhPa")),
    "QREFHT": (("CMIP6", "huss"), ("GFS", "sh2@heightAboveGround")),
    "PRECT": (("CMIP6", "pr"), ("ERA5", "mtpr"), ("GFS", "prate@surface"), ("ERA5", "tp"), ("GFS", "tp@surface"),
              ("ERA5", "tp@surface")),
    "TS": (("ERA5", "skt"), ("CMIP6", "ts"), ("GFS", "t@surface"), ("ERA5", "skt@surface")),
    "TREFHT": (("ERA5", "t2m"), ("CMIP6", "tas"), ("GFS", "t2m@heightAboveGround"), ("ERA5", "t2m@surface")),
    "UBOT": (), "VBOT": (), "ZBOT": (),
    VORT850: (("ERA5", "vo"), ("GFS", "absv@isobaricInhPa"), ("GFS", "absv"), ("ERA5", "vo@isobaricInhPa")),
}

_TIME_NAMES = TIME_NAMES  # the accepted names are those of the one grid module (climviz.data.grid)
_LAT_NAMES = LAT_NAMES
_LON_NAMES = LON_NAMES
_LEVEL_NAMES = ("isobaricInhPa", "plev", "pressure_level", "level", "lev", "pressure", "isobaric", "pres", "p")


@dataclass(frozen=True)
class Found:
    """Where a channel comes from: the variable, the rule that found it, the level, the transform."""

    channel: str
    variable: str
    rule: str  # "channel_map" | "climviz name" | "CF standard_name '...'" | "<product> name '...'"
    level_coord: str | None = None
    level_hpa: float | None = None
    transform: str | None = None  # "absolute->relative vorticity" | "accumulation->rate"

    def describe(self, file: Any = None) -> str:
        """One line for ``climviz_source``: variable, level, rule, transformation."""
        s = f"variable {self.variable!r}"
        if self.level_coord is not None:
            s += f" at {self.level_hpa:g} hPa (coordinate {self.level_coord!r})"
        s += f", found by {self.rule}"
        if self.transform:
            s += f"; {self.transform}"
        return s


def _spatial(da: xr.DataArray) -> tuple[str | None, str | None]:
    return spatial_names(da.dims)


def _level_coord(da: xr.DataArray) -> tuple[str | None, np.ndarray | None]:
    """The pressure dimension of ``da`` and its values in hPa (None if it has no pressure axis)."""
    lat, lon = _spatial(da)
    for d in da.dims:
        if d in (lat, lon) or d in _TIME_NAMES:
            continue
        c = da.coords.get(d)
        if c is None:
            continue
        u = c.attrs.get("units")
        sn = str(c.attrs.get("standard_name", ""))
        if "hybrid" in sn or "sigma" in sn or "height" in sn or "depth" in sn:
            return None, None
        vals = np.asarray(c.values, dtype=float)
        if u is not None:
            try:
                unit = parse_units(str(u))
            except DataError:
                continue
            if unit.dimensionality != parse_units("Pa").dimensionality:
                continue
            from climviz.data.units import _registry

            return str(d), vals * _registry().Quantity(1.0, unit).to("hPa").magnitude
        if d == "isobaricInhPa" or (d in _LEVEL_NAMES and sn == "air_pressure"):
            # no units: hPa when values look like hPa (<= 1100), Pa when they look like Pa
            return str(d), vals if np.nanmax(vals) <= 1100 else vals / 100.0
    return None, None


def _has_vertical(da: xr.DataArray) -> bool:
    lat, lon = _spatial(da)
    return any(d not in (lat, lon) and d not in _TIME_NAMES and da.sizes[d] > 1 for d in da.dims)


def _at_level(da: xr.DataArray, level: float) -> tuple[str, float] | None:
    d, vals = _level_coord(da)
    if d is None or vals is None:  # both None together: no pressure axis
        return None
    hit = np.nonzero(np.abs(vals - level) < 0.5)[0]
    if hit.size == 0:
        return None
    return d, float(vals[hit[0]])


def _fits(channel: str, da: xr.DataArray, named: bool = False) -> tuple[str | None, float | None] | None:
    """(level coord, level) when ``da`` can give ``channel``; None when it cannot.

    ``named``: the variable is named for the channel (``U850`` in a CESM file, or mapped by the
    user), so a plain (time, lat, lon) field is the channel itself.
    """
    if _spatial(da)[0] is None or _spatial(da)[1] is None:
        return None
    if named and not _has_vertical(da):
        return (None, None)
    if channel in LEVEL_CHANNELS:
        lv = _at_level(da, LEVEL_CHANNELS[channel])
        return lv if lv is not None else None
    if _has_vertical(da):
        return None
    return (None, None)


def _grib_base(name: str) -> tuple[str, str | None]:
    if "@" in name:
        base, tol = name.split("@", 1)
        return base, tol.split("#")[0]
    return name, None


def find_channels(
    variables: Mapping[str, xr.DataArray],
    channels: Sequence[str] | Literal["available"] | None = "available",
    *,
    channel_map: Mapping[str, str] | None = None,
    file: Any = None,
) -> dict[str, Found]:
    """Decide which variable gives each channel.

    Parameters
    ----------
    variables
        The file's variables (name -> DataArray; GRIB names ``"<name>@<typeOfLevel>"``).
    channels
        ``"available"`` (every channel found) or the channels required (missing ones raise).
    channel_map
        User names: channel -> variable name in the file.
    file
        Named in error messages.

    Returns
    -------
    dict
        channel -> :class:`Found`, in climviz's channel order.

    Raises
    ------
    ConfigError
        ``channel_map`` names an unknown channel or a variable that is not in the file.
    DataError
        A required channel cannot be found (naming it and the variables the file has).
    """
    cmap = dict(channel_map or {})
    for ch, var in cmap.items():
        if ch not in ALL_CHANNELS:
            raise ConfigError(f"channel_map: unknown channel {ch!r}; expected one of {list(ALL_CHANNELS)}")
        if var not in variables:
            raise ConfigError(f"channel_map: {file}: variable {var!r} (for {ch}) is not in the file; "
                              f"found {sorted(variables)[:40]}")
    want = list(ALL_CHANNELS) if isinstance(channels, str) or channels is None else list(channels)
    found: dict[str, Found] = {}
    for ch in want:
        f = _find_one(ch, variables, cmap, file)
        if f is not None:
            found[ch] = f
    if not (isinstance(channels, str) or channels is None):
        missing = [c for c in want if c not in found]
        if missing:
            present = [str(v) for v in variables if v != "LABELS"]
            raise DataError(
                f"{file}: missing channel(s) {missing}; expected {want}; found variables "
                f"{present[:60]} (map your names with channel_map={{'PSL': 'my_name', ...}}, "
                "or open with channels='available')"
            )
    return found


def _std(da: xr.DataArray) -> str:
    return str(da.attrs.get("standard_name", da.attrs.get("GRIB_cfName", "")))


def _find_one(ch: str, variables: Mapping[str, xr.DataArray], cmap: dict, file: Any) -> Found | None:
    def make(name: str, rule: str) -> Found | None:
        da = variables[name]
        fit = _fits(ch, da, named=rule in ("channel_map", "its climviz/CESM name"))
        if fit is None:
            return None
        transform = None
        if ch == VORT850 and "absolute" in (_std(da) + " " + str(da.attrs.get("long_name", ""))
                                           + " " + str(da.attrs.get("GRIB_name", ""))).lower() \
                or (ch == VORT850 and _grib_base(name)[0] == "absv"):
            transform = "absolute vorticity minus the Coriolis parameter f = 2 Omega sin(lat)"
        if ch == "PRECT" and _accumulated(da):
            transform = "accumulated amount divided by the accumulation period"
        return Found(ch, name, rule, fit[0], fit[1], transform)

    if ch in cmap:
        f = make(cmap[ch], "channel_map")
        if f is None:
            da = variables[cmap[ch]]
            lv = LEVEL_CHANNELS.get(ch)
            raise DataError(
                f"{file}: variable {cmap[ch]} (channel_map for {ch}): expected a (time, lat, lon) field"
                + (f" or a pressure coordinate holding {lv:g} hPa" if lv else "")
                + f", found dims {dict(da.sizes)}"
            )
        return f
    if ch in variables:
        f = make(ch, "its climviz/CESM name")
        if f is not None:
            return f
    for name, da in variables.items():
        sn = _std(da)
        if sn and sn in STANDARD_NAMES.get(ch, ()):
            f = make(name, f"CF standard_name {sn!r}")
            if f is not None:
                return f
    for product, pname in PRODUCT_NAMES.get(ch, ()):
        if pname in variables:
            f = make(pname, f"{product} name {pname!r}")
            if f is not None:
                return f
    return None


def _accumulated(da: xr.DataArray) -> bool:
    if str(da.attrs.get("GRIB_stepType", "")) == "accum":
        return True
    u = da.attrs.get("units")
    if u is None:
        return False
    try:
        unit = parse_units(str(u))
    except DataError:
        return False
    dims = {parse_units("m").dimensionality, parse_units("kg m-2").dimensionality}
    return unit.dimensionality in dims


def _accumulation_seconds(da: xr.DataArray, name: str, file: Any) -> tuple[float, str]:
    rng = str(da.attrs.get("GRIB_stepRange", ""))
    m = re.fullmatch(r"(\d+)-(\d+)", rng)
    if m:
        unit = str(da.attrs.get("GRIB_stepUnits", "1"))
        hours = int(m.group(2)) - int(m.group(1))
        if hours <= 0:
            raise DataError(f"{file}: variable {name}: accumulation over step range {rng!r} has no length")
        per = 3600.0 if unit in ("1", "h") else 60.0 if unit in ("0", "m") else 3600.0
        return hours * per, f"GRIB step range {rng} h"
    if "accumulation_period" in da.attrs:
        s = float(da.attrs["accumulation_period"])
        return s, f"accumulation_period attribute {s:g} s"
    base = _grib_base(name)[0]
    if base == "tp":
        return 3600.0, "ERA5 hourly accumulation (1 h)"
    raise DataError(
        f"{file}: variable {name}: an accumulated precipitation amount (units {da.attrs.get('units')!r}) "
        "needs its accumulation period: add an attribute accumulation_period (seconds)"
    )


def _to_tll(da: xr.DataArray, found: Found, file: Any) -> xr.DataArray:
    """Select the level, rename dims to (time, lat, lon), add a time dim if missing."""
    if found.level_coord is not None:
        _, vals = _level_coord(da)
        assert vals is not None and found.level_hpa is not None  # the level was found on this axis
        idx = int(np.nonzero(np.abs(vals - found.level_hpa) < 0.5)[0][0])
        da = da.isel({found.level_coord: idx}, drop=True)
    lat, lon = _spatial(da)
    ren = {k: v for k, v in ((lat, "lat"), (lon, "lon")) if k != v}
    tdim = next((d for d in da.dims if d in _TIME_NAMES), None)
    if tdim is not None and tdim != "time":
        ren[tdim] = "time"
    da = da.rename(ren)
    # scalar coordinates (a single level, height above ground, step) are dropped
    for c in list(da.coords):
        if c not in da.dims:
            da = da.drop_vars([c])
    extra = [d for d in da.dims if d not in ("time", "lat", "lon")]
    for d in extra:
        if da.sizes[d] == 1:
            da = da.isel({d: 0}, drop=True)
        else:
            raise DataError(f"{file}: variable {found.variable}: expected dimensions (time, lat, lon) "
                            f"(plus a pressure level), found {dict(da.sizes)}")
    if "time" not in da.dims:
        da = da.expand_dims("time")
    return da.transpose("time", "lat", "lon")


def extract(variables: Mapping[str, xr.DataArray], found: Found, *, file: Any = None,
            assume_units: str | Mapping[str, str] | None = None) -> xr.DataArray:
    """The channel ``found.channel`` as a (time, lat, lon) DataArray in canonical units.

    Its attributes: the canonical ``units``, ``long_name``/``standard_name`` of the
    channel, and ``climviz_source`` saying where it came from and what was done.
    """
    from climviz.data.schema import CHANNEL_ATTRS

    src = variables[found.variable]
    da = _to_tll(src, found, file)
    ch = found.channel
    notes = []
    if ch == "PRECT" and found.transform:
        secs, how = _accumulation_seconds(src, found.variable, file)
        conv_units = src.attrs.get("units")
        if conv_units is None:
            raise DataError(f"{file}: variable {found.variable}: accumulated precipitation without units")
        da = to_canonical(da.assign_attrs(units=f"({conv_units}) / s"), "PRECT", file=file,
                          variable=found.variable, assume_units=assume_units)
        da = (da / secs).assign_attrs(units=CANONICAL_UNITS["PRECT"],
                                      units_converted_from=f"{conv_units} accumulated over {secs:g} s")
        notes.append(f"{conv_units} divided by {secs:g} s, {how}")
    elif ch == VORT850 and found.transform:
        da = to_canonical(da, ch, file=file, variable=found.variable, assume_units=assume_units)
        lat = np.asarray(da["lat"].values, dtype=float)
        f = 2.0 * OMEGA * np.sin(np.deg2rad(lat))
        da = da - xr.DataArray(f.astype(np.float32), dims=("lat",), coords={"lat": da["lat"]})
        notes.append(f"f at each latitude, Omega = {OMEGA} s-1")
    else:
        da = to_canonical(da, ch, file=file, variable=found.variable, assume_units=assume_units)
    units_note = da.attrs.get("units_converted_from")
    assumed = da.attrs.get("units_assumed")
    attrs = dict(CHANNEL_ATTRS.get(ch, {}))
    if ch == VORT850:
        attrs = {"long_name": "relative vorticity at 850 hPa", "standard_name": "atmosphere_relative_vorticity"}
    attrs["units"] = CANONICAL_UNITS[ch]
    what = found.describe(file)
    if notes:
        what += f" ({'; '.join(notes)})"
    if units_note:
        what += f"; units converted from {units_note!r} to {CANONICAL_UNITS[ch]!r}"
    if assumed:
        what += f"; {assumed}"
    attrs["climviz_source"] = what
    if units_note:
        attrs["units_converted_from"] = str(units_note)
    if src.attrs.get("long_name") or src.attrs.get("GRIB_name"):
        attrs["source_long_name"] = str(src.attrs.get("long_name") or src.attrs.get("GRIB_name"))
    da = da.astype(np.float32) if da.dtype != np.float32 else da
    da.attrs = attrs
    da.name = ch
    return da


def canonical_variables(
    variables: Mapping[str, xr.DataArray],
    channels: Sequence[str] | Literal["available"] | None = "available",
    *,
    channel_map: Mapping[str, str] | None = None,
    assume_units: str | Mapping[str, str] | None = None,
    file: Any = None,
) -> dict[str, xr.DataArray]:
    """Find and extract channels: name -> (time, lat, lon) DataArray in canonical units."""
    found = find_channels(variables, channels, channel_map=channel_map, file=file)
    return {ch: extract(variables, f, file=file, assume_units=assume_units) for ch, f in found.items()}
