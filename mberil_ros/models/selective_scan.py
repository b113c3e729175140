"""Portable selective scan: the fused C kernel (autograd Function) and a pure-PyTorch fallback.

Both compute mamba_ssm's `selective_scan_ref` recurrence, in channel-last layout:

    u, delta, z: (batch, len, d_inner)   B, C: (batch, len, d_state)   A: (d_inner, d_state)
    D, delta_bias: (d_inner,)            returns (batch, len, d_inner)

    dt = softplus(delta + delta_bias);  h_t = exp(dt*A) h_{t-1} + dt*B_t*u_t
    y_t = C_t . h_t + D*u_t;            out = y * silu(z)

mamba_ssm's own layout is (batch, d, len) for u/delta/z and (batch, n, len) for B/C; transpose
at the call site. The state starts at zero, so a scan over a prefix equals `step()` from reset.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mberil_ros.models import _cpu_kernel

# Torch fallback: how many steps of exp(dt*A) and dt*B*u are materialised at once. Bounds the
# memory at batch x CHUNK x d_inner x d_state while keeping the per-step loop vectorised.
TORCH_CHUNK = 16


def kernel_available() -> bool:
    return _cpu_kernel.load() is not None


def _ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _f32c(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.detach().to(torch.float32).contiguous()


class _KernelScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus,  # type: ignore[override]
                return_last_state=False):
        lib = _cpu_kernel.load()
        args = [_f32c(t) for t in (u, delta, A, B, C, D, z, delta_bias)]
        nb, length, d = args[0].shape
        n = args[2].shape[1]
        out = torch.empty(nb, length, d, dtype=torch.float32)
        last = torch.empty(nb, d, n, dtype=torch.float32) if return_last_state else None
        lib.ss_fwd(nb, length, d, n, *[_ptr(t) for t in args], int(delta_softplus),
                   out.data_ptr(), _ptr(last), torch.get_num_threads())
        ctx.save_for_backward(*[t if t is not None else torch.empty(0) for t in args])
        ctx.has = [t is not None for t in args]
        ctx.delta_softplus = delta_softplus
        if last is None:
            return out.to(u.dtype)
        ctx.mark_non_differentiable(last)  # as in mamba_ssm: no gradient through last_state
        return out.to(u.dtype), last

    @staticmethod
    def backward(ctx, dout, dlast=None):  # type: ignore[override]
        saved = [t if h else None for t, h in zip(ctx.saved_tensors, ctx.has, strict=True)]
        u, delta, A, B, C, D, z, delta_bias = saved
        nb, length, d = u.shape
        n = A.shape[1]
        dout = dout.to(torch.float32).contiguous()
        du = torch.empty_like(u)
        ddelta = torch.empty_like(delta)
        dz = torch.empty_like(u) if z is not None else None
        dB = torch.zeros_like(B)
        dC = torch.zeros_like(C)
        dA_part = torch.empty(nb, d, n)
        dD_part = torch.empty(nb, d)
        ddb_part = torch.empty(nb, d)
        _cpu_kernel.load().ss_bwd(
            nb, length, d, n, *[_ptr(t) for t in saved], int(ctx.delta_softplus), dout.data_ptr(),
            du.data_ptr(), ddelta.data_ptr(), dA_part.data_ptr(), dB.data_ptr(), dC.data_ptr(),
            dD_part.data_ptr(), _ptr(dz), ddb_part.data_ptr(), torch.get_num_threads(),
        )
        return (du, ddelta, dA_part.sum(0), dB, dC, dD_part.sum(0) if D is not None else None,
                dz, ddb_part.sum(0) if delta_bias is not None else None, None, None)


def selective_scan_torch(
    u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
    D: torch.Tensor | None = None, z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None, delta_softplus: bool = True,
    return_last_state: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Pure-PyTorch scan (any device, autograd by PyTorch). No log/division tricks: the state
    is multiplied by exp(dt*A) <= 1 each step, which stays finite for any length."""
    dtype = u.dtype
    u, delta, B, C = u.float(), delta.float(), B.float(), C.float()
    if delta_bias is not None:
        delta = delta + delta_bias.float()
    if delta_softplus:
        delta = F.softplus(delta)
    nb, length, d = u.shape
    h = u.new_zeros(nb, d, A.shape[1])
    ys = []
    for t0 in range(0, length, TORCH_CHUNK):
        dt = delta[:, t0:t0 + TORCH_CHUNK]
        dA = torch.exp(dt.unsqueeze(-1) * A.float())  # (b, T, d, n)
        dBu = (dt * u[:, t0:t0 + TORCH_CHUNK]).unsqueeze(-1) * B[:, t0:t0 + TORCH_CHUNK, None]
        for k in range(dt.shape[1]):
            h = dA[:, k] * h + dBu[:, k]
            ys.append(torch.einsum("bdn,bn->bd", h, C[:, t0 + k]))
    y = torch.stack(ys, dim=1)
    if D is not None:
        y = y + u * D.float()
    if z is not None:
        y = y * F.silu(z.float())
    return (y.to(dtype), h) if return_last_state else y.to(dtype)


def selective_scan(
    u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
    D: torch.Tensor | None = None, z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None, delta_softplus: bool = True, impl: str = "auto",
    return_last_state: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Channel-last selective scan. impl: "auto" (kernel on CPU when it builds, else torch),
    "kernel" (raise if unavailable) or "torch". return_last_state: also return the float32
    state after the last step, (batch, d_inner, d_state), like mamba_ssm's selective_scan_fn
    (no gradient flows through it)."""
    if impl not in ("auto", "kernel", "torch"):
        raise ValueError(f"impl must be 'auto', 'kernel' or 'torch', got {impl!r}")
    use_kernel = impl == "kernel" or (
        impl == "auto" and u.device.type == "cpu" and kernel_available()
    )
    if use_kernel:
        if u.device.type != "cpu":
            raise ValueError("impl='kernel' runs on CPU tensors only")
        if not kernel_available():
            raise RuntimeError(f"CPU scan kernel unavailable: {_cpu_kernel.build_error}")
        if A.shape[1] > 256:
            raise ValueError(f"d_state {A.shape[1]} > 256 is not supported by the CPU kernel")
        return _KernelScan.apply(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                                 return_last_state)
    return selective_scan_torch(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                                return_last_state)
