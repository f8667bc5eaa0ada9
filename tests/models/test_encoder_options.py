"""Encoder options shared by the zoo: family names, layer sums, top-N unfreezing, LoRA on WavLM."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from transformers import WavLMModel

from slamkit.config import EncoderConfig, LoraConfig
from slamkit.models.encoders.base import ENCODERS, build_encoder, unfreeze_encoder_parts
from slamkit.models.lora import apply_trainability
from slamkit.models.encoders.ssl import SSL_MODELS, ssl_preset_config


@pytest.fixture(autouse=True)
def _quiet_wavlm() -> None:
    warnings.filterwarnings("ignore", message="Support for mismatched key_padding_mask", category=UserWarning)


def _clips() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return 0.3 * torch.randn(2, 6000, generator=gen), torch.tensor([6000, 3500])


@pytest.mark.parametrize("model_type", list(SSL_MODELS))
def test_each_family_member_has_its_own_name(model_type: str) -> None:
    name = model_type.replace("-", "_")
    enc = build_encoder(EncoderConfig(name=name, preset="test"))
    assert type(enc.model).__name__ == type(SSL_MODELS[model_type][1](ssl_preset_config(model_type, "test"))).__name__
    assert name in ENCODERS.names()


def test_a_family_name_refuses_another_members_checkpoint(tmp_path: Path) -> None:
    WavLMModel(ssl_preset_config("wavlm", "test")).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"model_type 'wavlm'.*'hubert'.*set model.encoder.name to 'wavlm'"):
        build_encoder(EncoderConfig(name="hubert", path=str(tmp_path)))
    assert type(build_encoder(EncoderConfig(name="wavlm", path=str(tmp_path))).model) is WavLMModel


def test_wavlm_attention_through_modules_matches_hugging_face() -> None:
    enc = build_encoder(EncoderConfig(name="wavlm", preset="test-large"))
    audio, lengths = _clips()
    with torch.no_grad():
        ours = enc(audio, lengths)[0]
        patched = [m for m in enc.model.modules() if "torch_multi_head_self_attention" in vars(m)]
        assert len(patched) == enc.model.config.num_hidden_layers, "every WavLM attention layer carries the patch"
        for module in patched:  # back to HF's own attention
            del module.torch_multi_head_self_attention
        theirs = enc(audio, lengths)[0]
    torch.testing.assert_close(ours, theirs, atol=2e-5, rtol=1e-4)


def test_lora_on_wavlm_attention_changes_its_output() -> None:
    enc = build_encoder(EncoderConfig(name="wavlm", preset="test"))
    audio, lengths = _clips()
    with torch.no_grad():
        before = enc(audio, lengths)[0]
    enc = apply_trainability(enc, "lora", LoraConfig(r=2, dropout=0.0), ["q_proj", "v_proj"])
    for name, p in enc.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.5)
    with torch.no_grad():
        after = enc(audio, lengths)[0]
    assert (after - before).abs().max() > 1e-3  # the adapters take part (HF's path would skip them)


def test_layer_sum_trains_while_the_encoder_stays_frozen() -> None:
    cfg = EncoderConfig(name="hubert", preset="test", layer_sum=True)
    enc = apply_trainability(build_encoder(cfg), "frozen", LoraConfig(), [])
    unfreeze_encoder_parts(enc, 0)
    trainable = [n for n, p in enc.named_parameters() if p.requires_grad]
    assert trainable == ["layers.weights"]
    audio, lengths = _clips()
    enc(audio, lengths)[0].pow(2).sum().backward()
    assert enc.layers.weights.grad is not None and float(enc.layers.weights.grad.abs().sum()) > 0
    # equal initial weights: the mean of all hidden states
    with torch.no_grad():
        states = enc.model(audio[:1, :6000], output_hidden_states=True).hidden_states
        torch.testing.assert_close(enc(audio[:1], lengths[:1])[0], torch.stack(states).mean(0), atol=1e-5, rtol=1e-4)


def test_whisper_refuses_layer_sum() -> None:
    with pytest.raises(ValueError, match="layer_sum"):
        build_encoder(EncoderConfig(name="whisper", preset="test", layer_sum=True))


@pytest.mark.parametrize("name", ["whisper", "hubert"])
def test_unfreeze_top_trains_only_the_top_layers(name: str) -> None:
    enc = apply_trainability(build_encoder(EncoderConfig(name=name, preset="test")), "frozen", LoraConfig(), [])
    layers = enc.transformer_layers()
    unfreeze_encoder_parts(enc, 1)
    assert all(p.requires_grad for p in layers[-1].parameters())
    assert not any(p.requires_grad for p in layers[0].parameters())
    top = {id(p) for p in layers[-1].parameters()}
    assert all(id(p) in top for p in enc.parameters() if p.requires_grad)
    with pytest.raises(ValueError, match=r"unfreeze_top=3.*only 2"):
        unfreeze_encoder_parts(enc, 3)


def test_unfreeze_top_with_lora_keeps_the_adapters_training() -> None:
    enc = apply_trainability(build_encoder(EncoderConfig(name="hubert", preset="test")), "lora", LoraConfig(r=2), ["q_proj", "v_proj"])
    unfreeze_encoder_parts(enc, 1)
    names = [n for n, p in enc.named_parameters() if p.requires_grad]
    assert any("layers.0." in n and "lora_" in n for n in names)
    assert any("layers.1." in n and "lora_" not in n for n in names)


def test_an_incomplete_hf_checkpoint_is_refused_not_randomly_filled(tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file
    from transformers import HubertModel

    from slamkit.models.weights import CheckpointError

    HubertModel(ssl_preset_config("hubert", "test")).save_pretrained(tmp_path)
    weights = load_file(str(tmp_path / "model.safetensors"))
    dropped = next(k for k in sorted(weights) if "layers.1.attention.v_proj.weight" in k)
    del weights[dropped]
    save_file(weights, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match=r"not a complete Hugging Face hubert checkpoint.*1 missing keys.*layers\.1\.attention\.v_proj\.weight"):
        build_encoder(EncoderConfig(name="hubert", path=str(tmp_path)))
