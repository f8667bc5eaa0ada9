"""Device, precision and process groups: all of it, in one place.

The training loop asks this module for a :class:`Dist` (rank, world size, device), an autocast
context and a gradient scaler, and lets it wrap the model; it never branches on CUDA, dtype or
launcher flags itself.

Under ``torchrun`` (``WORLD_SIZE`` > 1) :func:`setup` joins the process group (nccl on CUDA, gloo
on CPU) and ``train.strategy`` picks how the model is wrapped:

- ``ddp`` (the default there) replicates it and all-reduces the gradients of the trainable
  parameters only, once per optimizer step (:meth:`Dist.sync_context` turns synchronisation off
  for the other micro-batches);
- ``fsdp`` shards it with FSDP2 (``fully_shard``): every encoder transformer layer and every LLM
  decoder layer is a unit, then the rest; frozen weights are sharded too, so a base that does not
  fit one device fits N. Gradients are reduced in float32 (compute in the autocast precision).
  Weights and optimizer state are gathered to full tensors for checkpoints
  (:meth:`Dist.trainable_state`, :meth:`Dist.optimizer_state`), so a checkpoint written by N
  processes loads in one.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ContextManager

import torch
import torch.distributed as torch_dist
from torch import nn

log = logging.getLogger(__name__)

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
STRATEGIES = ("auto", "single", "ddp", "fsdp")


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


def autocast(precision: str, device: torch.device, key: str = "train.precision") -> ContextManager:
    """Autocast context for ``precision`` (fp32 = no autocast); ``key`` names the setting in errors."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = AUTOCAST_DTYPES[precision]
    if device.type == "cpu" and dtype == torch.float16:
        raise ValueError(f"{key}=fp16 is not supported on CPU; use bf16 or fp32")
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

    @property
    def sharded(self) -> bool:
        """True under FSDP: every rank must run every forward (the weights are gathered on the fly)."""
        return self.strategy == "fsdp"

    def wrap(self, model: nn.Module, find_unused: bool = False, precision: str = "fp32") -> nn.Module:
        """The module the loop calls: ``model`` itself, a DDP replica that all-reduces the gradients
        of its trainable parameters (frozen ones are not synchronised), or ``model`` sharded in place (FSDP)."""
        if self.strategy == "single":
            return model
        if self.strategy == "fsdp":
            return _fully_shard(model, self.device, self.world, precision)
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=find_unused)

    def sync_context(self, model: nn.Module, sync: bool) -> ContextManager:
        """Gradient synchronisation on (``sync``) or off for this micro-batch's forward and backward."""
        if sync:
            return contextlib.nullcontext()
        if isinstance(model, nn.parallel.DistributedDataParallel):
            return model.no_sync()
        if self.sharded:
            return _no_gradient_sync(model)
        return contextlib.nullcontext()

    def trainable_state(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """Full (gathered) trainable weights on the CPU, by name; every rank must call it under FSDP."""
        if not self.sharded:
            return {n: p.detach().contiguous().cpu() for n, p in model.named_parameters() if p.requires_grad}
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        options = StateDictOptions(full_state_dict=True, cpu_offload=True, ignore_frozen_params=True)
        state = get_model_state_dict(model, options=options)
        return {k: v.contiguous() for k, v in state.items()}

    def load_trainable(self, model: nn.Module, state: dict[str, torch.Tensor]) -> None:
        """Load full trainable weights into a sharded model (every rank reads the same file)."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

        set_model_state_dict(model, state, options=StateDictOptions(full_state_dict=True, strict=False))

    def optimizer_state(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        """The optimizer's state for a checkpoint (gathered by parameter name under FSDP; collective)."""
        if not self.sharded:
            return optimizer.state_dict()
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        return get_optimizer_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))

    def save_sharded(self, model: nn.Module, optimizer: torch.optim.Optimizer, path: Path) -> None:
        """Every rank writes its shards of the trainable weights and optimizer state (torch.distributed.checkpoint)."""
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

        model_sd, optim_sd = get_state_dict(model, optimizer, options=StateDictOptions(ignore_frozen_params=True))
        dcp.save({"model": model_sd, "optim": optim_sd}, checkpoint_id=str(path))

    def load_sharded(self, model: nn.Module, optimizer: torch.optim.Optimizer, path: Path) -> None:
        """Read :meth:`save_sharded` output into this job's shards (any number of processes wrote it)."""
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict, set_state_dict

        model_sd, optim_sd = get_state_dict(model, optimizer, options=StateDictOptions(ignore_frozen_params=True))
        state = {"model": model_sd, "optim": optim_sd}
        dcp.load(state, checkpoint_id=str(path))
        # the frozen base is not in the checkpoint: it comes from the model's own weights
        set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"],
                       options=StateDictOptions(strict=False))

    def load_optimizer_state(self, model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
        """Restore :meth:`optimizer_state` output (either layout: by index, or by parameter name)."""
        by_name = any(isinstance(k, str) for k in state.get("state", {}))
        if not by_name and not self.sharded:
            optimizer.load_state_dict(state)
            return
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        set_optimizer_state_dict(model, optimizer, state, options=StateDictOptions(full_state_dict=True))

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


def decoder_layers(llm: nn.Module) -> list[nn.Module]:
    """The LLM's decoder layers: the ModuleList as long as its config's ``num_hidden_layers``."""
    count = getattr(getattr(llm, "config", None), "num_hidden_layers", None)
    for module in llm.modules():
        if isinstance(module, nn.ModuleList) and len(module) == count:
            return list(module)
    return []


def shard_units(model: nn.Module) -> list[nn.Module]:
    """FSDP units, bottom up: each encoder transformer layer, each LLM decoder layer."""
    units: list[nn.Module] = []
    try:
        units.extend(model.encoder.transformer_layers())
    except NotImplementedError:
        log.warning("%s exposes no transformer layers: it is sharded as one unit with the root", type(model.encoder).__name__)
    units.extend(decoder_layers(model.llm))
    return units


def checkpoint_activations(model: nn.Module) -> int:
    """``train.activation_checkpointing``: every LLM decoder layer, and every encoder transformer
    layer when the encoder trains, recomputes its activations in the backward pass instead of
    keeping them (non-reentrant ``torch.utils.checkpoint``, so frozen layers still pass gradients to
    LoRA and the projector). Parameter names do not change. Returns the number of layers wrapped."""
    layers = list(decoder_layers(model.llm))
    if any(p.requires_grad for p in model.encoder.parameters()):
        try:
            layers.extend(model.encoder.transformer_layers())
        except NotImplementedError:
            log.warning("%s exposes no transformer layers: its activations are kept", type(model.encoder).__name__)
    for layer in layers:
        layer.forward = _recomputed(layer, layer.forward)
    return len(layers)


def _recomputed(layer: nn.Module, forward):
    """``forward`` run under activation checkpointing while ``layer`` trains with gradients on."""
    from torch.utils.checkpoint import checkpoint

    def run(*args: Any, **kwargs: Any) -> Any:
        if not (layer.training and torch.is_grad_enabled()):
            return forward(*args, **kwargs)
        return checkpoint(forward, *args, use_reentrant=False, **kwargs)

    return run


def _fully_shard(model: nn.Module, device: torch.device, world: int, precision: str) -> nn.Module:
    """FSDP2 in place: one unit per layer, then the root; reduce in float32, compute in ``precision``."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mesh = init_device_mesh(device.type, (world,))
    policy = MixedPrecisionPolicy(param_dtype=AUTOCAST_DTYPES.get(precision), reduce_dtype=torch.float32)
    for unit in shard_units(model):
        fully_shard(unit, mesh=mesh, mp_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=policy)
    return model


@contextlib.contextmanager
def _no_gradient_sync(model: nn.Module):
    """FSDP2's ``no_sync``: gradients accumulate unreduced until the window's last micro-batch."""
    model.set_requires_gradient_sync(False)
    try:
        yield
    finally:
        model.set_requires_gradient_sync(True)


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
    if world == 1 and not (strategy in ("ddp", "fsdp") and "MASTER_ADDR" in os.environ):
        return Dist(0, 1, 0, dev, "single")  # alone (a strategy named under torchrun with one process still wraps)
    if strategy == "single":
        raise ValueError(f"train.strategy=single, but WORLD_SIZE={world}: use ddp (or auto) under torchrun")
    if dev.type == "cuda":
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    if not torch_dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        torch_dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30))
        log.info("rank %d of %d joined the %s process group on %s", rank, world, backend, dev)
    return Dist(rank, world, local_rank, dev, "fsdp" if strategy == "fsdp" else "ddp")


def teardown() -> None:
    """Leave the process group (at the end of a run), once every rank got there."""
    if torch_dist.is_initialized():
        torch_dist.barrier()
        torch_dist.destroy_process_group()
