"""Audio Spectrogram Transformer (registered as ``ast``): patch tokens of transformers' ``ASTModel``.

**Checkpoint.** A Hugging Face directory as on the Hub (e.g. ``MIT/ast-finetuned-audioset-10-10-0.4593``):
``config.json`` (``model_type: audio-spectrogram-transformer``), ``model.safetensors`` or
``pytorch_model.bin`` (sharded or not) and ``preprocessor_config.json`` (``ASTFeatureExtractor``).
Both ``ASTForAudioClassification`` (keys ``audio_spectrogram_transformer.*``; its ``classifier.*``
head is dropped explicitly) and ``ASTModel`` saves are read, in the Hub's key names
(``encoder.layer.{i}.attention.attention.query`` …, what ``save_pretrained`` still writes) or in
transformers' current module names (``layers.{i}.attention.q_proj`` …). Every other key, and every
missing one, is a :class:`~slamkit.models.weights.CheckpointError` naming the file.

**Front end** (as ``ASTFeatureExtractor`` computes it): Kaldi fbank
(:func:`slamkit.models.encoders.fbank.kaldi_fbank`) at 16 kHz, 25 ms Hann (``hanning``, symmetric)
window, 10 ms shift, ``num_mel_bins`` (128) bins, on the waveform as is (no 2**15 scaling); rows
past the clip are 0; then ``(x - mean) / (2 * std)`` with the preprocessor's ``mean``/``std``
(AudioSet: -4.2677393 / 4.5689974) when ``do_normalize``. The padding rows are normalised too,
exactly as the extractor pads before normalising.

**Fixed input length.** AST's position embeddings fix its input to ``max_length`` fbank frames
(1024 = 10.24 s). Its 16x16 patches start every ``time_stride`` (10) frames, so one input gives
``T_p = (max_length - 16) // 10 + 1`` (101) time steps of ``F_p = (num_mel_bins - 16) // 10 + 1``
(12) frequency patches. We put every clip on one global grid of time steps, step ``j`` being the
patches whose first frame is ``10 j``:

- a clip of ``F`` fbank frames has ``J = ceil(F / 10)`` steps (every patch that starts inside it);
- the steps are computed in consecutive inputs (windows) of ``max_length`` frames that start every
  ``T_p * 10`` (1010) frames, so window ``k`` yields steps ``k T_p … k T_p + T_p - 1`` (neighbouring
  windows overlap by 14 frames and the grid has no gap); a window that runs past the clip is padded
  as the extractor pads (fbank 0 before normalisation) and sees the whole window with no
  attention mask, as the model was trained. A clip of at most ``max_length`` frames is exactly
  Hugging Face's input;
- steps past ``J`` are dropped. Windows never mix clips, so a clip's output does not depend on the
  batch.

**Output.** CLS and distillation tokens are dropped. The patch tokens are re-ordered time-major
(HF's order is frequency-major): token ``j * F_p + f`` is frequency patch ``f`` of step ``j``, so
``frames = output_lengths(n) = ceil(F / 10) * F_p`` tokens with ``F = 1 + (n - 400) // 160``;
``frame_rate = F_p * 10`` tokens per second (120 for the base model). Clips shorter than one fbank
frame (400 samples) raise ``ValueError``.

**Layers.** ``layer`` uses HF's numbering: 0 = patch + position embeddings, ``i`` = output of block
``i``, the last one after the final LayerNorm (HF's ``last_hidden_state``); ``layer_sum`` learns a
softmax-weighted sum of all of them (:class:`~slamkit.models.encoders.base.LayerSelector`).
``transformer_layers()`` is ``model.layers``. LoRA targets: ``q_proj``, ``k_proj``, ``v_proj``,
``o_proj`` (attention), ``fc1``/``fc2`` (MLP); the default ``[q_proj, v_proj]`` works.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import ASTConfig, ASTModel

from slamkit.config import EncoderConfig
from slamkit.models.lengths import LengthRule, ceil_div
from slamkit.models.encoders.fbank import kaldi_fbank, kaldi_fbank_frames
from slamkit.models.weights import CheckpointError, check_state_dict, hf_tensor_keys, hf_weight_files, read_hf_config, read_hf_tensors
from slamkit.models.encoders.base import EncoderCard, ENCODERS, AudioEncoder, LayerSelector, frame_mask

log = logging.getLogger(__name__)

AUDIOSET_MEAN = -4.2677393
AUDIOSET_STD = 4.5689974
_FBANK_SHIFT_MS = 10.0
AST_FORMAT = "Hugging Face AST directory (ASTModel or ASTForAudioClassification)"

AST_PRESETS: dict[str, dict[str, Any]] = {
    # 2 frequency x 5 time patches per 64-frame window: windowing is exercised by short clips
    "test": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, num_mel_bins=32, max_length=64),
    # MIT/ast-finetuned-audioset-10-10-0.4593 (ASTConfig's defaults): 768 wide, 12 layers, 1024 x 128 input
    "base": {},
}


@dataclass(frozen=True)
class ASTFeatureSettings:
    """The ``ASTFeatureExtractor`` settings the front end follows (``preprocessor_config.json``)."""

    sample_rate: int = 16_000
    mean: float = AUDIOSET_MEAN
    std: float = AUDIOSET_STD
    do_normalize: bool = True


def ast_preset_config(preset: str) -> ASTConfig:
    """The ``ASTConfig`` of a size preset."""
    if preset not in AST_PRESETS:
        raise ValueError(f"unknown ast preset {preset!r}; choose one of {', '.join(AST_PRESETS)}")
    return ASTConfig(**AST_PRESETS[preset])


class ASTFrontEnd:
    """Waveforms -> AST's normalised fbank windows on the global time grid (see the module docs).

    Args:
        config: the model's config (input size, patch geometry).
        features: the preprocessor's settings.
    """

    def __init__(self, config: ASTConfig, features: ASTFeatureSettings) -> None:
        if not isinstance(config.patch_size, int):
            raise ValueError(f"ast: only square patches are supported (patch_size={config.patch_size})")
        self.features = features
        self.num_mel_bins, self.max_length, self.time_stride = config.num_mel_bins, config.max_length, config.time_stride
        self.freq_patches = (config.num_mel_bins - config.patch_size) // config.frequency_stride + 1
        self.time_patches = (config.max_length - config.patch_size) // config.time_stride + 1
        if self.freq_patches < 1 or self.time_patches < 1:
            raise ValueError(f"ast: a {config.max_length} x {config.num_mel_bins} input holds no {config.patch_size}x{config.patch_size} patch")
        self.frame_size = round(features.sample_rate * 0.025)  # samples per 25 ms fbank frame
        self.frame_shift = round(features.sample_rate * _FBANK_SHIFT_MS / 1000)

    def steps(self, lengths: Tensor) -> Tensor:
        """Samples ``[b]`` -> time steps ``[b]``: patches that start inside the clip, ``ceil(F / time_stride)``."""
        return ceil_div(kaldi_fbank_frames(lengths, self.frame_size, self.frame_shift), self.time_stride)

    def __call__(self, audio: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``audio [b, t]``, ``lengths [b]`` -> ``inputs [N, max_length, num_mel_bins]``, ``clip [N]``, ``window [N]``, ``steps [b]``.

        ``inputs`` holds all clips' windows in order, ``clip``/``window`` say whose window each is.
        A clip of at most ``max_length`` frames gives exactly ``ASTFeatureExtractor``'s ``input_values``.
        """
        lengths = lengths.to(device=audio.device, dtype=torch.long)
        if bool((kaldi_fbank_frames(lengths, self.frame_size, self.frame_shift) < 1).any()):
            raise ValueError(f"ast: clips need at least {self.frame_size} samples (one 25 ms fbank frame): {lengths.tolist()}")
        fbank, _ = kaldi_fbank(audio, lengths, num_mel_bins=self.num_mel_bins, sample_rate=self.features.sample_rate, window="hanning")
        steps = self.steps(lengths)
        n_windows = ceil_div(steps, self.time_patches)
        hop = self.time_patches * self.time_stride
        total = (int(n_windows.max()) - 1) * hop + self.max_length
        fbank = F.pad(fbank, (0, 0, 0, max(total - fbank.shape[1], 0)))[:, :total]
        windows = fbank.unfold(1, self.max_length, hop).transpose(2, 3)  # [b, K, max_length, mel]
        clip, window = frame_mask(n_windows, windows.shape[1]).nonzero(as_tuple=True)
        inputs = windows[clip, window]
        if self.features.do_normalize:
            inputs = (inputs - self.features.mean) / (2.0 * self.features.std)
        return inputs, clip, window, steps


@ENCODERS.register("ast")
class ASTEncoder(AudioEncoder):
    """AST: ``[b, t]`` 16 kHz -> time-major patch tokens ``[b, t_e, hidden]`` (``F_p`` tokens per 100 ms).

    Args:
        model: transformers' ``ASTModel`` (kept as ``self.model``; LoRA finds ``q_proj``/``v_proj``).
        features: the front end's settings.
        layer: hidden layer to return (HF numbering, negative from the top); None = last.
        layer_sum: learn a softmax-weighted sum of all hidden layers instead.
    """

    presets = tuple(AST_PRESETS)
    card = EncoderCard(
        preset="base",
        formats="Hugging Face `ASTModel` / `ASTForAudioClassification` directory",
        use="audio tagging features, captioning",
    )

    def __init__(self, model: ASTModel, features: ASTFeatureSettings, layer: int | None = None, layer_sum: bool = False) -> None:
        super().__init__()
        self.model = model
        self.frontend = ASTFrontEnd(model.config, features)
        self.sample_rate = features.sample_rate
        self.hidden_size = model.config.hidden_size
        self.frame_rate = self.frontend.freq_patches * 1000.0 / (_FBANK_SHIFT_MS * model.config.time_stride)
        self.layer_selector = LayerSelector(layer, model.config.num_hidden_layers, weighted=layer_sum)

    @classmethod
    def from_config(cls, cfg: EncoderConfig) -> "ASTEncoder":
        """Pretrained from ``cfg.path`` (a local HF directory) or random at ``cfg.preset``."""
        if cfg.path:
            model, features = load_ast_model(cfg.path)
        else:
            model, features = ASTModel(ast_preset_config(cfg.preset)), ASTFeatureSettings()
        return cls(model, features, layer=cfg.layer, layer_sum=cfg.layer_sum)

    def transformer_layers(self) -> nn.ModuleList:
        """The transformer blocks, bottom to top."""
        return self.model.layers

    def length_rule(self) -> LengthRule:
        """Samples -> tokens: ``ceil(fbank frames / time_stride) * F_p``."""
        fe = self.frontend
        return functools.partial(ast_tokens, frame_size=fe.frame_size, frame_shift=fe.frame_shift,
                                 time_stride=fe.time_stride, freq_patches=fe.freq_patches)

    def forward(self, audio: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """``audio [b, t]`` float32, ``lengths [b]`` samples -> ``feats [b, t_e, hidden]``, ``frames [b]``.

        ``t_e = max(frames)``; tokens past a clip's length are 0.
        """
        fe = self.frontend
        inputs, clip, window, steps = fe(audio, lengths)
        hidden = self._encode(inputs.to(self.model.embeddings.patch_embeddings.projection.weight.dtype))
        tokens = hidden[:, 2:].unflatten(1, (fe.freq_patches, fe.time_patches)).transpose(1, 2)  # [N, T_p, F_p, d]
        grid = tokens.new_zeros(audio.shape[0], int(window.max()) + 1, *tokens.shape[1:])
        grid[clip, window] = tokens
        frames = steps * fe.freq_patches
        feats = grid.flatten(1, 3)[:, : int(frames.max())]
        return feats.masked_fill(~frame_mask(frames, feats.shape[1])[..., None], 0.0), frames

    def _encode(self, inputs: Tensor) -> Tensor:
        """Normalised fbank windows ``[N, max_length, mel]`` -> the selected hidden states ``[N, 2 + F_p T_p, d]``."""
        m, sel = self.model, self.layer_selector
        top = len(m.layers) if sel.weights is not None else sel.index
        states = [m.embeddings(inputs)]
        for layer in m.layers[:top]:
            states.append(layer(states[-1], None))
        if top == len(m.layers):
            states[-1] = m.layernorm(states[-1])
        return sel(states) if sel.weights is not None else states[-1]


_AST_PREFIX = "audio_spectrogram_transformer."
# Hub (ViT-style) module names inside a block -> transformers' current ASTLayer names.
_HUB_BLOCK = {
    "attention.attention.query": "attention.q_proj",
    "attention.attention.key": "attention.k_proj",
    "attention.attention.value": "attention.v_proj",
    "attention.output.dense": "attention.o_proj",
    "intermediate.dense": "mlp.fc1",
    "output.dense": "mlp.fc2",
}


_MODULE_LAYER = re.compile(r"layers\.(\d+)\.(.+)")
_TO_HUB = {v: k for k, v in _HUB_BLOCK.items()}


def _hub_name(name: str) -> str:
    """A module name of ``ASTModel`` (``layers.3.attention.q_proj.weight``) -> its Hub key."""
    block = _MODULE_LAYER.fullmatch(name)
    if not block:
        return name
    module, _, param = block.group(2).rpartition(".")
    return f"encoder.layer.{block.group(1)}.{_TO_HUB.get(module, module)}.{param}"


def load_ast_model(path: str | Path) -> tuple[ASTModel, ASTFeatureSettings]:
    """``ASTModel`` (float32) and front-end settings of the local HF directory ``path``.

    The weights are checked in the file's own naming (prefix, Hub or current module names), so
    an error lists keys as they are (or should be) written in the file.

    Raises:
        CheckpointError: not an AST directory, or weights that do not fit its config exactly
            (names the file and the first missing / unexpected keys).
    """
    path = Path(path)
    read_hf_config(path, ("audio-spectrogram-transformer",))
    config = ASTConfig.from_pretrained(path)
    files = hf_weight_files(path)
    keys = hf_tensor_keys(files)
    prefix = _AST_PREFIX if any(k.startswith(_AST_PREFIX) for k in keys) else ""
    hub = any(k.startswith(f"{prefix}encoder.layer.") for k in keys)
    # A classification save's head is not part of the encoder.
    raw = read_hf_tensors(files, keep=lambda k: not (prefix and k.startswith("classifier.")))
    with torch.device("meta"):
        model = ASTModel(config)
    file_name = {name: prefix + (_hub_name(name) if hub else name) for name in model.state_dict()}
    expected = {file_name[name]: tuple(t.shape) for name, t in model.state_dict().items()}
    check_state_dict(expected, raw, ", ".join(str(f) for f in files), AST_FORMAT)
    model.load_state_dict({name: raw[key].float() for name, key in file_name.items()}, strict=True, assign=True)
    return model.eval(), read_ast_preprocessor(path, config)


def read_ast_preprocessor(path: Path, config: ASTConfig) -> ASTFeatureSettings:
    """The ``ASTFeatureExtractor`` settings of ``path/preprocessor_config.json`` (AudioSet's when absent).

    Its ``num_mel_bins`` and ``max_length`` must agree with the model's config.
    """
    file = path / "preprocessor_config.json"
    if not file.is_file():
        log.warning("%s: no preprocessor_config.json; using AudioSet normalisation (mean %s, std %s)", path, AUDIOSET_MEAN, AUDIOSET_STD)
        return ASTFeatureSettings()
    pre = json.loads(file.read_text())
    kind = pre.get("feature_extractor_type", "ASTFeatureExtractor")
    if kind != "ASTFeatureExtractor":
        raise CheckpointError(f"{file}: feature_extractor_type {kind!r}, expected 'ASTFeatureExtractor'")
    for key in ("num_mel_bins", "max_length"):
        if key in pre and pre[key] != getattr(config, key):
            raise CheckpointError(f"{file}: {key}={pre[key]} does not match config.json's {getattr(config, key)}")
    return ASTFeatureSettings(
        sample_rate=int(pre.get("sampling_rate", 16_000)),
        mean=float(pre.get("mean", AUDIOSET_MEAN)),
        std=float(pre.get("std", AUDIOSET_STD)),
        do_normalize=bool(pre.get("do_normalize", True)),
    )


def ast_tokens(lengths: Tensor, frame_size: int, frame_shift: int, time_stride: int, freq_patches: int) -> Tensor:
    """Samples ``[b]`` -> tokens ``[b]``: patches starting inside the clip, ``ceil(F / time_stride)``, times ``freq_patches``."""
    return ceil_div(kaldi_fbank_frames(lengths, frame_size, frame_shift), time_stride) * freq_patches
