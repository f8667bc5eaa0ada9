"""Speech-translation metrics: corpus BLEU and chrF, as sacrebleu computes them (metric ``bleu``).

sacrebleu's defaults are the convention papers report: BLEU with its ``13a`` tokenizer on cased,
unnormalised text, chrF with character 6-grams; both over the whole set, with every reference a
line may carry (``ref`` a string or a list). The ``normalizer`` of `slamkit score` does not apply
to them: BLEU's own tokenizer is part of its definition, so scores stay comparable with published
ones. Lines whose ``target_language`` is Chinese, Japanese or Korean are tokenised as sacrebleu
does for those languages (``zh``, ``ja-mecab``, ``ko-mecab``; the last two need ``sacrebleu[ja]`` /
``sacrebleu[ko]``, and their absence is a clear error).

Chain-of-thought translation (task ``st_cot``, as CoT-ST): the model writes the transcript, then a
separator, then the translation, in one generation. A hypothesis line that carries a ``separator``
field is split at its first occurrence, in the hypothesis and in the reference alike: BLEU and
chrF score only the translations, and the transcripts give ``transcript_wer`` (Whisper's English
normaliser unless another is named). An output without the separator has no translation: it
scores as an empty one (SLAM-LLM's scorer does the same) and is counted in ``no_separator``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from slamkit.eval.hyps import METRICS, HypRecord

#: The default text between transcript and translation in a chain-of-thought target.
COT_SEPARATOR = "<|translation|>"
#: The hypothesis-line (and manifest-record) field that names a line's separator.
SEPARATOR_FIELD = "separator"
#: sacrebleu tokenizer by target language (the rest use ``13a``).
TOKENIZERS = {"chinese": "zh", "japanese": "ja-mecab", "korean": "ko-mecab"}


def join_cot(transcript: str, translation: str, separator: str = COT_SEPARATOR) -> str:
    """The chain-of-thought target: ``"<transcript> <separator> <translation>"``."""
    return f"{' '.join(transcript.split())} {separator} {' '.join(translation.split())}"


def split_cot(text: str, separator: str) -> tuple[str, str | None]:
    """``(transcript, translation)`` of ``text`` split at the first ``separator``; translation ``None`` without one."""
    head, found, tail = text.partition(separator)
    if not found:
        return text.strip(), None
    return head.strip(), tail.strip()


def _references(refs: Sequence[str | list[str]]) -> list[list[str]]:
    """sacrebleu's reference streams: stream j holds each line's j-th reference ("" past a line's last one)."""
    lists = [[r] if isinstance(r, str) else list(r) for r in refs]
    width = max((len(r) for r in lists), default=1)
    return [[r[j] if j < len(r) else "" for r in lists] for j in range(width)]


def _tokenizer(records: Sequence[HypRecord]) -> str:
    """The sacrebleu tokenizer the lines' ``target_language`` asks for; mixed needs fail."""
    wanted = {TOKENIZERS.get(str(r.extra.get("target_language", "")).strip().lower(), "13a") for r in records}
    if len(wanted) > 1:
        raise ValueError(f"the lines mix target languages that BLEU tokenises differently ({', '.join(sorted(wanted))}); "
                         "score each language's lines in a file of its own")
    return wanted.pop() if wanted else "13a"


def _cot_parts(records: Sequence[HypRecord]) -> tuple[list[str], list[str | list[str]], dict[str, Any]]:
    """Translations to score (hyps, refs) and, when lines carry a separator, the transcript WER inputs."""
    hyps: list[str] = []
    refs: list[str | list[str]] = []
    transcripts: tuple[list[str], list[str]] = ([], [])
    missing = 0
    for r in records:
        separator = r.extra.get(SEPARATOR_FIELD)
        if separator is None:
            hyps.append(r.hyp)
            refs.append(r.ref)
            continue
        if not isinstance(separator, str) or not separator.strip():
            raise ValueError(f"{r.where}: field {SEPARATOR_FIELD!r} must be a non-empty string, got {separator!r}")
        ref_parts = [split_cot(ref, separator) for ref in ([r.ref] if isinstance(r.ref, str) else r.ref)]
        if any(translation is None for _, translation in ref_parts):
            raise ValueError(f"{r.where}: the reference has no separator {separator!r} between transcript and translation")
        transcript, translation = split_cot(r.hyp, separator)
        missing += translation is None
        hyps.append(translation or "")
        refs.append([t for _, t in ref_parts] if len(ref_parts) > 1 else str(ref_parts[0][1]))
        transcripts[0].append(transcript)
        transcripts[1].append(ref_parts[0][0])
    extra: dict[str, Any] = {"cot_lines": len(transcripts[0]), "no_separator": missing} if transcripts[0] else {}
    return hyps, refs, {**extra, "_transcripts": transcripts}


@METRICS.register("bleu")
def bleu_metric(records: Sequence[HypRecord], normalizer: str) -> dict[str, Any]:
    """``bleu`` and ``chrf`` (0-100) over ``records``, with BLEU's n-gram precisions and brevity penalty;
    for chain-of-thought lines, of the translation part only, plus ``transcript_wer`` (a fraction)."""
    from sacrebleu.metrics import BLEU, CHRF

    from slamkit.eval.metrics import word_error
    from slamkit.eval.normalizer import DEFAULT_NORMALIZER

    if not records:
        raise ValueError("no hypotheses to score")
    hyps, refs, cot = _cot_parts(records)
    transcript_hyps, transcript_refs = cot.pop("_transcripts")
    streams = _references(refs)
    tokenize = _tokenizer(records)
    try:
        scorer = BLEU(tokenize=tokenize)
    except RuntimeError as err:  # sacrebleu's message for a tokenizer whose extra packages are missing
        raise ValueError(f"BLEU with sacrebleu's {tokenize!r} tokenizer (the lines' target language): {' '.join(str(err).split())}") from None
    bleu = scorer.corpus_score(hyps, streams)
    chrf = CHRF().corpus_score(hyps, streams)
    result = {"bleu": round(bleu.score, 4), "chrf": round(chrf.score, 4), "precisions": [round(p, 4) for p in bleu.precisions],
              "brevity_penalty": round(bleu.bp, 4), "hyp_len": bleu.sys_len, "ref_len": bleu.ref_len, "utterances": len(records),
              "signature": str(scorer.get_signature()), **cot}
    if transcript_refs:
        wer_normalizer = DEFAULT_NORMALIZER if normalizer == "none" else normalizer
        result["transcript_wer"] = round(word_error(transcript_hyps, transcript_refs, wer_normalizer)["wer"], 6)
        result["transcript_normalizer"] = wer_normalizer
    return result
