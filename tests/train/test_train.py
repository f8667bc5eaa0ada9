"""Training: exact resume, atomic checkpoints, skipped samples, learning end to end."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file

from slamkit.infer.score import score_file
from slamkit.infer.decode import decode
from slamkit.train import checkpoint as ckpt
from slamkit.train.log import read_metrics
from slamkit.train.loop import train
from slamkit.train.optim import lr_factor

from conftest import tiny_config

FAST = ("train.max_steps=8", "train.warmup_steps=2", "train.log_every=2", "train.valid_every=4", "train.save_every=3",
        "data.batch_size=4", "model.lora.dropout=0.1", "model.projector.dropout=0.1")


def _losses(run_dir) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in read_metrics(run_dir) if "loss" in r}


def test_resume_is_exact(tmp_path, tone_corpus):
    """Run 8 steps straight vs. stop after step 5 (checkpoint at 3) and resume: same losses, same weights."""
    full = train(tiny_config(tmp_path / "full", tone_corpus, *FAST))
    train(tiny_config(tmp_path / "cut", tone_corpus, *FAST), stop_at_step=5)
    assert ckpt.latest_checkpoint(tmp_path / "cut").step == 3
    resumed = train(tiny_config(tmp_path / "cut", tone_corpus, *FAST, "train.resume=true"))
    assert resumed.step == full.step == 8
    a, b = _losses(tmp_path / "full"), _losses(tmp_path / "cut")
    assert sorted(a) == sorted(b) == [2, 4, 6, 8]
    assert a == b, "every step's loss must equal the uninterrupted run's"
    wa = load_file(str(ckpt.latest_checkpoint(tmp_path / "full").path / "model.safetensors"))
    wb = load_file(str(ckpt.latest_checkpoint(tmp_path / "cut").path / "model.safetensors"))
    assert wa.keys() == wb.keys()
    for name in wa:
        assert torch.equal(wa[name], wb[name]), name


def test_checkpoints_layout_and_pruning(tmp_path, tone_corpus):
    run = tmp_path / "run"
    train(tiny_config(run, tone_corpus, *FAST, "train.keep_last=1"))
    assert (run / "config.yaml").is_file() and (run / "metrics.jsonl").is_file()
    steps = [c.step for c in ckpt.list_checkpoints(run)]
    best = json.loads((run / "checkpoints" / "best.json").read_text())["step"]
    assert 8 in steps and set(steps) <= {8, best}
    assert not list((run / "checkpoints").glob(".tmp*"))
    final = ckpt.latest_checkpoint(run).path
    assert {p.name for p in final.iterdir()} == {"model.safetensors", "state.pt", "meta.json"}
    weights = load_file(str(final / "model.safetensors"))
    # Trainable parts only: encoder and projector (full in the tiny recipe), LoRA of the frozen LLM.
    assert any(k.startswith("projector.") for k in weights) and any("lora_" in k for k in weights)
    assert all(k.startswith(("projector.", "encoder.")) or "lora_" in k for k in weights)


def test_existing_run_is_not_overwritten(tmp_path, tone_corpus):
    run = tmp_path / "run"
    train(tiny_config(run, tone_corpus, "train.max_steps=1", "train.save_every=1"))
    with pytest.raises(FileExistsError, match="train.resume=true"):
        train(tiny_config(run, tone_corpus, "train.max_steps=1"))


def test_bad_audio_is_skipped_and_counted(tmp_path, tone_corpus):
    lines = tone_corpus["train"].read_text().splitlines()
    folder = tone_corpus["train"].parent
    (tmp_path / "broken.wav").write_bytes(b"not audio at all")
    bad = [json.dumps({"key": "broken", "source": str(tmp_path / "broken.wav"), "target": "x", "duration": 1.0}),
           json.dumps({"key": "missing", "source": str(tmp_path / "missing.wav"), "target": "x"})]
    manifest = tmp_path / "train.jsonl"
    manifest.write_text("\n".join([json.dumps({**json.loads(l), "source": str(folder / json.loads(l)["source"])}) for l in lines[:6]] + bad) + "\n")
    corpus = {"train": manifest, "valid": tone_corpus["valid"]}
    result = train(tiny_config(tmp_path / "run", corpus, "train.max_steps=4", "data.batch_size=8"))
    assert result.skipped >= 2


def test_lr_schedule_shapes():
    from slamkit.config import TrainConfig

    tc = TrainConfig(max_steps=100, warmup_steps=10, schedule="cosine", min_lr_ratio=0.1)
    assert lr_factor(0, tc) == pytest.approx(0.1)
    assert lr_factor(9, tc) == pytest.approx(1.0)
    assert lr_factor(100, tc) == pytest.approx(0.1)
    tc.schedule = "linear"
    assert lr_factor(55, tc) == pytest.approx(0.1 + 0.9 * 0.5)


@pytest.mark.slow
def test_tiny_recipe_learns_to_transcribe_held_out_clips(tmp_path, tone_corpus):
    """Train the tiny recipe on 160 clips for 600 steps: the training clips decode almost perfectly and clips it
    never saw well above chance (measured: 0.0 and 0.57 WER; a model that only memorises its 24 clips scores 1.04
    on held-out clips)."""
    from slamkit.prepare.tones import make_tone_corpus

    corpus = {"train": make_tone_corpus(tmp_path / "data", 160, seed=1, name="train"), "valid": tone_corpus["valid"]}
    run = tmp_path / "run"
    train(tiny_config(run, corpus, "train.max_steps=600", "train.valid_every=0"))
    scores = {}
    for split in ("train", "valid"):
        out = tmp_path / f"{split}.hyp.jsonl"
        decode(run, corpus[split], out)
        scores[split] = score_file(out, normalizer="basic")["wer"]
    assert scores["train"] <= 0.1 and scores["valid"] <= 0.75, scores


def test_bf16_autocast_trains_like_fp32(tmp_path, tone_corpus):
    """bf16 autocast follows fp32's losses step by step (within bf16's rounding) and learns as much."""
    common = ("train.max_steps=30", "train.valid_every=0", "train.log_every=1")
    train(tiny_config(tmp_path / "fp32", tone_corpus, *common))
    result = train(tiny_config(tmp_path / "bf16", tone_corpus, *common, "train.precision=bf16"))
    assert result.step == 30
    a, b = _losses(tmp_path / "fp32"), _losses(tmp_path / "bf16")
    assert sorted(a) == sorted(b) == list(range(1, 31))
    assert all(abs(a[s] - b[s]) <= 0.05 * a[s] for s in range(1, 6)), [(a[s], b[s]) for s in range(1, 6)]
    assert b[30] < 0.6 * b[1] and abs(b[30] - a[30]) <= 0.25 * a[30], (a[1], a[30], b[1], b[30])


def test_killed_process_resumes_exactly(tmp_path, tone_corpus):
    """A real `slamkit train` process, SIGKILLed mid-run, resumes to the uninterrupted run's losses."""
    import os
    import signal
    import subprocess
    import sys
    import time

    steps = 120
    args = ["recipes/tiny_asr.yaml", f"data.train={tone_corpus['train']}", "train.valid_every=0", "train.tensorboard=false",
            f"train.max_steps={steps}", "train.save_every=10", "train.log_every=1", "data.batch_size=4"]
    cmd = [sys.executable, "-m", "slamkit", "train"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cut = tmp_path / "cut"
    proc = subprocess.Popen(cmd + args + [f"train.output_dir={cut}"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (cut / "checkpoints" / "step_00000020").exists() and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = ckpt.latest_checkpoint(cut)
    assert killed_at is not None and killed_at.step < steps, "the process must die mid-run"
    subprocess.run(cmd + args + [f"train.output_dir={cut}", "train.resume=true"], env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run(cmd + args + [f"train.output_dir={tmp_path / 'full'}"], env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    a, b = _losses(tmp_path / "full"), _losses(cut)
    assert sorted(a) == sorted(b) == list(range(1, steps + 1))
    assert a == b


def test_grad_accumulation_is_normalised_by_target_tokens(tone_corpus, tmp_path):
    """One step over micro-batches [a, b] + [c, d] equals one step over [a, b, c, d]."""
    import copy

    from slamkit.models.speech_llm import build_model
    from slamkit.train.data import build_loader
    from slamkit.train.loop import _optimizer_step
    from slamkit.train.objectives import LanguageModelObjective

    cfg = tiny_config(tmp_path, tone_corpus, "model.lora.dropout=0.0", "train.clip_grad=0")
    model = build_model(cfg).train()
    data = build_loader(cfg, model, str(tone_corpus["train"]), "valid")
    dataset, collator = data.dataset, data.collator
    objective = LanguageModelObjective(0.0, lambda: model.embedding_table, model.pad_token_id)
    items = [dataset[i] for i in range(4)]
    assert len({len(ex.target_ids) for ex in items}) > 1, "unequal target lengths make the test meaningful"

    def step(window):
        m = copy.deepcopy(model)
        params = [p for p in m.parameters() if p.requires_grad]
        opt = torch.optim.SGD(params, lr=1.0)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
        scaler = torch.amp.GradScaler("cpu", enabled=False)
        stats = _optimizer_step(_run(m, opt, sched, scaler, cfg), window, objective)
        return stats, [p.detach() for p in params]

    split_stats, split = step([collator(items[:2]), collator(items[2:])])
    whole_stats, whole = step([collator(items)])
    assert split_stats["tokens"] == whole_stats["tokens"]
    assert split_stats["loss"] == pytest.approx(whole_stats["loss"], rel=1e-5)
    for a, b in zip(split, whole):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_time_budget_stops_with_a_final_checkpoint(tmp_path, tone_corpus):
    result = train(tiny_config(tmp_path / "run", tone_corpus, "train.max_steps=1000000", "train.max_minutes=0.05",
                               "train.valid_every=0", "train.save_every=1000000"))
    assert 0 < result.step < 1000000
    assert ckpt.latest_checkpoint(tmp_path / "run").step == result.step


def test_init_from_starts_a_new_run_from_another_runs_weights(tmp_path, tone_corpus):
    """train.init_from: step 0 of the new run holds the old run's final weights, not fresh ones."""
    train(tiny_config(tmp_path / "first", tone_corpus, *FAST))
    source = ckpt.latest_checkpoint(tmp_path / "first").path
    second = tiny_config(tmp_path / "second", tone_corpus, *FAST, "train.max_steps=1", "train.lr=1e-12",
                         "train.warmup_steps=0", f"train.init_from={tmp_path / 'first'}")
    fresh = tiny_config(tmp_path / "fresh", tone_corpus, *FAST, "train.max_steps=1", "train.lr=1e-12", "train.warmup_steps=0")
    assert train(second).step == 1 and train(fresh).step == 1  # a new run: steps count from 0
    old = load_file(str(source / "model.safetensors"))
    new = load_file(str(ckpt.latest_checkpoint(tmp_path / "second").path / "model.safetensors"))
    init = load_file(str(ckpt.latest_checkpoint(tmp_path / "fresh").path / "model.safetensors"))
    assert old.keys() == new.keys()
    assert all(torch.allclose(old[k], new[k], atol=1e-6) for k in old)  # lr 1e-12: one step changes nothing
    assert not all(torch.allclose(old[k], init[k], atol=1e-6) for k in old)
    with pytest.raises(FileNotFoundError, match="train.init_from"):
        train(tiny_config(tmp_path / "bad", tone_corpus, *FAST, f"train.init_from={tmp_path / 'nowhere'}"))


def _run(model, optimizer, scheduler, scaler, cfg):
    """The parts of a training run one optimizer step reads (one process, on the CPU)."""
    from types import SimpleNamespace

    from slamkit.train.distributed import Dist

    dist = Dist(0, 1, 0, torch.device("cpu"), "single")
    return SimpleNamespace(cfg=cfg, dist=dist, model=model, engine=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler)


def test_activation_checkpointing_leaves_the_losses_unchanged(tmp_path, tone_corpus):
    from slamkit.train.log import read_metrics

    common = ("train.max_steps=6", "train.log_every=1", "train.valid_every=0")
    train(tiny_config(tmp_path / "plain", tone_corpus, *common))
    train(tiny_config(tmp_path / "ckpt", tone_corpus, *common, "train.activation_checkpointing=true"))
    plain = [r["step_loss"] for r in read_metrics(tmp_path / "plain") if "step_loss" in r]
    recomputed = [r["step_loss"] for r in read_metrics(tmp_path / "ckpt") if "step_loss" in r]
    assert len(plain) == 6 and recomputed == plain


def _poison(monkeypatch, bad_calls: set[int]) -> None:
    """Make the LM objective's loss NaN on the given (1-based) calls: a batch whose loss is not finite."""
    from slamkit.train import objectives

    original, calls = objectives.LanguageModelObjective.__call__, [0]

    def poisoned(self, model, batch):
        out = original(self, model, batch)
        calls[0] += 1
        if calls[0] in bad_calls:
            out.loss_sum = out.loss_sum * float("nan")
        return out

    monkeypatch.setattr(objectives.LanguageModelObjective, "__call__", poisoned)


def test_a_nonfinite_step_updates_nothing_and_the_run_goes_on(tmp_path, tone_corpus, monkeypatch):
    _poison(monkeypatch, {3, 4})
    run = tmp_path / "run"
    result = train(tiny_config(run, tone_corpus, "train.max_steps=6", "train.log_every=1", "train.valid_every=0", "train.save_every=2",
                               "train.keep_last=10"))
    assert result.step == 6 and result.last_loss is not None and math.isfinite(result.last_loss)
    rows = {r["step"]: r for r in read_metrics(run) if "nonfinite" in r}
    assert [rows[s]["nonfinite"] for s in range(1, 7)] == [0, 0, 1, 1, 0, 0] and rows[6]["nonfinite_steps"] == 2
    at = {c.step: load_file(str(c.path / "model.safetensors")) for c in ckpt.list_checkpoints(run)}
    assert all(torch.equal(at[2][k], at[4][k]) for k in at[2]), "steps 3 and 4 changed no weight"
    assert not all(torch.equal(at[4][k], at[6][k]) for k in at[4]), "training went on after them"


def test_nonfinite_steps_in_a_row_stop_the_run_and_keep_the_last_good_checkpoint(tmp_path, tone_corpus, monkeypatch):
    from slamkit.train.loop import NonFiniteLoss

    _poison(monkeypatch, {3, 4, 5})
    run = tmp_path / "run"
    cfg = tiny_config(run, tone_corpus, "train.max_steps=8", "train.valid_every=0", "train.save_every=2", "train.max_nonfinite_steps=3")
    with pytest.raises(NonFiniteLoss, match=r"3 steps in a row \(to step 5\).*the last batch held \S+"):
        train(cfg)
    assert ckpt.latest_checkpoint(run).step == 4
    monkeypatch.undo()
    resumed = train(tiny_config(run, tone_corpus, "train.max_steps=8", "train.valid_every=0", "train.save_every=2", "train.resume=true"))
    assert resumed.step == 8 and resumed.last_loss is not None and math.isfinite(resumed.last_loss)
    again = train(tiny_config(run, tone_corpus, "train.max_steps=8", "train.valid_every=0", "train.resume=true"))
    assert again.step == 8 and again.last_loss is None, "a finished run resumed trains no step and has no last loss"


def test_a_learning_rate_changed_on_resume_takes_effect(tmp_path, tone_corpus):
    """train.lr changed between runs: the resumed schedule multiplies the new peak (it used to keep the checkpoint's)."""
    args = ("train.max_steps=4", "train.warmup_steps=0", "train.schedule=constant", "train.log_every=1",
            "train.valid_every=0", "train.save_every=2")
    train(tiny_config(tmp_path / "run", tone_corpus, *args, "train.lr=1e-3"))
    train(tiny_config(tmp_path / "run", tone_corpus, *args, "train.max_steps=6", "train.lr=5e-4", "train.resume=true"))
    lrs = {r["step"]: r["lr"] for r in read_metrics(tmp_path / "run") if "lr" in r}
    assert lrs[4] == pytest.approx(1e-3) and lrs[5] == lrs[6] == pytest.approx(5e-4), lrs


def test_keep_configured_lrs_recomputes_every_group_from_the_config():
    """Two parameter groups, cosine: unchanged config -> the saved rates exactly; new peaks or a longer schedule ->
    the new schedule's rates at once (scheduler.get_last_lr() too)."""
    from slamkit.config import TrainConfig
    from slamkit.train.optim import build_scheduler, keep_configured_lrs

    def scheduler(tc, steps):
        params = [torch.nn.Parameter(torch.zeros(2, 2)), torch.nn.Parameter(torch.zeros(2))]
        opt = torch.optim.AdamW([{"params": [params[0]], "lr": tc.lr}, {"params": [params[1]], "lr": tc.lr / 10}])
        sched = build_scheduler(opt, tc)
        for _ in range(steps):
            opt.step()
            sched.step()
        return opt, sched

    old = TrainConfig(lr=1e-3, warmup_steps=2, max_steps=10, schedule="cosine", prealign_steps=0)
    opt, sched = scheduler(old, 6)
    saved_opt, saved_sched = opt.state_dict(), sched.state_dict()
    for new, expect in ((old, None), (TrainConfig(lr=4e-4, warmup_steps=2, max_steps=10, schedule="cosine", prealign_steps=0), 0.4),
                        (TrainConfig(lr=1e-3, warmup_steps=2, max_steps=40, schedule="cosine", prealign_steps=0), None)):
        opt2, sched2 = scheduler(new, 0)
        configured = list(sched2.base_lrs)
        opt2.load_state_dict(saved_opt)
        sched2.load_state_dict(saved_sched)
        keep_configured_lrs(sched2, configured)
        want = [base * lr_factor(6, new) for base in configured]
        assert [g["lr"] for g in opt2.param_groups] == pytest.approx(want) and sched2.get_last_lr() == pytest.approx(want)
        if new is old:
            assert [g["lr"] for g in opt2.param_groups] == [g["lr"] for g in opt.param_groups]  # exact resume: bit for bit
        if expect:
            assert want[0] == pytest.approx(expect * opt.param_groups[0]["lr"])
