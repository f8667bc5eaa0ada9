"""Device, precision and process groups: all of it, in one place.

The training loop asks this module for a :class:`Dist` (rank, world size, device), an autocast
context and a gradient scaler, and lets it wrap the model; it never branches on CUDA, dtype or
launcher flags itself.

Under ``torchrun`` (``WORLD_SIZE`` > 1) :func:`setup` joins the process group (nccl on CUDA, gloo
on CPU) and ``train.strategy`` picks how the model is wrapped: ``ddp`` (the default there)
replicates it and all-reduces the gradients of the trainable parameters only, once per optimizer
step (:meth:`Dist.sync_context` turns synchronisation off for the other micro-batches).
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
from dataclasses import dataclass
from typing import Any, ContextManager

import torch
import torch.distributed as torch_dist
from torch import nn

log = logging.getLogger(__name__)

_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
STRATEGIES = ("auto", "single", "ddp")


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA (this process's ``LOCAL_RANK``), then MPS, then CPU; other names are checked."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"train.device={name}: CUDA is not available on this machine (use auto or cpu)")
    return device


def autocast(precision: str, device: torch.device) -> ContextManager:
    """Autocast context for ``precision`` (fp32 = no autocast)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = _AUTOCAST_DTYPES[precision]
    if device.type == "cpu" and dtype == torch.float16:
        raise ValueError("train.precision=fp16 is not supported on CPU; use bf16 or fp32")
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler:
    """A loss scaler that is active only for fp16 (bf16 and fp32 need none)."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")


@dataclass
class Dist:
    """This process's place in the job: ``rank`` of ``world`` processes, on ``device``."""

    rank: int
    world: int
    local_rank: int
    device: torch.device
    strategy: str

    @property
    def is_main(self) -> bool:
        """Only rank 0 writes the run directory, logs, the progress bar and checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when several processes train together."""
        return self.world > 1

    def wrap(self, model: nn.Module, find_unused: bool = False) -> nn.Module:
        """The module the loop calls: ``model`` itself, or a DDP replica that all-reduces the
        gradients of its trainable parameters (frozen ones are not synchronised)."""
        if self.strategy == "single":
            return model
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=find_unused)

    def sync_context(self, model: nn.Module, sync: bool) -> ContextManager:
        """Gradient synchronisation on (``sync``) or off for this micro-batch's forward and backward."""
        if sync or not isinstance(model, nn.parallel.DistributedDataParallel):
            return contextlib.nullcontext()
        return model.no_sync()

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum of ``values`` over every rank (float64; the values themselves when alone)."""
        if not self.distributed:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64, device=self._comm_device)
        torch_dist.all_reduce(tensor)
        return tensor.tolist()

    def gather(self, obj: Any) -> list[Any]:
        """``obj`` of every rank, in rank order (picklable objects)."""
        if not self.distributed:
            return [obj]
        out: list[Any] = [None] * self.world
        torch_dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        """Wait for every rank."""
        if self.distributed:
            torch_dist.barrier()

    @property
    def _comm_device(self) -> torch.device:
        return self.device if torch_dist.get_backend() == "nccl" else torch.device("cpu")


def setup(strategy: str = "auto", device: str = "auto") -> Dist:
    """Join the process group when launched by torchrun (``WORLD_SIZE`` > 1) and pick the strategy.

    ``auto`` is ``ddp`` with several processes and ``single`` alone; ``single`` under torchrun is
    refused (every rank would train the whole job into one run directory).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"train.strategy={strategy!r}: choose one of {', '.join(STRATEGIES)}")
    world = int(os.environ.get("WORLD_SIZE", 1))
    rank, local_rank = int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0))
    dev = resolve_device(device)
    if world == 1:
        return Dist(0, 1, 0, dev, "single")
    if strategy == "single":
        raise ValueError(f"train.strategy=single, but WORLD_SIZE={world}: use ddp (or auto) under torchrun")
    if dev.type == "cuda":
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    if not torch_dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        torch_dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30))
        log.info("rank %d of %d joined the %s process group on %s", rank, world, backend, dev)
    return Dist(rank, world, local_rank, dev, "ddp")


def teardown() -> None:
    """Leave the process group (at the end of a run)."""
    if torch_dist.is_initialized():
        torch_dist.destroy_process_group()
