"""Checkpoint averaging: one checkpoint whose trainable weights are the element-wise mean of several.

The mean of the last few checkpoints of a run (or of the few with the lowest validation loss) often
decodes a little better than any one of them, as ESPnet and NeMo users know: the weights of one
checkpoint carry the noise of the last batches, and their mean does not. ``slamkit average`` writes
the mean as a checkpoint directory that ``decode.checkpoint=DIR`` (decode, serve) and
``train.init_from=DIR`` take like any other::

    RUN/averaged/last5_step_00009000/model.safetensors   the mean (each tensor in its own dtype)
    RUN/averaged/last5_step_00009000/meta.json           which checkpoints, and the file's size and sha256

Only the trainable weights are averaged (projector, LoRA, whatever trained); the frozen encoder and
LLM are the same in every checkpoint. The mean is taken in float64 and stored in each tensor's dtype;
integer tensors (none in today's models) are taken from the newest checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

from slamkit.train.checkpoint import DCP_DIR, META, CheckpointInfo, check_checkpoint, list_checkpoints, read_weights

__all__ = ["Averaged", "average_checkpoints", "average_run", "select_checkpoints"]


@dataclass
class Averaged:
    """What :func:`average_run` wrote: the directory and the steps whose weights it averages."""

    path: Path
    steps: list[int]


def select_checkpoints(run_dir: str | Path, last: int | None = None, best: int | None = None,
                       steps: list[int] | None = None) -> tuple[list[CheckpointInfo], str]:
    """The checkpoints of ``run_dir`` to average, oldest first, and a short name for the choice
    (``last5``, ``best3``, ``steps``): the ``last`` newest, the ``best`` with the lowest validation
    loss, or the given ``steps``. Exactly one of the three is given. Raises ValueError naming what is
    missing or damaged."""
    if sum(x is not None for x in (last, best, steps)) != 1:
        raise ValueError("give exactly one of --last N, --best N, --steps S …")
    count = last if last is not None else best
    if count is not None and count < 1:
        raise ValueError(f"--{'last' if last is not None else 'best'} must be at least 1, got {count}")
    ckpts = list_checkpoints(run_dir)
    if not ckpts:
        raise ValueError(f"{run_dir}: no checkpoint under checkpoints/ (did training run?)")
    if steps is not None:
        chosen, name = _by_step(run_dir, ckpts, steps), "steps"
    elif last is not None:
        if len(ckpts) < last:
            raise ValueError(f"--last {last}: {run_dir} has {len(ckpts)} checkpoint(s)")
        chosen, name = ckpts[-last:], f"last{last}"
    else:
        assert best is not None
        scored = [c for c in ckpts if c.valid_loss is not None and math.isfinite(c.valid_loss)]
        if len(scored) < best:
            raise ValueError(f"--best {best}: {run_dir} has {len(scored)} checkpoint(s) with a validation loss "
                             "(set data.valid when training, or use --last)")
        chosen, name = sorted(sorted(scored, key=lambda c: c.valid_loss or 0.0)[:best], key=lambda c: c.step), f"best{best}"
    for c in chosen:
        _check_usable(c)
    return chosen, name


def _by_step(run_dir: str | Path, ckpts: list[CheckpointInfo], steps: list[int]) -> list[CheckpointInfo]:
    """The checkpoints of the given steps, oldest first; ValueError naming a step that has none."""
    if len(set(steps)) != len(steps):
        raise ValueError(f"--steps: a step is given twice ({' '.join(map(str, steps))})")
    have = {c.step: c for c in ckpts}
    missing = [s for s in steps if s not in have]
    if missing:
        raise ValueError(f"--steps: {run_dir} has no checkpoint at step {', '.join(map(str, missing))} "
                         f"(it has {', '.join(str(c.step) for c in ckpts)})")
    return sorted((have[s] for s in steps), key=lambda c: c.step)


def _check_usable(ckpt: CheckpointInfo) -> None:
    """ValueError when ``ckpt`` is damaged or holds sharded weights, which averaging does not read."""
    if (ckpt.path / DCP_DIR).is_dir():
        raise ValueError(f"{ckpt.path}: a sharded dcp/ checkpoint (full fine-tune under FSDP); averaging reads "
                         "model.safetensors only")
    problem = check_checkpoint(ckpt.path)
    if problem is not None:
        raise ValueError(f"{ckpt.path}: {problem}; leave it out (--steps) to average the others")


def average_checkpoints(paths: list[Path]) -> dict[str, torch.Tensor]:
    """The element-wise mean of the checkpoints' trainable weights (each tensor in its own dtype).
    ValueError when they do not hold the same tensors with the same shapes."""
    if not paths:
        raise ValueError("nothing to average")
    first = read_weights(paths[0])
    sums = {k: v.to(torch.float64) for k, v in first.items() if v.is_floating_point()}
    for path in paths[1:]:
        weights = read_weights(path)
        if weights.keys() != first.keys():
            diff = sorted(weights.keys() ^ first.keys())
            raise ValueError(f"{path}: holds other tensors than {paths[0]} ({', '.join(diff[:3])}"
                             f"{' …' if len(diff) > 3 else ''}); average checkpoints of one run")
        for k, v in weights.items():
            if v.shape != first[k].shape:
                raise ValueError(f"{path}: {k} has shape {tuple(v.shape)}, {paths[0]} has {tuple(first[k].shape)}")
            if k in sums:
                sums[k] += v.to(torch.float64)
    newest = read_weights(paths[-1])
    return {k: (sums[k] / len(paths)).to(first[k].dtype).contiguous() if k in sums else newest[k] for k in first}


def average_run(run_dir: str | Path, last: int | None = None, best: int | None = None,
                steps: list[int] | None = None, out: str | Path | None = None) -> Averaged:
    """Average the chosen checkpoints of ``run_dir`` (see :func:`select_checkpoints`) into ``out``
    (default ``RUN/averaged/<choice>_step_<newest>``), a new directory; returns it and the steps."""
    chosen, name = select_checkpoints(run_dir, last, best, steps)
    dest = Path(out) if out is not None else Path(run_dir) / "averaged" / f"{name}_{chosen[-1].path.name}"
    if dest.exists():
        raise FileExistsError(f"{dest} exists already (remove it, or choose another --out)")
    weights = average_checkpoints([c.path for c in chosen])
    tmp = dest.with_name(f".tmp_{dest.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(weights, str(tmp / "model.safetensors"))
    data = (tmp / "model.safetensors").read_bytes()
    meta = {"step": chosen[-1].step, "valid_loss": None,
            "averaged_from": [{"step": c.step, "valid_loss": c.valid_loss, "path": str(c.path)} for c in chosen],
            "files": {"model.safetensors": {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}}}
    (tmp / META).write_text(json.dumps(meta, indent=1) + "\n")
    os.replace(tmp, dest)
    return Averaged(dest, [c.step for c in chosen])
