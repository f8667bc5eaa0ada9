"""MERT music encoder (m-a-p; registered as ``mert``), our own implementation: no remote code runs.

**Model.** MERT (Li et al., 2023, arXiv:2306.00107) is HuBERT-shaped: a 7-layer strided conv
feature extractor (320 samples per frame), a feature projection (LayerNorm + Linear), a
weight-normalised grouped positional conv and a transformer. Presets: ``test`` (tiny), ``95m``
(MERT-v1-95M: 12 x 768, post-LN) and ``330m`` (MERT-v1-330M: 24 x 1024, pre-LN).

**Checkpoint format.** The Hugging Face directories m-a-p publishes (MERT-v1-95M, -330M, -v0,
-v0-public), read without ``trust_remote_code``: ``config.json`` (``model_type: "mert_model"``,
``architectures: ["MERTModel"]``, ``MERTConfig`` fields; an omitted field takes ``MERTConfig``'s
default), ``preprocessor_config.json`` and ``model.safetensors`` or ``pytorch_model.bin`` (sharded
or not) under ``MERTModel``'s keys, which our modules carry unchanged
(``feature_extractor.conv_layers.0.conv.weight``, ``encoder.pos_conv_embed.conv.weight_g``,
``encoder.layers.{i}.attention.q_proj.weight`` …). Every key and shape is checked before loading;
``masked_spec_embed`` (SpecAugment's mask vector, saved when a mask probability is > 0) is checked,
then dropped. Supported options: ``feat_extract_norm`` group | layer, ``do_stable_layer_norm``
(pre-LN), ``deepnorm`` (post-LN, residuals scaled by (2N)^(1/4)). ``attention_relax`` has no
effect: the official code reads it only in deepnorm layers (the 330M model sets it but is pre-LN),
where it subtracts each row's maximum logit, which the softmax ignores (and that official line
fails, ``torch.max`` returning values and indices). ``feature_extractor_cqt`` (an nnAudio CQT
branch no release uses) is refused. The same random weights through this module and the official
``modeling_MERT.py`` agree within 1.2e-5 (max abs, every hidden layer, both full sizes).

**Front end.** The waveform at the config's ``sample_rate`` (24 kHz v1, 16 kHz v0; the data
pipeline resamples to ``encoder.sample_rate``), zeroed past each clip and, when
``preprocessor_config.json`` says ``do_normalize`` (the releases do; also the default), normalised
to zero mean and unit variance over its valid samples, as ``Wav2Vec2FeatureExtractor``. Frame rate
``sample_rate / 320``: 75 Hz (v1), 50 Hz (v0). Clips under 400 samples raise ``ValueError``.

**Layers.** ``layer`` indexes Hugging Face's ``hidden_states``: 0 is the transformer's input (after
the positional conv and, post-LN, its LayerNorm), i block i's output, N the top (pre-LN: after the
final LayerNorm); negative counts from the top. The best layer differs by task, and MERT is
usually used through a learned weighted sum of all N + 1: ``layer_sum: true``. A single ``layer``
runs only the blocks below it.

**LoRA targets.** Separate ``q_proj``, ``k_proj``, ``v_proj``, ``out_proj`` linears per block (no
fused qkv); feed-forward ``intermediate_dense`` and ``output_dense``.

**Padding.** A clip's frames never depend on the batch: padded samples are zeroed, the first conv
layer's group norm takes statistics over the clip's valid frames only (the official model uses
the padded length, so its padded clips depend on the batch; unpadded clips agree), padded frames
are zeroed before the positional conv and attention ignores padded keys. Frames past a clip's
length are 0. Train mode applies the config's dropouts, never LayerDrop or SpecAugment.
"""

from __future__ import annotations

import dataclasses
import json
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import Tensor, nn

from slamkit.config import EncoderConfig
from slamkit.models.checkpoints import CheckpointError, check_state_dict
from slamkit.models.encoders import EncoderCard, ENCODERS, AudioEncoder, LayerSelector, frame_mask
from slamkit.models.ssl_encoder import normalize_waveform

CHECKPOINT_FORMAT = "MERT Hugging Face (MERTModel: config.json + model.safetensors or pytorch_model.bin)"


@dataclass(frozen=True)
class MERTArch:
    """The ``MERTConfig`` fields the model uses, with ``MERTConfig``'s defaults (``sample_rate`` aside)."""

    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    feat_extract_norm: str = "group"
    feat_extract_activation: str = "gelu"
    conv_dim: tuple[int, ...] = (512,) * 7
    conv_stride: tuple[int, ...] = (5, 2, 2, 2, 2, 2, 2)
    conv_kernel: tuple[int, ...] = (10, 3, 3, 3, 3, 2, 2)
    conv_bias: bool = False
    feat_proj_layer_norm: bool = True
    layer_norm_eps: float = 1e-5
    num_conv_pos_embeddings: int = 128
    num_conv_pos_embedding_groups: int = 16
    do_stable_layer_norm: bool = False
    deepnorm: bool = False
    attention_relax: float = -1.0
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    activation_dropout: float = 0.1
    feat_proj_dropout: float = 0.0
    mask_time_prob: float = 0.05
    mask_feature_prob: float = 0.0
    feature_extractor_cqt: bool = False
    sample_rate: int = 24_000

    @property
    def has_masked_spec_embed(self) -> bool:
        """Whether ``MERTModel`` has (and saves) ``masked_spec_embed`` for this config."""
        return self.mask_time_prob > 0.0 or self.mask_feature_prob > 0.0


_SMALL = dict(hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0)
MERT_PRESETS: dict[str, MERTArch] = {
    # the real conv stack (320x) and positional-conv layout at tiny widths
    "test": MERTArch(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=(32,) * 7,
                     num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, **_SMALL),
    # MERT-v1-95M and MERT-v1-330M as released (config.json of m-a-p/MERT-v1-95M, -330M)
    "95m": MERTArch(activation_dropout=0.0, feat_proj_dropout=0.1),
    "330m": MERTArch(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                     do_stable_layer_norm=True, attention_relax=32.0, mask_time_prob=0.075, **_SMALL),
}

_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "gelu": nn.GELU, "gelu_new": lambda: nn.GELU(approximate="tanh"), "relu": nn.ReLU, "silu": nn.SiLU, "swish": nn.SiLU,
}


# --- The model (module and parameter names are MERTModel's, so its state dict loads as is) ---------


def conv_output_frames(lengths: Tensor, kernels: tuple[int, ...], strides: tuple[int, ...]) -> Tensor:
    """Samples ``[b]`` -> frames ``[b]`` after unpadded strided convs (0 when too short)."""
    n = lengths.to(torch.long)
    for k, s in zip(kernels, strides):
        n = (torch.div(n - k, s, rounding_mode="floor") + 1).clamp(min=0)
    return n


def min_input_samples(kernels: tuple[int, ...], strides: tuple[int, ...]) -> int:
    """The fewest samples that give one output frame (400 for MERT's stack)."""
    n = 1
    for k, s in zip(reversed(kernels), reversed(strides)):
        n = (n - 1) * s + k
    return n


class _ConvLayer(nn.Module):
    """One feature-extractor conv; ``layer_norm`` is a GroupNorm (first layer, group variant) or a LayerNorm."""

    def __init__(self, arch: MERTArch, i: int) -> None:
        super().__init__()
        c_in = arch.conv_dim[i - 1] if i > 0 else 1
        c_out = arch.conv_dim[i]
        self.conv = nn.Conv1d(c_in, c_out, arch.conv_kernel[i], stride=arch.conv_stride[i], bias=arch.conv_bias)
        self.layer_norm: nn.Module | None = None
        if arch.feat_extract_norm == "layer":
            self.layer_norm = nn.LayerNorm(c_out)
        elif i == 0:
            self.layer_norm = nn.GroupNorm(c_out, c_out)  # one group per channel: normalises over time
        self.activation = _ACTIVATIONS[arch.feat_extract_activation]()


def _masked_time_norm(x: Tensor, frames: Tensor, norm: nn.GroupNorm) -> Tensor:
    """Per-channel GroupNorm of ``x [b, c, t]`` with statistics over each clip's first ``frames [b]`` steps."""
    xf = x.float()
    mask = frame_mask(frames, x.shape[-1])[:, None, :].to(xf.dtype)
    n = frames.clamp(min=1).to(xf.dtype)[:, None, None]
    mean = (xf * mask).sum(-1, keepdim=True) / n
    var = (((xf - mean) * mask) ** 2).sum(-1, keepdim=True) / n
    y = (xf - mean) * torch.rsqrt(var + norm.eps)
    return (y * norm.weight.float()[None, :, None] + norm.bias.float()[None, :, None]).to(x.dtype)


class _FeatureEncoder(nn.Module):
    """Waveform ``[b, t]`` -> conv features ``[b, t_c, conv_dim[-1]]`` and valid frames ``[b]``."""

    def __init__(self, arch: MERTArch) -> None:
        super().__init__()
        self.conv_layers = nn.ModuleList(_ConvLayer(arch, i) for i in range(len(arch.conv_dim)))

    def forward(self, audio: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        x, n = audio[:, None, :], lengths
        for layer in self.conv_layers:
            x = layer.conv(x)
            n = conv_output_frames(n, layer.conv.kernel_size, layer.conv.stride)
            if isinstance(layer.layer_norm, nn.GroupNorm):
                x = _masked_time_norm(x, n, layer.layer_norm)
            elif layer.layer_norm is not None:
                x = layer.layer_norm(x.transpose(1, 2)).transpose(1, 2)
            x = layer.activation(x)
        return x.transpose(1, 2), n


class _FeatureProjection(nn.Module):
    """Conv features ``[b, t, c]`` -> ``[b, t, hidden]`` (optional LayerNorm, then Linear)."""

    def __init__(self, arch: MERTArch) -> None:
        super().__init__()
        self.layer_norm = nn.LayerNorm(arch.conv_dim[-1], eps=arch.layer_norm_eps) if arch.feat_proj_layer_norm else None
        self.projection = nn.Linear(arch.conv_dim[-1], arch.hidden_size)
        self.dropout = nn.Dropout(arch.feat_proj_dropout)

    def forward(self, x: Tensor) -> Tensor:
        if self.layer_norm is not None:
            x = self.layer_norm(x)
        return self.dropout(self.projection(x))


class _WeightNormConv(nn.Module):
    """Grouped conv with weight normalisation over the kernel axis (``weight = g * v / ||v||``, norm per tap)."""

    def __init__(self, channels: int, kernel: int, groups: int) -> None:
        super().__init__()
        self.groups, self.padding = groups, kernel // 2
        # random init as the official model's: normal v, g = ||v|| (so the initial weight is v)
        self.weight_v = nn.Parameter(torch.randn(channels, channels // groups, kernel) * 2 / math.sqrt(kernel * channels))
        self.weight_g = nn.Parameter(self.weight_v.detach().norm(dim=(0, 1), keepdim=True))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        """``[b, c, t]`` -> ``[b, c, t + 1 - kernel % 2]``."""
        v = self.weight_v
        weight = v * (self.weight_g / v.norm(dim=(0, 1), keepdim=True))
        return F.conv1d(x, weight, self.bias, padding=self.padding, groups=self.groups)


class _PositionalConv(nn.Module):
    """Relative positions: ``[b, t, hidden]`` -> ``[b, t, hidden]`` (conv, trim to ``t``, activation)."""

    def __init__(self, arch: MERTArch) -> None:
        super().__init__()
        self.conv = _WeightNormConv(arch.hidden_size, arch.num_conv_pos_embeddings, arch.num_conv_pos_embedding_groups)
        self.activation = _ACTIVATIONS[arch.feat_extract_activation]()

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(x.transpose(1, 2))[..., : x.shape[1]]  # an even kernel gives one extra step
        return self.activation(y).transpose(1, 2)


class _Attention(nn.Module):
    """Multi-head self-attention with separate ``q_proj``/``k_proj``/``v_proj``/``out_proj``."""

    def __init__(self, arch: MERTArch) -> None:
        super().__init__()
        d = arch.hidden_size
        self.num_heads, self.dropout = arch.num_attention_heads, arch.attention_dropout
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(d, d) for _ in range(4))

    def forward(self, x: Tensor, key_mask: Tensor | None) -> Tensor:
        """``x [b, t, d]``, ``key_mask [b, 1, 1, t]`` (True = attend) or None -> ``[b, t, d]``."""
        b, t, d = x.shape

        def heads(proj: nn.Linear) -> Tensor:
            return proj(x).view(b, t, self.num_heads, d // self.num_heads).transpose(1, 2)

        out = F.scaled_dot_product_attention(
            heads(self.q_proj), heads(self.k_proj), heads(self.v_proj),
            attn_mask=key_mask, dropout_p=self.dropout if self.training else 0.0,
        )
        return self.out_proj(out.transpose(1, 2).reshape(b, t, d))


class _FeedForward(nn.Module):
    """``[b, t, d]`` -> ``[b, t, d]``: Linear -> activation -> Linear."""

    def __init__(self, arch: MERTArch) -> None:
        super().__init__()
        self.intermediate_dropout = nn.Dropout(arch.activation_dropout)
        self.intermediate_dense = nn.Linear(arch.hidden_size, arch.intermediate_size)
        self.intermediate_act_fn = _ACTIVATIONS[arch.hidden_act]()
        self.output_dense = nn.Linear(arch.intermediate_size, arch.hidden_size)
        self.output_dropout = nn.Dropout(arch.hidden_dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = self.intermediate_dropout(self.intermediate_act_fn(self.intermediate_dense(x)))
        return self.output_dropout(self.output_dense(x))


class _EncoderLayer(nn.Module):
    """One transformer block: post-LN (optionally DeepNorm-scaled residuals) or pre-LN."""

    def __init__(self, arch: MERTArch) -> None:
        super().__init__()
        self.pre_ln = arch.do_stable_layer_norm
        self.residual_alpha = (2.0 * arch.num_hidden_layers) ** 0.25 if arch.deepnorm else 1.0
        self.attention = _Attention(arch)
        self.dropout = nn.Dropout(arch.hidden_dropout)
        self.layer_norm = nn.LayerNorm(arch.hidden_size, eps=arch.layer_norm_eps)
        self.feed_forward = _FeedForward(arch)
        self.final_layer_norm = nn.LayerNorm(arch.hidden_size, eps=arch.layer_norm_eps)

    def forward(self, x: Tensor, key_mask: Tensor | None) -> Tensor:
        """``x [b, t, d]`` -> ``[b, t, d]``."""
        if self.pre_ln:
            x = x + self.dropout(self.attention(self.layer_norm(x), key_mask))
            return x + self.feed_forward(self.final_layer_norm(x))
        a = self.residual_alpha
        x = self.layer_norm(a * x + self.dropout(self.attention(x, key_mask)))
        return self.final_layer_norm(a * x + self.feed_forward(x))


class _Encoder(nn.Module):
    """Positional conv + blocks; returns Hugging Face's ``hidden_states`` (see the module docs)."""

    def __init__(self, arch: MERTArch) -> None:
        super().__init__()
        self.pre_ln = arch.do_stable_layer_norm
        self.pos_conv_embed = _PositionalConv(arch)
        self.layer_norm = nn.LayerNorm(arch.hidden_size, eps=arch.layer_norm_eps)
        self.dropout = nn.Dropout(arch.hidden_dropout)
        self.layers = nn.ModuleList(_EncoderLayer(arch) for _ in range(arch.num_hidden_layers))

    def forward(self, x: Tensor, valid: Tensor, num_layers: int) -> list[Tensor]:
        """``x [b, t, d]``, ``valid [b, t]`` bool -> hidden states 0..``num_layers``, each ``[b, t, d]``."""
        x = x * valid[..., None].to(x.dtype)  # the positional conv must see zeros past each clip
        x = x + self.pos_conv_embed(x)
        if not self.pre_ln:
            x = self.layer_norm(x)
        x = self.dropout(x)
        key_mask = None if bool(valid.all()) else valid[:, None, None, :]
        states = [x]
        for layer in self.layers[:num_layers]:
            states.append(layer(states[-1], key_mask))
        if self.pre_ln and num_layers == len(self.layers):
            states[-1] = self.layer_norm(states[-1])
        return states


class MERTModel(nn.Module):
    """MERT's network, module names as in the official ``MERTModel`` (without ``masked_spec_embed``)."""

    def __init__(self, arch: MERTArch) -> None:
        super().__init__()
        self.arch = arch
        self.feature_extractor = _FeatureEncoder(arch)
        self.feature_projection = _FeatureProjection(arch)
        self.encoder = _Encoder(arch)

    def forward(self, audio: Tensor, lengths: Tensor, num_layers: int | None = None) -> tuple[list[Tensor], Tensor]:
        """``audio [b, t]`` (zero past ``lengths [b]``) -> hidden states 0..``num_layers`` ``[b, t_c, d]``, frames ``[b]``."""
        feats, frames = self.feature_extractor(audio, lengths)
        hidden = self.feature_projection(feats)
        n = self.arch.num_hidden_layers if num_layers is None else num_layers
        return self.encoder(hidden, frame_mask(frames, hidden.shape[1]), n), frames


# --- The registered encoder ------------------------------------------------------------------------


@ENCODERS.register("mert")
class MERTEncoder(AudioEncoder):
    """MERT: waveform ``[b, t]`` at ``sample_rate`` -> ``[b, t_e, hidden]`` at ``sample_rate / 320`` frames/s.

    Args:
        model: the network (``self.model``; LoRA finds ``q_proj``/``v_proj`` by name).
        normalize: zero-mean unit-variance per clip (the preprocessor's ``do_normalize``).
        layer: hidden state to return (see the module docs); ignored when ``layer_sum``.
        layer_sum: return a learned softmax-weighted sum of all hidden states.
    """

    sample_rate = 24_000
    presets = tuple(MERT_PRESETS)
    card = EncoderCard(
        preset="95m",
        formats="Hugging Face MERT directory (v1-95M, v1-330M, v0), no remote code run",
        use="music captioning (use `layer_sum`)",
    )

    def __init__(self, model: MERTModel, normalize: bool = True, layer: int | None = None, layer_sum: bool = False) -> None:
        super().__init__()
        arch = model.arch
        self.model = model
        self.normalize = normalize
        self.sample_rate = arch.sample_rate
        self.hidden_size = arch.hidden_size
        self.frame_rate = arch.sample_rate / math.prod(arch.conv_stride)
        self.min_samples = min_input_samples(arch.conv_kernel, arch.conv_stride)
        self.layer_select = LayerSelector(layer, arch.num_hidden_layers, weighted=layer_sum)

    @classmethod
    def from_config(cls, cfg: EncoderConfig) -> "MERTEncoder":
        """Pretrained from ``cfg.path`` (a MERT Hugging Face directory) or random at ``cfg.preset``."""
        if cfg.path:
            model, normalize = load_mert(cfg.path)
        else:
            if cfg.preset not in MERT_PRESETS:
                raise ValueError(f"unknown mert preset {cfg.preset!r}; choose one of {', '.join(MERT_PRESETS)}")
            model, normalize = MERTModel(MERT_PRESETS[cfg.preset]), True
        return cls(model, normalize=normalize, layer=cfg.layer, layer_sum=cfg.layer_sum)

    def output_lengths(self, lengths: Tensor) -> Tensor:
        """Samples ``[b]`` -> frames ``[b]`` after the conv feature extractor."""
        return conv_output_frames(lengths, self.model.arch.conv_kernel, self.model.arch.conv_stride)

    def transformer_layers(self) -> nn.ModuleList:
        """The transformer blocks, bottom to top."""
        return self.model.encoder.layers

    def forward(self, audio: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """``audio [b, t]`` float32, ``lengths [b]`` samples -> ``feats [b, t_e, hidden]``, ``frames [b]``.

        ``t_e = max(frames)``; frames past a clip's length are 0.
        """
        lengths = lengths.to(device=audio.device, dtype=torch.long)
        if bool((lengths < self.min_samples).any()):
            raise ValueError(f"clips too short for MERT's conv feature extractor (need >= {self.min_samples} samples): {lengths.tolist()}")
        valid = frame_mask(lengths, audio.shape[1])
        audio = audio.float().masked_fill(~valid, 0.0)
        if self.normalize:
            audio = normalize_waveform(audio, lengths)
        select = self.layer_select
        weighted = select.weights is not None
        states, frames = self.model(audio.to(self.model.feature_projection.projection.weight.dtype), lengths,
                                    num_layers=select.num_layers if weighted else select.index)
        feats = select(states) if weighted else states[-1]
        feats = feats[:, : int(frames.max())]
        return feats.masked_fill(~frame_mask(frames, feats.shape[1])[..., None], 0.0), frames


# --- Reading the official Hugging Face directory ---------------------------------------------------

_INDEX_FILES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
_SINGLE_FILES = ("model.safetensors", "pytorch_model.bin")
# transformers >= 4.33 saves the weight-normalised conv through torch parametrizations
_RENAMES = {
    "encoder.pos_conv_embed.conv.parametrizations.weight.original0": "encoder.pos_conv_embed.conv.weight_g",
    "encoder.pos_conv_embed.conv.parametrizations.weight.original1": "encoder.pos_conv_embed.conv.weight_v",
}


def load_mert(path: str | Path) -> tuple[MERTModel, bool]:
    """The float32 model in the MERT directory ``path`` and whether its preprocessor normalises.

    Raises:
        FileNotFoundError: ``path`` is not a directory.
        CheckpointError: not a MERT directory, an unsupported option, or weights that do not match
            the config exactly (names the file and the first missing / unexpected keys).
    """
    arch, state, normalize = read_mert_checkpoint(path)
    with torch.device("meta"):
        model = MERTModel(arch)
    model.load_state_dict(state, strict=True, assign=True)
    return model, normalize


def read_mert_checkpoint(path: str | Path) -> tuple[MERTArch, dict[str, Tensor], bool]:
    """Config, checked float32 state dict (``masked_spec_embed`` dropped) and ``do_normalize`` of ``path``."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"mert encoder path {str(path)!r} is not a local directory (expected a Hugging Face MERT directory)")
    preprocessor = _read_json(path / "preprocessor_config.json") if (path / "preprocessor_config.json").is_file() else {}
    arch = mert_arch_from_config(_read_json(path / "config.json"), preprocessor, str(path / "config.json"))
    state, source = _read_weights(path)
    state = {_RENAMES.get(k, k): v.float() if v.is_floating_point() else v for k, v in state.items()}
    check_state_dict(expected_state_shapes(arch), state, source, CHECKPOINT_FORMAT)
    state.pop("masked_spec_embed", None)
    return arch, state, bool(preprocessor.get("do_normalize", True))


def expected_state_shapes(arch: MERTArch) -> dict[str, tuple[int, ...]]:
    """Every key of the official ``MERTModel`` state dict for ``arch`` and its shape."""
    with torch.device("meta"):
        model = MERTModel(arch)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if arch.has_masked_spec_embed:
        shapes["masked_spec_embed"] = (arch.hidden_size,)
    return shapes


def mert_arch_from_config(meta: dict[str, Any], preprocessor: dict[str, Any], source: str) -> MERTArch:
    """A checked :class:`MERTArch` from ``config.json`` (and the preprocessor's sample rate)."""
    if meta.get("model_type") != "mert_model" and "MERTModel" not in (meta.get("architectures") or []):
        raise CheckpointError(
            f"{source}: model_type {meta.get('model_type')!r}, architectures {meta.get('architectures')!r} is not a MERT checkpoint "
            "(expected model_type 'mert_model' / architectures ['MERTModel']); HuBERT, wav2vec2 and WavLM directories load with encoder name hf_ssl"
        )
    fields = {f.name: f for f in dataclasses.fields(MERTArch)}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in meta.items() if k in fields and k != "sample_rate"}
    values["sample_rate"] = _sample_rate(meta, preprocessor, source)
    try:
        arch = MERTArch(**values)
    except TypeError as err:
        raise CheckpointError(f"{source}: unreadable MERT config ({err})") from None
    _check_supported(arch, source)
    return arch


def _sample_rate(meta: dict[str, Any], preprocessor: dict[str, Any], source: str) -> int:
    """``sample_rate`` of config.json, else the preprocessor's ``sampling_rate``; they must agree."""
    model_rate, pre_rate = meta.get("sample_rate"), preprocessor.get("sampling_rate")
    if model_rate and pre_rate and int(model_rate) != int(pre_rate):
        raise CheckpointError(f"{source}: sample_rate {model_rate} disagrees with preprocessor_config.json sampling_rate {pre_rate}")
    rate = model_rate or pre_rate
    if not rate:
        raise CheckpointError(f"{source}: no sample_rate in config.json and no sampling_rate in preprocessor_config.json")
    return int(rate)


def _check_supported(arch: MERTArch, source: str) -> None:
    """Refuse what this implementation does not reproduce, naming the field."""
    problems = []
    if arch.feature_extractor_cqt:
        problems.append("feature_extractor_cqt=true (the nnAudio CQT branch; no released MERT uses it) is not supported")
    if arch.deepnorm and arch.do_stable_layer_norm:
        problems.append("deepnorm needs the post-LN encoder (do_stable_layer_norm=false), as the official code asserts")
    if arch.feat_extract_norm not in ("group", "layer"):
        problems.append(f"feat_extract_norm {arch.feat_extract_norm!r} is not 'group' or 'layer'")
    if not len(arch.conv_dim) == len(arch.conv_kernel) == len(arch.conv_stride):
        problems.append("conv_dim, conv_kernel and conv_stride differ in length")
    if arch.hidden_size % arch.num_attention_heads or arch.hidden_size % arch.num_conv_pos_embedding_groups:
        problems.append("hidden_size is not divisible by num_attention_heads / num_conv_pos_embedding_groups")
    for name in ("hidden_act", "feat_extract_activation"):
        if getattr(arch, name) not in _ACTIVATIONS:
            problems.append(f"{name} {getattr(arch, name)!r} is not one of {', '.join(_ACTIVATIONS)}")
    if problems:
        raise CheckpointError(f"{source}: unsupported MERT config: {'; '.join(problems)}")


def _read_json(file: Path) -> dict[str, Any]:
    if not file.is_file():
        raise CheckpointError(f"{file}: missing; a {CHECKPOINT_FORMAT} directory has one")
    try:
        data = json.loads(file.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{file}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{file}: expected a JSON object")
    return data


def _read_weights(path: Path) -> tuple[dict[str, Tensor], str]:
    """All tensors of the directory's checkpoint (sharded or not; safetensors preferred) and a label for errors."""
    for index in _INDEX_FILES:
        if (path / index).is_file():
            shards = sorted(set(_read_json(path / index).get("weight_map", {}).values()))
            state: dict[str, Tensor] = {}
            for shard in shards:
                state.update(_read_weight_file(path / shard))
            return state, str(path / index)
    for single in _SINGLE_FILES:
        if (path / single).is_file():
            return _read_weight_file(path / single), str(path / single)
    raise CheckpointError(f"{path}: no {', '.join(_SINGLE_FILES)} or sharded index; expected a {CHECKPOINT_FORMAT} directory")


def _read_weight_file(file: Path) -> dict[str, Tensor]:
    try:
        if file.suffix == ".safetensors":
            return load_file(str(file))
        state = torch.load(file, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(file))
    except Exception as err:  # safetensors / torch raise several types for missing or garbled files
        raise CheckpointError(f"{file}: cannot be read as a {CHECKPOINT_FORMAT} weight file: {err}") from err
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(f"{file}: not a state dict of tensors")
    return state
