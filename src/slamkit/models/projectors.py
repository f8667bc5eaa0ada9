"""Projectors: map audio-encoder frames to LLM input embeddings.

A projector takes encoder features ``[b, t, d_in]`` with the number of valid frames per sample
``[b]`` and returns ``[b, t_p, d_out]`` embeddings plus the number of valid output positions
``[b]``. ``length_rule()`` states those counts as a pure rule (:mod:`slamkit.models.lengths`) and
``output_lengths`` applies it, so the collator inserts the right number of audio placeholders
without running the network.

Registered entries (SLAM-LLM's projectors, with the tail and padding handled exactly):

* ``linear``  -- concatenate ``k`` frames, Linear -> ReLU -> Linear (SLAM-ASR's projector).
* ``conv1d``  -- Conv1d(kernel k, stride k) -> ReLU -> Linear -> ReLU -> Linear.
* ``mlp``     -- concatenate ``k`` frames, RMSNorm -> SwiGLU -> Linear.
* ``qformer`` -- learnable queries cross-attending to the frames, globally or per window.
* ``hybrid``  -- global ``qformer`` queries, then ``linear``'s time-ordered groups; it builds on
  the classes here, so it lives and registers in :mod:`slamkit.models.projector_hybrid`, which
  the ``slamkit.models`` package imports (as ``slamkit.models.encoders`` imports its families).

Every projector zeroes frames past a sample's length before using them and zeroes its own
outputs past the returned lengths, so a sample's outputs never depend on the batch it is in, and
garbage (even NaN) in padding cannot leak into valid positions.
"""

from __future__ import annotations

import functools
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from slamkit.config import ProjectorConfig
from slamkit.models.lengths import LengthRule, ceil_div, fixed_count
from slamkit.models.encoders.base import frame_mask
from slamkit.registry import Registry

__all__ = [
    "PROJECTORS",
    "Conv1dProjector",
    "LinearProjector",
    "MLPProjector",
    "Projector",
    "QFormerProjector",
    "attention_ignore_mask",
    "build_projector",
    "projector_names",
]


# ---------------------------------------------------------------------------------------------
# Length and padding helpers
# ---------------------------------------------------------------------------------------------


def _zero_past(x: Tensor, lengths: Tensor) -> Tensor:
    """Zero the positions of ``x`` ``[b, t, d]`` at or past each sample's length ``[b]``.

    ``torch.where`` rather than a multiply by the mask: ``0 * nan`` is ``nan``, and padding may hold
    anything (uninitialised buffers, a cache of another length).
    """
    mask = frame_mask(lengths, x.shape[1])
    return torch.where(mask[..., None], x, torch.zeros((), dtype=x.dtype, device=x.device))


def _pad_time(x: Tensor, multiple: int) -> Tensor:
    """Zero-pad the time axis of ``[b, t, ...]`` up to a multiple of ``multiple``."""
    pad = (-x.shape[1]) % multiple
    if pad == 0:
        return x
    # F.pad pads dimensions from the last backwards: leave every trailing dim, pad dim 1 at the end.
    return F.pad(x, (0, 0) * (x.dim() - 2) + (0, pad))


def _stack_frames(feats: Tensor, k: int) -> Tensor:
    """Concatenate ``k`` consecutive frames: ``[b, t, d]`` -> ``[b, ceil(t / k), k * d]``.

    The tail is zero-padded, not dropped, so the last partial group still reaches the LLM. The
    concatenation is frame-major (frame 0's features first), as in SLAM-LLM, so its released
    ``linear1``/``linear2`` projector weights load unchanged.
    """
    feats = _pad_time(feats, k)
    b, t, d = feats.shape
    return feats.reshape(b, t // k, k * d)


def _check_positive(key: str, value: int) -> None:
    """Fail with the config key name when a size is not a positive integer."""
    if value < 1:
        raise ValueError(f"projector.{key} must be >= 1, got {value}")


# ---------------------------------------------------------------------------------------------
# Base classes
# ---------------------------------------------------------------------------------------------


class Projector(nn.Module):
    """Maps encoder frames ``[b, t, in_dim]`` to LLM embeddings ``[b, t_p, out_dim]``."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.in_dim = in_dim
        self.out_dim = out_dim

    def length_rule(self) -> LengthRule:
        """Valid input frames -> valid output positions, as a pure rule (:mod:`slamkit.models.lengths`)."""
        raise NotImplementedError

    def output_lengths(self, lengths: Tensor) -> Tensor:
        """Valid output positions ``[b]`` for ``[b]`` valid input frames; equals what forward returns."""
        return self.length_rule()(lengths)

    def forward(self, feats: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Project frames.

        Args:
            feats: ``[b, t, in_dim]`` encoder output; frames at or past ``lengths`` are padding.
            lengths: ``[b]`` valid frames per sample (each ``<= t``).

        Returns:
            ``[b, t_p, out_dim]`` embeddings, zero past the valid positions, and ``[b]`` valid
            output positions (``output_lengths(lengths)``).
        """
        raise NotImplementedError

    def _check_input(self, feats: Tensor, lengths: Tensor) -> None:
        """Shape checks with messages that say what was expected (cheap: no device sync)."""
        if feats.dim() != 3 or feats.shape[-1] != self.in_dim:
            raise ValueError(f"{type(self).__name__} expects feats [b, t, {self.in_dim}], got {list(feats.shape)}")
        if feats.shape[1] == 0:
            raise ValueError(f"{type(self).__name__} got feats with no frames: {list(feats.shape)}")
        if lengths.shape != feats.shape[:1]:
            raise ValueError(f"lengths must be [b] = [{feats.shape[0]}], got {list(lengths.shape)}")


class _GroupingProjector(Projector):
    """A projector that turns each group of ``k`` frames into one output position.

    Subclasses implement ``_project``; this class owns masking and the ``ceil(len / k)`` rule.
    """

    def __init__(self, in_dim: int, out_dim: int, k: int) -> None:
        super().__init__(in_dim, out_dim)
        _check_positive("k", k)
        self.k = k

    def length_rule(self) -> LengthRule:
        """``ceil(lengths / k)``."""
        return functools.partial(ceil_div, k=self.k)

    def forward(self, feats: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """``[b, t, in_dim]``, ``[b]`` -> ``[b, ceil(t / k), out_dim]``, ``[b]``."""
        self._check_input(feats, lengths)
        # Zero padding frames first: the last valid group then sees the same zeros it would see
        # if the sample were run alone (where _pad_time supplies them).
        out = self._project(_zero_past(feats, lengths))
        out_lengths = self.output_lengths(lengths)
        return _zero_past(out, out_lengths), out_lengths

    def _project(self, feats: Tensor) -> Tensor:
        """``[b, t, in_dim]`` (padding already zero) -> ``[b, ceil(t / k), out_dim]``."""
        raise NotImplementedError


# ---------------------------------------------------------------------------------------------
# Frame-grouping projectors
# ---------------------------------------------------------------------------------------------


class LinearProjector(_GroupingProjector):
    """SLAM-ASR's projector: concatenate ``k`` frames -> Linear -> ReLU -> Linear.

    Attribute names (``linear1``, ``linear2``) match SLAM-LLM's ``EncoderProjectorConcat``.
    """

    def __init__(self, in_dim: int, out_dim: int, *, k: int, hidden: int, dropout: float = 0.0) -> None:
        super().__init__(in_dim, out_dim, k)
        _check_positive("hidden", hidden)
        self.linear1 = nn.Linear(k * in_dim, hidden)
        self.relu = nn.ReLU()
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(hidden, out_dim)

    def _project(self, feats: Tensor) -> Tensor:
        """``[b, t, in_dim]`` -> ``[b, ceil(t / k), out_dim]``."""
        hidden = self.dropout(self.relu(self.linear1(_stack_frames(feats, self.k))))
        return self.linear2(hidden)


class Conv1dProjector(_GroupingProjector):
    """Conv1d(in_dim, in_dim, kernel k, stride k) -> ReLU -> Linear -> ReLU -> Linear.

    SLAM-LLM's "cov1d-linear" projector; attribute names match its ``EncoderProjectorCov1d``.
    """

    def __init__(self, in_dim: int, out_dim: int, *, k: int, hidden: int, dropout: float = 0.0) -> None:
        super().__init__(in_dim, out_dim, k)
        _check_positive("hidden", hidden)
        self.conv1d = nn.Conv1d(in_dim, in_dim, kernel_size=k, stride=k)
        self.relu1 = nn.ReLU()
        self.linear1 = nn.Linear(in_dim, hidden)
        self.relu2 = nn.ReLU()
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(hidden, out_dim)

    def _project(self, feats: Tensor) -> Tensor:
        """``[b, t, in_dim]`` -> ``[b, ceil(t / k), out_dim]``."""
        # Pad here rather than with Conv1d(padding=...): conv padding is symmetric and would
        # shift the groups; zeros at the end keep group j = frames [j*k, (j+1)*k).
        x = self.conv1d(_pad_time(feats, self.k).transpose(1, 2)).transpose(1, 2)
        x = self.dropout(self.relu2(self.linear1(self.relu1(x))))
        return self.linear2(x)


class MLPProjector(_GroupingProjector):
    """Concatenate ``k`` frames -> RMSNorm -> SwiGLU(hidden) -> Linear(out_dim).

    The norm puts features from differently scaled encoders on one scale before the gate.
    """

    def __init__(self, in_dim: int, out_dim: int, *, k: int, hidden: int, dropout: float = 0.0) -> None:
        super().__init__(in_dim, out_dim, k)
        _check_positive("hidden", hidden)
        self.norm = nn.RMSNorm(k * in_dim)
        # No biases in the gated pair, as in LLaMA's MLP; the output layer keeps one so the
        # embeddings can sit where the LLM's token embeddings are centred.
        self.gate = nn.Linear(k * in_dim, hidden, bias=False)
        self.up = nn.Linear(k * in_dim, hidden, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, out_dim)

    def _project(self, feats: Tensor) -> Tensor:
        """``[b, t, in_dim]`` -> ``[b, ceil(t / k), out_dim]``."""
        x = self.norm(_stack_frames(feats, self.k))
        return self.out(self.dropout(F.silu(self.gate(x)) * self.up(x)))


# ---------------------------------------------------------------------------------------------
# Q-Former
# ---------------------------------------------------------------------------------------------


def attention_ignore_mask(valid: Tensor) -> Tensor:
    """Key-padding mask for cross-attention that never masks a whole row.

    A window with no valid frame (past a short sample's end) would give a softmax over only -inf
    scores. Whether that is NaN depends on the attention kernel (PyTorch's math path and older
    versions give NaN, and NaN poisons gradients even when the output is discarded), so such
    windows attend to their zeroed frames instead; the Q-Former zeroes their outputs.

    Args:
        valid: ``[n, w]`` bool, True for valid frames.

    Returns:
        ``[n, w]`` bool, True for frames to ignore; no row is all True.
    """
    return ~valid & valid.any(dim=-1, keepdim=True)


class _QFormerBlock(nn.Module):
    """Pre-norm block: self-attention over queries, cross-attention to frames, FFN."""

    def __init__(self, dim: int, frame_dim: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        self.norm_self = nn.LayerNorm(dim)
        self.self_attn = nn.MultiheadAttention(dim, num_heads, dropout=dropout, batch_first=True)
        self.norm_cross = nn.LayerNorm(dim)
        # kdim/vdim let the queries read encoder frames of any width without an extra projection.
        self.cross_attn = nn.MultiheadAttention(
            dim, num_heads, dropout=dropout, batch_first=True, kdim=frame_dim, vdim=frame_dim
        )
        self.norm_ffn = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(
            nn.Linear(dim, 4 * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(4 * dim, dim)
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, queries: Tensor, frames: Tensor, ignore: Tensor) -> Tensor:
        """Update queries.

        Args:
            queries: ``[n, q, dim]``.
            frames: ``[n, w, frame_dim]``.
            ignore: ``[n, w]`` bool, True for frames the queries must not attend to; no row may be
                all True (softmax over only masked keys is NaN).

        Returns:
            ``[n, q, dim]``.
        """
        h = self.norm_self(queries)
        queries = queries + self.dropout(self.self_attn(h, h, h, need_weights=False)[0])
        h = self.norm_cross(queries)
        attended = self.cross_attn(h, frames, frames, key_padding_mask=ignore, need_weights=False)[0]
        queries = queries + self.dropout(attended)
        return queries + self.dropout(self.ffn(self.norm_ffn(queries)))


class QFormerProjector(Projector):
    """Learnable queries that cross-attend to encoder frames (BLIP-2's Q-Former, pre-norm).

    Global (``window=None``): ``num_queries`` outputs per sample, whatever its length.
    Windowed (``window=W``): frames are cut into windows of ``W``; each window yields its own
    ``num_queries`` outputs in time order, so the output length is ``ceil(len / W) * num_queries``
    and grows with the audio, as the LLM's view of a long clip should.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        *,
        hidden: int,
        num_queries: int,
        num_layers: int,
        num_heads: int,
        window: int | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(in_dim, out_dim)
        sizes = {"hidden": hidden, "num_queries": num_queries, "num_layers": num_layers, "num_heads": num_heads}
        for key, value in {**sizes, "window": 1 if window is None else window}.items():
            _check_positive(key, value)
        if hidden % num_heads:
            raise ValueError(f"projector.hidden ({hidden}) must be divisible by projector.num_heads ({num_heads})")
        self.num_queries = num_queries
        self.window = window
        # BLIP-2 initialises its queries with std 0.02; small values keep early attention soft.
        self.queries = nn.Parameter(torch.randn(num_queries, hidden) * 0.02)
        self.frame_norm = nn.LayerNorm(in_dim)
        self.blocks = nn.ModuleList(_QFormerBlock(hidden, in_dim, num_heads, dropout) for _ in range(num_layers))
        self.final_norm = nn.LayerNorm(hidden)
        self.out = nn.Linear(hidden, out_dim)
        # As in SLAM-LLM's Q-Former projector: a LayerNorm after the output projection.
        self.out_norm = nn.LayerNorm(out_dim)

    def length_rule(self) -> LengthRule:
        """``num_queries`` (global) or ``ceil(len / window) * num_queries``."""
        if self.window is None:
            return functools.partial(fixed_count, count=self.num_queries)
        return functools.partial(windowed_queries, window=self.window, num_queries=self.num_queries)

    def forward(self, feats: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """``[b, t, in_dim]``, ``[b]`` -> ``[b, n_windows * num_queries, out_dim]``, ``[b]``."""
        self._check_input(feats, lengths)
        b = feats.shape[0]
        frames, valid = self._windows(feats, lengths)
        ignore = attention_ignore_mask(valid)
        frames = self.frame_norm(frames)
        queries = self.queries.expand(frames.shape[0], -1, -1)
        for block in self.blocks:
            queries = block(queries, frames, ignore)
        out = self.out_norm(self.out(self.final_norm(queries)))
        out = out.reshape(b, -1, self.out_dim)  # windows of one sample are contiguous: time order
        out_lengths = self.output_lengths(lengths)
        return _zero_past(out, out_lengths), out_lengths

    def _windows(self, feats: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Cut frames into windows.

        Args:
            feats: ``[b, t, in_dim]``.
            lengths: ``[b]``.

        Returns:
            ``[b * n, w, in_dim]`` frames with padding zeroed and ``[b * n, w]`` bool validity,
            where ``w`` is the window (``t`` for the global variant) and ``n = ceil(t / w)``.
        """
        b, t, d = feats.shape
        width = self.window if self.window is not None else t
        valid = frame_mask(lengths, t)
        feats = _pad_time(_zero_past(feats, lengths), width)
        valid = _pad_time(valid, width)
        n = feats.shape[1] // width
        return feats.reshape(b * n, width, d), valid.reshape(b * n, width)


# ---------------------------------------------------------------------------------------------
# Registry and builder
# ---------------------------------------------------------------------------------------------

ProjectorBuilder = Callable[[ProjectorConfig, int, int], Projector]

PROJECTORS: Registry[ProjectorBuilder] = Registry("projector")


@PROJECTORS.register("linear")
def _build_linear(cfg: ProjectorConfig, in_dim: int, out_dim: int) -> Projector:
    return LinearProjector(in_dim, out_dim, k=cfg.k, hidden=cfg.hidden, dropout=cfg.dropout)


@PROJECTORS.register("conv1d")
def _build_conv1d(cfg: ProjectorConfig, in_dim: int, out_dim: int) -> Projector:
    return Conv1dProjector(in_dim, out_dim, k=cfg.k, hidden=cfg.hidden, dropout=cfg.dropout)


@PROJECTORS.register("mlp")
def _build_mlp(cfg: ProjectorConfig, in_dim: int, out_dim: int) -> Projector:
    return MLPProjector(in_dim, out_dim, k=cfg.k, hidden=cfg.hidden, dropout=cfg.dropout)


@PROJECTORS.register("qformer")
def _build_qformer(cfg: ProjectorConfig, in_dim: int, out_dim: int) -> Projector:
    # `hidden` is the width of the queries (BLIP-2 uses 768); the FFN inside is 4x that.
    return QFormerProjector(
        in_dim,
        out_dim,
        hidden=cfg.hidden,
        num_queries=cfg.num_queries,
        num_layers=cfg.num_layers,
        num_heads=cfg.num_heads,
        window=cfg.window,
        dropout=cfg.dropout,
    )


def projector_names() -> list[str]:
    """Registered projector names, sorted."""
    return PROJECTORS.names()


def build_projector(cfg: ProjectorConfig, in_dim: int, out_dim: int) -> Projector:
    """Build the projector ``cfg.name`` with random weights seeded by ``cfg.init_seed``.

    Weights are drawn on CPU from the CPU generator, so a seed gives the same weights on every
    machine (move the module afterwards). The global RNG state is forked and restored: building a
    projector does not change the random numbers the rest of the run sees.

    Args:
        cfg: projector config.
        in_dim: encoder feature width ``d_in``.
        out_dim: LLM embedding width ``d_out``.
    """
    builder = PROJECTORS.get(cfg.name)
    with torch.random.fork_rng(devices=[]), torch.device("cpu"):
        # Seed only the CPU generator: torch.manual_seed would also reseed CUDA outside the fork.
        torch.default_generator.manual_seed(cfg.init_seed)
        return builder(cfg, in_dim, out_dim)


def windowed_queries(lengths: Tensor, window: int, num_queries: int) -> Tensor:
    """``ceil(lengths / window) * num_queries``: ``num_queries`` outputs per window of frames."""
    return ceil_div(lengths, window) * num_queries
