"""Collator layout: placeholder expansion, label masks, left/right padding, skipped samples."""

from __future__ import annotations

import numpy as np
import torch

from slamkit.batch import IGNORE_INDEX
from slamkit.data.collate import Collator, Example

AUDIO, PAD = 99, 0


def _ex(key: str, samples: int, prompt: list[int], target: list[int]) -> Example:
    return Example(key=key, audio=np.ones(samples, dtype=np.float32), prompt_ids=prompt, target_ids=target, target=key)


def test_right_padded_layout_and_labels():
    col = Collator(AUDIO, PAD, token_count=lambda n: n // 10, padding_side="right")
    batch = col([_ex("a", 30, [5, AUDIO, 6], [7, 8, 2]), _ex("b", 10, [5, AUDIO, 6], [9, 2])])
    assert batch.input_ids.tolist() == [
        [5, AUDIO, AUDIO, AUDIO, 6, 7, 8, 2],
        [5, AUDIO, 6, 9, 2, PAD, PAD, PAD],
    ]
    assert batch.labels.tolist() == [
        [IGNORE_INDEX] * 5 + [7, 8, 2],
        [IGNORE_INDEX] * 3 + [9, 2] + [IGNORE_INDEX] * 3,
    ]
    assert batch.attention_mask.tolist() == [[1] * 8, [1] * 5 + [0] * 3]
    assert batch.audio.shape == (2, 30)
    assert batch.audio_lengths.tolist() == [30, 10]
    assert float(batch.audio[1, 10:].abs().sum()) == 0.0
    assert batch.num_target_tokens == 5


def test_left_padded_generation_layout():
    col = Collator(AUDIO, PAD, token_count=lambda n: n // 10, padding_side="left", with_targets=False)
    batch = col([_ex("a", 20, [AUDIO, 6, 7], [1, 2]), _ex("b", 10, [AUDIO, 6, 7], [1, 2])])
    assert batch.input_ids.tolist() == [[AUDIO, AUDIO, 6, 7], [PAD, AUDIO, 6, 7]]
    assert batch.attention_mask.tolist() == [[1, 1, 1, 1], [0, 1, 1, 1]]
    assert torch.all(batch.labels == IGNORE_INDEX)


def test_failed_samples_are_dropped_and_counted():
    col = Collator(AUDIO, PAD, token_count=lambda n: 1)
    batch = col([None, _ex("a", 5, [AUDIO], [3]), None])
    assert batch.keys == ["a"] and batch.skipped == 2
    empty = col([None])
    assert empty.keys == [] and empty.skipped == 1
