"""EAT encoder: official checkpoint layouts, clear errors, token counts, padding independence, layers."""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import pytest
import torch

from slamkit.config import EncoderConfig
from slamkit.models.weights import CheckpointError
from slamkit.models.encoders.data2vec2.eat import EAT_PRESETS, EATEncoder, sincos_positions
from slamkit.models.encoders.base import build_encoder


def _encoder(**kwargs: Any) -> EATEncoder:
    encoder = build_encoder(EncoderConfig(name="eat", preset="test", **kwargs))
    assert isinstance(encoder, EATEncoder)
    return encoder


def _official_keys(depth: int) -> set[str]:
    """State-dict keys of EAT's ``Data2VecMultiModel`` (IMAGE) without its pre-training parts."""
    block = [f"{m}.{w}" for m in ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2") for w in ("weight", "bias")]
    enc = "modality_encoders.IMAGE."
    keys = {enc + k for k in ("extra_tokens", "local_encoder.proj.weight", "local_encoder.proj.bias", "fixed_positional_encoder.positions")}
    keys |= {enc + "context_encoder.norm.weight", enc + "context_encoder.norm.bias"}
    return keys | {f"blocks.{i}.{k}" for i in range(depth) for k in block}


def _pretraining_state(encoder: EATEncoder) -> dict[str, Any]:
    """The weights as a pre-training checkpoint stores them: plus the EMA teacher and the CNN decoder."""
    extras = {
        "_ema": {"blocks.0.norm1.weight": torch.ones(32)},
        "modality_encoders.IMAGE.decoder.blocks.0.0.weight": torch.zeros(16, 2, 3, 3),
        "modality_encoders.IMAGE.decoder.proj.weight": torch.zeros(32, 16),
    }
    return {**encoder.model.state_dict(), **extras}


def _cfg(model: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"model": copy.deepcopy(model or EAT_PRESETS["test"]), "task": {"_name": "mae_image_pretraining", "target_length": 1024, "audio_mae": True}}


def _audio(lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(len(lengths), max(lengths), generator=gen), torch.tensor(lengths)


def _same_outputs(a: EATEncoder, b: EATEncoder) -> None:
    audio, lengths = _audio([8000, 5000])
    with torch.no_grad():
        expected, tokens = a(audio, lengths)
        got, got_tokens = b(audio, lengths)
    assert torch.equal(tokens, got_tokens)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_pretraining_layout_round_trip(tmp_path: Path) -> None:
    encoder = _encoder(init_seed=3)
    assert set(encoder.model.state_dict()) == _official_keys(2)
    assert encoder.model.encoder.fixed_positional_encoder.positions.shape == (1, 64 * 8, 32)
    path = tmp_path / "EAT_test_pretrain.pt"
    torch.save({"cfg": _cfg(), "model": _pretraining_state(encoder), "args": None, "extra_state": {"epoch": 30}}, path)
    _same_outputs(encoder, build_encoder(EncoderConfig(name="eat", path=str(path))))  # type: ignore[arg-type]


def test_finetuned_layout_is_unwrapped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    encoder = _encoder(init_seed=4)
    cfg = {"model": {"_name": "mae_image_classification", "num_classes": 527, "target_length": 1024, "pretrained_model_args": _cfg()}}
    state = {f"model.{k}": v for k, v in encoder.model.state_dict().items()}
    state.update({"fc_norm.weight": torch.ones(32), "fc_norm.bias": torch.zeros(32), "head.weight": torch.zeros(527, 32), "head.bias": torch.zeros(527)})
    path = tmp_path / "EAT_test_finetune_AS2M.pt"
    torch.save({"cfg": cfg, "model": state}, path)
    with caplog.at_level(logging.INFO, logger="slamkit.models.encoders.data2vec2.blocks"):
        loaded = build_encoder(EncoderConfig(name="eat", path=str(path)))
    assert "ignored 4" in caplog.text
    _same_outputs(encoder, loaded)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        ("missing", "blocks.1.attn.qkv.bias"),
        ("unexpected", "blocks.0.attn.q_proj.weight"),
        ("short_table", "fixed_positional_encoder.positions"),
        ("audio_model", "modalities.image"),
        ("pre_ln", "layer_norm_first"),
    ],
)
def test_wrong_checkpoint_names_file_and_keys(tmp_path: Path, edit: str, needle: str) -> None:
    encoder = _encoder()
    state = encoder.model.state_dict()
    cfg = _cfg()
    if edit == "missing":
        del state[needle]
    elif edit == "unexpected":
        state[needle] = torch.zeros(3)
    elif edit == "short_table":
        cfg["model"]["modalities"]["image"]["target_length"] = 512  # the stored table is for 1024 frames
    elif edit == "audio_model":
        cfg["model"]["modalities"] = {"audio": {"prenet_depth": 4}}
    elif edit == "pre_ln":
        cfg["model"]["layer_norm_first"] = True
    path = tmp_path / "bad_eat.pt"
    torch.save({"cfg": cfg, "model": state}, path)
    with pytest.raises(CheckpointError) as err:
        build_encoder(EncoderConfig(name="eat", path=str(path)))
    assert str(path) in str(err.value) and needle in str(err.value)


def test_not_a_fairseq_checkpoint_and_unknown_preset(tmp_path: Path) -> None:
    path = tmp_path / "BEATs_like.pt"
    torch.save({"cfg": {"input_patch_size": 16}, "model": {}}, path)  # a BEATs .pt: no cfg.model section
    with pytest.raises(CheckpointError, match="BEATs_like.pt"):
        build_encoder(EncoderConfig(name="eat", path=str(path)))
    with pytest.raises(ValueError, match="unknown eat preset"):
        _encoder().from_config(EncoderConfig(name="eat", preset="xl"))


def test_output_lengths_match_forward() -> None:
    encoder = _encoder()
    # 400 samples = 1 fbank frame; every started 16-frame row (2800 samples = 16 frames) gives 8 tokens.
    lengths = [400, 401, 559, 560, 2799, 2800, 2960, 16000]
    audio, lens = _audio(lengths)
    with torch.no_grad():
        feats, tokens = encoder(audio, lens)
    expected = [8 * -(-(1 + (n - 400) // 160) // 16) for n in lengths]
    assert tokens.tolist() == encoder.output_lengths(lens).tolist() == expected == [8, 8, 8, 8, 8, 8, 16, 56]
    assert feats.shape == (len(lengths), 56, 32) and encoder.frame_rate == 50.0
    for i, n in enumerate(tokens.tolist()):
        assert feats[i, n:].abs().sum() == 0 and feats[i, n - 1].abs().sum() > 0
    with pytest.raises(ValueError, match="at least 400 samples"):
        encoder(torch.zeros(1, 399), torch.tensor([399]))


def test_batch_equals_single() -> None:
    encoder = _encoder(init_seed=1)
    lengths = [16000, 5000, 400]
    audio, lens = _audio(lengths, seed=2)
    audio[1, 5000:] = 5.0  # padding contents must not matter
    with torch.no_grad():
        feats, tokens = encoder(audio, lens)
        for i, n in enumerate(lengths):
            alone, count = encoder(audio[i : i + 1, :n], torch.tensor([n]))
            assert count.item() == tokens[i]
            torch.testing.assert_close(feats[i, : tokens[i]], alone[0], rtol=0, atol=1e-5)


def test_positions_are_sliced_then_extended(caplog: pytest.LogCaptureFixture) -> None:
    positions = _encoder().model.encoder.fixed_positional_encoder
    torch.testing.assert_close(positions(5)[0], sincos_positions(32, 5, 8), rtol=0, atol=0)
    with caplog.at_level(logging.WARNING, logger="slamkit.models.encoders.data2vec2.eat"):
        longer = positions(66)[0]
    assert "exceeds the 64" in caplog.text
    torch.testing.assert_close(longer, sincos_positions(32, 66, 8), rtol=0, atol=1e-6)
    table = sincos_positions(8, 2, 3)  # first half: column (frequency band); second: row (time)
    assert torch.equal(table[1, 4:], table[0, 4:]) and not torch.equal(table[3, 4:], table[0, 4:])
    assert torch.equal(table[3, :4], table[0, :4])


def test_layer_choice_and_weighted_sum_trains() -> None:
    audio, lens = _audio([6000, 4000])
    with torch.no_grad():
        last, _ = _encoder(init_seed=4)(audio, lens)
        first, _ = _encoder(init_seed=4, layer=0)(audio, lens)
        top, _ = _encoder(init_seed=4, layer=-1)(audio, lens)
    torch.testing.assert_close(top, last, rtol=0, atol=0)
    assert not torch.allclose(first, last)
    summed = _encoder(init_seed=4, layer_sum=True).train()
    feats, _ = summed(audio, lens)
    feats.square().mean().backward()
    assert summed.selector.weights is not None and summed.selector.weights.grad is not None
    assert summed.selector.weights.grad.abs().sum() > 0


def test_layers_lora_names_and_base_size() -> None:
    encoder = _encoder()
    assert encoder.transformer_layers() is encoder.model.blocks and len(encoder.transformer_layers()) == 2
    names = {name.rsplit(".", 1)[-1] for name, _ in encoder.named_modules()}
    assert {"qkv", "proj"} <= names and "q_proj" not in names
    with torch.device("meta"):
        base = EATEncoder.from_config(EncoderConfig(name="eat", preset="base"))
    assert sum(p.numel() for p in base.parameters()) == 85_254_144
    assert base.hidden_size == 768 and len(base.transformer_layers()) == 12
