"""Precision resolution, autocast paths, and overflow steps skipped and counted."""

from __future__ import annotations

import pytest
import torch

from climviz.errors import ConfigError
from climviz.training.precision import MixedPrecision, cpu_has_native_bf16, resolve_precision

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU (none on this machine): "
                                                   "fp16 autocast + GradScaler path not exercised")


def test_cpuinfo_flags_are_read(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f\n")
    cpu_has_native_bf16.cache_clear()
    assert cpu_has_native_bf16(cpuinfo) is False
    cpuinfo2 = tmp_path / "cpuinfo2"
    cpuinfo2.write_text("processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16 amx_tile\n")
    assert cpu_has_native_bf16(cpuinfo2) is True
    cpu_has_native_bf16.cache_clear()


def test_auto_on_cpu_follows_the_cpu_flags():
    flags = open("/proc/cpuinfo").read()
    native = " avx512_bf16" in flags or " amx_bf16" in flags
    plan = resolve_precision("auto", "cpu")
    assert plan.name == ("bf16" if native else "fp32")
    assert plan.use_scaler is False
    assert resolve_precision("fp16", "cpu").use_scaler is True
    with pytest.raises(ConfigError, match="precision"):
        resolve_precision("int8", "cpu")


def test_cpu_bf16_autocast_step_runs():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv2d(4, 2, 1))
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    amp = MixedPrecision("bf16", "cpu")
    before = [p.detach().clone() for p in net.parameters()]
    x = torch.randn(2, 3, 8, 8)
    with amp.autocast():
        y = net(x)
    assert y.dtype == torch.bfloat16           # convolutions really ran in bf16
    amp.backward(y.float().square().mean())
    assert amp.step(opt) is True
    assert all(p.dtype == torch.float32 for p in net.parameters())   # master weights fp32
    assert any(not torch.equal(b, p) for b, p in zip(before, net.parameters()))
    assert amp.skipped_steps == 0


def _net_and_opt():
    torch.manual_seed(0)
    net = torch.nn.Linear(4, 2)
    return net, torch.optim.SGD(net.parameters(), lr=0.1)


@pytest.mark.parametrize("precision, use_scaler", [("fp32", True), ("fp32", False), ("fp16", None)])
def test_overflow_step_is_skipped_and_counted(precision, use_scaler):
    """Inject an inf gradient: weights stay exactly as they were, the counter goes up
    (with a GradScaler on CPU, the scale also halves); a finite step then applies."""
    net, opt = _net_and_opt()
    amp = MixedPrecision(precision, "cpu", use_scaler=use_scaler, init_scale=1024.0)
    before = [p.detach().clone() for p in net.parameters()]
    amp.backward(net(torch.ones(1, 4)).sum())
    net.weight.grad[0, 0] = float("inf")
    assert amp.step(opt) is False
    assert amp.skipped_steps == 1
    for b, p in zip(before, net.parameters()):
        assert torch.equal(b, p)
    if amp.scaler is not None:
        assert amp.scaler.get_scale() == 512.0
    opt.zero_grad()
    amp.backward(net(torch.ones(1, 4)).sum())
    assert amp.step(opt) is True and amp.skipped_steps == 1
    # d(sum(Wx + b))/dW = x = 1 and /db = 1: one SGD step subtracts lr = 0.1 everywhere
    torch.testing.assert_close(net.weight.detach(), before[0] - 0.1)
    torch.testing.assert_close(net.bias.detach(), before[1] - 0.1)
    # the counter travels with the state dict (into checkpoints)
    amp2 = MixedPrecision(precision, "cpu", use_scaler=use_scaler)
    amp2.load_state_dict(amp.state_dict())
    assert amp2.skipped_steps == 1


def test_nan_gradient_is_skipped_too():
    net, opt = _net_and_opt()
    amp = MixedPrecision("fp32", "cpu")
    amp.backward(net(torch.ones(1, 4)).sum())
    net.bias.grad[1] = float("nan")
    w = net.weight.detach().clone()
    assert amp.step(opt) is False and torch.equal(w, net.weight)


@needs_cuda
def test_cuda_auto_is_fp16_with_grad_scaler():
    amp = MixedPrecision("auto", "cuda")
    assert amp.name == "fp16" and amp.scaler is not None
    torch.manual_seed(0)
    net = torch.nn.Conv2d(3, 8, 3, padding=1).cuda()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    with amp.autocast():
        y = net(torch.randn(2, 3, 16, 16, device="cuda"))
    assert y.dtype == torch.float16
    amp.backward(y.float().mean())
    assert amp.step(opt) is True
    # overflow: huge loss in fp16 -> inf grads -> skipped
    w = net.weight.detach().clone()
    opt.zero_grad()
    with amp.autocast():
        y = net(torch.full((2, 3, 16, 16), 6e4, device="cuda"))
    amp.backward(y.float().sum() * 1e30)
    assert amp.step(opt) is False and amp.skipped_steps == 1
    assert torch.equal(w, net.weight)
