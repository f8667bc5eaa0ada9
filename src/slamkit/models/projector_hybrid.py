"""The ``hybrid`` projector: learned global queries, then time-ordered frames, in one sequence.

ASR wants the audio as a time-ordered sequence the LLM can read from left to right (the ``linear``
projector: one embedding per ``k`` frames). Captioning wants a summary of the whole clip, which the
global Q-Former gives (``num_queries`` learned queries cross-attending to every frame), but a fixed
number of outputs cannot carry a long transcript. One model trained on both tasks gets both views:

* **summary**: a global :class:`~slamkit.models.projectors.QFormerProjector` (``num_queries``
  queries of width ``query_hidden``, ``num_layers`` pre-norm blocks, ``num_heads`` heads) that
  attends to every valid frame: ``Q`` outputs per clip, whatever its length;
* **time**: a :class:`~slamkit.models.projectors.LinearProjector` (``k`` frames concatenated,
  Linear(``hidden``) -> ReLU -> Linear): ``ceil(t_e / k)`` outputs in time order.

The LLM sees ``[summary_1 … summary_Q, time_1 … time_n]``: ``Q + ceil(t_e / k)`` audio positions
(:func:`queries_then_groups`, the placeholder count the collator inserts). The summary comes first
so that, under the LLM's causal attention, every time-ordered position can already read the
clip-level context; the padding of a batch stays at the end, after each clip's last frame group,
as the splice expects. The two branches are the registered ``linear`` and ``qformer`` modules
themselves (same masking, same batch invariance, same initialisation), so a comparison against
them isolates the one change: both views at once.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from slamkit.config import ProjectorConfig
from slamkit.models.lengths import LengthRule, ceil_div
from slamkit.models.projectors import PROJECTORS, LinearProjector, Projector, QFormerProjector

__all__ = ["HybridProjector", "build_hybrid", "queries_then_groups"]


def queries_then_groups(lengths: Tensor, k: int, num_queries: int) -> Tensor:
    """``num_queries + ceil(lengths / k)``: the global queries plus one position per ``k`` frames."""
    return ceil_div(lengths, k) + num_queries


class HybridProjector(Projector):
    """Global summary queries followed by time-ordered frame groups (module docstring).

    Submodules: ``summary`` (global Q-Former, ``num_queries`` outputs) and ``time`` (linear
    projector, ``ceil(len / k)`` outputs); parameter names are theirs under those prefixes.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        *,
        k: int,
        hidden: int,
        num_queries: int,
        query_hidden: int,
        num_layers: int,
        num_heads: int,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(in_dim, out_dim)
        self.num_queries = num_queries
        self.k = k
        self.summary = QFormerProjector(
            in_dim,
            out_dim,
            hidden=query_hidden,
            num_queries=num_queries,
            num_layers=num_layers,
            num_heads=num_heads,
            window=None,
            dropout=dropout,
        )
        self.time = LinearProjector(in_dim, out_dim, k=k, hidden=hidden, dropout=dropout)

    def length_rule(self) -> LengthRule:
        """``num_queries + ceil(lengths / k)``."""
        return functools.partial(queries_then_groups, k=self.k, num_queries=self.num_queries)

    def forward(self, feats: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Project frames into summary + time-ordered embeddings.

        Args:
            feats: ``[b, t, in_dim]`` encoder output; frames at or past ``lengths`` are padding.
            lengths: ``[b]`` valid frames per sample.

        Returns:
            ``[b, num_queries + ceil(t / k), out_dim]`` embeddings (sample ``i``'s first
            ``num_queries + ceil(lengths[i] / k)`` rows valid, the rest zero) and those counts ``[b]``.
        """
        self._check_input(feats, lengths)
        summary, _ = self.summary(feats, lengths)  # [b, Q, out_dim], all valid
        frames, _ = self.time(feats, lengths)  # [b, ceil(t / k), out_dim], zero past ceil(len / k)
        # The time branch's padding is already zero and sits at the end of each row, so the
        # concatenation keeps every sample's valid positions first and contiguous.
        return torch.cat([summary, frames], dim=1), self.output_lengths(lengths)


@PROJECTORS.register("hybrid")
def build_hybrid(cfg: ProjectorConfig, in_dim: int, out_dim: int) -> Projector:
    """The ``hybrid`` projector from ``cfg`` (``query_hidden`` null: the encoder's width ``in_dim``)."""
    query_hidden = cfg.query_hidden if cfg.query_hidden is not None else in_dim
    if query_hidden < 1:
        raise ValueError(f"projector.query_hidden must be >= 1 (or null), got {query_hidden}")
    if query_hidden % cfg.num_heads:
        raise ValueError(
            f"projector.query_hidden ({query_hidden}{'' if cfg.query_hidden is not None else ', the encoder width'}) "
            f"must be divisible by projector.num_heads ({cfg.num_heads})"
        )
    return HybridProjector(
        in_dim,
        out_dim,
        k=cfg.k,
        hidden=cfg.hidden,
        num_queries=cfg.num_queries,
        query_hidden=query_hidden,
        num_layers=cfg.num_layers,
        num_heads=cfg.num_heads,
        dropout=cfg.dropout,
    )
