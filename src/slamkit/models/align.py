"""Auxiliary CTC loss that aligns the projector's outputs with the LLM's token embeddings.

A fresh projector's outputs mean nothing to the LLM; with LoRA and a frozen LLM, training first
learns the text prior of the training set (fluent, unrelated output) and only later the audio
(the sudden loss drop SLAM-ASR shows). This loss is an attempt to shorten that wait: each audio embedding ``a_t``
the projector emits is scored against every row of the LLM's input embedding table ``E``
(``logits_t = a_t · Eᵀ``, no new parameters) and CTC asks the sequence of audio embeddings to spell
the transcript's tokens in order, with the tokenizer's pad token as the CTC blank. Audio embeddings
are thereby pulled toward the embeddings of the tokens being spoken, which the frozen LLM already
reads. Measured on the demo recipe (Whisper tiny.en -> SmolLM2-135M, batch 4, weight 1.0): validation
loss 3.55 vs 3.66 without it at step 1000, but 3.52 vs 3.40 at step 1400, so it is off by default
and the demo does not use it. The loss is summed over utterances (like the cross-entropy, which the loop normalises by
the number of target tokens) and weighted by ``train.ctc_weight``; 0 turns it off.

Requirements: at least as many audio embeddings as target tokens (about 3–5 tokens per second of
speech for a 49 k BPE vocabulary, so 10 embeddings/s is enough); impossible alignments give 0
rather than infinity (``zero_infinity``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from slamkit.data.collate import IGNORE_INDEX


def ctc_targets(labels: Tensor, blank_id: int) -> tuple[Tensor, Tensor]:
    """Concatenated target tokens and their per-row counts from ``labels`` [b, s].

    Positions holding ``IGNORE_INDEX`` (prompt, audio, padding) and the blank/end token are dropped.
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
