"""Whisper checkpoint formats: the registry, format detection, and the encoder-state check.

Each reader returns a transformers ``WhisperConfig`` and the encoder's state dict in Hugging Face
``WhisperEncoder`` naming (``conv1.weight``, ``embed_positions.weight``,
``layers.{i}.self_attn.{q,k,v,out}_proj.*``, ``layers.{i}.fc1.*`` …), float32. Formats:

- ``ctranslate2``: faster-whisper / CTranslate2 ``model.bin`` (fp32, fp16, bf16, int8 or int16
  weights), whole or split into ``model.bin.part1``, ``model.bin.part2`` … Read by our own
  binary reader; only the encoder's bytes are read.
- ``openai``: the ``.pt`` files of the ``openai-whisper`` package (``dims`` + ``model_state_dict``).
- ``hf``: a Hugging Face directory (``config.json`` + safetensors or ``pytorch_model.bin``,
  sharded or not), registered in :mod:`slamkit.models.encoders.whisper.encoder` beside the code that
  reads it.

:func:`read_whisper_encoder` picks the format by asking each registered one whether it
recognises the path, converts, and checks every key and shape against HF's module: a checkpoint
never loads partially.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor
from transformers import WhisperConfig
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from slamkit.models.weights import CheckpointError
from slamkit.registry import Registry

Reader = Callable[[Path], tuple[WhisperConfig, dict[str, Tensor]]]


@dataclass(frozen=True)
class WhisperCheckpointFormat:
    """A checkpoint format: ``detect(path)`` says whether it is one, ``read(path)`` converts it."""

    name: str
    accepts: str  # what the format looks like on disk, for error messages
    detect: Callable[[Path], bool]
    read: Reader


WHISPER_FORMATS: Registry[WhisperCheckpointFormat] = Registry("whisper checkpoint format")


def register_format(fmt: WhisperCheckpointFormat) -> WhisperCheckpointFormat:
    """Add ``fmt`` to :data:`WHISPER_FORMATS` (detectors must not claim each other's paths)."""
    return WHISPER_FORMATS.register(fmt.name)(fmt)


def read_whisper_encoder(path: str | Path) -> tuple[WhisperConfig, dict[str, Tensor]]:
    """The config and float32 encoder state dict (HF ``WhisperEncoder`` naming) of any known format.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: no format recognises ``path``, the file is garbled, or the converted
            weights do not fit the config (names the first missing / unexpected keys).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"whisper encoder path {str(path)!r} is not a local directory or file")
    for name in WHISPER_FORMATS:
        fmt = WHISPER_FORMATS.get(name)
        if fmt.detect(path):
            config, state = fmt.read(path)
            check_encoder_state(config, state, str(path))
            return config, state
    accepted = "; ".join(f"{WHISPER_FORMATS.get(n).name}: {WHISPER_FORMATS.get(n).accepts}" for n in WHISPER_FORMATS)
    raise CheckpointError(f"{path}: not a Whisper checkpoint slamkit can read. Accepted formats: {accepted}")


def whisper_encoder_config(d_model: int, layers: int, heads: int, ffn_dim: int, n_mels: int, positions: int) -> WhisperConfig:
    """A ``WhisperConfig`` for this encoder; the decoder fields are placeholders (only the encoder is built)."""
    return WhisperConfig(
        d_model=d_model,
        encoder_layers=layers,
        encoder_attention_heads=heads,
        encoder_ffn_dim=ffn_dim,
        num_mel_bins=n_mels,
        max_source_positions=positions,
        decoder_layers=1,
        decoder_attention_heads=heads,
        decoder_ffn_dim=ffn_dim,
    )


def check_encoder_state(config: WhisperConfig, state: dict[str, Tensor], source: str) -> None:
    """Raise unless ``state`` has exactly the keys and shapes of ``WhisperEncoder(config)``.

    The module is built on the meta device, so the check costs no memory.
    """
    heads = config.encoder_attention_heads
    if heads <= 0 or config.d_model % heads:
        raise CheckpointError(f"{source}: {heads} attention heads do not divide d_model={config.d_model}")
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in WhisperEncoder(config).state_dict().items()}
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise CheckpointError(f"{source}: encoder weights do not fit a Whisper encoder: missing {missing[:5]}, unexpected {unexpected[:5]}")
    wrong = [f"{k} {tuple(state[k].shape)} != {shape}" for k, shape in expected.items() if tuple(state[k].shape) != shape]
    if wrong:
        raise CheckpointError(f"{source}: encoder tensor shapes do not fit the config: {wrong[:5]}")
