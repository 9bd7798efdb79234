"""PyTorch's own distributed engine: torchrun sets RANK, WORLD_SIZE, LOCAL_RANK; NCCL on GPUs, gloo on CPU."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist

from qmra.inference.segmenter import resolve_device


@dataclass
class DistributedContext:
    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def log(self, message: str) -> None:
        if self.is_main:
            print(message, file=sys.stderr, flush=True)

    @classmethod
    def from_environment(cls, device: str) -> "DistributedContext":
        """One process (no torchrun), or this process's place in a torchrun group."""
        resolved = resolve_device(device)
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size == 1:
            return cls(0, 1, resolved)
        rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        if resolved.type == "cuda":
            resolved = torch.device("cuda", local_rank)
            torch.cuda.set_device(resolved)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if resolved.type == "cuda" else "gloo")
        return cls(rank, world_size, resolved)

    def close(self) -> None:
        if self.world_size > 1 and dist.is_initialized():
            dist.destroy_process_group()
