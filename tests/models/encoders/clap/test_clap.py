"""The ``clap`` encoder: lengths, windows, batch invariance, embeddings, the HF directory format, parity.

Tiny random models (the ``test`` preset: 1 s windows of 16 mel bins, a two-stage HTSAT); the
``htsat-unfused`` preset is built on the meta device only. Parity is with transformers'
``ClapFeatureExtractor`` (real settings: 48 kHz, 64 mels, 10 s) and ``ClapModel`` run on the
extractor's ``input_features``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import ASTConfig, ASTModel, ClapAudioConfig, ClapAudioModel, ClapAudioModelWithProjection, ClapConfig, ClapFeatureExtractor, ClapModel, ClapTextConfig
from transformers.models.clap.modeling_clap import ClapProjectionLayer

from slamkit.config import EncoderConfig
from slamkit.models.weights import CheckpointError
from slamkit.models.encoders.clap.audio import CLAPEncoder, ClapFeatureSettings, ClapLogMel, clap_preset, fill_windows, read_clap_preprocessor

CFG = EncoderConfig(name="clap", preset="test")
SR = 48_000
TOKEN = 1500  # samples per token in the test preset (48000 / 32)
TEXT = ClapTextConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, max_position_embeddings=40)


def _audio(n: int, seed: int = 0) -> torch.Tensor:
    return 0.1 * torch.randn(n, generator=torch.Generator().manual_seed(seed))


def _build(cfg: EncoderConfig = CFG) -> CLAPEncoder:
    torch.manual_seed(0)
    enc = CLAPEncoder.from_config(cfg).eval()
    bn = enc.model.audio_encoder.batch_norm  # non-trivial running statistics
    bn.running_mean.normal_(mean=-40.0, std=5.0)
    bn.running_var.uniform_(50.0, 200.0)
    return enc


def _run(enc: CLAPEncoder, audio: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        return enc(audio, lengths)


@pytest.fixture(scope="module")
def enc() -> CLAPEncoder:
    return _build()


@pytest.mark.parametrize("n", [1, 2, TOKEN - 1, TOKEN, TOKEN + 1, SR - 1, SR, SR + 1, 2 * SR + 7 * TOKEN + 3])
def test_output_lengths_match_forward(enc: CLAPEncoder, n: int) -> None:
    feats, frames = _run(enc, _audio(n)[None], torch.tensor([n]))
    assert frames.item() == enc.output_lengths(torch.tensor([n])).item() == feats.shape[1] == -(-n // TOKEN)
    assert feats.shape[2] == enc.hidden_size == 2 * 32


def test_empty_clip_raises(enc: CLAPEncoder) -> None:
    with pytest.raises(ValueError, match="at least one sample"):
        _run(enc, _audio(10)[None], torch.tensor([0]))


def test_batch_equals_single_and_padding_is_zero(enc: CLAPEncoder) -> None:
    lengths = [2 * SR + 12_345, 7_000, SR]
    audio = torch.randn(len(lengths), max(lengths))  # noise in the padding must not matter
    feats, frames = _run(enc, audio, torch.tensor(lengths))
    emb = enc.embed(audio, torch.tensor(lengths))
    for i, n in enumerate(lengths):
        alone, f = _run(enc, audio[i : i + 1, :n], torch.tensor([n]))
        assert frames[i] == f.item()
        torch.testing.assert_close(feats[i, : f.item()], alone[0], atol=1e-5, rtol=0)
        assert feats[i, f.item() :].abs().sum() == 0
        torch.testing.assert_close(emb[i], enc.embed(audio[i : i + 1, :n], torch.tensor([n]))[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(3))


def test_long_clip_is_consecutive_windows(enc: CLAPEncoder) -> None:
    x = _audio(2 * SR + 9_000)
    feats, _ = _run(enc, x[None], torch.tensor([len(x)]))
    first, _ = _run(enc, x[None, :SR], torch.tensor([SR]))
    second, _ = _run(enc, x[None, SR : 2 * SR], torch.tensor([SR]))
    tail, _ = _run(enc, x[None, 2 * SR :], torch.tensor([9_000]))
    # every window, the first included, equals that stretch encoded alone
    torch.testing.assert_close(feats[0], torch.cat([first[0], second[0], tail[0]]), atol=1e-5, rtol=0)
    assert not torch.allclose(first[0], second[0], atol=1e-3), "different stretches give different features"


@pytest.mark.parametrize("padding", ["repeatpad", "repeat", "pad"])
@pytest.mark.parametrize(("scale", "truncation"), [("slaney", "rand_trunc"), ("htk", "fusion")])
def test_frontend_matches_transformers(padding: str, scale: str, truncation: str) -> None:
    """The real 10 s / 64-mel front end vs ClapFeatureExtractor's (float64 numpy) on a 3 s clip."""
    settings = ClapFeatureSettings(mel_scale=scale, padding=padding)  # type: ignore[arg-type]
    extractor = ClapFeatureExtractor(frequency_min=50, truncation=truncation, padding=padding)
    x = _audio(3 * SR + 123, seed=1)
    ref = extractor(x.double().numpy(), sampling_rate=SR, return_tensors="np")["input_features"][0, 0]
    waves, *_ = fill_windows(x[None], torch.tensor([len(x)]), settings.window_samples, settings.padding)
    ours = ClapLogMel(settings)(waves)[0].numpy()
    assert ours.shape == ref.shape == (1001, 64)
    assert np.abs(ours - ref).max() < 1e-3  # dB; about 2e-4 in float32


def _full_model(enc: CLAPEncoder) -> ClapModel:
    """A ClapModel (tiny text tower) holding ``enc``'s audio tower and projection."""
    config = ClapConfig(text_config=TEXT.to_dict(), audio_config=enc.model.config.to_dict(), projection_dim=enc.model.config.projection_dim)
    model = ClapModel(config).eval()
    model.audio_model.load_state_dict(enc.model.state_dict())
    model.audio_projection.load_state_dict(enc.projection.state_dict())
    return model


@pytest.mark.parametrize("fused", [False, True])
def test_model_matches_transformers(enc: CLAPEncoder, fused: bool) -> None:
    """Tokens and embedding vs ClapModel on ClapFeatureExtractor's features (test-preset settings).

    A fused model gets HTK filters (HF's ``fusion`` path) and its global branch (``is_longer`` False).
    """
    if fused:
        config = ClapAudioConfig(**{**enc.model.config.to_dict(), "enable_fusion": True, "fusion_type": "aff_2d"})
        torch.manual_seed(1)
        settings = dataclasses.replace(enc.features, mel_scale="htk")
        enc = CLAPEncoder(ClapAudioModel(config), ClapProjectionLayer(config), settings).eval()
    model = _full_model(enc)
    s = enc.features
    extractor = ClapFeatureExtractor(feature_size=s.n_mels, max_length_s=1, frequency_min=s.f_min, truncation="fusion" if fused else "rand_trunc")
    x = _audio(30_000, seed=2)
    features = extractor(x.double().numpy(), sampling_rate=SR, return_tensors="pt")["input_features"].float()
    with torch.no_grad():
        ref = model.get_audio_features(input_features=features, is_longer=torch.zeros(1, 1, dtype=torch.bool))
    tokens = ref.last_hidden_state.permute(0, 3, 2, 1).flatten(2)[0]
    feats, frames = _run(enc, x[None], torch.tensor([len(x)]))
    assert frames.item() == 20
    torch.testing.assert_close(feats[0], tokens[:20], atol=1e-5, rtol=0)
    with torch.no_grad():
        torch.testing.assert_close(enc.embed(x[None], torch.tensor([len(x)]))[0], ref.pooler_output[0], atol=1e-6, rtol=0)


@pytest.mark.parametrize("kind", ["clap", "with_projection", "audio_only"])
def test_saved_directory_loads_exactly(enc: CLAPEncoder, tmp_path: Path, kind: str) -> None:
    path = _save_dir(enc, tmp_path / kind, kind)
    loaded = CLAPEncoder.from_config(dataclasses.replace(CFG, path=str(path))).eval()
    assert loaded.features == enc.features
    x, n = torch.randn(2, SR + 5_000), torch.tensor([SR + 5_000, 20_000])
    torch.testing.assert_close(_run(loaded, x, n), _run(enc, x, n), atol=0, rtol=0)
    if kind == "audio_only":
        assert loaded.projection is None
        with pytest.raises(RuntimeError, match="no audio_projection"):
            loaded.embed(x, n)
    else:
        with torch.no_grad():
            torch.testing.assert_close(loaded.embed(x, n), enc.embed(x, n), atol=0, rtol=0)


def _save_dir(enc: CLAPEncoder, path: Path, kind: str) -> Path:
    """``enc`` saved with ``save_pretrained`` as a full ClapModel, a ClapAudioModel(WithProjection), + preprocessor."""
    if kind == "clap":
        _full_model(enc).save_pretrained(path)
    elif kind == "with_projection":
        model = ClapAudioModelWithProjection(enc.model.config)
        model.audio_model.load_state_dict(enc.model.state_dict())
        model.audio_projection.load_state_dict(enc.projection.state_dict())
        model.save_pretrained(path)
    else:
        enc.model.save_pretrained(path)
    s = enc.features
    ClapFeatureExtractor(feature_size=s.n_mels, max_length_s=s.max_length_s, frequency_min=s.f_min, frequency_max=s.f_max).save_pretrained(path)
    return path


def test_filter_bank_follows_the_model(enc: CLAPEncoder, tmp_path: Path) -> None:
    """Unfused checkpoints get Slaney filters, fused ones HTK, whatever ``truncation`` says."""
    path = _save_dir(enc, tmp_path / "clap", "audio_only")
    assert read_clap_preprocessor(path, enc.model.config).mel_scale == "slaney"
    fused = ClapAudioConfig(**{**enc.model.config.to_dict(), "enable_fusion": True})
    assert read_clap_preprocessor(path, fused).mel_scale == "htk"
    assert read_clap_preprocessor(tmp_path, fused) == ClapFeatureSettings(n_mels=16, mel_scale="htk")  # no preprocessor file


def test_wrong_directory_names_file_and_keys(enc: CLAPEncoder, tmp_path: Path) -> None:
    ast = tmp_path / "ast"
    ASTModel(ASTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, num_mel_bins=16, max_length=16)).save_pretrained(ast)
    with pytest.raises(CheckpointError, match=r"config\.json.*audio-spectrogram-transformer"):
        CLAPEncoder.from_config(dataclasses.replace(CFG, path=str(ast)))

    path = _save_dir(enc, tmp_path / "clap", "clap")
    weights = path / "model.safetensors"
    state = load_file(weights)
    assert any(k.startswith("text_model.") for k in state)  # present in the file, skipped on load
    state.pop("audio_model.audio_encoder.layers.1.blocks.0.attention.self.query.weight")
    state["audio_projection.extra.weight"] = torch.zeros(1)
    save_file(state, weights, metadata={"format": "pt"})
    with pytest.raises(CheckpointError) as err:
        CLAPEncoder.from_config(dataclasses.replace(CFG, path=str(path)))
    msg = str(err.value)
    assert str(weights) in msg and "layers.1.blocks.0.attention.self.query.weight" in msg and "audio_projection.extra.weight" in msg


def test_derived_buffers_may_be_absent(enc: CLAPEncoder, tmp_path: Path) -> None:
    path = _save_dir(enc, tmp_path / "clap", "clap")
    state = {k: v for k, v in load_file(path / "model.safetensors").items() if not k.endswith(("relative_position_index", "num_batches_tracked"))}
    save_file(state, path / "model.safetensors", metadata={"format": "pt"})
    loaded = CLAPEncoder.from_config(dataclasses.replace(CFG, path=str(path))).eval()
    x, n = _audio(20_000)[None], torch.tensor([20_000])
    torch.testing.assert_close(_run(loaded, x, n), _run(enc, x, n), atol=0, rtol=0)


def test_layers_batchnorm_and_lora_names(enc: CLAPEncoder) -> None:
    for bad in (dict(layer=-1), dict(layer_sum=True)):
        with pytest.raises(ValueError, match="layer: null"):
            CLAPEncoder.from_config(dataclasses.replace(CFG, **bad))
    assert len(enc.transformer_layers()) == 4
    names = {name.rsplit(".", 1)[-1] for name, _ in enc.named_modules()}
    assert {"query", "value"} <= names and "q_proj" not in names
    enc.train()
    try:
        assert enc.model.training and not enc.model.audio_encoder.batch_norm.training
    finally:
        enc.eval()


def test_htsat_unfused_preset_size() -> None:
    config, features = clap_preset("htsat-unfused")
    with torch.device("meta"):
        enc = CLAPEncoder(ClapAudioModel(config), ClapProjectionLayer(config), features)
    assert sum(p.numel() for p in enc.model.parameters()) == 27_534_488
    assert sum(p.numel() for p in enc.projection.parameters()) == 656_384
    assert (enc.tokens_per_window, enc.hidden_size, enc.frame_rate) == (32, 1536, 3.2)
    assert enc.output_lengths(torch.tensor([10 * SR, 10 * SR + 1, 15_000])).tolist() == [32, 33, 1]
