"""LAMB and LARC trust ratios and the warm-up + decay schedule, by hand."""

from __future__ import annotations

import math

import pytest
import torch

from climviz.training.config import TrainConfig
from climviz.training.optim import (LAMB, LARC, WarmupDecay, build_optimizer, build_scheduler)


def _param(values, grad):
    p = torch.nn.Parameter(torch.tensor(values))
    p.grad = torch.tensor(grad)
    return p


def test_lamb_first_step_trust_ratio_by_hand():
    # w = (3, 4), ||w|| = 5; g = (0.6, 0.8). After one step the bias-corrected Adam
    # direction is m/sqrt(v) = g/|g| = (1, 1) (eps = 0).
    p = _param([3.0, 4.0], [0.6, 0.8])
    opt = LAMB([p], lr=0.01, eps=0.0, weight_decay=0.0)
    opt.step()
    ratio = 5 / math.sqrt(2)
    assert float(opt.state[p]["trust_ratio"]) == pytest.approx(ratio, rel=1e-6)
    torch.testing.assert_close(p.detach(), torch.tensor([3.0, 4.0]) - 0.01 * ratio)


def test_lamb_with_weight_decay_by_hand():
    # u = (1, 1) + 0.1 * (3, 4) = (1.3, 1.4); r = 5 / ||u|| = 5 / sqrt(3.65)
    p = _param([3.0, 4.0], [0.6, 0.8])
    opt = LAMB([p], lr=0.01, eps=0.0, weight_decay=0.1)
    opt.step()
    r = 5 / math.sqrt(1.3 ** 2 + 1.4 ** 2)
    torch.testing.assert_close(p.detach(), torch.tensor([3.0 - 0.01 * r * 1.3, 4.0 - 0.01 * r * 1.4]))


def test_larc_clip_mode_by_hand():
    # ||w|| = 5, ||g|| = 1, eta = 0.001: local lr = 0.005; clip: min(0.005 / 0.1, 1) = 0.05
    p = _param([3.0, 4.0], [0.6, 0.8])
    opt = LARC(torch.optim.SGD([p], lr=0.1), trust_coefficient=0.001, clip=True)
    opt.step()
    torch.testing.assert_close(p.detach(), torch.tensor([3.0 - 0.1 * 0.05 * 0.6, 4.0 - 0.1 * 0.05 * 0.8]))


def test_larc_clip_never_exceeds_the_global_rate():
    # tiny gradient: local lr = 0.001 * 5 / 1e-4 = 50 > lr, so the factor clips at 1 (plain SGD)
    p = _param([3.0, 4.0], [6e-5, 8e-5])
    LARC(torch.optim.SGD([p], lr=0.1), trust_coefficient=0.001, clip=True).step()
    torch.testing.assert_close(p.detach(), torch.tensor([3.0 - 0.1 * 6e-5, 4.0 - 0.1 * 8e-5]))


def test_larc_scale_mode_with_weight_decay_by_hand():
    # local = eta ||w|| / (||g|| + wd ||w||) = 0.02 * 5 / (1 + 0.1 * 5) = 1/15
    # g' = (g + wd w) * local; SGD: w -= lr * g'
    p = _param([3.0, 4.0], [0.6, 0.8])
    sgd = torch.optim.SGD([p], lr=0.5, weight_decay=0.1)
    opt = LARC(sgd, trust_coefficient=0.02, clip=False)
    opt.step()
    local = 0.02 * 5 / 1.5
    g = torch.tensor([0.6 + 0.3, 0.8 + 0.4]) * local
    torch.testing.assert_close(p.detach(), torch.tensor([3.0, 4.0]) - 0.5 * g)
    assert sgd.param_groups[0]["weight_decay"] == 0.1   # restored after the step


def test_larc_works_with_a_scheduler_and_state_dict():
    p = _param([1.0, 1.0], [0.1, 0.1])
    opt = LARC(torch.optim.SGD([p], lr=1.0, momentum=0.9))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 ** s)
    opt.step()
    sched.step()
    assert opt.optim.param_groups[0]["lr"] == pytest.approx(0.5)
    sd = opt.state_dict()
    p2 = _param([1.0, 1.0], [0.1, 0.1])
    opt2 = LARC(torch.optim.SGD([p2], lr=1.0, momentum=0.9))
    opt2.load_state_dict(sd)
    assert opt2.param_groups is opt2.optim.param_groups
    assert opt2.param_groups[0]["lr"] == pytest.approx(0.5)


def test_step_with_a_closure_computes_gradients_and_returns_the_loss():
    # loss = ||w||^2 / 2 = 12.5 at w = (3, 4); its gradient is w itself (||g|| = 5).
    def closure(p, opt):
        def f():
            opt.zero_grad()
            loss = 0.5 * (p ** 2).sum()
            loss.backward()  # needs gradients although step() runs under no_grad
            return loss
        return f

    p = torch.nn.Parameter(torch.tensor([3.0, 4.0]))
    lamb = LAMB([p], lr=0.01, eps=0.0)
    assert lamb.step(closure(p, lamb)).item() == pytest.approx(12.5)
    # Adam direction g/|g| elementwise = (1, 1); trust ratio ||w|| / ||(1, 1)|| = 5 / sqrt(2)
    torch.testing.assert_close(p.detach(), torch.tensor([3.0, 4.0]) - 0.01 * 5 / math.sqrt(2))

    q = torch.nn.Parameter(torch.tensor([3.0, 4.0]))
    larc = LARC(torch.optim.SGD([q], lr=0.1), trust_coefficient=0.001, clip=True)
    assert larc.step(closure(q, larc)).item() == pytest.approx(12.5)
    # local lr = 0.001 * 5 / 5 = 0.001; clip factor min(0.001 / 0.1, 1) = 0.01; w -= 0.1 * 0.01 * g
    torch.testing.assert_close(q.detach(), torch.tensor([3.0, 4.0]) * (1 - 0.001))
    assert larc.step() is None


def test_warmup_then_cosine_by_hand():
    f = WarmupDecay(steps_per_epoch=10, epochs=5, warmup_epochs=1, warmup_start_factor=0.0,
                    schedule="cosine", min_lr_factor=0.0)
    assert f(0) == 0.0 and f(5) == pytest.approx(0.5)
    assert f(10) == pytest.approx(1.0)
    assert f(30) == pytest.approx(0.5)             # halfway through the 40 decay steps
    assert f(50) == pytest.approx(0.0, abs=1e-12)


def test_step_schedule_by_hand():
    f = WarmupDecay(steps_per_epoch=4, epochs=6, schedule="step", milestones=[2, 4], gamma=0.1)
    assert [f(s) for s in (0, 7, 8, 15, 16)] == pytest.approx([1, 1, 0.1, 0.1, 0.01])


@pytest.mark.parametrize("name, cls", [("adamw", torch.optim.AdamW), ("lamb", LAMB),
                                       ("larc", LARC), ("sgd", torch.optim.SGD)])
def test_build_optimizer_scales_lr_with_workers(name, cls):
    net = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3), torch.nn.BatchNorm2d(4))
    cfg = TrainConfig(optimizer=name, lr=0.01, lr_scaling="sqrt", weight_decay=0.05,
                      warmup_epochs=1, epochs=3)
    opt = build_optimizer(net, cfg, world_size=4)
    assert isinstance(opt, cls)
    # conv weight decays; bias and BatchNorm scale/shift do not
    wd = {g["weight_decay"] for g in opt.param_groups}
    assert wd == {0.05, 0.0} or name == "larc"
    sched = build_scheduler(opt, cfg, steps_per_epoch=10)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.02 * 0.1)   # warm-up start
    for _ in range(10):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.02)         # peak = 0.01 * sqrt(4)
