"""The auxiliary CTC alignment loss (train.ctc_weight)."""

from __future__ import annotations

import pytest
import torch

from slamkit.config import load_config
from slamkit.batch import IGNORE_INDEX
from slamkit.data.collate import Collator, Example
from slamkit.train.objectives import LanguageModelObjective, ctc_alignment_loss, ctc_targets
from slamkit.models.speech_llm import build_model

from conftest import TINY_RECIPE

BLANK = 0


def test_targets_drop_ignored_positions_and_blank() -> None:
    labels = torch.tensor([[IGNORE_INDEX, 5, 6, BLANK], [IGNORE_INDEX, IGNORE_INDEX, 7, BLANK]])
    targets, lengths = ctc_targets(labels, BLANK)
    assert targets.tolist() == [5, 6, 7] and lengths.tolist() == [2, 1]


def test_loss_is_low_when_audio_embeddings_spell_the_tokens() -> None:
    torch.manual_seed(0)
    table = torch.randn(20, 16)
    labels = torch.tensor([[IGNORE_INDEX, 3, 9, 4, BLANK]])
    lengths = torch.tensor([7])
    spelled = 4.0 * table[[BLANK, 3, BLANK, 9, 9, 4, BLANK]].unsqueeze(0)  # blank 3 blank 9 9 4 blank
    shuffled = 4.0 * table[[BLANK, 4, BLANK, 3, 3, 9, BLANK]].unsqueeze(0)  # the same tokens, wrong order
    good = ctc_alignment_loss(spelled, lengths, table, labels, BLANK)
    bad = ctc_alignment_loss(shuffled, lengths, table, labels, BLANK)
    assert float(good) < 1.0 < float(bad)
    # rows past the valid length do not count
    padded = torch.cat([spelled, torch.randn(1, 3, 16)], dim=1)
    assert torch.allclose(ctc_alignment_loss(padded, lengths, table, labels, BLANK), good)


def test_too_few_audio_embeddings_give_zero_not_infinity() -> None:
    table = torch.randn(10, 8)
    labels = torch.tensor([[1, 2, 3, 4, 5]])
    loss = ctc_alignment_loss(torch.randn(1, 2, 8), torch.tensor([2]), table, labels, BLANK)
    assert torch.isfinite(loss) and float(loss) == 0.0


def _batch(model):
    prompts = model.prompts
    ex = Example("k", torch.randn(16000).numpy(), prompts.prompt_ids("hi"), prompts.target_ids("a b c"), "a b c")
    return Collator(model.audio_token_id, prompts.tokenizer.pad_token_id, model.token_counter())([ex])


def _objective(model, weight: float) -> LanguageModelObjective:
    return LanguageModelObjective(weight, lambda: model.embedding_table, model.pad_token_id)


def test_objective_adds_the_weighted_loss_in_training_only() -> None:
    model = build_model(load_config(TINY_RECIPE)).train()
    batch = _batch(model)
    assert _objective(model, 0.0)(model, batch).aux_sum is None
    out = _objective(model, 0.5)(model, batch)
    assert out.aux_sum is not None and float(out.aux_sum.detach()) > 0
    out.aux_sum.backward()
    grads = [p.grad for p in model.projector.parameters() if p.requires_grad]
    assert grads and all(g is not None for g in grads) and any(float(g.abs().sum()) > 0 for g in grads)
    assert _objective(model.eval(), 0.5)(model, batch).aux_sum is None  # validation loss stays the plain cross-entropy


def test_negative_weight_is_refused() -> None:
    model = build_model(load_config(TINY_RECIPE))
    with pytest.raises(ValueError, match="train.ctc_weight"):
        _objective(model, -1.0)


def test_gradient_matches_finite_differences() -> None:
    torch.manual_seed(1)
    table = torch.randn(12, 4, dtype=torch.float64)
    labels = torch.tensor([[IGNORE_INDEX, 3, 5, 3, BLANK]])
    audio = torch.randn(1, 8, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda a: ctc_alignment_loss(a, torch.tensor([8]), table, labels, BLANK).double(), (audio,))
