"""EAT, the Efficient Audio Transformer (cwx-worst-one/EAT), registered as ``eat``.

EAT is data2vec 2.0's IMAGE modality pre-trained on AudioSet log-mel spectrograms
(:mod:`slamkit.models.encoders.data2vec2.blocks` holds the shared parts).

**Checkpoint.** The released fairseq ``.pt`` files, read without fairseq
(:func:`~slamkit.models.encoders.data2vec2.fairseq.read_fairseq_checkpoint`): pre-trained ones
(``EAT-base_epoch30_pretrain.pt`` …: ``cfg.model`` is a ``data2vec_multi`` config with
``modalities.image``) and fine-tuned ones (``…_finetune_AS2M.pt``: ``cfg.model`` is a
``mae_image_classification`` config whose ``pretrained_model_args.model`` describes the network,
and the weights carry a ``model.`` prefix). Keys are the official ones:
``modality_encoders.IMAGE.{local_encoder.proj, fixed_positional_encoder.positions, extra_tokens,
context_encoder.norm}`` and ``blocks.N.{norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2}``.
Ignored explicitly (pre-training or classification only): ``_ema``, ``modality_encoders.IMAGE.decoder.*``,
``shared_decoder.*``, ``recon_proj.*``, ``cls_proj.*``, ``center``, ``fc_norm.*``, ``head.*``.
Anything else missing or unexpected raises :class:`~slamkit.models.weights.CheckpointError`.

**Front end.** As EAT's feature extraction: the clip's mean is removed, then a Kaldi fbank
(:func:`slamkit.models.encoders.fbank.kaldi_fbank`: 128 bins, 25 ms hanning windows every 10 ms, no
dither, float waveform, not scaled by 2**15), normalised as ``(fbank + 4.268) / (2 * 4.569)``.

**Clip length.** The official extractor pads (with fbank zeros, before normalisation) or cuts
every clip to ``target_length`` = 1024 frames (10.24 s); its README and SLAM-LLM's
``EAT_preprocess`` (``fixed_length: false``) instead round the real length up to whole 16-frame
patches. We do the latter, per clip: a clip of ``n`` fbank frames gives ``ceil(n / 16)`` patch
rows, padded with the same fbank-zero value, and attends only to its own patches, so its output
equals running it alone (and, for a 1024-frame clip, the official 10.24 s result). The fixed
2-D sin-cos position table of the checkpoint is sliced to the rows used; longer clips get rows
computed by the same formula (a warning says the model was pre-trained on at most 10.24 s).

**Tokens and frame rate.** 16x16 patches: each 160 ms row gives 8 tokens (one per 16-bin band,
low to high), emitted time-major as the official order, i.e. ``8 * ceil(frames / 16)`` tokens,
nominally 50 per second. The CLS token (the ``extra_tokens``) is dropped: the output is the
frame-level features, aligned with time. (SLAM-LLM's AAC recipe keeps it as a first token.)
Clips need at least 400 samples (one fbank frame).

**Layers.** ``encoder.layer`` indexes hidden states of ``blocks``: 0 is the input of
``blocks[0]`` (patch embeddings + positions after the context encoder's LayerNorm), ``i`` the
output of block ``i``, ``null`` the last; ``layer_sum`` learns a weighted sum of all of them.
``transformer_layers()`` returns ``blocks`` (for ``unfreeze_top``).

**LoRA targets.** The attention is fused: ``qkv`` (query/key/value) and ``proj`` (output).
``proj`` also names the patch-embedding conv (``local_encoder.proj``, which peft adapts as a
Conv2d); list ``[qkv]`` to adapt the attention inputs only.
"""

from __future__ import annotations

import functools
import dataclasses
import logging
from pathlib import Path
from typing import Any, ClassVar, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from slamkit.config import EncoderConfig
from slamkit.models.lengths import LengthRule
from slamkit.models.encoders.fbank import kaldi_fbank, kaldi_fbank_frames
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
    strip_prefix,
)
from slamkit.models.encoders.data2vec2.fairseq import FAIRSEQ_FORMAT, read_fairseq_checkpoint
from slamkit.models.encoders.base import EncoderCard, ENCODERS, AudioEncoder, check_audio_batch, LayerSelector, frame_mask

log = logging.getLogger(__name__)

FORMAT = f"EAT {FAIRSEQ_FORMAT}"
FBANK_MEAN = -4.268
FBANK_STD = 4.569
NUM_MEL_BINS = 128  # EAT's image width is fixed at 128 mel bins
MIN_SAMPLES = 400  # one 25 ms fbank frame
IGNORED = (
    r"_ema(\..*)?",
    r"modality_encoders\.IMAGE\.decoder\..*",
    r"shared_decoder\..*",
    r"recon_proj\..*",
    r"cls_proj\..*",
    r"center",
    r"fc_norm\..*",
    r"head\..*",
)


@dataclasses.dataclass(frozen=True)
class ImageConfig:
    """The fields of ``modalities.image`` EAT uses (official defaults for AudioSet EAT)."""

    in_chans: int = 1
    patch_size: int = 16
    embed_dim: int = 768
    target_length: int = 1024
    num_extra_tokens: int = 1
    prenet_depth: int = 0
    fixed_positions: bool = True
    use_alibi_encoder: bool = False

    @classmethod
    def from_model_cfg(cls, model: Mapping[str, Any], source: str) -> "ImageConfig":
        """Read ``model.modalities.image``; refuse variants no released EAT uses."""
        image = cfg_section(model, "modalities", "image", source=source)
        defaults = cls()
        config = cls(**{f.name: coerce(cfg_value(image, f.name, getattr(defaults, f.name)), getattr(defaults, f.name)) for f in dataclasses.fields(cls)})
        model_dim = coerce(cfg_value(model, "embed_dim", config.embed_dim), 0)
        if config.embed_dim != model_dim:
            raise CheckpointError(f"{source}: image embed_dim {config.embed_dim} != model embed_dim {model_dim} (an extra projection; not supported)")
        if config.in_chans != 1:
            raise CheckpointError(f"{source}: an image model with in_chans={config.in_chans}, not an audio (1-channel spectrogram) EAT")
        if config.use_alibi_encoder:
            raise CheckpointError(f"{source}: use_alibi_encoder=true (2-D ALiBi) is not supported for EAT")
        if NUM_MEL_BINS % config.patch_size or config.target_length % config.patch_size:
            raise CheckpointError(f"{source}: patch_size {config.patch_size} does not divide 128 mel bins and target_length {config.target_length}")
        return config


def _eat_cfg(dim: int, depth: int, heads: int, mlp_ratio: float = 4.0) -> dict[str, Any]:
    """A ``cfg.model`` section in the official layout (what the released checkpoints hold)."""
    image = {"in_chans": 1, "patch_size": 16, "embed_dim": dim, "target_length": 1024, "num_extra_tokens": 1, "prenet_depth": 0, "fixed_positions": True, "use_alibi_encoder": False}
    return {
        "_name": "data2vec_multi",
        "embed_dim": dim,
        "depth": depth,
        "num_heads": heads,
        "mlp_ratio": mlp_ratio,
        "norm_eps": 1e-6,
        "norm_affine": True,
        "layer_norm_first": False,
        "supported_modality": "IMAGE",
        "modalities": {"image": image},
    }


EAT_PRESETS: dict[str, dict[str, Any]] = {
    "test": _eat_cfg(32, 2, 2, mlp_ratio=2.0),
    "base": _eat_cfg(768, 12, 12),  # EAT-base
    "large": _eat_cfg(1024, 24, 16),  # EAT-large
}


def sincos_positions(dim: int, rows: int, cols: int) -> Tensor:
    """EAT's fixed 2-D sin-cos table ``[rows * cols, dim]`` (token ``r * cols + c``), float32.

    The first half of the channels encodes the column (frequency band), the second the row
    (time step), each as ``[sin(p * w), cos(p * w)]`` with ``w_i = 10000 ** (-i / (dim / 4))``.
    """
    if dim % 4:
        raise ValueError(f"the 2-D sin-cos table needs dim divisible by 4, got {dim}")
    quarter = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)

    def encode(pos: Tensor) -> Tensor:
        angle = pos.double()[:, None] * omega[None, :]
        return torch.cat([angle.sin(), angle.cos()], dim=1)

    row = torch.arange(rows).repeat_interleave(cols)
    col = torch.arange(cols).repeat(rows)
    return torch.cat([encode(col), encode(row)], dim=1).float()


class PatchEmbed(nn.Module):
    """timm's ``PatchEmbed``: a ``patch x patch`` conv with stride ``patch`` (``proj``), flattened time-major."""

    def __init__(self, patch: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(1, dim, kernel_size=patch, stride=patch)

    def forward(self, image: Tensor) -> Tensor:
        """``[b, 1, T, 128]`` -> ``[b, (T / patch) * (128 / patch), dim]``."""
        return self.proj(image).flatten(2).transpose(1, 2)


class FixedPositions(nn.Module):
    """``fixed_positional_encoder``: the checkpoint's sin-cos table ``positions [1, rows * cols, dim]``."""

    def __init__(self, dim: int, rows: int, cols: int) -> None:
        super().__init__()
        self.cols = cols
        self.register_buffer("positions", sincos_positions(dim, rows, cols)[None])
        self._warned = False

    def forward(self, rows: int) -> Tensor:
        """The table for ``rows`` patch rows ``[1, rows * cols, dim]``: sliced, or extended by the formula."""
        stored = self.positions
        need = rows * self.cols
        if need <= stored.shape[1]:
            return stored[:, :need]
        if not self._warned:
            log.warning("EAT input of %d patch rows exceeds the %d it was pre-trained on (10.24 s); extending the sin-cos positions", rows, stored.shape[1] // self.cols)
            self._warned = True
        extra = sincos_positions(stored.shape[-1], rows, self.cols)[None, stored.shape[1] :]
        return torch.cat([stored, extra.to(stored)], dim=1)


class ImageEncoder(nn.Module):
    """``modality_encoders.IMAGE``: patch embedding, fixed positions, CLS token, context encoder."""

    def __init__(self, image: ImageConfig, config: TransformerConfig) -> None:
        super().__init__()
        self.patch = image.patch_size
        self.cols = NUM_MEL_BINS // image.patch_size
        self.local_encoder = PatchEmbed(image.patch_size, config.embed_dim)
        rows = image.target_length // image.patch_size
        self.fixed_positional_encoder = FixedPositions(config.embed_dim, rows, self.cols) if image.fixed_positions else None
        self.context_encoder = ContextEncoder(config, image.prenet_depth)
        self.extra_tokens = nn.Parameter(0.02 * torch.randn(1, image.num_extra_tokens, config.embed_dim)) if image.num_extra_tokens else None

    @property
    def num_extra(self) -> int:
        """Extra (CLS) tokens put in front of the patches."""
        return 0 if self.extra_tokens is None else self.extra_tokens.shape[1]

    def forward(self, image: Tensor, tokens: Tensor) -> tuple[Tensor, Tensor | None]:
        """Normalised ``image [b, 1, T, 128]`` (``T`` a multiple of the patch), valid ``tokens [b]``.

        Returns the context encoder's output ``[b, extra + n, d]`` and the attention mask used.
        """
        x = self.local_encoder(image)
        if self.fixed_positional_encoder is not None:
            x = x + self.fixed_positional_encoder(image.shape[2] // self.patch).to(x.dtype)
        valid = frame_mask(tokens, x.shape[1])
        if self.extra_tokens is not None:
            x = torch.cat([self.extra_tokens.expand(x.shape[0], -1, -1).to(x.dtype), x], dim=1)
            valid = F.pad(valid, (self.num_extra, 0), value=True)
        mask = attention_mask(None if bool(valid.all()) else valid, None, x.dtype)
        return self.context_encoder(x, [mask] * len(self.context_encoder.blocks)), mask


def build_eat_model(model_cfg: Mapping[str, Any], source: str) -> Data2VecModel:
    """The EAT network for a ``cfg.model`` section (random weights; positions from the formula)."""
    config = TransformerConfig.from_model_cfg(model_cfg, source)
    image = ImageConfig.from_model_cfg(model_cfg, source)
    return Data2VecModel("IMAGE", ImageEncoder(image, config), config)


def read_eat_checkpoint(path: str | Path) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """The network's ``cfg.model`` section and its float32 state (ignored keys removed) from an EAT ``.pt``.

    Fine-tuned checkpoints are unwrapped: the config of their ``pretrained_model_args``, the
    weights without their ``model.`` prefix (the classifier is then among the ignored keys).
    """
    source = str(path)
    cfg, state = read_fairseq_checkpoint(path)
    model_cfg = cfg_section(cfg, "model", source=source)
    if model_cfg.get("_name") == "mae_image_classification":
        model_cfg = cfg_section(model_cfg, "pretrained_model_args", "model", source=source)
        state = strip_prefix(state, "model.")
    return model_cfg, drop_ignored(state, IGNORED, source)


@ENCODERS.register("eat")
class EATEncoder(AudioEncoder):
    """EAT + its fbank front end: ``[b, t]`` 16 kHz -> ``[b, t_e, d]``, 8 tokens per 160 ms.

    Args:
        model: the data2vec 2.0 network (``self.model``; official parameter names).
        layer: hidden state to return (see the module docs); None = last.
        layer_sum: learn a weighted sum of all hidden states instead.
    """

    presets: ClassVar[tuple[str, ...]] = tuple(EAT_PRESETS)
    card = EncoderCard(
        preset="base",
        formats="official EAT fairseq `.pt` (pre-trained or fine-tuned), read without fairseq",
        use="audio captioning (SLAM-AAC)",
        lora="qkv",
    )

    def __init__(self, model: Data2VecModel, layer: int | None = None, layer_sum: bool = False) -> None:
        super().__init__()
        self.model = model
        encoder: ImageEncoder = model.encoder  # type: ignore[assignment]
        self.patch = encoder.patch
        self.tokens_per_row = encoder.cols
        self.hidden_size = model.config.embed_dim
        self.frame_rate = 100.0 / self.patch * self.tokens_per_row  # fbank frames come at 100 per second
        self.selector = LayerSelector(layer, model.config.depth, weighted=layer_sum)

    @classmethod
    def from_config(cls, cfg: EncoderConfig) -> "EATEncoder":
        """Pretrained from ``cfg.path`` (an official EAT ``.pt``) or random from ``cfg.preset``."""
        if cfg.path:
            model_cfg, state = read_eat_checkpoint(cfg.path)
            model = build_eat_model(model_cfg, str(cfg.path))
            load_state_strict(model, state, str(cfg.path), FORMAT)
        else:
            if cfg.preset not in EAT_PRESETS:
                raise ValueError(f"unknown eat preset {cfg.preset!r}; choose one of {', '.join(EAT_PRESETS)}")
            model = build_eat_model(EAT_PRESETS[cfg.preset], f"eat preset {cfg.preset!r}")
        return cls(model, layer=cfg.layer, layer_sum=cfg.layer_sum)

    def transformer_layers(self) -> nn.ModuleList:
        """The shared transformer ``blocks``, bottom to top."""
        return self.model.blocks

    def length_rule(self) -> LengthRule:
        """Samples -> tokens: 8 per 16-frame patch row, the last row padded."""
        return functools.partial(eat_tokens, patch=self.patch, per_row=self.tokens_per_row)

    def forward(self, audio: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """``audio [b, t]`` float 16 kHz, ``lengths [b]`` samples -> ``feats [b, t_e, d]``, ``tokens [b]``.

        ``t_e = max(tokens)``; tokens past a clip's count are 0.
        """
        lengths = check_audio_batch(audio, lengths, MIN_SAMPLES, f"EAT needs clips of at least {MIN_SAMPLES} samples (one 25 ms fbank frame)")
        with torch.autocast(device_type=audio.device.type, enabled=False):
            valid = frame_mask(lengths, audio.shape[1])
            audio = audio.float().masked_fill(~valid, 0.0)
            mean = audio.sum(dim=1, keepdim=True) / lengths[:, None]
            audio = (audio - mean).masked_fill(~valid, 0.0)  # the official extractor removes the clip's mean
            fbank, fbank_frames = kaldi_fbank(audio, lengths, num_mel_bins=NUM_MEL_BINS, window="hanning")
        return self.encode_fbank(fbank, fbank_frames)

    def encode_fbank(self, fbank: Tensor, fbank_frames: Tensor) -> tuple[Tensor, Tensor]:
        """Raw log-mel ``fbank [b, T, 128]`` (0 past ``fbank_frames [b]``) -> ``feats [b, t_e, d]``, ``tokens [b]``."""
        rows = torch.div(fbank_frames + self.patch - 1, self.patch, rounding_mode="floor")
        tokens = rows * self.tokens_per_row
        pad = -fbank.shape[1] % self.patch
        # Padding with fbank zeros before normalising gives the official padding value.
        image = (F.pad(fbank.float(), (0, 0, 0, pad)) - FBANK_MEAN) / (2.0 * FBANK_STD)
        image = image[:, None].to(self.model.encoder.local_encoder.proj.weight.dtype)
        x, mask = self.model.encoder(image, tokens)
        x = self.model.run_blocks(x, [mask] * len(self.model.blocks), self.selector)
        x = x[:, self.model.encoder.num_extra :][:, : int(tokens.max())]
        return x.masked_fill(~frame_mask(tokens, x.shape[1])[..., None], 0.0), tokens


def eat_tokens(lengths: Tensor, patch: int, per_row: int) -> Tensor:
    """Samples ``[b]`` -> tokens ``[b]``: ``per_row`` per ``patch``-frame row of fbank frames, the last row padded."""
    rows = torch.div(kaldi_fbank_frames(lengths) + patch - 1, patch, rounding_mode="floor")
    return rows * per_row
