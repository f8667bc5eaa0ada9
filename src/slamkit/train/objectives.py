"""Training objectives: what the loop optimises, chosen by the loop step by step (not flags on the model).

Each objective turns the model's :class:`~slamkit.models.speech_llm.ForwardOutput` for one
micro-batch into a loss **summed over its units** and says up front how many units a batch holds
(:meth:`Objective.units`). The loop divides every micro-batch's sum by the units of the whole
accumulation window, so each unit weighs the same whatever the batching:

- :class:`LanguageModelObjective` (``loss``): shifted cross-entropy over target tokens; units are
  target tokens. With ``train.ctc_weight > 0`` it adds, in training, the weighted auxiliary CTC
  alignment loss below (summed over utterances, on the same token normalisation).
- :class:`PrealignObjective` (``prealign_loss``, the first ``train.prealign_steps`` steps): no LLM
  pass; squared distance of each audio embedding to the token embedding a uniform alignment
  assigns it, a mean per clip; units are clips, so the logged value is the mean over clips for any
  ``train.grad_accum``.

**Auxiliary CTC alignment.** A fresh projector's outputs mean nothing to the LLM; with LoRA and a
frozen LLM, training first learns the text prior of the training set (fluent, unrelated output)
and only later the audio (the sudden loss drop SLAM-ASR shows). The CTC loss is an attempt to
shorten that wait: each audio embedding ``a_t`` the projector emits is scored against every row
of the LLM's input embedding table ``E`` (``logits_t = a_t · Eᵀ``, no new parameters) and CTC asks
the sequence of audio embeddings to spell the transcript's tokens in order, with the tokenizer's
pad token as the CTC blank. Measured on the demo recipe (Whisper tiny.en -> SmolLM2-135M, batch 4,
weight 1.0): validation loss 3.55 vs 3.66 without it at step 1000, but 3.52 vs 3.40 at step 1400,
so it is off by default and the demo does not use it. It needs at least as many audio embeddings
as target tokens (about 3–5 tokens per second of speech for a 49 k BPE vocabulary, so 10
embeddings/s is enough); impossible alignments give 0 rather than infinity (``zero_infinity``).
Target positions equal to the blank (pad) token are not spelled; with a tokenizer whose pad is its
end-of-sequence token, that drops the final end token, and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from slamkit.batch import IGNORE_INDEX, Batch
from slamkit.config import TrainConfig


def ctc_targets(labels: Tensor, blank_id: int) -> tuple[Tensor, Tensor]:
    """Concatenated target tokens and their per-row counts from ``labels`` [b, s].

    Positions holding ``IGNORE_INDEX`` (prompt, audio, padding) and the blank token (the tokenizer's
    pad token, which is its end token when it has no pad of its own) are dropped.
    """
    keep = (labels != IGNORE_INDEX) & (labels != blank_id)
    return labels[keep], keep.sum(dim=1)


def ctc_alignment_loss(audio_embeds: Tensor, audio_lengths: Tensor, embedding: Tensor, labels: Tensor,
                       blank_id: int) -> Tensor:
    """Summed CTC loss of the audio embeddings ``[b, t, d]`` spelling the target tokens.

    Args:
        audio_embeds: projector outputs; rows past ``audio_lengths`` are ignored.
        audio_lengths: [b] valid audio embeddings per row.
        embedding: the LLM's input embedding table [vocab, d] (its rows are the CTC classes).
        labels: [b, s] training labels (``IGNORE_INDEX`` outside the target).
        blank_id: the class used as CTC blank (the tokenizer's pad token); never a target.
    """
    targets, target_lengths = ctc_targets(labels, blank_id)
    dtype = torch.promote_types(audio_embeds.dtype, torch.float32)  # at least fp32 (bf16 autocast)
    logits = torch.einsum("btd,vd->btv", audio_embeds.to(dtype), embedding.to(dtype))
    # log_softmax over the whole vocabulary: torch's CTC backward is exact only for normalised
    # log-probabilities of every class (handing it a subset of columns gives wrong gradients).
    log_probs = logits.log_softmax(dim=-1).transpose(0, 1)  # [t, b, vocab]
    return torch.nn.functional.ctc_loss(
        log_probs, targets, audio_lengths.long(), target_lengths.long(), blank=blank_id,
        reduction="sum", zero_infinity=True,
    )


def uniform_alignment_targets(audio_lengths: Tensor, labels: Tensor, blank_id: int, steps: int) -> tuple[Tensor, Tensor]:
    """For each audio position, the target token a uniform alignment assigns it.

    Audio embedding ``j`` of a row with ``L`` embeddings and ``n`` target tokens gets token
    ``floor(j * n / L)``: the transcript's tokens spread evenly over the clip. Returns target ids
    ``[b, steps]`` and a validity mask ``[b, steps]`` (positions past ``L`` and rows with no target
    token are invalid).
    """
    targets, counts = ctc_targets(labels, blank_id)
    starts = torch.cumsum(counts, 0) - counts  # where each row's tokens begin in ``targets``
    positions = torch.arange(steps, device=labels.device).unsqueeze(0)  # [1, steps]
    lengths = audio_lengths.long().unsqueeze(1)
    valid = (positions < lengths) & (counts.unsqueeze(1) > 0)
    index = positions * counts.unsqueeze(1) // lengths.clamp(min=1)  # [b, steps], < count where valid
    flat = (starts.unsqueeze(1) + index.clamp(max=(counts - 1).clamp(min=0).unsqueeze(1))).clamp(max=max(len(targets) - 1, 0))
    ids = targets[flat] if len(targets) else torch.zeros_like(flat)
    return ids, valid


def uniform_alignment_loss(audio_embeds: Tensor, audio_lengths: Tensor, embedding: Tensor, labels: Tensor,
                           blank_id: int) -> tuple[Tensor, int]:
    """Squared distance between each audio embedding and the token embedding the uniform alignment
    (:func:`uniform_alignment_targets`) assigns it, averaged over each row's positions and summed
    over rows (every clip counts the same, short or long); and the number of rows scored.

    Used by ``train.prealign_steps``: with no LLM forward pass, a fresh projector learns in a minute
    or two to emit, in order, vectors near the embeddings of the tokens being spoken. The frozen
    LLM then reads its input roughly like text from the first step of ordinary training, which
    shortens the long wait before the projector aligns (see the README's "Pre-alignment").
    """
    ids, valid = uniform_alignment_targets(audio_lengths, labels, blank_id, audio_embeds.shape[1])
    wanted = embedding.detach()[ids].float()  # [b, t, d]
    errors = (audio_embeds.float() - wanted).pow(2).sum(-1) * valid  # [b, t]
    positions = valid.sum(dim=1)
    scored = positions > 0
    return (errors.sum(dim=1)[scored] / positions[scored]).sum(), int(scored.sum())


@dataclass
class LossOutput:
    """One micro-batch's loss, summed over the objective's units (the loop normalises)."""

    loss_sum: Tensor  # scalar: sum over units (target tokens, or clips)
    units: int  # units the sum runs over
    num_tokens: int = 0  # target tokens scored (token accuracy)
    num_correct: int | Tensor = 0  # of those, predicted right (argmax; a device tensor: no host sync)
    aux_sum: Tensor | None = None  # weighted auxiliary loss (CTC), summed; None when off


class Objective:
    """What one training step optimises. ``name`` is the key its loss is logged under, ``unit`` the
    key its normaliser (the units of a step) is logged under."""

    name = "loss"
    unit = "tokens"

    def units(self, batch: Batch) -> int:
        """How many units ``batch`` contributes to the normaliser (known before the forward pass)."""
        raise NotImplementedError

    def __call__(self, model: nn.Module, batch: Batch) -> LossOutput:
        """The summed loss of ``batch``; ``model`` is the SpeechLLM (or a wrapper that forwards to it)."""
        raise NotImplementedError


class LanguageModelObjective(Objective):
    """Shifted cross-entropy over target tokens (+ weighted CTC alignment in training when ``ctc_weight > 0``)."""

    name = "loss"

    def __init__(self, ctc_weight: float, embedding: Callable[[], Tensor], blank_id: int) -> None:
        if ctc_weight < 0:
            raise ValueError(f"train.ctc_weight must be >= 0, got {ctc_weight}")
        self.ctc_weight = float(ctc_weight)
        self.embedding = embedding
        self.blank_id = blank_id

    def units(self, batch: Batch) -> int:
        """Target tokens (label positions that count, after the causal shift)."""
        return batch.num_target_tokens

    def __call__(self, model: nn.Module, batch: Batch) -> LossOutput:
        """Summed cross-entropy over ``batch``'s target tokens, plus the weighted CTC term in training."""
        out = model(batch)
        if out.anchor is not None:  # an empty share of a global batch
            return LossOutput(out.anchor, 0)
        logits = out.logits.float()  # [n_targets, vocab]
        loss_sum = nn.functional.cross_entropy(logits, out.targets, reduction="sum")
        correct = (logits.argmax(-1) == out.targets).sum()
        aux = None
        if model.training and self.ctc_weight > 0:
            aux = self.ctc_weight * ctc_alignment_loss(out.audio_embeds, out.audio_lengths, self.embedding(), batch.labels, self.blank_id)
        return LossOutput(loss_sum, int(out.targets.numel()), int(out.targets.numel()), correct, aux)


class PrealignObjective(Objective):
    """Pre-alignment: projector outputs pulled toward uniformly aligned token embeddings, a mean per clip."""

    name = "prealign_loss"
    unit = "clips"

    def __init__(self, embedding: Callable[[], Tensor], blank_id: int) -> None:
        self.embedding = embedding
        self.blank_id = blank_id

    def units(self, batch: Batch) -> int:
        """Clips with at least one target token (those :func:`uniform_alignment_loss` scores)."""
        _, counts = ctc_targets(batch.labels, self.blank_id)
        return int((counts > 0).sum())

    def __call__(self, model: nn.Module, batch: Batch) -> LossOutput:
        """Summed per-clip mean distances of ``batch`` (no LLM pass)."""
        out = model(batch, with_llm=False)
        if out.anchor is not None:  # an empty share of a global batch
            return LossOutput(out.anchor, 0)
        total, clips = uniform_alignment_loss(out.audio_embeds, out.audio_lengths, self.embedding(), batch.labels, self.blank_id)
        return LossOutput(total, clips)


def build_objectives(tc: TrainConfig, embedding: Callable[[], Tensor], blank_id: int) -> tuple[Objective | None, Objective]:
    """The pre-alignment objective (None when ``train.prealign_steps`` is 0) and the ordinary one."""
    if tc.prealign_steps < 0:
        raise ValueError(f"train.prealign_steps must be >= 0, got {tc.prealign_steps}")
    prealign = PrealignObjective(embedding, blank_id) if tc.prealign_steps else None
    return prealign, LanguageModelObjective(tc.ctc_weight, embedding, blank_id)
