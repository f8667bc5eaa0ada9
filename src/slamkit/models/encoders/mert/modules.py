"""MERT's network (module and parameter names are ``MERTModel``'s, so its state dict loads as is).

:class:`MERTArch` holds the config fields that shape the network, :data:`MERT_PRESETS` the released
sizes; :class:`MERTModel` is the conv feature extractor, feature projection, positional conv and
transformer. Loading, the front end and the encoder interface are in :mod:`slamkit.models.encoders.mert.encoder`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from slamkit.models.encoders.base import frame_mask
from slamkit.models.lengths import conv_output_frames


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

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "gelu": nn.GELU, "gelu_new": lambda: nn.GELU(approximate="tanh"), "relu": nn.ReLU, "silu": nn.SiLU, "swish": nn.SiLU,
}


# --- The model (module and parameter names are MERTModel's, so its state dict loads as is) ---------


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
        self.activation = ACTIVATIONS[arch.feat_extract_activation]()


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
        self.activation = ACTIVATIONS[arch.feat_extract_activation]()

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
        self.intermediate_act_fn = ACTIVATIONS[arch.hidden_act]()
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
