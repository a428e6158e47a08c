"""Several training processes under ``torchrun`` (PyTorch DDP), read from the environment it sets.

One process is the default and needs none of this: without ``WORLD_SIZE`` > 1 everything here is a
no-op and rank 0 is the only rank.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Processes:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        """The one process that writes files and prints."""
        return self.rank == 0


def launched_rank() -> int:
    """This process's rank as torchrun set it (0 when not launched by torchrun), before any set-up."""
    return int(os.environ.get("RANK", "0"))


def start(device: torch.device) -> tuple[Processes, torch.device]:
    """Join the process group torchrun set up; on CUDA each process takes the GPU of its local rank."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Processes(), device
    import torch.distributed as dist

    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Processes(dist.get_rank(), dist.get_world_size()), device


def gather(processes: Processes, tensor: torch.Tensor, device: torch.device) -> list[torch.Tensor]:
    """Every rank's copy of a same-shaped tensor, on the CPU (NCCL only moves GPU tensors)."""
    if processes.world == 1:
        return [tensor]
    import torch.distributed as dist

    parts = [torch.empty_like(tensor, device=device) for _ in range(processes.world)]
    dist.all_gather(parts, tensor.to(device))
    return [p.cpu() for p in parts]


def finish(processes: Processes, wait: bool = True) -> None:
    """Leave the process group: with ``wait``, every rank first waits for the others (rank 0 may still be
    writing the last checkpoint). Its threads are stopped here, not by exit handlers at interpreter exit,
    where gloo's could abort a process ("terminate called without an active exception", SIGABRT)."""
    if processes.world == 1:
        return
    import torch.distributed as dist

    if dist.is_initialized():
        if wait:
            dist.barrier()
        dist.destroy_process_group()
