"""Variables, units and label classes of ClimateNet / DeepCAM climate runs.

The 16 input channels are those of the ClimateNet data set and the DeepCAM
benchmark (CAM5 output at 0.25 degrees, 768 x 1152 grid), in this order.
"""

from __future__ import annotations

from typing import Final

#: The 16 input channels, in the canonical ClimateNet / DeepCAM order.
CHANNELS: Final[tuple[str, ...]] = (
    "TMQ", "U850", "V850", "UBOT", "VBOT", "QREFHT", "PS", "PSL",
    "T200", "T500", "PRECT", "TS", "TREFHT", "Z1000", "Z200", "ZBOT",
)

#: CF attributes of each channel: units, long_name and (where CF defines one) standard_name.
CHANNEL_ATTRS: Final[dict[str, dict[str, str]]] = {
    "TMQ": {"units": "kg m-2", "long_name": "total (vertically integrated) precipitable water",
            "standard_name": "atmosphere_mass_content_of_water_vapor"},
    "U850": {"units": "m s-1", "long_name": "zonal wind at 850 hPa", "standard_name": "eastward_wind"},
    "V850": {"units": "m s-1", "long_name": "meridional wind at 850 hPa", "standard_name": "northward_wind"},
    "UBOT": {"units": "m s-1", "long_name": "lowest model level zonal wind", "standard_name": "eastward_wind"},
    "VBOT": {"units": "m s-1", "long_name": "lowest model level meridional wind", "standard_name": "northward_wind"},
    "QREFHT": {"units": "kg kg-1", "long_name": "reference height specific humidity",
               "standard_name": "specific_humidity"},
    "PS": {"units": "Pa", "long_name": "surface pressure", "standard_name": "surface_air_pressure"},
    "PSL": {"units": "Pa", "long_name": "sea level pressure", "standard_name": "air_pressure_at_mean_sea_level"},
    "T200": {"units": "K", "long_name": "temperature at 200 hPa", "standard_name": "air_temperature"},
    "T500": {"units": "K", "long_name": "temperature at 500 hPa", "standard_name": "air_temperature"},
    "PRECT": {"units": "m s-1", "long_name": "total (convective and large-scale) precipitation rate",
              "standard_name": "lwe_precipitation_rate"},
    "TS": {"units": "K", "long_name": "surface temperature (radiative)", "standard_name": "surface_temperature"},
    "TREFHT": {"units": "K", "long_name": "reference height temperature", "standard_name": "air_temperature"},
    "Z1000": {"units": "m", "long_name": "geopotential height at 1000 hPa", "standard_name": "geopotential_height"},
    "Z200": {"units": "m", "long_name": "geopotential height at 200 hPa", "standard_name": "geopotential_height"},
    "ZBOT": {"units": "m", "long_name": "lowest model level height", "standard_name": "geopotential_height"},
}

#: Name of the label variable in ClimateNet files.
LABEL_VAR: Final[str] = "LABELS"

#: Label classes: value -> short name.
CLASSES: Final[dict[int, str]] = {0: "background", 1: "tropical_cyclone", 2: "atmospheric_river"}
#: Short class keys used in metric column names (``iou_tc``...).
CLASS_KEYS: Final[tuple[str, ...]] = ("background", "tc", "ar")
FLAG_VALUES: Final[tuple[int, ...]] = (0, 1, 2)
FLAG_MEANINGS: Final[str] = "background tropical_cyclone atmospheric_river"
BACKGROUND, TC, AR = 0, 1, 2
NUM_CLASSES: Final[int] = 3

#: Grid of the CAM5 0.25-degree runs used by ClimateNet / DeepCAM.
PAPER_GRID: Final[tuple[int, int]] = (768, 1152)


def label_attrs() -> dict[str, object]:
    """CF flag attributes for a label or mask variable (``LABELS`` or ``mask``).

    Examples
    --------
    >>> cv.data.label_attrs()
    {'long_name': 'extreme weather class', 'flag_values': [0, 1, 2], \
'flag_meanings': 'background tropical_cyclone atmospheric_river', 'valid_range': [0, 2]}
    """
    return {
        "long_name": "extreme weather class",
        "flag_values": list(FLAG_VALUES),
        "flag_meanings": FLAG_MEANINGS,
        "valid_range": [0, 2],
    }
