"""Readers of climate-data formats and product conventions, in the manner of xarray's backends.

* :mod:`~climviz.data.formats.grib` -- GRIB 1/2 through ecCodes (multi-field messages included);
* :mod:`~climviz.data.formats.products` -- finding climviz channels in ERA5, CMIP6, CESM/CAM and
  GFS variables (CF standard names first, then product names; pressure levels; unit conversion;
  accumulated precipitation to a rate; absolute to relative vorticity).

ClimateNet/CESM netCDF, DeepCAM HDF5 and Zarr are read by :mod:`climviz.data.io` (fast h5py
path and xarray's backends); :func:`climviz.data.io.open_run` is the entry point for all.
"""
