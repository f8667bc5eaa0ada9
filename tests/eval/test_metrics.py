"""WER/CER: hand-counted S/I/D, empty references, hypothesis-file parsing and its errors."""

from __future__ import annotations

import json

import pytest

from slamkit.eval.hyps import METRICS, HypRecord, read_hyp_records
from slamkit.eval.metrics import char_error, normalize_lines, word_error
from slamkit.eval.scoring import score_records
from slamkit.infer.score import score_file


def test_deletion():
    r = word_error(["the cat sat"], ["the cat sat on"], normalizer="none")
    assert (r["hits"], r["substitutions"], r["insertions"], r["deletions"]) == (3, 0, 0, 1)
    assert r["ref_words"] == 4 and r["utterances"] == 1
    assert r["wer"] == pytest.approx(0.25)


def test_substitution_and_insertion():
    # ref: a b c      hyp: a x c d  -> a=hit, b->x sub, c=hit, d inserted
    r = word_error(["a x c d"], ["a b c"], normalizer="none")
    assert (r["hits"], r["substitutions"], r["insertions"], r["deletions"]) == (2, 1, 1, 0)
    assert r["wer"] == pytest.approx(2 / 3)


def test_counts_sum_over_corpus():
    # utt 1: 1 sub of 2 words; utt 2: 2 deletions of 3 words -> 3 errors / 5 words
    r = word_error(["hello there", "one"], ["hello world", "one two three"], normalizer="none")
    assert (r["substitutions"], r["deletions"], r["insertions"], r["hits"]) == (1, 2, 0, 2)
    assert r["ref_words"] == 5 and r["utterances"] == 2
    assert r["wer"] == pytest.approx(0.6)


def test_normalizer_changes_the_score():
    hyps, refs = ["Twenty-five dollars, please."], ["$25 please"]
    assert word_error(hyps, refs)["wer"] == 0.0  # whisper is the default
    basic = word_error(hyps, refs, normalizer="basic")
    # "twenty five dollars please" vs "25 please": 1 sub + 2 ins over 2 words
    assert (basic["substitutions"], basic["insertions"], basic["hits"]) == (1, 2, 1)
    assert basic["wer"] == pytest.approx(1.5)


def test_empty_reference_counts_insertions():
    r = word_error(["x y", "a b"], ["[noise]", "a b"])
    assert r["insertions"] == 2 and r["hits"] == 2 and r["ref_words"] == 2
    assert r["empty_refs"] == 1
    assert r["wer"] == pytest.approx(1.0)


def test_all_references_empty_is_an_error():
    with pytest.raises(ValueError, match="all 2 references are empty"):
        word_error(["x", ""], ["uh", ""])


def test_bad_inputs():
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
        word_error(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="no utterances"):
        word_error([], [])


def test_cer():
    r = char_error(["abd"], ["abc"], normalizer="none")
    assert (r["hits"], r["substitutions"], r["insertions"], r["deletions"]) == (2, 1, 0, 0)
    assert r["ref_chars"] == 3 and r["cer"] == pytest.approx(1 / 3)
    # spaces are characters: "ab cd" -> "ab d" is one deletion of five
    r = char_error(["ab  d"], ["ab cd"], normalizer="none")
    assert r["deletions"] == 1 and r["ref_chars"] == 5 and r["cer"] == pytest.approx(0.2)


def test_metrics_registry():
    assert {"wer", "cer"} <= set(METRICS.names())
    records = [HypRecord("k", "a b", "a c")]
    assert score_records(records, "wer", "none")["wer"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="<memory>: metric 'wer' needs one reference"):
        score_records([HypRecord("k", "a", ["a", "b"])], "wer")


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_score_file(tmp_path):
    lines = [
        json.dumps({"key": "u1", "hyp": "Hello world", "ref": "hello, world!"}),
        "",
        json.dumps({"key": "u2", "hyp": "colour", "ref": "the color", "task": "asr"}),
    ]
    path = _write(tmp_path / "hyps.jsonl", lines)
    r = score_file(path)
    assert r["metric"] == "wer" and r["normalizer"] == "whisper"
    assert (r["hits"], r["deletions"], r["ref_words"], r["utterances"]) == (3, 1, 4, 2)
    assert r["wer"] == pytest.approx(0.25)
    c = score_file(str(path), metric="cer", normalizer="none")
    assert c["metric"] == "cer" and "cer" in c and "ref_chars" in c
    assert read_hyp_records(path)[1].extra == {"task": "asr"}


@pytest.mark.parametrize(
    "bad_line, message",
    [
        ('{"key": "u2", "hyp": "a", ', "hyps.jsonl:3: invalid JSON"),
        ('["u2", "a", "b"]', "hyps.jsonl:3: expected a JSON object"),
        ('{"key": "u2", "hyp": "a"}', "hyps.jsonl:3: missing field 'ref'"),
        ('{"key": "u2", "hyp": 7, "ref": "a"}', "hyps.jsonl:3: field 'hyp' must be a string"),
        ('{"key": "u2", "hyp": "a", "ref": null}', "hyps.jsonl:3: field 'ref' must be"),
        ('{"key": "u1", "hyp": "a", "ref": "a"}', r"jsonl:3: duplicate key 'u1' \(first at .*:1\)"),
    ],
)
def test_file_errors_name_the_line(tmp_path, bad_line, message):
    good = json.dumps({"key": "u1", "hyp": "a", "ref": "a"})
    path = _write(tmp_path / "hyps.jsonl", [good, "", bad_line])
    with pytest.raises(ValueError, match=message):
        score_file(path)


def test_file_with_bad_utf8_or_no_records(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"key": "u1", "hyp": "a", "ref": "a"}\n{"key": "\xff"}\n')
    with pytest.raises(ValueError, match="bad.jsonl:2: not valid UTF-8"):
        score_file(path)
    empty = _write(tmp_path / "empty.jsonl", [""])
    with pytest.raises(ValueError, match="empty.jsonl: no hypothesis records"):
        score_file(empty)


def test_unknown_names_fail_before_reading(tmp_path):
    missing = tmp_path / "missing.jsonl"
    with pytest.raises(KeyError, match="unknown metric 'bleu2'"):
        score_file(missing, metric="bleu2")
    with pytest.raises(KeyError, match="unknown normalizer"):
        score_file(missing, normalizer="english")


def test_normalize_lines():
    out = list(normalize_lines(["Mr. Smith's colour\n", "uh twenty one\r\n"]))
    assert out == ["mister smith is color", "21"]
    assert list(normalize_lines(["A B\n"], normalizer="none")) == ["A B"]
