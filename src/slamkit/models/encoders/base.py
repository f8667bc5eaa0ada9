"""Audio encoders: the protocol every encoder follows, the registry, and ``build_encoder``.

An encoder maps a padded 16 kHz waveform batch to frame features and owns its length arithmetic:
``length_rule()`` is a pure rule (:mod:`slamkit.models.lengths`) giving exactly the number of valid
frames ``forward`` returns, so placeholder counts are computed without the model.

Registered encoders (``ENCODERS``; `slamkit list encoders` shows them all): ``hf_ssl`` (wav2vec2 /
HuBERT / WavLM / data2vec-audio), ``whisper``, ``beats``, ``ast``, ``clap``, ``mert``, ``eat`` and
``emotion2vec``, each in its own module or folder of :mod:`slamkit.models.encoders`.

Each wraps the Hugging Face module as ``self.model`` and keeps its module names (``q_proj``,
``v_proj`` …), which is what LoRA targets by name.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Sequence

import torch
from torch import Tensor, nn

from slamkit.assets import resolve_path
from slamkit.config import EncoderConfig
from slamkit.models.lengths import LengthRule
from slamkit.registry import Registry


@dataclasses.dataclass(frozen=True)
class EncoderCard:
    """What `slamkit list encoders` and the README say about a registered encoder.

    Attributes:
        preset: the official size whose sample rate, frame rate, width and parameter count are shown.
        formats: checkpoint formats ``path`` accepts.
        use: the tasks it is typically picked for.
        lora: module names `lora.encoder_target_modules` should list for its attention.
    """

    preset: str
    formats: str
    use: str
    lora: str = "q_proj, v_proj"


class AudioEncoder(nn.Module):
    """Waveform ``[b, t]`` -> features ``[b, t_e, d_e]``; subclasses set the three attributes.

    Attributes:
        sample_rate: input sample rate the encoder expects (Hz).
        hidden_size: feature size ``d_e``.
        frame_rate: output frames per second.
        max_seconds: the longest clip ``forward`` accepts (its fixed input window; longer clips
            raise ``ValueError``, never silently cut), or None when any length works. Long-form
            decoding segments audio to fit it (:mod:`slamkit.infer.longform`); training refuses a
            ``data.max_seconds`` above it. Only Whisper has one (30 s): AST, CLAP and EAT run
            long clips window by window or with extended positions, the others have no limit.
        presets: size presets accepted by ``from_config`` when ``cfg.path`` is null.
    """

    sample_rate: int = 16_000
    hidden_size: int
    frame_rate: float
    max_seconds: ClassVar[float | None] = None
    presets: ClassVar[tuple[str, ...]] = ()
    card: ClassVar[EncoderCard | None] = None

    def forward(self, audio: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """``audio [b, t]`` float32, ``lengths [b]`` samples -> ``feats [b, t_e, d_e]``, ``frames [b]``.

        Frames past a clip's length are padding (0) and never influence its valid frames.
        """
        raise NotImplementedError

    def length_rule(self) -> LengthRule:
        """This encoder's length arithmetic as a pure rule (:mod:`slamkit.models.lengths`):
        samples ``[b]`` -> valid output frames ``[b]``, built from plain numbers only."""
        raise NotImplementedError

    def output_lengths(self, lengths: Tensor) -> Tensor:
        """Valid output frames ``[b]`` for clips of ``lengths`` samples ``[b]`` (any device)."""
        return self.length_rule()(lengths.to(torch.long))

    @classmethod
    def from_config(cls, cfg: EncoderConfig) -> "AudioEncoder":
        """Build from ``cfg`` (pretrained from ``cfg.path`` or random from ``cfg.preset``)."""
        raise NotImplementedError

    @classmethod
    def preset_names(cls) -> list[str]:
        """Size presets this encoder accepts."""
        return list(cls.presets)

    def transformer_layers(self) -> nn.ModuleList:
        """The encoder's transformer blocks, bottom to top (``encoder.unfreeze_top`` unfreezes the last N)."""
        raise NotImplementedError(f"{type(self).__name__} does not expose its transformer layers")


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


def encoder_table() -> list[dict[str, object]]:
    """One row per registered encoder, measured on the meta device at its card's preset.

    Keys: name, preset, sample_rate, frame_rate, hidden_size, parameters, presets, formats, use, lora.
    """
    rows = []
    for name in ENCODERS.names():
        cls = ENCODERS.get(name)
        card = cls.card or EncoderCard(preset=cls.presets[0] if cls.presets else "", formats="", use="", lora="")
        with torch.device("meta"):
            enc = build_encoder(EncoderConfig(name=name, preset=card.preset))
        rows.append(dict(
            name=name, preset=card.preset, sample_rate=enc.sample_rate, frame_rate=float(enc.frame_rate),
            hidden_size=enc.hidden_size, parameters=sum(p.numel() for p in enc.parameters()),
            presets=", ".join(cls.preset_names()), formats=card.formats, use=card.use, lora=card.lora,
        ))
    return rows


def check_audio_batch(audio: Tensor, lengths: Tensor, min_samples: int, requirement: str) -> Tensor:
    """Validate ``audio [b, t]`` and ``lengths [b]``; returns ``lengths`` as long on ``audio``'s device.

    ``requirement`` completes "clips of at least N samples (…)" in the error for too-short clips.
    """
    if audio.dim() != 2 or lengths.shape != audio.shape[:1]:
        raise ValueError(f"expected audio [b, t] and lengths [b], got {tuple(audio.shape)} and {tuple(lengths.shape)}")
    lengths = lengths.to(device=audio.device, dtype=torch.long)
    if bool((lengths > audio.shape[1]).any()):
        raise ValueError(f"a length exceeds the padded audio ({audio.shape[1]} samples): {lengths.tolist()}")
    if bool((lengths < min_samples).any()):
        raise ValueError(f"{requirement}; lengths: {lengths.tolist()}")
    return lengths


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


def unfreeze_encoder_parts(encoder: AudioEncoder, top_layers: int) -> None:
    """After the trainability mode is applied: train learned layer weights and the top ``top_layers`` blocks.

    Layer-sum weights (:class:`LayerSelector`) always train; they are part of the encoder's output
    definition, not of the pretrained model.
    """
    for module in encoder.modules():
        if isinstance(module, LayerSelector) and module.weights is not None:
            module.weights.requires_grad_(True)
    if top_layers <= 0:
        return
    layers = encoder.transformer_layers()
    if top_layers > len(layers):
        raise ValueError(f"model.encoder.unfreeze_top={top_layers}, but the encoder has only {len(layers)} transformer layers")
    for layer in layers[len(layers) - top_layers :]:
        layer.requires_grad_(True)


class LayerSelector(nn.Module):
    """One hidden layer, or a learned softmax-weighted sum of all of them (SUPERB-style).

    Args:
        layer: hidden-state index as in :func:`select_layer` (ignored when ``weighted``).
        num_layers: transformer layers; ``hidden_states`` has ``num_layers + 1`` entries (0 = input
            of the first layer).
        weighted: learn one weight per hidden state (initialised equal; trains even when the rest
            of the encoder is frozen, which also turns the feature cache off).
    """

    def __init__(self, layer: int | None, num_layers: int, weighted: bool = False) -> None:
        super().__init__()
        self.num_layers = num_layers
        self.index = select_layer(layer, num_layers)
        self.weights = nn.Parameter(torch.zeros(num_layers + 1)) if weighted else None

    @property
    def needs_all(self) -> bool:
        """True when every hidden state is needed (weighted sum or a layer below the top)."""
        return self.weights is not None or self.index != self.num_layers

    def forward(self, hidden_states: Sequence[Tensor]) -> Tensor:
        """``num_layers + 1`` tensors ``[b, t, d]`` -> ``[b, t, d]``."""
        if len(hidden_states) != self.num_layers + 1:
            raise ValueError(f"expected {self.num_layers + 1} hidden states, got {len(hidden_states)}")
        if self.weights is None:
            return hidden_states[self.index]
        w = torch.softmax(self.weights.float(), dim=0).to(hidden_states[0].dtype)
        return sum(wi * h for wi, h in zip(w, hidden_states))  # type: ignore[return-value]
