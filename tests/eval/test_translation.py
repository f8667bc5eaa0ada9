"""Speech translation: corpus BLEU and chrF through `slamkit score` (task st)."""

from __future__ import annotations

import json

import pytest

from slamkit.eval.scoring import score_records
from slamkit.eval.hyps import HypRecord


def _records(pairs) -> list[HypRecord]:
    return [HypRecord(f"k{i}", hyp, ref, f"h.jsonl:{i + 1}") for i, (hyp, ref) in enumerate(pairs)]


def test_bleu_by_hand() -> None:
    """hyp "the cat sat on the mat" vs ref "the cat sat on a mat": clipped n-gram precisions 5/6, 3/5, 2/4, 1/3,
    equal lengths (no brevity penalty): BLEU = (5/6 * 3/5 * 1/2 * 1/3) ** (1/4)."""
    out = score_records(_records([("the cat sat on the mat", "the cat sat on a mat")]), "bleu")
    assert out["bleu"] == pytest.approx(100 * (5 / 6 * 3 / 5 * 1 / 2 * 1 / 3) ** 0.25, abs=1e-3)
    assert out["precisions"] == pytest.approx([100 * 5 / 6, 60.0, 50.0, 100 / 3], abs=1e-3) and out["brevity_penalty"] == 1.0
    assert 0 < out["chrf"] < 100


def test_bleu_perfect_empty_and_several_references() -> None:
    assert score_records(_records([("a b c d e", "a b c d e")]), "bleu")["bleu"] == pytest.approx(100.0)
    assert score_records(_records([("", "a b c d e")]), "bleu")["bleu"] == 0.0
    two = score_records(_records([("the cat is on the mat", ["there is a cat on the mat", "the cat is on the mat"])]), "bleu")
    assert two["bleu"] == pytest.approx(100.0), "a hypothesis equal to one of its references scores 100"


def test_slamkit_score_scores_a_speech_translation_file(tmp_path, capsys) -> None:
    from slamkit.cli import main

    pairs = [("das ist ein sehr gutes Buch über Katzen", "das ist ein sehr gutes Buch über Katzen"),
             ("wir gehen heute in den großen Park", "wir gehen morgen in den großen Park")]
    hyp = tmp_path / "st.hyp.jsonl"
    hyp.write_text("".join(json.dumps({"key": f"k{i}", "hyp": h, "ref": r, "task": "st", "target_language": "German"}) + "\n"
                           for i, (h, r) in enumerate(pairs)))
    assert main(["score", str(hyp)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["metric"] == "bleu" and out["normalizer"] == "none" and 0 < out["bleu"] < 100 and 0 < out["chrf"] < 100
    assert out == {**score_records(_records(pairs), "bleu", "none"), **{k: out[k] for k in out if k in ("hyps",)}}
