"""FLOP counts of networks and the measured matmul rate used as the performance baseline.

Conventions: one multiply-add is 2 FLOPs. Only the arithmetic of convolutions,
transposed convolutions and matrix products is counted (what
:class:`torch.utils.flop_counter.FlopCounterMode` counts); normalisation,
activations, pooling and concatenations are memory-bound and left out, as in the
FLOP figures of Kurth et al. (SC18) and MLPerf.
"""

from __future__ import annotations

import copy
import time
from typing import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count

from climviz.errors import ConfigError

__all__ = ["count_flops", "train_flops_per_sample", "matmul_peak_flops"]


def _conv_backward_flop(
    grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation, transposed,
    _output_padding, _groups, output_mask, out_shape=None, **kwargs
) -> int:
    """FLOPs of ``aten.convolution_backward``: one forward-sized convolution per gradient.

    The gradient with respect to the input and the one with respect to the weight each
    cost as much as the forward convolution (``conv_flop_count`` with the weight shape
    ``(C_out, C_in / groups, k, k)``, correct for grouped / depthwise convolutions).
    torch's own formula (2.13) multiplies the grouped case by ``groups`` again.
    """
    fwd = conv_flop_count(list(x_shape), list(w_shape), list(grad_out_shape), transposed=bool(transposed))
    return fwd * (int(bool(output_mask[0])) + int(bool(output_mask[1])))


def _counter() -> FlopCounterMode:
    return FlopCounterMode(
        display=False, custom_mapping={torch.ops.aten.convolution_backward: _conv_backward_flop}
    )


def _meta_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with all parameters and buffers on the meta device (no memory)."""
    return copy.deepcopy(model).to("meta")


def _check_shape(input_shape: Sequence[int], ndim: int, what: str) -> tuple[int, ...]:
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != ndim or min(shape) < 1:
        raise ConfigError(f"{what} must be {ndim} positive integers, got {tuple(input_shape)!r}")
    return shape


def count_flops(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Forward FLOPs of ``model`` for one batch of shape ``input_shape``.

    The count is taken by :class:`torch.utils.flop_counter.FlopCounterMode` on a
    copy of the model on PyTorch's ``meta`` device: shapes propagate, nothing is
    computed, so even the paper presets at 768x1152 take well under a second.

    Parameters
    ----------
    model
        Any module taking one tensor.
    input_shape
        ``(N, C, H, W)``.

    Returns
    -------
    int
        FLOPs of one forward pass over the whole batch (1 multiply-add = 2 FLOPs).

    Examples
    --------
    >>> net = cv.models.build("deeplabv3plus", "tiny")
    >>> cv.models.count_flops(net, (1, 16, 32, 48))
    22294528
    >>> cv.models.count_flops(net, (4, 16, 32, 48)) == 4 * 22294528  # linear in the batch
    True

    ClimateNet's CGNet on the full 768 x 1152 grid (shapes only, nothing is computed):

    >>> round(cv.models.count_flops(cv.models.build("cgnet", "paper"), (1, 16, 768, 1152)) / 1e9, 1)
    25.6
    """
    shape = _check_shape(input_shape, 4, "input_shape")
    meta = _meta_copy(model).eval()
    x = torch.empty(shape, device="meta")
    counter = _counter()
    with torch.no_grad(), counter:
        meta(x)
    return int(counter.get_total_flops())


def train_flops_per_sample(model: nn.Module, sample_shape: Sequence[int], *, method: str = "count") -> float:
    """FLOPs of one training step (forward + backward) per sample of shape ``(C, H, W)``.

    Parameters
    ----------
    model
        The network.
    sample_shape
        ``(C, H, W)`` of one sample.
    method
        ``"count"`` (default): count forward and backward with
        :class:`~torch.utils.flop_counter.FlopCounterMode` (the backward pass of the
        first layer skips the gradient of the input, so this is a little under 3x the
        forward). ``"3x"``: the usual estimate, 3 times the forward FLOPs.

    Returns
    -------
    float
        FLOPs per sample of a forward + backward pass (the optimizer update is not counted).
        With activation checkpointing the recomputed forward is counted as well (e.g.
        DeepLabv3+ ``paper``: 12.99 TF, 16.07 TF with ``activation_checkpointing=True``).

    Examples
    --------
    ClimateNet's CGNet on one 768 x 1152 sample: forward 25.6 GF (:func:`count_flops`),
    a training step a little under 3 times that:

    >>> net = cv.models.build("cgnet", "paper")
    >>> round(cv.models.train_flops_per_sample(net, (16, 768, 1152)) / 1e9, 1)
    74.8
    >>> round(cv.models.train_flops_per_sample(net, (16, 768, 1152), method="3x") / 1e9, 1)
    76.8
    """
    c, h, w = _check_shape(sample_shape, 3, "sample_shape")
    if method == "3x":
        return 3.0 * count_flops(model, (1, c, h, w))
    if method != "count":
        raise ConfigError(f"method must be 'count' or '3x', got {method!r}")
    meta = _meta_copy(model).train()
    for p in meta.parameters():
        p.requires_grad_(True)
    x = torch.empty((1, c, h, w), device="meta")
    counter = _counter()
    with counter:
        out = meta(x)
        out.sum().backward()
    return float(counter.get_total_flops())


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak_flops(
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    n: int = 2048,
    *,
    min_time: float = 0.5,
    repeats: int = 3,
) -> float:
    """Measured FLOP/s of a square ``n x n`` matrix product: the baseline of all benchmarks.

    Runs ``torch.mm`` on random ``n x n`` matrices of ``dtype`` on ``device`` (one warm-up,
    then ``repeats`` timed rounds of at least ``min_time`` seconds each) and returns the
    best round's rate, ``2 n^3`` FLOPs per product. It uses the threads torch is set to
    (``torch.get_num_threads()``).

    Parameters
    ----------
    dtype
        Element type (``torch.float32``; ``torch.float16`` / ``bfloat16`` on GPUs).
    device
        ``"cpu"`` or ``"cuda"`` / ``"cuda:N"``.
    n
        Matrix size.
    min_time
        Minimum duration of one timed round, seconds.
    repeats
        Number of timed rounds; the fastest counts.

    Returns
    -------
    float
        FLOP/s.
    """
    dev = torch.device(device)
    gen = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(device=dev, dtype=dtype)
    b = torch.randn(n, n, generator=gen).to(device=dev, dtype=dtype)
    c = torch.empty(n, n, device=dev, dtype=dtype)
    torch.mm(a, b, out=c)
    _sync(dev)
    flop = 2.0 * n**3
    best = 0.0
    for _ in range(max(1, repeats)):
        count = 0
        _sync(dev)
        t0 = time.perf_counter()
        while True:
            torch.mm(a, b, out=c)
            count += 1
            if dev.type == "cuda" and count % 10:
                continue
            _sync(dev)
            elapsed = time.perf_counter() - t0
            if elapsed >= min_time:
                break
        best = max(best, flop * count / elapsed)
    return best
