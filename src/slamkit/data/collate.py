"""Collator: pad audio, expand the audio placeholder to N_i tokens, build labels.

Layout of one row (training, right padding)::

    [prompt-before-audio] [AUDIO × N_i] [prompt-after-audio] [target] [eos] [pad …]
    labels: -100 everywhere except target and eos

For generation (left padding, no target)::

    [pad …] [prompt-before-audio] [AUDIO × N_i] [prompt-after-audio]

N_i comes from ``token_count(num_samples)``, a pure length rule the caller passes in
(:class:`slamkit.models.lengths.AudioTokenCounter`): the data layer never hard-codes encoder or
projector downsampling, and never calls the model.

A text-only example (no audio samples, docs/text-only.md) gets zero audio tokens: its placeholder,
if its prompt has one, is removed; a plain-text example has no prompt beyond a BOS and every target
token is labelled. Its row of ``audio`` is all padding with ``audio_lengths`` 0, which the model
reads as "no audio here": text and audio examples may share a batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Literal

import numpy as np
import torch

from slamkit.batch import IGNORE_INDEX, Batch
from slamkit.data.skips import Skip


@dataclass
class Example:
    """One loaded sample, model-agnostic apart from token ids."""

    key: str
    audio: np.ndarray  # [t] float32 at the encoder's rate; video: [f, c] (frames, pixels per step: slamkit.data.video)
    prompt_ids: list[int]  # contains the audio placeholder exactly once (at most once for a text-only example)
    target_ids: list[int]  # target tokens + eos (empty when decoding without references)
    target: str  # reference text
    extra: dict = field(default_factory=dict)
    cache_key: str | None = None  # identity of the clip (file + crop) for the feature cache; None: not cacheable


class Collator:
    """Builds :class:`Batch` objects from :class:`Example` lists (a :class:`~slamkit.data.skips.Skip`, or
    ``None``, marks a sample that failed to load: it is dropped and counted)."""

    def __init__(
        self,
        audio_token_id: int,
        pad_token_id: int,
        token_count: Callable[[int], int],
        padding_side: Literal["right", "left"] = "right",
        with_targets: bool = True,
    ) -> None:
        self.audio_token_id = audio_token_id
        self.pad_token_id = pad_token_id
        self.token_count = token_count
        self.padding_side = padding_side
        self.with_targets = with_targets

    def _row(self, ex: Example) -> tuple[list[int], list[int]]:
        """Token ids and labels of one example, audio placeholder expanded (to nothing without audio)."""
        if self.audio_token_id in ex.prompt_ids:
            pos = ex.prompt_ids.index(self.audio_token_id)
            n_audio = self.token_count(len(ex.audio)) if len(ex.audio) else 0
            prompt = ex.prompt_ids[:pos] + [self.audio_token_id] * n_audio + ex.prompt_ids[pos + 1 :]
        elif len(ex.audio):
            raise ValueError(f"example {ex.key!r} has audio but its prompt holds no audio placeholder")
        else:  # plain text-only
            prompt = list(ex.prompt_ids)
        target = ex.target_ids if self.with_targets else []
        return prompt + target, [IGNORE_INDEX] * len(prompt) + list(target)

    def __call__(self, items: list[Example | Skip | None]) -> Batch:
        examples = [ex for ex in items if isinstance(ex, Example)]
        skips = [s for s in items if isinstance(s, Skip)]
        skipped = len(items) - len(examples)
        if not examples:
            return Batch([], torch.zeros(0, 0), torch.zeros(0, dtype=torch.long), torch.zeros(0, 0, dtype=torch.long),
                         torch.zeros(0, 0, dtype=torch.long), torch.zeros(0, 0, dtype=torch.long), [], skipped, skips)
        rows = [self._row(ex) for ex in examples]
        width = max(len(ids) for ids, _ in rows)
        b = len(examples)
        input_ids = torch.full((b, width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((b, width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((b, width), dtype=torch.long)
        for i, (ids, lab) in enumerate(rows):
            span = slice(width - len(ids), width) if self.padding_side == "left" else slice(0, len(ids))
            input_ids[i, span] = torch.tensor(ids)
            labels[i, span] = torch.tensor(lab)
            mask[i, span] = 1
        audio_lengths = torch.tensor([len(ex.audio) for ex in examples], dtype=torch.long)
        audio = torch.zeros((b, int(audio_lengths.max()), *_step_shape(examples)), dtype=torch.float32)
        for i, ex in enumerate(examples):
            audio[i, : len(ex.audio)] = torch.from_numpy(np.asarray(ex.audio, dtype=np.float32))
        return Batch(
            keys=[ex.key for ex in examples], audio=audio, audio_lengths=audio_lengths, input_ids=input_ids,
            attention_mask=mask, labels=labels, targets=[ex.target for ex in examples], skipped=skipped, skips=skips,
            extras=[ex.extra for ex in examples], cache_keys=[ex.cache_key for ex in examples],
        )


def _step_shape(examples: list[Example]) -> tuple[int, ...]:
    """The shape of one time step shared by the batch's clips: ``()`` for waveforms, ``(c,)`` for video
    frames (:mod:`slamkit.data.video`); clips without audio (text-only) take any. Mixed shapes raise."""
    shapes = {tuple(ex.audio.shape[1:]): ex.key for ex in examples if len(ex.audio)}
    if len(shapes) > 1:
        raise ValueError(f"clips of different kinds in one batch (per-step shapes {sorted(shapes)}, e.g. {sorted(shapes.values())}): "
                         "audio, video and audio-visual records cannot be mixed in a manifest")
    return next(iter(shapes), ())
