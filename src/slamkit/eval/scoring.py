"""Scoring a hypothesis file: the metric each line needs, the normaliser each metric uses.

Decoding writes one JSON object per line; :func:`score_file` reads that file so it can be re-run
with another normaliser or metric. A line's metric follows from its ``task`` through the
``task_metric`` mapping the caller supplies (the task registry lives in :mod:`slamkit.data.tasks`,
above this package; :func:`slamkit.infer.score.score_file` passes it).
"""

from __future__ import annotations

import logging

from pathlib import Path
from typing import Any, Callable, Sequence, Union

from slamkit.eval import bwer as _bwer  # noqa: F401  (registers "bwer")
from slamkit.eval import caption as _caption  # noqa: F401  (registers "caption")
from slamkit.eval import metrics as _metrics  # noqa: F401  (registers "wer", "cer")
from slamkit.eval import translation as _translation  # noqa: F401  (registers "bleu")
from slamkit.eval.hyps import METRICS, HypRecord, read_hyp_file
from slamkit.eval.normalizer import DEFAULT_NORMALIZER, get_normalizer

log = logging.getLogger("slamkit")


def score_records(
    records: Sequence[HypRecord], metric: str = "wer", normalizer: str = DEFAULT_NORMALIZER
) -> dict[str, Any]:
    """Apply the metric registered as ``metric``; adds ``"metric"`` and ``"normalizer"`` keys."""
    result = METRICS.get(metric)(records, normalizer)
    return {**result, "metric": metric, "normalizer": normalizer}


# Normaliser each metric uses unless one is named (B-WER matches words LibriSpeech-style; captions tokenise with PTB).
METRIC_NORMALIZERS = {"bwer": "librispeech", "caption": "none", "bleu": "none"}


def score_file(
    path: Union[str, Path], metric: str | None = None, normalizer: str | None = None,
    task_metric: Callable[[str], str] | None = None,
) -> dict[str, Any]:
    """Score a JSONL file of ``{"key", "hyp", "ref"}`` lines, e.g. ``{"wer": 0.021, ...}``.

    ``metric`` None takes it from the lines' ``task`` (``slamkit decode`` writes it; no task means
    ``wer``; ``task_metric`` maps a task name to its metric and raises ``ValueError`` naming the
    registered tasks for an unknown one); a file mixing tasks of different metrics gives ``{"by_metric": {metric: result}}``.
    ``normalizer`` None uses the metric's own (:data:`METRIC_NORMALIZERS`, else Whisper's).
    Names given are checked before the file is read.
    """
    if metric is not None:
        METRICS.get(metric)
    if normalizer is not None:
        get_normalizer(normalizer)
    records, unscored = read_hyp_file(path)
    groups = {metric: records} if metric is not None else _group_by_metric(records, task_metric)
    results = {m: score_records(recs, m, normalizer or METRIC_NORMALIZERS.get(m, DEFAULT_NORMALIZER)) for m, recs in groups.items()}
    result = next(iter(results.values())) if len(results) == 1 else {"by_metric": results}
    return {**result, **_error_counts(records, unscored)}


def _error_counts(records: Sequence[HypRecord], unscored: list[str]) -> dict[str, Any]:
    """What `slamkit decode` could not do, said next to the score: records it could not transcribe (scored
    as empty hypotheses) and manifest lines it could not use (not scored). Warned about, never hidden."""
    failed = [r.where for r in records if "error" in r.extra]
    if failed:
        log.warning("%d line(s) carry a decode error and are scored as empty hypotheses (first: %s)", len(failed), failed[0])
    if unscored:
        log.warning("%d line(s) stand for unusable manifest lines and are not scored (first: %s)", len(unscored), unscored[0])
    return {"decode_errors": len(failed), "unscored_lines": len(unscored)} if failed or unscored else {}


def _group_by_metric(records: Sequence[HypRecord], task_metric: Callable[[str], str] | None) -> dict[str, list[HypRecord]]:
    """Records grouped by their task's metric (``wer`` for lines without a task), in file order."""
    groups: dict[str, list[HypRecord]] = {}
    for rec in records:
        task = rec.extra.get("task")
        if task is not None and task_metric is None:
            raise ValueError(f"{rec.where}: the line names task {task!r} but no task registry was given; pass metric=")
        try:
            metric = task_metric(task) if task is not None and task_metric is not None else "wer"
        except ValueError as err:
            raise ValueError(f"{rec.where}: {err}") from None
        groups.setdefault(metric, []).append(rec)
    return groups
