"""Speech-translation metrics: corpus BLEU and chrF, as sacrebleu computes them (metric ``bleu``).

sacrebleu's defaults are the convention papers report: BLEU with its ``13a`` tokenizer on cased,
unnormalised text, chrF with character 6-grams; both over the whole set, with every reference a
line may carry (``ref`` a string or a list). The ``normalizer`` of `slamkit score` does not apply:
BLEU's own tokenizer is part of its definition, so scores stay comparable with published ones.
"""

from __future__ import annotations

from typing import Any, Sequence

from slamkit.eval.hyps import METRICS, HypRecord


def _references(records: Sequence[HypRecord]) -> list[list[str]]:
    """sacrebleu's reference streams: stream j holds each line's j-th reference ("" past a line's last one)."""
    refs = [[r.ref] if isinstance(r.ref, str) else list(r.ref) for r in records]
    width = max((len(r) for r in refs), default=1)
    return [[r[j] if j < len(r) else "" for r in refs] for j in range(width)]


@METRICS.register("bleu")
def bleu_metric(records: Sequence[HypRecord], normalizer: str) -> dict[str, Any]:
    """``bleu`` and ``chrf`` (0-100) over ``records``, with BLEU's n-gram precisions and brevity penalty."""
    from sacrebleu.metrics import BLEU, CHRF

    if not records:
        raise ValueError("no hypotheses to score")
    hyps = [r.hyp for r in records]
    refs = _references(records)
    scorer = BLEU()
    bleu = scorer.corpus_score(hyps, refs)
    chrf = CHRF().corpus_score(hyps, refs)
    return {"bleu": round(bleu.score, 4), "chrf": round(chrf.score, 4), "precisions": [round(p, 4) for p in bleu.precisions],
            "brevity_penalty": round(bleu.bp, 4), "hyp_len": bleu.sys_len, "ref_len": bleu.ref_len, "utterances": len(records),
            "signature": str(scorer.get_signature())}
