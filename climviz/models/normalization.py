"""Input normalization as a frozen first operation of the network.

Training loaders ship raw float32 fields (in each channel's canonical units, NaN where
values are masked); the network's :class:`Normalize` module turns them into
``(x - mean) / std`` on the training device, and replaces non-finite results (masked
inputs) by ``fill`` (0 = the channel mean). Its statistics are buffers, not
parameters: the optimizer never sees them, they follow ``.to(device)`` and they are
saved in the model's ``state_dict``, so a checkpoint's weights carry the
normalization they were trained with and prediction cannot apply another one.

The arithmetic is the loader's former float32 arithmetic, ``(x - mean32) * inv_std32``
with ``inv_std32 = float32(1 / std)``, so the logits equal those of the network fed
the loader's normalized tensors.

Checkpoints written before the normalization moved into the network hold the
statistics only as a :class:`~climviz.data.Normalizer` dictionary;
:func:`load_weights` rebuilds the module from it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from climviz.errors import CheckpointError, DataError

__all__ = ["Normalize", "PREFIX", "attach", "load_weights", "has_normalization"]

#: attribute of a :class:`~climviz.models.base.SegmentationNet` holding its Normalize;
#: its buffers appear in the state dict as ``input_norm.mean`` etc.
PREFIX = "input_norm"


class Normalize(nn.Module):
    """Frozen per-channel normalization ``(x - mean) * inv_std``, non-finite -> ``fill``.

    Parameters
    ----------
    mean
        Per-channel mean, in each channel's units, ``(C,)``.
    std
        Per-channel standard deviation (> 0), same units, ``(C,)``.
    fill
        Value given to results that are not finite (NaN inputs, i.e. masked values):
        in standard deviations from the mean, so 0 = the channel mean.
    channels
        Channel names (kept for messages and ``repr`` only; not saved).

    Notes
    -----
    Buffers (saved in ``state_dict``): ``mean`` and ``inv_std`` (float32 ``(C,)``;
    ``inv_std = float32(1 / std)`` computed in float64) and ``fill`` (float32 scalar).
    Inputs ``(..., C, H, W)`` of any floating dtype are computed in float32 or wider
    (integers become float32); the output has that dtype.

    Examples
    --------
    >>> import torch
    >>> from climviz.models.normalization import Normalize
    >>> norm = Normalize([280.0, 1.0e5], [10.0, 1000.0])
    >>> x = torch.tensor([[[[290.0]], [[float("nan")]]]])  # (N=1, C=2, 1, 1): K, Pa
    >>> norm(x).flatten().tolist()
    [1.0, 0.0]
    >>> sorted(norm.state_dict()), len(list(norm.parameters()))
    (['fill', 'inv_std', 'mean'], 0)
    """

    mean: torch.Tensor
    inv_std: torch.Tensor
    fill: torch.Tensor

    def __init__(self, mean: Any, std: Any, fill: float = 0.0, channels: Sequence[str] | None = None) -> None:
        super().__init__()
        m = np.asarray(mean, dtype=np.float64).reshape(-1)
        s = np.asarray(std, dtype=np.float64).reshape(-1)
        if m.shape != s.shape or m.size == 0:
            raise DataError(f"Normalize: mean and std: expected the same number (>= 1) of values, "
                            f"found {m.size} and {s.size}")
        if not (np.isfinite(m).all() and np.isfinite(s).all() and (s > 0).all()):
            raise DataError(f"Normalize: expected finite means and finite std > 0, found mean "
                            f"{m.tolist()} std {s.tolist()}")
        if not np.isfinite(fill):
            raise DataError(f"Normalize: fill: expected a finite number, found {fill!r}")
        self.channels = None if channels is None else tuple(str(c) for c in channels)
        if self.channels is not None and len(self.channels) != m.size:
            raise DataError(f"Normalize: {m.size} statistics for {len(self.channels)} channels "
                            f"{list(self.channels)}")
        self.register_buffer("mean", torch.from_numpy(m.astype(np.float32)))
        self.register_buffer("inv_std", torch.from_numpy((1.0 / s).astype(np.float32)))
        self.register_buffer("fill", torch.tensor(float(fill), dtype=torch.float32))

    @classmethod
    def from_normalizer(cls, normalizer: Any, channels: Sequence[str] | None = None,
                        fill: float = 0.0) -> Normalize:
        """The module for a :class:`~climviz.data.Normalizer` (or its ``to_dict()``).

        ``channels`` selects and orders the statistics (default: the normalizer's own).
        """
        from climviz.data.normalize import Normalizer

        if isinstance(normalizer, Mapping):  # only channels, mean and std are needed here
            missing = [k for k in ("channels", "mean", "std") if k not in normalizer]
            if missing:
                raise DataError(f"Normalize.from_normalizer: statistics lack key(s) {missing}; found "
                                f"keys {sorted(normalizer)}")
            names = [str(c) for c in normalizer["channels"]]
            try:
                mean = np.asarray(normalizer["mean"], dtype=np.float64).reshape(-1)
                std = np.asarray(normalizer["std"], dtype=np.float64).reshape(-1)
            except (TypeError, ValueError) as e:
                raise DataError(f"Normalize.from_normalizer: mean/std must be lists of numbers: {e}") from e
            if not (mean.size == std.size == len(names)):
                raise DataError(f"Normalize.from_normalizer: {mean.size} means and {std.size} stds for "
                                f"{len(names)} channels")
            if channels is not None:
                absent = [c for c in channels if c not in names]
                if absent:
                    raise DataError(f"Normalize.from_normalizer: channel(s) {absent} not in the "
                                    f"statistics' channels {names}")
                idx = [names.index(c) for c in channels]
                names, mean, std = [names[i] for i in idx], mean[idx], std[idx]
            return cls(mean, std, fill, channels=names)
        if not isinstance(normalizer, Normalizer):
            raise DataError(f"Normalize.from_normalizer: expected a Normalizer or its dict, found "
                            f"{type(normalizer).__name__}")
        if channels is not None:
            normalizer = normalizer.select(list(channels))
        return cls(normalizer.mean, normalizer.std, fill, channels=normalizer.channels)

    @property
    def num_channels(self) -> int:
        """Number of channels the statistics are for."""
        return int(self.mean.numel())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(x - mean) * inv_std`` along axis -3, non-finite results replaced by ``fill``."""
        c = self.num_channels
        if x.dim() < 3 or x.shape[-3] != c:
            raise DataError(f"Normalize: expected {c} channels along axis -3 (..., C, H, W), found "
                            f"input shape {tuple(x.shape)}")
        dt = torch.promote_types(x.dtype, torch.float32) if x.is_floating_point() else torch.float32
        shape = (c, 1, 1)
        y = (x.to(dt) - self.mean.to(dt).view(shape)) * self.inv_std.to(dt).view(shape)
        return torch.where(torch.isfinite(y), y, self.fill.to(dt))

    def extra_repr(self) -> str:  # noqa: D102
        names = "" if self.channels is None else f", channels={list(self.channels)[:4]}" + (
            "..." if len(self.channels) > 4 else "")
        return f"num_channels={self.num_channels}{names}"


def has_normalization(state: Mapping[str, Any]) -> bool:
    """True when a (cleaned) state dict carries an input normalization."""
    return f"{PREFIX}.mean" in state


def attach(net: nn.Module, normalizer: Any, channels: Sequence[str] | None = None,
           fill: float = 0.0) -> nn.Module:
    """Give ``net`` the input normalization of ``normalizer`` (None removes it); returns ``net``.

    ``normalizer`` is a :class:`~climviz.data.Normalizer`, its dict or a
    :class:`Normalize`; the module is moved to the device of ``net``'s parameters.
    """
    if normalizer is None:
        setattr(net, PREFIX, None)
        return net
    mod = normalizer if isinstance(normalizer, Normalize) else Normalize.from_normalizer(
        normalizer, channels, fill)
    p = next(net.parameters(), None)
    if p is not None and p.device.type != "meta":
        mod = mod.to(p.device)
    setattr(net, PREFIX, mod)
    return net


def load_weights(net: nn.Module, state: Mapping[str, Any], normalizer: Any = None,
                 channels: Sequence[str] | None = None, where: str = "checkpoint") -> nn.Module:
    """Load a (cleaned) checkpoint state dict into ``net``, input normalization included.

    A state dict with ``input_norm.*`` buffers (this climviz) gives ``net`` a
    :class:`Normalize` holding them. An older one without them is loaded as it is and
    the module is built from ``normalizer`` (the checkpoint's stored ``Normalizer``
    dict) for ``channels``; with neither, ``net`` gets no normalization.

    Raises
    ------
    CheckpointError
        Weights that do not fit ``net``, or unreadable normalization statistics
        (naming ``where``).
    """
    state = dict(state)
    if has_normalization(state):
        n = int(state[f"{PREFIX}.mean"].numel())
        attach(net, Normalize(np.zeros(n), np.ones(n)))  # the buffers are loaded below
    else:
        attach(net, None)
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"{where}: weights do not fit the network: {e}") from e
    if not has_normalization(state) and normalizer is not None:
        try:
            attach(net, Normalize.from_normalizer(normalizer, channels))
        except DataError as e:
            raise CheckpointError(f"{where}: normalization statistics unusable: {e}") from e
    return net
