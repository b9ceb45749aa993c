"""Process groups and the few collectives the training loop needs.

Every helper also works without a process group (one rank), so the loop has one code path.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, Literal, NoReturn

import torch
import torch.distributed as dist

Backend = Literal["gloo", "nccl"]
# A rank that hangs (dead peer, stuck device) should fail the job within minutes rather than
# hold the devices for NCCL's or gloo's much longer defaults.
COLLECTIVE_TIMEOUT = timedelta(minutes=5)
LOCALHOST = "127.0.0.1"


def backend_for(device: torch.device) -> Backend:
    """NCCL for CUDA devices, gloo for the CPU."""
    return "nccl" if device.type == "cuda" else "gloo"


@contextmanager
def process_group(
    rank: int,
    world_size: int,
    master_port: int,
    backend: Backend = "gloo",
    master_addr: str = LOCALHOST,
) -> Iterator[None]:
    """Join the job's process group (rank 0's store at master_addr:master_port), and always
    leave it on exit."""
    dist.init_process_group(
        backend,
        init_method=f"tcp://{master_addr}:{master_port}",
        rank=rank,
        world_size=world_size,
        timeout=COLLECTIVE_TIMEOUT,
    )
    try:
        yield
        # Every rank is done with the group before any tears it down: rank 0 hosts the
        # rendezvous store, and a rank leaving while a peer still talks to it aborts that
        # peer ("terminate called without an active exception"). Skipped on an error, where
        # the launcher stops the other ranks anyway.
        dist.barrier()
    finally:
        dist.destroy_process_group()


def is_distributed() -> bool:
    """True inside a process group of more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def agree_to_stop(local_flag: bool, device: torch.device) -> bool:
    """True on every rank when any rank wants to stop, so all stop after the same step."""
    if not is_distributed():
        return local_flag
    flag = torch.tensor([int(local_flag)], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def min_across_ranks(value: torch.Tensor) -> torch.Tensor:
    """The element-wise minimum of `value` over all ranks (a copy; the input is untouched)."""
    result = value.clone()
    if is_distributed():
        dist.all_reduce(result, op=dist.ReduceOp.MIN)
    return result


def gather_to_rank0(obj: Any) -> list[Any] | None:
    """Every rank's `obj`, by rank, on rank 0; None on other ranks.

    Objects travel pickled between our own ranks only. With NCCL, the current CUDA device
    must be this rank's (`torch.cuda.set_device`).
    """
    if not is_distributed():
        return [obj]
    rank = dist.get_rank()
    gathered: list[Any] | None = [None] * dist.get_world_size() if rank == 0 else None
    dist.gather_object(obj, gathered, dst=0)
    return gathered


def find_free_port() -> int:
    """A TCP port free on this node now; the caller retries on "address in use" races."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOCALHOST, 0))
        return int(probe.getsockname()[1])


def leave_without_finalizers() -> NoReturn:
    """End a rank process whose work is done, skipping the interpreter's finalization.

    gloo's worker threads can still hold work objects that reference Python tensors after
    the group is destroyed; freeing them while the interpreter is torn down aborts the process
    now and then (SIGABRT, "terminate called without an active exception", discussed in
    pytorch/pytorch#179291), which would turn a finished rank into a failed one.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
