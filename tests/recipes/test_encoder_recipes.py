"""Every registered encoder is usable from a recipe by name: a few real training steps with LoRA on it.

The LoRA target names are the ones `slamkit list encoders` / the README give for each encoder, so
this also checks that documentation. Clips are resampled to each encoder's own rate (MERT 24 kHz,
CLAP 48 kHz) by the dataset.
"""

from __future__ import annotations

import math
import warnings

import pytest

from slamkit.models.encoders.base import ENCODERS
from slamkit.train.log import read_metrics
from slamkit.train.loop import train

from conftest import tiny_config
from fake_video import video_corpus

STEPS = ("train.max_steps=3", "train.warmup_steps=1", "train.log_every=1", "train.valid_every=3", "train.save_every=3", "data.batch_size=3")


@pytest.mark.parametrize("name", ENCODERS.names())
def test_encoder_trains_from_a_recipe_with_lora(tmp_path, tone_corpus, name: str) -> None:
    warnings.filterwarnings("ignore", message="Support for mismatched key_padding_mask", category=UserWarning)
    card = ENCODERS.get(name).card
    assert card is not None, f"{name} has no EncoderCard (README / `slamkit list encoders` row)"
    targets = ",".join(t.strip() for t in card.lora.split(","))
    corpus = tone_corpus
    if name.startswith("av_hubert"):  # lip reading: mouth-crop clips instead of tone speech
        corpus = {"train": video_corpus(tmp_path / "clips", 4), "valid": video_corpus(tmp_path / "clips", 4)}
    cfg = tiny_config(
        tmp_path, corpus, *STEPS,
        f"model.encoder.name={name}", "model.encoder.preset=test", "model.encoder.trainable=lora",
        f"model.lora.encoder_target_modules=[{targets}]",
    )
    state = train(cfg)
    assert state.step == 3
    losses = [r["loss"] for r in read_metrics(tmp_path) if "loss" in r]
    assert len(losses) == 3 and all(math.isfinite(x) for x in losses)
    assert any("valid_loss" in r and math.isfinite(r["valid_loss"]) for r in read_metrics(tmp_path))
