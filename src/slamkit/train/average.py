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
integer tensors (none in today's models) are taken from the newest checkpoint. It holds the float64
sums, the first checkpoint and the one being read: about 16 bytes per float32 trainable parameter
(90 MB for the reference adapter's 5.6 M; 21 GB for a full fine-tune of a 1.3 B-parameter LLM).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

from slamkit.train.checkpoint import (
    DCP_DIR,
    META,
    CheckpointInfo,
    _seal,
    _write_durably,
    check_checkpoint,
    list_checkpoints,
    read_weights,
)

__all__ = ["Averaged", "average_checkpoints", "average_run", "select_checkpoints"]


@dataclass
class Averaged:
    """What :func:`average_run` wrote: the directory and the steps whose weights it averages."""

    path: Path
    steps: list[int]


def select_checkpoints(run_dir: str | Path, last: int | None = None, best: int | None = None,
                       steps: list[int] | None = None) -> tuple[list[CheckpointInfo], str]:
    """The checkpoints of ``run_dir`` to average, oldest first, and a short name for the choice
    (``last5``, ``best3``, ``steps_800-1000``): the ``last`` newest, the ``best`` with the lowest
    validation loss (of equal losses, the newer), or the given ``steps``. Exactly one of the three is
    given. Raises ValueError naming what is missing or damaged."""
    if sum(x is not None for x in (last, best, steps)) != 1:
        raise ValueError("give exactly one of --last N, --best N, --steps S …")
    ckpts = _checkpoints_of(run_dir)
    if steps is not None:
        chosen, name = _by_step(run_dir, ckpts, steps), "steps_" + "-".join(str(s) for s in sorted(steps))
    elif last is not None:
        _at_least_one("--last", last)
        if len(ckpts) < last:
            raise ValueError(f"--last {last}: {run_dir} has {len(ckpts)} checkpoint(s)")
        chosen, name = ckpts[-last:], f"last{last}"
    else:
        chosen, name = _by_loss(run_dir, ckpts, best), f"best{best}"
    for c in chosen:
        _check_usable(c)
    return chosen, name


def _checkpoints_of(run_dir: str | Path) -> list[CheckpointInfo]:
    """The run's checkpoints, oldest first; ValueError when the folder or its checkpoints are missing."""
    if not Path(run_dir).is_dir():
        raise ValueError(f"{run_dir}: no such run directory")
    ckpts = list_checkpoints(run_dir)
    if not ckpts:
        raise ValueError(f"{run_dir}: no checkpoint under checkpoints/ (did training run?)")
    return ckpts


def _at_least_one(flag: str, count: int) -> None:
    if count < 1:
        raise ValueError(f"{flag} must be at least 1, got {count}")


def _by_loss(run_dir: str | Path, ckpts: list[CheckpointInfo], best: int | None) -> list[CheckpointInfo]:
    """The ``best`` checkpoints with the lowest finite validation loss (ties: the newer), oldest first."""
    if best is None:
        raise ValueError("--best needs a count")
    _at_least_one("--best", best)
    scored = [(c.valid_loss, c) for c in ckpts if c.valid_loss is not None and math.isfinite(c.valid_loss)]
    if len(scored) < best:
        unscored = sum(c.valid_loss is None for c in ckpts)
        why = (f"; {unscored} have none (set data.valid when training)" if unscored else "") + \
              (f"; {len(ckpts) - len(scored) - unscored} have one that is not finite" if len(ckpts) - len(scored) - unscored else "")
        raise ValueError(f"--best {best}: {run_dir} has {len(scored)} checkpoint(s) with a finite validation loss{why}; "
                         "use --last or --steps")
    ranked = sorted(scored, key=lambda lc: (lc[0], -lc[1].step))[:best]
    return sorted((c for _, c in ranked), key=lambda c: c.step)


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


def _read(path: Path) -> dict[str, torch.Tensor]:
    """A checkpoint's weights; ValueError naming the file when it cannot be read."""
    try:
        return read_weights(path)
    except Exception as exc:  # safetensors raises its own error type for a damaged file
        raise ValueError(f"{path / 'model.safetensors'}: cannot be read ({exc})") from exc


def _same_layout(path: Path, weights: dict[str, torch.Tensor], first_path: Path, first: dict[str, torch.Tensor]) -> None:
    """ValueError unless ``weights`` holds the tensors of ``first`` with the same shapes and dtypes."""
    if weights.keys() != first.keys():
        diff = sorted(weights.keys() ^ first.keys())
        raise ValueError(f"{path}: holds other tensors than {first_path} ({', '.join(diff[:3])}"
                         f"{' …' if len(diff) > 3 else ''}); average checkpoints of one run")
    for k, v in weights.items():
        if v.shape != first[k].shape or v.dtype != first[k].dtype:
            raise ValueError(f"{path}: {k} is {tuple(v.shape)} {v.dtype}, in {first_path} {tuple(first[k].shape)} {first[k].dtype}")


def average_checkpoints(paths: list[Path]) -> dict[str, torch.Tensor]:
    """The element-wise mean of the checkpoints' trainable weights (each tensor in its own dtype).
    ValueError when they do not hold the same tensors with the same shapes and dtypes."""
    if not paths:
        raise ValueError("nothing to average")
    first = weights = _read(paths[0])
    sums = {k: v.to(torch.float64) for k, v in first.items() if v.is_floating_point()}
    for path in paths[1:]:
        weights = _read(path)
        _same_layout(path, weights, paths[0], first)
        for k in sums:
            sums[k] += weights[k].to(torch.float64)
    return {k: (sums[k] / len(paths)).to(v.dtype).contiguous() if k in sums else v for k, v in weights.items()}


def _check_destination(run_dir: str | Path, dest: Path) -> None:
    """Refuse an existing ``dest``, or one inside the run's ``checkpoints/`` (it would pass for a checkpoint
    there: resumed from, counted by ``keep_last``)."""
    if dest.exists():
        raise FileExistsError(f"{dest} exists already (remove it, or choose another --out)")
    root = (Path(run_dir) / "checkpoints").resolve()
    if root == dest.resolve() or root in dest.resolve().parents:
        raise ValueError(f"--out {dest}: inside the run's checkpoints/, where it would pass for a training "
                         "checkpoint; choose a folder outside it")


def average_run(run_dir: str | Path, last: int | None = None, best: int | None = None,
                steps: list[int] | None = None, out: str | Path | None = None) -> Averaged:
    """Average the chosen checkpoints of ``run_dir`` (see :func:`select_checkpoints`) into ``out``
    (default ``RUN/averaged/<choice>_step_<newest>``), a new directory; returns it and the steps.
    Nothing is left behind when it fails."""
    chosen, name = select_checkpoints(run_dir, last, best, steps)
    dest = Path(out) if out is not None else Path(run_dir) / "averaged" / f"{name}_{chosen[-1].path.name}"
    _check_destination(run_dir, dest)
    weights = average_checkpoints([c.path for c in chosen])
    meta = {"step": chosen[-1].step, "valid_loss": None,
            "averaged_from": [{"step": c.step, "valid_loss": c.valid_loss, "path": str(c.path)} for c in chosen]}
    made = [p for p in (dest.parent, *dest.parent.parents) if not p.exists()]
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp_{dest.name}_", dir=dest.parent))
    try:
        _write(tmp, weights, meta)
        os.replace(tmp, dest)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        for folder in made:  # the folders this call made, innermost first
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise ValueError(f"cannot write {dest}: {exc}; nothing was written") from exc
    return Averaged(dest, [c.step for c in chosen])


def _write(folder: Path, weights: dict[str, torch.Tensor], meta: dict[str, object]) -> None:
    """``model.safetensors`` and, last, ``meta.json`` with its size and sha256, both flushed to disk (as
    training writes a checkpoint's files)."""
    save_file(weights, str(folder / "model.safetensors"))
    meta = {**meta, "files": {"model.safetensors": _seal(folder / "model.safetensors")}}
    _write_durably(folder / META, json.dumps(meta, indent=1) + "\n")
