"""Strict weight loading shared by every model part: checkpoint errors, key/shape checks, and
readers for Hugging Face checkpoint directories (config.json + safetensors or pytorch_model.bin,
sharded or not).

A checkpoint never loads partially: every reader here either returns exactly the tensors asked
for or raises :class:`CheckpointError` naming the file and the first missing / unexpected keys.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import safe_open
from torch import Tensor


class CheckpointError(ValueError):
    """A file that cannot be read as the checkpoint format it claims to be (names the file)."""


class MissingWeightsError(CheckpointError, FileNotFoundError):
    """A checkpoint directory without its weight files."""


def check_state_dict(expected: dict[str, tuple[int, ...]], state: dict[str, Tensor], source: str, fmt: str) -> None:
    """Raise :class:`CheckpointError` unless ``state`` has exactly the ``expected`` keys and shapes.

    ``source`` names the file and ``fmt`` the format it was read as (e.g. "BEATs .pt (cfg + model)");
    the message lists the first five missing and unexpected keys or mismatched shapes.
    """
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise CheckpointError(
            f"{source}: not a {fmt} checkpoint for this config: {len(missing)} missing keys {missing[:5]}, "
            f"{len(unexpected)} unexpected keys {unexpected[:5]}"
        )
    wrong = [f"{k} {tuple(state[k].shape)} != {tuple(shape)}" for k, shape in expected.items() if tuple(state[k].shape) != tuple(shape)]
    if wrong:
        raise CheckpointError(f"{source}: {fmt} tensor shapes do not fit the config: {wrong[:5]}")


def load_state_strict(module: torch.nn.Module, state: dict[str, Tensor], source: str, fmt: str) -> None:
    """Load ``state`` into ``module`` after :func:`check_state_dict`: all keys, right shapes, or a clear error."""
    check_state_dict({k: tuple(v.shape) for k, v in module.state_dict().items()}, state, source, fmt)
    module.load_state_dict(state, strict=True)


def hf_weight_files(path: Path) -> list[Path]:
    """The weight files of the HF directory ``path`` (sharded or single; safetensors preferred)."""
    for index in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if (path / index).is_file():
            weight_map = json.loads((path / index).read_text())["weight_map"]
            return sorted({path / name for name in weight_map.values()})
    for single in ("model.safetensors", "pytorch_model.bin"):
        if (path / single).is_file():
            return [path / single]
    raise MissingWeightsError(f"{path}: no model.safetensors or pytorch_model.bin (sharded or not)")


def hf_tensor_keys(files: list[Path]) -> list[str]:
    """Every key of ``files`` (safetensors headers only; ``.bin`` files memory-mapped)."""
    keys: list[str] = []
    for file in files:
        if file.suffix == ".safetensors":
            with safe_open(str(file), framework="pt") as f:
                keys.extend(f.keys())
        else:
            keys.extend(torch.load(file, map_location="cpu", weights_only=True, mmap=True).keys())
    return keys


def read_hf_tensors(files: list[Path], keep: Callable[[str], bool]) -> dict[str, Tensor]:
    """The tensors of ``files`` whose key passes ``keep`` (others are never read from safetensors)."""
    state: dict[str, Tensor] = {}
    for file in files:
        if file.suffix == ".safetensors":
            with safe_open(str(file), framework="pt") as f:
                state.update({k: f.get_tensor(k) for k in f.keys() if keep(k)})
        else:
            loaded = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
            state.update({k: v for k, v in loaded.items() if keep(k)})
    return state


def read_hf_config(path: Path, model_types: tuple[str, ...]) -> dict[str, Any]:
    """``config.json`` of ``path`` as a dict, after checking its ``model_type``."""
    if not path.is_dir():
        raise FileNotFoundError(f"{str(path)!r} is not a local directory")
    file = path / "config.json"
    if not file.is_file():
        raise CheckpointError(f"{path}: no config.json (expected a Hugging Face directory)")
    meta = json.loads(file.read_text())
    if meta.get("model_type") not in model_types:
        raise CheckpointError(f"{file}: model_type {meta.get('model_type')!r}, expected one of {list(model_types)}")
    return meta


def float32_state(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """``state`` with every floating-point tensor cast to float32 (integer tensors kept)."""
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
