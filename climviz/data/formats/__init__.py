"""Readers of climate-data formats and product conventions, one module per format (like xarray's backends).

* :mod:`~climviz.data.formats.netcdf` -- ClimateNet / CESM netCDF (netCDF4 through h5py, fast;
  netCDF3 and unusual files through xarray);
* :mod:`~climviz.data.formats.deepcam` -- DeepCAM HDF5 (channel order from the file or the user,
  checked against plausible ranges);
* :mod:`~climviz.data.formats.zarr` -- Zarr stores (missing chunks are an error);
* :mod:`~climviz.data.formats.grib` -- GRIB 1/2 through ecCodes (multi-field messages included);
* :mod:`~climviz.data.formats.products` -- finding climviz channels in ERA5, CMIP6, CESM/CAM and
  GFS variables (CF standard names first, then product names; pressure levels; unit conversion;
  accumulated precipitation to a rate; absolute to relative vorticity);
* :mod:`~climviz.data.formats._base` -- shared machinery (lazy per-step reads, value checks).

:func:`climviz.data.io.open_run` is the entry point for all of them.
"""
