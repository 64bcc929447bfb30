"""CF-compliant mask datasets: the common output of prediction and heuristic labelling.

A mask dataset has a ``mask`` variable (uint8, ``time, lat, lon``) whose values
are the classes of :data:`climviz.data.schema.CLASSES`, described with CF
``flag_values`` / ``flag_meanings``, optionally a ``probability`` variable
(``class, time, lat, lon``), and global attributes saying how it was made.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, Mapping

import numpy as np
import xarray as xr

from climviz._version import __version__
from climviz.data.schema import CLASSES, FLAG_MEANINGS, FLAG_VALUES, label_attrs
from climviz.errors import DataError

MASK_VAR = "mask"
PROBABILITY_VAR = "probability"

__all__ = ["MASK_VAR", "PROBABILITY_VAR", "make_mask_dataset", "validate_mask_dataset"]


def _coord_attrs() -> dict[str, dict[str, str]]:
    return {
        "lat": {"units": "degrees_north", "standard_name": "latitude", "long_name": "latitude", "axis": "Y"},
        "lon": {"units": "degrees_east", "standard_name": "longitude", "long_name": "longitude", "axis": "X"},
        "time": {"standard_name": "time", "long_name": "time", "axis": "T"},
    }


def make_mask_dataset(
    mask: np.ndarray | xr.DataArray,
    like: xr.Dataset | xr.DataArray,
    *,
    probability: np.ndarray | xr.DataArray | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """Wrap a class mask (and optional class probabilities) as a CF mask dataset.

    Parameters
    ----------
    mask
        Integer classes, shape ``(time, lat, lon)`` (a 2-D ``(lat, lon)`` mask is
        taken as one time step); values in ``{0, 1, 2}``.
    like
        Dataset or DataArray whose ``time``, ``lat`` and ``lon`` coordinates the
        mask shares (e.g. the run it was computed from).
    probability
        Optional class probabilities, shape ``(class, time, lat, lon)``, in [0, 1].
    attrs
        Extra global attributes, e.g. ``model``, ``checkpoint_sha256``,
        ``source_files``, ``method``.

    Returns
    -------
    xr.Dataset
        With ``mask`` (uint8) and optionally ``probability``; CF 1.8 attributes.

    Raises
    ------
    DataError
        If shapes do not match ``like`` or values are outside the classes.
    """
    data = mask.values if isinstance(mask, xr.DataArray) else np.asarray(mask)
    if data.ndim == 2:
        data = data[None]
    coords: dict[str, Any] = {}
    for dim in ("time", "lat", "lon"):
        if dim in like.coords:
            coords[dim] = like.coords[dim].values
    expected = tuple(len(coords[d]) if d in coords else None for d in ("time", "lat", "lon"))
    if data.ndim != 3 or any(e is not None and e != s for e, s in zip(expected, data.shape)):
        raise DataError(
            f"mask: expected shape (time, lat, lon) = {expected}, found {data.shape}"
        )
    if data.size and (data.min() < min(FLAG_VALUES) or data.max() > max(FLAG_VALUES)):
        bad = np.setdiff1d(np.unique(data), FLAG_VALUES)
        raise DataError(f"mask: expected class values in {list(FLAG_VALUES)}, found {bad.tolist()}")
    ds = xr.Dataset(
        {MASK_VAR: (("time", "lat", "lon"), data.astype(np.uint8, copy=False), label_attrs())},
        coords={k: v for k, v in coords.items()},
    )
    ds[MASK_VAR].attrs["long_name"] = "extreme weather class mask"
    for name, a in _coord_attrs().items():
        if name in ds.coords:
            ds[name].attrs.update(a)
    if probability is not None:
        p = probability.values if isinstance(probability, xr.DataArray) else np.asarray(probability)
        if p.ndim == 3:
            p = p[:, None]
        if p.shape != (len(CLASSES), *data.shape):
            raise DataError(
                f"probability: expected shape (class, time, lat, lon) = "
                f"{(len(CLASSES), *data.shape)}, found {p.shape}"
            )
        ds[PROBABILITY_VAR] = (("class", "time", "lat", "lon"), p)
        ds[PROBABILITY_VAR].attrs = {"long_name": "class probability", "units": "1", "valid_range": [0.0, 1.0]}
        ds = ds.assign_coords({"class": np.array(FLAG_VALUES, dtype=np.uint8)})
        ds["class"].attrs = {"long_name": "class", "flag_values": list(FLAG_VALUES), "flag_meanings": FLAG_MEANINGS}
    now = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
    ds.attrs = {
        "Conventions": "CF-1.8",
        "title": "climviz extreme weather masks",
        "climviz_version": __version__,
        "date_created": now,
        "history": f"{now} created by climviz {__version__}",
    }
    for key, value in (attrs or {}).items():
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            value = "\n".join(value)  # netCDF attributes cannot hold lists of strings portably
        elif isinstance(value, bool):
            value = int(value)
        ds.attrs[key] = value
    return ds


def validate_mask_dataset(ds: xr.Dataset, name: str = "masks") -> xr.Dataset:
    """Check that ``ds`` is a mask dataset; raise :class:`DataError` naming what is wrong.

    Units follow the rule of :mod:`climviz.data.units`: ``mask`` holds class numbers (units ``1``
    or none; any other unit is an error); ``probability`` is a fraction: ``%`` (or any
    dimensionless unit pint knows) is converted to ``1``, a dimensional or unknown unit is a
    :class:`DataError`. Returns the dataset (converted where needed).
    """
    if not isinstance(ds, xr.Dataset):
        raise DataError(f"{name}: expected an xarray.Dataset with a {MASK_VAR!r} variable, found {type(ds).__name__}")
    if MASK_VAR not in ds:
        raise DataError(
            f"{name}: expected a variable {MASK_VAR!r}, found variables {sorted(map(str, ds.data_vars))}"
        )
    dims = ds[MASK_VAR].dims
    if set(dims) != {"time", "lat", "lon"} and set(dims) != {"lat", "lon"}:
        raise DataError(f"{name}: variable {MASK_VAR!r} expected dims (time, lat, lon), found {dims}")
    if not np.issubdtype(ds[MASK_VAR].dtype, np.integer):
        raise DataError(f"{name}: variable {MASK_VAR!r} expected an integer dtype, found {ds[MASK_VAR].dtype}")
    units = ds[MASK_VAR].attrs.get("units")
    if units is not None and str(units).strip() not in ("1", ""):
        raise DataError(f"{name}: variable {MASK_VAR!r}: expected class numbers (units '1' or none), found units "
                        f"{units!r}")
    if PROBABILITY_VAR in ds:
        ds = _probability_units(ds, name)
    return ds


def _probability_units(ds: xr.Dataset, name: str) -> xr.Dataset:
    """``probability`` in units of 1 (a fraction): percent is converted with pint, anything else refused."""
    from climviz.data.units import parse_units

    p = ds[PROBABILITY_VAR]
    units = p.attrs.get("units")
    if units is None or str(units).strip() in ("1", ""):
        return ds
    unit = parse_units(str(units), file=name, variable=PROBABILITY_VAR)
    if unit.dimensionality:  # not dimensionless: "K", "m"...
        raise DataError(f"{name}: variable {PROBABILITY_VAR!r}: expected units '1' (a fraction in [0, 1]), "
                        f"found {units!r}")
    from climviz.data.units import _registry

    factor = float(_registry().Quantity(1.0, unit).to("dimensionless").magnitude)
    out = ds.copy()
    out[PROBABILITY_VAR] = p * factor
    out[PROBABILITY_VAR].attrs = dict(p.attrs, units="1", units_converted_from=str(units))
    return out
