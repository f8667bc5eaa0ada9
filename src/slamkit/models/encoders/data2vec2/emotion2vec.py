"""emotion2vec (ddlBoJack/emotion2vec): speech emotion representations, registered as ``emotion2vec``.

emotion2vec is data2vec 2.0's AUDIO modality (:mod:`slamkit.models.encoders.data2vec2.blocks` holds the
shared parts): a wav2vec2-style conv feature extractor (320x, 50 frames/s), a LayerNorm +
linear projection, a stack of grouped convs as relative positions, 10 learned extra tokens, 4
"prenet" blocks in the modality's context encoder and 8 shared ``blocks``, with ALiBi attention
biases scaled by a learned per-head factor (used at inference too, so ``alibi_scale`` is a real
weight, not a pre-training leftover).

**Checkpoints.** Two official layouts, with the same parameter names:

- the fairseq ``.pt`` (``emotion2vec_base.pt``): a dict with ``cfg`` (``model``: a
  ``data2vec_multi`` config with ``modalities.audio``; ``task.normalize``) and ``model``, read
  without fairseq (:func:`~slamkit.models.encoders.data2vec2.fairseq.read_fairseq_checkpoint`);
- a FunASR / ModelScope directory (``emotion2vec_base``, ``emotion2vec_plus_{seed,base,large}``):
  ``config.yaml`` (``model_conf``, the same fields, with ``normalize``) and ``model.pt`` (the
  state dict, bare or under ``state_dict`` / ``model_state_dict`` / ``model``).

Keys: ``modality_encoders.AUDIO.{local_encoder.conv_layers.N.{0,2.1}, project_features.{1,2},
relative_positional_encoder.N.0, context_encoder.{blocks.N.*, norm}, extra_tokens, alibi_scale}``
and ``blocks.N.{norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2}``. Ignored explicitly:
``_ema``, ``modality_encoders.AUDIO.decoder.*``, ``shared_decoder.*``, ``recon_proj.*``,
``cls_proj.*`` and the fine-tuned models' emotion classifier ``proj.*``. Anything else missing or
unexpected raises :class:`~slamkit.models.weights.CheckpointError`.

**Front end.** The 16 kHz waveform, normalised per clip (zero mean, unit variance over its
valid samples, eps 1e-5: the official ``F.layer_norm(source, source.shape)``) when the config's
``normalize`` is true (as in emotion2vec's published configs; assumed when a config lacks it).

**Frame rate and length.** 50 frames/s, ``frames = conv_out(samples)`` through the 7 convs
(kernel 10/3/3/3/3/2/2, stride 5/2/2/2/2/2/2); clips need at least 400 samples. The extra tokens
are dropped from the output, as the official ``extract_features`` does.

**Padding.** Padded samples are zeroed; the conv extractor normalises per frame, so valid frames
never see padding. Padded frames are zeroed before each positional conv (the official model lets
them leak into the last valid frames of a batch) and masked as attention keys, so a clip's
output equals running it alone; padded output frames are 0.

**Layers.** ``encoder.layer`` indexes hidden states of the 8 shared ``blocks``: 0 is the input of
``blocks[0]`` (the context encoder's output, after the 4 prenet blocks), ``i`` the output of block
``i``, ``null`` the last (the official frame features); ``layer_sum`` learns a weighted sum of
them. ``transformer_layers()`` returns ``blocks``.

**LoRA targets.** The attention is fused: ``qkv`` (query/key/value) and ``proj`` (output), in the
prenet and the shared blocks alike.
"""

from __future__ import annotations

import functools
import ast
import dataclasses
import logging
import math
from pathlib import Path
from typing import Any, ClassVar, Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from slamkit.config import EncoderConfig
from slamkit.models.lengths import LengthRule, conv_output_frames
from slamkit.models.weights import CheckpointError, load_state_strict
from slamkit.models.encoders.data2vec2.blocks import (
    ContextEncoder,
    Data2VecModel,
    TransformerConfig,
    attention_mask,
    cfg_section,
    cfg_value,
    coerce,
    drop_ignored,
)
from slamkit.models.encoders.data2vec2.fairseq import FAIRSEQ_FORMAT, read_fairseq_checkpoint, read_funasr_dir
from slamkit.models.encoders.base import EncoderCard, ENCODERS, AudioEncoder, check_audio_batch, LayerSelector, frame_mask

log = logging.getLogger(__name__)

FORMAT = f"emotion2vec {FAIRSEQ_FORMAT} or FunASR directory (config.yaml + model.pt)"
IGNORED = (
    r"_ema(\..*)?",
    r"modality_encoders\.AUDIO\.decoder\..*",
    r"shared_decoder\..*",
    r"recon_proj\..*",
    r"cls_proj\..*",
    r"proj\.(weight|bias)",
)


def parse_conv_spec(spec: Any) -> list[tuple[int, int, int]]:
    """``feature_encoder_spec`` (e.g. ``"[(512, 10, 5)] + [(512, 3, 2)] * 4"``) -> ``[(dim, kernel, stride)]``.

    Evaluated as a tiny expression language (lists, tuples, ints, ``+``, ``*``), never with ``eval``.
    """

    def value(node: ast.AST) -> Any:
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [value(e) for e in node.elts]
            return items if isinstance(node, ast.List) else tuple(items)
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)):
            left, right = value(node.left), value(node.right)
            return left + right if isinstance(node.op, ast.Add) else left * right
        raise ValueError(f"unsupported element {ast.dump(node)}")

    layers = value(ast.parse(spec, mode="eval").body) if isinstance(spec, str) else spec
    if not isinstance(layers, list) or not layers or any(len(layer) != 3 for layer in layers):
        raise ValueError(f"not a list of (dim, kernel, stride): {spec!r}")
    return [tuple(int(v) for v in layer) for layer in layers]  # type: ignore[misc]


@dataclasses.dataclass(frozen=True)
class AudioConfig:
    """The fields of ``modalities.audio`` the network uses (fairseq's defaults)."""

    feature_encoder_spec: str = "[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512,2,2)] + [(512,2,2)]"
    extractor_mode: str = "layer_norm"
    conv_pos_width: int = 95
    conv_pos_groups: int = 16
    conv_pos_depth: int = 5
    conv_pos_pre_ln: bool = False
    prenet_depth: int = 4
    num_extra_tokens: int = 0
    use_alibi_encoder: bool = False
    alibi_scale: float = 1.0
    learned_alibi: bool = False
    learned_alibi_scale_per_head: bool = False
    learned_alibi_scale_per_layer: bool = False
    num_alibi_heads: int = 0  # 0: the model's num_heads (the official ${model.num_heads})
    model_depth: int = 0  # 0: the model's depth (${model.depth})

    @classmethod
    def from_model_cfg(cls, model: Mapping[str, Any], source: str) -> "AudioConfig":
        """Read ``model.modalities.audio`` (interpolations resolved against ``model``); refuse unsupported variants."""
        audio = cfg_section(model, "modalities", "audio", source=source)
        defaults, root = cls(), {"model": model}
        config = cls(**{f.name: coerce(cfg_value(audio, f.name, getattr(defaults, f.name), root), getattr(defaults, f.name)) for f in dataclasses.fields(cls)})
        config = dataclasses.replace(
            config,
            num_alibi_heads=config.num_alibi_heads or int(cfg_value(model, "num_heads", 12, root)),
            model_depth=config.model_depth or int(cfg_value(model, "depth", 12, root)),
        )
        if config.extractor_mode != "layer_norm":
            raise CheckpointError(f"{source}: extractor_mode={config.extractor_mode!r} is not supported (emotion2vec uses 'layer_norm')")
        if config.learned_alibi:
            raise CheckpointError(f"{source}: learned_alibi=true (a learned bias table) is not supported")
        try:
            parse_conv_spec(config.feature_encoder_spec)
        except (ValueError, SyntaxError) as err:
            raise CheckpointError(f"{source}: bad feature_encoder_spec: {err}") from None
        return config

    @property
    def conv_layers(self) -> list[tuple[int, int, int]]:
        """``(dim, kernel, stride)`` of each conv of the feature extractor."""
        return parse_conv_spec(self.feature_encoder_spec)


def _e2v_cfg(dim: int, depth: int, heads: int, prenet: int, extra: int, conv: int, pos_width: int, pos_groups: int, pos_depth: int) -> dict[str, Any]:
    """A ``cfg.model`` section in the official layout (as emotion2vec's checkpoints hold it)."""
    audio = {
        "type": "AUDIO",
        "prenet_depth": prenet,
        "num_extra_tokens": extra,
        "use_alibi_encoder": True,
        "alibi_scale": 1.0,
        "learned_alibi": False,
        "learned_alibi_scale": True,
        "learned_alibi_scale_per_head": True,
        "learned_alibi_scale_per_layer": False,
        "num_alibi_heads": "${model.num_heads}",
        "model_depth": "${model.depth}",
        "extractor_mode": "layer_norm",
        "feature_encoder_spec": f"[({conv}, 10, 5)] + [({conv}, 3, 2)] * 4 + [({conv},2,2)] + [({conv},2,2)]",
        "conv_pos_width": pos_width,
        "conv_pos_groups": pos_groups,
        "conv_pos_depth": pos_depth,
        "conv_pos_pre_ln": False,
    }
    return {
        "_name": "data2vec_multi",
        "embed_dim": dim,
        "depth": depth,
        "num_heads": heads,
        "mlp_ratio": 4.0,
        "norm_eps": 1e-5,
        "norm_affine": True,
        "layer_norm_first": False,
        "supported_modality": "AUDIO",
        "modalities": {"audio": audio},
    }


EMOTION2VEC_PRESETS: dict[str, dict[str, Any]] = {
    "test": _e2v_cfg(32, 2, 4, prenet=1, extra=2, conv=32, pos_width=10, pos_groups=4, pos_depth=2),
    "base": _e2v_cfg(768, 8, 12, prenet=4, extra=10, conv=512, pos_width=95, pos_groups=16, pos_depth=5),  # emotion2vec_base / plus_base
}


# ---------------------------------------------------------------------------------------------
# The AUDIO modality encoder (official child names, so state_dict keys match)
# ---------------------------------------------------------------------------------------------


class TransposeLast(nn.Module):
    """Swap the last two dimensions (fairseq's ``TransposeLast``)."""

    def forward(self, x: Tensor) -> Tensor:
        """``[..., a, b]`` -> ``[..., b, a]``."""
        return x.transpose(-2, -1)


class ConvFeatureExtractor(nn.Module):
    """``local_encoder``: wav2vec2's conv stack in layer-norm mode (conv, LayerNorm over channels, GELU)."""

    def __init__(self, layers: Sequence[tuple[int, int, int]]) -> None:
        super().__init__()
        blocks, dim_in = [], 1
        for dim, kernel, stride in layers:
            norm = nn.Sequential(TransposeLast(), nn.LayerNorm(dim), TransposeLast())
            blocks.append(nn.Sequential(nn.Conv1d(dim_in, dim, kernel, stride=stride, bias=False), nn.Identity(), norm, nn.GELU()))
            dim_in = dim
        self.conv_layers = nn.ModuleList(blocks)

    def forward(self, audio: Tensor) -> Tensor:
        """``[b, t]`` -> ``[b, channels, frames]``."""
        x = audio[:, None]
        for block in self.conv_layers:
            x = block(x)
        return x


class PositionalConv(nn.Module):
    """``relative_positional_encoder``: ``depth`` x (grouped "same" conv, LayerNorm without affine, GELU).

    Children are named ``1`` … ``depth`` (the official ``nn.Sequential`` has transposes at 0 and
    ``depth + 1``), each holding its conv at ``0``.
    """

    def __init__(self, dim: int, depth: int, width: int, groups: int) -> None:
        super().__init__()
        self.kernel = max(3, width // depth)
        for i in range(depth):
            self.add_module(str(i + 1), nn.Sequential(nn.Conv1d(dim, dim, self.kernel, padding=self.kernel // 2, groups=groups)))
        self.depth = depth

    def forward(self, x: Tensor, keep: Tensor | None) -> Tensor:
        """``x [b, n, d]``, ``keep [b, n, 1]`` (1 on valid frames; None = all) -> position features ``[b, n, d]``."""
        n = x.shape[1]
        for i in range(self.depth):
            if keep is not None:
                x = x * keep  # padding must not leak into the clip through the conv
            conv = self._modules[str(i + 1)][0]  # type: ignore[index]
            x = conv(x.transpose(1, 2))[..., :n].transpose(1, 2)  # an even kernel gives one frame too many
            x = F.gelu(F.layer_norm(x, x.shape[-1:]))
        return x


class PreNormPositionalConv(nn.Module):
    """``conv_pos_pre_ln`` variant: a LayerNorm (child ``0``) before the conv stack (child ``1``)."""

    def __init__(self, dim: int, stack: PositionalConv) -> None:
        super().__init__()
        self.add_module("0", nn.LayerNorm(dim))
        self.add_module("1", stack)

    def forward(self, x: Tensor, keep: Tensor | None) -> Tensor:
        """As :meth:`PositionalConv.forward`, after the LayerNorm."""
        return self._modules["1"](self._modules["0"](x), keep)  # type: ignore[misc]


def alibi_slopes(heads: int) -> list[float]:
    """ALiBi's per-head slopes (the geometric series; non-powers of two interleave the next power's)."""

    def power_of_two(n: int) -> list[float]:
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start**i for i in range(n)]

    if math.log2(heads).is_integer():
        return power_of_two(heads)
    closest = 2 ** math.floor(math.log2(heads))
    return power_of_two(closest) + alibi_slopes(2 * closest)[0::2][: heads - closest]


class AudioModalityEncoder(nn.Module):
    """``modality_encoders.AUDIO``: conv features, projection, conv positions, extra tokens, ALiBi, prenet."""

    def __init__(self, audio: AudioConfig, config: TransformerConfig) -> None:
        super().__init__()
        layers = audio.conv_layers
        dim, channels = config.embed_dim, layers[-1][0]
        self.conv_spec = layers
        self.local_encoder = ConvFeatureExtractor(layers)
        self.project_features = nn.Sequential(TransposeLast(), nn.LayerNorm(channels), nn.Linear(channels, dim))
        stack = PositionalConv(dim, audio.conv_pos_depth, audio.conv_pos_width, audio.conv_pos_groups)
        self.relative_positional_encoder = PreNormPositionalConv(dim, stack) if audio.conv_pos_pre_ln else stack
        self.context_encoder = ContextEncoder(config, audio.prenet_depth)
        self.shared_depth = config.depth
        self.extra_tokens = nn.Parameter(torch.zeros(1, audio.num_extra_tokens, dim)) if audio.num_extra_tokens else None
        self.alibi_scale: nn.Parameter | None = None
        self.heads = audio.num_alibi_heads
        if audio.use_alibi_encoder:
            layers_scaled = audio.prenet_depth + audio.model_depth if audio.learned_alibi_scale_per_layer else 1
            heads_scaled = audio.num_alibi_heads if audio.learned_alibi_scale_per_head else 1
            self.alibi_scale = nn.Parameter(torch.full((layers_scaled, 1, heads_scaled, 1, 1), float(audio.alibi_scale)))
        self.register_buffer("slopes", torch.tensor(alibi_slopes(self.heads), dtype=torch.float32), persistent=False)

    @property
    def num_extra(self) -> int:
        """Extra tokens put in front of the frames."""
        return 0 if self.extra_tokens is None else self.extra_tokens.shape[1]

    def output_lengths(self, samples: Tensor) -> Tensor:
        """Samples ``[b]`` -> frames ``[b]`` of the conv stack (no padding in its convs)."""
        frames = samples.to(torch.long)
        for _, kernel, stride in self.conv_spec:
            frames = torch.div(frames - kernel, stride, rounding_mode="floor") + 1
        return frames.clamp(min=0)

    def forward(self, audio: Tensor, frames: Tensor) -> tuple[Tensor, Iterable[Tensor | None]]:
        """Normalised ``audio [b, t]`` (0 past each clip), valid ``frames [b]``.

        Returns the context encoder's output ``[b, extra + n, d]`` and one attention mask per shared block.
        """
        x = self.project_features(self.local_encoder(audio))
        n = x.shape[1]
        valid = frame_mask(frames, n)
        padded = not bool(valid.all())
        x = x + self.relative_positional_encoder(x, valid[..., None].to(x.dtype) if padded else None)
        if self.extra_tokens is not None:
            x = torch.cat([self.extra_tokens.expand(x.shape[0], -1, -1).to(x.dtype), x], dim=1)
            valid = F.pad(valid, (self.num_extra, 0), value=True)
        keys = valid if padded else None
        prenet = len(self.context_encoder.blocks)
        if self.alibi_scale is None:
            mask = attention_mask(keys, None, x.dtype)
            return self.context_encoder(x, [mask] * prenet), [mask] * self.shared_depth
        bias = self._alibi(n)[None]  # [1, h, N, N]
        scales = self.alibi_scale.clamp(min=0).float()[:, 0]  # [layers | 1, heads | 1, 1, 1]
        if scales.shape[0] == 1:  # one scale for every layer (all released models)
            mask = attention_mask(keys, bias * scales[0], x.dtype)
            return self.context_encoder(x, [mask] * prenet), [mask] * self.shared_depth
        # One scale per layer (no released model): masks made lazily, one layer at a time.
        x = self.context_encoder(x, (attention_mask(keys, bias * s, x.dtype) for s in scales[:prenet]))
        return x, (attention_mask(keys, bias * s, x.dtype) for s in scales[prenet:])

    def _alibi(self, n: int) -> Tensor:
        """The unscaled ALiBi bias ``[heads, N, N]`` for ``n`` frames, zero rows/columns for the extra tokens."""
        pos = torch.arange(n, device=self.slopes.device)
        distance = -(pos[None, :] - pos[:, None]).abs().float()
        bias = self.slopes[:, None, None] * distance[None]
        return F.pad(bias, (self.num_extra, 0, self.num_extra, 0))


def build_emotion2vec_model(model_cfg: Mapping[str, Any], source: str) -> Data2VecModel:
    """The emotion2vec network for a ``cfg.model`` / ``model_conf`` section (random weights)."""
    config = TransformerConfig.from_model_cfg(model_cfg, source)
    return Data2VecModel("AUDIO", AudioModalityEncoder(AudioConfig.from_model_cfg(model_cfg, source), config), config)


# ---------------------------------------------------------------------------------------------
# Reading the two checkpoint layouts
# ---------------------------------------------------------------------------------------------


def read_emotion2vec_checkpoint(path: str | Path) -> tuple[dict[str, Any], bool, dict[str, Tensor]]:
    """``(model_cfg, normalize, state)`` of a fairseq ``.pt`` or a FunASR directory; ignored keys removed."""
    path = Path(path)
    source = str(path)
    if path.is_dir():
        model_cfg, state = read_funasr_dir(path, FORMAT)
        normalize = coerce(model_cfg.get("normalize", True), True)
    else:
        cfg, state = read_fairseq_checkpoint(path)
        model_cfg = cfg_section(cfg, "model", source=source)
        task = cfg.get("task") if isinstance(cfg.get("task"), Mapping) else {}
        normalize = coerce(cfg_value(task, "normalize", model_cfg.get("normalize", True)), True)
    state = drop_ignored(state, IGNORED, source)
    scale = state.get(_ALIBI_SCALE)
    if scale is not None and scale.dim() == 4:  # older data2vec 2.0 layout, upgraded as fairseq does on load
        state[_ALIBI_SCALE] = scale[None]
    return model_cfg, normalize, state


_ALIBI_SCALE = "modality_encoders.AUDIO.alibi_scale"


# ---------------------------------------------------------------------------------------------
# The encoder
# ---------------------------------------------------------------------------------------------


@ENCODERS.register("emotion2vec")
class Emotion2vecEncoder(AudioEncoder):
    """emotion2vec: ``[b, t]`` 16 kHz -> ``[b, t_e, d]`` at 50 frames/s.

    Args:
        model: the data2vec 2.0 network (``self.model``; official parameter names).
        normalize: normalise each clip's waveform (the checkpoint's ``normalize``).
        layer: hidden state to return (see the module docs); None = last.
        layer_sum: learn a weighted sum of all hidden states instead.
    """

    presets: ClassVar[tuple[str, ...]] = tuple(EMOTION2VEC_PRESETS)
    card = EncoderCard(
        preset="base",
        formats="official emotion2vec fairseq `.pt`, or a FunASR directory (`config.yaml` + `model.pt`)",
        use="speech emotion recognition / captioning",
        lora="qkv",
    )

    def __init__(self, model: Data2VecModel, normalize: bool = True, layer: int | None = None, layer_sum: bool = False) -> None:
        super().__init__()
        self.model = model
        self.normalize = normalize
        encoder: AudioModalityEncoder = model.encoder  # type: ignore[assignment]
        stride = math.prod(s for _, _, s in encoder.conv_spec)
        self.hidden_size = model.config.embed_dim
        self.frame_rate = self.sample_rate / stride
        self.min_samples = samples_for_frames(encoder.conv_spec, 1)  # the receptive field of one frame
        self.selector = LayerSelector(layer, model.config.depth, weighted=layer_sum)

    @classmethod
    def from_config(cls, cfg: EncoderConfig) -> "Emotion2vecEncoder":
        """Pretrained from ``cfg.path`` (a fairseq ``.pt`` or FunASR directory) or random from ``cfg.preset``."""
        if cfg.path:
            model_cfg, normalize, state = read_emotion2vec_checkpoint(cfg.path)
            model = build_emotion2vec_model(model_cfg, str(cfg.path))
            load_state_strict(model, state, str(cfg.path), FORMAT)
        else:
            if cfg.preset not in EMOTION2VEC_PRESETS:
                raise ValueError(f"unknown emotion2vec preset {cfg.preset!r}; choose one of {', '.join(EMOTION2VEC_PRESETS)}")
            model, normalize = build_emotion2vec_model(EMOTION2VEC_PRESETS[cfg.preset], f"emotion2vec preset {cfg.preset!r}"), True
        return cls(model, normalize=normalize, layer=cfg.layer, layer_sum=cfg.layer_sum)

    def transformer_layers(self) -> nn.ModuleList:
        """The shared transformer ``blocks``, bottom to top (the prenet blocks are not included)."""
        return self.model.blocks

    def length_rule(self) -> LengthRule:
        """Samples -> frames after the conv feature extractor (no padding in its convs)."""
        spec = self.model.encoder.conv_spec  # type: ignore[union-attr]
        return functools.partial(conv_output_frames, kernels=tuple(k for _, k, _ in spec), strides=tuple(s for _, _, s in spec))

    def forward(self, audio: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """``audio [b, t]`` float 16 kHz, ``lengths [b]`` samples -> ``feats [b, t_e, d]``, ``frames [b]``.

        ``t_e = max(frames)``; frames past a clip's count are 0.
        """
        lengths = check_audio_batch(audio, lengths, self.min_samples, f"emotion2vec needs clips of at least {self.min_samples} samples (one conv frame)")
        frames = self.output_lengths(lengths)
        valid = frame_mask(lengths, audio.shape[1])
        audio = audio.float().masked_fill(~valid, 0.0)
        if self.normalize:
            audio = normalize_clip(audio, lengths)
        audio = audio[:, : samples_for_frames(self.model.encoder.conv_spec, int(frames.max()))]  # type: ignore[arg-type]
        x, masks = self.model.encoder(audio.to(next(self.model.parameters()).dtype), frames)
        x = self.model.run_blocks(x, masks, self.selector)
        x = x[:, self.model.encoder.num_extra :]  # type: ignore[operator]
        return x.masked_fill(~frame_mask(frames, x.shape[1])[..., None], 0.0), frames


def samples_for_frames(spec: Sequence[tuple[int, int, int]], frames: int) -> int:
    """The fewest samples the conv stack ``spec`` turns into ``frames`` frames."""
    for _, kernel, stride in reversed(spec):
        frames = (frames - 1) * stride + kernel
    return frames


def normalize_clip(audio: Tensor, lengths: Tensor, eps: float = 1e-5) -> Tensor:
    """``F.layer_norm`` of each clip over its valid samples (population variance, ``eps``); padding stays 0.

    ``audio [b, t]`` with zeros past ``lengths [b]`` -> ``[b, t]``.
    """
    valid = frame_mask(lengths, audio.shape[1])
    n = lengths.to(audio.dtype)[:, None]
    mean = audio.sum(dim=1, keepdim=True) / n
    var = ((audio - mean).masked_fill(~valid, 0.0) ** 2).sum(dim=1, keepdim=True) / n
    return ((audio - mean) * torch.rsqrt(var + eps)).masked_fill(~valid, 0.0)
