"""Uniform access to masks (and fields) given as numpy or xarray (numpy/dask), block by block over time."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from climviz.errors import DataError
from climviz.events.labelling import LAT_NAMES, LON_NAMES, _check_mask_array, events_lon, find_dim, mask_variable

#: Cells per block for in-memory input (bounds temporaries to a few hundred MB).
BLOCK_CELLS = 16_000_000


@dataclass
class MaskSource:
    """A (time, lat, lon) mask with optional fields, read one block of time steps at a time.

    Attributes
    ----------
    lat, lon
        Cell-centre coordinates (degrees), longitudes in the order the events code
        works in (:func:`~climviz.events.labelling.events_lon`: a rolled axis such as
        180 … 360, 0 … 180 is oriented, and every block read is rolled the same way).
    lon_shift
        That roll (0 for increasing longitudes): blocks are ``numpy.roll(data,
        -lon_shift, axis=-1)``; results on the grid are rolled back by ``+lon_shift``.
    lon_input
        The longitudes in the input's order (for output coordinates).
    times
        One value per time step (datetime64 or step index).
    dims
        Dimension names ``(time, lat, lon)`` used for output DataArrays.
    """

    mask: Any
    fields: dict[str, Any]
    lat: np.ndarray
    lon: np.ndarray
    times: np.ndarray
    dims: tuple[str, str, str]
    chunk_bounds: list[int] | None = None
    is_xr: bool = False
    attrs: dict[str, Any] = field(default_factory=dict)
    lon_shift: int = 0
    lon_input: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.lon_input is None:
            self.lon_input = self.lon
            self.lon, self.lon_shift = events_lon(self.lon, f"mask: coordinate {self.dims[2]!r}")

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.times.size, self.lat.size, self.lon.size)

    @classmethod
    def from_any(
        cls,
        mask: Any,
        fields: Any = None,
        *,
        lat: npt.ArrayLike | None = None,
        lon: npt.ArrayLike | None = None,
        time: npt.ArrayLike | None = None,
        name: str = "mask",
    ) -> "MaskSource":
        import xarray as xr

        mask = mask_variable(mask, name)
        if isinstance(mask, xr.DataArray):
            latd = find_dim(mask, LAT_NAMES, "latitude")
            lond = find_dim(mask, LON_NAMES, "longitude")
            lead = [d for d in mask.dims if d not in (latd, lond)]
            if len(lead) > 1:
                raise DataError(f"{name}: expected dims (time, lat, lon) or (lat, lon), found {mask.dims}")
            if lead:
                tdim = lead[0]
                da = mask.transpose(tdim, latd, lond)
            else:
                tdim = "time"
                da = mask.expand_dims(tdim) if "time" not in mask.coords else mask.expand_dims(tdim)
            for d in (latd, lond):
                if d not in da.coords:
                    raise DataError(f"{name}: expected a '{d}' coordinate (degrees)")
            times = da[tdim].values if tdim in da.coords else np.arange(da.sizes[tdim])
            fds: dict[str, Any] = {}
            if fields is not None:
                items = fields.data_vars.items() if isinstance(fields, xr.Dataset) else fields.items()
                for fname, f in items:
                    if not isinstance(f, xr.DataArray):
                        f = xr.DataArray(np.asarray(f), dims=mask.dims)
                    if tdim not in f.dims and not lead:
                        f = f.expand_dims(tdim)
                    if set(f.dims) != {tdim, latd, lond}:
                        raise DataError(f"field {fname!r}: expected dims {(tdim, latd, lond)}, found {f.dims}")
                    f = f.transpose(tdim, latd, lond)
                    if f.shape != da.shape:
                        raise DataError(f"field {fname!r}: expected shape {da.shape}, found {f.shape}")
                    fds[str(fname)] = f
            bounds = None
            if da.chunks is not None:
                bounds = [0, *np.cumsum(da.chunks[0]).tolist()]
            return cls(da, fds, np.asarray(da[latd].values, dtype=np.float64),
                       np.asarray(da[lond].values, dtype=np.float64), np.asarray(times),
                       (str(tdim), latd, lond), bounds, True, dict(mask.attrs))
        arr = np.asarray(mask)
        if arr.ndim == 2:
            arr = arr[None]
        if arr.ndim != 3:
            raise DataError(f"{name}: expected a (time, lat, lon) or (lat, lon) array, found shape {arr.shape}")
        if lat is None or lon is None:
            raise DataError(f"{name}: a numpy mask needs lat and lon coordinates (degrees)")
        lat_v = np.asarray(lat, dtype=np.float64)
        lon_v = np.asarray(lon, dtype=np.float64)
        if (lat_v.size, lon_v.size) != arr.shape[1:]:
            raise DataError(f"lat/lon: expected sizes {arr.shape[1:]}, found ({lat_v.size}, {lon_v.size})")
        times = np.arange(arr.shape[0]) if time is None else np.asarray(time)
        if times.shape != (arr.shape[0],):
            raise DataError(f"time: expected {arr.shape[0]} values, found shape {times.shape}")
        fnp: dict[str, np.ndarray] = {}
        for fname, f in (dict(fields) if fields is not None else {}).items():
            fa = np.asarray(f)
            if fa.ndim == 2:
                fa = fa[None]
            if fa.shape != arr.shape:
                raise DataError(f"field {fname!r}: expected shape {arr.shape}, found {fa.shape}")
            fnp[str(fname)] = fa
        return cls(arr, fnp, lat_v, lon_v, times, ("time", "lat", "lon"))

    def slices(self, block_steps: int | None = None) -> list[slice]:
        nt, H, W = self.shape
        if block_steps is None and self.chunk_bounds is not None:
            b = self.chunk_bounds
            return [slice(b[i], b[i + 1]) for i in range(len(b) - 1)]
        size = block_steps or max(1, BLOCK_CELLS // max(1, H * W))
        return [slice(s, min(nt, s + size)) for s in range(0, nt, size)]

    def _get(self, obj: Any, sl: slice) -> np.ndarray:
        """Steps ``sl`` of the mask or a field, as numpy, longitudes in the order of :attr:`lon`."""
        if self.is_xr:
            out = np.asarray(obj.isel({self.dims[0]: sl}).values)
        else:
            out = obj[sl]
        return np.roll(out, -self.lon_shift, axis=-1) if self.lon_shift else out

    def unroll(self, grid: np.ndarray) -> np.ndarray:
        """A result on the grid (..., lat, lon) back in the input's longitude order."""
        return np.roll(grid, self.lon_shift, axis=-1) if self.lon_shift else grid

    def blocks(self, block_steps: int | None = None) -> Iterator[tuple[slice, np.ndarray, dict[str, np.ndarray]]]:
        """Yield ``(time slice, mask block (T, H, W) uint8, {field: block})``."""
        for sl in self.slices(block_steps):
            m = _check_mask_array(self._get(self.mask, sl))
            yield sl, m, {k: self._get(v, sl) for k, v in self.fields.items()}

    def coords(self, sl: slice | None = None) -> dict[str, Any]:
        """Coordinates of a result in the input's order (see :meth:`unroll`)."""
        t, la, lo = self.dims
        times = self.times if sl is None else self.times[sl]
        return {t: times, la: self.lat, lo: self.lon_input}


def as_fields(fields: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    return fields
