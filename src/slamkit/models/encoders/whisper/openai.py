"""Reader for the ``.pt`` files of the ``openai-whisper`` package (``dims`` + ``model_state_dict``): the ``openai`` format."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import torch
from torch import Tensor
from transformers import WhisperConfig

from slamkit.models.encoders.whisper.formats import WhisperCheckpointFormat, register_format, whisper_encoder_config
from slamkit.models.weights import CheckpointError, float32_state

# Module paths (OpenAI -> HF); parameter names are the same.
_OPENAI_GLOBAL = {"conv1": "conv1", "conv2": "conv2", "ln_post": "layer_norm"}
_OPENAI_LAYER = {
    "attn.query": "self_attn.q_proj",
    "attn.key": "self_attn.k_proj",
    "attn.value": "self_attn.v_proj",
    "attn.out": "self_attn.out_proj",
    "attn_ln": "self_attn_layer_norm",
    "mlp.0": "fc1",
    "mlp.2": "fc2",
    "mlp_ln": "final_layer_norm",
}
_OPENAI_BLOCK = re.compile(r"blocks\.(\d+)\.(.+)")
_OPENAI_DIMS = ("n_mels", "n_audio_ctx", "n_audio_state", "n_audio_head", "n_audio_layer")


def read_openai_whisper(path: str | Path) -> tuple[WhisperConfig, dict[str, Tensor]]:
    """Whisper encoder of an ``openai-whisper`` ``.pt`` checkpoint (``dims`` + ``model_state_dict``).

    Loaded with ``torch.load(weights_only=True)``: a file that needs arbitrary unpickling is
    refused rather than executed.
    """
    path = Path(path)
    try:
        # mmap needs torch's zip format (every torch.save since 1.6); older files are read whole.
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except Exception as err:  # torch raises several types for garbled / unsafe pickles
        raise CheckpointError(f"{path}: cannot be read as an OpenAI Whisper checkpoint with torch.load(weights_only=True): {err}") from err
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("dims"), dict) or not isinstance(ckpt.get("model_state_dict"), dict):
        raise CheckpointError(f"{path}: not an OpenAI Whisper checkpoint (expected a dict with 'dims' and 'model_state_dict')")
    dims = ckpt["dims"]
    if any(not isinstance(dims.get(k), int) for k in _OPENAI_DIMS):
        raise CheckpointError(f"{path}: 'dims' lacks {[k for k in _OPENAI_DIMS if not isinstance(dims.get(k), int)]}")
    state = float32_state(_rename_openai(ckpt["model_state_dict"]))
    ffn = state["layers.0.fc1.weight"].shape[0] if "layers.0.fc1.weight" in state else 4 * dims["n_audio_state"]
    config = whisper_encoder_config(dims["n_audio_state"], dims["n_audio_layer"], dims["n_audio_head"], ffn, dims["n_mels"], dims["n_audio_ctx"])
    return config, state


def _rename_openai(model_state: dict[str, Tensor]) -> dict[str, Tensor]:
    """``encoder.*`` OpenAI names -> HF names (decoder keys skipped, unknown encoder keys kept)."""
    state = {}
    for key, t in model_state.items():
        if not key.startswith("encoder."):
            continue
        module, _, param = key.removeprefix("encoder.").rpartition(".")
        block = _OPENAI_BLOCK.fullmatch(module)
        if key == "encoder.positional_embedding":
            state["embed_positions.weight"] = t
        elif module in _OPENAI_GLOBAL:
            state[f"{_OPENAI_GLOBAL[module]}.{param}"] = t
        elif block and block.group(2) in _OPENAI_LAYER:
            state[f"layers.{block.group(1)}.{_OPENAI_LAYER[block.group(2)]}.{param}"] = t
        else:
            state[key] = t  # reported as unexpected by check_encoder_state
    return state


register_format(
    WhisperCheckpointFormat(
        "openai",
        "an openai-whisper .pt file (dims + model_state_dict)",
        lambda path: path.is_file() and path.suffix == ".pt",
        read_openai_whisper,
    )
)
