"""Golden fixture from mamba-ssm's CUDA kernels (docs/algorithm.md §9). Run on a GPU machine:

    python3 test/data/make_golden.py OUT_DIR

Writes mamba_golden.safetensors + mamba_golden.json: a tiny Mamba block's weights (mamba_ssm
names), an input, the fast-path output, the input and parameter gradients for a fixed upstream
gradient, and the outputs of mamba_ssm's own Mamba.step over the same tokens.
test/test_models_golden.py reproduces them on CPU.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from mberil_ros.models import Mamba, MambaConfig
from mberil_ros.models.mamba import mamba_inner_fn, selective_scan_cuda_fn

CFG = dict(d_model=16, d_state=8, d_conv=4, expand=2)
BATCH, LENGTH, SEED = 2, 45, 1234  # 45: not a multiple of any chunk size
GRAD_NAMES = ["A_log", "D", "dt_proj.bias", "dt_proj.weight", "x_proj.weight",
              "in_proj.weight", "conv1d.weight", "out_proj.weight"]


def main() -> None:
    out_dir = Path(sys.argv[1])
    assert torch.cuda.is_available() and selective_scan_cuda_fn is not None, "needs mamba_ssm"
    torch.manual_seed(SEED)
    block = Mamba(MambaConfig(**CFG))
    with torch.no_grad():  # move away from the init so every parameter matters
        for p in block.parameters():
            p.add_(0.2 * torch.randn_like(p))
    x = torch.randn(BATCH, LENGTH, CFG["d_model"])
    g = torch.randn(BATCH, LENGTH, CFG["d_model"])
    weights = {k: v.clone() for k, v in block.state_dict().items()}

    dev = block.cuda()
    xc = x.cuda().requires_grad_()
    out = dev(xc)  # impl="auto": mamba_ssm's CUDA scan
    out.backward(g.cuda())
    tensors = {f"weight.{k}": v.contiguous() for k, v in weights.items()}
    tensors.update({"x": x, "grad_out": g, "out": out.detach().cpu(),
                    "grad_x": xc.grad.cpu()})
    params = dict(dev.named_parameters())
    for name in GRAD_NAMES:
        tensors[f"grad.{name}"] = params[name].grad.detach().cpu().contiguous()

    # mamba_ssm's own module and step (Triton selective_state_update where available)
    from mamba_ssm.modules.mamba_simple import Mamba as RefMamba
    ref = RefMamba(d_model=CFG["d_model"], d_state=CFG["d_state"], d_conv=CFG["d_conv"],
                   expand=CFG["expand"]).cuda()
    ref.load_state_dict({k: v.cuda() for k, v in weights.items()})
    with torch.no_grad():
        full_ref = ref(x.cuda())
        conv = torch.zeros(BATCH, ref.d_inner, CFG["d_conv"], device="cuda")
        ssm = torch.zeros(BATCH, ref.d_inner, CFG["d_state"], device="cuda")
        steps = []
        for t in range(LENGTH):
            y, conv, ssm = ref.step(x[:, t:t + 1].cuda(), conv, ssm)
            steps.append(y)
    tensors["step_out"] = torch.cat(steps, 1).cpu()
    tensors["ref_module_out"] = full_ref.cpu()
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out_dir / "mamba_golden.safetensors"))
    import mamba_ssm

    meta = {"config": CFG, "batch": BATCH, "length": LENGTH, "seed": SEED,
            "device": torch.cuda.get_device_name(), "torch": torch.__version__,
            "mamba_ssm": mamba_ssm.__version__,
            "mamba_inner_fn_used": mamba_inner_fn is not None,
            "max_abs_module_vs_fast": (full_ref - out.detach()).abs().max().item(),
            "max_abs_step_vs_fast": (tensors["step_out"] - tensors["out"]).abs().max().item(),
            "tolerance": {"rtol": 6e-4, "atol": 2e-3}}
    (out_dir / "mamba_golden.json").write_text(json.dumps(meta, indent=2))
    print(json.dumps(meta, indent=2))


if __name__ == "__main__":
    main()
