"""Pre-alignment (train.prealign_steps): projector-only steps toward uniformly aligned token embeddings."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from slamkit.config import TrainConfig
from slamkit.batch import IGNORE_INDEX
from slamkit.train.objectives import uniform_alignment_loss, uniform_alignment_targets
from slamkit.train import checkpoint as ckpt
from slamkit.train.log import read_metrics
from slamkit.train.loop import train
from slamkit.train.optim import lr_factor

from conftest import tiny_config

I, BLANK = IGNORE_INDEX, 0
FAST = ("train.max_steps=8", "train.warmup_steps=2", "train.log_every=1", "train.valid_every=4", "train.save_every=3",
        "data.batch_size=4", "model.lora.dropout=0.1", "model.projector.dropout=0.1")


def test_uniform_targets_spread_the_tokens_over_the_clip() -> None:
    labels = torch.tensor([[I, I, 5, 6, 7, BLANK], [I, I, I, 8, BLANK, I], [I, I, I, I, I, I]])
    ids, valid = uniform_alignment_targets(torch.tensor([6, 4, 3]), labels, BLANK, 6)
    assert ids[0].tolist() == [5, 5, 6, 6, 7, 7]
    assert ids[1, :4].tolist() == [8, 8, 8, 8]
    assert valid.tolist() == [[True] * 6, [True] * 4 + [False] * 2, [False] * 6]  # no target: nothing scored
    # more tokens than audio positions: every position still gets one, in order
    ids, valid = uniform_alignment_targets(torch.tensor([2]), torch.tensor([[1, 2, 3, 4, BLANK]]), BLANK, 3)
    assert ids[0, :2].tolist() == [1, 3] and valid[0].tolist() == [True, True, False]


def test_uniform_loss_is_zero_for_the_wanted_embeddings_and_ignores_padding() -> None:
    torch.manual_seed(0)
    table = torch.randn(10, 4)
    labels = torch.tensor([[I, 3, 9, BLANK], [I, I, 5, BLANK]])
    perfect = torch.stack([table[[3, 3, 9, 9, 0, 0]], table[[5, 5, 1, 1, 1, 1]]])  # row 1: 2 valid positions
    lengths = torch.tensor([4, 2])
    total, clips = uniform_alignment_loss(perfect, lengths, table, labels, BLANK)
    assert float(total) == pytest.approx(0.0, abs=1e-10) and clips == 2
    # each clip counts once, whatever its length: mean over its positions, summed over clips
    off = perfect + torch.tensor([1.0, 2.0]).view(2, 1, 1)
    total, _ = uniform_alignment_loss(off, lengths, table, labels, BLANK)
    assert float(total) == pytest.approx(4 * 1.0 + 4 * 4.0)  # 4 dims x 1² + 4 dims x 2²
    empty = torch.tensor([[I, I, I, I], [I, 5, BLANK, I]])
    total, clips = uniform_alignment_loss(perfect, lengths, table, empty, BLANK)
    assert clips == 1  # a row with no target token is not scored


def test_lr_schedule_restarts_its_warmup_after_prealignment() -> None:
    tc = TrainConfig(max_steps=110, warmup_steps=10, schedule="linear", prealign_steps=10)
    assert lr_factor(0, tc) == pytest.approx(0.1)
    assert lr_factor(9, tc) == pytest.approx(1.0)
    assert lr_factor(10, tc) == pytest.approx(0.1)  # ordinary training warms up again
    assert lr_factor(19, tc) == pytest.approx(1.0)
    assert lr_factor(110, tc) == pytest.approx(0.0)  # and decays over its own 100 steps


def test_prealignment_trains_only_the_projector_then_everything(tmp_path, tone_corpus) -> None:
    pre = train(tiny_config(tmp_path / "pre", tone_corpus, *FAST, "train.max_steps=3", "train.prealign_steps=3",
                            "train.valid_every=2"))
    fresh = train(tiny_config(tmp_path / "fresh", tone_corpus, *FAST, "train.max_steps=3", "train.lr=1e-12"))
    assert pre.step == fresh.step == 3
    a = load_file(str(ckpt.latest_checkpoint(tmp_path / "pre").path / "model.safetensors"))
    b = load_file(str(ckpt.latest_checkpoint(tmp_path / "fresh").path / "model.safetensors"))
    lora = [k for k in a if "lora_" in k]
    projector = [k for k in a if k.startswith("projector.")]
    assert lora and projector
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in lora), "the LLM's LoRA must not move in pre-alignment"
    assert not all(torch.allclose(a[k], b[k], atol=1e-6) for k in projector)
    records = [r for r in read_metrics(tmp_path / "pre") if "step" in r and "lr" in r]
    assert records and all("prealign_loss" in r and "loss" not in r for r in records)
    losses = [r["prealign_loss"] for r in records]
    assert all(loss > 0 for loss in losses)
    # no validation during pre-alignment (step 2), only the final one
    assert [r["step"] for r in read_metrics(tmp_path / "pre") if "valid_loss" in r] == [3]
    # "…then everything": past pre-alignment, ordinary steps train the LLM's LoRA too
    both = train(tiny_config(tmp_path / "both", tone_corpus, *FAST, "train.max_steps=5", "train.prealign_steps=3",
                             "train.valid_every=0"))
    assert both.step == 5
    rows = [r for r in read_metrics(tmp_path / "both") if "lr" in r]
    assert [("prealign_loss" in r, "loss" in r) for r in rows] == [(True, False)] * 3 + [(False, True)] * 2
    c = load_file(str(ckpt.latest_checkpoint(tmp_path / "both").path / "model.safetensors"))
    assert not all(torch.allclose(c[k], b[k], atol=1e-6) for k in lora), "ordinary steps after pre-alignment move the LoRA"


def test_resume_across_the_end_of_prealignment_is_exact(tmp_path, tone_corpus) -> None:
    """Pre-align 3 steps then train to 8, straight vs. killed after step 5 and resumed from the
    step-3 checkpoint (taken exactly at the switch): same logged losses, same final weights."""
    opts = (*FAST, "train.prealign_steps=3")
    train(tiny_config(tmp_path / "full", tone_corpus, *opts))
    train(tiny_config(tmp_path / "cut", tone_corpus, *opts), stop_at_step=5)
    assert ckpt.latest_checkpoint(tmp_path / "cut").step == 3
    train(tiny_config(tmp_path / "cut", tone_corpus, *opts, "train.resume=true"))

    def logged(run):
        return {r["step"]: (r.get("loss"), r.get("prealign_loss")) for r in read_metrics(run) if "lr" in r}

    full, cut = logged(tmp_path / "full"), logged(tmp_path / "cut")
    assert sorted(full) == list(range(1, 9)) and full == cut
    assert all(full[s][1] is not None for s in (1, 2, 3)) and all(full[s][0] is not None for s in range(4, 9))
    wa = load_file(str(ckpt.latest_checkpoint(tmp_path / "full").path / "model.safetensors"))
    wb = load_file(str(ckpt.latest_checkpoint(tmp_path / "cut").path / "model.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_negative_prealign_steps_are_refused(tmp_path, tone_corpus) -> None:
    with pytest.raises(ValueError, match="train.prealign_steps"):
        train(tiny_config(tmp_path / "bad", tone_corpus, *FAST, "train.prealign_steps=-1"))


def test_progress_bar_pace_restarts_after_prealignment() -> None:
    """The ETA comes from the pace since the switch, not from the far faster pre-alignment steps."""
    import time

    from slamkit.train.loop import _expected_steps

    tc = TrainConfig(max_steps=100_000, max_minutes=1.0)
    now = time.perf_counter()
    # 1000 pre-alignment steps took 10 s; 10 ordinary steps since then took 10 s: 40 s left at 1 s/step
    expected = _expected_steps(now - 20, 1010, tc, 100_000, (now - 10, 1000))
    assert 1045 <= expected <= 1052
    assert _expected_steps(now - 20, 1000, tc, 777, (now, 1000)) == 777  # no pace yet: unchanged


def _clip_mean_loss(model, batches) -> float:
    """The mean over clips of each clip's mean squared distance, computed clip by clip."""
    per_clip = []
    for batch in batches:
        out = model(batch, with_llm=False)
        for i in range(len(batch.keys)):
            total, clips = uniform_alignment_loss(out.audio_embeds[i : i + 1], out.audio_lengths[i : i + 1], model.embedding_table,
                                                  batch.labels[i : i + 1], model.pad_token_id)
            if clips:
                per_clip.append(float(total))
    return sum(per_clip) / len(per_clip)


def test_prealign_loss_is_a_per_clip_mean_for_any_grad_accum(tmp_path, tone_corpus) -> None:
    """grad_accum=2 over [a, b] + [c, d, e] gives the loss and update of one batch [a..e]: the mean
    over clips of each clip's mean distance, however the clips fall into micro-batches."""
    import copy

    from slamkit.models.speech_llm import build_model
    from slamkit.train.data import build_loader
    from slamkit.train.loop import _optimizer_step
    from slamkit.train.objectives import PrealignObjective

    cfg = tiny_config(tmp_path, tone_corpus, "model.lora.dropout=0.0", "model.projector.dropout=0.0", "train.clip_grad=0",
                      "train.grad_accum=2")
    model = build_model(cfg).train()
    data = build_loader(cfg, model, str(tone_corpus["train"]), "valid")
    items = [data.dataset[i] for i in range(5)]
    objective = PrealignObjective(lambda: model.embedding_table, model.pad_token_id)

    def step(window):
        m = copy.deepcopy(model)
        params = [p for p in m.parameters() if p.requires_grad]
        opt = torch.optim.SGD(params, lr=1.0)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
        stats = _optimizer_step(_run(m, opt, sched, torch.amp.GradScaler("cpu", enabled=False), cfg), window, objective)
        return stats, [p.detach() for p in params]

    split = [data.collator(items[:2]), data.collator(items[2:])]
    whole = [data.collator(items)]
    with torch.no_grad():
        expected = _clip_mean_loss(model, whole)
    split_stats, split_params = step(split)
    whole_stats, whole_params = step(whole)
    assert split_stats["clips"] == whole_stats["clips"] == 5  # units are clips
    assert split_stats["loss"] == pytest.approx(expected, rel=1e-5)
    assert whole_stats["loss"] == pytest.approx(expected, rel=1e-5)
    for a, b in zip(split_params, whole_params):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def _run(model, optimizer, scheduler, scaler, cfg):
    """The parts of a training run one optimizer step reads (one process, on the CPU)."""
    from types import SimpleNamespace

    from slamkit.train.distributed import Dist

    dist = Dist(0, 1, 0, torch.device("cpu"), "single")
    return SimpleNamespace(cfg=cfg, dist=dist, model=model, engine=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler)
