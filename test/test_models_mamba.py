"""Mamba block: parameter names/init, full-sequence forward vs step(), the mambapy oracle,
and the CUDA fast path vs the portable path (where mamba_ssm and a GPU exist)."""

from __future__ import annotations

import math

import pytest
import torch

from mberil_ros.models import Mamba, MambaConfig, _cpu_kernel, mamba_ssm_available
from mberil_ros.models.selective_scan import kernel_available

CFG = MambaConfig(d_model=24, d_state=8, d_conv=4, expand=2)
MAMBA_SSM_KEYS = {"in_proj.weight", "conv1d.weight", "conv1d.bias", "x_proj.weight",
                  "dt_proj.weight", "dt_proj.bias", "A_log", "D", "out_proj.weight"}


def randomized(cfg: MambaConfig = CFG, seed: int = 0) -> Mamba:
    """A block whose A, D, dt bias and conv are far from their init (the tests then cover
    the general recurrence, not just the S4D special case)."""
    torch.manual_seed(seed)
    m = Mamba(cfg)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return m


def test_state_dict_names_match_mamba_ssm():
    assert set(Mamba(CFG).state_dict()) == MAMBA_SSM_KEYS


def test_init_follows_mamba_ssm():
    torch.manual_seed(0)
    m = Mamba(MambaConfig(d_model=64, d_state=16))
    dt = torch.nn.functional.softplus(m.dt_proj.bias.detach())
    assert dt.min() >= 1e-4 - 1e-7 and dt.max() <= 0.1 + 1e-6
    # log-uniform in [1e-3, 0.1]: the median of log(dt) sits near the middle
    assert abs(dt.log().median().item() - 0.5 * (math.log(1e-3) + math.log(0.1))) < 0.6
    want_a = torch.arange(1, 17, dtype=torch.float32).log().expand(128, 16)
    torch.testing.assert_close(m.A_log.detach(), want_a)
    assert torch.equal(m.D.detach(), torch.ones(128))
    assert m.A_log._no_weight_decay and m.D._no_weight_decay


@pytest.mark.parametrize("impl", ["torch", pytest.param("kernel", marks=pytest.mark.skipif(
    not kernel_available(), reason=f"fused kernel unavailable: {_cpu_kernel.build_error}"))])
@pytest.mark.parametrize("fused_step", [True, False])
def test_forward_equals_repeated_step(impl, fused_step):
    m = randomized()
    x = torch.randn(3, 19, CFG.d_model)
    with torch.no_grad():
        full = m(x, impl=impl)
        conv, ssm = m.allocate_state(3)
        steps = torch.stack([m.step(x[:, t], conv, ssm, fused=fused_step)
                             for t in range(x.shape[1])], 1)
    assert (full - steps).abs().max().item() <= 1e-5


def test_matches_mambapy_oracle():
    mambapy = pytest.importorskip("mambapy.mamba", reason="mambapy (test extra) not installed")
    m = randomized(seed=1)
    oracle = mambapy.MambaBlock(mambapy.MambaConfig(d_model=CFG.d_model, n_layers=1,
                                                    d_state=CFG.d_state, pscan=False))
    oracle.load_state_dict(m.state_dict())  # same names, same shapes
    x = torch.randn(2, 13, CFG.d_model)
    with torch.no_grad():
        torch.testing.assert_close(m(x), oracle(x), rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(not (mamba_ssm_available() and torch.cuda.is_available()),
                    reason="needs mamba_ssm's CUDA kernels and a GPU")
def test_cuda_fast_path_matches_portable_path():
    m = randomized(MambaConfig(d_model=64, d_state=16), seed=2)
    x = torch.randn(4, 45, 64)
    ref = m(x.clone().requires_grad_())
    mc = randomized(MambaConfig(d_model=64, d_state=16), seed=2).cuda()
    xc = x.cuda().requires_grad_()
    out_fast, out_port = mc(xc), mc(xc, impl="torch")
    torch.testing.assert_close(out_fast, out_port, rtol=6e-4, atol=2e-3)
    torch.testing.assert_close(out_fast.cpu(), ref.detach(), rtol=6e-4, atol=2e-3)
    g = torch.randn_like(out_fast)
    wrt = [xc, mc.A_log, mc.D, mc.dt_proj.bias, mc.x_proj.weight]
    g_fast = torch.autograd.grad(out_fast, wrt, g)
    g_port = torch.autograd.grad(out_port, wrt, g)
    for a, b in zip(g_fast, g_port, strict=True):
        # parameter grads sum batch x length terms in different orders: compare to scale
        torch.testing.assert_close(a, b, rtol=2e-3, atol=2e-3 * b.abs().max().item())
