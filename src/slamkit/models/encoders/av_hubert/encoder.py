"""AV-HuBERT (Shi et al., 2022): lip-reading and audio-visual speech features at 25 Hz.

**Input.** A video signal (:mod:`slamkit.data.video` writes it, this module only relies on its
shape): ``[b, f, c]`` at 25 frames per second, each step a flattened 88×88 grayscale mouth crop in
[0, 1] (``c = 7744``), followed in audio-visual clips by the step's 640 audio samples at 16 kHz
(``c = 8384``). ``lengths`` counts frames.

**Network** (module names as in ``avhubert/hubert.py``, under ``self.model``): the visual front end
(:mod:`.resnet`, pixels normalised with mean 0.421 and std 0.165) and a linear ``proj`` give video
features; a linear ``proj`` over stacked log filterbanks (:mod:`.fbank`) gives audio features; the
two are concatenated (audio first), layer-normalised, projected by ``post_extract_proj`` and run
through the transformer (:mod:`.transformer`). Output frames = input frames (25 Hz).

**Modes** (two registered names, one network): ``av_hubert`` reads the video only — audio
features are zeros, which is how AV-HuBERT runs lip reading (the paper's VSR setting);
``av_hubert_av`` also reads the audio packed in the signal (AVSR) and zero-fills it for clips
that carry none.

**Checkpoint.** The official fairseq ``.pt`` (pre-trained ``AVHubertModel``, or a fine-tuned
``av_hubert_seq2seq``/CTC model whose ``encoder.w2v_model.``/``w2v_encoder.w2v_model.`` tensors are
the encoder), read without fairseq through a restricted unpickler. The size is read from the
tensors (heads and ``layer_norm_first`` from the stored config); pre-training heads (``mask_emb``,
``final_proj``, ``label_embs_concat``) and the seq2seq decoder are dropped, every other tensor
must fit exactly. Random weights in the same layout come from ``preset`` (``test``, ``base``,
``large``).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from slamkit.config import EncoderConfig
from slamkit.models.encoders.av_hubert.fbank import (
    FEATURE_DIM,
    avhubert_audio_features,
    mel_filterbank,
)
from slamkit.models.encoders.av_hubert.resnet import ResEncoder
from slamkit.models.encoders.av_hubert.transformer import TransformerEncoder
from slamkit.models.encoders.base import (
    ENCODERS,
    AudioEncoder,
    EncoderCard,
    LayerSelector,
    frame_mask,
)
from slamkit.models.encoders.data2vec2.blocks import cfg_value
from slamkit.models.encoders.data2vec2.fairseq import read_fairseq_checkpoint
from slamkit.models.lengths import LengthRule
from slamkit.models.weights import CheckpointError, load_state_strict

FORMAT = "AV-HuBERT fairseq .pt (cfg + model)"
FPS = 25
AUDIO_PER_FRAME = 16_000 // FPS  # samples of 16 kHz audio per video frame in an audio-visual signal
IMAGE_MEAN, IMAGE_STD = 0.421, 0.165


@dataclasses.dataclass(frozen=True)
class AVHubertSettings:
    """Size of an AV-HuBERT network (official values unless a test preset shrinks them)."""

    dim: int
    layers: int
    heads: int
    ffn: int
    front: int = 64
    widths: tuple[int, ...] = (64, 128, 256, 512)
    prelu: bool = True
    conv_pos: int = 128
    conv_pos_groups: int = 16
    layer_norm_first: bool = True
    crop: int = 88


PRESETS: dict[str, AVHubertSettings] = {
    "test": AVHubertSettings(dim=32, layers=2, heads=2, ffn=64, front=4, widths=(4, 4, 8, 8), conv_pos=8, conv_pos_groups=4),
    "base": AVHubertSettings(dim=768, layers=12, heads=12, ffn=3072),
    "large": AVHubertSettings(dim=1024, layers=24, heads=16, ffn=4096),
}


class SubModel(nn.Module):
    """One modality's front end: optional ResNet, then ``proj`` to the model width (``[b, d, t]`` out)."""

    def __init__(self, input_dim: int, dim: int, resnet: ResEncoder | None = None) -> None:
        super().__init__()
        self.resnet = resnet
        self.proj = nn.Linear(input_dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        """``[b, 1, t, h, w]`` (video) or ``[b, input_dim, t]`` (audio) -> ``[b, d, t]``."""
        if self.resnet is not None:
            x = self.resnet(x)
        return self.proj(x.transpose(1, 2)).transpose(1, 2)


class AVHubertModel(nn.Module):
    """The AV-HuBERT encoder network with the checkpoint's module names."""

    def __init__(self, s: AVHubertSettings) -> None:
        super().__init__()
        resnet = ResEncoder(s.front, s.widths, s.prelu)
        self.feature_extractor_audio = SubModel(FEATURE_DIM, s.dim)
        self.feature_extractor_video = SubModel(resnet.out_dim, s.dim, resnet)
        self.layer_norm = nn.LayerNorm(2 * s.dim)
        self.post_extract_proj = nn.Linear(2 * s.dim, s.dim)
        self.encoder = TransformerEncoder(s.dim, s.layers, s.heads, s.ffn, s.conv_pos, s.conv_pos_groups, s.layer_norm_first)
        self.settings = s


def same_frames(lengths: Tensor) -> Tensor:
    """Frames in -> frames out: AV-HuBERT keeps the video's 25 Hz."""
    return lengths


class AVHubertEncoder(AudioEncoder):
    """Lip-reading AV-HuBERT: video signal ``[b, f, c]`` -> ``[b, f, d]`` (audio features zero)."""

    sample_rate: int = FPS  # the signal's steps per second are video frames
    frame_rate: float = float(FPS)
    presets: ClassVar[tuple[str, ...]] = tuple(PRESETS)
    uses_audio: ClassVar[bool] = False
    card: ClassVar[EncoderCard | None] = EncoderCard(
        preset="large", formats="official AV-HuBERT fairseq `.pt` (pre-trained or fine-tuned), read without fairseq",
        use="visual speech recognition (lip reading) from 25 fps 88x88 mouth crops",
    )

    def __init__(self, model: AVHubertModel, layer: int | None = None, layer_sum: bool = False) -> None:
        super().__init__()
        self.model = model
        s = model.settings
        self.hidden_size = s.dim
        self.pixels = s.crop * s.crop
        self.selector = LayerSelector(layer, s.layers, layer_sum)
        self.register_buffer("filters", mel_filterbank(), persistent=False)

    @classmethod
    def from_config(cls, cfg: EncoderConfig) -> AVHubertEncoder:
        """Pretrained from ``cfg.path`` (an official ``.pt``) or random from ``cfg.preset``."""
        if cfg.path:
            settings, state = read_avhubert_checkpoint(cfg.path)
            model = AVHubertModel(settings)
            load_state_strict(model, state, str(cfg.path), FORMAT)
        else:
            if cfg.preset not in PRESETS:
                raise ValueError(f"unknown {cfg.name} preset {cfg.preset!r}; choose one of {', '.join(PRESETS)}")
            model = AVHubertModel(PRESETS[cfg.preset])
        return cls(model, layer=cfg.layer, layer_sum=cfg.layer_sum)

    def transformer_layers(self) -> nn.ModuleList:
        return self.model.encoder.layers

    def length_rule(self) -> LengthRule:
        """Frames -> frames (no downsampling)."""
        return same_frames

    def _check(self, signal: Tensor, lengths: Tensor) -> Tensor:
        widths = (self.pixels, self.pixels + AUDIO_PER_FRAME)
        if signal.dim() != 3 or signal.shape[2] not in widths or lengths.shape != signal.shape[:1]:
            raise ValueError(f"{type(self).__name__} expects a video signal [b, frames, {widths[0]} or {widths[1]}] "
                             f"(slamkit.data.video: mouth crops, optionally with audio) and lengths [b]; got "
                             f"{tuple(signal.shape)} and {tuple(lengths.shape)} (is the manifest's source a video?)")
        lengths = lengths.to(device=signal.device, dtype=torch.long)
        if bool((lengths > signal.shape[1]).any()) or bool((lengths < 1).any()):
            raise ValueError(f"frame counts {lengths.tolist()} must lie in 1..{signal.shape[1]}")
        return lengths

    def _audio_features(self, signal: Tensor, lengths: Tensor) -> Tensor | None:
        """``[b, d, f]`` audio features, or None when this mode or the signal has no audio."""
        if not self.uses_audio or signal.shape[2] == self.pixels:
            return None
        b, f = signal.shape[:2]
        feats = signal.new_zeros(b, f, FEATURE_DIM, dtype=torch.float32)
        for i, n in enumerate(lengths.tolist()):
            wave = signal[i, :n, self.pixels :].reshape(-1)
            feats[i, :n] = avhubert_audio_features(wave.float(), n, self.filters)
        return self.model.feature_extractor_audio(feats.transpose(1, 2).to(self.model.post_extract_proj.weight.dtype))

    def forward(self, audio: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """``audio [b, f, c]`` video signal, ``lengths [b]`` frames -> ``feats [b, f, d]``, ``frames [b]``.

        Padded frames are zeroed after normalisation (as the 3D convolution's own padding), so a
        clip's valid frames do not depend on its batch; outputs past ``lengths`` are 0.
        """
        lengths = self._check(audio, lengths)
        b, f = audio.shape[:2]
        s = self.model.settings
        valid = frame_mask(lengths, f)
        pixels = audio[..., : self.pixels].reshape(b, f, s.crop, s.crop)
        video = ((pixels - IMAGE_MEAN) / IMAGE_STD) * valid[..., None, None]
        dtype = self.model.post_extract_proj.weight.dtype  # the weights' (a model loaded in half precision)
        video_feats = self.model.feature_extractor_video(video[:, None].to(dtype))  # [b, d, f]
        audio_feats = self._audio_features(audio, lengths)
        if audio_feats is None:
            audio_feats = torch.zeros_like(video_feats)
        x = torch.cat([audio_feats, video_feats], dim=1).transpose(1, 2)
        x = self.model.post_extract_proj(self.model.layer_norm(x))
        hidden = self.model.encoder(x, valid)
        return self.selector(hidden) * valid[..., None].to(x.dtype), lengths


@ENCODERS.register("av_hubert")
class AVHubertVideoEncoder(AVHubertEncoder):
    """AV-HuBERT on video only (VSR, lip reading): audio features are zeros."""


@ENCODERS.register("av_hubert_av")
class AVHubertAudioVisualEncoder(AVHubertEncoder):
    """AV-HuBERT on video and audio (AVSR); clips without audio get zero audio features."""

    uses_audio: ClassVar[bool] = True
    card: ClassVar[EncoderCard | None] = EncoderCard(
        preset="large", formats="official AV-HuBERT fairseq `.pt` (pre-trained or fine-tuned), read without fairseq",
        use="audio-visual speech recognition: 25 fps mouth crops + 16 kHz audio",
    )


# ---- the official checkpoint ---------------------------------------------------------------------
_ANCHOR = "feature_extractor_video.proj.weight"
_DROPPED = re.compile(r"^(mask_emb|label_embs_concat|final_proj\..*|target_glu\..*)$")
_RENAMED = {"encoder.pos_conv.0.parametrizations.weight.original0": "encoder.pos_conv.0.weight_g",
            "encoder.pos_conv.0.parametrizations.weight.original1": "encoder.pos_conv.0.weight_v"}


def _model_cfg(cfg: Mapping[str, Any]) -> Mapping[str, Any]:
    """The stored config section of the AV-HuBERT network (a fine-tuned model's ``w2v_args.model``)."""
    model = cfg.get("model") or {}
    inner = (model.get("w2v_args") or {}).get("model") if isinstance(model.get("w2v_args"), Mapping) else None
    return inner if isinstance(inner, Mapping) else model


def settings_from_state(state: Mapping[str, Tensor], model_cfg: Mapping[str, Any], source: str) -> AVHubertSettings:
    """The :class:`AVHubertSettings` the tensors of ``state`` (already without prefix) describe."""
    try:
        dim = state["post_extract_proj.weight"].shape[0]
        layers = len({k.split(".")[2] for k in state if k.startswith("encoder.layers.")})
        widths = tuple(state[f"feature_extractor_video.resnet.trunk.layer{i}.0.conv1.weight"].shape[0] for i in range(1, 5))
        pos = state["encoder.pos_conv.0.weight_v"]
        settings = AVHubertSettings(
            dim=dim, layers=layers, heads=int(cfg_value(model_cfg, "encoder_attention_heads", max(1, dim // 64))),
            ffn=state["encoder.layers.0.fc1.weight"].shape[0],
            front=state["feature_extractor_video.resnet.frontend3D.0.weight"].shape[0], widths=widths,
            prelu="feature_extractor_video.resnet.frontend3D.2.weight" in state, conv_pos=pos.shape[2],
            conv_pos_groups=dim // pos.shape[1], layer_norm_first=bool(cfg_value(model_cfg, "layer_norm_first", True)),
        )
    except KeyError as err:
        raise CheckpointError(f"{source}: not a {FORMAT} checkpoint: tensor {err} is missing "
                              "(only modality_fuse=concat without sub-encoders is supported)") from err
    if state["feature_extractor_audio.proj.weight"].shape[1] != FEATURE_DIM:
        raise CheckpointError(f"{source}: audio features of {state['feature_extractor_audio.proj.weight'].shape[1]} "
                              f"dims; this reader computes AV-HuBERT's {FEATURE_DIM} (26 filterbanks x 4 frames)")
    return settings


def read_avhubert_checkpoint(path: str | Path) -> tuple[AVHubertSettings, dict[str, Tensor]]:
    """``(settings, state)`` of an official AV-HuBERT ``.pt``: the encoder's tensors, prefix removed."""
    cfg, raw = read_fairseq_checkpoint(path)
    anchors = [k for k in raw if k.endswith(_ANCHOR)]
    if not anchors:
        raise CheckpointError(f"{path}: not a {FORMAT} checkpoint: no '*{_ANCHOR}' tensor in ckpt['model']")
    prefix = anchors[0][: -len(_ANCHOR)]
    state = {_RENAMED.get(k[len(prefix):], k[len(prefix):]): v for k, v in raw.items()
             if k.startswith(prefix) and isinstance(v, Tensor)}
    state = {k: v.float() for k, v in state.items() if not _DROPPED.match(k)}
    return settings_from_state(state, _model_cfg(cfg), str(path)), state
