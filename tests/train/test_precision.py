"""Trainable weights and their optimizer state stay float32 under a bf16 base."""

from __future__ import annotations

import pytest
import torch

from slamkit.models.speech_llm import build_model
from slamkit.train.data import build_loader
from slamkit.train.loop import _optimizer_step
from slamkit.train.objectives import LanguageModelObjective
from slamkit.train.optim import build_optimizer, build_scheduler

from conftest import tiny_config
from test_train import _run


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("trainable", ["lora", "full"])
def test_bf16_base_trains_fp32_weights(tmp_path, tone_corpus, precision: str, trainable: str) -> None:
    cfg = tiny_config(tmp_path, tone_corpus, "model.llm.dtype=bfloat16", f"model.llm.trainable={trainable}",
                      f"train.precision={precision}")
    model = build_model(cfg).train()
    frozen = {p.dtype for p in model.llm.parameters() if not p.requires_grad}
    assert trainable == "full" or frozen == {torch.bfloat16}, "the frozen base keeps the dtype it was loaded in"
    trainable_params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert trainable_params and all(p.dtype == torch.float32 for p in trainable_params.values()), \
        [n for n, p in trainable_params.items() if p.dtype != torch.float32][:5]
    optimizer = build_optimizer(model, cfg.train)
    data = build_loader(cfg, model, str(tone_corpus["train"]), "valid")
    batch = data.collator([data.dataset[i] for i in range(4)])
    objective = LanguageModelObjective(0.0, lambda: model.embedding_table, model.pad_token_id)
    stats = _optimizer_step(_run(model, optimizer, build_scheduler(optimizer, cfg.train), torch.amp.GradScaler("cpu", enabled=False), cfg),
                            [batch], objective)
    assert stats["loss"] == stats["loss"] and stats["grad_norm"] > 0
    states = [optimizer.state[p] for p in trainable_params.values()]
    assert states and all(s["exp_avg"].dtype == s["exp_avg_sq"].dtype == torch.float32 for s in states)


def test_loader_workers_prefetch_and_match_the_in_process_batches(tmp_path, tone_corpus) -> None:
    cfg = tiny_config(tmp_path, tone_corpus, "data.num_workers=1", "data.prefetch_factor=3", "data.batch_size=2")
    model = build_model(cfg)
    loader = build_loader(cfg, model, str(tone_corpus["train"]), "valid")
    dataloader = loader.dataloader()
    assert dataloader.prefetch_factor == 3 and dataloader.num_workers == 1
    worker_batches = list(dataloader)
    loader.workers = 0
    in_process = list(loader.dataloader())
    assert len(worker_batches) == len(in_process) > 1
    for a, b in zip(worker_batches, in_process):
        assert torch.equal(a.input_ids, b.input_ids) and torch.equal(a.audio, b.audio)
    bad = tiny_config(tmp_path, tone_corpus, "data.prefetch_factor=0")
    with pytest.raises(ValueError, match="data.prefetch_factor"):
        build_loader(bad, model, str(tone_corpus["train"]), "valid")
