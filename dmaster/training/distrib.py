"""Running one training job in several processes (``torchrun``): joining, agreeing, leaving.

A single process needs none of it: with ``WORLD_SIZE`` unset or 1 every helper here does nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistributedContext", "leave_distributed", "main_rank_value", "setup_distributed", "wait_for_all"]


@dataclass
class DistributedContext:
    """Where this process stands in the job.

    Args:
        rank: this process's index, 0 … ``world_size - 1``; rank 0 logs and writes checkpoints.
        world_size: the number of processes.
        device: the device this process trains on.
    """

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0."""
        return self.rank == 0


def setup_distributed(device_option: str) -> DistributedContext:
    """Join the process group that ``torchrun`` describes in the environment (``WORLD_SIZE`` > 1).

    Args:
        device_option: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``; CUDA processes use the
            ``nccl`` backend and the GPU of their ``LOCAL_RANK``, CPU processes ``gloo``.

    Returns:
        This process's rank, the world size and its device.
    """
    use_cuda = device_option == "cuda" or (device_option == "auto" and torch.cuda.is_available())
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return DistributedContext(0, 1, torch.device("cuda" if use_cuda else "cpu"))
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", os.environ["RANK"]))
    if use_cuda:
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", rank=rank, world_size=world_size)
    return DistributedContext(rank, world_size, device)


def main_rank_value(value: float, context: DistributedContext) -> float:
    """Rank 0's ``value`` on every rank (keeps decisions such as time-based stopping in lockstep).

    Args:
        value: this process's value.
        context: the job; a single process gets ``value`` back.
    """
    if context.world_size == 1:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=context.device)
    dist.broadcast(tensor, 0)
    return float(tensor)


def wait_for_all(context: DistributedContext) -> None:
    """Block until every process of the job gets here (nothing for a single process)."""
    if context.world_size > 1:
        dist.barrier()


def leave_distributed(context: DistributedContext) -> None:
    """Leave the process group, if this process is in one."""
    if context.world_size > 1 and dist.is_initialized():
        dist.destroy_process_group()
