"""Training on several processes with :class:`torch.nn.parallel.DistributedDataParallel`.

``torchrun --nproc-per-node N -m lociseg train ...`` (or ``lociseg train
--nproc N``, which starts torchrun) runs N copies of the one training loop
(:func:`lociseg.train.train`). Each rank builds its shard of every batch
(samples ``rank, rank + N, ...``; each sample has its own seed, so the shards
together are the one-process batch), gradients are averaged across ranks
(gloo on CPU, NCCL on CUDA, one GPU per rank), and rank 0 alone writes the
log and the checkpoints, which are those of the unwrapped model and load
anywhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from ..errors import ConfigError


@dataclass(frozen=True)
class Ranks:
    """Where this process stands in a distributed run (one process: rank 0 of 1).

    Attributes
    ----------
    rank, world, local : int
        Global rank, number of processes, rank on this machine (torchrun's
        ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``).
    """

    rank: int = 0
    world: int = 1
    local: int = 0

    @property
    def main(self) -> bool:
        """Whether this process writes the log and checkpoints."""
        return self.rank == 0

    @property
    def shard(self) -> tuple[int, int]:
        """``(rank, world)``: which samples of each batch this rank builds."""
        return (self.rank, self.world)


def ranks_from_env() -> Ranks:
    """The ranks torchrun sets in the environment (none set: a one-process run)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Ranks()
    return Ranks(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))


def setup(ranks: Ranks, device: torch.device, batch_size: int) -> torch.device:
    """Join the process group (gloo on CPU, NCCL on CUDA); the device of this rank.

    Raises
    ------
    ConfigError
        The batch does not split evenly across ranks, or the device cannot be shared (MPS).
    """
    if ranks.world == 1:
        return device
    if batch_size % ranks.world:
        raise ConfigError(
            f"optim.batch_size ({batch_size}) must be a multiple of the number of processes ({ranks.world})"
        )
    if device.type == "cuda":
        device = torch.device("cuda", ranks.local % torch.cuda.device_count())
        torch.cuda.set_device(device)
        backend = "nccl"
    elif device.type == "cpu":
        backend = "gloo"
    else:
        raise ConfigError(f"distributed training runs on CPU or CUDA, not {device.type}")
    if not dist.is_initialized():
        dist.init_process_group(backend, rank=ranks.rank, world_size=ranks.world)
    return device


def teardown(ranks: Ranks) -> None:
    """Leave the process group (after the last collective call)."""
    if ranks.world > 1 and dist.is_initialized():
        dist.destroy_process_group()


class _Loss(torch.nn.Module):
    """The model's ``training_loss`` as ``forward``, so DistributedDataParallel sees the pass it syncs."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, Any], step: int) -> Any:
        return self.model.training_loss(batch, step)


def loss_fn(model: torch.nn.Module, ranks: Ranks, device: torch.device) -> Any:
    """``fn(batch, step) -> (loss, parts)``: the model's training loss, with gradients averaged across ranks."""
    if ranks.world == 1:
        return model.training_loss
    ids = [device.index] if device.type == "cuda" else None
    # some heads (aux, collaborator) only take part in some modes or steps
    return torch.nn.parallel.DistributedDataParallel(_Loss(model), device_ids=ids, find_unused_parameters=True)


def mean(value: float, ranks: Ranks, device: torch.device) -> float:
    """The mean of ``value`` over ranks (the loss of the whole batch when each rank's is its shard's mean)."""
    if ranks.world == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item()) / ranks.world


def any_rank(flag: bool, ranks: Ranks, device: torch.device) -> bool:
    """True on every rank when ``flag`` is True on any (so all ranks stop at the same step)."""
    if ranks.world == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def barrier(ranks: Ranks) -> None:
    """Wait for every rank (e.g. until rank 0 has prepared the run folder)."""
    if ranks.world > 1:
        dist.barrier()
