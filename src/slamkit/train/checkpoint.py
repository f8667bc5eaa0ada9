"""Atomic, verified checkpoints: trainable weights + optimizer + scheduler + sampler + RNG states.

Layout inside a run directory::

    checkpoints/step_00000200/model.safetensors   trainable parameters only
    checkpoints/step_00000200/dcp/                 instead, for a full fine-tune under FSDP: trainable
                                                   parameters and optimizer state, one shard file per
                                                   process (torch.distributed.checkpoint)
    checkpoints/step_00000200/state.pt            optimizer, scheduler, scaler, sampler, RNG, counters
    checkpoints/step_00000200/meta.json           step, validation loss, size and sha256 of every other
                                                   file; written last
    checkpoints/best.json                         which step had the best validation loss

Writing: the files are assembled in ``checkpoints/.tmp_step_N/``, flushed to disk (fsync), recorded
in meta.json, and the directory is renamed into place (``os.replace``, then an fsync of
``checkpoints/``), so a run killed at any moment leaves either the complete checkpoint or none. A
write the disk refuses (full, over quota, I/O error) removes the staging directory and raises
:class:`CheckpointWriteError`, which names the intact previous checkpoint. The last ``keep_last``
checkpoints and the best one are kept.

Reading: resuming (and ``decode.checkpoint=best|latest``, ``train.init_from=RUN_DIR``) takes the
newest checkpoint whose files match meta.json; each newer one that does not (a file missing,
truncated or changed) is named in a warning with the reason. A checkpoint written before checksums
were recorded is taken as it is.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import random
import re
import shutil
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from slamkit.models.lora import load_trainable_state_dict, trainable_state_dict

log = logging.getLogger("slamkit")

_STEP_DIR = re.compile(r"^step_(\d+)$")
DCP_DIR = "dcp"  # sharded weights + optimizer state (torch.distributed.checkpoint), written by every rank
META = "meta.json"
_LEFTOVERS = ".*_step_*"  # .tmp_step_N (a write that was interrupted), .old_step_N (a deletion that was)


class CheckpointWriteError(OSError, ValueError):
    """The disk refused a checkpoint (full, over quota, I/O error): its staging directory is removed and
    the previous checkpoint untouched. A ValueError too, so that `slamkit train` reports it in one line."""


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


# ---------------------------------------------------------------------------------------------
# Finding checkpoints, and checking them
# ---------------------------------------------------------------------------------------------


def list_checkpoints(run_dir: str | Path) -> list[CheckpointInfo]:
    """Checkpoints with a meta.json, oldest first (complete when written; :func:`check_checkpoint` says
    whether they still are)."""
    root = Path(run_dir) / "checkpoints"
    found = []
    if root.is_dir():
        for child in root.iterdir():
            m = _STEP_DIR.match(child.name)
            if m and (child / META).is_file():
                meta = _read_meta(child) or {}
                found.append(CheckpointInfo(child, int(m.group(1)), meta.get("valid_loss")))
    return sorted(found, key=lambda c: c.step)


def _read_meta(ckpt_dir: Path) -> dict[str, Any] | None:
    """A checkpoint's meta.json, or None when it is missing or not a JSON object."""
    try:
        meta = json.loads((ckpt_dir / META).read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def check_checkpoint(ckpt_dir: str | Path) -> str | None:
    """Why the checkpoint in ``ckpt_dir`` cannot be used, or None when it is intact: every file its
    meta.json records is there, with that size and sha256. A checkpoint written before checksums were
    recorded (no ``files`` in meta.json) is unverified and accepted when it holds weights."""
    path = Path(ckpt_dir)
    meta = _read_meta(path)
    if meta is None:
        return f"{META} is missing or not valid JSON"
    files = meta.get("files")
    if files is None:
        return None if has_weights(path) else "no model.safetensors or dcp/ (and no checksums to say more)"
    for name, want in files.items():
        problem = _check_file(path / name, want)
        if problem is not None:
            return f"{name} {problem}"
    return None


def _check_file(path: Path, want: dict[str, Any]) -> str | None:
    """What is wrong with one file against its meta.json record (``size``, ``sha256``), or None."""
    try:
        if not path.is_file():
            return "is missing"
        size = path.stat().st_size
        if size != want["size"]:
            return f"is truncated ({size} of {want['size']} bytes)" if size < want["size"] else \
                f"has {size} bytes, {META} recorded {want['size']}"
        with open(path, "rb") as f:
            if _sha256(f) != want["sha256"]:
                return f"does not match its sha256 in {META} (changed or damaged after it was written)"
    except OSError as exc:
        return f"cannot be read ({exc})"
    return None


def _sha256(f: Any) -> str:
    """The sha256 of an open binary file, read from where it stands in 1 MiB pieces."""
    digest = hashlib.sha256()
    for piece in iter(lambda: f.read(1 << 20), b""):
        digest.update(piece)
    return digest.hexdigest()


def _newest_intact(ckpts: list[CheckpointInfo]) -> tuple[CheckpointInfo | None, list[CheckpointInfo]]:
    """The newest of ``ckpts`` (oldest first) that :func:`check_checkpoint` accepts, and the newer ones it
    refused, each named in a warning with the reason."""
    refused = []
    for info in reversed(ckpts):
        problem = check_checkpoint(info.path)
        if problem is None:
            return info, refused
        log.warning("checkpoint %s cannot be used: %s; taking the one before it", info.path, problem)
        refused.append(info)
    return None, refused


def latest_checkpoint(run_dir: str | Path) -> CheckpointInfo | None:
    """The newest checkpoint with a meta.json, or None (its files unchecked: see :func:`intact_checkpoint`)."""
    ckpts = list_checkpoints(run_dir)
    return ckpts[-1] if ckpts else None


def intact_checkpoint(run_dir: str | Path) -> CheckpointInfo | None:
    """The newest checkpoint whose files match its meta.json (a warning names each newer one that does
    not, and why), or None."""
    return _newest_intact(list_checkpoints(run_dir))[0]


def resume_checkpoint(run_dir: str | Path) -> CheckpointInfo | None:
    """What ``train.resume=true`` continues from: the newest intact checkpoint (None when there is no
    checkpoint at all). Newer, damaged ones are renamed ``step_N.damaged``, so that neither pruning nor a
    later resume counts them; none intact among several raises FileNotFoundError and changes nothing."""
    ckpts = list_checkpoints(run_dir)
    if not ckpts:
        return None
    good, refused = _newest_intact(ckpts)
    if good is None:
        raise FileNotFoundError(_none_intact(run_dir, len(ckpts)))
    for info in refused:
        _set_aside(info.path)
    return good


def _set_aside(ckpt_dir: Path) -> None:
    """Rename a damaged checkpoint out of the ``step_N`` namespace (kept for a look, then to be deleted)."""
    target, n = ckpt_dir.with_name(f"{ckpt_dir.name}.damaged"), 1
    while target.exists():
        target, n = ckpt_dir.with_name(f"{ckpt_dir.name}.damaged{n}"), n + 1
    os.replace(ckpt_dir, target)
    log.warning("moved the damaged checkpoint %s to %s (nothing reads it there; delete it once you have looked)",
                ckpt_dir, target.name)


def _none_intact(run_dir: str | Path, count: int) -> str:
    root = Path(run_dir) / "checkpoints"
    return (f"{root}: none of its {count} checkpoint(s) is intact (the warnings above say why); nothing was changed. "
            "Move checkpoints/ away to start the run again")


def _best_step(root: Path) -> int | None:
    best = root / "best.json"
    return json.loads(best.read_text())["step"] if best.is_file() else None


def resolve_checkpoint(run_dir: str | Path, which: str) -> Path:
    """``best`` (falls back to the newest intact checkpoint when nothing was validated or the best one is
    damaged), ``latest`` (the newest intact one) or a directory."""
    if which not in ("best", "latest"):
        path = Path(which)
        if not has_weights(path):
            raise FileNotFoundError(f"decode.checkpoint={which}: no model.safetensors (or dcp/) in that directory")
        problem = check_checkpoint(path) if (path / META).is_file() else None
        if problem is not None:
            log.warning("decode.checkpoint=%s: %s (used as asked)", which, problem)
        return path
    root = Path(run_dir) / "checkpoints"
    best = _best_step(root)
    if which == "best" and best is not None and (root / f"step_{best:08d}" / META).is_file():
        problem = check_checkpoint(root / f"step_{best:08d}")
        if problem is None:
            return root / f"step_{best:08d}"
        log.warning("the best checkpoint step_%08d cannot be used: %s; taking the newest intact one", best, problem)
    ckpts = list_checkpoints(run_dir)
    latest = _newest_intact(ckpts)[0]
    if latest is None:
        raise FileNotFoundError(_none_intact(run_dir, len(ckpts)) if ckpts else
                                f"{run_dir}: no checkpoint found under checkpoints/ (did training run?)")
    return latest.path


def resolve_init_checkpoint(spec: str) -> Path:
    """The checkpoint directory ``train.init_from`` names: a checkpoint directory, or a run
    directory (its newest intact checkpoint)."""
    path = Path(spec).expanduser()
    if has_weights(path):
        return path
    if (path / "checkpoints").is_dir():
        latest = intact_checkpoint(path)
        if latest is not None:
            return latest.path
    raise FileNotFoundError(f"train.init_from={spec}: neither a checkpoint directory (with model.safetensors) "
                            "nor a run directory with an intact checkpoint")


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


def save_checkpoint(run_dir: str | Path, step: int, model: torch.nn.Module, state: dict[str, Any],
                    valid_loss: float | None, keep_last: int, weights: dict[str, torch.Tensor] | None = None) -> Path:
    """Write a checkpoint atomically, update best.json, prune old ones. Returns its path.

    ``weights`` (full trainable tensors, e.g. gathered from shards) replaces reading them from ``model``.
    """
    tmp = staging_dir(run_dir, step)
    with writing(run_dir, step, tmp):
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
    """Add ``state.pt`` and ``meta.json`` (size and sha256 of every file) to the assembled ``tmp`` (weights
    already there), flush it all to disk, rename it into place, update best.json, prune old checkpoints.
    Returns the checkpoint's path."""
    root = Path(run_dir) / "checkpoints"
    final = root / f"step_{step:08d}"
    with writing(run_dir, step, tmp):
        with open(tmp / "state.pt", "wb") as f:  # a Python file: a failed write keeps its OSError (as the context)
            torch.save(state, f)
        files = {p.relative_to(tmp).as_posix(): _seal(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
        _write_durably(tmp / META, json.dumps({"step": step, "valid_loss": valid_loss, "files": files}))
        for folder in [*(p for p in tmp.rglob("*") if p.is_dir()), tmp]:
            _fsync_dir(folder)
        _replace_dir(tmp, final)
        _fsync_dir(root)
    _update_best(root, step, valid_loss)
    _prune(run_dir, keep_last, step)
    return final


@contextlib.contextmanager
def writing(run_dir: str | Path, step: int, tmp: Path) -> Iterator[None]:
    """Around writing the checkpoint of ``step`` into ``tmp``: on any failure ``tmp`` is removed; one the
    operating system reports (disk full, quota, I/O error) becomes a :class:`CheckpointWriteError` that
    names the intact previous checkpoint."""
    try:
        yield
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        cause = None if isinstance(exc, CheckpointWriteError) else _os_error(exc)
        if cause is None:
            raise
        raise CheckpointWriteError(_write_failure(run_dir, step, cause)) from exc


def _os_error(exc: BaseException | None, depth: int = 0) -> OSError | None:
    """The operating system's error behind a failed write: ``exc`` itself, the errno safetensors names in
    its message ("os error 28"), or one found in what ``exc`` was raised from or during (torch.save
    raises a RuntimeError in the middle of the OSError) or in torch.distributed.checkpoint's per-rank failures."""
    if exc is None or depth > 8:
        return None
    if isinstance(exc, OSError):
        return exc
    named = re.search(r"\(os error (\d+)\)", str(exc))
    if named:
        return OSError(int(named.group(1)), os.strerror(int(named.group(1))))
    inner = [failure[0] for failure in getattr(exc, "failures", {}).values()]  # {rank: (exception, traceback)}
    for candidate in [exc.__cause__ or exc.__context__, *inner]:
        found = _os_error(candidate, depth + 1)
        if found is not None:
            return found
    return None


def _write_failure(run_dir: str | Path, step: int, cause: OSError) -> str:
    """The one-line report of a checkpoint the disk refused: why, and which checkpoint resume takes."""
    root = Path(run_dir) / "checkpoints"
    previous = _newest_intact([c for c in list_checkpoints(run_dir) if c.step < step])[0]
    where = (f"the previous checkpoint {previous.path.name} is intact (train.resume=true continues from it)"
             if previous is not None else "no earlier checkpoint exists (train.resume=true starts the run again)")
    return f"cannot write checkpoint step_{step:08d} to {root}: {cause}; {where}"


def _seal(path: Path) -> dict[str, Any]:
    """Flush ``path`` to disk (fsync) and return what meta.json records of it: size and sha256."""
    with open(path, "rb") as f:
        os.fsync(f.fileno())
        return {"size": os.fstat(f.fileno()).st_size, "sha256": _sha256(f)}


def _write_durably(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` and flush it to disk."""
    with open(path, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(folder: Path) -> None:
    """Make the entries of ``folder`` (files created or renamed in it) durable; directories cannot be
    opened for that on Windows."""
    if os.name == "nt":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _replace_dir(tmp: Path, final: Path) -> None:
    """Rename ``tmp`` to ``final``; an existing ``final`` is first renamed aside (deleted by :func:`_prune`),
    so no moment shows a half-deleted checkpoint under its own name."""
    if final.exists():
        aside = final.with_name(f".old_{final.name}")
        shutil.rmtree(aside, ignore_errors=True)
        os.replace(final, aside)
    os.replace(tmp, final)


def _update_best(root: Path, step: int, valid_loss: float | None) -> None:
    """Record ``step`` in best.json when its validation loss is the lowest so far (a best.json naming a
    checkpoint that is gone counts as none). A write that fails only warns: the checkpoint itself is in place."""
    if valid_loss is None:
        return
    best = root / "best.json"
    current = json.loads(best.read_text()) if best.is_file() else None
    if current is not None and not (root / f"step_{current['step']:08d}" / META).is_file():
        current = None
    if current is None or valid_loss <= current["valid_loss"]:
        tmp = root / ".best.json.tmp"
        try:
            _write_durably(tmp, json.dumps({"step": step, "valid_loss": valid_loss}))
            os.replace(tmp, best)
            _fsync_dir(root)
        except OSError as exc:
            log.warning("checkpoint step_%08d is written, but best.json could not be updated: %s", step, exc)


def _prune(run_dir: str | Path, keep_last: int, step: int) -> None:
    """Keep the checkpoint of ``step`` (just written and sealed: never deleted), the ``keep_last - 1``
    before it and the best one; delete older ones and the leftovers of interrupted writes and deletions.

    A checkpoint after ``step`` (only a damaged one a resume skipped could be) is neither counted nor
    deleted, so a damaged newer checkpoint never makes pruning delete the last intact one. A deleted
    checkpoint is first renamed out of the ``step_N`` namespace: a kill midway leaves nothing that looks
    like a checkpoint.
    """
    root = Path(run_dir) / "checkpoints"
    best = _best_step(root)
    older = [c for c in list_checkpoints(run_dir) if c.step < step]
    for info in older[: max(len(older) - max(keep_last, 1) + 1, 0)]:
        if info.step != best:
            aside = root / f".old_{info.path.name}"
            shutil.rmtree(aside, ignore_errors=True)
            os.replace(info.path, aside)
    for leftover in root.glob(_LEFTOVERS):
        shutil.rmtree(leftover, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


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
