"""Small helpers shared by the climviz subpackages."""

from climviz.utils.atomic import atomic_path

__all__ = ["atomic_path"]
