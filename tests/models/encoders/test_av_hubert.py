"""AV-HuBERT: the official checkpoint layout (read without fairseq), both modes, batch independence, the audio features."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from slamkit.config import EncoderConfig
from slamkit.models.encoders import build_encoder
from slamkit.models.encoders.av_hubert.fbank import logfbank, mel_filterbank
from slamkit.models.weights import CheckpointError

PIXELS, STEP = 88 * 88, 640

# Names and shapes of AV-HuBERT Large's encoder tensors as the official code (avhubert/hubert.py, resnet.py,
# fairseq's wav2vec2 TransformerEncoder) lays them out, written down independently of slamkit's modules.
OFFICIAL_LARGE = {
    "feature_extractor_video.resnet.frontend3D.0.weight": (64, 1, 5, 7, 7),
    "feature_extractor_video.resnet.frontend3D.1.running_mean": (64,),
    "feature_extractor_video.resnet.frontend3D.2.weight": (64,),  # PReLU
    "feature_extractor_video.resnet.trunk.layer1.0.conv1.weight": (64, 64, 3, 3),
    "feature_extractor_video.resnet.trunk.layer1.0.relu1.weight": (64,),
    "feature_extractor_video.resnet.trunk.layer2.0.downsample.0.weight": (128, 64, 1, 1),
    "feature_extractor_video.resnet.trunk.layer4.1.bn2.num_batches_tracked": (),
    "feature_extractor_video.proj.weight": (1024, 512),
    "feature_extractor_audio.proj.weight": (1024, 104),
    "layer_norm.weight": (2048,),
    "post_extract_proj.weight": (1024, 2048),
    "encoder.pos_conv.0.weight_g": (1, 1, 128),
    "encoder.pos_conv.0.weight_v": (1024, 64, 128),
    "encoder.pos_conv.0.bias": (1024,),
    "encoder.layer_norm.weight": (1024,),
    "encoder.layers.23.self_attn.q_proj.weight": (1024, 1024),
    "encoder.layers.23.self_attn.out_proj.bias": (1024,),
    "encoder.layers.0.self_attn_layer_norm.weight": (1024,),
    "encoder.layers.0.fc1.weight": (4096, 1024),
    "encoder.layers.0.final_layer_norm.bias": (1024,),
}


def _encoder(name: str = "av_hubert", **kw) -> torch.nn.Module:
    return build_encoder(EncoderConfig(name=name, preset="test", **kw))


def _signal(b: int, f: int, audio: bool, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    video = torch.rand(b, f, PIXELS, generator=g)
    return torch.cat([video, 0.1 * torch.randn(b, f, STEP, generator=g)], dim=2) if audio else video


def test_large_preset_has_the_official_names_and_shapes() -> None:
    with torch.device("meta"):
        enc = build_encoder(EncoderConfig(name="av_hubert", preset="large"))
    state = {k: tuple(v.shape) for k, v in enc.model.state_dict().items()}
    wrong = {k: (state.get(k), shape) for k, shape in OFFICIAL_LARGE.items() if state.get(k) != shape}
    assert not wrong
    assert len({k.split(".")[2] for k in state if k.startswith("encoder.layers.")}) == 24
    assert round(sum(v.numel() for v in enc.model.parameters()) / 1e6) == 325  # AV-HuBERT Large: 325 M
    assert enc.sample_rate == 25 and enc.frame_rate == 25.0 and enc.hidden_size == 1024


@pytest.mark.parametrize("name,audio", [("av_hubert", False), ("av_hubert_av", True)])
def test_valid_frames_do_not_depend_on_the_batch(name: str, audio: bool) -> None:
    enc = _encoder(name)
    x, lengths = _signal(2, 14, audio), torch.tensor([14, 9])
    with torch.no_grad():
        feats, frames = enc(x, lengths)
        alone, _ = enc(x[1:, :9], lengths[1:])
    assert feats.shape == (2, 14, 32) and frames.tolist() == [14, 9]
    assert enc.output_lengths(lengths).tolist() == frames.tolist()
    torch.testing.assert_close(feats[1, :9], alone[0], atol=1e-5, rtol=1e-4)
    assert not feats[1, 9:].any()


def test_modes_video_only_ignores_audio_and_audio_visual_reads_it() -> None:
    video, av = _encoder("av_hubert"), _encoder("av_hubert_av")
    av.load_state_dict(video.state_dict())
    x, other = _signal(1, 10, True, seed=1), _signal(1, 10, True, seed=1)
    other[..., PIXELS:] = 0.1 * torch.randn(1, 10, STEP)
    lengths = torch.tensor([10])
    with torch.no_grad():
        assert torch.equal(video(x, lengths)[0], video(other, lengths)[0])  # the audio is not read
        assert not torch.allclose(av(x, lengths)[0], av(other, lengths)[0])  # the audio is read
        # without audio, the audio-visual model is the lip-reading one (AV-HuBERT zero-fills the audio features)
        torch.testing.assert_close(av(x[..., :PIXELS], lengths)[0], video(x, lengths)[0])


def test_wrong_input_is_refused_with_the_expected_shape() -> None:
    with pytest.raises(ValueError, match=r"expects a video signal \[b, frames, 7744 or 8384\].*is the manifest's source a video"):
        _encoder()(torch.zeros(1, 16000), torch.tensor([16000]))


def _fairseq_file(path: Path, enc: torch.nn.Module, prefix: str, parametrized: bool = False) -> Path:
    """``enc``'s weights as an official fine-tuned checkpoint: prefixed encoder, pre-training and decoder extras."""
    state = {}
    for key, value in enc.model.state_dict().items():
        if parametrized and key.startswith("encoder.pos_conv.0.weight_"):
            key = "encoder.pos_conv.0.parametrizations.weight.original" + ("0" if key.endswith("_g") else "1")
        state[prefix + key] = value.clone()
    state.update({prefix + "mask_emb": torch.zeros(104), prefix + "label_embs_concat": torch.zeros(10, 32),
                  prefix + "final_proj.weight": torch.zeros(4, 32)})
    if prefix:  # a fine-tuned seq2seq model: the encoder's config is nested, a decoder sits beside it
        state["decoder.embed_tokens.weight"] = torch.zeros(5, 8)
        cfg = {"model": {"_name": "av_hubert_seq2seq", "w2v_args": {"model": {"encoder_attention_heads": 2, "layer_norm_first": True}}}}
    else:  # the pre-trained AVHubertModel
        cfg = {"model": {"_name": "av_hubert", "encoder_attention_heads": 2}}
    torch.save({"cfg": cfg, "model": state}, path)
    return path


@pytest.mark.parametrize("prefix,parametrized", [("encoder.w2v_model.", False), ("", True)])
def test_official_checkpoint_loads_without_fairseq(tmp_path: Path, prefix: str, parametrized: bool) -> None:
    source = _encoder("av_hubert", init_seed=7)
    with torch.no_grad():  # BatchNorm statistics and the weight-norm gain must be read, not re-initialised
        source.model.feature_extractor_video.resnet.frontend3D[1].running_mean.uniform_(-0.5, 0.5)
        source.model.encoder.pos_conv[0].weight_g.mul_(1.5)
    path = _fairseq_file(tmp_path / "avhubert.pt", source, prefix, parametrized)
    loaded = build_encoder(EncoderConfig(name="av_hubert", path=str(path)))
    x, lengths = _signal(2, 8, False), torch.tensor([8, 6])
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, lengths)[0], source(x, lengths)[0])


def test_checkpoint_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    torch.save({"cfg": {"model": {}}, "model": {"w.weight": torch.zeros(1)}}, path)
    with pytest.raises(CheckpointError, match=r"other.pt: not a AV-HuBERT fairseq .pt .*feature_extractor_video.proj.weight"):
        build_encoder(EncoderConfig(name="av_hubert", path=str(path)))
    state = {k: v for k, v in _encoder().model.state_dict().items() if not k.startswith("encoder.layers.1.fc2")}
    torch.save({"cfg": {"model": {"encoder_attention_heads": 2}}, "model": state}, path)
    with pytest.raises(CheckpointError, match=r"other.pt: .*missing keys \['encoder.layers.1.fc2"):
        build_encoder(EncoderConfig(name="av_hubert", path=str(path)))


def test_log_filterbank_frames_and_filters_follow_python_speech_features() -> None:
    filters = mel_filterbank()
    assert filters.shape == (26, 257) and torch.allclose(filters.max(dim=1).values, torch.ones(26))
    n = 16000 * 2 // 5  # 0.4 s: 1 + ceil((6400 - 400) / 160) = 39 frames
    t = torch.arange(n) / 16000
    feats = logfbank(torch.sin(2 * math.pi * 1000 * t) * 10000, filters)
    assert feats.shape == (39, 26)
    centre = filters.argmax(dim=1).float() * 16000 / 512  # each filter's peak in Hz
    best = int(feats[5:-5].mean(dim=0).argmax())
    assert abs(centre[best] - 1000) < 150, (best, centre[best])
