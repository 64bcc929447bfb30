"""Field checks shared by the network configs (:class:`DeepLabConfig`, :class:`TiramisuConfig`, :class:`CGNetConfig`).

The configs state their checks in field metadata and run them with
:func:`climviz._fields.validate`, as :class:`~climviz.training.TrainConfig` does; their
messages keep the networks' wording, ``"tiramisu option 'dropout' must be in [0, 1), got 1.5"``
(the network's registry name, the option, what it must be, the value found).
"""

from __future__ import annotations

from typing import ClassVar

from climviz._fields import OneOf, Rule

__all__ = ["AT_LEAST_ONE", "DROPOUT", "LAT_PADDING", "LON_PADDING", "NetworkOptions"]

#: Integer options that must be at least 1 (channel widths, block counts).
AT_LEAST_ONE = Rule(lambda v: int(v) >= 1, ">= 1")
#: A dropout probability.
DROPOUT = Rule(lambda v: 0.0 <= float(v) < 1.0, "in [0, 1)")
#: ``lon_padding``: the globe wraps (``"circular"``) or not.
LON_PADDING = OneOf(("circular", "zero"))
#: ``lat_padding`` of the rows added up to a multiple of the stride.
LAT_PADDING = OneOf(("reflect", "zero"))


class NetworkOptions:
    """Mixin of the network configs.

    A failed check reads ``"<network> option '<name>' must be <expected>, got <value>"``.
    """

    _network: ClassVar[str] = "network"

    def _field_message(self, name: str, expected: str) -> str:
        return f"{self._network} option {name!r} must be {expected}, got {getattr(self, name)!r}"
