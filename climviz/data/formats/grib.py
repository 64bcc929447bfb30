"""GRIB (editions 1 and 2) through cfgrib / ecCodes.

A GRIB file is a sequence of 2-D fields, each with its own parameter, level type and
level; NCEP files also pack several fields in one message (GFS puts ``u`` and ``v`` of a
level in one GRIB 2 message, which readers that do not enable ecCodes' multi-field support
do not see). :func:`open_variables` reads the file once with ecCodes (the library cfgrib is
built on; multi-field support on, nothing written next to the data) and returns every
variable as ``"<cfVarName>@<typeOfLevel>"`` (``"u@isobaricInhPa"``, ``"prmsl@meanSea"``,
``"t@surface"``, the names cfgrib gives), with dims ``(time, [level,] lat, lon)``, the
*validity* time as ``time`` and the GRIB keys in the attributes (``GRIB_typeOfLevel``,
``GRIB_stepType``, ``GRIB_stepRange``...). Product conventions
(:mod:`climviz.data.formats.products`) then pick channels from these.

cfgrib's ``open_datasets`` gives the same variables but re-reads the file once per group of
fields (minutes for the 308-message GFS sample on a loaded 2-core machine); one ecCodes pass
takes seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from climviz.errors import DataError

__all__ = ["GRIB_MAGIC", "is_grib", "open_variables"]

GRIB_MAGIC = b"GRIB"


def is_grib(head: bytes) -> bool:
    """True when the first bytes of a file are a GRIB indicator section."""
    return head[:4] == GRIB_MAGIC


_KEYS_STR = ("shortName", "cfVarName", "cfName", "name", "units", "typeOfLevel", "stepType", "stepRange",
             "gridType", "centre")
_KEYS_INT = ("validityDate", "validityTime", "dataDate", "dataTime", "Ni", "Nj", "edition", "paramId", "stepUnits")


def _get(h, key, kind=str):
    import eccodes

    try:
        return eccodes.codes_get(h, key, ktype=kind)
    except Exception:  # noqa: BLE001 - a key a message does not define
        return None


def _scan(path: Path) -> list[dict[str, Any]]:
    """Every field of a GRIB file (multi-field messages included): keys and values."""
    import eccodes

    fields = []
    eccodes.codes_grib_multi_support_on()  # NCEP packs u and v of a level in one GRIB 2 message
    try:
        with open(path, "rb") as fh:
            while True:
                h = eccodes.codes_grib_new_from_file(fh)
                if h is None:
                    break
                try:
                    rec: dict[str, Any] = {k: _get(h, k) for k in _KEYS_STR}
                    rec.update({k: _get(h, k, int) for k in _KEYS_INT})
                    rec["level"] = _get(h, "level", float)
                    if rec["gridType"] == "regular_ll":
                        rec["lat"] = np.asarray(eccodes.codes_get_array(h, "distinctLatitudes"), float)
                        rec["lon"] = np.asarray(eccodes.codes_get_array(h, "distinctLongitudes"), float)
                        rec["j_positive"] = _get(h, "jScansPositively", int)
                        vals = np.asarray(eccodes.codes_get_values(h), dtype=np.float32)
                        if _get(h, "bitmapPresent", int):
                            missing = _get(h, "missingValue", float)
                            vals = np.where(vals == np.float32(missing), np.float32(np.nan), vals)
                        rec["values"] = vals
                    fields.append(rec)
                finally:
                    eccodes.codes_release(h)
    finally:
        eccodes.codes_grib_multi_support_off()
    return fields


def _valid_time(rec: dict[str, Any]) -> np.datetime64 | None:
    d, t = rec.get("validityDate"), rec.get("validityTime")
    if d is None or t is None:
        return None
    s = f"{int(d):08d}{int(t):04d}"
    return np.datetime64(f"{s[:4]}-{s[4:6]}-{s[6:8]}T{s[8:10]}:{s[10:12]}", "ns")


def open_variables(path: Path | str) -> tuple[dict[str, xr.DataArray], dict[str, Any]]:
    """Every variable of a GRIB file, keyed ``"<cfVarName>@<typeOfLevel>"``.

    The file is read once with ecCodes (multi-field messages included); fields of the same
    parameter and level type are stacked along a level dimension named after the level type
    (``isobaricInhPa``, in hPa) and along ``time`` (the validity time).

    Parameters
    ----------
    path
        A GRIB 1 or GRIB 2 file; fields on a regular latitude/longitude grid are returned.

    Returns
    -------
    variables, attrs
        DataArrays (float32, NaN where the bitmap masks values) with dims
        ``(time, [level,] lat, lon)``, latitudes as stored, and the GRIB keys as attributes
        (``GRIB_typeOfLevel``, ``GRIB_stepType``, ``GRIB_stepRange``, ``units``, ``standard_name``
        from ecCodes' ``cfName``...); global attributes (``GRIB_edition``, ``GRIB_centre``,
        ``GRIB_fields``, ``GRIB_messages``).

    Raises
    ------
    DataError
        The file cannot be decoded by ecCodes, or holds no field on a regular lat/lon grid.
    """
    path = Path(path)
    try:
        fields = _scan(path)
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - ecCodes raises many types for corrupt files
        raise DataError(f"{path}: cannot be decoded as GRIB (truncated or corrupt?): {type(exc).__name__}: {exc}") \
            from exc
    if not fields:
        raise DataError(f"{path}: no GRIB message found (empty or not GRIB)")
    regular = [r for r in fields if "values" in r]
    if not regular:
        raise DataError(f"{path}: GRIB file holds no field on a regular latitude/longitude grid "
                        f"(found grid types {sorted({str(r['gridType']) for r in fields})})")
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in regular:
        name = r["cfVarName"] if r["cfVarName"] not in (None, "unknown") else r["shortName"]
        groups.setdefault(f"{name}@{r['typeOfLevel']}", []).append(r)
    out: dict[str, xr.DataArray] = {}
    for key, recs in groups.items():
        r0 = recs[0]
        lat, lon = r0["lat"], r0["lon"]
        recs = [r for r in recs if r["lat"].shape == lat.shape and r["lon"].shape == lon.shape]
        times = sorted({_valid_time(r) for r in recs}, key=lambda t: (t is None, t))
        levels = sorted({float(r["level"]) for r in recs if r["level"] is not None})
        shape = (len(times), len(levels), lat.size, lon.size)
        data = np.full(shape, np.nan, np.float32)
        for r in recs:
            ti, li = times.index(_valid_time(r)), levels.index(float(r["level"]))
            # ecCodes returns values in scanning order: rows as distinctLatitudes lists them
            data[ti, li] = r["values"].reshape(lat.size, lon.size)
        tol = str(r0["typeOfLevel"])
        coords: dict[str, Any] = {"lat": ("lat", lat), "lon": ("lon", lon)}
        if all(t is not None for t in times):
            coords["time"] = ("time", np.array(times, dtype="datetime64[ns]"))
        if len(levels) > 1 or tol in ("isobaricInhPa", "isobaricInPa"):
            level_attrs = {"units": "hPa" if tol == "isobaricInhPa" else "Pa",
                           "standard_name": "air_pressure"} if tol.startswith("isobaric") else {}
            coords[tol] = (tol, np.array(levels), level_attrs)
            da = xr.DataArray(data, dims=("time", tol, "lat", "lon"), coords=coords)
        else:
            da = xr.DataArray(data[:, 0], dims=("time", "lat", "lon"), coords=coords)
        attrs = {"units": r0["units"], "long_name": r0["name"], "GRIB_name": r0["name"],
                 "GRIB_shortName": r0["shortName"], "GRIB_cfVarName": r0["cfVarName"],
                 "GRIB_paramId": r0["paramId"], "GRIB_typeOfLevel": tol, "GRIB_stepType": r0["stepType"],
                 "GRIB_stepRange": r0["stepRange"], "GRIB_stepUnits": r0["stepUnits"]}
        if r0["cfName"] not in (None, "unknown", ""):
            attrs["standard_name"] = r0["cfName"]
        if r0["units"] in (None, "unknown", "~"):
            attrs.pop("units")
        da.attrs = {k: v for k, v in attrs.items() if v is not None}
        da.name = key
        out[key] = da
    attrs = {"GRIB_edition": int(regular[0]["edition"] or 0), "GRIB_centre": str(regular[0]["centre"]),
             "GRIB_fields": len(fields)}
    return out, attrs
