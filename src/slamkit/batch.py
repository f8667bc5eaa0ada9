"""The batch contract between the data path and the model: :class:`Batch` and ``IGNORE_INDEX``.

The collator (:mod:`slamkit.data.collate`) builds batches; the model (:mod:`slamkit.models.speech_llm`)
and the training objectives read them. Both import this module and neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from torch import Tensor

IGNORE_INDEX = -100  # label of positions that do not count in the loss (prompt, audio, padding)


@dataclass
class Batch:
    """A padded batch. Shapes: b = batch, t = audio samples, s = tokens."""

    keys: list[str]
    audio: Tensor  # [b, t] float32, zero-padded (video: [b, f, c], frames of c values, slamkit.data.video)
    audio_lengths: Tensor  # [b] long, valid samples (video: frames)
    input_ids: Tensor  # [b, s] long
    attention_mask: Tensor  # [b, s] long, 1 on real tokens
    labels: Tensor  # [b, s] long, IGNORE_INDEX off-target
    targets: list[str]
    skipped: int = 0  # samples dropped from this batch because their audio failed to load
    skips: list = field(default_factory=list)  # why: one slamkit.data.skips.Skip per dropped sample (file:line, reason)
    extras: list[dict] = field(default_factory=list)
    cache_keys: list[str | None] = field(default_factory=list)  # [b] clip keys for the feature cache (may be empty)

    def to(self, device: torch.device | str) -> "Batch":
        """Move the tensors to ``device`` (returns self); asynchronous from pinned memory."""
        for name in ("audio", "audio_lengths", "input_ids", "attention_mask", "labels"):
            setattr(self, name, getattr(self, name).to(device, non_blocking=True))
        return self

    def pin_memory(self) -> "Batch":
        """Pin the tensors in page-locked memory (DataLoader ``pin_memory``: faster, asynchronous copies to CUDA)."""
        for name in ("audio", "audio_lengths", "input_ids", "attention_mask", "labels"):
            setattr(self, name, getattr(self, name).pin_memory())
        return self

    def without_targets(self) -> "Batch":
        """A copy whose labels are all ``IGNORE_INDEX``: the same forward pass, no loss and no units
        (what a process runs under FSDP when its share of a global batch is empty)."""
        return replace(self, labels=torch.full_like(self.labels, IGNORE_INDEX), keys=[], targets=[], extras=[], cache_keys=[])

    @property
    def num_target_tokens(self) -> int:
        """Number of label positions that count in the loss (before the causal shift)."""
        return int((self.labels[:, 1:] != IGNORE_INDEX).sum())
