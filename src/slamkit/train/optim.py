"""Optimizer groups and learning-rate schedules (a registry: ``train.schedule``).

AdamW with separate groups, and learning rates, for the projector, the LoRA weights and the rest;
no weight decay on biases and norms. The schedule multiplies the peak learning rate: warmup, then
the registered decay shape. Pre-alignment (``train.prealign_steps``) warms up and holds the peak;
ordinary training then counts its own steps: warmup again, then the decay over the rest.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from slamkit.config import TrainConfig
from slamkit.registry import Registry
from slamkit.train.distributed import Dist

log = logging.getLogger(__name__)

# progress in [0, 1] after warmup -> decay shape in [0, 1] (1 = peak)
SCHEDULES: Registry[Callable[[float], float]] = Registry("schedule")
SCHEDULES.register("constant")(lambda progress: 1.0)
SCHEDULES.register("cosine")(lambda progress: 0.5 * (1 + math.cos(math.pi * progress)))
SCHEDULES.register("linear")(lambda progress: 1 - progress)


def build_optimizer(model: nn.Module, tc: TrainConfig) -> torch.optim.Optimizer:
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
    return tc.min_lr_ratio + (1 - tc.min_lr_ratio) * SCHEDULES.get(tc.schedule)(progress)


@dataclass
class Cooldown:
    """The time budget's final anneal (``train.cooldown_minutes``): from optimizer step ``start`` the rate falls
    linearly over ``steps`` steps to ``floor`` times what the schedule gives. ``start`` -1: not started."""

    start: int = -1
    steps: int = 0
    marks: deque = field(default_factory=deque, repr=False)  # (time, step) of recent steps: the pace to plan with

    @property
    def end(self) -> int | None:
        """The step the run ends at once the cooldown has started."""
        return self.start + self.steps if self.start >= 0 else None

    def resume(self, saved: tuple[int, int], tc: TrainConfig, step: int) -> None:
        """Take a checkpoint's cooldown (first step, length) when the resumed config still asks for one; with
        ``train.cooldown_minutes`` off (or no ``max_minutes``) it is dropped, so a cooled-down run can go on."""
        if tc.cooldown_minutes and tc.max_minutes is not None:
            self.start, self.steps = saved
            if self.end is not None and step >= self.end:
                log.warning("the run's cooldown ended at step %d: nothing to train (train.cooldown_minutes=0 goes on "
                            "from here, at the schedule's rate)", self.end)
        elif saved[0] >= 0:
            log.info("the checkpoint's cooldown (steps %d-%d) is dropped: train.cooldown_minutes is off", saved[0], sum(saved))

    def factor(self, step: int, floor: float) -> float:
        """Multiplier of the schedule's rate at optimizer step ``step`` (0-based): 1 before the cooldown, then down
        to ``floor`` at its last step."""
        if self.start < 0 or step < self.start:
            return 1.0
        return max(1.0 - (1.0 - floor) * (step - self.start + 1) / max(self.steps, 1), floor)


def build_scheduler(optimizer: torch.optim.Optimizer, tc: TrainConfig,
                    cooldown: Cooldown | None = None) -> torch.optim.lr_scheduler.LambdaLR:
    """The step-wise :func:`lr_factor` schedule, times ``cooldown``'s factor once it has started (unknown
    ``train.schedule`` names fail here)."""
    SCHEDULES.get(tc.schedule)
    cd = cooldown if cooldown is not None else Cooldown()
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, tc) * cd.factor(s, tc.min_lr_ratio))


def start_cooldown(cooldown: Cooldown, tc: TrainConfig, started: float, pace_origin: int, step: int, dist: Dist) -> bool:
    """Start the cooldown once the time left in ``train.max_minutes`` is at most ``train.cooldown_minutes``, with 95 %
    of the steps that fit into the time left at the pace of the last ``cooldown_minutes`` (steps after
    ``pace_origin``, where pre-alignment ends, only: its steps are far faster). The recent pace, not the average:
    a first epoch that fills the feature cache is slower than the ones after. Rank 0 decides for every rank.
    Returns True at the step it starts; the caller then recomputes the next step's rate."""
    if not tc.cooldown_minutes or tc.max_minutes is None or cooldown.start >= 0 or step < max(pace_origin, tc.prealign_steps):
        return False
    now, window = time.perf_counter(), 60 * tc.cooldown_minutes
    marks = cooldown.marks
    marks.append((now, step))
    while len(marks) > 2 and marks[1][0] <= now - window:
        marks.popleft()
    left = 60 * tc.max_minutes - (now - started)
    steps = 0
    if left <= window and len(marks) > 1:
        # 5 % fewer steps than the pace fits: a slower end would otherwise meet the time limit before the floor
        steps = max(int(0.95 * left * (step - marks[0][1]) / (now - marks[0][0])), 1)
    steps = int(dist.sum([float(steps if dist.is_main else 0)])[0])
    if steps:
        cooldown.start, cooldown.steps = step, steps
        marks.clear()
        log.info("step %d: cooldown to step %d (%.1f min left): the learning rate falls linearly to %g of its value",
                 step, step + steps, left / 60, tc.min_lr_ratio)
    return bool(steps)


def keep_configured_lrs(scheduler: torch.optim.lr_scheduler.LambdaLR, configured: list[float]) -> None:
    """After loading a checkpoint's scheduler state: the peak rates are the config's, not the checkpoint's, and
    the next step's rate follows the config's schedule. So a ``train.lr`` (``projector_lr``, ``lora_lr``),
    ``schedule``, ``warmup_steps``, ``min_lr_ratio`` or ``max_steps`` changed on resume takes effect from the
    first step. With the config unchanged each rate is recomputed to the value saved (exact resume)."""
    saved = list(scheduler.base_lrs)
    if saved != configured:
        log.info("peak learning rates %s -> %s (changed in the config since the checkpoint)",
                 [f"{x:.4g}" for x in saved], [f"{x:.4g}" for x in configured])
    scheduler.base_lrs = list(configured)
    for group, base, factor in zip(scheduler.optimizer.param_groups, configured, scheduler.lr_lambdas, strict=True):
        group["initial_lr"] = base
        group["lr"] = base * factor(scheduler.last_epoch)
    scheduler._last_lr = [group["lr"] for group in scheduler.optimizer.param_groups]
