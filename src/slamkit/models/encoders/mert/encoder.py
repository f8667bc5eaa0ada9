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

import functools
import dataclasses
import json
import math
import zipfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import Tensor, nn

from slamkit.config import EncoderConfig
from slamkit.models.lengths import LengthRule, conv_output_frames
from slamkit.models.weights import CheckpointError, check_state_dict
from slamkit.models.encoders.base import (
    ENCODERS,
    AudioEncoder,
    EncoderCard,
    LayerSelector,
    frame_mask,
)
from slamkit.models.encoders.mert.modules import (
    ACTIVATIONS,
    MERT_PRESETS,
    MERTArch,
    MERTModel,
    min_input_samples,
)
from slamkit.models.encoders.ssl import normalize_waveform

__all__ = ["MERT_PRESETS", "MERTArch", "MERTEncoder", "MERTModel", "load_mert", "mert_arch_from_config",
           "read_mert_checkpoint"]

CHECKPOINT_FORMAT = "MERT Hugging Face (MERTModel: config.json + model.safetensors or pytorch_model.bin)"


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
    def from_config(cls, cfg: EncoderConfig) -> MERTEncoder:
        """Pretrained from ``cfg.path`` (a MERT Hugging Face directory) or random at ``cfg.preset``."""
        if cfg.path:
            model, normalize = load_mert(cfg.path)
        else:
            if cfg.preset not in MERT_PRESETS:
                raise ValueError(f"unknown mert preset {cfg.preset!r}; choose one of {', '.join(MERT_PRESETS)}")
            model, normalize = MERTModel(MERT_PRESETS[cfg.preset]), True
        return cls(model, normalize=normalize, layer=cfg.layer, layer_sum=cfg.layer_sum)

    def length_rule(self) -> LengthRule:
        """Samples -> frames after the conv feature extractor."""
        return functools.partial(conv_output_frames, kernels=tuple(self.model.arch.conv_kernel), strides=tuple(self.model.arch.conv_stride))

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
        if getattr(arch, name) not in ACTIVATIONS:
            problems.append(f"{name} {getattr(arch, name)!r} is not one of {', '.join(ACTIVATIONS)}")
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
