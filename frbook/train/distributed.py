"""Several processes, one training run: ``torchrun --nproc_per_node=N -m frbook train ...``.

``torchrun`` starts N copies of the command and tells each who it is through environment
variables (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``).
:func:`setup` reads them and joins the process group: NCCL between GPUs, gloo between CPU
processes (how the tests run it). Without them the run is one process and nothing here
communicates. Only rank 0 writes files; every rank trains on its own slice of each batch.
"""
from __future__ import annotations

import os
import socket
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from ..utils import pick_device

__all__ = ["World", "setup", "teardown", "one_process_group", "all_reduce_mean", "average_buffers", "average_gradients", "gather_objects",
           "broadcast_object"]


@dataclass(frozen=True)
class World:
    """Who this process is: rank ``rank`` of ``size``, on ``device``."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1 or dist.is_initialized()


def setup(device=None) -> World:
    """Join the process group that ``torchrun`` describes, or return a world of one."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1 and not dist.is_initialized():
        return World(device=pick_device(device))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device)
    if device.type == "cuda":
        # One GPU per process: cuda:LOCAL_RANK unless the config names a device index.
        device = torch.device("cuda", device.index if device.index is not None else local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, init_method="env://", timeout=timedelta(minutes=30),
                                **({"device_id": device} if device.type == "cuda" else {}))
    return World(dist.get_rank(), dist.get_world_size(), local_rank, device)


@contextmanager
def one_process_group(device="cpu"):
    """A process group of one process (NCCL on a GPU, gloo on a CPU) for the duration of the
    ``with``: the distributed code paths (collectives, DistributedDataParallel, the sharded
    classifier) run on one machine, as far as one device allows. Yields this process's
    :class:`World`."""
    device = torch.device(device)
    if dist.is_initialized():
        raise RuntimeError("a process group is already initialised in this process")
    if device.type == "cuda":
        device = torch.device("cuda", device.index or 0)
        torch.cuda.set_device(device)
    with socket.socket() as s:  # a free port on this machine for the group's one rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1,
                            timeout=timedelta(minutes=5), **({"device_id": device} if device.type == "cuda" else {}))
    try:
        yield World(0, 1, 0, device)
    finally:
        dist.destroy_process_group()


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_mean(values: dict[str, float], world: World) -> dict[str, float]:
    """The mean over ranks of each number (each rank measured its own slice of the batch)."""
    if not world.distributed or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=world.device)
    dist.all_reduce(t)
    return {k: v / world.size for k, v in zip(keys, t.tolist())}


def average_buffers(module: torch.nn.Module, world: World) -> None:
    """Average a module's floating-point buffers over ranks (a loss's running statistics, which
    each rank updates from its own slice), so every rank holds, and rank 0 saves, one state."""
    if not world.distributed:
        return
    for buffer in module.buffers():
        if buffer.is_floating_point():
            dist.all_reduce(buffer)
            buffer.div_(world.size)


def average_gradients(parameters, world: World) -> None:
    """Average the gradients of parameters that DistributedDataParallel does not hold (a loss's
    learned scale), so that every rank takes the same step."""
    if not world.distributed:
        return
    for p in parameters:
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad.div_(world.size)


def gather_objects(obj, world: World) -> list:
    """Every rank's ``obj``, in rank order, on every rank (small things: random states)."""
    if not world.distributed:
        return [obj]
    out = [None] * world.size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj, world: World):
    """Rank 0's ``obj`` on every rank (a decision only rank 0 can make, such as "new best")."""
    if not world.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
