"""Atomic checkpoints: trainable weights + optimizer + scheduler + sampler + RNG states.

Layout inside a run directory::

    checkpoints/step_00000200/model.safetensors   trainable parameters only
    checkpoints/step_00000200/dcp/                 instead, for a full fine-tune under FSDP: trainable
                                                   parameters and optimizer state, one shard file per
                                                   process (torch.distributed.checkpoint)
    checkpoints/step_00000200/state.pt            optimizer, scheduler, scaler, sampler, RNG, counters
    checkpoints/step_00000200/meta.json           step, validation loss; written last
    checkpoints/best.json                         which step had the best validation loss

A checkpoint is written into a temporary directory and renamed into place, so a run killed at
any moment leaves either the complete checkpoint or none. The last ``keep_last`` checkpoints
and the best one are kept.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from slamkit.models.lora import load_trainable_state_dict, trainable_state_dict

_STEP_DIR = re.compile(r"^step_(\d+)$")
DCP_DIR = "dcp"  # sharded weights + optimizer state (torch.distributed.checkpoint), written by every rank


@dataclass
class CheckpointInfo:
    """A checkpoint on disk."""

    path: Path
    step: int
    valid_loss: float | None


def rng_state() -> dict[str, Any]:
    """Every RNG the loop touches."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def list_checkpoints(run_dir: str | Path) -> list[CheckpointInfo]:
    """Complete checkpoints (those with meta.json), oldest first."""
    root = Path(run_dir) / "checkpoints"
    found = []
    if root.is_dir():
        for child in root.iterdir():
            m = _STEP_DIR.match(child.name)
            if m and (child / "meta.json").is_file():
                meta = json.loads((child / "meta.json").read_text())
                found.append(CheckpointInfo(child, int(m.group(1)), meta.get("valid_loss")))
    return sorted(found, key=lambda c: c.step)


def _best_step(root: Path) -> int | None:
    best = root / "best.json"
    return json.loads(best.read_text())["step"] if best.is_file() else None


def save_checkpoint(run_dir: str | Path, step: int, model: torch.nn.Module, state: dict[str, Any],
                    valid_loss: float | None, keep_last: int, weights: dict[str, torch.Tensor] | None = None) -> Path:
    """Write a checkpoint atomically, update best.json, prune old ones. Returns its path.

    ``weights`` (full trainable tensors, e.g. gathered from shards) replaces reading them from ``model``.
    """
    tmp = staging_dir(run_dir, step)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    weights = {k: v.contiguous().cpu() for k, v in (trainable_state_dict(model) if weights is None else weights).items()}
    save_file(weights, str(tmp / "model.safetensors"))
    return finish_checkpoint(run_dir, step, tmp, state, valid_loss, keep_last)


def staging_dir(run_dir: str | Path, step: int) -> Path:
    """Where the checkpoint of ``step`` is assembled before it is renamed into place."""
    return Path(run_dir) / "checkpoints" / f".tmp_step_{step:08d}"


def finish_checkpoint(run_dir: str | Path, step: int, tmp: Path, state: dict[str, Any], valid_loss: float | None,
                      keep_last: int) -> Path:
    """Add ``state.pt`` and ``meta.json`` to the assembled ``tmp`` (weights already there), rename it
    into place, update best.json, prune old checkpoints. Returns the checkpoint's path."""
    root = Path(run_dir) / "checkpoints"
    final = root / f"step_{step:08d}"
    torch.save(state, tmp / "state.pt")
    (tmp / "meta.json").write_text(json.dumps({"step": step, "valid_loss": valid_loss}))
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _update_best(root, step, valid_loss)
    _prune(run_dir, keep_last)
    return final


def _update_best(root: Path, step: int, valid_loss: float | None) -> None:
    if valid_loss is None:
        return
    best = root / "best.json"
    current = json.loads(best.read_text()) if best.is_file() else None
    if current is None or valid_loss <= current["valid_loss"]:
        tmp = root / ".best.json.tmp"
        tmp.write_text(json.dumps({"step": step, "valid_loss": valid_loss}))
        os.replace(tmp, best)


def _prune(run_dir: str | Path, keep_last: int) -> None:
    ckpts = list_checkpoints(run_dir)
    best = _best_step(Path(run_dir) / "checkpoints")
    for info in ckpts[: max(len(ckpts) - max(keep_last, 1), 0)]:
        if info.step != best:
            shutil.rmtree(info.path)


def latest_checkpoint(run_dir: str | Path) -> CheckpointInfo | None:
    """The newest complete checkpoint, or None."""
    ckpts = list_checkpoints(run_dir)
    return ckpts[-1] if ckpts else None


def resolve_checkpoint(run_dir: str | Path, which: str) -> Path:
    """``best`` (falls back to latest when nothing was validated), ``latest`` or a directory."""
    if which not in ("best", "latest"):
        path = Path(which)
        if not has_weights(path):
            raise FileNotFoundError(f"decode.checkpoint={which}: no model.safetensors (or dcp/) in that directory")
        return path
    root = Path(run_dir) / "checkpoints"
    best = _best_step(root)
    if which == "best" and best is not None and (root / f"step_{best:08d}" / "meta.json").is_file():
        return root / f"step_{best:08d}"
    latest = latest_checkpoint(run_dir)
    if latest is None:
        raise FileNotFoundError(f"{run_dir}: no checkpoint found under checkpoints/ (did training run?)")
    return latest.path


def resolve_init_checkpoint(spec: str) -> Path:
    """The checkpoint directory ``train.init_from`` names: a checkpoint directory, or a run
    directory (its latest checkpoint)."""
    path = Path(spec).expanduser()
    if has_weights(path):
        return path
    if (path / "checkpoints").is_dir():
        latest = latest_checkpoint(path)
        if latest is not None:
            return latest.path
    raise FileNotFoundError(f"train.init_from={spec}: neither a checkpoint directory (with model.safetensors) "
                            "nor a run directory with checkpoints")


def has_weights(ckpt_dir: str | Path) -> bool:
    """Whether ``ckpt_dir`` holds trainable weights (``model.safetensors``, or a sharded ``dcp/``)."""
    return (Path(ckpt_dir) / "model.safetensors").is_file() or (Path(ckpt_dir) / DCP_DIR).is_dir()


def load_weights(model: torch.nn.Module, ckpt_dir: str | Path) -> None:
    """Load a checkpoint's trainable weights into ``model`` (one process; a sharded ``dcp/`` checkpoint
    written by any number of processes is read into it too)."""
    if (Path(ckpt_dir) / DCP_DIR).is_dir():
        import torch.distributed.checkpoint as dcp

        views = {n: p.data for n, p in model.named_parameters() if p.requires_grad}
        with warnings.catch_warnings():  # reading in one process is the point here, not a mistake
            warnings.filterwarnings("ignore", message="torch.distributed is disabled")
            dcp.load({"model": views}, checkpoint_id=str(Path(ckpt_dir) / DCP_DIR))
        return
    path = Path(ckpt_dir) / "model.safetensors"
    load_trainable_state_dict(model, load_file(str(path)), str(path))


def read_weights(ckpt_dir: str | Path) -> dict[str, torch.Tensor]:
    """A checkpoint's trainable weights, by name (CPU tensors)."""
    return load_file(str(Path(ckpt_dir) / "model.safetensors"))


def load_state(ckpt_dir: str | Path) -> dict[str, Any]:
    """The non-weight training state of a checkpoint."""
    return torch.load(Path(ckpt_dir) / "state.pt", weights_only=False)
