"""Self-supervised speech encoders through transformers (registered as ``hf_ssl``).

wav2vec2, HuBERT, WavLM and data2vec-audio share one shape: a strided conv feature extractor
(320 samples per frame at 16 kHz) and a transformer. How a checkpoint expects its input is part
of the checkpoint, and we follow it:

- **Normalisation.** Checkpoints trained on zero-mean unit-variance waveforms (wav2vec2/HuBERT/
  WavLM *large*, data2vec-audio) get each clip normalised over its own valid samples, exactly as
  ``Wav2Vec2FeatureExtractor`` does (population variance, eps 1e-7). The choice is read from the
  directory's ``preprocessor_config.json`` (``do_normalize``) when there is one, else it follows
  the feature extractor: layer-norm extractors (the large recipe, data2vec) normalise, group-norm
  ones (the base recipe) do not.
- **Padding.** Padded samples are always zeroed. Models with a layer-norm feature extractor get
  an ``attention_mask``, which makes each clip's output independent of the batch. Group-norm
  models (base wav2vec2/HuBERT/WavLM) were trained without one: their first conv layer
  normalises over time, padding included, so their outputs depend slightly on padding by design.
- **SpecAugment off.** HF applies time masking in train mode; we switch it off so a model in
  train mode computes the same features (augment in the data pipeline if wanted).
- data2vec-audio's positional conv is a stack of convs; HF lets the padding's response leak
  from one into the next, so we zero padded frames between them (hooks set up at build time).
- WavLM: HF's attention hands ``q_proj.weight`` … straight to ``F.multi_head_attention_forward``,
  so LoRA wrapped around those modules would be skipped. We route WavLM attention through the
  modules themselves (same numbers, tested), so LoRA on ``q_proj``/``v_proj`` works.

Registered as ``hf_ssl`` (``model_type`` picks the family member for random presets) and under
each member's own name: ``wav2vec2``, ``hubert``, ``wavlm``, ``data2vec_audio`` (a checkpoint of
another type is refused). ``layer`` picks one hidden state (0 = the transformer's input, N = the
last layer); ``layer_sum: true`` learns a softmax-weighted sum of all of them.
"""

from __future__ import annotations

import functools
import json
import logging
import types
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from transformers import (
    AutoConfig,
    Data2VecAudioConfig,
    Data2VecAudioModel,
    HubertConfig,
    HubertModel,
    PretrainedConfig,
    PreTrainedModel,
    Wav2Vec2Config,
    Wav2Vec2Model,
    WavLMConfig,
    WavLMModel,
)
from transformers.models.data2vec.modeling_data2vec_audio import Data2VecAudioPositionalConvLayer
from transformers.models.wavlm.modeling_wavlm import WavLMAttention

from slamkit.config import EncoderConfig
from slamkit.models.lengths import LengthRule, conv_output_frames
from slamkit.models.weights import CheckpointError
from slamkit.models.encoders.base import EncoderCard, ENCODERS, AudioEncoder, LayerSelector, frame_mask

log = logging.getLogger(__name__)

SSL_MODELS: dict[str, tuple[type[PretrainedConfig], type[PreTrainedModel]]] = {
    "wav2vec2": (Wav2Vec2Config, Wav2Vec2Model),
    "hubert": (HubertConfig, HubertModel),
    "wavlm": (WavLMConfig, WavLMModel),
    "data2vec-audio": (Data2VecAudioConfig, Data2VecAudioModel),
}

_TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=(32,) * 7, num_conv_pos_embedding_groups=2)
_LARGE_STYLE = dict(feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True)
SSL_PRESETS: dict[str, dict[str, Any]] = {
    # the real 7-layer conv stack (320x downsampling) with tiny widths; base-style group norm
    "test": {**_TINY, "feat_extract_norm": "group", "do_stable_layer_norm": False},
    # the same, large-style: layer-norm feature extractor, pre-LN transformer, normalised input
    "test-large": {**_TINY, **_LARGE_STYLE},
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
    "large": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096, **_LARGE_STYLE),
    "xlarge": dict(hidden_size=1280, num_hidden_layers=48, num_attention_heads=16, intermediate_size=5120, **_LARGE_STYLE),
}
# Positional conv: one wide conv (kernel 128) in wav2vec2-style models, a stack of 5 kernel-19
# convs in data2vec-audio (where num_conv_pos_embeddings counts layers). Tiny presets shrink both.
_TINY_POS_CONV = {"data2vec-audio": dict(conv_pos_kernel_size=5, num_conv_pos_embeddings=2)}
_TINY_POS_CONV_DEFAULT = dict(num_conv_pos_embeddings=16)
# data2vec-audio has no such switches: its extractor is always layer-norm, its transformer post-LN.
_UNSUPPORTED_KEYS = {"data2vec-audio": ("feat_extract_norm", "do_stable_layer_norm")}


def ssl_preset_config(model_type: str, preset: str) -> PretrainedConfig:
    """The HF config of ``model_type`` at size ``preset`` (SpecAugment off)."""
    if model_type not in SSL_MODELS:
        raise ValueError(f"unknown hf_ssl model_type {model_type!r}; choose one of {', '.join(SSL_MODELS)}")
    if preset not in SSL_PRESETS:
        raise ValueError(f"unknown hf_ssl preset {preset!r}; choose one of {', '.join(SSL_PRESETS)}")
    kwargs = dict(SSL_PRESETS[preset])
    if preset.startswith("test"):
        kwargs.update(_TINY_POS_CONV.get(model_type, _TINY_POS_CONV_DEFAULT))
    for key in _UNSUPPORTED_KEYS.get(model_type, ()):
        kwargs.pop(key, None)
    config_cls, _ = SSL_MODELS[model_type]
    return config_cls(apply_spec_augment=False, **kwargs)


def uses_layer_norm_extractor(config: PretrainedConfig) -> bool:
    """True for layer-norm feature extractors (data2vec-audio has no switch and always is one)."""
    return getattr(config, "feat_extract_norm", "layer") == "layer"


@ENCODERS.register("hf_ssl")
class SSLEncoder(AudioEncoder):
    """wav2vec2 / HuBERT / WavLM / data2vec-audio: ``[b, t]`` 16 kHz -> ``[b, t_e, hidden]`` at 50 frames/s.

    Args:
        model: the HF base model (kept as ``self.model``; LoRA finds ``q_proj``/``v_proj`` by name).
        normalize: zero-mean unit-variance per clip over its valid samples (see the module docs).
        layer: hidden layer to return (HF ``hidden_states`` numbering, negative from the top).
        layer_sum: learn a weighted sum of all hidden states instead.
    """

    presets = tuple(SSL_PRESETS)
    card = EncoderCard(
        preset="large",
        formats="Hugging Face directory of any family member (`model_type` picks one for presets)",
        use="ASR (SLAM-ASR HuBERT / WavLM)",
    )
    model_type: str | None = None  # set by the per-family entries (wav2vec2, hubert, …)

    def __init__(self, model: PreTrainedModel, normalize: bool, layer: int | None = None, layer_sum: bool = False) -> None:
        super().__init__()
        self.model = model
        self.normalize = normalize
        self.use_attention_mask = uses_layer_norm_extractor(model.config)
        self.hidden_size = model.config.hidden_size
        stride = 1
        for s in model.config.conv_stride:
            stride *= s
        self.frame_rate = self.sample_rate / stride
        self.layers = LayerSelector(layer, model.config.num_hidden_layers, weighted=layer_sum)
        self._valid_frames: Tensor | None = None  # set during forward for the pos-conv hooks
        for module in model.modules():
            if isinstance(module, Data2VecAudioPositionalConvLayer):
                module.register_forward_pre_hook(self._zero_padded_frames)
            if isinstance(module, WavLMAttention):
                module.torch_multi_head_self_attention = types.MethodType(wavlm_attention_through_modules, module)

    @classmethod
    def from_config(cls, cfg: EncoderConfig) -> "SSLEncoder":
        """Pretrained from ``cfg.path`` (a local HF directory) or random ``cfg.model_type`` at ``cfg.preset``."""
        model_type = cls.model_type or cfg.model_type
        if cfg.path:
            model, normalize = load_ssl_model(cfg.path, expect=cls.model_type)
        else:
            config = ssl_preset_config(model_type, cfg.preset)
            model, normalize = SSL_MODELS[model_type][1](config), uses_layer_norm_extractor(config)
        return cls(model, normalize=normalize, layer=cfg.layer, layer_sum=cfg.layer_sum)

    def transformer_layers(self) -> nn.ModuleList:
        """The transformer's layers, bottom to top."""
        return self.model.encoder.layers

    def length_rule(self) -> LengthRule:
        """Samples -> frames after the conv feature extractor (no padding in its convs), from the
        checkpoint config's ``conv_kernel`` / ``conv_stride``, then the adapter's kernel-1 convs of
        ``adapter_stride`` when the checkpoint has one (``add_adapter``), as transformers counts them."""
        config = self.model.config
        kernels, strides = tuple(config.conv_kernel), tuple(config.conv_stride)
        if getattr(config, "add_adapter", False):
            kernels += (1,) * config.num_adapter_layers
            strides += (config.adapter_stride,) * config.num_adapter_layers
        return functools.partial(conv_output_frames, kernels=kernels, strides=strides)

    def forward(self, audio: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """``audio [b, t]`` float32, ``lengths [b]`` samples -> ``feats [b, t_e, hidden]``, ``frames [b]``.

        ``t_e = max(frames)``; frames past a clip's length are 0.
        """
        lengths = lengths.to(device=audio.device, dtype=torch.long)
        frames = self.output_lengths(lengths)
        if bool((frames < 1).any()):
            raise ValueError(f"clips too short for the conv feature extractor (need >= 400 samples): {lengths.tolist()}")
        valid = frame_mask(lengths, audio.shape[1])
        audio = audio.float().masked_fill(~valid, 0.0)
        if self.normalize:
            audio = normalize_waveform(audio, lengths)
        hidden = self._run_model(audio.to(self.model.dtype), valid, frames)
        hidden = hidden[:, : int(frames.max())]
        return hidden.masked_fill(~frame_mask(frames, hidden.shape[1])[..., None], 0.0), frames

    def _run_model(self, audio: Tensor, valid: Tensor, frames: Tensor) -> Tensor:
        """The HF model on ``audio [b, t]``; returns the selected hidden layer ``[b, t_e', hidden]``."""
        every = self.layers.needs_all
        self._valid_frames = frames
        try:
            out = self.model(
                audio,
                attention_mask=valid.long() if self.use_attention_mask else None,
                output_hidden_states=every,
            )
        finally:
            self._valid_frames = None
        return self.layers(out.hidden_states) if every else out.last_hidden_state

    def _zero_padded_frames(self, module: nn.Module, args: tuple[Tensor, ...]) -> tuple[Tensor, ...] | None:
        """Pre-hook on a positional conv layer: zero its input ``[b, hidden, t]`` past each clip."""
        if self._valid_frames is None or not self.use_attention_mask:
            return None
        (hidden,) = args
        keep = frame_mask(self._valid_frames, hidden.shape[-1])[:, None, :]
        return (hidden * keep.to(hidden.dtype),)


def normalize_waveform(audio: Tensor, lengths: Tensor, eps: float = 1e-7) -> Tensor:
    """Zero-mean unit-variance per clip over its valid samples; padding stays 0.

    ``audio [b, t]`` with zeros past ``lengths [b]`` -> ``[b, t]`` (as ``Wav2Vec2FeatureExtractor``).
    """
    valid = frame_mask(lengths, audio.shape[1])
    n = lengths.clamp(min=1).to(audio.dtype)[:, None]
    mean = audio.sum(dim=1, keepdim=True) / n
    var = ((audio - mean).masked_fill(~valid, 0.0) ** 2).sum(dim=1, keepdim=True) / n
    return ((audio - mean) / torch.sqrt(var + eps)).masked_fill(~valid, 0.0)


def load_ssl_model(path: str | Path, expect: str | None = None) -> tuple[PreTrainedModel, bool]:
    """The base model in the local HF directory ``path`` (float32, SpecAugment off) and whether to normalise.

    ``expect`` (a ``SSL_MODELS`` name) refuses a directory holding another family member.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"hf_ssl encoder path {str(path)!r} is not a local directory")
    config = AutoConfig.from_pretrained(path)
    model_type = config.model_type.replace("_", "-")
    if model_type not in SSL_MODELS:
        raise ValueError(f"{path}: model_type {config.model_type!r} is not one of {', '.join(SSL_MODELS)}")
    if expect is not None and model_type != expect:
        raise ValueError(f"{path / 'config.json'}: model_type {config.model_type!r}, but the encoder is {expect!r} (set model.encoder.name to {model_type.replace('-', '_')!r})")
    config.apply_spec_augment = False
    # The base-model class drops task heads (CTC, …) and strips their prefix from the weights.
    model, info = SSL_MODELS[model_type][1].from_pretrained(path, config=config, dtype=torch.float32, output_loading_info=True)
    _refuse_partial_load(path, model_type, info)
    return model, _normalize_setting(path, config)


# Created by HF at build time and absent from many released files; never used with SpecAugment off.
_OPTIONAL_KEYS = ("masked_spec_embed",)


def _refuse_partial_load(path: Path, model_type: str, info: dict[str, Any]) -> None:
    """Raise :class:`CheckpointError` when HF left weights missing or mismatched (it would initialise them randomly).

    Unexpected keys are task heads (CTC, classifiers) the base model drops; they are logged, not errors.
    """
    missing = [k for k in info.get("missing_keys", []) if not k.endswith(_OPTIONAL_KEYS)]
    mismatched = [f"{k} {tuple(a)} != {tuple(b)}" for k, a, b in info.get("mismatched_keys", [])]
    if missing or mismatched:
        raise CheckpointError(
            f"{path}: not a complete Hugging Face {model_type} checkpoint for its config.json: "
            f"{len(missing)} missing keys {sorted(missing)[:5]}, mismatched shapes {mismatched[:5]}"
        )
    if info.get("unexpected_keys"):
        log.info("%s: dropped %d weights of task heads (e.g. %s)", path, len(info["unexpected_keys"]), sorted(info["unexpected_keys"])[:3])


def _normalize_setting(path: Path, config: PretrainedConfig) -> bool:
    """``do_normalize`` from the directory's preprocessor config, else the extractor's kind."""
    pre = path / "preprocessor_config.json"
    if pre.is_file():
        setting = json.loads(pre.read_text()).get("do_normalize")
        if setting is not None:
            return bool(setting)
    return uses_layer_norm_extractor(config)


# The size each family member is shown at in `slamkit list encoders`, and what it is used for.
_FAMILY_CARDS = {
    "wav2vec2": ("large", "ASR"),
    "hubert": ("xlarge", "ASR (SLAM-ASR's best SSL encoder)"),
    "wavlm": ("large", "ASR, speaker-aware tasks"),
    "data2vec-audio": ("large", "ASR"),
}


def _family_entry(model_type: str) -> type[SSLEncoder]:
    """An ``SSLEncoder`` subclass fixed to ``model_type``, registered under its own name."""
    preset, use = _FAMILY_CARDS[model_type]
    card = EncoderCard(preset=preset, formats=f"Hugging Face {model_type} directory (task heads such as CTC dropped)", use=use)
    attrs = {"model_type": model_type, "card": card, "__doc__": f"``hf_ssl`` fixed to {model_type}."}
    cls = type(f"{model_type.title().replace('-', '')}Encoder", (SSLEncoder,), attrs)
    return ENCODERS.register(model_type.replace("-", "_"))(cls)


for _name in SSL_MODELS:
    _family_entry(_name)


def wavlm_attention_through_modules(self: WavLMAttention, hidden_states: Tensor, attention_mask: Tensor | None, gated_position_bias: Tensor) -> tuple[Tensor, Tensor]:
    """WavLM self-attention computed with ``q_proj``/``k_proj``/``v_proj``/``out_proj`` called as modules.

    Same arithmetic as HF's ``torch_multi_head_self_attention`` (``hidden [b, t, d]``, key padding
    mask ``[b, t]`` with 1 = valid, bias ``[b * heads, t, t]``) -> ``([b, t, d], weights [b, heads, t, t])``,
    but adapters wrapped around the projections (LoRA) take part.
    """
    b, t, d = hidden_states.shape
    heads = self.num_heads
    split = lambda x: x.view(b, t, heads, d // heads).transpose(1, 2)  # noqa: E731
    q = split(self.q_proj(hidden_states)) * (d // heads) ** -0.5
    k, v = split(self.k_proj(hidden_states)), split(self.v_proj(hidden_states))
    bias = gated_position_bias.view(b, heads, t, t)
    if attention_mask is not None:
        bias = bias.masked_fill(attention_mask.ne(1)[:, None, None, :], float("-inf"))
    weights = torch.softmax(q @ k.transpose(-1, -2) + bias, dim=-1)
    weights = nn.functional.dropout(weights, self.dropout, self.training)
    out = (weights @ v).transpose(1, 2).reshape(b, t, d)
    return self.out_proj(out), weights
