"""The one training loop, written out top to bottom.

``train(cfg)`` builds the model and data, resumes if asked, and runs optimizer steps. One step
consumes ``grad_accum`` micro-batches; the step's objective (:mod:`slamkit.train.objectives`:
pre-alignment for the first ``train.prealign_steps`` steps, then the LM loss) sums each
micro-batch's loss over its units, and the loop divides by the units of the whole window, so every
target token (or clip) weighs the same whatever the batching. Every ``valid_every`` steps it
validates (loss, token accuracy); every ``save_every`` steps and at the end it writes an atomic
checkpoint that resumes exactly.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from slamkit.batch import Batch
from slamkit.config import Config, TrainConfig, dump_config
from slamkit.data.skips import Skip
from slamkit.models.speech_llm import SpeechLLM, build_model, parameter_report
from slamkit.train import checkpoint as ckpt
from slamkit.train.data import Loader, batch_stream, build_loader, check_clip_window
from slamkit.train.distributed import Dist, autocast, checkpoint_activations, grad_scaler, setup
from slamkit.train.log import MetricLogger
from slamkit.train.skiplog import SkipTally
from slamkit.train.objectives import LanguageModelObjective, Objective, build_objectives
from slamkit.train.optim import Cooldown, build_optimizer, build_scheduler, keep_configured_lrs, start_cooldown

log = logging.getLogger("slamkit")


@dataclass
class TrainResult:
    """What a finished (or stopped) run reports."""

    run_dir: Path
    step: int
    last_loss: float | None  # the last step's loss; None when this call trained no step (a finished run resumed)
    valid_loss: float | None
    skipped: int  # items left out (unusable lines and audio, empty targets, out-of-range durations)
    skipped_by_reason: dict[str, int] = field(default_factory=dict)


@dataclass
class _Window:
    """What the log window accumulates: the logged loss is the unit-weighted mean over its steps."""

    loss_sum: float = 0.0
    units: int = 0
    audio_seconds: float = 0.0
    started: float = field(default_factory=time.perf_counter)

    def reset(self) -> None:
        self.loss_sum, self.units, self.audio_seconds, self.started = 0.0, 0, 0.0, time.perf_counter()


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------


@torch.no_grad()
def validate(model: SpeechLLM, loader: DataLoader, objective: Objective, dist: Dist, precision: str,
             template: Batch | None = None) -> dict[str, float]:
    """Mean token loss and token accuracy over a validation loader (summed over ranks).

    Under FSDP every rank runs every forward: an empty share runs ``template`` (no targets).
    """
    was_training = model.training
    model.eval()
    sums = torch.zeros(3, dtype=torch.float64, device=dist.device)  # loss, tokens, correct: read once at the end
    for batch in loader:
        if not batch.keys:
            if not dist.sharded or template is None:
                continue
            batch = template
        with autocast(precision, dist.device):
            out = objective(model, batch.to(dist.device))
        sums[0] += out.loss_sum.double()
        sums[1] += out.num_tokens
        sums[2] += out.num_correct
    model.train(was_training)
    loss_sum, tokens, correct = dist.sum(sums.tolist())
    return {"valid_loss": loss_sum / max(tokens, 1), "valid_acc": correct / max(tokens, 1)}


# ---------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------


def _prepare_run_dir(cfg: Config, dist: Dist) -> ckpt.CheckpointInfo | None:
    """The checkpoint to resume from (None for a new run): the newest intact one, which rank 0 chooses
    (checking each file against meta.json, once) and tells the other ranks; rank 0 writes config.yaml."""
    run_dir = Path(cfg.train.output_dir)
    latest = ckpt.latest_checkpoint(run_dir)
    if latest is not None and not cfg.train.resume:
        raise FileExistsError(
            f"{run_dir} already holds checkpoints (latest step {latest.step}); pass train.resume=true to continue, "
            "or choose another train.output_dir (nothing was overwritten)"
        )
    chosen: ckpt.CheckpointInfo | FileNotFoundError | None = None
    if dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        dump_config(cfg, run_dir / "config.yaml")
        if latest is not None:
            try:
                chosen = ckpt.resume_checkpoint(run_dir)
            except FileNotFoundError as exc:  # none intact: every rank raises it, not rank 0 alone
                chosen = exc
    chosen = dist.gather(chosen)[0]  # every rank waits for rank 0 here
    if isinstance(chosen, FileNotFoundError):
        raise chosen
    return chosen


def _build(cfg: Config, latest: ckpt.CheckpointInfo | None, device: torch.device) -> SpeechLLM:
    """The model on ``device``, its parameters logged, initialised from ``train.init_from`` on a new run.

    On a GPU the model is built there directly (a random 7B LLM initialises in seconds, not minutes).
    """
    with torch.device(device) if device.type == "cuda" else contextlib.nullcontext():
        model = build_model(cfg)
    model = model.to(device)
    for part, (trainable, total) in parameter_report(model).items():
        log.info("parameters %-9s trainable %12s / total %14s", part, f"{trainable:,}", f"{total:,}")
    if cfg.train.init_from and latest is None:
        init = ckpt.resolve_init_checkpoint(cfg.train.init_from)
        ckpt.load_weights(model, init)
        log.info("trainable weights initialised from %s (fresh optimizer, schedule and data order)", init)
    return model


class _NoLogger:
    """What ranks other than 0 log to: nothing."""

    def log(self, metrics: dict[str, Any], step: int) -> None:
        """Drop ``metrics``."""

    def close(self) -> None:
        """Nothing to close."""


@dataclass
class _Run:
    """Everything one training run holds; built by :func:`_setup`, driven by :func:`train`."""

    cfg: Config
    dist: Dist
    model: SpeechLLM  # the model itself (weights, checkpoints, cache statistics)
    engine: nn.Module  # what forward passes go through: the model, or its DDP replica
    prealign: Objective | None
    objective: Objective
    data: Loader
    valid_loader: DataLoader | None
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    logger: Any
    step: int = 0
    skips: SkipTally | None = None  # what the run left out, by reason (set up with the run)
    valid_loss: float | None = None
    nonfinite_streak: int = 0  # consecutive steps without an update (non-finite loss or gradient)
    nonfinite_total: int = 0
    window: _Window = field(default_factory=_Window)
    cooldown: Cooldown = field(default_factory=Cooldown)  # shared with the scheduler (train.cooldown_minutes)
    template: Batch | None = None  # under FSDP: what a rank with an empty share runs (no targets)

    @property
    def last_step(self) -> int:
        """``train.max_steps``, or the end of the cooldown once it has started (train.cooldown_minutes)."""
        return min(self.cfg.train.max_steps, self.cooldown.end or self.cfg.train.max_steps)

    @property
    def sharded_checkpoints(self) -> bool:
        """A full fine-tune under FSDP: every rank writes its shards (torch.distributed.checkpoint)
        instead of gathering a large trainable state on rank 0."""
        m = self.cfg.model
        return self.dist.sharded and "full" in (m.llm.trainable, m.encoder.trainable)

    def objective_at(self, step: int) -> Objective:
        """Pre-alignment for the first ``train.prealign_steps`` steps, then the LM objective."""
        return self.prealign if self.prealign is not None and step < self.cfg.train.prealign_steps else self.objective


def _setup(cfg: Config) -> _Run:
    """Join the job, build model and data, resume if asked."""
    tc = cfg.train
    check_clip_window(cfg)  # a config error: refuse before joining the job or building anything
    dist = setup(tc.strategy, tc.device)
    latest = _prepare_run_dir(cfg, dist)
    torch.manual_seed(tc.seed)
    model = _build(cfg, latest, dist.device)
    if dist.distributed:
        torch.manual_seed(tc.seed + dist.rank)  # the same initial weights everywhere, independent dropout per rank
    prealign, objective = build_objectives(tc, lambda: model.embedding_table, model.pad_token_id)
    data = build_loader(cfg, model, cfg.data.train, "train", seed=tc.seed, rank=dist.rank, world=dist.world)
    valid = build_loader(cfg, model, cfg.data.valid, "valid", rank=dist.rank, world=dist.world).dataloader() if cfg.data.valid else None
    if tc.activation_checkpointing:
        log.info("activation checkpointing: %d layers recompute their activations", checkpoint_activations(model))
    # Pre-alignment leaves the LLM out; a text-only batch leaves the projector out (docs/text-only.md).
    engine = dist.wrap(model, find_unused=tc.prealign_steps > 0 or cfg.data.text_records != "refuse", precision=tc.precision)
    optimizer = build_optimizer(model, tc)  # after wrapping: FSDP replaces the parameters with shards
    cooldown = Cooldown()
    run = _Run(cfg, dist, model, engine, prealign, objective, data, valid, optimizer, build_scheduler(optimizer, tc, cooldown),
               grad_scaler(tc.precision, dist.device), None, skips=SkipTally(tc.output_dir, dist), cooldown=cooldown)
    if latest is not None:
        run.step, skipped, (run.window.loss_sum, run.window.units) = _resume(latest, run)
        run.skips.load_state_dict(skipped)
        log.info("resumed from %s (step %d)", latest.path, run.step)
    run.skips.start(data.skips, run.step if latest is not None else None)
    run.logger = MetricLogger(tc.output_dir, tc.tensorboard, resume_step=run.step if latest else None) if dist.is_main else _NoLogger()
    return run


def train(cfg: Config, stop_at_step: int | None = None) -> TrainResult:
    """Train according to ``cfg``. ``stop_at_step`` ends the run abruptly after that step, as a
    kill would (no final checkpoint) — used to test exact resume."""
    tc = cfg.train
    if cfg.data.train is None:
        raise ValueError("data.train is not set: pass data.train=path/to/train.jsonl")
    run = _setup(cfg)
    run.model.train()
    stream = batch_stream(run.data)
    started = time.perf_counter()
    pace = (started, run.step)  # where the progress bar measures the pace from (restarted after pre-alignment)
    bar = tqdm(total=tc.max_steps, initial=run.step, desc="train", unit="step", dynamic_ncols=True, mininterval=1.0,
               disable=not run.dist.is_main)
    last_loss: float | None = None
    window = run.window
    try:
        while run.step < run.last_step:
            step_objective = run.objective_at(run.step)
            if run.step == tc.prealign_steps > 0:
                pace = _end_prealignment(run.optimizer, window, run.step)
            batches, window_skips = _next_window(stream, tc.grad_accum, keep_empty=run.dist.distributed)
            stats = _optimizer_step(run, batches, step_objective)
            run.step += 1
            run.skips.add(window_skips, run.step)
            _guard_nonfinite(run, stats, batches)
            stats["nonfinite_steps"] = run.nonfinite_total
            window.audio_seconds += stats["audio_seconds"]
            if not stats["nonfinite"]:  # a step that updated nothing does not enter the logged mean loss
                last_loss = stats["loss"]
                units = stats[step_objective.unit]
                window.loss_sum, window.units = window.loss_sum + stats["loss"] * units, window.units + units
            _progress(bar, stats, step_objective is run.objective, started, run.step, tc, pace)
            if start_cooldown(run.cooldown, tc, started, pace[1], run.step, run.dist):
                keep_configured_lrs(run.scheduler, list(run.scheduler.base_lrs))  # the next step's rate, cooled
            final = run.step >= run.last_step or _over_budget(started, tc, run.dist)
            if run.step % tc.log_every == 0 or final:
                run.logger.log(_log_record(stats, window, step_objective, run.data.sampler.epoch, run.skips, run.model), run.step)
                window.reset()
            validated = run.valid_loader is not None and _validated(run.step, tc, final)
            if validated:
                run.valid_loss = _validate_and_log(run)
            if run.step % tc.save_every == 0 or final:
                _save(run, validated)
            if final or (stop_at_step is not None and run.step >= stop_at_step):
                break
    finally:  # an error (non-finite losses, a refused checkpoint) leaves the console and the log closed
        bar.close()
        run.logger.close()
    if run.skips.total and run.dist.is_main:
        log.warning("%d training item(s) were skipped: %s (each named in %s)", run.skips.total, run.skips.describe(), run.skips.path)
    return TrainResult(Path(tc.output_dir), run.step, last_loss, run.valid_loss, run.skips.total, run.skips.state_dict())


class NonFiniteLoss(ValueError):
    """Too many consecutive steps had a non-finite loss or gradient (``train.max_nonfinite_steps``); a ValueError
    so that `slamkit train` reports it in one line, like the other problems the data or config cause."""


def _guard_nonfinite(run: _Run, stats: dict[str, float], batches: list[Batch]) -> None:
    """Count a step that updated nothing because its loss or gradient was not finite; stop the run, before any
    checkpoint of the bad steps is written, after ``train.max_nonfinite_steps`` in a row."""
    if not stats["nonfinite"]:
        run.nonfinite_streak = 0
        return
    run.nonfinite_streak += 1
    run.nonfinite_total += 1
    keys = [k for b in batches for k in b.keys]
    if run.dist.is_main:
        log.warning("step %d: non-finite loss or gradient (grad norm %s); no update. Batch: %s", run.step, stats["grad_norm"],
                    ", ".join(keys[:8]) + (" …" if len(keys) > 8 else ""))
    limit = run.cfg.train.max_nonfinite_steps
    if limit and run.nonfinite_streak >= limit:
        raise NonFiniteLoss(f"{run.nonfinite_streak} steps in a row (to step {run.step}) had a non-finite loss or gradient "
                            f"(train.max_nonfinite_steps={limit}); the last batch held {', '.join(keys)}. The run stopped "
                            "without writing a checkpoint of these steps: the latest checkpoint is the last good state "
                            "(train.resume=true continues from it; a lower train.lr or train.clip_grad often helps)")


def _save(run: _Run, validated: bool) -> None:
    """A checkpoint of the run at its current step (rank 0 writes; every rank's RNG state is in it)."""
    rngs = run.dist.gather(ckpt.rng_state())
    tc, valid_loss = run.cfg.train, run.valid_loss if validated else None
    state = {"step": run.step, "scheduler": run.scheduler.state_dict(), "scaler": run.scaler.state_dict(),
             "sampler": run.data.sampler.state_dict(), "rng": rngs[0], "rng_per_rank": rngs, "skipped": run.skips.state_dict(),
             "log_window": (run.window.loss_sum, run.window.units), "cooldown": (run.cooldown.start, run.cooldown.steps)}
    if run.sharded_checkpoints:
        tmp = ckpt.staging_dir(tc.output_dir, run.step)
        if run.dist.is_main:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        run.dist.barrier()
        with ckpt.writing(tc.output_dir, run.step, tmp):  # a write the disk refuses: one clear error, staging removed
            run.dist.save_sharded(run.model, run.optimizer, tmp / ckpt.DCP_DIR)
        run.dist.barrier()
        if run.dist.is_main:
            ckpt.finish_checkpoint(tc.output_dir, run.step, tmp, state, valid_loss, tc.keep_last)
        return
    weights = run.dist.trainable_state(run.model)  # gathered to full tensors under FSDP (every rank takes part)
    state["optimizer"] = run.dist.optimizer_state(run.model, run.optimizer)
    if run.dist.is_main:
        ckpt.save_checkpoint(tc.output_dir, run.step, run.model, state, valid_loss, tc.keep_last, weights=weights)


def _end_prealignment(optimizer: torch.optim.Optimizer, window: _Window, step: int) -> tuple[float, int]:
    """Pre-alignment is over: its Adam moments belong to another loss, so ordinary training starts
    with a fresh state (also right after a resume at exactly this step). Returns the new pace origin
    (pre-alignment steps are far faster: no guide to the ETA)."""
    optimizer.state.clear()
    window.loss_sum, window.units = 0.0, 0
    log.info("step %d: pre-alignment done; training the whole model", step)
    return time.perf_counter(), step


def _progress(bar: tqdm, stats: dict[str, float], ordinary: bool, started: float, step: int, tc: TrainConfig,
              pace: tuple[float, int]) -> None:
    """Advance the progress bar; its total follows the time budget once ordinary training runs."""
    if ordinary:
        bar.total = _expected_steps(started, step, tc, bar.total, pace)
    bar.update(1)
    bar.set_postfix(loss=f"{stats['loss']:.3f}", lr=f"{stats['lr']:.2e}", audio_s=f"{stats['audio_seconds']:.0f}", refresh=False)


def _log_record(stats: dict[str, float], window: _Window, objective: Objective, epoch: int, skips: SkipTally,
                model: SpeechLLM) -> dict[str, Any]:
    """The metrics line of a log step: the window's mean loss under the objective's name."""
    elapsed = time.perf_counter() - window.started
    mean = window.loss_sum / window.units if window.units else float("nan")  # NaN: every step of the window was skipped
    record = {**stats, "loss": mean, "step_loss": stats["loss"],
              "audio_s_per_s": window.audio_seconds / max(elapsed, 1e-9), "epoch": epoch, "skipped": skips.total,
              "skipped_by_reason": skips.state_dict(),
              **model.cache_stats()}
    if objective.name != "loss":  # a distance, not a token loss: logged under its own name
        record = {k: v for k, v in record.items() if k not in ("loss", "step_loss", "acc")}
        record[objective.name] = mean
    return record


def _validate_and_log(run: _Run) -> float:
    """Validate (every rank its share, sums over ranks), log the metrics, return the validation loss."""
    metrics = validate(run.model, run.valid_loader, run.objective, run.dist, run.cfg.train.precision, run.template)
    run.logger.log(metrics, run.step)
    if run.dist.is_main:
        log.info("step %d: valid loss %.4f, token accuracy %.3f", run.step, metrics["valid_loss"], metrics["valid_acc"])
    return metrics["valid_loss"]


def _expected_steps(started: float, step: int, tc: TrainConfig, current: int, pace: tuple[float, int]) -> int:
    """The step the run will end at: ``max_steps``, or sooner when the time budget runs out first
    (estimated from the pace since ``pace`` = (time, step)), so the progress bar's ETA is the budget's."""
    pace_started, pace_step = pace
    if tc.max_minutes is None or step <= pace_step:
        return current
    per_step = (time.perf_counter() - pace_started) / (step - pace_step)
    left = 60 * tc.max_minutes - (time.perf_counter() - started)
    return min(tc.max_steps, step + max(int(left / per_step), 1))


def _over_budget(started: float, tc: TrainConfig, dist: Dist) -> bool:
    """True once rank 0 has trained for ``train.max_minutes`` (every rank stops at the same step)."""
    if tc.max_minutes is None:
        return False
    over = float(dist.is_main and time.perf_counter() - started >= 60 * tc.max_minutes)
    return dist.sum([over])[0] > 0


def _validated(step: int, tc: TrainConfig, final: bool) -> bool:
    """Whether step ``step`` validates: every ``valid_every`` steps and at the end, but not during
    pre-alignment (the LLM has not seen audio yet: its loss there says nothing)."""
    return final or bool(tc.valid_every and step % tc.valid_every == 0 and step > tc.prealign_steps)


def _resume(latest: ckpt.CheckpointInfo, run: _Run) -> tuple[int, Any, tuple[float, int]]:
    """Load weights, optimizer, schedule, scaler, sampler position and this rank's RNG; returns
    (step, skipped, log window)."""
    state = ckpt.load_state(latest.path)
    if (latest.path / ckpt.DCP_DIR).is_dir():
        run.dist.load_sharded(run.model, run.optimizer, latest.path / ckpt.DCP_DIR)
    else:
        if run.dist.sharded:
            run.dist.load_trainable(run.model, ckpt.read_weights(latest.path))
        else:
            ckpt.load_weights(run.model, latest.path)
        run.dist.load_optimizer_state(run.model, run.optimizer, state["optimizer"])
    configured = list(run.scheduler.base_lrs)
    run.cooldown.resume(state.get("cooldown", (-1, 0)), run.cfg.train, int(state["step"]))
    run.scheduler.load_state_dict(state["scheduler"])
    keep_configured_lrs(run.scheduler, configured)
    run.scaler.load_state_dict(state["scaler"])
    run.data.sampler.load_state_dict(state["sampler"])
    rngs = state.get("rng_per_rank", [state["rng"]])
    if len(rngs) != run.dist.world:
        log.warning("the checkpoint holds the RNG states of %d processes, this job has %d: rank %d takes %s",
                    len(rngs), run.dist.world, run.dist.rank, "rank 0's" if run.dist.rank >= len(rngs) else "its own")
    ckpt.set_rng_state(rngs[run.dist.rank] if run.dist.rank < len(rngs) else rngs[0])
    return int(state["step"]), state.get("skipped", 0), tuple(state.get("log_window", (0.0, 0)))


def _next_window(stream: Iterator[Batch], n: int, keep_empty: bool = False) -> tuple[list[Batch], list[Skip]]:
    """``n`` micro-batches and the samples that failed to load (:class:`Skip`, with file:line and reason). Alone, batches whose samples
    all failed are skipped; with several processes they are kept (every rank must take part in
    every micro-batch's gradient synchronisation)."""
    window: list[Batch] = []
    skipped: list[Skip] = []
    while len(window) < n:
        batch = next(stream)
        skipped += batch.skips
        if batch.keys or keep_empty:
            window.append(batch)
    return window, skipped


def _runnable(run: _Run, batch: Batch) -> Batch:
    """``batch`` itself, except under FSDP for an empty share: every rank must run every forward
    (sharded weights are gathered collectively), so it runs an earlier batch without targets."""
    if not run.dist.sharded:
        return batch
    if batch.keys:
        run.template = batch.without_targets()
        return batch
    if run.template is None:
        raise RuntimeError(f"rank {run.dist.rank} has nothing to train on in the first batch: the training set holds fewer "
                           f"usable items than the {run.dist.world} processes share")
    return run.template


def _optimizer_step(run: _Run, window: list[Batch], objective: Objective) -> dict[str, float]:
    """Forward/backward over the window, clip, step. Returns the step's metrics (summed over ranks).

    Each micro-batch's summed loss is divided by the units of the whole window on every rank; DDP
    averages gradients over ranks, so the loss is also multiplied by the world size: the update is
    the one a single process computes on the union of the ranks' batches.
    """
    tc, dist, scaler, optimizer = run.cfg.train, run.dist, run.scaler, run.optimizer
    # Counted on the CPU before the batches move; the device values below are read once, at the end.
    audio_samples = sum(int(b.audio_lengths.sum()) for b in window)
    target_tokens = sum(b.num_target_tokens for b in window)
    total_units = max(int(dist.sum([sum(objective.units(b) for b in window)])[0]), 1)
    sums = torch.zeros(4, dtype=torch.float64, device=dist.device)  # loss, aux, tokens, correct
    for i, batch in enumerate(window):
        batch = _runnable(run, batch)
        with dist.sync_context(run.engine, sync=i == len(window) - 1):  # gradients reduced on the last micro-batch only
            with autocast(tc.precision, dist.device):
                out = objective(run.engine, batch.to(dist.device))
            total = out.loss_sum if out.aux_sum is None else out.loss_sum + out.aux_sum
            scaler.scale(total / total_units * dist.world).backward()
        sums[0] += out.loss_sum.detach().double()
        if out.aux_sum is not None:
            sums[1] += out.aux_sum.detach().double()
        sums[2] += out.num_tokens
        sums[3] += out.num_correct
    scaler.unscale_(optimizer)
    params = [p for g in optimizer.param_groups for p in g["params"]]
    grad_norm = torch.nn.utils.clip_grad_norm_(params, tc.clip_grad if tc.clip_grad > 0 else float("inf"))
    grad_norm = grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm  # a DTensor under FSDP
    lr = optimizer.param_groups[0]["lr"]
    # A non-finite loss or gradient (NaN/Inf anywhere: the norm is then non-finite, on every rank alike, since
    # gradients are reduced first) updates nothing. fp16's GradScaler skips such steps itself and lowers its scale.
    finite = scaler.is_enabled() or bool(torch.isfinite(grad_norm))
    if finite:
        scaler.step(optimizer)
    scaler.update()
    run.scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    loss_sum, aux_sum, tokens, correct, audio_samples, target_tokens = dist.sum(
        [*sums.tolist(), audio_samples, target_tokens])
    stats = {"loss": loss_sum / total_units, "acc": correct / max(tokens, 1), "lr": lr, "grad_norm": float(grad_norm),
             "tokens": int(target_tokens), "audio_seconds": audio_samples / run.model.encoder.sample_rate, objective.unit: total_units,
             "nonfinite": 0 if finite else 1}
    if isinstance(objective, LanguageModelObjective) and objective.ctc_weight > 0:
        stats["ctc_loss"] = aux_sum / total_units  # weighted, per target token
    return stats
