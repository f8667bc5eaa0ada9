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

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from slamkit.batch import Batch
from slamkit.config import Config, TrainConfig, dump_config
from slamkit.data.sampler import BucketBatchSampler
from slamkit.models.speech_llm import SpeechLLM, build_model, parameter_report
from slamkit.train import checkpoint as ckpt
from slamkit.train.data import batch_stream, build_loader
from slamkit.train.distributed import autocast, grad_scaler, resolve_device
from slamkit.train.log import MetricLogger
from slamkit.train.objectives import LanguageModelObjective, Objective, build_objectives
from slamkit.train.optim import build_optimizer, build_scheduler

log = logging.getLogger("slamkit")


@dataclass
class TrainResult:
    """What a finished (or stopped) run reports."""

    run_dir: Path
    step: int
    last_loss: float
    valid_loss: float | None
    skipped: int


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
def validate(model: SpeechLLM, loader: DataLoader, objective: Objective, device: torch.device, precision: str) -> dict[str, float]:
    """Mean token loss and token accuracy over a validation loader."""
    was_training = model.training
    model.eval()
    loss_sum, tokens, correct = 0.0, 0, 0
    for batch in loader:
        if not batch.keys:
            continue
        with autocast(precision, device):
            out = objective(model, batch.to(device))
        loss_sum += float(out.loss_sum)
        tokens += out.num_tokens
        correct += out.num_correct
    model.train(was_training)
    return {"valid_loss": loss_sum / max(tokens, 1), "valid_acc": correct / max(tokens, 1)}


# ---------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------


def _prepare_run_dir(cfg: Config) -> ckpt.CheckpointInfo | None:
    run_dir = Path(cfg.train.output_dir)
    latest = ckpt.latest_checkpoint(run_dir)
    if latest is not None and not cfg.train.resume:
        raise FileExistsError(
            f"{run_dir} already holds checkpoints (latest step {latest.step}); pass train.resume=true to continue, "
            "or choose another train.output_dir (nothing was overwritten)"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    dump_config(cfg, run_dir / "config.yaml")
    return latest if cfg.train.resume else None


def _build(cfg: Config, latest: ckpt.CheckpointInfo | None, device: torch.device) -> SpeechLLM:
    """The model on ``device``, its parameters logged, initialised from ``train.init_from`` on a new run."""
    model = build_model(cfg).to(device)
    for part, (trainable, total) in parameter_report(model).items():
        log.info("parameters %-9s trainable %12s / total %14s", part, f"{trainable:,}", f"{total:,}")
    if cfg.train.init_from and latest is None:
        init = ckpt.resolve_init_checkpoint(cfg.train.init_from)
        ckpt.load_weights(model, init)
        log.info("trainable weights initialised from %s (fresh optimizer, schedule and data order)", init)
    return model


def train(cfg: Config, stop_at_step: int | None = None) -> TrainResult:
    """Train according to ``cfg``. ``stop_at_step`` ends the run abruptly after that step, as a
    kill would (no final checkpoint) — used to test exact resume."""
    tc = cfg.train
    if cfg.data.train is None:
        raise ValueError("data.train is not set: pass data.train=path/to/train.jsonl")
    latest = _prepare_run_dir(cfg)
    torch.manual_seed(tc.seed)
    device = resolve_device(tc.device)
    model = _build(cfg, latest, device)
    prealign, objective = build_objectives(tc, lambda: model.embedding_table, model.pad_token_id)
    data = build_loader(cfg, model, cfg.data.train, "train", seed=tc.seed)
    valid_loader = build_loader(cfg, model, cfg.data.valid, "valid").dataloader() if cfg.data.valid else None

    optimizer = build_optimizer(model, tc)
    scheduler = build_scheduler(optimizer, tc)
    scaler = grad_scaler(tc.precision, device)
    step, skipped, valid_loss, window = 0, data.skipped, None, _Window()
    if latest is not None:
        step, skipped, (window.loss_sum, window.units) = _resume(latest, model, optimizer, scheduler, scaler, data.sampler)
        log.info("resumed from %s (step %d)", latest.path, step)
    logger = MetricLogger(tc.output_dir, tc.tensorboard, resume_step=step if latest else None)

    model.train()
    stream = batch_stream(data)
    started = time.perf_counter()
    pace = (started, step)  # where the progress bar measures the pace from (restarted after pre-alignment)
    bar = tqdm(total=tc.max_steps, initial=step, desc="train", unit="step", dynamic_ncols=True, mininterval=1.0)
    last_loss = float("nan")
    while step < tc.max_steps:
        step_objective = prealign if prealign is not None and step < tc.prealign_steps else objective
        if step == tc.prealign_steps > 0:
            pace = _end_prealignment(optimizer, window, step)
        batches, window_skipped = _next_window(stream, tc.grad_accum)
        skipped += window_skipped
        stats = _optimizer_step(model, batches, step_objective, optimizer, scheduler, scaler, tc, device)
        step += 1
        last_loss = stats["loss"]
        window.audio_seconds += stats["audio_seconds"]
        units = stats[step_objective.unit]
        window.loss_sum, window.units = window.loss_sum + stats["loss"] * units, window.units + units
        _progress(bar, stats, step_objective is objective, started, step, tc, pace)
        final = step == tc.max_steps or _over_budget(started, tc)
        if step % tc.log_every == 0 or final:
            logger.log(_log_record(stats, window, step_objective, data.sampler.epoch, skipped, model), step)
            window.reset()
        validated = valid_loader is not None and _validated(step, tc, final)
        if validated:
            valid_loss = _validate_and_log(model, valid_loader, objective, device, tc, logger, step)
        if step % tc.save_every == 0 or final:
            state = {"step": step, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                     "sampler": data.sampler.state_dict(), "rng": ckpt.rng_state(), "skipped": skipped, "log_window": (window.loss_sum, window.units)}
            ckpt.save_checkpoint(tc.output_dir, step, model, state, valid_loss if validated else None, tc.keep_last)
        if final or (stop_at_step is not None and step >= stop_at_step):
            break
    bar.close()
    logger.close()
    if skipped:
        log.warning("%d training samples were skipped (unreadable, empty, non-finite or out-of-range audio)", skipped)
    return TrainResult(Path(tc.output_dir), step, last_loss, valid_loss, skipped)


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


def _log_record(stats: dict[str, float], window: _Window, objective: Objective, epoch: int, skipped: int,
                model: SpeechLLM) -> dict[str, float]:
    """The metrics line of a log step: the window's mean loss under the objective's name."""
    elapsed = time.perf_counter() - window.started
    record = {**stats, "loss": window.loss_sum / max(window.units, 1), "step_loss": stats["loss"],
              "audio_s_per_s": window.audio_seconds / max(elapsed, 1e-9), "epoch": epoch, "skipped": skipped,
              **model.cache_stats()}
    if objective.name != "loss":  # a distance, not a token loss: logged under its own name
        record = {k: v for k, v in record.items() if k not in ("loss", "step_loss", "acc")}
        record[objective.name] = window.loss_sum / max(window.units, 1)
    return record


def _validate_and_log(model: SpeechLLM, loader: DataLoader, objective: Objective, device: torch.device, tc: TrainConfig,
                      logger: MetricLogger, step: int) -> float:
    """Validate, log the metrics, return the validation loss."""
    metrics = validate(model, loader, objective, device, tc.precision)
    logger.log(metrics, step)
    log.info("step %d: valid loss %.4f, token accuracy %.3f", step, metrics["valid_loss"], metrics["valid_acc"])
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


def _over_budget(started: float, tc: TrainConfig) -> bool:
    """True once this process has trained for ``train.max_minutes``."""
    return tc.max_minutes is not None and time.perf_counter() - started >= 60 * tc.max_minutes


def _validated(step: int, tc: TrainConfig, final: bool) -> bool:
    """Whether step ``step`` validates: every ``valid_every`` steps and at the end, but not during
    pre-alignment (the LLM has not seen audio yet: its loss there says nothing)."""
    return final or bool(tc.valid_every and step % tc.valid_every == 0 and step > tc.prealign_steps)


def _resume(latest: ckpt.CheckpointInfo, model: SpeechLLM, optimizer: torch.optim.Optimizer, scheduler, scaler,
            sampler: BucketBatchSampler) -> tuple[int, int, tuple[float, int]]:
    """Load weights, optimizer, schedule, scaler, sampler position and RNG; returns (step, skipped, log window)."""
    ckpt.load_weights(model, latest.path)
    state = ckpt.load_state(latest.path)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    sampler.load_state_dict(state["sampler"])
    ckpt.set_rng_state(state["rng"])
    return int(state["step"]), int(state.get("skipped", 0)), tuple(state.get("log_window", (0.0, 0)))


def _next_window(stream: Iterator[Batch], n: int) -> tuple[list[Batch], int]:
    """``n`` non-empty micro-batches (batches whose samples all failed are skipped and counted)."""
    window, skipped = [], 0
    while len(window) < n:
        batch = next(stream)
        skipped += batch.skipped
        if batch.keys:
            window.append(batch)
    return window, skipped


def _optimizer_step(model: SpeechLLM, window: list[Batch], objective: Objective, optimizer, scheduler, scaler, tc: TrainConfig,
                    device: torch.device) -> dict[str, float]:
    """Forward/backward over the window, clip, step. Returns the step's metrics."""
    total_units = max(sum(objective.units(b) for b in window), 1)
    loss_sum, aux_sum, tokens, correct = 0.0, 0.0, 0, 0
    for batch in window:
        with autocast(tc.precision, device):
            out = objective(model, batch.to(device))
        total = out.loss_sum if out.aux_sum is None else out.loss_sum + out.aux_sum
        scaler.scale(total / total_units).backward()
        loss_sum += float(out.loss_sum.detach())
        aux_sum += 0.0 if out.aux_sum is None else float(out.aux_sum.detach())
        tokens += out.num_tokens
        correct += out.num_correct
    scaler.unscale_(optimizer)
    params = [p for g in optimizer.param_groups for p in g["params"]]
    grad_norm = torch.nn.utils.clip_grad_norm_(params, tc.clip_grad if tc.clip_grad > 0 else float("inf"))
    lr = optimizer.param_groups[0]["lr"]
    scaler.step(optimizer)
    scaler.update()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    audio_seconds = sum(float(b.audio_lengths.sum()) for b in window) / model.encoder.sample_rate
    stats = {"loss": loss_sum / total_units, "acc": correct / max(tokens, 1), "lr": lr, "grad_norm": float(grad_norm),
             "tokens": sum(b.num_target_tokens for b in window), "audio_seconds": audio_seconds, objective.unit: total_units}
    if isinstance(objective, LanguageModelObjective) and objective.ctc_weight > 0:
        stats["ctc_loss"] = aux_sum / total_units  # weighted, per target token
    return stats
