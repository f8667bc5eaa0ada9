"""Audio encoders: lengths, batch invariance, seeding, layer selection, loading, sizes.

Tiny random models only (the ``test`` / ``test-large`` presets); the big presets are built on the
meta device to check their parameter counts without allocating them.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path

import pytest
import torch
from transformers import HubertModel, Wav2Vec2ForCTC, WhisperConfig, WhisperForConditionalGeneration

from slamkit.config import EncoderConfig
from slamkit.models.encoders.base import ENCODERS, AudioEncoder, build_encoder, preset_names
from slamkit.models.encoders.ssl import SSL_MODELS, ssl_preset_config
from slamkit.models.encoders.whisper.encoder import whisper_preset_config

SSL_TYPES = list(SSL_MODELS)
WHISPER = EncoderConfig(name="whisper", preset="test")
WHISPER_30S = EncoderConfig(name="whisper", preset="test", pad_to_30s=True)
ALL_TEST_CFGS = {
    "whisper": WHISPER,
    "whisper-30s": WHISPER_30S,
    **{f"{t}": EncoderConfig(name="hf_ssl", preset="test", model_type=t) for t in SSL_TYPES},
    **{f"{t}-large": EncoderConfig(name="hf_ssl", preset="test-large", model_type=t) for t in SSL_TYPES},
}
# Clips of several lengths, down to the shortest each encoder accepts (400 samples for the SSL conv stack).
LENGTHS = [12_345, 8_000, 3_201, 480]


@pytest.fixture(autouse=True)
def _quiet_wavlm() -> None:
    # WavLM's attention mixes a bool padding mask with a float position bias; torch warns about it.
    warnings.filterwarnings("ignore", message="Support for mismatched key_padding_mask", category=UserWarning)


def _batch(lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``[b, max]`` waveforms with noise in the padding (it must not matter), ``[b]`` lengths."""
    gen = torch.Generator().manual_seed(seed)
    audio = 0.3 * torch.randn(len(lengths), max(lengths), generator=gen)
    return audio, torch.tensor(lengths)


def _run(enc: AudioEncoder, audio: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        return enc(audio, lengths)


def _alone(enc: AudioEncoder, audio: torch.Tensor, n: int) -> torch.Tensor:
    """Output ``[t_e, d]`` of one clip run on its own, unpadded."""
    feats, frames = _run(enc, audio[None, :n], torch.tensor([n]))
    assert feats.shape[1] == frames.item()
    return feats[0]


@pytest.mark.parametrize("name", list(ALL_TEST_CFGS))
def test_shapes_and_output_lengths(name: str) -> None:
    enc = build_encoder(ALL_TEST_CFGS[name])
    audio, lengths = _batch(LENGTHS)
    feats, frames = _run(enc, audio, lengths)
    assert torch.equal(frames, enc.output_lengths(lengths))
    assert feats.shape == (len(LENGTHS), int(frames.max()), enc.hidden_size)
    for i, n in enumerate(LENGTHS):
        assert _alone(enc, audio[i], n).shape[0] == frames[i], "output_lengths must equal the real output length"
        assert not feats[i, frames[i] :].any(), "padding frames must be 0"
    assert enc.frame_rate == 50.0 and enc.sample_rate == 16_000


def test_whisper_output_lengths_arithmetic() -> None:
    enc = build_encoder(WHISPER)
    samples = torch.tensor([160, 320, 479, 480, 16_000, 480_000, 600_000])
    assert enc.output_lengths(samples).tolist() == [1, 1, 1, 2, 50, 1500, 1500]


@pytest.mark.parametrize("name", ["whisper", "whisper-30s", "data2vec-audio", *[f"{t}-large" for t in SSL_TYPES]])
def test_batch_invariance(name: str) -> None:
    """Each clip's valid output in a padded batch equals running it alone."""
    enc = build_encoder(ALL_TEST_CFGS[name])
    audio, lengths = _batch(LENGTHS, seed=1)
    feats, frames = _run(enc, audio, lengths)
    for i, n in enumerate(LENGTHS):
        torch.testing.assert_close(feats[i, : frames[i]], _alone(enc, audio[i], n), atol=1e-5, rtol=0)


def test_whisper_30s_matches_hf_forward() -> None:
    """pad_to_30s is HF's own 3000-frame forward, trimmed to the real frames."""
    enc = build_encoder(WHISPER_30S)
    audio, lengths = _batch([16_000, 7_000])
    feats, frames = _run(enc, audio, lengths)
    with torch.no_grad():
        mel, _ = enc.frontend(audio, lengths)
        ref = enc.model(mel).last_hidden_state
    assert ref.shape[1] == 1500
    for i in range(2):
        torch.testing.assert_close(feats[i, : frames[i]], ref[i, : frames[i]], atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", ["whisper", "hubert", "wavlm-large"])
def test_same_config_same_weights(name: str) -> None:
    cfg = ALL_TEST_CFGS[name]
    before = torch.random.get_rng_state()
    a, b = build_encoder(cfg).state_dict(), build_encoder(cfg).state_dict()
    assert torch.equal(torch.random.get_rng_state(), before), "building must not consume the global RNG"
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    c = build_encoder(dataclasses.replace(cfg, init_seed=1)).state_dict()
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point() and a[k].numel() > 1)


@pytest.mark.parametrize("name", ["whisper", "whisper-30s", "hubert", "wav2vec2-large"])
def test_layer_selection(name: str) -> None:
    cfg = ALL_TEST_CFGS[name]
    audio, lengths = _batch([8_000, 5_000])
    last, _ = _run(build_encoder(cfg), audio, lengths)
    top, _ = _run(build_encoder(dataclasses.replace(cfg, layer=-1)), audio, lengths)
    top_pos, _ = _run(build_encoder(dataclasses.replace(cfg, layer=2)), audio, lengths)
    below, frames = _run(build_encoder(dataclasses.replace(cfg, layer=-2)), audio, lengths)
    torch.testing.assert_close(top, last, atol=0, rtol=0)
    torch.testing.assert_close(top_pos, last, atol=0, rtol=0)
    assert below.shape == last.shape and not torch.allclose(below, last, atol=1e-3)
    with pytest.raises(ValueError, match="out of range"):
        build_encoder(dataclasses.replace(cfg, layer=3))


def test_whisper_intermediate_layer_is_hf_hidden_state() -> None:
    cfg = dataclasses.replace(WHISPER_30S, layer=1)
    enc = build_encoder(cfg)
    audio, lengths = _batch([8_000])
    feats, frames = _run(enc, audio, lengths)
    with torch.no_grad():
        hidden = enc.model(enc.frontend(audio, lengths)[0], output_hidden_states=True).hidden_states
    torch.testing.assert_close(feats[0], hidden[1][0, : frames[0]], atol=1e-6, rtol=0)


def _tiny_whisper_config() -> WhisperConfig:
    config = whisper_preset_config("test")
    config.vocab_size, config.max_target_positions = 64, 32  # keep the decoder we save small
    config.decoder_start_token_id, config.pad_token_id, config.bos_token_id, config.eos_token_id = 1, 2, 1, 3
    return config


@pytest.mark.parametrize("layout", ["for_conditional_generation", "whisper_model", "encoder_only"])
def test_whisper_loads_hf_directory(tmp_path: Path, layout: str) -> None:
    torch.manual_seed(3)
    full = WhisperForConditionalGeneration(_tiny_whisper_config()).eval()
    encoder = full.model.encoder
    saved = {"for_conditional_generation": full, "whisper_model": full.model, "encoder_only": encoder}[layout]
    saved.save_pretrained(tmp_path)
    loaded = build_encoder(EncoderConfig(name="whisper", path=str(tmp_path)))
    reference = ENCODERS.get("whisper")(encoder)  # the same weights, wrapped directly
    audio, lengths = _batch([9_000, 4_000])
    torch.testing.assert_close(_run(loaded, audio, lengths)[0], _run(reference, audio, lengths)[0], atol=0, rtol=0)


def test_whisper_directory_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a local directory"):
        build_encoder(EncoderConfig(name="whisper", path=str(tmp_path / "missing")))
    _tiny_whisper_config().save_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="no model.safetensors"):
        build_encoder(EncoderConfig(name="whisper", path=str(tmp_path)))


@pytest.mark.parametrize("model_cls", [HubertModel, Wav2Vec2ForCTC])
def test_ssl_loads_hf_directory(tmp_path: Path, model_cls: type) -> None:
    model_type = "hubert" if model_cls is HubertModel else "wav2vec2"
    config = ssl_preset_config(model_type, "test-large")
    if model_cls is Wav2Vec2ForCTC:
        config.vocab_size = 12
    torch.manual_seed(5)
    model = model_cls(config).eval()
    model.save_pretrained(tmp_path)
    loaded = build_encoder(EncoderConfig(name="hf_ssl", path=str(tmp_path)))
    base = model if model_cls is HubertModel else model.wav2vec2
    reference = ENCODERS.get("hf_ssl")(base, normalize=True)
    audio, lengths = _batch([9_000, 4_000])
    torch.testing.assert_close(_run(loaded, audio, lengths)[0], _run(reference, audio, lengths)[0], atol=0, rtol=0)


def test_ssl_normalisation_follows_preprocessor_config(tmp_path: Path) -> None:
    HubertModel(ssl_preset_config("hubert", "test-large")).save_pretrained(tmp_path)
    assert build_encoder(EncoderConfig(name="hf_ssl", path=str(tmp_path))).normalize  # layer-norm default
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({"do_normalize": False}))
    assert not build_encoder(EncoderConfig(name="hf_ssl", path=str(tmp_path))).normalize


def test_ssl_normalisation_is_per_clip_over_valid_samples() -> None:
    enc = build_encoder(ALL_TEST_CFGS["hubert-large"])
    audio, lengths = _batch([6_000, 3_000])
    scaled = audio * 7.0 + 0.5  # normalisation removes gain and offset
    torch.testing.assert_close(_run(enc, scaled, lengths)[0], _run(enc, audio, lengths)[0], atol=1e-4, rtol=0)


def _count_on_meta(cfg: EncoderConfig) -> int:
    with torch.device("meta"):
        enc = build_encoder(cfg)
    params = list(enc.parameters())
    # Everything sizeable lives on meta (HF makes masked_spec_embed, [hidden], with a legacy CPU constructor).
    assert sum(p.numel() for p in params if not p.is_meta) < 10_000
    return sum(p.numel() for p in params)


def test_large_preset_parameter_counts() -> None:
    assert 630e6 < _count_on_meta(EncoderConfig(name="whisper", preset="large-v3")) < 640e6
    assert 630e6 < _count_on_meta(EncoderConfig(name="whisper", preset="large")) < 640e6
    assert 8.0e6 < _count_on_meta(EncoderConfig(name="whisper", preset="tiny")) < 8.4e6  # tiny.en: 8.2 M
    assert 312e6 < _count_on_meta(EncoderConfig(name="hf_ssl", preset="large", model_type="hubert")) < 318e6
    assert 93e6 < _count_on_meta(EncoderConfig(name="hf_ssl", preset="base", model_type="wav2vec2")) < 96e6


def test_large_v3_uses_128_mels() -> None:
    with torch.device("meta"):
        enc = build_encoder(EncoderConfig(name="whisper", preset="large-v3"))
    assert enc.frontend.n_mels == 128 and enc.hidden_size == 1280


def test_registry_and_presets() -> None:
    assert {"whisper", "hf_ssl"} <= set(ENCODERS.names())
    assert preset_names("whisper") == ["test", "tiny", "base", "small", "medium", "large", "large-v3"]
    assert preset_names("hf_ssl") == ["test", "test-large", "base", "large", "xlarge"]
    with pytest.raises(ValueError, match="unknown whisper preset"):
        build_encoder(EncoderConfig(name="whisper", preset="huge"))
    with pytest.raises(ValueError, match="unknown hf_ssl model_type"):
        build_encoder(EncoderConfig(name="hf_ssl", preset="test", model_type="beats"))
    with pytest.raises(KeyError, match="unknown encoder"):
        build_encoder(EncoderConfig(name="whisperx"))


def test_lora_target_names_are_kept() -> None:
    for cfg in (WHISPER, ALL_TEST_CFGS["hubert"]):
        names = {name.rsplit(".", 1)[-1] for name, _ in build_encoder(cfg).named_modules()}
        assert {"q_proj", "v_proj"} <= names
