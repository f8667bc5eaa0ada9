"""train.cooldown_minutes: a time-budgeted run anneals its learning rate in its last minutes and ends annealed."""

from __future__ import annotations

import time

import pytest

from slamkit.train import checkpoint as ckpt
from slamkit.train import loop
from slamkit.train.log import read_metrics
from slamkit.train.loop import train
from slamkit.train.optim import Cooldown

from conftest import tiny_config

PEAK, FLOOR = 1e-3, 0.1


def test_cooldown_factor_falls_linearly_to_the_floor():
    cd = Cooldown()
    assert cd.end is None and cd.factor(5, FLOOR) == 1.0, "not started: the schedule alone"
    cd.start, cd.steps = 10, 4
    assert cd.end == 14
    assert [cd.factor(s, FLOOR) for s in range(9, 15)] == pytest.approx([1.0, 0.775, 0.55, 0.325, 0.1, 0.1])


def test_a_time_budgeted_run_cools_down_and_resume_keeps_the_cooldown(tmp_path, tone_corpus, monkeypatch):
    """The whole budget is cooldown: it starts after step 2, once a step's pace is known (step 2's), with 95 % of
    the steps that pace fits in the budget; the rate falls linearly to min_lr_ratio × peak at the last step, and the
    run ends there. Cut after step 3 (checkpoint at 2) and resumed, the run keeps the checkpoint's cooldown: same
    end, the same ramp (a resume that forgot it would start a new one, back at the peak). Step 2 is made slow
    (0.4 s), so the cooldown's steps take far less than the budget on any machine, and the time limit never cuts
    them short."""
    real_step, calls = loop._optimizer_step, []

    def slow_second_step(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            time.sleep(0.4)
        return real_step(*args, **kwargs)

    monkeypatch.setattr(loop, "_optimizer_step", slow_second_step)
    run = tmp_path / "run"
    args = ("train.max_steps=1000000", "train.max_minutes=0.1", "train.cooldown_minutes=0.1", f"train.lr={PEAK}",
            f"train.min_lr_ratio={FLOOR}", "train.warmup_steps=0", "train.schedule=constant", "train.log_every=1",
            "train.valid_every=0", "train.save_every=2")
    train(tiny_config(run, tone_corpus, *args), stop_at_step=3)
    saved = ckpt.load_state(ckpt.latest_checkpoint(run).path)
    start, steps = saved["cooldown"]
    assert start == 2 and 3 <= steps <= 6 * 0.95 / 0.4, saved["cooldown"]
    result = train(tiny_config(run, tone_corpus, *args, "train.resume=true"))
    assert result.step == start + steps, "the run ends where the checkpoint's cooldown ends"
    assert ckpt.latest_checkpoint(run).step == result.step
    lrs = {r["step"]: r["lr"] for r in read_metrics(run) if "lr" in r}  # record r: the rate of optimizer step r - 1
    assert sorted(lrs) == list(range(1, result.step + 1))
    want = {r: PEAK * Cooldown(start, steps).factor(r - 1, FLOOR) for r in lrs}
    assert lrs == pytest.approx(want), (lrs, want)
    assert lrs[result.step] == pytest.approx(FLOOR * PEAK)
    # Resumed again, the run has nothing left to train; with the cooldown off it goes on at the schedule's rate.
    done = train(tiny_config(run, tone_corpus, *args, "train.resume=true"))
    assert done.step == result.step and done.last_loss is None
    more = train(tiny_config(run, tone_corpus, *args, "train.resume=true", "train.cooldown_minutes=0",
                             f"train.max_steps={result.step + 2}"))
    assert more.step == result.step + 2
    lrs = {r["step"]: r["lr"] for r in read_metrics(run) if "lr" in r}
    assert lrs[result.step + 1] == lrs[result.step + 2] == pytest.approx(PEAK)
