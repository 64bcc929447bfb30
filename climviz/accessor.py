"""The ``.climviz`` accessor on :class:`xarray.Dataset` and :class:`xarray.DataArray`.

Registered on ``import climviz``. Each verb is a thin call of a public climviz
function with the object as its data, so a notebook can write

>>> import climviz as cv
>>> ds = cv.synthetic_run(4, shape=(32, 48), seed=0)
>>> masks = ds.climviz.label(tc={"stitch": False})   # heuristic TC / AR masks (9 h: no tracks)
>>> tab = masks.climviz.events(fields=ds[["PSL"]])    # one row per (time, event)
>>> set(tab["class"]) <= {1, 2}
True
>>> freq = masks.climviz.frequency("tc")              # fraction of steps in a TC
>>> float(freq.max()) <= 1.0
True

The verbs take the same keyword arguments as the functions they call (see
their docstrings): :func:`climviz.viz.map`, :func:`climviz.predict`,
:func:`climviz.labels.label_run`, :func:`climviz.events.label_table` and
:func:`climviz.events.frequency`. Classes may be given by value (1, 2, or
``cv.data.TC``, ``cv.data.AR``), short key (``"tc"``, ``"ar"``) or CF flag meaning (``"tropical_cyclone"``).
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np
import xarray as xr

from climviz._compat import class_id, renamed_kwargs
from climviz.data.schema import LABEL_VAR
from climviz.errors import DataError

__all__ = ["ClimvizAccessor", "class_value"]


def class_value(cls: int | np.integer | str) -> int:
    """The class value (0 background, 1 TC, 2 AR) for a value, key or flag meaning.

    Parameters
    ----------
    cls : int or str
        ``1``, ``"tc"``, ``"TC"`` or ``"tropical_cyclone"`` all mean 1.

    Returns
    -------
    int

    Examples
    --------
    >>> class_value("ar"), class_value("tropical_cyclone"), class_value(2)
    (2, 1, 2)
    """
    return class_id(cls, name="class")  # numpy integers too (mask values, np.unique)


class ClimvizAccessor:
    """``obj.climviz``: climviz verbs on a run, a field or a mask dataset."""

    def __init__(self, obj: xr.Dataset | xr.DataArray) -> None:
        self._obj = obj

    # ------------------------------------------------------------------ helpers
    def _mask(self) -> xr.DataArray:
        """The class mask held by this object: ``mask``, else ``LABELS``, else itself."""
        obj = self._obj
        if isinstance(obj, xr.DataArray):
            return obj
        for name in ("mask", LABEL_VAR):
            if name in obj.data_vars:
                return obj[name]
        raise DataError(
            f"expected a mask dataset (variable 'mask') or a run with '{LABEL_VAR}'; "
            f"found variables {sorted(map(str, obj.data_vars))}"
        )

    # -------------------------------------------------------------------- verbs
    def map(self, variable: str | None = None, *, mask: Any = None, **kwargs: Any) -> Any:  # noqa: A003
        """A field on a map with a TC/AR mask over it: :func:`climviz.viz.map`.

        Parameters
        ----------
        variable : str, optional
            Field of a Dataset to draw (default ``TMQ``); ignored for a DataArray.
        mask : DataArray, Dataset or str, optional
            The class mask to overlay (e.g. ``masks["mask"]`` or ``"LABELS"``).
        **kwargs
            Passed to :func:`climviz.viz.map` (``time``, ``projection``, ``frame_width``...).

        Examples
        --------
        >>> run = cv.synthetic_run(4, shape=(32, 48))
        >>> m = run.climviz.map("PSL", mask="LABELS", time=0)  # = cv.viz.map(run, "LABELS", variable="PSL", time=0)
        >>> m.Image.I.vdims[0].label
        'sea level pressure (hPa)'
        """
        from climviz.viz import map as draw

        if isinstance(self._obj, xr.Dataset):
            kwargs.setdefault("variable", variable)
        return draw(self._obj, mask, **kwargs)

    def predict(self, checkpoint: str | os.PathLike, **kwargs: Any) -> xr.Dataset:
        """Masks from a trained checkpoint: :func:`climviz.predict` on this run.

        Parameters
        ----------
        checkpoint : str or path
            A checkpoint file written by :func:`climviz.train`.
        **kwargs
            Passed to :func:`climviz.predict` (``out``, ``batch_size``, ``progress``...).

        Returns
        -------
        xr.Dataset
            The mask dataset (``mask``: 0 background, 1 TC, 2 AR).
        """
        from climviz.inference.predict import predict

        return predict(checkpoint, self._dataset("predict"), **kwargs)

    def label(self, **kwargs: Any) -> Any:
        """Heuristic TC / AR masks of this run: :func:`climviz.labels.label_run`.

        Parameters
        ----------
        **kwargs
            Passed to :func:`climviz.labels.label_run` (``tc``, ``ar`` detector settings...).

        Examples
        --------
        >>> run = cv.synthetic_run(4, shape=(32, 48))
        >>> masks = run.climviz.label(tc={"stitch": False})  # 9 h: too short to stitch TC tracks
        >>> masks["mask"].dims
        ('time', 'lat', 'lon')
        """
        from climviz.labels import label_run

        return label_run(self._dataset("label"), **kwargs)

    def events(self, fields: Any = None, **kwargs: Any) -> Any:
        """The event table of this mask: :func:`climviz.events.label_table`.

        Returns only the table; pass ``return_labels=True`` to get
        ``(labels, table)`` as :func:`~climviz.events.label_table` returns them.
        The mask is the object itself (a DataArray), else its ``mask`` or ``LABELS``.

        Parameters
        ----------
        fields : Dataset, DataArray or dict, optional
            Fields summarized inside each event (e.g. ``run[["PSL", "TMQ"]]``).
        **kwargs
            Passed to :func:`climviz.events.label_table`.

        Examples
        --------
        >>> run = cv.synthetic_run(4, shape=(32, 48))
        >>> lab, tab = run.climviz.events(fields=run[["PSL"]], return_labels=True)
        >>> {"time", "event", "class", "area_km2", "PSL_min"} <= set(tab.columns), lab.dims
        (True, ('time', 'lat', 'lon'))
        """
        from climviz.events import label_table

        want_labels = bool(kwargs.pop("return_labels", False))
        labels, tab = label_table(self._mask(), fields, return_labels=want_labels, **kwargs)
        return (labels, tab) if want_labels else tab

    @renamed_kwargs(cls="classes")
    def frequency(self, classes: int | str | Sequence[int | str], **kwargs: Any) -> xr.DataArray:
        """Fraction of time steps each cell is in a class: :func:`climviz.events.frequency`.

        Parameters
        ----------
        classes : int, str or sequence of them
            ``1``, ``"tc"``, ``"TC"``, ``"tropical_cyclone"`` (or ``cv.data.TC``); ``2``,
            ``"ar"``... (``cls=`` is the old, deprecated spelling.)
        **kwargs
            Passed to :func:`climviz.events.frequency` (e.g. ``by="season"``).

        Examples
        --------
        >>> run = cv.synthetic_run(4, shape=(32, 48))
        >>> run.climviz.frequency(cv.data.AR).name
        'frequency_atmospheric_river'
        """
        from climviz.events import frequency

        return frequency(self._mask(), classes, **kwargs)  # one class or several, numbers or names

    def _dataset(self, verb: str) -> xr.Dataset:
        if not isinstance(self._obj, xr.Dataset):
            raise DataError(f".climviz.{verb}() needs a run (xr.Dataset); found a DataArray "
                            f"{self._obj.name!r}")
        return self._obj


def register() -> None:
    """Register ``.climviz`` on Dataset and DataArray (idempotent; ``import climviz`` calls it)."""
    for cls, register_accessor in ((xr.Dataset, xr.register_dataset_accessor),
                                   (xr.DataArray, xr.register_dataarray_accessor)):
        if getattr(cls, "climviz", None) is not ClimvizAccessor:
            register_accessor("climviz")(ClimvizAccessor)
