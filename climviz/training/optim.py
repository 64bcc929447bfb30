"""Optimizers for large-batch training (LAMB, LARC) and the warm-up + decay schedule.

- :class:`LAMB` (You et al., 2019): Adam moments, decoupled weight decay, and a
  per-tensor trust ratio ``||w|| / ||update||`` scaling each tensor's step.
- :class:`LARC` (NVIDIA's layer-wise adaptive rate control, as used by Kurth et al.
  2018 for DeepCAM): wraps any optimizer (SGD with momentum here) and rescales each
  tensor's gradient by the local learning rate ``eta * ||w|| / (||g|| + wd * ||w||)``,
  clipped to the global rate (``clip=True``) or multiplied with it.
- :func:`build_scheduler`: linear warm-up, then cosine or step decay, per optimizer step.
- :func:`scale_lr` (in :mod:`climviz.training.config`): linear / sqrt rule for W workers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer

from climviz.errors import ConfigError
from climviz.training.config import TrainConfig, scale_lr

__all__ = [
    "LAMB",
    "LARC",
    "WarmupDecay",
    "build_optimizer",
    "build_scheduler",
    "param_groups",
    "scale_lr",
]


def _closure_loss(closure: Any) -> Any:
    """The loss of an optimizer ``step(closure)``: ``closure()`` with gradients enabled, or None."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


class LAMB(Optimizer):
    """Layer-wise Adaptive Moments optimizer for Batch training (LAMB).

    For each parameter tensor ``w`` with gradient ``g`` at step ``t``::

        m = b1 m + (1 - b1) g;      v = b2 v + (1 - b2) g²
        u = m / (1 - b1^t) / (sqrt(v / (1 - b2^t)) + eps) + weight_decay * w
        r = ||w|| / ||u||   (1 if either norm is 0)
        w = w - lr * r * u

    Parameters
    ----------
    params
        Parameters or parameter groups.
    lr, betas, eps, weight_decay
        As in Adam/AdamW (decoupled weight decay enters ``u``).
    max_trust
        Optional upper bound of the trust ratio ``r`` (None = unbounded).

    Examples
    --------
    First step on ``w = (3, 4)`` with gradient ``(1, 1)``: the bias-corrected ``u`` is
    ``(1, 1)`` (up to ``eps``), ``r = ||w|| / ||u|| = 5 / sqrt(2)``, so each weight
    moves by ``0.1 * 5 / sqrt(2)`` = 0.3536:

    >>> import torch
    >>> w = torch.nn.Parameter(torch.tensor([3.0, 4.0]))
    >>> opt = cv.training.LAMB([w], lr=0.1)
    >>> w.grad = torch.tensor([1.0, 1.0])
    >>> opt.step()
    >>> w.detach().numpy().round(4)
    array([2.6464, 3.6464], dtype=float32)
    """

    def __init__(self, params: Iterable, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-6, weight_decay: float = 0.0, max_trust: float | None = None) -> None:
        if lr <= 0 or eps < 0 or weight_decay < 0 or not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ConfigError(f"LAMB: invalid lr={lr}, betas={betas}, eps={eps}, "
                              f"weight_decay={weight_decay}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay, max_trust=max_trust))

    @torch.no_grad()
    def step(self, closure=None):
        """One LAMB update of every parameter that has a gradient; returns the closure's loss (or None)."""
        loss = _closure_loss(closure)
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if g.is_sparse:
                    raise RuntimeError("LAMB does not support sparse gradients")
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                t = float(state["step"])
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.mul_(b1).add_(g, alpha=1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                m_hat = m / (1 - b1 ** t)
                v_hat = v / (1 - b2 ** t)
                update = m_hat / (v_hat.sqrt() + group["eps"])
                if group["weight_decay"] != 0:
                    update.add_(p, alpha=group["weight_decay"])
                w_norm = torch.linalg.vector_norm(p.float())
                u_norm = torch.linalg.vector_norm(update.float())
                trust = torch.where((w_norm > 0) & (u_norm > 0), w_norm / u_norm,
                                    torch.ones_like(w_norm))
                if group["max_trust"] is not None:
                    trust = trust.clamp(max=group["max_trust"])
                state["trust_ratio"] = trust.detach()
                p.add_(update * trust.to(update.dtype), alpha=-group["lr"])
        return loss


class LARC(Optimizer):
    """Layer-wise Adaptive Rate Control wrapping another optimizer (usually SGD).

    Before the wrapped optimizer steps, each parameter tensor's gradient becomes::

        local_lr = eta * ||w|| / (||g|| + weight_decay * ||w|| + eps)
        factor   = min(local_lr / lr, 1)   if clip   else   local_lr
        g        = (g + weight_decay * w) * factor

    (unchanged when ``||w||`` or ``||g||`` is 0); the wrapped optimizer's own weight
    decay is switched off during its step because LARC already applied it. The
    wrapper shares ``param_groups`` and ``state`` with the wrapped optimizer, so LR
    schedulers and gradient scalers work on it directly.

    Parameters
    ----------
    optimizer
        The optimizer to wrap.
    trust_coefficient
        ``eta``.
    clip
        Clip mode (local LR never exceeds the global one) vs scale mode.
    eps
        Added to the denominator.
    """

    def __init__(self, optimizer: Optimizer, trust_coefficient: float = 1e-3, clip: bool = True,
                 eps: float = 1e-8) -> None:
        self.optim = optimizer
        self.trust_coefficient = float(trust_coefficient)
        self.clip = bool(clip)
        self.eps = float(eps)
        super().__init__(optimizer.param_groups, optimizer.defaults)
        self._share()

    def _share(self) -> None:
        self.param_groups = self.optim.param_groups
        self.state = self.optim.state

    def __repr__(self) -> str:
        return f"LARC(trust_coefficient={self.trust_coefficient}, clip={self.clip}, {self.optim!r})"

    def state_dict(self) -> dict[str, Any]:
        """The wrapped optimizer's state (LARC itself holds none)."""
        return self.optim.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load the wrapped optimizer's state and share its groups and state again."""
        self.optim.load_state_dict(state_dict)
        self._share()

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Zero (or drop) the gradients, as the wrapped optimizer does."""
        self.optim.zero_grad(set_to_none=set_to_none)

    @torch.no_grad()
    def step(self, closure=None):
        """Scale each gradient by its layer's trust ratio, then step the wrapped optimizer."""
        loss = _closure_loss(closure)
        saved_wd = []
        for group in self.optim.param_groups:
            wd = group.get("weight_decay", 0.0)
            saved_wd.append(wd)
            group["weight_decay"] = 0.0
            for p in group["params"]:
                if p.grad is None:
                    continue
                w_norm = torch.linalg.vector_norm(p.float())
                g_norm = torch.linalg.vector_norm(p.grad.float())
                ok = (w_norm > 0) & (g_norm > 0)
                local = self.trust_coefficient * w_norm / (g_norm + wd * w_norm + self.eps)
                if self.clip:
                    local = torch.clamp(local / group["lr"], max=1.0)
                factor = torch.where(ok, local, torch.ones_like(local)).to(p.grad.dtype)
                wd_eff = torch.where(ok, torch.full_like(local, wd), torch.zeros_like(local))
                p.grad.add_(p * wd_eff.to(p.dtype)).mul_(factor)
        try:
            self.optim.step()
        finally:
            for group, wd in zip(self.optim.param_groups, saved_wd):
                group["weight_decay"] = wd
        return loss


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two groups: weights of conv/linear layers with decay, biases and norm scales without."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for _, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return [g for g in groups if g["params"]]


def build_optimizer(model: nn.Module, cfg: TrainConfig, world_size: int = 1) -> Optimizer:
    """The optimizer named by ``cfg.optimizer`` at the LR scaled for ``world_size`` workers.

    Parameters are split into two groups: weights with ``cfg.weight_decay`` and
    biases/normalization parameters without weight decay.

    Examples
    --------
    AdamW at ``lr = 1e-3`` for 4 workers with the linear rule: ``4e-3``:

    >>> cfg = cv.training.TrainConfig(model="deeplabv3plus", preset="tiny", optimizer="adamw", lr=1e-3)
    >>> net = cv.models.build("deeplabv3plus", "tiny", in_channels=2, seed=0)
    >>> opt = cv.training.build_optimizer(net, cfg, world_size=4)
    >>> type(opt).__name__, [g["lr"] for g in opt.param_groups]
    ('AdamW', [0.004, 0.004])
    >>> [g["weight_decay"] for g in opt.param_groups] == [cfg.weight_decay, 0.0]
    True
    """
    lr = scale_lr(cfg.lr, world_size, cfg.lr_scaling)
    groups = param_groups(model, cfg.weight_decay)
    # fused kernels (one kernel for all tensors) are ~5x faster than the per-tensor loop
    # for the many small tensors of a segmentation net, on CPU and CUDA
    fused = _fused_supported(model)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=cfg.betas, eps=cfg.eps, fused=fused or None)
    if cfg.optimizer == "lamb":
        return LAMB(groups, lr=lr, betas=cfg.betas, eps=cfg.eps)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, fused=fused or None)
    if cfg.optimizer == "larc":
        sgd = torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum)
        return LARC(sgd, trust_coefficient=cfg.larc_trust_coefficient, clip=cfg.larc_clip)
    raise ConfigError(f"TrainConfig.optimizer: unknown optimizer {cfg.optimizer!r}")


def _fused_supported(model: nn.Module) -> bool:
    params = [p for p in model.parameters() if p.requires_grad]
    return bool(params) and all(
        p.device.type in ("cpu", "cuda") and p.dtype in (torch.float32, torch.float16, torch.bfloat16)
        for p in params)


class WarmupDecay:
    """LR factor per optimizer step: linear warm-up, then constant/cosine/step decay.

    Picklable (a plain object), so ``LambdaLR.state_dict()`` stores it.

    ``factor(s)`` for step ``s`` (0-based), ``W`` warm-up steps, ``T`` total steps:
    - ``s < W``: ``start + (1 - start) * s / W``
    - cosine: ``min + (1 - min) * (1 + cos(pi * (s - W) / (T - W))) / 2``
    - step: ``gamma ** (number of milestones m with s >= m * steps_per_epoch)``
    """

    def __init__(self, steps_per_epoch: int, epochs: int, warmup_epochs: float = 0.0,
                 warmup_start_factor: float = 0.1, schedule: str = "cosine",
                 min_lr_factor: float = 0.0, milestones: Iterable[int] = (),
                 gamma: float = 0.1) -> None:
        if steps_per_epoch < 1:
            raise ConfigError(f"schedule: steps_per_epoch must be >= 1, found {steps_per_epoch} "
                              f"(is the training split smaller than one batch?)")
        self.steps_per_epoch = int(steps_per_epoch)
        self.total_steps = int(steps_per_epoch * epochs)
        self.warmup_steps = round(warmup_epochs * steps_per_epoch)
        self.start = float(warmup_start_factor)
        self.schedule = schedule
        self.min = float(min_lr_factor)
        self.milestones = [int(m) for m in milestones]
        self.gamma = float(gamma)

    def __call__(self, step: int) -> float:
        """The LR factor at optimizer step ``step`` (0-based); see the class docstring."""
        if step < self.warmup_steps:
            return self.start + (1.0 - self.start) * step / self.warmup_steps
        if self.schedule == "cosine":
            span = max(self.total_steps - self.warmup_steps, 1)
            frac = min((step - self.warmup_steps) / span, 1.0)
            return self.min + (1.0 - self.min) * 0.5 * (1.0 + math.cos(math.pi * frac))
        if self.schedule == "step":
            n = sum(step >= m * self.steps_per_epoch for m in self.milestones)
            return self.gamma ** n
        return 1.0


def build_scheduler(optimizer: Optimizer, cfg: TrainConfig, steps_per_epoch: int):
    """``LambdaLR`` stepping once per optimizer step with :class:`WarmupDecay`.

    Examples
    --------
    2 epochs of 4 steps, 1 warm-up epoch from 0.1 x the peak LR (4e-3), then a cosine
    to 0: ``4e-3 * (0.1 + 0.9 * s / 4)`` for ``s < 4``, then
    ``4e-3 * (1 + cos(pi * (s - 4) / 4)) / 2``:

    >>> cfg = cv.training.TrainConfig(model="deeplabv3plus", preset="tiny", lr=1e-3, epochs=2,
    ...                               warmup_epochs=1, warmup_start_factor=0.1, schedule="cosine")
    >>> net = cv.models.build("deeplabv3plus", "tiny", in_channels=2, seed=0)
    >>> opt = cv.training.build_optimizer(net, cfg, world_size=4)
    >>> sched = cv.training.build_scheduler(opt, cfg, steps_per_epoch=4)
    >>> lrs = []
    >>> for step in range(8):
    ...     lrs.append(round(sched.get_last_lr()[0], 6))
    ...     opt.step()
    ...     sched.step()
    >>> lrs
    [0.0004, 0.0013, 0.0022, 0.0031, 0.004, 0.003414, 0.002, 0.000586]
    """
    fn = WarmupDecay(steps_per_epoch, cfg.epochs, cfg.warmup_epochs, cfg.warmup_start_factor,
                     cfg.schedule, cfg.min_lr_factor, cfg.lr_milestones, cfg.lr_gamma)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, fn)
