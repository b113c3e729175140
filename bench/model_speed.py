"""CPU speed of the Mamba encoder against a same-width Transformer (prints medians and ratios).

(a) training forward+backward, batch 256 x context 32: Mamba encoder (d_model 128, 4 layers,
    d_state 16, expand 2) vs nn.TransformerEncoder (4 layers, d_model 128, 4 heads, ff 256,
    pre-norm, causal mask, dropout 0), both behind the same token embedding;
(b) batch-1 streaming step latency (p50/p99) vs re-running a Decision-Transformer-style
    window of 32 tokens with that Transformer at every tick;
(c) the portable scan (fused kernel and torch fallback) vs a per-step loop, and vs mamba_ssm's
    selective_scan_ref where it imports.

    .venv/bin/python bench/model_speed.py [--threads 2] [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from mberil_ros.models import (
    EncoderConfig,
    MambaConfig,
    SequenceEncoder,
    _cpu_kernel,
    selective_scan,
)

OBS, ACT, DM, LAYERS, DS, K, BATCH = 14, 7, 128, 4, 16, 32, 256


class TransformerEncoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(OBS + ACT, DM)
        self.pos = nn.Embedding(K, DM)
        layer = nn.TransformerEncoderLayer(DM, 4, 256, dropout=0.0, batch_first=True,
                                           norm_first=True)
        self.body = nn.TransformerEncoder(layer, LAYERS, enable_nested_tensor=False)

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        n = obs.shape[1]
        h = self.embed(torch.cat([obs, act], -1)) + self.pos(torch.arange(n, device=obs.device))
        mask = nn.Transformer.generate_square_subsequent_mask(n, device=obs.device)
        return self.body(h, mask=mask, is_causal=True)


def timed(fn, repeats: int, warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def med_ms(xs: list[float]) -> float:
    return 1e3 * statistics.median(xs)


def bench_training(repeats: int) -> None:
    torch.manual_seed(0)
    mamba = SequenceEncoder(EncoderConfig(OBS, ACT, d_model=DM, n_layers=LAYERS, context=K,
                                          mamba=MambaConfig(d_state=DS)))
    tf = TransformerEncoder()
    obs, act = torch.randn(BATCH, K, OBS), torch.randn(BATCH, K, ACT)

    def step(model, **kw):
        def run():
            model.zero_grad(set_to_none=True)
            model(obs, act, **kw).square().mean().backward()
        return run

    t_tf = timed(step(tf), repeats)
    t_mk = timed(step(mamba, impl="kernel"), repeats) if _cpu_kernel.load() else None
    t_mt = timed(step(mamba, impl="torch"), max(2, repeats // 3), warmup=1)
    print(f"(a) train fwd+bwd, batch {BATCH} x len {K}, d_model {DM}, {LAYERS} layers")
    print(f"    transformer (4 heads, ff 256)   {med_ms(t_tf):8.1f} ms")
    if t_mk:
        print(f"    mamba, fused C kernel           {med_ms(t_mk):8.1f} ms   "
              f"ratio {med_ms(t_mk) / med_ms(t_tf):.2f}x  (target <= 3x)")
    print(f"    mamba, pure-torch fallback      {med_ms(t_mt):8.1f} ms   "
          f"ratio {med_ms(t_mt) / med_ms(t_tf):.2f}x")


def bench_streaming(repeats: int) -> None:
    torch.manual_seed(0)
    enc = SequenceEncoder(EncoderConfig(OBS, ACT, d_model=DM, n_layers=LAYERS, context=K,
                                        mamba=MambaConfig(d_state=DS))).eval()
    tf = TransformerEncoder().eval()
    obs, act = torch.randn(1, OBS), torch.randn(1, ACT)
    win_o, win_a = torch.randn(1, K, OBS), torch.randn(1, K, ACT)
    n = 300 * repeats

    def lat(fn) -> list[float]:
        xs = timed(fn, n, warmup=50)
        return sorted(xs)

    with torch.inference_mode():
        for fused in (True, False):
            state = enc.init_state(1)
            s = lat(lambda fused=fused, state=state: enc.step(obs, act, state, fused=fused))
            p50, p99 = 1e3 * s[len(s) // 2], 1e3 * s[int(0.99 * len(s))]
            label = "fused C step " if fused else "torch ops step"
            print(f"(b) mamba {label} batch 1: p50 {p50:.3f} ms  p99 {p99:.3f} ms"
                  + ("  (target p99 <= 0.5 ms)" if fused else ""))
            if fused:
                mamba_p50 = p50
        w = lat(lambda: tf(win_o, win_a)[:, -1])
        w50 = 1e3 * w[len(w) // 2]
        print(f"    transformer window of {K} re-run per tick: p50 {w50:.3f} ms  "
              f"p99 {1e3 * w[int(0.99 * len(w))]:.3f} ms  -> mamba step is "
              f"{w50 / mamba_p50:.1f}x faster (target >= 5x)")


def per_step_loop(u, delta, A, B, C, D, z, dbias):
    dt = F.softplus(delta + dbias)
    h = u.new_zeros(u.shape[0], u.shape[2], A.shape[1])
    ys = []
    for t in range(u.shape[1]):
        h = torch.exp(dt[:, t, :, None] * A) * h + (dt[:, t] * u[:, t])[..., None] * B[:, t, None]
        ys.append((h * C[:, t, None]).sum(-1) + D * u[:, t])
    return torch.stack(ys, 1) * F.silu(z)


def bench_scan(repeats: int) -> None:
    torch.manual_seed(0)
    b, length, d, n = BATCH, K, 2 * DM, DS
    args = [torch.randn(b, length, d), torch.randn(b, length, d), -torch.rand(d, n) - 0.1,
            torch.randn(b, length, n), torch.randn(b, length, n), torch.randn(d),
            torch.randn(b, length, d), torch.randn(d)]
    print(f"(c) scan batch {b} x len {length} x d_inner {d} x d_state {n}")
    grads = [a.clone().requires_grad_() for a in args]

    def fb(fn):
        def run():
            for g in grads:
                g.grad = None
            fn(*grads).sum().backward()
        return run

    rows = []
    if _cpu_kernel.load():
        rows.append(("fused C kernel", lambda *a: selective_scan(*a, impl="kernel")))
    rows.append(("torch fallback (chunked)", lambda *a: selective_scan(*a, impl="torch")))
    rows.append(("per-step loop", per_step_loop))
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_ref

        def ref(u, dl, A, B, C, D, z, db):
            t = lambda x: x.transpose(1, 2)  # noqa: E731
            return t(selective_scan_ref(t(u), t(dl), A, t(B), t(C), D, t(z), db, True))
        rows.append(("mamba_ssm selective_scan_ref", ref))
    except Exception as exc:  # not installed on CPU machines
        print(f"    mamba_ssm selective_scan_ref: not importable ({type(exc).__name__})")
    base = None
    for name, fn in rows:
        with torch.no_grad():
            tf = med_ms(timed(lambda fn=fn: fn(*args), repeats))
        tb = med_ms(timed(fb(fn), max(3, repeats // 2)))
        base = base or (tf, tb)
        print(f"    {name:30s} fwd {tf:8.1f} ms  fwd+bwd {tb:8.1f} ms  "
              f"(x{tf / base[0]:.1f} / x{tb / base[1]:.1f} of the first row)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, C kernel: "
          f"{'yes' if _cpu_kernel.load() else 'no (' + str(_cpu_kernel.build_error) + ')'}")
    # Latency first: right after the large training allocations the OS is still reclaiming
    # memory, which showed up as multi-ms outliers in the step's p99.
    bench_streaming(args.repeats)
    bench_training(args.repeats)
    bench_scan(args.repeats)


if __name__ == "__main__":
    main()
