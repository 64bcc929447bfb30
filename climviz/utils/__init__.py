"""Small helpers shared by the climviz subpackages."""

from climviz.utils.atomic import atomic_path, remove_stale_temps
from climviz.utils.lazy import lazy_exports
from climviz.utils.output import check_output_location, translate_write_errors

__all__ = ["atomic_path", "remove_stale_temps", "lazy_exports", "check_output_location",
           "translate_write_errors"]
