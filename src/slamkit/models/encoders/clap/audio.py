"""CLAP's audio branch (registered as ``clap``): HTSAT frame features and the CLAP audio embedding.

**Checkpoint.** A Hugging Face directory: a full ``ClapModel`` (e.g. ``laion/clap-htsat-unfused``;
``config.json`` with ``model_type: clap``) of which only ``audio_model.*`` and ``audio_projection.*``
are read — the text tower (``text_model.*``, ``text_projection.*``) and ``logit_scale_a/t`` are
skipped by name and never loaded — or a ``ClapAudioModelWithProjection`` (same keys) or
``ClapAudioModel`` save (``audio_encoder.*``, no projection: :meth:`CLAPEncoder.embed` is then
unavailable). Any other key, or a missing one, is a :class:`~slamkit.models.weights.CheckpointError`
naming the file; only the derived buffers ``relative_position_index`` and
``num_batches_tracked`` may be absent (they are rebuilt).

**Front end** (``ClapFeatureExtractor``'s deterministic path, in torch): 48 kHz mono; each 10 s
window (``max_length_s``) shorter than 10 s is filled as the preprocessor's ``padding`` says
(``repeatpad``: the clip repeated ``floor(10 s / len)`` times, then zeros; ``repeat``; ``pad``);
STFT with a periodic Hann window of ``fft_window_size`` (1024), hop ``hop_length`` (480),
centred with reflect padding; power spectrum; ``feature_size`` (64) mel filters between
``frequency_min`` and ``frequency_max`` (50–14000 Hz); ``10 log10(max(x, 1e-10))``. The filter bank
follows the model: unfused checkpoints were trained on librosa-style filters (Slaney scale and
area norm; HF's ``rand_trunc`` path), fused ones on torchaudio-style filters (HTK scale, no norm;
HF's ``fusion`` path). HF's random parts are not used: no random crop (``rand_trunc``) and no
random fusion crops; every window is computed with ``is_longer = False`` (fused checkpoints thus
use their global branch only).

**Long clips.** Cut into consecutive 10 s windows; the last, shorter one is filled like a short
clip. Each window runs alone (batch-independent); their tokens are concatenated in time order.

**Output.** HF's ``last_hidden_state`` is ``[N, d, c, T]``: HTSAT's final 8 x 8 token grid regrouped
into ``T = 32`` time steps per window (in time order) of ``c = 2`` frequency groups. We return
``[b, t_e, c * d]`` (the two frequency groups concatenated per step; 1536 for htsat-unfused):
``32`` tokens per 10 s window, so ``frame_rate = 3.2`` and token ``j`` of a window covers samples
``j * 15000 … (j + 1) * 15000``. Tokens that only cover the fill past a clip's end are dropped:
``frames = output_lengths(n) = ceil(n * 32 / 480000)``. Clips need at least one sample.
:meth:`CLAPEncoder.embed` gives the normalised CLAP audio embedding ``[b, projection_dim]``
(HF's ``get_audio_features``): exactly HF's for a clip of at most 10 s; for longer clips the
per-window embeddings are averaged, weighted by each window's real duration, and re-normalised.

**Layers and training.** HTSAT's stages have different widths and token grids, so only the final
output is offered: ``layer`` must be null and ``layer_sum`` false. ``transformer_layers()`` lists
the Swin blocks of all stages bottom to top. The BatchNorm layers stay in eval mode (running
statistics) even in training, so that a clip's features never depend on its batch. Attention is
separate ``query``/``key``/``value`` linears (plus ``output.dense``): LoRA needs
``lora.encoder_target_modules: [query, value]`` (the default ``q_proj``/``v_proj`` match nothing).
"""

from __future__ import annotations

import functools
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import ClapAudioConfig, ClapAudioModel, ClapConfig
from transformers.models.clap.modeling_clap import ClapProjectionLayer

from slamkit.config import EncoderConfig
from slamkit.models.lengths import LengthRule
from slamkit.models.weights import CheckpointError, check_state_dict, hf_weight_files, read_hf_config, read_hf_tensors
from slamkit.models.encoders.base import EncoderCard, ENCODERS, AudioEncoder, frame_mask

log = logging.getLogger(__name__)

Padding = Literal["repeatpad", "repeat", "pad"]
CLAP_FORMAT = "Hugging Face CLAP directory (ClapModel, ClapAudioModelWithProjection or ClapAudioModel)"
_DB_FLOOR = 1e-10


@dataclass(frozen=True)
class ClapFeatureSettings:
    """``ClapFeatureExtractor`` settings (``preprocessor_config.json``) and the filter bank's kind."""

    sample_rate: int = 48_000
    n_mels: int = 64
    n_fft: int = 1024
    hop_length: int = 480
    f_min: float = 50.0
    f_max: float = 14_000.0
    max_length_s: float = 10.0
    padding: Padding = "repeatpad"
    mel_scale: Literal["slaney", "htk"] = "slaney"  # slaney: unfused models; htk: fused ones

    def __post_init__(self) -> None:
        if self.padding not in ("repeatpad", "repeat", "pad"):
            raise ValueError(f"unknown CLAP padding {self.padding!r}; use repeatpad, repeat or pad")

    @property
    def window_samples(self) -> int:
        """Samples per model input window (480000 = 10 s)."""
        return int(self.max_length_s * self.sample_rate)


_TEST_AUDIO = dict(
    spec_size=64, num_mel_bins=16, patch_embeds_hidden_size=16, depths=[2, 2], num_attention_heads=[1, 2], window_size=4, hidden_size=32, projection_dim=16
)
# name: (ClapAudioConfig fields, front end). htsat-unfused: ClapAudioConfig's defaults (HTSAT-tiny,
# 768 wide, projection 512) with the LAION front end (64 mels, 50-14000 Hz, 10 s windows).
CLAP_PRESETS: dict[str, tuple[dict[str, Any], ClapFeatureSettings]] = {
    # 1 s windows of 16 mels -> a 64 x 64 spectrogram image; still 32 tokens per window
    "test": (_TEST_AUDIO, ClapFeatureSettings(n_mels=16, max_length_s=1.0)),
    "htsat-unfused": ({}, ClapFeatureSettings()),
}


def clap_preset(preset: str) -> tuple[ClapAudioConfig, ClapFeatureSettings]:
    """The ``ClapAudioConfig`` and front end of a size preset."""
    if preset not in CLAP_PRESETS:
        raise ValueError(f"unknown clap preset {preset!r}; choose one of {', '.join(CLAP_PRESETS)}")
    fields, features = CLAP_PRESETS[preset]
    return ClapAudioConfig(**fields), features


# ---------------------------------------------------------------------------------------------
# Front end
# ---------------------------------------------------------------------------------------------


def _hz_to_mel(freq: Tensor, scale: str) -> Tensor:
    if scale == "htk":
        return 2595.0 * torch.log10(1.0 + freq / 700.0)
    # Slaney: linear below 1 kHz (3 mels per 200 Hz), logarithmic above (27 mels per factor 6.4)
    log_part = 15.0 + torch.log(freq.clamp(min=1e-10) / 1000.0) * (27.0 / math.log(6.4))
    return torch.where(freq >= 1000.0, log_part, 3.0 * freq / 200.0)


def _mel_to_hz(mel: Tensor, scale: str) -> Tensor:
    if scale == "htk":
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
    return torch.where(mel >= 15.0, 1000.0 * torch.exp((mel - 15.0) * (math.log(6.4) / 27.0)), 200.0 * mel / 3.0)


def clap_mel_filters(s: ClapFeatureSettings) -> Tensor:
    """Triangular mel filters ``[n_fft // 2 + 1, n_mels]`` (float32) on the settings' scale.

    Triangles are linear in Hz between mel-spaced edges; Slaney filters are area-normalised
    (``2 / (right - left)``), HTK ones are not.
    """
    bins = s.n_fft // 2 + 1
    f64 = dict(dtype=torch.float64, device="cpu")  # constants: on the CPU even under a meta-device context
    fft_hz = torch.linspace(0, s.sample_rate // 2, bins, **f64)
    lo, hi = _hz_to_mel(torch.tensor([float(s.f_min), float(s.f_max)], **f64), s.mel_scale).tolist()
    edges = _mel_to_hz(torch.linspace(lo, hi, s.n_mels + 2, **f64), s.mel_scale)
    width = edges.diff()
    slopes = edges[None, :] - fft_hz[:, None]  # [bins, n_mels + 2]
    down = -slopes[:, :-2] / width[:-1]
    up = slopes[:, 2:] / width[1:]
    filters = torch.clamp(torch.minimum(down, up), min=0.0)
    if s.mel_scale == "slaney":
        filters = filters * (2.0 / (edges[2:] - edges[:-2]))[None, :]
    return filters.to(torch.float32)


class ClapLogMel(nn.Module):
    """Filled 10 s windows ``[N, W]`` -> dB mel spectrogram ``[N, W // hop + 1, n_mels]``."""

    def __init__(self, settings: ClapFeatureSettings) -> None:
        super().__init__()
        self.settings = settings
        self.register_buffer("window", torch.hann_window(settings.n_fft, periodic=True), persistent=False)
        self.register_buffer("filters", clap_mel_filters(settings), persistent=False)

    def forward(self, waves: Tensor) -> Tensor:
        s = self.settings
        # .float(): the constants stay float32 even when the encoder is cast to half precision
        spec = torch.stft(waves.float(), s.n_fft, s.hop_length, window=self.window.float(), center=True, pad_mode="reflect", return_complex=True)
        power = spec.real.square() + spec.imag.square()  # [N, bins, frames]
        mel = torch.matmul(power.transpose(1, 2), self.filters.float())
        return 10.0 * torch.log10(mel.clamp(min=_DB_FLOOR))


def fill_windows(audio: Tensor, lengths: Tensor, window: int, padding: Padding) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Cut each clip into consecutive windows of ``window`` samples and fill the last one.

    Args:
        audio: ``[b, t]`` waveforms; ``lengths``: ``[b]`` samples (>= 1).

    Returns:
        ``waves [N, window]`` (all clips' windows in order), ``clip [N]``, ``index [N]`` (window
        number within its clip) and ``real [N]`` (samples of the clip in each window).
    """
    n_windows = torch.div(lengths + window - 1, window, rounding_mode="floor")
    clip, index = frame_mask(n_windows, int(n_windows.max())).nonzero(as_tuple=True)
    start = index * window
    real = torch.clamp(lengths[clip] - start, max=window)
    pos = torch.arange(window, device=audio.device)[None, :]
    r = real[:, None]
    if padding == "repeatpad":  # whole repeats, then zeros
        src, keep = pos % r, pos < torch.div(window, r, rounding_mode="floor") * r
    elif padding == "repeat":
        src, keep = pos % r, torch.ones_like(pos, dtype=torch.bool)
    else:  # pad
        src, keep = pos.clamp(max=r - 1), pos < r
    waves = audio[clip[:, None], start[:, None] + src]
    return waves * keep.to(waves.dtype), clip, index, real


# ---------------------------------------------------------------------------------------------
# The encoder
# ---------------------------------------------------------------------------------------------


@ENCODERS.register("clap")
class CLAPEncoder(AudioEncoder):
    """CLAP's HTSAT: ``[b, t]`` 48 kHz -> ``[b, t_e, c * d]`` at 3.2 tokens/s; :meth:`embed` -> ``[b, projection_dim]``.

    Args:
        model: transformers' ``ClapAudioModel`` (kept as ``self.model``).
        projection: the audio projection of a ``ClapModel`` (None: :meth:`embed` unavailable).
        features: the front end's settings.
    """

    presets = tuple(CLAP_PRESETS)
    card = EncoderCard(
        preset="htsat-unfused",
        formats="Hugging Face `ClapModel` / `ClapAudioModel(WithProjection)` directory (audio tower)",
        use="audio-text similarity, caption re-ranking",
        lora="query, value",
    )

    def __init__(self, model: ClapAudioModel, projection: ClapProjectionLayer | None, features: ClapFeatureSettings) -> None:
        super().__init__()
        c = model.config
        self.model = model
        self.projection = projection
        self.features = features
        self.frontend = ClapLogMel(features)
        self.sample_rate = features.sample_rate
        self.tokens_per_window, groups = _token_grid(c, features)
        self.hidden_size = groups * c.hidden_size
        self.frame_rate = self.tokens_per_window / features.max_length_s
        self.train(False)

    @classmethod
    def from_config(cls, cfg: EncoderConfig) -> "CLAPEncoder":
        """Pretrained from ``cfg.path`` (a local HF directory) or random at ``cfg.preset``."""
        if cfg.layer is not None or cfg.layer_sum:
            raise ValueError(
                "clap: HTSAT's stages differ in width and token grid, so only its final output is offered; "
                "set encoder.layer: null and encoder.layer_sum: false"
            )
        if cfg.path:
            return cls(*load_clap_audio(cfg.path))
        config, features = clap_preset(cfg.preset)
        return cls(ClapAudioModel(config), ClapProjectionLayer(config), features)

    def train(self, mode: bool = True) -> "CLAPEncoder":
        """Switch modes; BatchNorm layers always keep their running statistics (eval)."""
        super().train(mode)
        for module in self.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
        return self

    def transformer_layers(self) -> nn.ModuleList:
        """HTSAT's Swin blocks, all stages, bottom to top."""
        return nn.ModuleList(block for stage in self.model.audio_encoder.layers for block in stage.blocks)

    def length_rule(self) -> LengthRule:
        """Samples -> tokens: ``ceil(n * tokens_per_window / window_samples)``."""
        return functools.partial(clap_tokens, tokens_per_window=self.tokens_per_window, window_samples=self.features.window_samples)

    def forward(self, audio: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """``audio [b, t]`` float32 48 kHz, ``lengths [b]`` samples -> ``feats [b, t_e, c * d]``, ``frames [b]``.

        ``t_e = max(frames)``; tokens past a clip's length are 0.
        """
        lengths = lengths.to(device=audio.device, dtype=torch.long)
        out, clip, index, _ = self._run_windows(audio, lengths)
        tokens = out.last_hidden_state.permute(0, 3, 2, 1).flatten(2)  # [N, T, c * d], time order
        grid = tokens.new_zeros(audio.shape[0], int(index.max()) + 1, *tokens.shape[1:])
        grid[clip, index] = tokens
        frames = self.output_lengths(lengths)
        feats = grid.flatten(1, 2)[:, : int(frames.max())]
        return feats.masked_fill(~frame_mask(frames, feats.shape[1])[..., None], 0.0), frames

    def embed(self, audio: Tensor, lengths: Tensor) -> Tensor:
        """``audio [b, t]``, ``lengths [b]`` -> L2-normalised CLAP audio embeddings ``[b, projection_dim]``."""
        if self.projection is None:
            raise RuntimeError("clap: this checkpoint has no audio_projection (a ClapAudioModel save), so it gives no CLAP embedding")
        lengths = lengths.to(device=audio.device, dtype=torch.long)
        out, clip, _, real = self._run_windows(audio, lengths)
        per_window = F.normalize(self.projection(out.pooler_output), dim=-1)  # [N, p]
        weights = (real.to(per_window.dtype) / lengths[clip].to(per_window.dtype))[:, None]
        summed = per_window.new_zeros(audio.shape[0], per_window.shape[1]).index_add(0, clip, per_window * weights)
        return F.normalize(summed, dim=-1)

    def _run_windows(self, audio: Tensor, lengths: Tensor) -> tuple[Any, Tensor, Tensor, Tensor]:
        """HTSAT on every filled window of the batch; HF's output plus ``clip``, ``index``, ``real`` ``[N]``."""
        if bool((lengths < 1).any()):
            raise ValueError(f"clap: every clip needs at least one sample: {lengths.tolist()}")
        waves, clip, index, real = fill_windows(audio.float(), lengths, self.features.window_samples, self.features.padding)
        mel = self.frontend(waves)[:, None]  # [N, 1, frames, n_mels]
        encoder = self.model.audio_encoder
        is_longer = torch.zeros(mel.shape[0], 1, dtype=torch.bool, device=mel.device) if encoder.enable_fusion else None
        return encoder(mel.to(encoder.patch_embed.proj.weight.dtype), is_longer=is_longer), clip, index, real


def _token_grid(config: ClapAudioConfig, features: ClapFeatureSettings) -> tuple[int, int]:
    """Time steps per window and frequency groups per step of HTSAT's ``last_hidden_state``."""
    ratio = config.spec_size // config.num_mel_bins
    frames = features.window_samples // features.hop_length + 1
    if features.n_mels != config.num_mel_bins:
        raise ValueError(f"clap: the front end gives {features.n_mels} mel bins, the model takes {config.num_mel_bins}")
    if ratio < 1 or frames > config.spec_size * ratio:
        raise ValueError(f"clap: {frames} frames per window do not fit HTSAT's {config.spec_size * max(ratio, 1)}-frame input")
    stride = config.patch_stride if isinstance(config.patch_stride, int) else config.patch_stride[0]
    side = config.spec_size // stride // 2 ** (len(config.depths) - 1)  # final token grid is side x side
    return side * ratio, side // ratio


# ---------------------------------------------------------------------------------------------
# Reading a Hugging Face directory
# ---------------------------------------------------------------------------------------------

_TEXT_KEYS = ("text_model.", "text_projection.", "logit_scale_a", "logit_scale_t")
_DERIVED = ("relative_position_index", "num_batches_tracked")  # rebuilt when a file lacks them


def load_clap_audio(path: str | Path) -> tuple[ClapAudioModel, ClapProjectionLayer | None, ClapFeatureSettings]:
    """The audio tower (float32), its projection (if saved) and front end of the HF directory ``path``.

    Raises:
        CheckpointError: not a CLAP directory, or weights that do not fit its config exactly
            (names the file and the first missing / unexpected keys).
    """
    path = Path(path)
    meta = read_hf_config(path, ("clap", "clap_audio_model"))
    config = ClapConfig.from_pretrained(path).audio_config if meta["model_type"] == "clap" else ClapAudioConfig.from_pretrained(path)
    files = hf_weight_files(path)
    source = ", ".join(str(f) for f in files)
    state = {k: v.float() if v.is_floating_point() else v for k, v in read_hf_tensors(files, keep=lambda k: not k.startswith(_TEXT_KEYS)).items()}
    # A ClapAudioModel save has audio_encoder.* at the top; the others nest it in audio_model.
    tower = "" if meta["model_type"] == "clap_audio_model" and not any(k.startswith("audio_model.") for k in state) else "audio_model."
    model = ClapAudioModel(config)
    projection = ClapProjectionLayer(config) if tower else None
    expected = {f"{tower}{k}": tuple(v.shape) for k, v in model.state_dict().items()}
    if projection is not None:
        expected.update({f"audio_projection.{k}": tuple(v.shape) for k, v in projection.state_dict().items()})
    expected = {k: s for k, s in expected.items() if k in state or not k.endswith(_DERIVED)}
    check_state_dict(expected, state, source, CLAP_FORMAT)
    model.load_state_dict({k.removeprefix(tower): v for k, v in state.items() if k.startswith(tower) and not k.startswith("audio_projection.")}, strict=False)
    if projection is not None:
        projection.load_state_dict({k.removeprefix("audio_projection."): v for k, v in state.items() if k.startswith("audio_projection.")})
    return model.eval(), projection, read_clap_preprocessor(path, config)


def read_clap_preprocessor(path: Path, config: ClapAudioConfig) -> ClapFeatureSettings:
    """The ``ClapFeatureExtractor`` settings of ``path/preprocessor_config.json`` (LAION's when absent).

    The filter bank follows ``config.enable_fusion`` (see the module docs), not ``truncation``.
    """
    scale: Literal["slaney", "htk"] = "htk" if config.enable_fusion else "slaney"
    file = path / "preprocessor_config.json"
    if not file.is_file():
        log.warning("%s: no preprocessor_config.json; using LAION's CLAP front end (48 kHz, 64 mels, 50-14000 Hz, 10 s)", path)
        return ClapFeatureSettings(n_mels=config.num_mel_bins, mel_scale=scale)
    pre = json.loads(file.read_text())
    kind = pre.get("feature_extractor_type", "ClapFeatureExtractor")
    if kind != "ClapFeatureExtractor":
        raise CheckpointError(f"{file}: feature_extractor_type {kind!r}, expected 'ClapFeatureExtractor'")
    if pre.get("feature_size", config.num_mel_bins) != config.num_mel_bins:
        raise CheckpointError(f"{file}: feature_size={pre['feature_size']} does not match config.json's num_mel_bins {config.num_mel_bins}")
    d = ClapFeatureSettings(f_min=0.0)  # ClapFeatureExtractor's defaults for keys a file lacks
    try:
        return _settings_from(pre, d, scale)
    except ValueError as err:
        raise CheckpointError(f"{file}: {err}") from None


def _settings_from(pre: dict[str, Any], d: ClapFeatureSettings, scale: Literal["slaney", "htk"]) -> ClapFeatureSettings:
    return ClapFeatureSettings(
        sample_rate=int(pre.get("sampling_rate", d.sample_rate)),
        n_mels=int(pre.get("feature_size", d.n_mels)),
        n_fft=int(pre.get("fft_window_size", d.n_fft)),
        hop_length=int(pre.get("hop_length", d.hop_length)),
        f_min=float(pre.get("frequency_min", d.f_min)),
        f_max=float(pre.get("frequency_max", d.f_max)),
        max_length_s=float(pre.get("max_length_s", d.max_length_s)),
        padding=pre.get("padding", d.padding),
        mel_scale=scale,
    )


def clap_tokens(lengths: Tensor, tokens_per_window: int, window_samples: int) -> Tensor:
    """Samples ``[b]`` -> tokens ``[b]``: ``ceil(n * tokens_per_window / window_samples)``."""
    w = window_samples
    return torch.div(lengths.to(torch.long) * tokens_per_window + w - 1, w, rounding_mode="floor")
