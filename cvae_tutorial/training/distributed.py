"""Data-parallel training (DDP under ``torchrun``): who this process is, and what the ranks share.

One process is the ordinary path: every function here is then a no-op or returns (0, 1).
"""
from __future__ import annotations

import io
import os

import torch
import torch.distributed as dist

from ..config import ConfigError, resolve_device

LOGGED_TERMS = ("loss", "recon", "kl", "mse")  # the per-step loss terms an epoch sums


def distributed_world():
    """(rank, world size) of this process: (0, 1) unless a process group is initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_rng_states(rng: dict, world_size: int) -> list:
    """Every rank's RNG state (sent as torch.save bytes: all_gather_object cannot carry the
    tensors inside these states, and bytes read back with weights_only=True stay safe)."""
    buffer = io.BytesIO()
    torch.save(rng, buffer)
    gathered = [None] * world_size
    dist.all_gather_object(gathered, buffer.getvalue())
    return [torch.load(io.BytesIO(data), weights_only=True) for data in gathered]


def reduce_running(running: dict | None, device: torch.device) -> dict | None:
    """Running sums added over all ranks (seconds: the slowest rank's)."""
    if running is None:
        return None
    keys = [*LOGGED_TERMS, "steps"]
    summed = torch.tensor([float(running[key]) for key in keys], dtype=torch.float64,
                          device=device)
    dist.all_reduce(summed)
    seconds = torch.tensor([running["seconds"]], dtype=torch.float64, device=device)
    dist.all_reduce(seconds, op=dist.ReduceOp.MAX)
    reduced = dict(zip(keys, summed.tolist()))
    reduced["steps"] = int(reduced["steps"])
    return {**reduced, "seconds": seconds.item()}


def init_distributed(device_option: str):
    """Join the torchrun process group (env://) when there are several processes.

    Returns the device this process trains on: its own GPU (LOCAL_RANK) with NCCL, else the CPU
    with gloo. One process (plain `python -m` or torchrun with one) is the single-device path.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return device_option
    if "MASTER_ADDR" not in os.environ:
        raise ConfigError(f"WORLD_SIZE={world_size} but MASTER_ADDR is not set: start several "
                          f"processes with torchrun --nproc_per_node=N -m cvae_tutorial.training")
    cuda = resolve_device(device_option).type == "cuda"
    if cuda:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(f"process {local_rank} has no GPU of its own (this machine has "
                              f"{torch.cuda.device_count()}); use --nproc_per_node <= the GPU "
                              f"count")
        torch.cuda.set_device(local_rank)
        device_option = f"cuda:{local_rank}"
    dist.init_process_group("nccl" if cuda else "gloo", init_method="env://")
    return device_option
