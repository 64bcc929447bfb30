"""Building blocks shared by the climviz networks: convolutions that wrap in longitude.

Climate fields live on a latitude-longitude grid laid out as ``(N, C, lat, lon)``.
The globe is periodic in longitude (the last dimension): the first and last columns
are neighbours. Every spatial convolution of the climviz networks therefore pads
the longitude axis *circularly* (wrap-around) and the latitude axis with zeros
(the poles are not neighbours of each other). Transposed convolutions are made
periodic in longitude the same way. The network as a whole pads its input to a
multiple of its output stride (circular in longitude, reflective in latitude)
and crops the logits back, see :func:`pad_to_multiple`.

With ``lon_padding="zero"`` the layers behave exactly like the plain
:class:`torch.nn.Conv2d` / :class:`torch.nn.ConvTranspose2d` with zero padding
(useful for limited-area grids that do not wrap).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from climviz.errors import ConfigError

__all__ = [
    "LonPadding",
    "LatPadding",
    "wrap_lon",
    "GeoConv2d",
    "GeoConvTranspose2d",
    "conv_bn_relu",
    "pad_to_multiple",
    "init_weights",
    "TFSameConvTranspose2d",
    "tf_same_max_pool",
]

LonPadding = Literal["circular", "zero"]
LatPadding = Literal["reflect", "zero"]


def _check_choice(key: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(f"model option {key!r} must be one of {choices}, got {value!r}")
    return value


def wrap_lon(x: torch.Tensor, left: int, right: int) -> torch.Tensor:
    """Pad the last (longitude) dimension of ``x`` periodically.

    Parameters
    ----------
    x
        Tensor ``(..., lon)``.
    left, right
        Number of columns to add on the west (start) and east (end) side. May exceed
        the width (the field is then repeated as often as needed).

    Returns
    -------
    torch.Tensor
        ``(..., left + lon + right)`` where column ``j`` holds the input column
        ``(j - left) mod lon``.
    """
    if left == 0 and right == 0:
        return x
    width = x.shape[-1]
    if left <= width and right <= width:
        parts = [x[..., width - left :]] if left else []
        parts.append(x)
        if right:
            parts.append(x[..., :right])
        return torch.cat(parts, dim=-1)
    index = torch.arange(-left, width + right, device=x.device) % width
    return x.index_select(-1, index)


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


class GeoConv2d(nn.Conv2d):
    """A :class:`torch.nn.Conv2d` with periodic padding in longitude.

    Constructed like ``nn.Conv2d`` (``padding`` is the symmetric "same"-style padding
    per axis). Latitude is zero-padded by the convolution itself; longitude is padded
    by wrapping columns around (``lon_padding="circular"``) or with zeros
    (``lon_padding="zero"``, identical to ``nn.Conv2d``).

    Parameters
    ----------
    lon_padding
        ``"circular"`` (default) or ``"zero"``.
    *args, **kwargs
        As for :class:`torch.nn.Conv2d` (``padding_mode`` must stay ``"zeros"``).
    """

    def __init__(self, *args, lon_padding: LonPadding = "circular", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lon_padding = _check_choice("lon_padding", lon_padding, ("circular", "zero"))
        if isinstance(self.padding, str):
            raise ConfigError("GeoConv2d needs integer padding, got a string padding mode")
        ph, pw = self.padding
        self._lon_pad = pw if lon_padding == "circular" else 0
        if self._lon_pad:
            # the convolution itself pads latitude only
            self.padding = (ph, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if self._lon_pad:
            x = wrap_lon(x, self._lon_pad, self._lon_pad)
        return self._conv_forward(x, self.weight, self.bias)

    def extra_repr(self) -> str:  # noqa: D102
        return super().extra_repr() + f", lon_padding={self.lon_padding}"


class GeoConvTranspose2d(nn.ConvTranspose2d):
    """A :class:`torch.nn.ConvTranspose2d` that is periodic in longitude.

    Learned upsampling for the decoders. Latitude behaves exactly like
    ``nn.ConvTranspose2d`` with the same arguments. With ``lon_padding="circular"``
    the output has ``stride * W`` columns: the transposed convolution is computed
    without longitude padding and the columns that fall off either edge are added
    back on the other side (output column ``(f - padding) mod (stride * W)`` for
    full-output column ``f``), so no work is done twice and the FLOP count equals
    the one of the plain layer. For ``kernel_size=3, stride=2, padding=1,
    output_padding=1`` the output is exactly twice the input in both directions.
    """

    def __init__(self, *args, lon_padding: LonPadding = "circular", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lon_padding = _check_choice("lon_padding", lon_padding, ("circular", "zero"))
        # nn.ConvTranspose2d accepts no string padding, so ``padding`` is a pair of ints here
        assert not isinstance(self.padding, str)
        self._lon_pad: int = self.padding[1]
        if lon_padding == "circular":
            self.padding = (self.padding[0], 0)
            self.output_padding = (self.output_padding[0], 0)

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:  # noqa: D102
        if self.lon_padding != "circular":
            return super().forward(x, output_size)
        assert not isinstance(self.padding, str)  # see __init__
        y = F.conv_transpose2d(
            x, self.weight, None, self.stride, self.padding, self.output_padding, self.groups, self.dilation
        )
        period = self.stride[1] * x.shape[-1]
        full = y.shape[-1]
        reps = -(-full // period)
        if reps > 1:
            y = F.pad(y, (0, reps * period - full))
            y = y.reshape(*y.shape[:-1], reps, period).sum(dim=-2)
        if self._lon_pad:
            y = torch.roll(y, -self._lon_pad, dims=-1)
        if self.bias is not None:
            y = y + self.bias.view(1, -1, 1, 1)
        return y

    def extra_repr(self) -> str:  # noqa: D102
        return super().extra_repr() + f", lon_padding={self.lon_padding}"


def conv_bn_relu(
    cin: int,
    cout: int,
    kernel_size: int = 3,
    *,
    stride: int = 1,
    dilation: int = 1,
    groups: int = 1,
    lon_padding: LonPadding = "circular",
    relu: bool = True,
) -> nn.Sequential:
    """``GeoConv2d`` ("same" padding, no bias) + ``BatchNorm2d`` (+ ``ReLU``)."""
    pad = dilation * (kernel_size - 1) // 2
    layers: list[nn.Module] = [
        GeoConv2d(
            cin,
            cout,
            kernel_size,
            stride=stride,
            padding=pad,
            dilation=dilation,
            groups=groups,
            bias=False,
            lon_padding=lon_padding,
        ),
        nn.BatchNorm2d(cout),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def pad_to_multiple(
    x: torch.Tensor,
    multiple: int,
    *,
    lat_padding: LatPadding = "reflect",
    lon_padding: LonPadding = "circular",
) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """Pad ``(N, C, lat, lon)`` so that lat and lon are multiples of ``multiple``.

    Latitude is padded symmetrically (reflective or zero), longitude on the east side
    only (wrapping around, or zero), so that the original grid sits at
    ``[top : top + H, 0 : W]`` of the result.

    Returns
    -------
    padded, (top, bottom, left, right)
        The padded tensor and the number of rows/columns added on each side.
    """
    h, w = x.shape[-2:]
    ph = (-h) % multiple
    pw = (-w) % multiple
    top, bottom = ph // 2, ph - ph // 2
    if ph:
        mode = "reflect" if lat_padding == "reflect" else "constant"
        if mode == "reflect" and max(top, bottom) >= h:
            mode = "constant"
        x = F.pad(x, (0, 0, top, bottom), mode=mode)
    if pw:
        x = wrap_lon(x, 0, pw) if lon_padding == "circular" else F.pad(x, (0, pw, 0, 0))
    return x, (top, bottom, 0, pw)


def init_weights(module: nn.Module) -> None:
    """Initialise weights as the references do.

    Convolutions and transposed convolutions: Kaiming (He) normal, fan-out, for ReLU
    (``N(0, 2 / (k*k*C_out))`` as in the DeepCAM reference and torchvision's ResNets);
    biases zero. BatchNorm: weight 1, bias 0. Linear layers: Kaiming uniform default.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.SyncBatchNorm, nn.GroupNorm)):
            if m.weight is not None:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


def _tf_same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """Padding (before, after) TensorFlow's ``padding="SAME"`` adds to one axis."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def tf_same_max_pool(x: torch.Tensor, kernel: int = 3, stride: int = 2, *,
                     lon_padding: LonPadding = "circular") -> torch.Tensor:
    """Max-pool with TensorFlow's ``"SAME"`` alignment (the root pool of slim's ResNet v2).

    TensorFlow pads an even-sized axis at the *end* only (window ``i`` covers input
    ``2i .. 2i+2`` for a 3x3 stride-2 pool), PyTorch's ``padding=1`` pads both sides
    (window ``i`` covers ``2i-1 .. 2i+1``). Padding is ``-inf`` (it never wins), except in
    longitude with ``lon_padding="circular"``, where the columns wrap around.

    Parameters
    ----------
    x
        ``(N, C, lat, lon)``.
    kernel, stride
        Pool window and stride (cells).
    lon_padding
        ``"circular"`` or ``"zero"`` (``"zero"`` = TensorFlow exactly).

    Returns
    -------
    torch.Tensor
        ``(N, C, ceil(lat / stride), ceil(lon / stride))``.
    """
    top, bottom = _tf_same_pads(x.shape[-2], kernel, stride)
    left, right = _tf_same_pads(x.shape[-1], kernel, stride)
    if lon_padding == "circular":
        x = wrap_lon(x, left, right)
        left = right = 0
    if top or bottom or left or right:
        x = F.pad(x, (left, right, top, bottom), value=float("-inf"))
    return F.max_pool2d(x, kernel, stride=stride)


class TFSameConvTranspose2d(GeoConvTranspose2d):
    """Transposed convolution with TensorFlow's ``padding="SAME"`` alignment.

    ``tf.layers.conv2d_transpose(strides=s, padding="same")`` maps ``n`` cells to ``s*n``
    and places the contribution of input cell ``i`` through kernel tap ``a`` at output
    ``s*i + a - p``, ``p = max(k - s, 0) // 2`` (0 for the 3x3 stride-2 layers of the
    SC18 networks); PyTorch's ``padding=1, output_padding=1`` shifts it by one cell. This
    layer computes the unpadded transposed convolution and crops (latitude, and longitude
    with ``lon_padding="zero"``) or folds the overhanging columns around the globe
    (``lon_padding="circular"``). Weights have PyTorch's layout ``(C_in, C_out, k, k)``;
    a TensorFlow kernel ``(k, k, C_out, C_in)`` maps to it by ``permute(3, 2, 0, 1)``.
    """

    def __init__(self, cin: int, cout: int, kernel_size: int = 3, stride: int = 2, *, bias: bool = True,
                 lon_padding: LonPadding = "circular") -> None:
        super().__init__(cin, cout, kernel_size, stride=stride, padding=0, output_padding=0, bias=bias,
                         lon_padding=lon_padding)
        self._tf_begin = max(kernel_size - stride, 0) // 2

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:  # noqa: D102
        h, w = x.shape[-2:]
        s, b = self.stride[0], self._tf_begin
        y = super().forward(x)
        if self.lon_padding == "circular":
            if b:
                y = torch.roll(y, -b, dims=-1)
            return y[..., b : b + s * h, :]
        return y[..., b : b + s * h, b : b + s * w]
