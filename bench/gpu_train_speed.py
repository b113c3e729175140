"""GPU: encoder training step (fwd+bwd), mamba_ssm CUDA scan vs the portable torch path vs the
same-width Transformer of bench/model_speed.py. Medians of CUDA-event timings."""

from __future__ import annotations

import statistics

import torch
from model_speed import ACT, BATCH, DM, DS, LAYERS, OBS, K, TransformerEncoder  # noqa: I001

from mberil_ros.models import EncoderConfig, MambaConfig, SequenceEncoder, mamba_ssm_available


def timed(fn, n: int = 20) -> float:
    for _ in range(3):
        fn()
    xs = []
    for _ in range(n):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        xs.append(a.elapsed_time(b))
    return statistics.median(xs)


def main() -> None:
    torch.manual_seed(0)
    enc = SequenceEncoder(EncoderConfig(OBS, ACT, d_model=DM, n_layers=LAYERS, context=K,
                                        mamba=MambaConfig(d_state=DS))).cuda()
    tf = TransformerEncoder().cuda()
    obs, act = torch.randn(BATCH, K, OBS).cuda(), torch.randn(BATCH, K, ACT).cuda()

    def step(model, **kw):
        def run():
            model.zero_grad(set_to_none=True)
            model(obs, act, **kw).square().mean().backward()
        return run

    print(f"GPU {torch.cuda.get_device_name()}, mamba_ssm kernels: {mamba_ssm_available()}")
    print(f"train fwd+bwd batch {BATCH} x len {K}, d_model {DM}, {LAYERS} layers (median ms)")
    t_tf = timed(step(tf))
    print(f"  transformer              {t_tf:7.2f} ms")
    if mamba_ssm_available():
        t_fast = timed(step(enc))
        print(f"  mamba, mamba_ssm kernels {t_fast:7.2f} ms  ({t_fast / t_tf:.2f}x transformer)")
    t_port = timed(step(enc, impl="torch"), n=5)
    print(f"  mamba, portable torch    {t_port:7.2f} ms  ({t_port / t_tf:.2f}x transformer)")


if __name__ == "__main__":
    main()
