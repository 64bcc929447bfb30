"""Statistics of events over a run: frequency maps and per-class summaries."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np
import pandas as pd

from climviz._compat import ClassesLike, class_ids, is_one_class, renamed_kwargs
from climviz.data.schema import CLASSES
from climviz.errors import DataError

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["frequency", "summarize", "run_years", "land_lookup"]

#: Time groupings of :func:`frequency`.
TimeGrouping = Literal["season", "month", "year", "dayofyear", "hour"]
_GROUPS: tuple[str, ...] = get_args(TimeGrouping)


def _mask_da(mask: Any, name: str = "mask") -> Any:
    import xarray as xr

    from climviz.events.labelling import mask_variable

    mask = mask_variable(mask, name)
    if not isinstance(mask, xr.DataArray):
        raise DataError(f"{name}: expected an xarray DataArray or Dataset (time, lat, lon), "
                        f"found {type(mask).__name__}")
    if "time" not in mask.dims:
        raise DataError(f"{name}: expected a 'time' dimension, found dims {mask.dims}")
    return mask


def _frequency_one(da: Any, c: int, by: str | None) -> Any:
    ind = (da == c).astype(np.float32)
    out = ind.mean("time") if by is None else ind.groupby(f"time.{by}").mean("time")
    key = CLASSES.get(c, f"class_{c}")
    out.name = f"frequency_{key}"
    out.attrs = {
        "long_name": f"fraction of time steps in class {c} ({key})",
        "units": "1",
        "valid_range": [0.0, 1.0],
        "class": c,
        "n_time_steps": int(da.sizes["time"]),
    }
    if by is not None:
        out.attrs["grouping"] = by
    return out


@renamed_kwargs(cls="classes")
def frequency(mask: xr.DataArray | xr.Dataset, classes: ClassesLike, *,
              by: TimeGrouping | None = None) -> xr.DataArray:
    """Fraction of time steps each grid cell is inside a class.

    Parameters
    ----------
    mask
        Class mask DataArray (time, lat, lon) or a mask Dataset (numpy or dask:
        the mean is lazy for dask input).
    classes
        One class, as a number or a name (``1``, ``"tc"``, ``"tropical_cyclone"``;
        ``2``, ``"ar"``), or a sequence of them (``(1, 2)``). (``cls=`` is the
        old, deprecated spelling.)
    by
        None for the whole run, or a time grouping: ``"season"`` (DJF, MAM,
        JJA, SON), ``"month"``, ``"year"``, ``"dayofyear"``, ``"hour"``.

    Returns
    -------
    xarray.DataArray
        float32 in [0, 1] with dims (lat, lon), or (season|month|..., lat, lon),
        named ``frequency_<class>`` with CF attributes. For a sequence of
        classes: one more leading dimension ``class``, named ``frequency``
        (as :func:`climviz.events.frequency_on_ray` returns).

    Examples
    --------
    >>> import climviz as cv
    >>> masks = cv.synthetic_run(4, shape=(32, 48))["LABELS"]
    >>> tc = cv.events.frequency(masks, "tc")
    >>> tc.name, tc.dims, tc.attrs["units"]
    ('frequency_tropical_cyclone', ('lat', 'lon'), '1')
    >>> bool(tc.max() <= 1.0) and tc.attrs["n_time_steps"] == 4
    True
    >>> cv.events.frequency(masks, 2, by="hour").dims  # ARs by hour of day
    ('hour', 'lat', 'lon')
    >>> both = cv.events.frequency(masks, ("tc", "ar"))
    >>> both.dims, both["class"].values.tolist()
    (('class', 'lat', 'lon'), [1, 2])
    """
    da = _mask_da(mask)
    ids = class_ids(classes)
    if by is not None:
        if by not in _GROUPS:
            raise DataError(f"by: expected None or one of {_GROUPS}, found {by!r}")
        if not np.issubdtype(da["time"].dtype, np.datetime64) and not hasattr(da["time"].values[0], "calendar"):
            raise DataError(f"mask: grouping by {by!r} needs datetime time values, found {da['time'].dtype}")
    if is_one_class(classes):
        return _frequency_one(da, ids[0], by)
    import xarray as xr

    out = xr.concat([_frequency_one(da, c, by) for c in ids], dim=pd.Index(list(ids), name="class"),
                    combine_attrs="drop")
    out.name = "frequency"
    out.attrs = {"long_name": "fraction of time steps inside the class", "units": "1",
                 "valid_range": [0.0, 1.0], "n_time_steps": int(da.sizes["time"])}
    if by is not None:
        out.attrs["grouping"] = by
    return out


def run_years(times: Any) -> float:
    """Length of a run in years (365.25 days), counting one step beyond the last time.

    Returns NaN when the times are not datetimes.

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> round(run_years(pd.date_range("2001-01-01", periods=2920, freq="3h")), 4)  # 365 days
    0.9993
    >>> bool(np.isnan(run_years(np.arange(10))))
    True
    """
    t = pd.Series(np.asarray(times))
    if len(t) == 0:
        return float("nan")
    if pd.api.types.is_datetime64_any_dtype(t):
        u = np.sort(t.unique())
        step = (u[1] - u[0]) if len(u) > 1 else np.timedelta64(0, "s")
        span = (u[-1] - u[0]) + step
        return float(span / np.timedelta64(1, "s")) / (365.25 * 86400.0)
    if hasattr(t.iloc[0], "calendar"):
        uc = sorted(t.unique())
        step = (uc[1] - uc[0]) if len(uc) > 1 else (uc[0] - uc[0])
        return ((uc[-1] - uc[0]) + step).total_seconds() / (365.25 * 86400.0)
    return float("nan")


def land_lookup(land: Any, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Whether points are over land: nearest cell of a land mask/fraction (> 0.5 is land).

    Parameters
    ----------
    land
        DataArray (lat, lon) of land fraction or 0/1 (e.g. LANDFRAC); longitudes
        in any convention.
    lat, lon
        Points (degrees).

    Returns
    -------
    numpy.ndarray
        bool, one per point (False for non-finite coordinates).

    Examples
    --------
    Land east of 90°E on a 2 x 2 grid; -170° is 190°E, nearest the land column:

    >>> import numpy as np
    >>> import xarray as xr
    >>> land = xr.DataArray([[0.0, 1.0], [0.0, 1.0]], dims=("lat", "lon"),
    ...                     coords={"lat": [0.0, 10.0], "lon": [0.0, 180.0]})
    >>> land_lookup(land, np.array([5.0, 5.0]), np.array([10.0, -170.0])).tolist()
    [False, True]
    """
    import xarray as xr

    if not isinstance(land, xr.DataArray):
        raise DataError(f"land: expected a DataArray (lat, lon), found {type(land).__name__}")
    from climviz.events.labelling import LAT_NAMES, LON_NAMES, find_dim

    latd = find_dim(land, LAT_NAMES, "latitude")
    lond = find_dim(land, LON_NAMES, "longitude")
    lat_c = np.asarray(land[latd].values, dtype=np.float64)
    lon_c = np.mod(np.asarray(land[lond].values, dtype=np.float64), 360.0)
    values = np.asarray(land.transpose(latd, lond).values, dtype=np.float64) > 0.5
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.mod(np.asarray(lon, dtype=np.float64), 360.0)
    ok = np.isfinite(lat) & np.isfinite(lon)
    i = np.abs(lat[:, None] - lat_c[None, :]).argmin(axis=1) if lat.size else np.zeros(0, int)
    dl = np.abs(lon[:, None] - lon_c[None, :])
    j = np.minimum(dl, 360.0 - dl).argmin(axis=1) if lon.size else np.zeros(0, int)
    return values[i, j] & ok


def summarize(events: Any, *, land: Any = None, years: float | None = None,
              quantiles: tuple[float, ...] = (0.1, 0.5, 0.9)) -> pd.DataFrame:
    """Per-class statistics of a run's events and tracks.

    Parameters
    ----------
    events
        A :class:`~climviz.events.Tracks` (event and track statistics) or
        an event table from :func:`climviz.events.table` (event statistics only).
    land
        Optional land mask/fraction DataArray (lat, lon); a track is
        *landfalling* if any of its event centroids lies over land (> 0.5).
    years
        Length of the run in years (default: from the table's time column).
    quantiles
        Quantiles of the area and lifetime distributions to report.

    Returns
    -------
    pandas.DataFrame
        One row per class: ``class, name, n_events`` (event rows = events x
        steps), ``n_steps``, ``events_per_step``, ``years``, area statistics
        (``area_mean_km2, area_q10_km2...``), and with tracks ``n_branches``
        (tracks that split off another track; part of that storm) and ``n_tracks``
        (tracks born by genesis: the storms; the track statistics are over these),
        ``tracks_per_year, lifetime_mean_h, lifetime_q50_h..., path_length_mean_km``,
        and with ``land`` ``landfalling, landfalling_fraction``.

    Examples
    --------
    One cyclone, 2 x 2 cells, moving east for three 3-hourly steps:

    >>> import numpy as np
    >>> import pandas as pd
    >>> from climviz.events import label_table, summarize, track
    >>> lat, lon = np.linspace(-85, 85, 18), np.arange(0, 360, 10.0)
    >>> masks = np.zeros((3, 18, 36), dtype=np.uint8)
    >>> for t in range(3):
    ...     masks[t, 10:12, 5 + t:7 + t] = 1
    >>> times = pd.date_range("2000-01-01", periods=3, freq="3h")
    >>> labels, tab = label_table(masks, lat=lat, lon=lon, time=times)
    >>> summarize(track(tab, labels, lat=lat, lon=lon))[["name", "n_events", "n_tracks", "lifetime_mean_h"]]
                   name  n_events  n_tracks  lifetime_mean_h
    0  tropical_cyclone         3         1              6.0
    """
    from climviz.events.tracking import Tracks

    if isinstance(events, Tracks):
        tab, trk = events.events, events.tracks
    elif isinstance(events, pd.DataFrame):
        tab, trk = events, None
    else:
        raise DataError(f"summarize: expected Tracks or an event table DataFrame, found {type(events).__name__}")
    for col in ("time", "step", "class", "area_km2"):
        if col not in tab.columns:
            raise DataError(f"event table: expected a {col!r} column, found {list(tab.columns)}")
    n_steps = int(tab["step"].max() + 1) if len(tab) else 0
    yrs = float(years) if years is not None else run_years(tab["time"])
    rows = []
    classes = sorted(set(tab["class"].unique().tolist())
                     | (set() if trk is None else set(trk["class"].unique().tolist())))
    for c in classes:
        e = tab[tab["class"] == c]
        r: dict[str, Any] = {"class": int(c), "name": CLASSES.get(int(c), f"class_{c}"),
                             "n_events": len(e), "n_steps": n_steps,
                             "events_per_step": len(e) / n_steps if n_steps else np.nan, "years": yrs,
                             "area_mean_km2": e["area_km2"].mean()}
        for q in quantiles:
            r[f"area_q{round(q * 100):02d}_km2"] = e["area_km2"].quantile(q) if len(e) else np.nan
        if trk is not None:
            t = trk[trk["class"] == c]
            if "origin" in t.columns:
                # a branch that split off a living track is part of that storm, not a new one
                r["n_branches"] = int((t["origin"] == "split").sum())
                t = t[t["origin"] != "split"]
            r["n_tracks"] = len(t)
            r["tracks_per_year"] = len(t) / yrs if yrs and np.isfinite(yrs) else np.nan
            r["lifetime_mean_h"] = t["lifetime_h"].mean()
            for q in quantiles:
                r[f"lifetime_q{round(q * 100):02d}_h"] = t["lifetime_h"].quantile(q) if len(t) else np.nan
            r["path_length_mean_km"] = t["path_length_km"].mean()
            if land is not None:
                ev = e[e["track_id"].isin(t["track_id"])]
                over = land_lookup(land, ev["centroid_lat"].to_numpy(), ev["centroid_lon"].to_numpy())
                n_land = int(ev.loc[over, "track_id"].nunique())
                r["landfalling"] = n_land
                r["landfalling_fraction"] = n_land / len(t) if len(t) else np.nan
        elif land is not None:
            over = land_lookup(land, e["centroid_lat"].to_numpy(), e["centroid_lon"].to_numpy())
            r["events_over_land"] = int(over.sum())
        rows.append(r)
    return pd.DataFrame(rows)
