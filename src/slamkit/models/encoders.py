"""Audio encoders: the protocol every encoder follows, the registry, and ``build_encoder``.

An encoder maps a padded 16 kHz waveform batch to frame features and owns its length arithmetic:
``output_lengths(samples)`` is exactly the number of valid frames ``forward`` returns, so the
collator can ask the model how many audio placeholders a clip needs without running it.

Registered encoders (``ENCODERS``):

- ``whisper`` (:mod:`slamkit.models.whisper_encoder`): Whisper's encoder with its log-mel front
  end, on the real clip length by default or padded to 30 s as the original.
- ``hf_ssl`` (:mod:`slamkit.models.ssl_encoder`): wav2vec2 / HuBERT / WavLM / data2vec-audio.

Each wraps the Hugging Face module as ``self.model`` and keeps its module names (``q_proj``,
``v_proj`` …), which is what LoRA targets by name.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
from torch import Tensor, nn

from slamkit.assets import resolve_path
from slamkit.config import EncoderConfig
from slamkit.registry import Registry


class AudioEncoder(nn.Module):
    """Waveform ``[b, t]`` -> features ``[b, t_e, d_e]``; subclasses set the three attributes.

    Attributes:
        sample_rate: input sample rate the encoder expects (Hz).
        hidden_size: feature size ``d_e``.
        frame_rate: output frames per second.
        presets: size presets accepted by ``from_config`` when ``cfg.path`` is null.
    """

    sample_rate: int = 16_000
    hidden_size: int
    frame_rate: float
    presets: ClassVar[tuple[str, ...]] = ()

    def forward(self, audio: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """``audio [b, t]`` float32, ``lengths [b]`` samples -> ``feats [b, t_e, d_e]``, ``frames [b]``.

        Frames past a clip's length are padding (0) and never influence its valid frames.
        """
        raise NotImplementedError

    def output_lengths(self, lengths: Tensor) -> Tensor:
        """Valid output frames ``[b]`` for clips of ``lengths`` samples ``[b]`` (any device)."""
        raise NotImplementedError

    @classmethod
    def from_config(cls, cfg: EncoderConfig) -> "AudioEncoder":
        """Build from ``cfg`` (pretrained from ``cfg.path`` or random from ``cfg.preset``)."""
        raise NotImplementedError

    @classmethod
    def preset_names(cls) -> list[str]:
        """Size presets this encoder accepts."""
        return list(cls.presets)


ENCODERS: Registry[type[AudioEncoder]] = Registry("encoder")


def build_encoder(cfg: EncoderConfig) -> AudioEncoder:
    """The registered encoder ``cfg.name`` built from ``cfg``.

    Random weights are drawn under a forked RNG seeded with ``cfg.init_seed``: the same config
    always gives the same encoder, and building one leaves the global RNG untouched. The encoder
    is returned in eval mode (as ``from_pretrained`` does); the training loop switches modes.
    """
    cls = ENCODERS.get(cfg.name)
    cfg = dataclasses.replace(cfg, path=resolve_path(cfg.path))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.init_seed)
        return cls.from_config(cfg).eval()


def preset_names(name: str) -> list[str]:
    """Size presets of the registered encoder ``name`` (e.g. ``["test", "tiny", …]``)."""
    return ENCODERS.get(name).preset_names()


def frame_mask(lengths: Tensor, total: int) -> Tensor:
    """``[b]`` valid counts -> ``[b, total]`` bool, True on valid positions."""
    return torch.arange(total, device=lengths.device)[None, :] < lengths[:, None]


def select_layer(layer: int | None, num_layers: int) -> int:
    """Hidden-state index for ``layer`` in Hugging Face's numbering (0 = embeddings, N = last).

    ``None`` is the last layer; negative counts from the top (-1 = last, -2 = the one below).
    """
    index = num_layers if layer is None else (layer + num_layers + 1 if layer < 0 else layer)
    if not 0 <= index <= num_layers:
        raise ValueError(f"encoder layer {layer} out of range for {num_layers} layers (use 0..{num_layers} or -1..-{num_layers + 1})")
    return index


# Importing the implementations registers them; they import this module for the base class.
from slamkit.models import ssl_encoder as _ssl_encoder  # noqa: E402,F401
from slamkit.models import whisper_encoder as _whisper_encoder  # noqa: E402,F401
