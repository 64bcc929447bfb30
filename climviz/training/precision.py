"""Mixed precision: choose autocast dtype and loss scaling, skip and count overflow steps.

``precision="auto"`` resolves to

- CUDA: fp16 autocast with a dynamic-loss-scaling ``GradScaler`` (the paper's FP16
  tensor-core path); ``"bf16"`` may be asked for explicitly on GPUs that support it.
- CPU: bf16 autocast if the CPU has native bf16 instructions (``avx512_bf16`` or
  ``amx_bf16`` in ``/proc/cpuinfo``), otherwise fp32: emulated bf16 is far slower
  than fp32.

Whatever the precision, :meth:`MixedPrecision.step` never applies a step whose
gradients contain inf/NaN: with a scaler the scaler skips it (and lowers the scale),
without one the step is skipped explicitly. Skipped steps are counted.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from climviz.errors import ConfigError

__all__ = ["MixedPrecision", "PrecisionPlan", "cpu_has_native_bf16", "resolve_precision"]

_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """True if the CPU flags include ``avx512_bf16`` or ``amx_bf16`` (Linux only)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            return bool(flags & {"avx512_bf16", "amx_bf16"})
    return False


@dataclass(frozen=True)
class PrecisionPlan:
    """Resolved precision.

    ``name`` (fp32/bf16/fp16), autocast ``dtype`` (None = off), ``use_scaler`` (dynamic
    loss scaling) and the ``device_type`` autocast runs on.
    """

    name: str
    dtype: torch.dtype | None
    use_scaler: bool
    device_type: str


def resolve_precision(precision: str, device: torch.device | str) -> PrecisionPlan:
    """Resolve ``auto``/``fp32``/``bf16``/``fp16`` for ``device``.

    Raises ConfigError when the device cannot run the requested precision
    (bf16 on a GPU without bf16 support).

    ``auto`` is fp16 (with loss scaling) on CUDA, bf16 on a CPU with native bf16
    instructions, fp32 otherwise.

    Examples
    --------
    >>> cv.training.resolve_precision("fp32", "cpu")
    PrecisionPlan(name='fp32', dtype=None, use_scaler=False, device_type='cpu')
    >>> cv.training.resolve_precision("bf16", "cpu")
    PrecisionPlan(name='bf16', dtype=torch.bfloat16, use_scaler=False, device_type='cpu')
    >>> cv.training.resolve_precision("fp16", "cpu").use_scaler  # fp16 always scales the loss
    True
    >>> cv.training.resolve_precision("fp8", "cpu")
    Traceback (most recent call last):
    ...
    climviz.errors.ConfigError: TrainConfig.precision: expected one of ['auto', 'fp32', 'bf16', 'fp16'], found 'fp8'
    """
    device = torch.device(device)
    dtype_name = precision.lower()
    if dtype_name not in ("auto", *_DTYPES):
        raise ConfigError(f"TrainConfig.precision: expected one of ['auto', 'fp32', 'bf16', "
                          f"'fp16'], found {precision!r}")
    if dtype_name == "auto":
        if device.type == "cuda":
            dtype_name = "fp16"
        elif device.type == "cpu":
            dtype_name = "bf16" if cpu_has_native_bf16() else "fp32"
        else:
            dtype_name = "fp32"
    if dtype_name == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"TrainConfig.precision: 'bf16' is not supported by "
                          f"{torch.cuda.get_device_name(device)}; use 'fp16' or 'auto'")
    return PrecisionPlan(name=dtype_name, dtype=_DTYPES[dtype_name],
                         use_scaler=dtype_name == "fp16", device_type=device.type)


class MixedPrecision:
    """Autocast + optional GradScaler + overflow-step accounting for one training process.

    Parameters
    ----------
    precision
        ``auto``, ``fp32``, ``bf16`` or ``fp16`` (see :func:`resolve_precision`).
    device
        Device the model runs on.
    use_scaler
        Force dynamic loss scaling on or off (default: on for fp16 only).
    init_scale, growth_interval
        GradScaler parameters.

    Attributes
    ----------
    skipped_steps
        Optimizer steps skipped because gradients were not finite.
    """

    def __init__(self, precision: str, device: torch.device | str, *, use_scaler: bool | None = None,
                 init_scale: float = 2.0 ** 16, growth_interval: int = 2000) -> None:
        self.device = torch.device(device)
        self.plan = resolve_precision(precision, self.device)
        scaler_on = self.plan.use_scaler if use_scaler is None else use_scaler
        self.scaler = (torch.amp.GradScaler(self.device.type, init_scale=init_scale,
                                            growth_interval=growth_interval)
                       if scaler_on else None)
        self.skipped_steps = 0

    @property
    def name(self) -> str:
        """The precision's name (``plan.name``)."""
        return self.plan.name

    def autocast(self) -> contextlib.AbstractContextManager:
        """Context manager for the forward pass (no-op for fp32)."""
        if self.plan.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.plan.device_type, dtype=self.plan.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        """``loss.backward()``, scaled when a scaler is active."""
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def step(self, optimizer: torch.optim.Optimizer, params: Iterable[torch.nn.Parameter] | None = None,
             clip_norm: float | None = None) -> bool:
        """Unscale, optionally clip, and step unless the gradients overflowed.

        Returns True if the step was applied, False if it was skipped (and counted).
        """
        if params is None:
            params = [p for g in optimizer.param_groups for p in g["params"]]
        params = [p for p in params if p.grad is not None]
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)
            if clip_norm is not None:
                torch.nn.utils.clip_grad_norm_(params, clip_norm)
            scale_before = self.scaler.get_scale()
            self.scaler.step(optimizer)
            self.scaler.update()
            applied = not (self.scaler.get_scale() < scale_before)
        else:
            if not params:
                optimizer.step()
                return True
            total = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
            finite = bool(torch.isfinite(total))  # a NaN or inf in any gradient makes the total one
            if finite:
                if clip_norm is not None:
                    torch.nn.utils.clip_grad_norm_(params, clip_norm)
                optimizer.step()
            applied = finite
        if not applied:
            self.skipped_steps += 1
        return applied

    def state_dict(self) -> dict[str, Any]:
        """Precision name, skipped-step count and the grad scaler's state (for checkpoints)."""
        return {"precision": self.plan.name, "skipped_steps": self.skipped_steps,
                "scaler": self.scaler.state_dict() if self.scaler is not None else None}

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        """Restore what :meth:`state_dict` saved (nothing for None or an empty dict)."""
        if not state:
            return
        self.skipped_steps = int(state.get("skipped_steps", 0))
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
