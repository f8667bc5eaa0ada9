"""The ``ast`` encoder: lengths, windows, batch invariance, layers, the HF directory format, parity.

Tiny random models (the ``test`` preset: 64-frame windows of 32 mel bins, 2 x 5 patches each);
the ``base`` preset is built on the meta device only. Parity is with transformers'
``ASTFeatureExtractor`` (its numpy path here: torchaudio has no wheel for our torch) and
``ASTModel`` run on the extractor's ``input_values``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import ASTFeatureExtractor, ASTForAudioClassification, ASTModel, ClapAudioConfig, ClapAudioModel

from slamkit.config import EncoderConfig
from slamkit.models.encoders.ast import ASTEncoder, ASTFeatureSettings, ASTFrontEnd, ast_preset_config
from slamkit.models.weights import CheckpointError
from slamkit.models.encoders.base import AudioEncoder

CFG = EncoderConfig(name="ast", preset="test")
# 64-frame windows start every 50 frames (5 time steps of 10 frames); 160 samples per frame.
FRAME = 160


def _samples(frames: int) -> int:
    """Samples that give exactly ``frames`` fbank frames."""
    return 400 + (frames - 1) * FRAME


def _build(cfg: EncoderConfig = CFG) -> ASTEncoder:
    torch.manual_seed(0)
    enc = ASTEncoder.from_config(cfg).eval()
    with torch.no_grad():  # HF zero-initialises these; random values make the test meaningful
        for p in (enc.model.embeddings.position_embeddings, enc.model.embeddings.cls_token, enc.model.embeddings.distillation_token):
            p.normal_(std=0.5)
    return enc


def _run(enc: AudioEncoder, audio: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        return enc(audio, lengths)


def _audio(n: int, seed: int = 0) -> torch.Tensor:
    return 0.1 * torch.randn(n, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def enc() -> ASTEncoder:
    return _build()


@pytest.mark.parametrize("frames", [1, 2, 10, 11, 49, 50, 51, 64, 65, 100, 101, 151, 260])
def test_output_lengths_match_forward(enc: ASTEncoder, frames: int) -> None:
    for n in (_samples(frames), _samples(frames) + FRAME - 1):
        feats, out = _run(enc, _audio(n)[None], torch.tensor([n]))
        assert out.item() == enc.output_lengths(torch.tensor([n])).item() == feats.shape[1]
        assert out.item() == -(-frames // 10) * enc.frontend.freq_patches
        assert feats.shape[2] == enc.hidden_size == 32


def test_too_short_clip_raises(enc: ASTEncoder) -> None:
    assert enc.output_lengths(torch.tensor([399])).item() == 0
    with pytest.raises(ValueError, match="at least 400 samples"):
        _run(enc, _audio(1000)[None], torch.tensor([399]))


def test_batch_equals_single_and_padding_is_zero(enc: ASTEncoder) -> None:
    lengths = [_samples(173), _samples(12), _samples(60) + 37]  # 4 windows, 1 window, 2 windows
    audio = torch.randn(len(lengths), max(lengths))  # noise in the padding must not matter
    feats, frames = _run(enc, audio, torch.tensor(lengths))
    for i, n in enumerate(lengths):
        alone, f = _run(enc, audio[i : i + 1, :n], torch.tensor([n]))
        assert frames[i] == f.item()
        torch.testing.assert_close(feats[i, : f.item()], alone[0], atol=1e-5, rtol=0)
        assert feats[i, f.item() :].abs().sum() == 0


def test_windows_continue_the_time_grid(enc: ASTEncoder) -> None:
    """Window 1 starts 50 frames (5 steps) in: its steps are the clip's steps 5..9."""
    n = _samples(100)
    audio = _audio(n)
    feats, _ = _run(enc, audio[None], torch.tensor([n]))
    shifted = audio[50 * FRAME :]
    second, _ = _run(enc, shifted[None], torch.tensor([len(shifted)]))
    fp = enc.frontend.freq_patches
    torch.testing.assert_close(feats[0, 5 * fp : 10 * fp], second[0, : 5 * fp], atol=1e-5, rtol=0)


def test_frontend_and_model_match_transformers(enc: ASTEncoder) -> None:
    """Our fbank windows vs ASTFeatureExtractor; our tokens vs ASTModel on the extractor's input."""
    c = enc.model.config
    extractor = ASTFeatureExtractor(num_mel_bins=c.num_mel_bins, max_length=c.max_length)
    for n in (_samples(30), _samples(64) + 500, _samples(64) * 3):  # padded, exact, truncated
        x = _audio(n, seed=n)
        ref = torch.from_numpy(extractor(x.numpy(), sampling_rate=16_000, return_tensors="np")["input_values"][0])
        ours, *_ = enc.frontend(x[None], torch.tensor([n]))
        assert (ours[0] - ref).abs().max() < 1e-4
        with torch.no_grad():
            hf = enc.model(ref[None]).last_hidden_state[0, 2:].unflatten(0, (enc.frontend.freq_patches, enc.frontend.time_patches))
        feats, frames = _run(enc, x[None], torch.tensor([n]))
        steps = min(frames.item() // enc.frontend.freq_patches, enc.frontend.time_patches)
        torch.testing.assert_close(feats[0, : steps * enc.frontend.freq_patches], hf.transpose(0, 1)[:steps].flatten(0, 1), atol=1e-4, rtol=0)


def test_frontend_matches_transformers_at_base_size() -> None:
    """128 bins, 1024 frames, AudioSet mean/std: the base checkpoint's input (no model needed)."""
    frontend = ASTFrontEnd(ast_preset_config("base"), ASTFeatureSettings())
    x = _audio(16_000 * 3, seed=3)
    with pytest.warns(UserWarning, match="mel filter has all zero values"):  # HF's numpy filters, not ours
        extractor = ASTFeatureExtractor()
    ref = torch.from_numpy(extractor(x.numpy(), sampling_rate=16_000, return_tensors="np")["input_values"][0])
    ours, clip, window, steps = frontend(x[None], torch.tensor([len(x)]))
    assert ours.shape == (1, 1024, 128) and steps.item() == 30
    assert (ours[0] - ref).abs().max() < 1e-4


def test_layer_choice_and_weighted_sum() -> None:
    base = _build()
    x, n = _audio(_samples(70))[None], torch.tensor([_samples(70)])
    top, _ = _run(base, x, n)
    last, _ = _run(_build(dataclasses.replace(CFG, layer=-1)), x, n)
    torch.testing.assert_close(top, last)
    emb = _build(dataclasses.replace(CFG, layer=0))
    first, _ = _run(emb, x, n)
    assert not torch.allclose(first, top)
    summed = _build(dataclasses.replace(CFG, layer_sum=True))
    assert summed.layer_selector.weights is not None and summed.layer_selector.weights.numel() == 3
    mixed, _ = _run(summed, x, n)
    assert mixed.shape == top.shape
    with pytest.raises(ValueError, match="out of range"):
        _build(dataclasses.replace(CFG, layer=5))
    assert len(base.transformer_layers()) == 2
    assert {"q_proj", "v_proj"} <= {name.rsplit(".", 1)[-1] for name, _ in base.named_modules()}


def _save_dir(enc: ASTEncoder, path: Path, classifier: bool, module_names: bool = False) -> Path:
    """``enc``'s weights written as the Hub does (or in transformers' module names), with a preprocessor_config.json."""
    if module_names:
        enc.model.config.save_pretrained(path)
        save_file(enc.model.state_dict(), path / "model.safetensors", metadata={"format": "pt"})
    elif classifier:
        model = ASTForAudioClassification(enc.model.config)
        model.audio_spectrogram_transformer.load_state_dict(enc.model.state_dict())
        model.save_pretrained(path)
    else:
        enc.model.save_pretrained(path)
    c = enc.model.config
    ASTFeatureExtractor(num_mel_bins=c.num_mel_bins, max_length=c.max_length, mean=-3.0, std=2.5).save_pretrained(path)
    return path


@pytest.mark.parametrize(("classifier", "module_names"), [(False, False), (True, False), (False, True)])
def test_saved_directory_loads_exactly(enc: ASTEncoder, tmp_path: Path, classifier: bool, module_names: bool) -> None:
    path = _save_dir(enc, tmp_path / "ast", classifier, module_names)
    keys = load_file(path / "model.safetensors").keys()
    assert any(".attention.attention.query." in k for k in keys) != module_names  # save_pretrained writes the Hub's names
    loaded = ASTEncoder.from_config(dataclasses.replace(CFG, path=str(path))).eval()
    assert loaded.frontend.features == ASTFeatureSettings(mean=-3.0, std=2.5)
    enc_same = ASTEncoder(enc.model, loaded.frontend.features).eval()
    x, n = torch.randn(2, _samples(80)), torch.tensor([_samples(80), _samples(33)])
    torch.testing.assert_close(_run(loaded, x, n), _run(enc_same, x, n), atol=0, rtol=0)


def test_wrong_directory_names_file_and_keys(enc: ASTEncoder, tmp_path: Path) -> None:
    clap = tmp_path / "clap"
    ClapAudioModel(ClapAudioConfig(spec_size=64, num_mel_bins=16, patch_embeds_hidden_size=16, depths=[1, 1], num_attention_heads=[1, 2], window_size=4, hidden_size=32)).save_pretrained(clap)
    with pytest.raises(CheckpointError, match=r"config\.json.*clap_audio_model"):
        ASTEncoder.from_config(dataclasses.replace(CFG, path=str(clap)))

    path = _save_dir(enc, tmp_path / "ast", classifier=False)
    weights = path / "model.safetensors"
    state = load_file(weights)
    state.pop("encoder.layer.1.attention.attention.query.weight")
    state["encoder.layer.1.extra.weight"] = torch.zeros(1)
    save_file(state, weights, metadata={"format": "pt"})
    with pytest.raises(CheckpointError) as err:
        ASTEncoder.from_config(dataclasses.replace(CFG, path=str(path)))
    msg = str(err.value)
    assert str(weights) in msg and "encoder.layer.1.attention.attention.query.weight" in msg and "encoder.layer.1.extra.weight" in msg

    (path / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        ASTEncoder.from_config(dataclasses.replace(CFG, path=str(path)))


def test_preprocessor_must_fit_the_config(enc: ASTEncoder, tmp_path: Path) -> None:
    path = _save_dir(enc, tmp_path / "ast", classifier=False)
    pre = json.loads((path / "preprocessor_config.json").read_text())
    (path / "preprocessor_config.json").write_text(json.dumps({**pre, "max_length": 1024}))
    with pytest.raises(CheckpointError, match="max_length=1024"):
        ASTEncoder.from_config(dataclasses.replace(CFG, path=str(path)))


def test_base_preset_size() -> None:
    with torch.device("meta"):
        enc = ASTEncoder(ASTModel(ast_preset_config("base")), ASTFeatureSettings())
    assert sum(p.numel() for p in enc.parameters()) == 86_187_264
    assert (enc.frontend.freq_patches, enc.frontend.time_patches, enc.frame_rate, enc.hidden_size) == (12, 101, 120.0, 768)
    assert enc.output_lengths(torch.tensor([16_000 * 10])).item() == 100 * 12
    assert np.isclose(enc.output_lengths(torch.tensor([16_000 * 60])).item() / 60, 120, atol=1)
