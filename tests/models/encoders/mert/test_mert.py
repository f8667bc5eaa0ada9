"""MERT encoder: the official Hugging Face layout loads exactly, lengths, batch invariance, layers, errors.

Checkpoints are written here in the layout m-a-p publishes (config.json with MERTConfig's field
names, preprocessor_config.json, model.safetensors / pytorch_model.bin under MERTModel's keys),
with tiny random weights. Numerical parity with the official ``modeling_MERT.py`` needs its
remote code and an old transformers, so it is checked outside this suite (see the module docs).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file
from transformers import HubertConfig, HubertModel

from slamkit.config import EncoderConfig, LoraConfig
from slamkit.models.weights import CheckpointError
from slamkit.models.encoders.base import build_encoder
from slamkit.models.encoders.mert.encoder import MERT_PRESETS, MERTEncoder, MERTModel, mert_arch_from_config
from slamkit.models.lora import apply_trainability

# config.json of m-a-p/MERT-v1-95M with tiny sizes: the real field names, model_type and auto_map.
TINY_CONFIG: dict[str, Any] = {
    "_name_or_path": "m-a-p/MERT-v1-95M", "activation_dropout": 0.0, "apply_spec_augment": True,
    "architectures": ["MERTModel"], "attention_dropout": 0.0, "attention_relax": -1.0,
    "auto_map": {"AutoConfig": "configuration_MERT.MERTConfig", "AutoModel": "modeling_MERT.MERTModel"},
    "bos_token_id": 1, "classifier_proj_size": 256, "conv_bias": False, "conv_dim": [32] * 7,
    "conv_kernel": [10, 3, 3, 3, 3, 2, 2], "conv_stride": [5, 2, 2, 2, 2, 2, 2], "ctc_loss_reduction": "sum",
    "ctc_zero_infinity": False, "deepnorm": False, "do_stable_layer_norm": False, "eos_token_id": 2,
    "feat_extract_activation": "gelu", "feat_extract_dropout": 0.0, "feat_extract_norm": "group", "feat_proj_dropout": 0.0,
    "feat_proj_layer_norm": True, "feature_extractor_cqt": False, "feature_extractor_cqt_bins": 336, "final_dropout": 0.1,
    "gradient_checkpointing": False, "hidden_act": "gelu", "hidden_dropout": 0.0, "hidden_size": 32, "initializer_range": 0.02,
    "intermediate_size": 64, "layer_norm_eps": 1e-05, "layerdrop": 0.05, "mask_feature_length": 10, "mask_feature_min_masks": 0,
    "mask_feature_prob": 0.0, "mask_time_length": 5, "mask_time_min_masks": 2, "mask_time_prob": 0.8, "model_type": "mert_model",
    "num_attention_heads": 2, "num_conv_pos_embedding_groups": 2, "num_conv_pos_embeddings": 16, "num_feat_extract_layers": 7,
    "num_hidden_layers": 2, "pad_token_id": 0, "sample_rate": 24000, "torch_dtype": "float32", "transformers_version": "4.25.1",
    "use_weighted_layer_sum": False, "vocab_size": 32,
}
PREPROCESSOR = {
    "do_normalize": True, "feature_extractor_type": "Wav2Vec2FeatureExtractor", "feature_size": 1, "padding_side": "right",
    "padding_value": 0, "return_attention_mask": True, "sampling_rate": 24000,
}
_LAYER_KEYS = [
    f"attention.{p}_proj.{w}" for p in ("k", "v", "q", "out") for w in ("weight", "bias")
] + [f"{m}.{w}" for m in ("layer_norm", "feed_forward.intermediate_dense", "feed_forward.output_dense", "final_layer_norm") for w in ("weight", "bias")]
# MERTModel's state-dict keys for TINY_CONFIG, as the official code saves them.
OFFICIAL_KEYS = {
    "masked_spec_embed",
    "feature_extractor.conv_layers.0.conv.weight", "feature_extractor.conv_layers.0.layer_norm.weight",
    "feature_extractor.conv_layers.0.layer_norm.bias", *(f"feature_extractor.conv_layers.{i}.conv.weight" for i in range(1, 7)),
    "feature_projection.layer_norm.weight", "feature_projection.layer_norm.bias",
    "feature_projection.projection.weight", "feature_projection.projection.bias",
    "encoder.pos_conv_embed.conv.bias", "encoder.pos_conv_embed.conv.weight_g", "encoder.pos_conv_embed.conv.weight_v",
    "encoder.layer_norm.weight", "encoder.layer_norm.bias",
    *(f"encoder.layers.{i}.{k}" for i in range(2) for k in _LAYER_KEYS),
}
LENGTHS = [48_123, 24_000, 3_201, 720, 719, 400]  # down to the shortest clip (400 samples -> 1 frame)


def _batch(lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``[b, max]`` waveforms with noise in the padding (it must not matter), ``[b]`` lengths."""
    gen = torch.Generator().manual_seed(seed)
    return 0.3 * torch.randn(len(lengths), max(lengths), generator=gen), torch.tensor(lengths)


def _run(enc: MERTEncoder, audio: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        return enc(audio, lengths)


def _encoder(config: dict[str, Any] = TINY_CONFIG, seed: int = 0, **kwargs: Any) -> MERTEncoder:
    """A random encoder for ``config``, with non-trivial norms and biases (so loading must carry them)."""
    torch.manual_seed(seed)
    model = MERTModel(mert_arch_from_config(config, {}, "test"))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
    return MERTEncoder(model, **kwargs).eval()


def _official_state(enc: MERTEncoder) -> dict[str, torch.Tensor]:
    return {**enc.model.state_dict(), "masked_spec_embed": torch.rand(enc.hidden_size)}


def _write_dir(path: Path, state: dict[str, torch.Tensor], config: dict[str, Any] = TINY_CONFIG, preprocessor: dict | None = PREPROCESSOR, bin_file: bool = False) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(config))
    if preprocessor is not None:
        (path / "preprocessor_config.json").write_text(json.dumps(preprocessor))
    state = {k: v.contiguous() for k, v in state.items()}
    if bin_file:
        torch.save(state, path / "pytorch_model.bin")
    else:
        save_file(state, str(path / "model.safetensors"))
    return path


def _load(path: Path, **kwargs: Any) -> MERTEncoder:
    enc = build_encoder(EncoderConfig(name="mert", path=str(path), **kwargs))
    assert isinstance(enc, MERTEncoder)
    return enc


def test_official_layout_loads_exactly(tmp_path: Path) -> None:
    enc = _encoder()
    state = _official_state(enc)
    assert set(state) == OFFICIAL_KEYS
    loaded = _load(_write_dir(tmp_path / "mert", state))
    assert (loaded.sample_rate, loaded.frame_rate, loaded.hidden_size, loaded.normalize) == (24_000, 75.0, 32, True)
    audio, lengths = _batch(LENGTHS[:3])
    assert torch.equal(_run(loaded, audio, lengths)[0], _run(enc, audio, lengths)[0])


def test_bin_file_and_parametrized_weight_norm_names(tmp_path: Path) -> None:
    """pytorch_model.bin, with the weight-norm names newer transformers save, loads the same model."""
    enc = _encoder()
    prefix = "encoder.pos_conv_embed.conv."
    state = _official_state(enc)
    state[prefix + "parametrizations.weight.original0"] = state.pop(prefix + "weight_g")
    state[prefix + "parametrizations.weight.original1"] = state.pop(prefix + "weight_v")
    loaded = _load(_write_dir(tmp_path / "mert", state, bin_file=True))
    audio, lengths = _batch([9_000])
    assert torch.equal(_run(loaded, audio, lengths)[0], _run(enc, audio, lengths)[0])


def test_sharded_safetensors(tmp_path: Path) -> None:
    enc = _encoder()
    state = _official_state(enc)
    keys = sorted(state)
    path = tmp_path / "mert"
    _write_dir(path, {k: state[k] for k in keys[:20]})
    (path / "model.safetensors").rename(path / "model-00001-of-00002.safetensors")
    save_file({k: state[k].contiguous() for k in keys[20:]}, str(path / "model-00002-of-00002.safetensors"))
    weight_map = {k: f"model-0000{1 + (i >= 20)}-of-00002.safetensors" for i, k in enumerate(keys)}
    (path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    audio, lengths = _batch([9_000])
    assert torch.equal(_run(_load(path), audio, lengths)[0], _run(enc, audio, lengths)[0])


def test_missing_unexpected_and_misshapen_keys_name_file_and_keys(tmp_path: Path) -> None:
    state = _official_state(_encoder())
    missing = dict(state)
    del missing["encoder.layers.1.attention.q_proj.weight"]
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*1 missing keys \['encoder\.layers\.1\.attention\.q_proj\.weight'\]"):
        _load(_write_dir(tmp_path / "missing", missing))
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*1 unexpected keys \['lm_head\.weight'\]"):
        _load(_write_dir(tmp_path / "extra", {**state, "lm_head.weight": torch.zeros(4, 32)}))
    no_mask = {k: v for k, v in state.items() if k != "masked_spec_embed"}
    with pytest.raises(CheckpointError, match="masked_spec_embed"):  # the config says SpecAugment was on
        _load(_write_dir(tmp_path / "no_mask", no_mask))
    wide = dict(TINY_CONFIG, intermediate_size=128)
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*feed_forward\.intermediate_dense\.weight \(64, 32\) != \(128, 32\)"):
        _load(_write_dir(tmp_path / "wide", state, config=wide))


def test_wrong_directories(tmp_path: Path) -> None:
    hubert = tmp_path / "hubert"
    HubertModel(HubertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, conv_dim=(32,) * 7)).save_pretrained(hubert)
    with pytest.raises(CheckpointError, match=r"hubert/config\.json: model_type 'hubert'.*mert_model.*hf_ssl"):
        _load(hubert)
    empty = _write_dir(tmp_path / "no_weights", {})
    (empty / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"no_weights: no model\.safetensors, pytorch_model\.bin"):
        _load(empty)
    cqt = _write_dir(tmp_path / "cqt", {}, config=dict(TINY_CONFIG, feature_extractor_cqt=True))
    with pytest.raises(CheckpointError, match="feature_extractor_cqt"):
        _load(cqt)
    with pytest.raises(FileNotFoundError, match="not a local directory"):
        _load(tmp_path / "nowhere")


def test_sample_rate_and_normalisation_come_from_the_directory(tmp_path: Path) -> None:
    """MERT-v0 runs at 16 kHz (50 frames/s); do_normalize: false leaves the waveform's scale in.

    (A layer-norm extractor here: the group-norm one is invariant to the input's scale anyway.)
    """
    v0 = dict(TINY_CONFIG, sample_rate=16_000, feat_extract_norm="layer", conv_bias=True)
    state = _official_state(_encoder(v0))
    enc = _load(_write_dir(tmp_path / "v0", state, config=v0, preprocessor=dict(PREPROCESSOR, sampling_rate=16_000, do_normalize=False)))
    assert (enc.sample_rate, enc.frame_rate, enc.normalize) == (16_000, 50.0, False)
    with pytest.raises(CheckpointError, match="sample_rate 16000 disagrees"):
        _load(_write_dir(tmp_path / "clash", state, config=v0))
    normalising = _load(_write_dir(tmp_path / "norm", state, config=v0, preprocessor=None))  # Wav2Vec2FeatureExtractor's default
    audio, lengths = _batch([8_000])
    assert torch.allclose(_run(normalising, 3 * audio, lengths)[0], _run(normalising, audio, lengths)[0], atol=1e-4)
    assert not torch.allclose(_run(enc, 3 * audio, lengths)[0], _run(enc, audio, lengths)[0], atol=1e-2)


def test_shapes_and_output_lengths() -> None:
    enc = build_encoder(EncoderConfig(name="mert", preset="test"))
    audio, lengths = _batch(LENGTHS)
    feats, frames = _run(enc, audio, lengths)
    assert torch.equal(frames, enc.output_lengths(lengths))
    assert frames.tolist() == [150, 74, 9, 2, 1, 1]
    assert feats.shape == (len(LENGTHS), 150, 32) and enc.frame_rate == 75.0 and enc.sample_rate == 24_000
    for i, n in enumerate(LENGTHS):
        assert _run(enc, audio[i : i + 1, :n], lengths[i : i + 1])[0].shape[1] == frames[i]
        assert not feats[i, frames[i] :].any(), "padding frames must be 0"
    with pytest.raises(ValueError, match="need >= 400 samples"):
        enc(audio[:1, :399], torch.tensor([399]))


@pytest.mark.parametrize("variant", [
    {},  # MERT-v1-95M: group-norm extractor, post-LN
    {"do_stable_layer_norm": True, "attention_relax": 32.0},  # MERT-v1-330M: pre-LN
    {"deepnorm": True},
    {"feat_extract_norm": "layer", "conv_bias": True},
])
def test_batch_equals_each_clip_alone(variant: dict[str, Any]) -> None:
    """Each clip's frames are independent of the batch. (The official group-norm model's are not:
    it normalises over the padded length; ours matches it for unpadded clips.)"""
    enc = _encoder(dict(TINY_CONFIG, **variant))
    audio, lengths = _batch(LENGTHS)
    feats, frames = _run(enc, audio, lengths)
    for i, n in enumerate(LENGTHS):
        alone = _run(enc, audio[i : i + 1, :n], lengths[i : i + 1])[0][0]
        torch.testing.assert_close(feats[i, : frames[i]], alone, atol=1e-5, rtol=0)


def test_layer_choice_and_weighted_sum() -> None:
    audio, lengths = _batch([12_000, 6_000])
    base = _encoder()
    with torch.no_grad():
        normed = torch.stack([(a - a[:n].mean()) / (a[:n].var(unbiased=False) + 1e-7).sqrt() * (torch.arange(a.shape[0]) < n) for a, n in zip(audio, lengths)])
        states, frames = base.model(normed, lengths)
    for layer, index in [(0, 0), (1, 1), (-1, 2), (None, 2)]:
        enc = _encoder(layer=layer)
        feats, _ = _run(enc, audio, lengths)
        torch.testing.assert_close(feats[0], states[index][0, : frames[0]], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="out of range"):
        _encoder(layer=3)
    summed = _encoder(layer_sum=True).train()
    feats, frames = summed(audio, lengths)
    torch.testing.assert_close(feats[0].detach(), sum(states)[0, : frames[0]] / 3, atol=1e-5, rtol=0)
    feats.square().mean().backward()
    assert summed.layer_select.weights.grad is not None and summed.layer_select.weights.grad.abs().sum() > 0


def test_transformer_layers_and_lora_target_names() -> None:
    enc = build_encoder(EncoderConfig(name="mert", preset="test"))
    assert len(enc.transformer_layers()) == 2
    names = {n.rsplit(".", 1)[-1] for n, m in enc.named_modules() if isinstance(m, torch.nn.Linear)}
    assert {"q_proj", "k_proj", "v_proj", "out_proj", "intermediate_dense", "output_dense"} <= names
    enc = apply_trainability(enc, "lora", LoraConfig(), ["q_proj", "v_proj"]).train()
    audio, lengths = _batch([6_000, 3_000])
    enc(audio, lengths)[0].square().mean().backward()
    grads = {n: p.grad for n, p in enc.named_parameters() if p.requires_grad}
    assert len(grads) == 2 * 2 * 2 and all(n.count("lora_") == 1 for n in grads)  # 2 layers x (q, v) x (A, B)
    assert all(g is not None for g in grads.values())


def test_official_sizes_on_meta() -> None:
    """MERT-v1-95M and -330M: parameter counts of the released models (without masked_spec_embed)."""
    counts = {}
    for preset in ("95m", "330m"):
        with torch.device("meta"):
            model = MERTModel(MERT_PRESETS[preset])
        counts[preset] = sum(p.numel() for p in model.parameters())
    assert counts == {"95m": 94_370_944, "330m": 315_427_968}
    assert dataclasses.astuple(MERT_PRESETS["330m"])[:4] == (1024, 24, 16, 4096)
