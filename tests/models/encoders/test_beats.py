"""BEATs encoder: official checkpoint layout, clear errors, lengths, padding independence, layers."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from slamkit.config import EncoderConfig
from slamkit.models.encoders.beats import BEATS_PRESETS, BEATsEncoder, BEATsModel, official_state_dict, save_beats_checkpoint
from slamkit.models.weights import CheckpointError
from slamkit.models.encoders.base import build_encoder


def _encoder(**kwargs: object) -> BEATsEncoder:
    encoder = build_encoder(EncoderConfig(name="beats", preset="test", **kwargs))  # type: ignore[arg-type]
    assert isinstance(encoder, BEATsEncoder)
    return encoder


def _official_keys(layers: int) -> set[str]:
    """Parameter names of the official ``BEATs`` module for the test preset (post_extract_proj, gated rel. pos.)."""
    keys = {"patch_embedding.weight", "layer_norm.weight", "layer_norm.bias", "post_extract_proj.weight", "post_extract_proj.bias"}
    keys |= {"encoder.pos_conv.0.weight_g", "encoder.pos_conv.0.weight_v", "encoder.pos_conv.0.bias", "encoder.layer_norm.weight", "encoder.layer_norm.bias"}
    per_layer = [f"self_attn.{p}_proj.{w}" for p in "qkv" for w in ("weight", "bias")]
    per_layer += ["self_attn.out_proj.weight", "self_attn.out_proj.bias", "self_attn.relative_attention_bias.weight"]
    per_layer += ["self_attn.grep_a", "self_attn.grep_linear.weight", "self_attn.grep_linear.bias"]
    per_layer += [f"{m}.{w}" for m in ("self_attn_layer_norm", "fc1", "fc2", "final_layer_norm") for w in ("weight", "bias")]
    return keys | {f"encoder.layers.{i}.{k}" for i in range(layers) for k in per_layer}


def _audio(seed: int = 0, n: int = 16000) -> torch.Tensor:
    return torch.randn(2, n, generator=torch.Generator().manual_seed(seed)) * 0.1


def test_official_layout_round_trip(tmp_path: Path) -> None:
    encoder = _encoder(init_seed=3)
    path = tmp_path / "BEATs_test.pt"
    save_beats_checkpoint(encoder.model, path)
    ckpt = torch.load(path, weights_only=True)
    assert set(ckpt["model"]) == _official_keys(2)
    assert ckpt["cfg"]["input_patch_size"] == 16 and ckpt["cfg"]["gru_rel_pos"] is True
    loaded = build_encoder(EncoderConfig(name="beats", path=str(path)))
    audio, lengths = _audio(), torch.tensor([16000, 12000])
    with torch.no_grad():
        expected, frames = encoder(audio, lengths)
        got, got_frames = loaded(audio, lengths)
    assert torch.equal(frames, got_frames)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_finetuned_checkpoint_drops_the_classifier(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    encoder = _encoder(init_seed=4)
    path = tmp_path / "BEATs_ft.pt"
    save_beats_checkpoint(encoder.model, path, predictor={"predictor.weight": torch.randn(527, 32), "predictor.bias": torch.zeros(527)})
    with caplog.at_level(logging.INFO, logger="slamkit.models.encoders.beats"):
        loaded = build_encoder(EncoderConfig(name="beats", path=str(path)))
    assert "predictor.weight" in caplog.text and "527 classes" in caplog.text
    assert not any("predictor" in name for name, _ in loaded.named_parameters())
    audio, lengths = _audio(1), torch.tensor([16000, 16000])
    with torch.no_grad():
        torch.testing.assert_close(loaded(audio, lengths)[0], encoder(audio, lengths)[0], rtol=0, atol=0)


def _official_file(tmp_path: Path, edit: str) -> Path:
    """A test-preset checkpoint broken in one way."""
    model = BEATsModel(BEATS_PRESETS["test"])
    cfg, state = BEATS_PRESETS["test"].to_official(), official_state_dict(model)
    ckpt: object = {"cfg": cfg, "model": state}
    if edit == "whisper_pt":
        ckpt = {"dims": {"n_mels": 80}, "model_state_dict": {"encoder.conv1.weight": torch.zeros(4, 80, 3)}}
    elif edit == "no_cfg":
        ckpt = {"model": state}
    elif edit == "whisper_state":
        ckpt = {"cfg": cfg, "model": {"encoder.conv1.weight": torch.zeros(4, 80, 3), "encoder.layers.0.fc1.weight": torch.zeros(8, 4)}}
    elif edit == "missing_key":
        del state["encoder.layers.1.fc2.bias"]
    elif edit == "wrong_width":
        cfg["encoder_embed_dim"] = 64
    elif edit == "bad_cfg_type":
        cfg["encoder_layers"] = "two"
    elif edit == "head_without_cfg":
        state["predictor.weight"], state["predictor.bias"] = torch.zeros(527, 32), torch.zeros(527)
    elif edit == "bias_copies_differ":
        state["encoder.layers.1.self_attn.relative_attention_bias.weight"] = torch.randn(32, 2)
    path = tmp_path / f"{edit}.pt"
    torch.save(ckpt, path)
    return path


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        ("whisper_pt", "expected a dict with 'cfg' and 'model'"),
        ("no_cfg", "expected a dict with 'cfg' and 'model'"),
        ("whisper_state", "encoder.conv1.weight"),
        ("missing_key", "encoder.layers.1.fc2.bias"),
        ("wrong_width", "shapes do not fit"),
        ("bad_cfg_type", "cfg['encoder_layers']"),
        ("head_without_cfg", "predictor.weight"),
        ("bias_copies_differ", "differs from layer 0"),
    ],
)
def test_wrong_checkpoint_names_file_and_keys(tmp_path: Path, edit: str, needle: str) -> None:
    path = _official_file(tmp_path, edit)
    with pytest.raises(CheckpointError) as err:
        build_encoder(EncoderConfig(name="beats", path=str(path)))
    assert str(path) in str(err.value) and needle in str(err.value)


def test_garbled_file_and_unknown_preset(tmp_path: Path) -> None:
    path = tmp_path / "garbled.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="garbled.pt"):
        build_encoder(EncoderConfig(name="beats", path=str(path)))
    with pytest.raises(ValueError, match="test, base"):
        build_encoder(EncoderConfig(name="beats", preset="huge"))


def test_output_lengths_match_forward() -> None:
    encoder = _encoder()
    # 2800 samples = 16 fbank frames = one patch; 5360 = 32 frames = two patches.
    lengths = torch.tensor([2800, 2801, 5359, 5360, 9000, 16000])
    audio = torch.randn(len(lengths), 16000) * 0.1
    with torch.no_grad():
        feats, frames = encoder(audio, lengths)
    assert frames.tolist() == [8, 8, 8, 16, 24, 48]
    assert torch.equal(encoder.output_lengths(lengths), frames)
    assert feats.shape == (6, 48, 32)
    for i, n in enumerate(frames.tolist()):
        assert bool((feats[i, n:] == 0).all()) and bool((feats[i, :n].abs().sum(-1) > 0).all())
    assert encoder.frame_rate == 50.0 and encoder.hidden_size == 32
    with pytest.raises(ValueError, match="at least 2800 samples"):
        encoder(audio[:1], torch.tensor([2799]))


def test_batch_equals_single() -> None:
    encoder = _encoder()
    a, b = _audio(5)[0], _audio(6)[1, :7000]
    batch = torch.full((2, 16000), 3.0)  # garbage padding must not leak
    batch[0], batch[1, :7000] = a, b
    with torch.no_grad():
        feats, frames = encoder(batch, torch.tensor([16000, 7000]))
        alone, n = encoder(b[None], torch.tensor([7000]))
    assert int(frames[1]) == int(n[0]) == 16
    torch.testing.assert_close(feats[1, :16], alone[0], rtol=0, atol=1e-5)


def test_layer_choice_and_weighted_sum_trains() -> None:
    audio, lengths = _audio(7), torch.tensor([16000, 9000])
    with torch.no_grad():
        top = _encoder()(audio, lengths)[0]
        torch.testing.assert_close(_encoder(layer=-1)(audio, lengths)[0], top, rtol=0, atol=0)
        assert not torch.allclose(_encoder(layer=0)(audio, lengths)[0], top)
    encoder = _encoder(layer_sum=True).train()
    feats, frames = encoder(audio, lengths)
    feats.pow(2).sum().backward()
    assert encoder.selector.weights is not None and encoder.selector.weights.grad is not None
    assert float(encoder.selector.weights.grad.abs().sum()) > 0
    assert float(encoder.model.encoder.layers[0].self_attn.q_proj.weight.grad.abs().sum()) > 0


def test_layers_lora_names_and_base_size() -> None:
    encoder = _encoder()
    assert len(encoder.transformer_layers()) == 2
    names = {name.rsplit(".", 1)[-1] for name, _ in encoder.named_modules()}
    assert {"q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"} <= names
    with torch.device("meta"):
        base = BEATsModel(BEATS_PRESETS["base"])
    assert sum(p.numel() for p in base.parameters()) == 90_311_792
