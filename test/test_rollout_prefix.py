"""Per-row prefix states: one parallel pass that stops each row at its own end continues with
step() exactly like stepping token by token from the start (and like the full-sequence
forward), and Offline-MB-ERIL's rollout built on it equals the token-by-token rollout."""

from __future__ import annotations

import pytest
import torch
from algos_tester import TINY_NET, tiny_data

from mberil_ros.algos.common import randn, tanh_gaussian_sample
from mberil_ros.algos.data import extend
from mberil_ros.algos.offline_mberil import OfflineMBERIL, OfflineMBERILConfig
from mberil_ros.models import (
    EncoderConfig,
    Mamba,
    MambaConfig,
    SequenceEncoder,
    _cpu_kernel,
    mamba_ssm_available,
    selective_scan,
)
from mberil_ros.models.selective_scan import kernel_available

K = 6  # context: the sequences below run well past it (clamped time embedding)
KERNEL = pytest.param("kernel", marks=pytest.mark.skipif(
    not kernel_available(), reason=f"fused kernel unavailable: {_cpu_kernel.build_error}"))


def encoder(backbone: str, seed: int = 0) -> SequenceEncoder:
    torch.manual_seed(seed)
    enc = SequenceEncoder(EncoderConfig(obs_dim=5, act_dim=3, backbone=backbone, d_model=32,
                                        inputs="state_prev_action", n_layers=2, context=K,
                                        mlp_hidden=32, mamba=MambaConfig(d_state=8)))
    with torch.no_grad():  # away from the init: time embedding, conv and A all matter
        for p in enc.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return enc


@pytest.mark.parametrize("backbone", ["mamba", "mlp"])
@pytest.mark.parametrize("impl", ["torch", KERNEL])
@pytest.mark.parametrize("fused", [True, False])
def test_prefix_state_then_steps_equals_stepping_from_the_start(backbone, impl, fused):
    enc = encoder(backbone)
    steps, extra = 3 * K + 2, 4
    obs, prev = torch.randn(4, steps + extra, 5), torch.randn(4, steps + extra, 3)
    lengths = torch.tensor([1, 2, K + 3, steps])  # a lone first token .. the whole sequence
    with torch.no_grad():
        full = enc(obs, prev, impl=impl)
        ref_state = enc.init_state(4, fused=fused)
        ref = torch.stack([enc.step(obs[:, t], prev[:, t], ref_state, fused=fused)
                           for t in range(steps + extra)], 1)
        lat, state = enc.prefix_state(obs[:, :steps], prev[:, :steps], lengths, impl=impl,
                                      fused=fused)
        rows = torch.arange(4)
        cont = [enc.step(obs[rows, lengths + k], prev[rows, lengths + k], state, fused=fused)
                for k in range(extra)]
    assert torch.equal(state.t, lengths + extra)
    for i, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(lat[i, :n], full[i, :n], rtol=0, atol=1e-5)
        for k in range(extra):
            torch.testing.assert_close(cont[k][i], ref[i, n + k], rtol=0, atol=1e-5)
            torch.testing.assert_close(cont[k][i], full[i, n + k], rtol=0, atol=1e-5)


@pytest.mark.parametrize("impl", ["torch", KERNEL])
def test_mamba_prefix_states_equal_step_states(impl):
    torch.manual_seed(1)
    m = Mamba(MambaConfig(d_model=16, d_state=4, d_conv=4))
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.3 * torch.randn_like(p))
    x = torch.randn(3, 11, 16)
    lengths = torch.tensor([2, 11, 7])  # 2 < d_conv: the conv state starts with zeros
    with torch.no_grad():
        conv, ssm = m.allocate_state(3)
        saved = []
        for t in range(11):
            m.step(x[:, t], conv, ssm, fused=False)
            saved.append((conv.clone(), ssm.clone()))
        _, conv_p, ssm_p = m.prefix_state(x, lengths, impl=impl)
    for i, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(conv_p[i], saved[n - 1][0][i], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(ssm_p[i], saved[n - 1][1][i], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("impl", ["torch", KERNEL])
def test_scan_last_state(impl):
    g = torch.Generator().manual_seed(0)
    u, delta, z = (torch.randn(2, 9, 6, generator=g) for _ in range(3))
    A, B, C = -torch.rand(6, 5, generator=g) - 0.1, *(torch.randn(2, 9, 5, generator=g)
                                                       for _ in range(2))
    out, last = selective_scan(u, delta, A, B, C, torch.ones(6), z, None,
                               impl=impl, return_last_state=True)
    _, ref = selective_scan(u, delta, A, B, C, torch.ones(6), z, None, impl="torch",
                            return_last_state=True)
    torch.testing.assert_close(out, selective_scan(u, delta, A, B, C, torch.ones(6), z, None,
                                                   impl=impl))
    assert last.shape == (2, 6, 5)
    torch.testing.assert_close(last, ref, rtol=1e-5, atol=1e-6)


def test_prefix_state_rejects_bad_lengths():
    enc = encoder("mamba")
    with pytest.raises(ValueError, match="lengths"):
        enc.prefix_state(torch.randn(2, 4, 5), None, torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="lengths"):
        enc.prefix_state(torch.randn(2, 4, 5), None, torch.tensor([5, 4]))


@pytest.mark.skipif(not (mamba_ssm_available() and torch.cuda.is_available()),
                    reason="needs mamba_ssm's CUDA kernels and a GPU")
def test_cuda_prefix_state_matches_cpu():
    enc = encoder("mamba")
    obs, prev = torch.randn(3, 20, 5), torch.randn(3, 20, 3)
    lengths = torch.tensor([1, 9, 20])
    lat, state = enc.prefix_state(obs, prev, lengths)
    lat_c, state_c = enc.cuda().prefix_state(obs.cuda(), prev.cuda(), lengths.cuda())
    for i, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(lat_c[i, :n].cpu(), lat[i, :n], rtol=6e-4, atol=2e-3)
    for (c, s), (cc, sc) in zip(state.layers, state_c.layers, strict=True):
        torch.testing.assert_close(cc.cpu(), c, rtol=6e-4, atol=2e-3)
        torch.testing.assert_close(sc.cpu(), s, rtol=6e-4, atol=2e-3)


def stepwise_rollout(algo: OfflineMBERIL) -> tuple[torch.Tensor, ...]:
    """The rollout by token-by-token encoder steps through the real prefixes, drawing from
    the generator in the same order as OfflineMBERIL.rollout."""
    H, gen = algo.cfg.horizon, algo.gen
    b = algo.data.sample("all", algo.cfg.rollout_batch, gen)
    n = b.mask.shape[0]
    t0 = (torch.rand(n, generator=gen) * b.mask.sum(1)).long()
    obs_ext, prev_ext = extend(b)
    rows = torch.arange(n)
    obs = torch.zeros(n, int(t0.max()) + H + 1, obs_ext.shape[-1])
    act = torch.zeros(n, obs.shape[1], prev_ext.shape[-1])
    prevs = torch.zeros_like(act)
    gen_mask = torch.zeros(n, obs.shape[1], dtype=torch.bool)
    for i, t in enumerate(t0.tolist()):
        obs[i, :t + 1], act[i, :t] = obs_ext[i, :t + 1], b.act[i, :t]
        prevs[i, :t + 1] = prev_ext[i, :t + 1]
    ps, ms = algo.policy.encoder.init_state(n), algo.model.encoder.init_state(n)
    lat = {}
    for k in range(int(t0.max()) + 1):  # everyone steps; row i keeps its latent at t0_i
        lp = algo.policy.encoder.step(obs_ext[:, k], prev_ext[:, k], ps)
        lm = algo.model.encoder.step(obs_ext[:, k], prev_ext[:, k], ms)
        for i in (t0 == k).nonzero()[:, 0].tolist():
            lat[i] = (lp[i], lm[i], [(c[i].clone(), s[i].clone()) for c, s in ps.layers],
                      [(c[i].clone(), s[i].clone()) for c, s in ms.layers])
    lat_p = torch.stack([lat[i][0] for i in range(n)])
    lat_m = torch.stack([lat[i][1] for i in range(n)])
    for st, j in ((ps, 2), (ms, 3)):  # each row's state at its own t0
        st.layers = [(torch.stack([lat[i][j][layer][0] for i in range(n)]),
                      torch.stack([lat[i][j][layer][1] for i in range(n)]))
                     for layer in range(len(st.layers))]
        st.t = t0 + 1
    x, prev = obs_ext[rows, t0], prev_ext[rows, t0]
    for j in range(H):
        if j > 0:
            lat_p = algo.policy.encoder.step(x, prev, ps)
            lat_m = algo.model.encoder.step(x, prev, ms)
        u, _ = tanh_gaussian_sample(*algo.policy.dist_params(lat_p), gen)
        mu, ls = algo.model.heads(lat_m, u)
        member = torch.randint(mu.shape[0], (n,), generator=gen)
        noise = randn(gen, (n, mu.shape[-1]), x)
        y = algo.model.compose(x, mu[member, rows] + torch.exp(ls[member, rows]) * noise)
        nxt = algo.data.codec.torch_next_lead(x, prev, u, y)
        act[rows, t0 + j], obs[rows, t0 + j + 1], gen_mask[rows, t0 + j + 1] = u, y, True
        prevs[rows, t0 + j + 1] = nxt
        x, prev = y, nxt
    return obs, prevs, gen_mask, t0 + H + 1


@pytest.mark.parametrize("backbone", ["mamba", "mlp"])
def test_rollout_equals_token_by_token_rollout(tmp_path, backbone):
    data = tiny_data(tmp_path)
    cfg = OfflineMBERILConfig.from_dict({"network": {**TINY_NET, "backbone": backbone},
                                         "bc_warmstart_steps": 0, "model_warmstart_steps": 0,
                                         "rollout_batch": 6, "ensemble_size": 2})
    algo = OfflineMBERIL(cfg, data, "cpu", seed=3)
    start = algo.gen.get_state()
    with torch.no_grad():
        algo.rollout()
        algo.gen.set_state(start)
        obs, prev, gen_mask, length = stepwise_rollout(algo)
    f, t = algo.fifo, obs.shape[1]
    assert f.count == 6 and torch.equal(f.length[:6], length)
    assert torch.equal(f.gen[:6, :t], gen_mask) and not f.gen[:6, t:].any()
    assert (gen_mask.sum(1) == cfg.horizon).all()
    torch.testing.assert_close(f.obs[:6, :t], obs, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(f.prev_act[:6, :t], prev, rtol=1e-4, atol=1e-4)
    real = ~gen_mask & (torch.arange(t)[None] < length[:, None])
    assert torch.equal(f.obs[:6, :t][real], obs[real])  # the real prefixes are copied as is
