"""Small helpers shared by the climviz subpackages."""

from climviz.utils.atomic import atomic_path
from climviz.utils.lazy import lazy_exports

__all__ = ["atomic_path", "lazy_exports"]
