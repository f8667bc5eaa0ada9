"""Whisper's audio encoder (registered as ``whisper``), on the real clip length or padded to 30 s.

Hugging Face's ``WhisperEncoder.forward`` insists on 3000 mel frames, so a 2 s clip costs as much
as a 30 s one. In real-length mode (the default) we run its submodules ourselves on the batch's
longest clip: conv1 -> GELU -> conv2 (stride 2) -> GELU -> + positions[:T] -> layers -> final
LayerNorm. Masking at three points makes every clip's output identical to running it alone:
the log-mel is 0 past each clip, conv1's output is zeroed past each clip before conv2 (so conv2
sees the zero padding it would see alone), and every layer gets a key-padding mask.

``pad_to_30s`` runs the same modules on Whisper's padded 3000-frame input with no mask (exactly
HF's forward) and trims the output to the real frames.

A clip longer than 30 s is refused unless windowed mode is on (:meth:`WhisperAudioEncoder.set_windowed`,
what ``decode.segment=windowed`` selects): it then runs in consecutive 30 s windows whose frames
are concatenated (:mod:`slamkit.models.encoders.whisper.windows`).

Pretrained weights come from any checkpoint :func:`slamkit.models.encoders.whisper.formats.read_whisper_encoder`
reads: a Hugging Face directory (``WhisperForConditionalGeneration``, ``WhisperModel`` or an
encoder-only save; its reader lives here and is registered as the ``hf`` format), a
faster-whisper / CTranslate2 model, or an OpenAI ``.pt`` file. Only the encoder's tensors are read.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open
from torch import Tensor, nn
from transformers import WhisperConfig
from transformers.masking_utils import create_bidirectional_mask
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from slamkit.config import EncoderConfig
from slamkit.models.lengths import LengthRule
from slamkit.models.encoders.whisper.windows import join_windows, split_windows, windowed_frames
from slamkit.models.encoders.whisper.frontend import CHUNK_SAMPLES, HOP_LENGTH, SAMPLE_RATE, WhisperLogMel, mel_frame_count
from slamkit.models.encoders.whisper.ct2 import is_ctranslate2_model
from slamkit.models.encoders.whisper.formats import WhisperCheckpointFormat, read_whisper_encoder, register_format
from slamkit.models.weights import CheckpointError, hf_tensor_keys, hf_weight_files
from slamkit.models.encoders.base import EncoderCard, ENCODERS, AudioEncoder, frame_mask, select_layer

# name: (d_model, layers, heads, mel bins); the FFN is 4 * d_model except where noted.
WHISPER_PRESETS: dict[str, tuple[int, int, int, int]] = {
    "test": (64, 2, 4, 80),
    "tiny": (384, 4, 6, 80),
    "base": (512, 6, 8, 80),
    "small": (768, 12, 12, 80),
    "medium": (1024, 24, 16, 80),
    "large": (1280, 32, 20, 80),
    "large-v3": (1280, 32, 20, 128),
}
_FFN_OVERRIDE = {"test": 128}
# Random weights: the `test` preset is used frozen in the tiny recipe. With Whisper's 0.02 init
# its conv stem's output is ~30x smaller than the sinusoidal positions, so the frozen features
# say little about the audio; a larger init keeps them informative (random-feature encoder).
_INIT_STD_OVERRIDE = {"test": 0.2}


def whisper_preset_config(preset: str) -> WhisperConfig:
    """The ``WhisperConfig`` of a size preset (decoder kept minimal: only the encoder is built)."""
    if preset not in WHISPER_PRESETS:
        raise ValueError(f"unknown whisper preset {preset!r}; choose one of {', '.join(WHISPER_PRESETS)}")
    d_model, layers, heads, n_mels = WHISPER_PRESETS[preset]
    return WhisperConfig(
        d_model=d_model,
        encoder_layers=layers,
        encoder_attention_heads=heads,
        encoder_ffn_dim=_FFN_OVERRIDE.get(preset, 4 * d_model),
        num_mel_bins=n_mels,
        decoder_layers=1,
        decoder_attention_heads=heads,
        decoder_ffn_dim=4 * d_model,
        max_source_positions=1500,
        init_std=_INIT_STD_OVERRIDE.get(preset, 0.02),
    )


@ENCODERS.register("whisper")
class WhisperAudioEncoder(AudioEncoder):
    """Whisper encoder + its log-mel front end: ``[b, t]`` 16 kHz -> ``[b, t_e, d_model]`` at 50 frames/s.

    Args:
        model: the Hugging Face ``WhisperEncoder`` (kept as ``self.model``; LoRA finds its
            ``q_proj``/``v_proj`` by name).
        pad_to_30s: pad every clip to 30 s as original Whisper does.
        layer: hidden layer to return (HF numbering, negative from the top); None = last. The
            final LayerNorm applies only to the last layer, as in HF's ``hidden_states``.
    """

    presets = tuple(WHISPER_PRESETS)
    card = EncoderCard(
        preset="large-v3",
        formats="Hugging Face directory, faster-whisper / CTranslate2 `model.bin` (split parts joined), OpenAI `.pt`",
        use="ASR, contextual biasing (SLAM-ASR)",
    )
    frame_rate = 16_000 / (2 * HOP_LENGTH)
    max_seconds = CHUNK_SAMPLES / SAMPLE_RATE  # 30 s: 1500 position embeddings (one pass; see set_windowed)
    windows_per_pass = 16  # windowed mode: at most this many 30 s windows go through the layers at once

    def __init__(self, model: WhisperEncoder, pad_to_30s: bool = False, layer: int | None = None) -> None:
        super().__init__()
        self.model = model
        self.frontend = WhisperLogMel(model.config.num_mel_bins, pad_to_30s=pad_to_30s)
        self.pad_to_30s = pad_to_30s
        self.hidden_size = model.config.d_model
        self.layer_index = select_layer(layer, len(model.layers))
        self.windowed = False

    def set_windowed(self, on: bool) -> None:
        """Windowed mode on or off: clips longer than :attr:`max_seconds` run in consecutive 30 s
        windows (no overlap) whose frames are concatenated, instead of being refused. Clips up to
        30 s give the same features either way. Changes :meth:`length_rule`: build the collator after."""
        self.windowed = on

    @classmethod
    def from_config(cls, cfg: EncoderConfig) -> "WhisperAudioEncoder":
        """Pretrained from ``cfg.path`` (HF directory, CTranslate2 model or OpenAI ``.pt``) or random from ``cfg.preset``."""
        if cfg.layer_sum:
            raise ValueError("model.encoder.layer_sum: the whisper encoder takes one layer (model.encoder.layer); weighted sums are for self-supervised encoders")
        model = load_whisper_encoder(cfg.path) if cfg.path else WhisperEncoder(whisper_preset_config(cfg.preset))
        return cls(model, pad_to_30s=cfg.pad_to_30s, layer=cfg.layer)

    def transformer_layers(self) -> nn.ModuleList:
        """Whisper's encoder layers, bottom to top."""
        return self.model.layers

    def length_rule(self) -> LengthRule:
        """Samples -> encoder frames: mel frames n // 160 (<= 3000), then conv2's stride 2; in
        windowed mode summed over 30 s windows (:func:`~slamkit.models.encoders.whisper.windows.windowed_frames`)."""
        if self.windowed:
            return functools.partial(windowed_frames, window=CHUNK_SAMPLES, rule=whisper_encoder_frames)
        return whisper_encoder_frames

    def forward(self, audio: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """``audio [b, t]`` float32, ``lengths [b]`` samples -> ``feats [b, t_e, d]``, ``frames [b]``.

        ``t_e = max(frames)``; frames past a clip's length are 0. In windowed mode a clip longer
        than 30 s is encoded window by window and its frames concatenated.
        """
        if self.windowed and bool((lengths > CHUNK_SAMPLES).any()):
            return self._forward_windows(audio, lengths)
        return self._forward_clips(audio, lengths)

    def _forward_windows(self, audio: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Windowed mode: every clip cut into 30 s windows, the windows encoded as clips (at most
        :attr:`windows_per_pass` at once), each clip's frames concatenated -> ``[b, t_e, d]``, ``[b]``."""
        windows, sizes, owner = split_windows(audio, lengths.to(torch.long), CHUNK_SAMPLES, HOP_LENGTH)
        feats, frames = [], []
        for at in range(0, len(sizes), self.windows_per_pass):
            part = sizes[at : at + self.windows_per_pass]
            f, n = self._forward_clips(windows[at : at + self.windows_per_pass, : int(part.max())], part)
            feats += list(f)
            frames.append(n)
        longest = max(f.shape[0] for f in feats)
        stacked = torch.stack([F.pad(f, (0, 0, 0, longest - f.shape[0])) for f in feats])  # [n, t, d]
        return join_windows(stacked, torch.cat(frames), owner, audio.shape[0])

    def _forward_clips(self, audio: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """One pass over clips of at most 30 s (see :meth:`forward`)."""
        mel, mel_frames = self.frontend(audio, lengths)  # [b, n_mels, T], [b]
        frames = _conv_stem_frames(mel_frames)
        hidden = self._embed(mel, mel_frames)  # [b, T/2, d]
        mask = None if self.pad_to_30s else frame_mask(frames, hidden.shape[1])
        hidden = self._run_layers(hidden, mask)
        hidden = hidden[:, : int(frames.max())]
        return hidden.masked_fill(~frame_mask(frames, hidden.shape[1])[..., None], 0.0), frames

    def _embed(self, mel: Tensor, mel_frames: Tensor) -> Tensor:
        """Log-mel ``[b, n_mels, T]`` -> conv stem + positions ``[b, ceil(T / 2), d]``."""
        m = self.model
        x = F.gelu(m.conv1(mel.to(m.conv1.weight.dtype)))
        if not self.pad_to_30s:
            # Alone, conv2 would see zero padding right after the clip, not conv1's response to it.
            x = x.masked_fill(~frame_mask(mel_frames, x.shape[-1])[:, None, :], 0.0)
        x = F.gelu(m.conv2(x)).transpose(1, 2)
        x = x + m.embed_positions.weight[: x.shape[1]]
        return F.dropout(x, p=m.config.dropout, training=self.training)

    def _run_layers(self, hidden: Tensor, valid: Tensor | None) -> Tensor:
        """The encoder layers up to the selected one; ``valid [b, t]`` bool masks padded keys."""
        m = self.model
        # HF builds the mask for the configured attention kernel (sdpa, eager, flash …); None
        # when nothing is padded, which lets sdpa take its fastest path.
        mask = None if valid is None else create_bidirectional_mask(config=m.config, inputs_embeds=hidden, attention_mask=valid)
        for layer in m.layers[: self.layer_index]:
            if self.training and m.layerdrop > 0.0 and torch.rand([]) < m.layerdrop:
                continue  # LayerDrop, as HF's forward does in training
            hidden = layer(hidden, mask)
        if self.layer_index == len(m.layers):
            hidden = m.layer_norm(hidden)
        return hidden


def whisper_encoder_frames(lengths: Tensor) -> Tensor:
    """Samples ``[b]`` -> encoder frames ``[b]`` (the whisper encoder's length rule)."""
    return _conv_stem_frames(mel_frame_count(lengths))


def _conv_stem_frames(mel_frames: Tensor) -> Tensor:
    """Mel frames ``[b]`` -> frames after conv2 (kernel 3, stride 2, padding 1): ceil(T / 2)."""
    return (torch.div(mel_frames - 1, 2, rounding_mode="floor") + 1).clamp(min=0)


# ---------------------------------------------------------------------------------------------
# Building the encoder from a checkpoint; reading a Hugging Face directory (the "hf" format)
# ---------------------------------------------------------------------------------------------

_ENCODER_PREFIXES = ("model.encoder.", "encoder.", "")  # ForConditionalGeneration, WhisperModel, encoder-only


def load_whisper_encoder(path: str | Path) -> WhisperEncoder:
    """A ``WhisperEncoder`` (float32) with the encoder weights of the checkpoint at ``path``.

    Any format :func:`read_whisper_encoder` knows. The module is built on the meta device and
    the checkpoint's tensors are assigned to it, so no memory or time goes into random weights
    that would be overwritten.
    """
    config, state = read_whisper_encoder(path)  # keys and shapes already checked against the module
    with torch.device("meta"):
        model = WhisperEncoder(config)
    model.load_state_dict(state, strict=True, assign=True)
    left_on_meta = [name for name, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left_on_meta:  # a tensor outside the state dict (none today) would otherwise stay empty
        raise CheckpointError(f"{path}: no weights for {left_on_meta[:5]}")
    return model


def read_hf_whisper(path: str | Path) -> tuple[WhisperConfig, dict[str, Tensor]]:
    """The config and float32 encoder tensors of a Hugging Face directory (HF naming)."""
    path = Path(path)
    return WhisperConfig.from_pretrained(path), read_encoder_state(path)


def read_encoder_state(path: Path) -> dict[str, Tensor]:
    """The encoder's tensors of the checkpoint in ``path``, keys relative to the encoder, float32.

    Only encoder tensors are read from safetensors files (the decoder is never loaded).
    """
    files = hf_weight_files(path)
    prefix = _encoder_prefix(hf_tensor_keys(files), path)
    state: dict[str, Tensor] = {}
    for file in files:
        state.update(_read_prefixed(file, prefix))
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def _encoder_prefix(keys: list[str], path: Path) -> str:
    """Which of the known layouts the checkpoint uses, recognised by its conv1 weight."""
    for prefix in _ENCODER_PREFIXES:
        if f"{prefix}conv1.weight" in keys:
            return prefix
    raise CheckpointError(f"{path}: no Whisper encoder weights found (looked for {[p + 'conv1.weight' for p in _ENCODER_PREFIXES]})")


def _read_prefixed(file: Path, prefix: str) -> dict[str, Tensor]:
    """Tensors of ``file`` whose key starts with ``prefix`` (prefix removed)."""

    def wanted(key: str) -> bool:
        # With the empty prefix of an encoder-only save, decoder keys (if any) must still be skipped.
        return key.startswith(prefix) and not key.startswith("decoder.")

    if file.suffix == ".safetensors":
        with safe_open(str(file), framework="pt") as f:
            return {k[len(prefix) :]: f.get_tensor(k) for k in f.keys() if wanted(k)}
    state = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
    return {k[len(prefix) :]: v for k, v in state.items() if wanted(k)}


register_format(
    WhisperCheckpointFormat(
        "hf",
        "a Hugging Face directory with config.json and model.safetensors or pytorch_model.bin (sharded or not)",
        # Weights are not required here, so a directory without them gets read_encoder_state's precise error.
        lambda path: path.is_dir() and (path / "config.json").is_file() and not is_ctranslate2_model(path),
        read_hf_whisper,
    )
)
