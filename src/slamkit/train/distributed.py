"""Device, precision and (later) process-group set-up: all of it, in one place.

The training loop asks this module for a device, an autocast context and a gradient scaler; it
never branches on CUDA, dtype or launcher flags itself. Multi-process launch (torchrun / DDP /
FSDP) plugs in here.
"""

from __future__ import annotations

import contextlib
import os
from typing import ContextManager

import torch

_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then MPS, then CPU; other names are checked for availability."""
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
