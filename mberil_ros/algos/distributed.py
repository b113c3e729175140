"""Distributed data parallel through torch.distributed, started by torchrun.

    torchrun --nproc_per_node=2 -m mberil_ros.cli train --config config/train.yaml
    torchrun --nnodes=2 --node_rank=0 --nproc_per_node=4 \
        --rdzv_backend=c10d --rdzv_endpoint=HOST:29500 -m mberil_ros.cli train ...

Algorithms have several networks with their own update steps, so instead of wrapping them in
DistributedDataParallel the runner broadcasts rank 0's initial weights once and gives the
algorithm a ``grad_sync`` hook that averages gradients (all-reduce) before each optimizer
step: every rank then takes the identical step on its own batch.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        join_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size(),
                    local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def join_process_group(backend: str) -> None:
    """init_process_group, after importing torch._dynamo.

    torch._dynamo (imported lazily by the first optimizer) keeps references to a process
    group that exists when it is imported, so destroy_process_group() could not free it:
    gloo's threads outlived the interpreter, and one finishing a collective during shutdown
    needed the GIL and aborted the rank ("terminate called without an active exception", 4
    of 12 DDP runs on this machine). Imported first, it never sees the group."""
    import torch._dynamo  # noqa: F401

    dist.init_process_group(backend=backend)


def broadcast_modules(modules: Iterable[torch.nn.Module]) -> None:
    """Make every rank start from rank 0's weights (and buffers)."""
    for module in modules:
        for tensor in module.state_dict().values():
            dist.broadcast(tensor, src=0)


def average_gradients(world_size: int):
    def grad_sync(parameters: Iterable[torch.nn.Parameter]) -> None:
        grads = [p.grad for p in parameters if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])  # one collective, not one per tensor
        dist.all_reduce(flat)
        flat /= world_size
        offset = 0
        for g in grads:
            n = g.numel()
            g.copy_(flat[offset:offset + n].view_as(g))
            offset += n

    return grad_sync


def parameters_identical(modules: Iterable[torch.nn.Module]) -> bool:
    """True when every rank holds exactly the same weights (checked at each checkpoint)."""
    flat = torch.cat([t.detach().reshape(-1).double().cpu()
                      for m in modules for t in m.state_dict().values()
                      if t.is_floating_point()])
    checksum = torch.stack([flat.sum(), (flat * torch.arange(1, flat.numel() + 1,
                                                             dtype=torch.float64)).sum()])
    low, high = checksum.clone(), checksum.clone()
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    return bool(torch.equal(low, high))


def gather_objects(obj: object, info: DistInfo) -> list[object]:
    """Every rank's ``obj`` on every rank (used for per-rank resume state)."""
    if not info.enabled:
        return [obj]
    out: list[object] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_from_main(obj: object, info: DistInfo) -> object:
    """Rank 0's ``obj`` on every rank."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
