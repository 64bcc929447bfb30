"""Exceptions raised by climviz.

Every error climviz raises on purpose is a :class:`ClimvizError`. Errors about
bad input (files, variables, configuration values) also subclass
:class:`ValueError`, so ``except ValueError`` keeps working in user code.
"""

from __future__ import annotations

__all__ = [
    "ClimvizError",
    "DataError",
    "ConfigError",
    "CheckpointError",
    "FetchError",
    "ClusterError",
    "OutputError",
    "OutputExistsError",
]


class ClimvizError(Exception):
    """Base class of every climviz error."""


class DataError(ClimvizError, ValueError):
    """A climate run (file, variable, grid, time axis or values) is not what was expected.

    Messages name the file, the variable, what was expected and what was found.
    """


class ConfigError(ClimvizError, ValueError):
    """A configuration key is unknown or its value impossible; the message names the key."""


class CheckpointError(ClimvizError, ValueError):
    """A checkpoint is missing, corrupt, or does not match the model/channels asked for."""


class FetchError(ClimvizError, OSError):
    """Downloading a data file failed (network, truncated transfer, hash mismatch)."""


class ClusterError(ClimvizError, RuntimeError):
    """A Ray cluster could not be reached or started, or a Ray job failed."""


class OutputError(ClimvizError, OSError):
    """An output (predictions, reports, tables) cannot be written: bad path, unwritable directory."""


class OutputExistsError(OutputError, FileExistsError):
    """The output (or an unfinished job of another run) exists and is not overwritten."""
