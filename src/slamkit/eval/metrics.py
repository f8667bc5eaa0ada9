"""Scoring: WER and CER over hypothesis files, with a registry for further metrics.

Decoding writes one JSON object per line, ``{"key", "hyp", "ref"}``; scoring reads that file
(:func:`score_file`) so it can be re-run with another normaliser or metric. Metrics are looked up
by name in :data:`METRICS`; each takes the list of :class:`HypRecord` and a normaliser name and
returns a flat dict. Later metrics (B-WER, captioning) register themselves here and may read
extra fields of a record (``HypRecord.extra``) or a list of references.

Alignment is jiwer's (unit-cost Levenshtein). Counts are summed over the corpus, and the error
rate is (S + D + I) / (S + D + H): a corpus-level rate, not a mean of per-utterance rates.
An utterance whose normalised reference is empty adds its hypothesis words as insertions; if
every reference is empty the rate is undefined and a ValueError says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence, Union

import jiwer

from slamkit.eval.normalizer import DEFAULT_NORMALIZER, get_normalizer
from slamkit.registry import Registry

Reference = Union[str, list[str]]


@dataclass(frozen=True)
class HypRecord:
    """One decoded utterance as read from a hypothesis file.

    ``where`` is ``"file:line"`` for error messages; ``extra`` holds any other fields of the line.
    """

    key: str
    hyp: str
    ref: Reference
    where: str = "<memory>"
    extra: Mapping[str, Any] = field(default_factory=dict)


MetricFn = Callable[[Sequence[HypRecord], str], dict[str, Any]]
METRICS: Registry[MetricFn] = Registry("metric")


def _normalized_pairs(
    hyps: Sequence[str], refs: Sequence[str], normalizer: str
) -> tuple[list[str], list[str]]:
    """Normalise both sides and collapse whitespace; checks the lists line up."""
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} references")
    if not refs:
        raise ValueError("no utterances to score")
    norm = get_normalizer(normalizer)
    return [" ".join(norm(h).split()) for h in hyps], [" ".join(norm(r).split()) for r in refs]


def _rate(
    unit: str,
    counts: Union[jiwer.WordOutput, jiwer.CharacterOutput],
    utterances: int,
    empty_refs: int,
    normalizer: str,
) -> dict[str, Any]:
    """Build the result dict from jiwer's counts; refuses a corpus with no reference units."""
    ref_units = counts.hits + counts.substitutions + counts.deletions
    if ref_units == 0:
        raise ValueError(
            f"the error rate is undefined: all {utterances} references are empty after "
            f"{normalizer!r} normalisation (the hypotheses hold {counts.insertions} {unit}s)"
        )
    errors = counts.substitutions + counts.deletions + counts.insertions
    return {
        "substitutions": counts.substitutions,
        "insertions": counts.insertions,
        "deletions": counts.deletions,
        "hits": counts.hits,
        f"ref_{unit}s": ref_units,
        "utterances": utterances,
        "empty_refs": empty_refs,
        "rate": errors / ref_units,
    }


def word_error(
    hyps: Sequence[str], refs: Sequence[str], normalizer: str = DEFAULT_NORMALIZER
) -> dict[str, Any]:
    """Corpus word error rate after normalising both sides.

    Returns ``{"wer", "substitutions", "insertions", "deletions", "hits", "ref_words",
    "utterances", "empty_refs"}``; ``wer`` is a fraction (0.018, not 1.8).
    """
    hyp_n, ref_n = _normalized_pairs(hyps, refs, normalizer)
    counts = jiwer.process_words(ref_n, hyp_n)
    result = _rate("word", counts, len(ref_n), ref_n.count(""), normalizer)
    return {"wer": result.pop("rate"), **result}


def char_error(
    hyps: Sequence[str], refs: Sequence[str], normalizer: str = DEFAULT_NORMALIZER
) -> dict[str, Any]:
    """Corpus character error rate after normalising both sides (spaces count as characters).

    Returns ``{"cer", "substitutions", "insertions", "deletions", "hits", "ref_chars",
    "utterances", "empty_refs"}``.
    """
    hyp_n, ref_n = _normalized_pairs(hyps, refs, normalizer)
    counts = jiwer.process_characters(ref_n, hyp_n)
    result = _rate("char", counts, len(ref_n), ref_n.count(""), normalizer)
    return {"cer": result.pop("rate"), **result}


def _single_refs(records: Sequence[HypRecord], metric: str) -> tuple[list[str], list[str]]:
    """Hypotheses and references of records that must each carry one reference string."""
    hyps: list[str] = []
    refs: list[str] = []
    for record in records:
        if not isinstance(record.ref, str):
            raise ValueError(f"{record.where}: metric {metric!r} needs one reference string")
        hyps.append(record.hyp)
        refs.append(record.ref)
    return hyps, refs


@METRICS.register("wer")
def _wer_metric(records: Sequence[HypRecord], normalizer: str) -> dict[str, Any]:
    return word_error(*_single_refs(records, "wer"), normalizer=normalizer)


@METRICS.register("cer")
def _cer_metric(records: Sequence[HypRecord], normalizer: str) -> dict[str, Any]:
    return char_error(*_single_refs(records, "cer"), normalizer=normalizer)


def _check_ref(ref: object, where: str) -> None:
    """A reference is a string or a non-empty list of strings (several captions); errors name ``where``."""
    if isinstance(ref, str):
        return
    if not isinstance(ref, list):
        raise ValueError(f"{where}: field 'ref' must be a string or a list of strings, got {type(ref).__name__}")
    if not ref:
        raise ValueError(f"{where}: field 'ref' is an empty list (give at least one reference)")
    for i, item in enumerate(ref):
        if not isinstance(item, str):
            raise ValueError(f"{where}: reference {i} in 'ref' must be a string, got {type(item).__name__}")


def _parse_line(raw: bytes, where: str) -> HypRecord:
    """Decode and validate one JSONL line; every error names ``where`` (file:line)."""
    try:
        obj = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise ValueError(f"{where}: not valid UTF-8 ({err.reason})") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{where}: invalid JSON ({err.msg}, column {err.colno})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    for name in ("key", "hyp", "ref"):
        if name not in obj:
            raise ValueError(f"{where}: missing field {name!r}")
    for name in ("key", "hyp"):
        if not isinstance(obj[name], str):
            got = type(obj[name]).__name__
            raise ValueError(f"{where}: field {name!r} must be a string, got {got}")
    _check_ref(obj["ref"], where)
    extra = {k: v for k, v in obj.items() if k not in ("key", "hyp", "ref")}
    return HypRecord(obj["key"], obj["hyp"], obj["ref"], where, extra)


def read_hyp_records(path: Union[str, Path]) -> list[HypRecord]:
    """Read a hypothesis JSONL file; blank lines are skipped, keys must be unique.

    Raises:
        ValueError: naming the file and line (invalid JSON, missing field, wrong type, duplicate
            key), or the file when it holds no records.
    """
    path = Path(path)
    records: list[HypRecord] = []
    first_seen: dict[str, str] = {}
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            record = _parse_line(raw, f"{path}:{number}")
            first = first_seen.get(record.key)
            if first is not None:
                raise ValueError(f"{record.where}: duplicate key {record.key!r} (first at {first})")
            first_seen[record.key] = record.where
            records.append(record)
    if not records:
        raise ValueError(f"{path}: no hypothesis records")
    return records


def score_records(
    records: Sequence[HypRecord], metric: str = "wer", normalizer: str = DEFAULT_NORMALIZER
) -> dict[str, Any]:
    """Apply the metric registered as ``metric``; adds ``"metric"`` and ``"normalizer"`` keys."""
    result = METRICS.get(metric)(records, normalizer)
    return {**result, "metric": metric, "normalizer": normalizer}


# Normaliser each metric uses unless one is named (B-WER matches words LibriSpeech-style; captions tokenise with PTB).
METRIC_NORMALIZERS = {"bwer": "librispeech", "caption": "none"}


def score_file(
    path: Union[str, Path], metric: str | None = None, normalizer: str | None = None
) -> dict[str, Any]:
    """Score a JSONL file of ``{"key", "hyp", "ref"}`` lines, e.g. ``{"wer": 0.021, ...}``.

    ``metric`` None takes it from the lines' ``task`` (``slamkit decode`` writes it; no task means
    ``wer``); a file mixing tasks of different metrics gives ``{"by_metric": {metric: result}}``.
    ``normalizer`` None uses the metric's own (:data:`METRIC_NORMALIZERS`, else Whisper's).
    Names given are checked before the file is read.
    """
    if metric is not None:
        METRICS.get(metric)
    if normalizer is not None:
        get_normalizer(normalizer)
    records = read_hyp_records(path)
    groups = {metric: records} if metric is not None else _group_by_metric(records)
    results = {m: score_records(recs, m, normalizer or METRIC_NORMALIZERS.get(m, DEFAULT_NORMALIZER)) for m, recs in groups.items()}
    return next(iter(results.values())) if len(results) == 1 else {"by_metric": results}


def _group_by_metric(records: Sequence[HypRecord]) -> dict[str, list[HypRecord]]:
    """Records grouped by their task's metric (``wer`` for lines without a task), in file order."""
    from slamkit.data.tasks import TASKS

    groups: dict[str, list[HypRecord]] = {}
    for rec in records:
        task = rec.extra.get("task")
        if task is not None and task not in TASKS:
            raise ValueError(f"{rec.where}: unknown task {task!r}; registered tasks: {', '.join(TASKS.names())}")
        groups.setdefault(TASKS.get(task).metric if task else "wer", []).append(rec)
    return groups


def normalize_lines(lines: Iterable[str], normalizer: str = DEFAULT_NORMALIZER) -> Iterator[str]:
    """Normalise each line (its trailing newline removed first), lazily."""
    norm = get_normalizer(normalizer)
    for line in lines:
        yield norm(line.rstrip("\r\n"))


@METRICS.register("bwer")
def _bwer_metric(records: Sequence[HypRecord], normalizer: str) -> dict[str, Any]:
    """WER, B-WER and U-WER of lines carrying ``biasing_words`` (:mod:`slamkit.eval.bwer`)."""
    from slamkit.eval.bwer import bwer_metric

    return bwer_metric(records, normalizer)


@METRICS.register("caption")
def _caption_metric(records: Sequence[HypRecord], normalizer: str) -> dict[str, Any]:
    """BLEU-1..4, METEOR, ROUGE-L, CIDEr-D as pycocoevalcap computes them (:mod:`slamkit.eval.caption`)."""
    from slamkit.eval.caption import caption_metric

    return caption_metric(records, normalizer)
