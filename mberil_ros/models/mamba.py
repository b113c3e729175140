"""Mamba block (Gu & Dao 2023) with mamba_ssm's parameter names and initialisation.

Two execution paths behind one module, like mamba_ssm's mamba_simple.Mamba:
- fast path: mamba_ssm's CUDA kernels (`mamba_inner_fn`), used when mamba_ssm imports, the
  tensors are on CUDA and `use_fast_path` is set;
- portable path: a causal depthwise conv in PyTorch plus `selective_scan` (fused C kernel on
  CPU, pure PyTorch elsewhere).
Parameters are named exactly as in mamba_ssm.Mamba (in_proj, conv1d, x_proj, dt_proj, A_log,
D, out_proj), so one state_dict loads in either path and in mamba_ssm itself.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mberil_ros.models import _cpu_kernel
from mberil_ros.models.config import MambaConfig
from mberil_ros.models.selective_scan import selective_scan

try:  # optional CUDA fast path; absent on CPU installs and CI
    from mamba_ssm.ops import selective_scan_interface as _ssi

    selective_scan_cuda_fn = _ssi.selective_scan_fn
    # mamba_inner_fn also needs causal-conv1d's CUDA kernels; without them mamba_ssm's own
    # Mamba runs the conv in PyTorch and the scan in CUDA, and so do we.
    mamba_inner_fn = _ssi.mamba_inner_fn if _ssi.causal_conv1d_fn is not None else None
except Exception:  # ImportError, or an OSError from a CUDA extension without a GPU
    selective_scan_cuda_fn = mamba_inner_fn = None


# delta past a row's end in prefix_state(): softplus of it underflows to exactly 0
_FROZEN_DELTA = -1e4


def mamba_ssm_available() -> bool:
    return selective_scan_cuda_fn is not None


class Mamba(nn.Module):
    def __init__(self, cfg: MambaConfig, layer_idx: int | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.layer_idx = layer_idx
        d_inner, dt_rank = cfg.d_inner, cfg.resolved_dt_rank
        self.d_inner, self.dt_rank, self.d_state, self.d_conv = (
            d_inner, dt_rank, cfg.d_state, cfg.d_conv)
        self.in_proj = nn.Linear(cfg.d_model, 2 * d_inner, bias=cfg.bias)
        self.conv1d = nn.Conv1d(d_inner, d_inner, cfg.d_conv, groups=d_inner,
                                padding=cfg.d_conv - 1, bias=cfg.conv_bias)
        self.x_proj = nn.Linear(d_inner, dt_rank + 2 * cfg.d_state, bias=False)
        self.dt_proj = nn.Linear(dt_rank, d_inner, bias=True)
        self.A_log = nn.Parameter(torch.empty(d_inner, cfg.d_state))
        self.D = nn.Parameter(torch.empty(d_inner))
        self.out_proj = nn.Linear(d_inner, cfg.d_model, bias=cfg.bias)
        self.reset_mamba_parameters()

    @torch.no_grad()
    def reset_mamba_parameters(self) -> None:
        """mamba_ssm's init: dt_proj weight ~ U(+-dt_rank^-0.5 * dt_scale); dt bias =
        softplus^-1(dt), dt log-uniform in [dt_min, dt_max]; S4D-real A_log; D = 1."""
        cfg = self.cfg
        std = self.dt_rank ** -0.5 * cfg.dt_scale
        nn.init.uniform_(self.dt_proj.weight, -std, std)
        dt = torch.exp(torch.rand(self.d_inner) * (math.log(cfg.dt_max) - math.log(cfg.dt_min))
                       + math.log(cfg.dt_min)).clamp(min=cfg.dt_init_floor)
        self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
        A = torch.arange(1, cfg.d_state + 1, dtype=torch.float32).repeat(self.d_inner, 1)
        self.A_log.copy_(torch.log(A))
        self.D.fill_(1.0)
        # Markers read by optimizer builders (same attribute mamba_ssm sets) and by the
        # encoder's init, which must not overwrite these.
        self.A_log._no_weight_decay = True
        self.D._no_weight_decay = True
        self.dt_proj.bias._no_reinit = True

    def forward(self, hidden_states: torch.Tensor, impl: str = "auto") -> torch.Tensor:
        """(batch, len, d_model) -> (batch, len, d_model). impl: "auto" (CUDA kernels if
        possible, else portable), "portable", or a scan impl "kernel" / "torch"."""
        A = -torch.exp(self.A_log.float())
        fast = (impl == "auto" and self.cfg.use_fast_path and hidden_states.is_cuda
                and selective_scan_cuda_fn is not None)
        if fast and mamba_inner_fn is not None:
            xz = self.in_proj(hidden_states).transpose(1, 2)
            out = mamba_inner_fn(
                xz, self.conv1d.weight, self.conv1d.bias, self.x_proj.weight,
                self.dt_proj.weight, self.out_proj.weight, self.out_proj.bias, A, None, None,
                self.D.float(), delta_bias=self.dt_proj.bias.float(), delta_softplus=True)
            return out
        return self._forward_split(hidden_states, A, impl, fast)[0]

    @torch.no_grad()
    def prefix_state(self, hidden_states: torch.Tensor, lengths: torch.Tensor,
                     impl: str = "auto") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sequence forward that also returns, per row, the recurrent state step() holds
        after that row's first lengths[i] tokens (1 <= lengths[i] <= len): (out, conv_state,
        ssm_state) with the states as allocate_state() lays them out. out[i, :lengths[i]]
        equals forward(); later positions are not meaningful. impl as in forward(); the
        CUDA path runs the conv in PyTorch and mamba_ssm's scan (it returns last states)."""
        A = -torch.exp(self.A_log.float())
        fast = (impl == "auto" and self.cfg.use_fast_path and hidden_states.is_cuda
                and selective_scan_cuda_fn is not None)
        return self._forward_split(hidden_states, A, impl, fast, lengths)

    def _forward_split(self, hidden_states: torch.Tensor, A: torch.Tensor, impl: str,
                       fast: bool, lengths: torch.Tensor | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Conv in PyTorch, then the scan (mamba_ssm's CUDA scan if `fast`, else the portable
        one); with `lengths`, also each row's states at its own end (see prefix_state)."""
        scan_impl = "auto" if impl in ("auto", "portable") else impl
        length = hidden_states.shape[1]
        x, z = self.in_proj(hidden_states).chunk(2, dim=-1)
        conv_state = None
        if lengths is not None:
            # step()'s conv state: the last d_conv conv inputs, newest last, zeros before the
            # start. Index lengths[i] + j of the left-padded inputs is input lengths[i]-K+j.
            idx = lengths[:, None] + torch.arange(self.d_conv, device=x.device)
            conv_state = F.pad(x, (0, 0, self.d_conv, 0)).gather(
                1, idx[..., None].expand(-1, -1, self.d_inner)).transpose(1, 2).contiguous()
        x = F.silu(self.conv1d(x.transpose(1, 2))[..., :length]).transpose(1, 2)
        dt, B, C = torch.split(self.x_proj(x), [self.dt_rank, self.d_state, self.d_state], -1)
        dt = F.linear(dt, self.dt_proj.weight)  # bias enters the scan as delta_bias
        if lengths is not None:
            # Past a row's end, delta -1e4 gives dt = softplus(-1e4 + bias) = 0 exactly in
            # float32: exp(dt*A) = 1 and dt*B*u = 0, so the state stays at its value after
            # the row's last token and the scan's LAST state is that row's state. One scan
            # for all rows, in every implementation (mamba_ssm's returns last states only).
            pad = torch.arange(length, device=dt.device)[None, :] >= lengths[:, None]
            dt = dt.masked_fill(pad[..., None], _FROZEN_DELTA)
        want_state = lengths is not None
        if fast:  # mamba_ssm's CUDA scan, in its (batch, channel, len) layout
            tr = lambda t: t.transpose(1, 2).contiguous()  # noqa: E731
            res = selective_scan_cuda_fn(
                tr(x), tr(dt), A, tr(B), tr(C), self.D.float(), z=tr(z),
                delta_bias=self.dt_proj.bias.float(), delta_softplus=True,
                return_last_state=want_state)
            y, ssm_state = res if want_state else (res, None)
            y = tr(y)
        else:
            res = selective_scan(x, dt, A, B, C, self.D.float(), z, self.dt_proj.bias.float(),
                                 delta_softplus=True, impl=scan_impl,
                                 return_last_state=want_state)
            y, ssm_state = res if want_state else (res, None)
        return self.out_proj(y), conv_state, ssm_state

    def allocate_state(self, batch: int, device: torch.device | None = None,
                       dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero (conv_state (batch, d_inner, d_conv), ssm_state (batch, d_inner, d_state))."""
        device = device or self.A_log.device
        return (torch.zeros(batch, self.d_inner, self.d_conv, device=device, dtype=dtype),
                torch.zeros(batch, self.d_inner, self.d_state, device=device, dtype=torch.float32))

    @torch.no_grad()
    def step(self, hidden_states: torch.Tensor, conv_state: torch.Tensor,
             ssm_state: torch.Tensor, fused: bool = True) -> torch.Tensor:
        """One token: (batch, d_model) -> (batch, d_model); updates both states in place.
        On CPU float32 the fused C step runs (one call for the whole block)."""
        lib = _cpu_kernel.load() if fused else None
        if (lib is not None and hidden_states.device.type == "cpu"
                and hidden_states.dtype == torch.float32 and self.d_state <= 256):
            return self._step_fused(lib, hidden_states, conv_state, ssm_state)
        x, z = self.in_proj(hidden_states).chunk(2, dim=-1)
        conv_state.copy_(torch.roll(conv_state, shifts=-1, dims=-1))
        conv_state[:, :, -1] = x
        x = (conv_state * self.conv1d.weight[:, 0]).sum(-1)
        if self.conv1d.bias is not None:
            x = x + self.conv1d.bias
        x = F.silu(x)
        dt, B, C = torch.split(self.x_proj(x), [self.dt_rank, self.d_state, self.d_state], -1)
        dt = F.softplus(self.dt_proj(dt)).float()
        A = -torch.exp(self.A_log.float())
        ssm_state.copy_(ssm_state * torch.exp(dt.unsqueeze(-1) * A)
                        + (dt * x.float()).unsqueeze(-1) * B.float().unsqueeze(1))
        y = torch.einsum("bdn,bn->bd", ssm_state, C.float()) + self.D.float() * x.float()
        y = (y * F.silu(z.float())).to(hidden_states.dtype)
        return self.out_proj(y)

    def _step_fused(self, lib, x: torch.Tensor, conv_state: torch.Tensor,
                    ssm_state: torch.Tensor) -> torch.Tensor:
        out = torch.empty(x.shape[0], self.cfg.d_model)
        self.fused_step_plan(lib)(x.contiguous(), conv_state, ssm_state, out)
        return out

    def fused_step_plan(self, lib, norm: nn.LayerNorm | None = None):
        """A callable (x, conv_state, ssm_state, out) running the whole block (and, with
        `norm`, the encoder's pre-norm residual around it) in one C call. It binds the weight
        pointers now: build a new plan after the weights change (SequenceEncoder.init_state does).
        All tensors: contiguous CPU float32."""
        A = -torch.exp(self.A_log.detach().float())
        keep = [A, torch.empty(4 * self.d_inner + self.dt_rank + 2 * self.d_state
                               + self.cfg.d_model)]
        params = (self.in_proj.weight, self.in_proj.bias, self.conv1d.weight, self.conv1d.bias,
                  self.x_proj.weight, self.dt_proj.weight, self.dt_proj.bias, A, self.D,
                  self.out_proj.weight, self.out_proj.bias)
        for p in params:
            if p is not None and not (p.is_contiguous() and p.dtype == torch.float32
                                      and p.device.type == "cpu"):
                raise ValueError("fused step needs contiguous float32 CPU weights")
        ptrs = [None if p is None else p.data_ptr() for p in params]
        ln = ([norm.weight.data_ptr(), norm.bias.data_ptr()] if norm is not None
              else [None, None])
        eps = norm.eps if norm is not None else 0.0
        head = (self.cfg.d_model, self.d_inner, self.d_state, self.dt_rank, self.d_conv)
        fn, scratch = lib.mamba_step, keep[1].data_ptr()

        def run(x: torch.Tensor, conv_state: torch.Tensor, ssm_state: torch.Tensor,
                out: torch.Tensor) -> None:
            fn(x.shape[0], *head, x.data_ptr(), *ptrs, conv_state.data_ptr(),
               ssm_state.data_ptr(), out.data_ptr(), scratch, *ln, eps)

        run.keep = (keep, params, norm)  # keeps every bound buffer alive with the plan
        return run
