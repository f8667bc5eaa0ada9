"""The one training loop, written out top to bottom.

``train(cfg)`` builds the model and data, resumes if asked, and runs optimizer steps. One step
consumes ``grad_accum`` micro-batches; their summed token losses are divided by the number of
target tokens of the whole window, so every target token weighs the same whatever the batching.
Every ``valid_every`` steps it validates (loss, token accuracy); every ``save_every`` steps and
at the end it writes an atomic checkpoint that resumes exactly.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from slamkit.config import Config, TrainConfig, dump_config
from slamkit.data.collate import Batch, Collator
from slamkit.data.dataset import SpeechDataset, filter_by_duration, record_durations, worker_init
from slamkit.data.manifest import read_manifest
from slamkit.data.sampler import BucketBatchSampler
from slamkit.data.tasks import prompt_resolver
from slamkit.models.speech_llm import SpeechLLM, build_model, parameter_report
from slamkit.train import checkpoint as ckpt
from slamkit.train.distributed import autocast, grad_scaler, resolve_device
from slamkit.train.log import MetricLogger

log = logging.getLogger("slamkit")


@dataclass
class TrainResult:
    """What a finished (or stopped) run reports."""

    run_dir: Path
    step: int
    last_loss: float
    valid_loss: float | None
    skipped: int


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------


def make_loader_parts(cfg: Config, model: SpeechLLM, manifest: str, shuffle: bool, seed: int) -> tuple[SpeechDataset, BucketBatchSampler, Collator, int]:
    """Dataset, sampler and collator for one manifest, plus the count of records skipped up front."""
    records = read_manifest(manifest)
    durations = record_durations(records)
    records, durations, skipped = filter_by_duration(records, durations, cfg.data.min_seconds, cfg.data.max_seconds)
    if not records:
        raise ValueError(f"{manifest}: no usable records (all {skipped} were skipped; see the warnings above)")
    prompts = model.prompts
    dataset = SpeechDataset(records, model.encoder.sample_rate, prompts.prompt_ids, prompts.target_ids, prompt_resolver(cfg),
                           skip_errors=True, per_epoch=shuffle)
    sampler = BucketBatchSampler(durations, cfg.data.batch_size, cfg.data.batch_seconds, shuffle=shuffle, bucket=cfg.data.bucket, seed=seed,
                                 short_first_epochs=cfg.data.short_first_epochs if shuffle else 0)
    collator = Collator(model.audio_token_id, int(prompts.tokenizer.pad_token_id), model.audio_token_count, "right", with_targets=True)
    return dataset, sampler, collator, skipped


def _loader(dataset: SpeechDataset, sampler: BucketBatchSampler, collator: Collator, workers: int) -> DataLoader:
    # A private generator keeps DataLoader start-up from consuming the global RNG, which would
    # shift dropout noise after a resume.
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=collator, num_workers=workers,
                      worker_init_fn=worker_init if workers else None, generator=torch.Generator().manual_seed(0))


def batch_stream(dataset: SpeechDataset, sampler: BucketBatchSampler, collator: Collator, workers: int) -> Iterator[Batch]:
    """Endless batches across epochs; advances ``sampler.position`` as batches are consumed."""
    while True:
        dataset.set_epoch(sampler.epoch)  # per-epoch prompts (biasing distractors) follow the sampler, resumes included
        for batch in _loader(dataset, sampler, collator, workers):
            sampler.position += 1
            yield batch
        sampler.epoch += 1
        sampler.position = 0


# ---------------------------------------------------------------------------------------------
# Optimizer and schedule
# ---------------------------------------------------------------------------------------------


def build_optimizer(model: SpeechLLM, tc: TrainConfig) -> torch.optim.Optimizer:
    """AdamW with separate groups (and learning rates) for the projector, LoRA and the rest."""
    groups: dict[str, list] = {"projector": [], "lora": [], "other": []}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        part = "projector" if name.startswith("projector.") else "lora" if "lora_" in name else "other"
        groups[part].append((name, p))
    lrs = {"projector": tc.projector_lr or tc.lr, "lora": tc.lora_lr or tc.lr, "other": tc.lr}
    param_groups = []
    for part, named in groups.items():
        decay = [p for n, p in named if p.ndim >= 2]
        no_decay = [p for n, p in named if p.ndim < 2]
        for params, wd in ((decay, tc.weight_decay), (no_decay, 0.0)):
            if params:
                param_groups.append({"params": params, "lr": lrs[part], "weight_decay": wd, "name": part})
    if not param_groups:
        raise ValueError("nothing to train: every part is frozen (set model.projector.trainable=full or model.llm.trainable=lora)")
    return torch.optim.AdamW(param_groups, betas=tuple(tc.betas))


def lr_factor(step: int, tc: TrainConfig) -> float:
    """Multiplier of the peak learning rate at optimizer step ``step`` (0-based).

    With ``prealign_steps`` P, steps < P (pre-alignment) warm up and stay at the peak; ordinary
    training then counts its own steps from P: warmup again, then the schedule over the rest.
    """
    if step < tc.prealign_steps:
        return min((step + 1) / tc.warmup_steps, 1.0) if tc.warmup_steps else 1.0
    step, max_steps = step - tc.prealign_steps, tc.max_steps - tc.prealign_steps
    if step < tc.warmup_steps:
        return (step + 1) / tc.warmup_steps
    if tc.schedule == "constant":
        return 1.0
    progress = min((step - tc.warmup_steps) / max(max_steps - tc.warmup_steps, 1), 1.0)
    shape = 0.5 * (1 + math.cos(math.pi * progress)) if tc.schedule == "cosine" else 1 - progress
    return tc.min_lr_ratio + (1 - tc.min_lr_ratio) * shape


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------


@torch.no_grad()
def validate(model: SpeechLLM, loader: DataLoader, device: torch.device, precision: str) -> dict[str, float]:
    """Mean token loss and token accuracy over a validation loader."""
    was_training = model.training
    model.eval()
    loss_sum, tokens, correct = 0.0, 0, 0
    for batch in loader:
        if not batch.keys:
            continue
        with autocast(precision, device):
            out = model(batch.to(device))
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


def _log_parameters(model: SpeechLLM) -> None:
    for part, (trainable, total) in parameter_report(model).items():
        log.info("parameters %-9s trainable %12s / total %14s", part, f"{trainable:,}", f"{total:,}")


def train(cfg: Config, stop_at_step: int | None = None) -> TrainResult:
    """Train according to ``cfg``. ``stop_at_step`` ends the run abruptly after that step, as a
    kill would (no final checkpoint) — used to test exact resume."""
    tc = cfg.train
    if cfg.data.train is None:
        raise ValueError("data.train is not set: pass data.train=path/to/train.jsonl")
    latest = _prepare_run_dir(cfg)
    torch.manual_seed(tc.seed)
    device = resolve_device(tc.device)
    model = build_model(cfg).to(device)
    _log_parameters(model)
    if tc.init_from and latest is None:
        init = ckpt.resolve_init_checkpoint(tc.init_from)
        ckpt.load_weights(model, init)
        log.info("trainable weights initialised from %s (fresh optimizer, schedule and data order)", init)

    dataset, sampler, collator, skipped = make_loader_parts(cfg, model, cfg.data.train, shuffle=True, seed=tc.seed)
    valid_loader = None
    if cfg.data.valid:
        vparts = make_loader_parts(cfg, model, cfg.data.valid, shuffle=False, seed=0)
        valid_loader = _loader(*vparts[:3], cfg.data.num_workers)

    optimizer = build_optimizer(model, tc)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, tc))
    scaler = grad_scaler(tc.precision, device)
    step, valid_loss, log_window = 0, None, (0.0, 0)
    if latest is not None:
        step, skipped, log_window = _resume(latest, model, optimizer, scheduler, scaler, sampler)
        log.info("resumed from %s (step %d)", latest.path, step)
    logger = MetricLogger(tc.output_dir, tc.tensorboard, resume_step=step if latest else None)

    model.train()
    stream = batch_stream(dataset, sampler, collator, cfg.data.num_workers)
    started = time.perf_counter()
    pace = (started, step)  # where the progress bar measures the pace from (restarted after pre-alignment)
    bar = tqdm(total=tc.max_steps, initial=step, desc="train", unit="step", dynamic_ncols=True, mininterval=1.0)
    last_loss, window_start, audio_seconds = float("nan"), time.perf_counter(), 0.0
    loss_sum, token_sum = log_window  # over the log window: the logged loss is its token-weighted mean
    while step < tc.max_steps:
        model.prealign = step < tc.prealign_steps
        if step == tc.prealign_steps > 0:
            # Pre-alignment is over: its Adam moments belong to another loss; ordinary training
            # starts with a fresh state (also right after a resume at exactly this step).
            optimizer.state.clear()
            loss_sum, token_sum = 0.0, 0
            pace = (time.perf_counter(), step)  # pre-alignment steps are far faster: not a guide
            log.info("step %d: pre-alignment done; training the whole model", step)
        window, window_skipped = _next_window(stream, tc.grad_accum)
        skipped += window_skipped
        stats = _optimizer_step(model, window, optimizer, scheduler, scaler, tc, device)
        step += 1
        last_loss = stats["loss"]
        audio_seconds += stats["audio_seconds"]
        loss_sum, token_sum = loss_sum + stats["loss"] * stats["tokens"], token_sum + stats["tokens"]
        if not model.prealign:
            bar.total = _expected_steps(started, step, tc, bar.total, pace)
        bar.update(1)
        bar.set_postfix(loss=f"{last_loss:.3f}", lr=f"{stats['lr']:.2e}", audio_s=f"{stats['audio_seconds']:.0f}", refresh=False)
        final = step == tc.max_steps or _over_budget(started, tc)
        if step % tc.log_every == 0 or final:
            elapsed = time.perf_counter() - window_start
            record = {**stats, "loss": loss_sum / max(token_sum, 1), "step_loss": stats["loss"],
                      "audio_s_per_s": audio_seconds / max(elapsed, 1e-9), "epoch": sampler.epoch, "skipped": skipped,
                      **model.cache_stats()}
            if model.prealign:  # a distance, not a token loss: logged under its own name
                record = {k: v for k, v in record.items() if k not in ("loss", "step_loss", "acc")}
                record["prealign_loss"] = loss_sum / max(token_sum, 1)
            logger.log(record, step)
            window_start, audio_seconds, loss_sum, token_sum = time.perf_counter(), 0.0, 0.0, 0
        if valid_loader is not None and _validated(step, tc, final):
            metrics = validate(model, valid_loader, device, tc.precision)
            valid_loss = metrics["valid_loss"]
            logger.log(metrics, step)
            log.info("step %d: valid loss %.4f, token accuracy %.3f", step, valid_loss, metrics["valid_acc"])
        if step % tc.save_every == 0 or final:
            state = {"step": step, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                     "scaler": scaler.state_dict(), "sampler": sampler.state_dict(), "rng": ckpt.rng_state(), "skipped": skipped,
                     "log_window": (loss_sum, token_sum)}
            ckpt.save_checkpoint(tc.output_dir, step, model, state, valid_loss if valid_loader is not None and _validated(step, tc, final) else None, tc.keep_last)
        if final or (stop_at_step is not None and step >= stop_at_step):
            break
    bar.close()
    logger.close()
    if skipped:
        log.warning("%d training samples were skipped (unreadable, empty, non-finite or out-of-range audio)", skipped)
    return TrainResult(Path(tc.output_dir), step, last_loss, valid_loss, skipped)


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


def _optimizer_step(model: SpeechLLM, window: list[Batch], optimizer, scheduler, scaler, tc: TrainConfig, device: torch.device) -> dict[str, float]:
    """Forward/backward over the window, clip, step. Returns the step's metrics."""
    total_tokens = max(sum(b.num_target_tokens for b in window), 1)
    loss_sum, aux_sum, correct = 0.0, 0.0, 0
    for batch in window:
        with autocast(tc.precision, device):
            out = model(batch.to(device))
        total = out.loss_sum if out.aux_sum is None else out.loss_sum + out.aux_sum
        scaler.scale(total / total_tokens).backward()
        loss_sum += float(out.loss_sum.detach())
        aux_sum += 0.0 if out.aux_sum is None else float(out.aux_sum.detach())
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
    stats = {"loss": loss_sum / total_tokens, "acc": correct / total_tokens, "lr": lr, "grad_norm": float(grad_norm),
             "tokens": total_tokens, "audio_seconds": audio_seconds}
    if model.ctc_weight > 0:
        stats["ctc_loss"] = aux_sum / total_tokens  # weighted, per target token
    return stats
