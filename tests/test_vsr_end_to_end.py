"""Visual speech recognition end to end at tiny size: fake mouth clips -> a tiny random AV-HuBERT + tiny Llama
trained a few steps (frozen encoder served from the feature cache) -> decode -> score; the audio-visual path
through the same loader and model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import TINY_RECIPE
from fake_video import video_corpus

from slamkit.config import load_config
from slamkit.infer.decode import decode
from slamkit.infer.score import score_file
from slamkit.models.speech_llm import build_model
from slamkit.train.data import build_loader
from slamkit.train.loop import train

pytest.importorskip("av")

VIDEO = ("model.encoder.name=av_hubert", "model.encoder.preset=test", "model.encoder.trainable=frozen", "data.task=vsr",
         "data.prompt=null", "data.batch_size=4", "data.min_seconds=0.1", "train.tensorboard=false")


def _losses(run: Path) -> list[float]:
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    return [line["loss"] for line in lines if "loss" in line]


def test_vsr_trains_from_video_clips_decodes_and_scores(tmp_path: Path) -> None:
    manifest = video_corpus(tmp_path / "clips", 4)
    run, cache = tmp_path / "run", tmp_path / "cache"
    result = train(load_config(TINY_RECIPE, [*VIDEO, f"train.output_dir={run}", f"data.train={manifest}", "data.valid=null",
                                             f"model.encoder.cache_dir={cache}", "train.max_steps=16", "train.warmup_steps=1",
                                             "train.log_every=1", "train.save_every=16", "train.lr=1e-2"]))
    assert result.step == 16 and result.skipped == 0
    losses = _losses(run)
    assert len(losses) >= 8 and sum(losses[-3:]) / 3 < 0.7 * sum(losses[:3]) / 3, losses  # it learns the four words
    assert any(cache.rglob("*")), "the frozen encoder's video features were cached"
    hyps = tmp_path / "vsr.hyp.jsonl"
    assert decode(run, manifest, hyps, ["decode.max_new_tokens=8", "decode.batch_size=3"]) == 4
    lines = [json.loads(line) for line in hyps.read_text(encoding="utf-8").splitlines()]
    assert [line["key"] for line in lines] == [f"clip{i}" for i in range(4)] and lines[0]["ref"] == "open"
    scored = score_file(hyps)
    assert scored["metric"] == "wer" and scored["wer"] <= 0.5, scored  # four words, learnt from the lips alone


def test_audio_visual_clips_run_through_loader_and_model(tmp_path: Path) -> None:
    manifest = video_corpus(tmp_path / "av", 3, audio_visual=True)
    cfg = load_config(TINY_RECIPE, [*VIDEO, "model.encoder.name=av_hubert_av", f"data.train={manifest}"])
    model = build_model(cfg).eval()
    loader = build_loader(cfg, model, manifest, "valid")
    batch = next(iter(loader.dataloader()))
    assert batch.audio.shape[2] == 88 * 88 + 640 and sorted(batch.audio_lengths.tolist()) == [10, 12, 14]  # frames
    with torch.no_grad():
        out = model(batch)
    assert out.audio_lengths.tolist() == [model.audio_token_count(int(n)) for n in batch.audio_lengths]
    assert torch.isfinite(out.logits).all()
