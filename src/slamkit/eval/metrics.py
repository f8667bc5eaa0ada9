"""WER and CER, corpus-level, over hypothesis records.

Metrics are looked up by name in :data:`slamkit.eval.hyps.METRICS`; each takes the list of
:class:`~slamkit.eval.hyps.HypRecord` and a normaliser name and returns a flat dict. This module
registers ``wer`` and ``cer``; B-WER and captioning register from their own modules and may read
extra fields of a record (``HypRecord.extra``) or a list of references. Files are scored by
:mod:`slamkit.eval.scoring`.

Alignment is jiwer's (unit-cost Levenshtein). Counts are summed over the corpus, and the error
rate is (S + D + I) / (S + D + H): a corpus-level rate, not a mean of per-utterance rates.
An utterance whose normalised reference is empty adds its hypothesis words as insertions; if
every reference is empty the rate is undefined and a ValueError says so.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Sequence, Union

import jiwer

from slamkit.eval.normalizer import DEFAULT_NORMALIZER, get_normalizer
from slamkit.eval.hyps import METRICS, HypRecord


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


def normalize_lines(lines: Iterable[str], normalizer: str = DEFAULT_NORMALIZER) -> Iterator[str]:
    """Normalise each line (its trailing newline removed first), lazily."""
    norm = get_normalizer(normalizer)
    for line in lines:
        yield norm(line.rstrip("\r\n"))
