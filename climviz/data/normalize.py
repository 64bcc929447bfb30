"""Per-channel normalization statistics: one streaming pass, saved as JSON, applied on the fly.

A model records the channels and the statistics it was trained with
(:meth:`Normalizer.to_dict` goes into the checkpoint), so the same
normalization is applied at inference time.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import xarray as xr

from climviz.data.schema import CHANNELS
from climviz.errors import DataError
from climviz.utils.atomic import atomic_path

__all__ = ["Normalizer"]

_FORMAT = "climviz-normalizer"


@dataclass
class Normalizer:
    """Per-channel mean, standard deviation, minimum and maximum.

    Attributes
    ----------
    channels
        Channel names, in the order of the statistics.
    mean, std, min, max
        float64 arrays of length ``len(channels)``, in each channel's units. ``std`` is
        the population standard deviation (ddof=0); a constant channel gets std 1 (and a
        warning) so that normalizing never divides by zero.
    count
        Number of finite values per channel used for the statistics.

    Examples
    --------
    >>> ds = cv.synthetic_run(4, shape=(32, 48))
    >>> norm = cv.Normalizer.fit(ds, channels=["TMQ", "PSL"])
    >>> norm.channels, norm.count.tolist()
    (('TMQ', 'PSL'), [6144, 6144])
    >>> norm.mean.round(1).tolist()  # kg m-2, Pa
    [17.0, 101139.7]

    Normalize a dataset lazily, or an array with the channels on axis -3:

    >>> z = norm(ds)
    >>> round(float(z["TMQ"].std()), 3), z["TMQ"].attrs["units"]
    (1.0, '1')
    >>> x = np.stack([ds["TMQ"].values, ds["PSL"].values], axis=1)  # (time, channel, lat, lon)
    >>> y = norm.apply(x)
    >>> y.shape, y.dtype.name, bool(abs(y[:, 1].mean()) < 1e-4)
    ((4, 2, 32, 48), 'float32', True)

    Save the statistics with the model; load them for inference:

    >>> _ = norm.save("norm.json")
    >>> cv.Normalizer.load("norm.json") == norm
    True
    """

    channels: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray
    min: np.ndarray
    max: np.ndarray
    count: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.channels = tuple(str(c) for c in self.channels)
        n = len(self.channels)
        for name in ("mean", "std", "min", "max"):
            arr = np.asarray(getattr(self, name), dtype=np.float64).reshape(-1)
            if arr.shape != (n,):
                raise DataError(f"Normalizer: {name}: expected {n} values (one per channel), found {arr.shape[0]}")
            if not np.isfinite(arr).all():
                raise DataError(f"Normalizer: {name}: expected finite values, found {arr.tolist()}")
            setattr(self, name, arr)
        if (self.std <= 0).any():
            bad = [c for c, s in zip(self.channels, self.std) if s <= 0]
            raise DataError(f"Normalizer: std: expected > 0 for every channel, found <= 0 for {bad}")
        if self.count is not None:
            self.count = np.asarray(self.count, dtype=np.int64).reshape(-1)

    # ------------------------------------------------------------------ fitting
    @classmethod
    def fit(
        cls,
        ds: xr.Dataset | Any,
        channels: Sequence[str] = CHANNELS,
        *,
        time_indices: Sequence[int] | np.ndarray | None = None,
    ) -> Normalizer:
        """Compute the statistics of a run in one streaming pass (dask, bounded memory).

        Parameters
        ----------
        ds
            An ``xr.Dataset`` (dask- or numpy-backed) or anything :func:`climviz.open_run`
            accepts.
        channels
            Channels to summarise.
        time_indices
            Only these time steps (e.g. the training split from :func:`time_split`).

        Returns
        -------
        Normalizer
            NaN values (masked on input) are ignored.
        """
        import dask
        import dask.array as da

        if not isinstance(ds, xr.Dataset):
            from climviz.data.io import open_run

            ds = open_run(ds, channels=channels)
        missing = [c for c in channels if c not in ds]
        if missing:
            src = ds.attrs.get("source_files", ["<dataset>"])
            raise DataError(
                f"{src[0] if src else '<dataset>'}: missing channel(s) {missing} for normalization; "
                f"found {list(ds.data_vars)}"
            )
        if time_indices is not None:
            ds = ds.isel(time=np.asarray(time_indices, dtype=int))
        tasks = []
        for c in channels:
            x = ds[c].data
            if not isinstance(x, da.Array):
                x = np.asarray(x)  # in memory: big chunks (~4 M values) keep the task count small
                per_step = max(1, int(np.prod(x.shape[1:])))
                x = da.from_array(x, chunks=(max(1, 4_000_000 // per_step),) + tuple(-1 for _ in x.shape[1:]))
            x = x.astype(np.float64)
            # chunk-wise moments merged pairwise (dask's nanvar is the stable parallel form)
            tasks.append((da.nanmean(x), da.nanstd(x), da.nanmin(x), da.nanmax(x), da.isfinite(x).sum()))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN chunks
            (results,) = dask.compute(tasks)
        mean, std, mn, mx, cnt = (np.array([r[i] for r in results], dtype=float) for i in range(5))
        if (cnt == 0).any():
            bad = [c for c, n in zip(channels, cnt) if n == 0]
            raise DataError(f"Normalizer.fit: channel(s) {bad}: expected finite values, found none")
        if (std == 0).any():
            warnings.warn(f"Normalizer.fit: constant channel(s) {[c for c, s in zip(channels, std) if s == 0]}; "
                          "their std is set to 1", stacklevel=2)
            std = np.where(std == 0, 1.0, std)
        return cls(tuple(channels), mean, std, mn, mx, cnt.astype(np.int64))

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """JSON-able dictionary (plain lists and strings)."""
        d: dict[str, Any] = {
            "format": _FORMAT,
            "version": 1,
            "channels": list(self.channels),
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "min": self.min.tolist(),
            "max": self.max.tolist(),
        }
        if self.count is not None:
            d["count"] = self.count.tolist()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Normalizer:
        """Inverse of :meth:`to_dict`; DataError naming the key for a malformed dictionary."""
        if not isinstance(d, dict):
            raise DataError(f"Normalizer.from_dict: expected a dict, found {type(d).__name__}")
        if d.get("format", _FORMAT) != _FORMAT:
            raise DataError(f"Normalizer.from_dict: key 'format': expected {_FORMAT!r}, found {d.get('format')!r}")
        for key in ("channels", "mean", "std", "min", "max"):
            if key not in d:
                raise DataError(f"Normalizer.from_dict: missing key {key!r}; found keys {sorted(d)}")
        try:
            mean, std, lo, hi = (np.asarray(d[k], dtype=float) for k in ("mean", "std", "min", "max"))
            return cls(tuple(d["channels"]), mean, std, lo, hi, count=d.get("count"))
        except (TypeError, ValueError) as exc:
            if isinstance(exc, DataError):
                raise
            raise DataError(f"Normalizer.from_dict: values must be lists of numbers: {exc}") from exc

    def save(self, path: str | Path) -> Path:
        """Write the statistics as JSON, atomically."""
        path = Path(path)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Normalizer:
        """Read statistics written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: normalizer file not found")
        try:
            d = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: expected a JSON normalizer file, found invalid JSON ({exc})") from exc
        try:
            return cls.from_dict(d)
        except DataError as exc:
            raise DataError(f"{path}: {exc}") from exc

    # ------------------------------------------------------------------ use
    def select(self, channels: Sequence[str]) -> Normalizer:
        """The statistics of a subset (or reordering) of the channels."""
        missing = [c for c in channels if c not in self.channels]
        if missing:
            raise DataError(f"Normalizer: channel(s) {missing} not in the normalizer's channels {list(self.channels)}")
        idx = [self.channels.index(c) for c in channels]
        return Normalizer(tuple(channels), self.mean[idx], self.std[idx], self.min[idx], self.max[idx],
                          None if self.count is None else self.count[idx])

    def apply(self, x, channel_axis: int = -3):
        """Return ``(x - mean) / std`` with the statistics broadcast along ``channel_axis``.

        Parameters
        ----------
        x
            ``numpy.ndarray`` or ``torch.Tensor`` with ``len(channels)`` entries along
            ``channel_axis`` (default -3: ``(..., C, H, W)``).

        Returns
        -------
        Same type as ``x``; float32 for integer input, else ``x``'s float dtype (and device).
        """
        n = len(self.channels)
        if x.shape[channel_axis] != n:
            raise DataError(
                f"Normalizer.apply: expected {n} channels {list(self.channels)} along axis {channel_axis}, "
                f"found shape {tuple(x.shape)}"
            )
        shape = [1] * x.ndim
        shape[channel_axis] = n
        if isinstance(x, np.ndarray):
            dt = x.dtype if x.dtype.kind == "f" else np.float32
            return ((x - self.mean.reshape(shape).astype(dt)) / self.std.reshape(shape).astype(dt)).astype(dt)
        import torch

        dt = x.dtype if x.is_floating_point() else torch.float32
        mean = torch.as_tensor(self.mean, dtype=dt, device=x.device).reshape(shape)
        std = torch.as_tensor(self.std, dtype=dt, device=x.device).reshape(shape)
        return (x.to(dt) - mean) / std

    def inverse(self, x, channel_axis: int = -3):
        """Undo :meth:`apply`: ``x * std + mean``."""
        n = len(self.channels)
        shape = [1] * x.ndim
        shape[channel_axis] = n
        if isinstance(x, np.ndarray):
            return x * self.std.reshape(shape).astype(x.dtype) + self.mean.reshape(shape).astype(x.dtype)
        import torch

        return x * torch.as_tensor(self.std, dtype=x.dtype, device=x.device).reshape(shape) + torch.as_tensor(
            self.mean, dtype=x.dtype, device=x.device).reshape(shape)

    def __call__(self, ds: xr.Dataset) -> xr.Dataset:
        """Normalize the channels of ``ds`` lazily (other variables are kept as they are)."""
        missing = [c for c in self.channels if c not in ds]
        if missing:
            raise DataError(f"Normalizer: run lacks channel(s) {missing}; the normalizer needs {list(self.channels)}")
        out = ds.copy()
        for i, c in enumerate(self.channels):
            v = (ds[c] - np.float32(self.mean[i])) / np.float32(self.std[i])
            v = v.astype(ds[c].dtype if ds[c].dtype.kind == "f" else np.float32)
            v.attrs = {
                "long_name": f"normalized {ds[c].attrs.get('long_name', c)}",
                "units": "1",
                "normalization": f"(x - {self.mean[i]:.6g}) / {self.std[i]:.6g}",
            }
            out[c] = v
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Normalizer):
            return NotImplemented
        return self.channels == other.channels and all(
            np.allclose(getattr(self, k), getattr(other, k), rtol=1e-12, atol=0) for k in ("mean", "std", "min", "max")
        )

    def __repr__(self) -> str:
        rows = ", ".join(f"{c}: {m:.4g}±{s:.3g}" for c, m, s in zip(self.channels[:4], self.mean, self.std))
        more = "" if len(self.channels) <= 4 else f", ... ({len(self.channels)} channels)"
        return f"Normalizer({rows}{more})"

    __hash__ = None  # type: ignore[assignment]

