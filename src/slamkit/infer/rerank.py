"""Re-ranked decoding (SLAM-AAC's CLAP-Refine): N candidates per clip, scored, the best kept.

With ``decode.rerank`` set, :func:`slamkit.infer.decode.decode_manifest` asks the model for
``decode.rerank_candidates`` distinct hypotheses per clip
(:meth:`~slamkit.models.speech_llm.SpeechLLM.generate_candidates`), a re-ranker scores each
against the clip's audio, and the highest score becomes ``hyp`` (ties: the earlier beam). The
hypothesis line keeps every candidate in beam order as ``candidates: [{"text", "score"}, …]``.

Re-rankers are registered in :data:`RERANKERS` by name: a builder ``(DecodeConfig, device) ->
Reranker``. ``clap`` scores the cosine similarity of a local ``ClapModel``'s audio embedding of the
clip (read again from the record's source at CLAP's 48 kHz through
:func:`slamkit.data.audio.load_audio`, so the LLM encoder's rate does not matter) and its text
embedding of each candidate.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from slamkit.assets import AssetError, resolve_path
from slamkit.config import ConfigError, DecodeConfig
from slamkit.data.audio import load_audio
from slamkit.batch import Batch
from slamkit.data.manifest import Record
from slamkit.models.weights import CheckpointError
from slamkit.models.encoders.clap.text import ClapSimilarity
from slamkit.models.speech_llm import SpeechLLM
from slamkit.registry import Registry


class Reranker(Protocol):
    """Scores candidate texts against their clip's audio (higher is better)."""

    sample_rate: int  # the rate the clips passed to :meth:`score` must have

    def score(self, audio: Sequence[np.ndarray], candidates: Sequence[Sequence[str]]) -> list[list[float]]:
        """``audio[i]`` (mono ``[t_i]``) against each text of ``candidates[i]`` -> one score per text."""
        ...


RERANKERS: Registry[Callable[[DecodeConfig, torch.device], Reranker]] = Registry("re-ranker")


class ClapReranker:
    """Cosine similarity between CLAP's audio embedding of the clip and its text embedding of each candidate."""

    def __init__(self, clap: ClapSimilarity) -> None:
        self.clap = clap
        self.sample_rate = clap.sample_rate

    def score(self, audio: Sequence[np.ndarray], candidates: Sequence[Sequence[str]]) -> list[list[float]]:
        """See :class:`Reranker`; scores lie in ``[-1, 1]``."""
        return self.clap.scores(audio, candidates)


@RERANKERS.register("clap")
def build_clap_reranker(cfg: DecodeConfig, device: torch.device) -> ClapReranker:
    """The ``clap`` re-ranker from ``cfg.rerank_model`` (errors name that key)."""
    if not cfg.rerank_model:
        raise ConfigError("decode.rerank_model: decode.rerank=clap needs a local Hugging Face ClapModel directory (weights + tokenizer)")
    try:
        clap = ClapSimilarity.from_pretrained(resolve_path(cfg.rerank_model))  # type: ignore[arg-type]
    except (CheckpointError, AssetError, OSError, ValueError) as err:  # missing, not CLAP, garbled, no tokenizer
        raise ConfigError(f"decode.rerank_model={cfg.rerank_model!r} is not a usable CLAP model (a Hugging Face ClapModel directory): {err}") from None
    return ClapReranker(clap.to(device).eval())


def build_reranker(cfg: DecodeConfig, device: torch.device | str = "cpu") -> Reranker | None:
    """The re-ranker ``cfg.rerank`` names, on ``device``; None when re-ranking is off."""
    if cfg.rerank is None:
        return None
    if cfg.rerank not in RERANKERS:
        raise ConfigError(f"decode.rerank: unknown re-ranker {cfg.rerank!r}; registered: {', '.join(RERANKERS.names())} (or null)")
    if cfg.rerank_candidates < 1:
        raise ConfigError(f"decode.rerank_candidates must be >= 1, got {cfg.rerank_candidates}")
    return RERANKERS.get(cfg.rerank)(cfg, torch.device(device))


@dataclass
class Reranked:
    """One clip's outcome: the kept hypothesis and every candidate (beam order) with its score."""

    hyp: str
    candidates: list[dict[str, Any]] = field(default_factory=list)  # [{"text": str, "score": float}]


def pick_best(texts: Sequence[str], scores: Sequence[float]) -> Reranked:
    """The highest-scoring text (the earliest on ties) and the scored list, in the given order."""
    if len(texts) != len(scores):
        raise ValueError(f"{len(texts)} candidates but {len(scores)} scores")
    if not texts:
        return Reranked("", [])
    best = int(np.argmax(np.asarray(scores, dtype=np.float64)))  # argmax returns the first maximum
    return Reranked(texts[best], [{"text": t, "score": float(s)} for t, s in zip(texts, scores)])


def rerank_batch(model: SpeechLLM, batch: Batch, records: Mapping[str, Record], reranker: Reranker, cfg: DecodeConfig) -> dict[str, Reranked]:
    """Generate ``cfg.rerank_candidates`` candidates for each clip of ``batch``, score them, keep the best.

    ``records`` maps the batch's keys to their manifest records (for the audio at the re-ranker's rate).
    """
    candidates = model.generate_candidates(batch, cfg, cfg.rerank_candidates)
    clips = [records[key] for key in batch.keys]
    audio = [load_audio(rec.source, reranker.sample_rate, rec.offset, rec.duration) for rec in clips]
    scores = reranker.score(audio, candidates)
    return {key: pick_best(texts, s) for key, texts, s in zip(batch.keys, candidates, scores)}
