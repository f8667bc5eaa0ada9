"""Microsoft BEATs ("Audio Pre-Training with Acoustic Tokenizers"), registered as ``beats``.

**Checkpoint.** The official ``.pt`` files (``BEATs_iter3.pt``, ``…_finetuned_on_AS2M_cpt2.pt`` …)
hold a dict with ``cfg`` (the fields of the official ``BEATsConfig`` as a plain dict) and ``model``
(the state dict); fine-tuned ones add ``label_dict``. They are read with
``torch.load(weights_only=True)``, nothing is executed. Our modules carry the official names
(``patch_embedding``, ``layer_norm``, ``post_extract_proj``, ``encoder.pos_conv.0.weight_g/_v``,
``encoder.layers.{i}.self_attn.{q,k,v,out}_proj``, ``…grep_linear``, ``…grep_a``,
``…self_attn_layer_norm``, ``fc1``, ``fc2``, ``final_layer_norm``, ``encoder.layer_norm``), with
one difference: the relative-position table, which the official model shares between all layers
and therefore saves once per layer, lives only in layer 0 here; the reader checks that every
layer's copy is present and identical. A fine-tuned checkpoint's AudioSet classifier
(``predictor.*``) is checked against ``cfg`` and then dropped, with a log line. Anything else
missing or unexpected raises :class:`~slamkit.models.weights.CheckpointError` naming the file.

**Front end.** Kaldi fbank of ``waveform * 2**15`` (:func:`slamkit.models.encoders.fbank.kaldi_fbank`:
128 bins, 25 ms windows every 10 ms, povey window, snip edges), normalised as
``(fbank - 15.41663) / (2 * 6.55582)``. The patch embedding (a 16x16 conv, stride 16) sees the
fbank as a ``[frames, 128]`` image, so trailing frames short of a whole 16-frame patch are
dropped, as in the official code.

**Tokens and frame rate.** Each 16-frame (160 ms) time step gives 8 tokens, one per 16-bin
frequency band, in the official order: time-major, low to high frequency within a step. The
encoder therefore emits ``8 * (fbank_frames // 16)`` tokens, nominally 50 per second
(``frame_rate``), but they are not 50 time steps: a linear projector with ``k=8`` groups exactly
one time step (6.25 Hz), any other ``k`` mixes bands of neighbouring steps. Clips need at least
2800 samples (175 ms, one patch).

**Layers.** ``encoder.layer`` indexes hidden states as Hugging Face does: 0 is the transformer's
input (patch embeddings after the positional conv and, for post-LN models such as BEATs, the
encoder LayerNorm), ``i`` the output of layer ``i``, ``N`` (or ``null``) the last; pre-LN
configs apply the final LayerNorm to state ``N`` only. ``layer_sum`` learns a softmax-weighted
sum of all ``N + 1`` states (:class:`~slamkit.models.encoders.base.LayerSelector`).

**LoRA targets.** Separate ``q_proj``, ``k_proj``, ``v_proj``, ``out_proj`` and ``fc1``/``fc2``
linears in every layer (no fused qkv).

**Padding.** The official model turns a sample-level padding mask into a token mask by evenly
splitting each row, which ignores the time-major token order and is off by a few tokens. We
mark exactly the tokens of patches that reach past a clip's last fbank frame, zero them before
the positional conv (as the official model zeroes its masked tokens) and mask them as attention
keys; the relative position bias depends on positions only. A clip's valid outputs are thus
those it gets alone; padded outputs are 0. Dropout, layer drop and the layer-wise gradient
decay of pre-training are left out (identity at inference).
"""

from __future__ import annotations

import functools
import dataclasses
import logging
import math
import zipfile
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from slamkit.config import EncoderConfig
from slamkit.models.lengths import LengthRule
from slamkit.models.encoders.fbank import kaldi_fbank, kaldi_fbank_frames
from slamkit.models.weights import CheckpointError, check_state_dict, load_state_strict
from slamkit.models.encoders.base import EncoderCard, ENCODERS, AudioEncoder, check_audio_batch, LayerSelector, frame_mask

log = logging.getLogger(__name__)

FORMAT = "BEATs .pt (cfg + model)"
FBANK_MEAN = 15.41663
FBANK_STD = 6.55582
NUM_MEL_BINS = 128
WAVEFORM_SCALE = 2.0**15  # BEATs reads 16-bit sample units


@dataclasses.dataclass(frozen=True)
class BEATsConfig:
    """The architecture fields of the official ``BEATsConfig``, with its defaults.

    Training-only fields of the official config (dropouts, layer drop, gradient decay ratio,
    ``predictor_dropout``) are not kept.
    """

    encoder_layers: int = 12
    encoder_embed_dim: int = 768
    encoder_ffn_embed_dim: int = 3072
    encoder_attention_heads: int = 12
    activation_fn: str = "gelu"
    layer_norm_first: bool = False
    deep_norm: bool = False
    conv_pos: int = 128
    conv_pos_groups: int = 16
    relative_position_embedding: bool = False
    num_buckets: int = 320
    max_distance: int = 1280
    gru_rel_pos: bool = False
    input_patch_size: int = -1
    embed_dim: int = 512
    conv_bias: bool = False
    finetuned_model: bool = False
    predictor_class: int = 527

    @classmethod
    def from_official(cls, cfg: Mapping[str, Any], source: str) -> "BEATsConfig":
        """The config from a checkpoint's ``cfg`` dict (missing fields take the official defaults)."""
        values = {}
        for field in dataclasses.fields(cls):
            if field.name not in cfg:
                continue
            value, kind = cfg[field.name], type(field.default)
            if kind is bool and value in (0, 1):
                value = bool(value)  # fairseq-era configs may store switches as 0/1
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise CheckpointError(f"{source}: cfg[{field.name!r}] is {value!r}, expected a {kind.__name__}")
            values[field.name] = value
        config = cls(**values)
        problem = config.problem()
        if problem:
            raise CheckpointError(f"{source}: unsupported BEATs cfg: {problem}")
        return config

    def problem(self) -> str | None:
        """Why this config cannot be built, or None."""
        if not 1 <= self.input_patch_size <= NUM_MEL_BINS:
            return f"input_patch_size {self.input_patch_size} (need 1..{NUM_MEL_BINS})"
        if self.encoder_embed_dim % self.encoder_attention_heads or self.encoder_embed_dim % self.conv_pos_groups:
            return f"encoder_embed_dim {self.encoder_embed_dim} is not divisible by the heads / conv_pos_groups"
        if self.activation_fn not in _ACTIVATIONS:
            return f"activation_fn {self.activation_fn!r} (supported: {', '.join(_ACTIVATIONS)})"
        if self.deep_norm and self.layer_norm_first:
            return "deep_norm and layer_norm_first together"
        return None

    def to_official(self) -> dict[str, Any]:
        """The ``cfg`` dict an official checkpoint stores."""
        return dataclasses.asdict(self)

    @property
    def tokens_per_step(self) -> int:
        """Frequency patches per time step (8 for 16x16 patches of 128 bins)."""
        return NUM_MEL_BINS // self.input_patch_size


BEATS_PRESETS: dict[str, BEATsConfig] = {
    # Tiny, for tests: the BEATs_iter3 structure (deep norm, gated relative positions) at width 32.
    "test": BEATsConfig(
        encoder_layers=2, encoder_embed_dim=32, encoder_ffn_embed_dim=64, encoder_attention_heads=2,
        deep_norm=True, conv_pos=16, conv_pos_groups=4, relative_position_embedding=True,
        num_buckets=32, max_distance=64, gru_rel_pos=True, input_patch_size=16, embed_dim=16,
    ),
    # BEATs_iter3 / iter3+ (90M parameters).
    "base": BEATsConfig(
        deep_norm=True, relative_position_embedding=True, num_buckets=320, max_distance=800,
        gru_rel_pos=True, input_patch_size=16, embed_dim=512,
    ),
}


def _gelu_float(x: Tensor) -> Tensor:
    return F.gelu(x.float()).type_as(x)


_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "gelu": _gelu_float,  # computed in float32, as the official code does
    "gelu_accurate": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_fast": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
    "tanh": torch.tanh,
    "linear": lambda x: x,
}


def relative_position_buckets(length: int, num_buckets: int, max_distance: int, device: torch.device | None = None) -> Tensor:
    """T5-style bidirectional buckets ``[length, length]`` (query, key) of the key's offset.

    Half the buckets per direction; offsets below a quarter of ``num_buckets`` get their own
    bucket, larger ones share log-spaced buckets up to ``max_distance``.
    """
    pos = torch.arange(length, dtype=torch.long, device=device)
    offset = pos[None, :] - pos[:, None]
    half = num_buckets // 2
    exact = half // 2
    distance = offset.abs()
    scaled = torch.log(distance.clamp(min=1).float() / exact) / math.log(max_distance / exact) * (half - exact)
    far = (exact + scaled.to(torch.long)).clamp(max=half - 1)
    return (offset > 0).long() * half + torch.where(distance < exact, distance, far)


class WeightNormConv1d(nn.Module):
    """Conv1d whose weight is ``weight_g * weight_v / ||weight_v||`` (norm per kernel tap, fairseq's ``dim=2``)."""

    def __init__(self, channels: int, kernel: int, groups: int) -> None:
        super().__init__()
        self.groups = groups
        self.padding = kernel // 2
        self.weight_v = nn.Parameter(torch.empty(channels, channels // groups, kernel))
        self.weight_g = nn.Parameter(torch.empty(1, 1, kernel))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        """``[b, d, t]`` -> ``[b, d, t + 1 - kernel % 2]``."""
        norm = torch.linalg.vector_norm(self.weight_v, dim=(0, 1), keepdim=True)
        weight = self.weight_v * (self.weight_g / norm)
        return F.conv1d(x, weight, self.bias, padding=self.padding, groups=self.groups)


class BEATsAttention(nn.Module):
    """Multi-head self-attention with BEATs' (optionally gated) relative position bias.

    Only layer 0 owns ``relative_attention_bias``; the encoder computes the bias once from it.
    """

    def __init__(self, config: BEATsConfig, owns_bias_table: bool) -> None:
        super().__init__()
        d, self.heads = config.encoder_embed_dim, config.encoder_attention_heads
        self.head_dim = d // self.heads
        if owns_bias_table and config.relative_position_embedding:
            self.relative_attention_bias = nn.Embedding(config.num_buckets, self.heads)
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(d, d) for _ in range(4))
        self.gated = config.gru_rel_pos
        if self.gated:
            self.grep_linear = nn.Linear(self.head_dim, 8)
            self.grep_a = nn.Parameter(torch.ones(1, self.heads, 1, 1))

    def _split(self, x: Tensor) -> Tensor:
        """``[b, t, d]`` -> ``[b, heads, t, head_dim]``."""
        return x.unflatten(-1, (self.heads, self.head_dim)).transpose(1, 2)

    def forward(self, x: Tensor, position_bias: Tensor | None, key_padding: Tensor | None) -> Tensor:
        """``x [b, t, d]``, bias ``[heads, t, t]``, ``key_padding [b, t]`` (True = pad) -> ``[b, t, d]``."""
        q, k, v = self._split(self.q_proj(x)), self._split(self.k_proj(x)), self._split(self.v_proj(x))
        mask = None
        if position_bias is not None:
            mask = position_bias[None].to(q.dtype)
            if self.gated:
                # Per query and head, a gate in (1, 1 + grep_a] computed from the unscaled query.
                gate_a, gate_b = torch.sigmoid(self.grep_linear(q).unflatten(-1, (2, 4)).sum(-1)).chunk(2, dim=-1)
                mask = (gate_a * (gate_b * self.grep_a - 1.0) + 2.0) * mask
        if key_padding is not None:
            pad = torch.zeros(key_padding.shape, dtype=q.dtype, device=q.device).masked_fill(key_padding, float("-inf"))
            mask = pad[:, None, None, :] if mask is None else mask + pad[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out_proj(out.transpose(1, 2).flatten(2))


class BEATsLayer(nn.Module):
    """One transformer block: post-LN (optionally DeepNorm-scaled residuals) or pre-LN."""

    def __init__(self, config: BEATsConfig, index: int) -> None:
        super().__init__()
        d = config.encoder_embed_dim
        self.self_attn = BEATsAttention(config, owns_bias_table=index == 0)
        self.self_attn_layer_norm = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, config.encoder_ffn_embed_dim)
        self.fc2 = nn.Linear(config.encoder_ffn_embed_dim, d)
        self.final_layer_norm = nn.LayerNorm(d)
        self.activation = _ACTIVATIONS[config.activation_fn]
        self.pre_norm = config.layer_norm_first
        self.residual_scale = (2.0 * config.encoder_layers) ** 0.25 if config.deep_norm else 1.0

    def forward(self, x: Tensor, position_bias: Tensor | None, key_padding: Tensor | None) -> Tensor:
        """``[b, t, d]`` -> ``[b, t, d]``."""
        if self.pre_norm:
            x = x + self.self_attn(self.self_attn_layer_norm(x), position_bias, key_padding)
            return x + self.fc2(self.activation(self.fc1(self.final_layer_norm(x))))
        x = self.self_attn_layer_norm(x * self.residual_scale + self.self_attn(x, position_bias, key_padding))
        return self.final_layer_norm(x * self.residual_scale + self.fc2(self.activation(self.fc1(x))))


class BEATsTransformer(nn.Module):
    """Positional conv + transformer layers (the official ``encoder.*``)."""

    def __init__(self, config: BEATsConfig) -> None:
        super().__init__()
        self.config = config
        d = config.encoder_embed_dim
        self.pos_conv = nn.Sequential(WeightNormConv1d(d, config.conv_pos, config.conv_pos_groups))
        self.layers = nn.ModuleList(BEATsLayer(config, i) for i in range(config.encoder_layers))
        self.layer_norm = nn.LayerNorm(d)

    def position_bias(self, length: int, device: torch.device) -> Tensor | None:
        """Relative position bias ``[heads, length, length]`` shared by all layers (None if unused)."""
        if not self.config.relative_position_embedding:
            return None
        buckets = relative_position_buckets(length, self.config.num_buckets, self.config.max_distance, device)
        return self.layers[0].self_attn.relative_attention_bias(buckets).permute(2, 0, 1)

    def forward(self, x: Tensor, valid: Tensor, upto: int, keep_all: bool) -> list[Tensor]:
        """Tokens ``x [b, n, d]``, ``valid [b, n]`` -> hidden states ``[b, n, d]`` 0..``upto`` (or only ``upto``)."""
        x = x.masked_fill(~valid[..., None], 0.0)
        conv = self.pos_conv(x.transpose(1, 2))
        if self.config.conv_pos % 2 == 0:
            conv = conv[..., :-1]  # an even kernel gives one extra output; keep the centred ones
        x = x + F.gelu(conv).transpose(1, 2)
        if not self.config.layer_norm_first:
            x = self.layer_norm(x)
        bias = self.position_bias(x.shape[1], x.device)
        padding = None if bool(valid.all()) else ~valid
        states = [x]
        for layer in self.layers[:upto]:
            x = layer(x, bias, padding)
            states = [*states, x] if keep_all else [x]
        if self.config.layer_norm_first and upto == len(self.layers):
            states[-1] = self.layer_norm(states[-1])
        return states


class BEATsModel(nn.Module):
    """The official ``BEATs`` module's feature path: patch embedding -> LayerNorm -> projection -> transformer."""

    def __init__(self, config: BEATsConfig) -> None:
        super().__init__()
        problem = config.problem()
        if problem:
            raise ValueError(f"unsupported BEATs config: {problem}")
        self.config = config
        p, embed, d = config.input_patch_size, config.embed_dim, config.encoder_embed_dim
        self.patch_embedding = nn.Conv2d(1, embed, kernel_size=p, stride=p, bias=config.conv_bias)
        self.layer_norm = nn.LayerNorm(embed)
        self.post_extract_proj = nn.Linear(embed, d) if embed != d else None
        self.encoder = BEATsTransformer(config)

    def embed(self, fbank: Tensor) -> Tensor:
        """Normalised fbank ``[b, T, 128]`` -> tokens ``[b, (T // p) * (128 // p), d]``, time-major."""
        patches = self.patch_embedding(fbank[:, None])  # [b, embed, T // p, 128 // p]
        x = self.layer_norm(patches.flatten(2).transpose(1, 2))
        return self.post_extract_proj(x) if self.post_extract_proj is not None else x

    def reset_parameters(self) -> None:
        """Random init for presets: BERT-style N(0, 0.02) linears/embeddings, fairseq's pos-conv init."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
                if isinstance(module, nn.Linear) and module.bias is not None:
                    nn.init.zeros_(module.bias)
        conv = self.encoder.pos_conv[0]
        nn.init.normal_(conv.weight_v, std=math.sqrt(4.0 / (self.config.conv_pos * self.config.encoder_embed_dim)))
        with torch.no_grad():
            conv.weight_g.copy_(torch.linalg.vector_norm(conv.weight_v, dim=(0, 1), keepdim=True))
        nn.init.zeros_(conv.bias)


# ---------------------------------------------------------------------------------------------
# The official checkpoint layout
# ---------------------------------------------------------------------------------------------

_BIAS_TABLE = "encoder.layers.{}.self_attn.relative_attention_bias.weight"


def official_state_dict(model: BEATsModel) -> dict[str, Tensor]:
    """``model``'s weights in the official layout (the shared bias table saved under every layer)."""
    state = dict(model.state_dict())
    if model.config.relative_position_embedding:
        for i in range(1, model.config.encoder_layers):
            state[_BIAS_TABLE.format(i)] = state[_BIAS_TABLE.format(0)]
    return state


def save_beats_checkpoint(model: BEATsModel, path: str | Path, predictor: dict[str, Tensor] | None = None) -> None:
    """Write ``model`` as an official ``{"cfg", "model"}`` file (``predictor``: ``predictor.*`` tensors)."""
    config = model.config if predictor is None else dataclasses.replace(model.config, finetuned_model=True)
    torch.save({"cfg": config.to_official(), "model": {**official_state_dict(model), **(predictor or {})}}, path)


def _expected_shapes(config: BEATsConfig) -> dict[str, tuple[int, ...]]:
    """Official key -> shape for ``config`` (built on the meta device, nothing allocated)."""
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in official_state_dict(BEATsModel(config)).items()}
    if config.finetuned_model:
        shapes["predictor.weight"] = (config.predictor_class, config.encoder_embed_dim)
        shapes["predictor.bias"] = (config.predictor_class,)
    return shapes


def read_beats_checkpoint(path: str | Path) -> tuple[BEATsConfig, dict[str, Tensor]]:
    """The config and the official-layout float32 state dict of a BEATs ``.pt``, keys and shapes checked."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"BEATs checkpoint {str(path)!r} is not a file (expected a {FORMAT} file such as BEATs_iter3.pt)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except Exception as err:  # torch raises several types for garbled / unsafe pickles
        raise CheckpointError(f"{path}: cannot be read as a {FORMAT} file with torch.load(weights_only=True): {err}") from err
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("cfg"), dict) or not isinstance(ckpt.get("model"), dict):
        found = sorted(map(str, ckpt))[:8] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(f"{path}: not a {FORMAT} checkpoint (expected a dict with 'cfg' and 'model' dicts; found {found})")
    config = BEATsConfig.from_official(ckpt["cfg"], str(path))
    odd = [k for k, v in ckpt["model"].items() if not isinstance(v, Tensor)]
    if odd:
        raise CheckpointError(f"{path}: 'model' holds non-tensor entries {odd[:5]} (not a {FORMAT} state dict)")
    state = {k: v.float() if v.is_floating_point() else v for k, v in ckpt["model"].items()}
    check_state_dict(_expected_shapes(config), state, str(path), FORMAT)
    return config, state


def load_official_state(model: BEATsModel, state: dict[str, Tensor], source: str) -> None:
    """Load an official-layout ``state`` into ``model``: predictor dropped (logged), bias copies checked."""
    state = dict(state)
    head = [k for k in state if k.startswith("predictor.")]
    if head:
        log.info("%s: ignoring the fine-tuned classifier %s (%d classes); the encoder uses the features", source, head, state[head[0]].shape[0])
        for key in head:
            del state[key]
    if model.config.relative_position_embedding:
        table = state.get(_BIAS_TABLE.format(0))
        for i in range(1, model.config.encoder_layers):
            copy = state.pop(_BIAS_TABLE.format(i), None)
            if table is not None and copy is not None and not torch.equal(copy, table):
                raise CheckpointError(f"{source}: {_BIAS_TABLE.format(i)} differs from layer 0's (BEATs shares one table)")
    load_state_strict(model, state, source, FORMAT)


# ---------------------------------------------------------------------------------------------
# The encoder
# ---------------------------------------------------------------------------------------------


@ENCODERS.register("beats")
class BEATsEncoder(AudioEncoder):
    """BEATs + its fbank front end: ``[b, t]`` 16 kHz -> ``[b, t_e, d]``, 8 tokens per 160 ms.

    Args:
        model: the BEATs network (``self.model``; official parameter names).
        layer: hidden state to return (see the module docs); None = last.
        layer_sum: learn a weighted sum of all hidden states instead.
    """

    presets: ClassVar[tuple[str, ...]] = tuple(BEATS_PRESETS)
    card = EncoderCard(
        preset="base",
        formats="official BEATs `.pt` (`cfg` + `model`; iter3, iter3+, AS2M fine-tuned)",
        use="audio captioning, sound events",
    )

    def __init__(self, model: BEATsModel, layer: int | None = None, layer_sum: bool = False) -> None:
        super().__init__()
        self.model = model
        config = model.config
        self.patch = config.input_patch_size
        self.tokens_per_step = config.tokens_per_step
        self.hidden_size = config.encoder_embed_dim
        self.frame_rate = 100.0 / self.patch * self.tokens_per_step  # fbank runs at 100 frames/s
        self.min_samples = 400 + (self.patch - 1) * 160  # one whole patch of fbank frames
        self.selector = LayerSelector(layer, config.encoder_layers, weighted=layer_sum)

    @classmethod
    def from_config(cls, cfg: EncoderConfig) -> "BEATsEncoder":
        """Pretrained from ``cfg.path`` (an official ``.pt``) or random from ``cfg.preset``."""
        if cfg.path:
            config, state = read_beats_checkpoint(cfg.path)
            model = BEATsModel(config)
            load_official_state(model, state, str(cfg.path))
        else:
            if cfg.preset not in BEATS_PRESETS:
                raise ValueError(f"unknown beats preset {cfg.preset!r}; choose one of {', '.join(BEATS_PRESETS)}")
            model = BEATsModel(BEATS_PRESETS[cfg.preset])
            model.reset_parameters()
        return cls(model, layer=cfg.layer, layer_sum=cfg.layer_sum)

    def transformer_layers(self) -> nn.ModuleList:
        """The transformer blocks, bottom to top (layer 0 also owns the shared position table)."""
        return self.model.encoder.layers

    def length_rule(self) -> LengthRule:
        """Samples -> tokens: 8 per whole 16-frame patch of fbank frames."""
        return functools.partial(beats_tokens, patch=self.patch, per_patch=self.tokens_per_step)

    def forward(self, audio: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """``audio [b, t]`` float 16 kHz, ``lengths [b]`` samples -> ``feats [b, t_e, d]``, ``frames [b]``.

        ``t_e = max(frames)``; tokens past a clip's count are 0.
        """
        lengths = check_audio_batch(audio, lengths, self.min_samples, f"BEATs needs clips of at least {self.min_samples} samples (one {self.patch}-frame patch)")
        with torch.autocast(device_type=audio.device.type, enabled=False):
            fbank, fbank_frames = kaldi_fbank(audio, lengths, num_mel_bins=NUM_MEL_BINS, window="povey", scale=WAVEFORM_SCALE)
        return self.encode_fbank(fbank, fbank_frames)

    def encode_fbank(self, fbank: Tensor, fbank_frames: Tensor) -> tuple[Tensor, Tensor]:
        """Raw log-mel ``fbank [b, T, 128]`` with ``fbank_frames [b]`` valid -> ``feats [b, t_e, d]``, ``frames [b]``."""
        frames = fbank_frames // self.patch * self.tokens_per_step
        usable = fbank.shape[1] // self.patch * self.patch
        fbank = (fbank[:, :usable].float() - FBANK_MEAN) / (2.0 * FBANK_STD)
        x = self.model.embed(fbank.to(self.model.patch_embedding.weight.dtype))  # [b, n, d]
        valid = frame_mask(frames, x.shape[1])
        weighted = self.selector.weights is not None
        upto = self.selector.num_layers if weighted else self.selector.index
        states = self.model.encoder(x, valid, upto, keep_all=weighted)
        hidden = self.selector(states) if weighted else states[-1]
        return hidden.masked_fill(~valid[..., None], 0.0), frames


def beats_tokens(lengths: Tensor, patch: int, per_patch: int) -> Tensor:
    """Samples ``[b]`` -> tokens ``[b]``: ``per_patch`` per whole ``patch``-frame patch of fbank frames."""
    return kaldi_fbank_frames(lengths) // patch * per_patch
