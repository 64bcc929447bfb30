"""Common wrapper of the climviz segmentation networks: input checks, padding, cropping."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from climviz.errors import ConfigError, DataError
from climviz.models.layers import pad_to_multiple

__all__ = ["SegmentationNet", "MIN_SIZE", "check_options"]

#: smallest accepted height / width of an input grid (cells)
MIN_SIZE = 32


def check_options(network: str, config: Any, positive: tuple[str, ...] = ()) -> None:
    """Checks shared by the network configs: ``positive`` options >= 1, and the paddings.

    Parameters
    ----------
    network
        Registry name used in the messages (``"deeplabv3plus"``, ``"tiramisu"``).
    config
        The config dataclass; it has ``lon_padding`` and ``lat_padding``.
    positive
        Names of integer options that must be at least 1.

    Raises
    ------
    ConfigError
        Naming the network, the option, what it must be and what it is.
    """
    for key in positive:
        if int(getattr(config, key)) < 1:
            raise ConfigError(f"{network} option {key!r} must be >= 1, got {getattr(config, key)!r}")
    if config.lon_padding not in ("circular", "zero"):
        raise ConfigError(
            f"{network} option 'lon_padding' must be 'circular' or 'zero', got {config.lon_padding!r}"
        )
    if config.lat_padding not in ("reflect", "zero"):
        raise ConfigError(
            f"{network} option 'lat_padding' must be 'reflect' or 'zero', got {config.lat_padding!r}"
        )


class SegmentationNet(nn.Module):
    """Base class: ``(N, C, H, W)`` fields in, ``(N, num_classes, H, W)`` logits out.

    Subclasses implement :meth:`forward_padded` for inputs whose height and width are
    multiples of :attr:`multiple`. :meth:`forward` checks the input, pads it to such a
    multiple (circular in longitude, reflect or zero in latitude, following the
    ``lon_padding`` / ``lat_padding`` of the config) and crops the logits back.

    Attributes
    ----------
    name, preset
        Registry name and preset the network was built with (``None`` if built directly).
    config
        The dataclass holding the architecture options.
    in_channels, num_classes
        Input channels and output classes.
    multiple
        Total downsampling factor; padded inputs are multiples of it.
    """

    name: str | None = None
    preset: str | None = None

    def __init__(self, config: Any, in_channels: int, num_classes: int, multiple: int) -> None:
        super().__init__()
        self.config = config
        self.in_channels = int(in_channels)
        self.num_classes = int(num_classes)
        self.multiple = int(multiple)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """Logits for an input whose height and width are multiples of :attr:`multiple`."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes, H, W)`` for fields ``(N, in_channels, H, W)``."""
        if x.dim() != 4:
            raise DataError(
                f"{type(self).__name__} expects a 4-d input (N, C, H, W), got shape {tuple(x.shape)}"
            )
        n, c, h, w = x.shape
        if c != self.in_channels:
            raise DataError(
                f"{type(self).__name__} was built for {self.in_channels} input channels, "
                f"got {c} (input shape {tuple(x.shape)})"
            )
        if h < MIN_SIZE or w < MIN_SIZE:
            raise DataError(
                f"{type(self).__name__} needs a grid of at least {MIN_SIZE}x{MIN_SIZE} cells, "
                f"got {h}x{w}"
            )
        xp, (top, _, _, _) = pad_to_multiple(
            x,
            self.multiple,
            lat_padding=self.config.lat_padding,
            lon_padding=self.config.lon_padding,
        )
        y = self.forward_padded(xp)
        if y.shape[-2] != h or y.shape[-1] != w:
            y = y[..., top : top + h, :w]
        return y

    def build_kwargs(self) -> dict[str, Any]:
        """Arguments that rebuild this network with :func:`climviz.models.build`.

        ``{"name", "preset", "in_channels", "num_classes", "overrides"}`` where
        ``overrides`` holds the config fields that differ from the preset (JSON-able).
        """
        from climviz.models.registry import preset_config

        overrides: dict[str, Any] = {}
        if self.name is not None and self.preset is not None:
            base = preset_config(self.name, self.preset)
            for f in dataclasses.fields(self.config):
                v = getattr(self.config, f.name)
                if v != getattr(base, f.name):
                    overrides[f.name] = list(v) if isinstance(v, tuple) else v
        else:
            overrides = {
                k: (list(v) if isinstance(v, tuple) else v)
                for k, v in dataclasses.asdict(self.config).items()
            }
        return {
            "name": self.name,
            "preset": self.preset,
            "in_channels": self.in_channels,
            "num_classes": self.num_classes,
            "overrides": overrides,
        }

    def extra_repr(self) -> str:  # noqa: D102
        return (
            f"name={self.name}, preset={self.preset}, in_channels={self.in_channels}, "
            f"num_classes={self.num_classes}, multiple={self.multiple}"
        )
