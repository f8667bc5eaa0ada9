"""B-WER / U-WER: hand-worked golden cases of the weighted alignment, its tie-breaks, the
attribution of insertions by hypothesis word, corpus aggregation, normalisation and file errors.

Costs: match 0, insertion 3, deletion 3, substitution 4. Every expected value below is worked by
hand from those costs and the tie-break order (diagonal, then insertion, then deletion).
"""

from __future__ import annotations

import json

import jiwer
import pytest

from slamkit.eval.bwer import (
    BWER_NORMALIZERS,
    BiasingItem,
    ClassCounts,
    align,
    bwer_counts,
    bwer_metric,
    bwer_scores,
    read_bwer_hyps,
)
from slamkit.eval.hyps import HypRecord
from slamkit.eval.normalizer import librispeech_normalize


def _split(counts: ClassCounts) -> tuple[int, int, int, int]:
    return counts.ref_words, counts.substitutions, counts.insertions, counts.deletions


# --------------------------------------------------------------------------- weighted alignment


def test_weighted_prefers_deletion_plus_insertion_over_two_substitutions():
    # ref "montrose escaped", hyp "escaped him". Unit cost: two substitutions (cost 2) tie with
    # delete + match + insert (cost 2), and jiwer reports the two substitutions. Weighted: 2 S
    # cost 8, D + I cost 6, so the scorer deletes "montrose" and inserts "him".
    ref, hyp = "montrose escaped", "escaped him"
    unit = jiwer.process_words(ref, hyp)
    assert (unit.substitutions, unit.insertions, unit.deletions) == (2, 0, 0)
    assert align(ref.split(), hyp.split()) == [("montrose", None), ("escaped", "escaped"), (None, "him")]
    counts = bwer_counts(ref, hyp, ["montrose"])
    assert _split(counts.total) == (2, 0, 1, 1)
    # "montrose" is a biasing word: its deletion is a B error; the insertion of "him" is U.
    assert _split(counts.biased) == (1, 0, 0, 1)
    assert _split(counts.unbiased) == (1, 0, 1, 0)


def test_weighted_alignment_can_count_more_errors_than_unit_cost():
    # ref "a a a d c" (5 words), hyp "d c b b d". jiwer: 3 S + 1 I + 1 D = 5 errors (WER 1.0),
    # weighted cost 3*4 + 3 + 3 = 18. Deleting "a a a", matching "d c" and inserting "b b d"
    # is 6 errors but also costs 6*3 = 18; on that tie the diagonal-first rule, applied
    # cell by cell, ends on the path that keeps the two matches: WER 6/5.
    ref, hyp = "a a a d c", "d c b b d"
    assert jiwer.process_words(ref, hyp).wer == pytest.approx(1.0)
    assert align(ref.split(), hyp.split()) == [
        ("a", None), ("a", None), ("a", None), ("d", "d"), ("c", "c"),
        (None, "b"), (None, "b"), (None, "d"),
    ]  # fmt: skip
    result = bwer_scores([(ref, hyp, [])], normalizer="none")
    assert result["wer"] == pytest.approx(6 / 5)
    assert (result["substitutions"], result["insertions"], result["deletions"]) == (0, 3, 3)


def test_single_substitution_beats_insertion_plus_deletion():
    # sub costs 4 < ins + del = 6, so one wrong word is a substitution.
    assert align(["cat"], ["hat"]) == [("cat", "hat")]
    assert align(["the", "cat"], ["the", "hat"]) == [("the", "the"), ("cat", "hat")]


def test_tie_diagonal_before_insertion():
    # ref "a", hyp "b c": S(a->b) + I(c) and I(b) + S(a->c) both cost 7. At the last cell the
    # diagonal (a->c, from cost 3) ties the insertion of c (from cost 4) and wins, so "b" is
    # the inserted word and "a" is substituted by "c".
    assert align(["a"], ["b", "c"]) == [(None, "b"), ("a", "c")]


def test_tie_insertion_before_deletion_changes_b_and_u():
    # ref "a b", hyp "b a": D(a) M(b) I(a) and I(b) M(a) D(b) both cost 6 (two S cost 8). At the
    # last cell the insertion (from "a b" vs "b", cost 3) ties the deletion (from "a" vs "b a",
    # cost 3) and wins. With biasing word "a": the deleted ref "a" and the inserted hyp "a" are
    # both B errors, "b" is a U hit. Had the deletion won, "a" would be a B hit and both errors U.
    assert align(["a", "b"], ["b", "a"]) == [("a", None), ("b", "b"), (None, "a")]
    result = bwer_scores([("a b", "b a", ["a"])], normalizer="none")
    assert result["b_wer"] == pytest.approx(2.0) and result["u_wer"] == pytest.approx(0.0)
    assert (result["b_deletions"], result["b_insertions"], result["u_ref_words"]) == (1, 1, 1)


# --------------------------------------------------------------------------- attribution


def test_insertion_attributed_by_hypothesis_word():
    # "cat" is a biasing word; an extra "cat" in the hypothesis is a B insertion, an extra
    # "big" a U insertion, whatever the neighbouring reference words are.
    extra_cat = bwer_counts("the cat sat", "the cat cat sat", ["cat"])
    assert (extra_cat.biased.insertions, extra_cat.unbiased.insertions) == (1, 0)
    extra_big = bwer_counts("the cat sat", "the big cat sat", ["cat"])
    assert (extra_big.biased.insertions, extra_big.unbiased.insertions) == (0, 1)


def test_substitution_and_deletion_attributed_by_reference_word():
    counts = bwer_counts("the prowess of montrose", "the prowl of", ["prowess", "montrose"])
    assert _split(counts.biased) == (2, 1, 0, 1)  # prowess -> prowl (S), montrose deleted (D)
    assert _split(counts.unbiased) == (2, 0, 0, 0)


def test_inserted_distractor_counts_as_u_unless_unrestricted():
    # The official scorer uses the reference's rare words, i.e. the list ∩ reference words. An
    # inserted distractor ("zebra" is in the list, not in the reference) is therefore U by
    # default; restrict_to_reference=False uses the whole list and makes it B.
    official = bwer_counts("the cat", "the zebra cat", ["cat", "zebra"])
    assert (official.biased.insertions, official.unbiased.insertions) == (0, 1)
    whole = bwer_counts("the cat", "the zebra cat", ["cat", "zebra"], restrict_to_reference=False)
    assert (whole.biased.insertions, whole.unbiased.insertions) == (1, 0)


def test_distractors_do_not_change_the_score():
    items = [("the nobleman's prowess", "the noblemen's prowess here", ["prowess", "nobleman's"])]
    padded = [(r, h, w + ["here", "zebra", "quokka"]) for r, h, w in items]
    assert bwer_scores(padded) == bwer_scores(items)


# --------------------------------------------------------------------------- edge cases


def test_empty_hypothesis_deletes_every_word():
    result = bwer_scores([("hello montrose", "", ["montrose"])])
    assert result["wer"] == 1.0 and result["b_wer"] == 1.0 and result["u_wer"] == 1.0
    assert (result["deletions"], result["b_deletions"], result["u_deletions"]) == (2, 1, 1)


def test_empty_biasing_list_gives_no_b_wer_and_u_equals_wer():
    result = bwer_scores([("the cat sat", "the hat sat down", [])])
    assert result["b_wer"] is None and result["b_ref_words"] == 0
    assert result["u_wer"] == result["wer"] == pytest.approx(2 / 3)


def test_empty_reference_and_hypothesis_add_nothing():
    result = bwer_scores([("", "", ["x"]), ("a b", "a c", ["b"])], normalizer="none")
    assert result["utterances"] == 2 and result["ref_words"] == 2 and result["errors"] == 1


def test_all_references_empty_is_an_error():
    with pytest.raises(ValueError, match="undefined"):
        bwer_scores([("", "some words", [])])
    with pytest.raises(ValueError, match="no utterances"):
        bwer_scores([])


def test_corpus_level_not_mean_of_utterance_rates():
    # utt 1: 1 word, B, deleted -> B 1/1; utt 2: 3 B words, all right -> B 0/3.
    # Corpus B-WER = 1/4 = 0.25; the mean of utterance rates would be 0.5.
    # U: utt 1 has none; utt 2: 1 U word substituted, 1 U word right -> U 1/2.
    items = [
        ("montrose", "", ["montrose"]),
        ("prowess skirmishes worsted the end", "prowess skirmishes worsted a end", ["prowess", "skirmishes", "worsted"]),
    ]
    result = bwer_scores(items)
    assert result["b_wer"] == pytest.approx(1 / 4)
    assert result["u_wer"] == pytest.approx(1 / 2)
    assert result["wer"] == pytest.approx(2 / 6)
    assert result["utterances"] == 2


# --------------------------------------------------------------------------- normalisation


def test_librispeech_normalizer():
    assert librispeech_normalize("Nobleman’s horse, (the-bend)!") == "nobleman's horse the bend"
    assert librispeech_normalize("MOCKIN' ' THAT'") == "mockin' that'"
    text = "the nobleman's prowess"
    assert librispeech_normalize(text) == text  # LibriSpeech-style text is left unchanged


def test_case_and_punctuation_normalised_on_all_three_sides():
    # LibriSpeech reference in upper case, LLM hypothesis with punctuation, list in lower case.
    result = bwer_scores([("HE SAW MONTROSE", "He saw Montrose.", ["montrose"])])
    assert result["wer"] == 0.0 and result["b_ref_words"] == 1
    none = bwer_scores([("HE SAW MONTROSE", "He saw Montrose.", ["montrose"])], normalizer="none")
    assert none["wer"] == 1.0 and none["b_ref_words"] == 0  # exact tokens, as the official script


def test_whisper_normalizer_rejected_and_a_biasing_phrase_counts_each_of_its_words():
    assert BWER_NORMALIZERS.names() == ["librispeech", "none"]
    with pytest.raises(KeyError, match="librispeech"):
        bwer_scores([("a", "a", [])], normalizer="whisper")
    # hotword lists hold phrases: each of the phrase's words is a biasing word ("new york" -> new, york)
    phrase = bwer_scores([("flights to new york today", "flights to new work today", ["new york"])])
    words = bwer_scores([("flights to new york today", "flights to new work today", ["new", "york"])])
    assert phrase == words and phrase["b_ref_words"] == 2 and phrase["b_errors"] == 1 and phrase["u_errors"] == 0
    assert bwer_scores([("new york", "new york", ["new-york"])])["b_ref_words"] == 2


# --------------------------------------------------------------------------- files


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_read_bwer_hyps_and_metric(tmp_path):
    path = _write(tmp_path / "hyp.jsonl", [
        json.dumps({"key": "u1", "hyp": "He saw Montrose", "ref": "HE SAW MONTROSE", "biasing_words": ["montrose", "zebra"]}),
        "",
        json.dumps({"key": "u2", "hyp": "", "ref": "THE END", "biasing_words": []}),
    ])  # fmt: skip
    items = read_bwer_hyps(path)
    assert [item.key for item in items] == ["u1", "u2"]
    assert items[0].biasing_words == ("montrose", "zebra") and items[1].where == f"{path}:3"
    result = bwer_scores(items)
    assert result["wer"] == pytest.approx(2 / 5) and result["b_wer"] == 0.0
    assert result["u_wer"] == pytest.approx(2 / 4)
    records = [HypRecord(i.key, i.hyp, i.ref, i.where, {"biasing_words": list(i.biasing_words)}) for i in items]
    assert bwer_metric(records, "librispeech") == result


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ({"key": "u", "hyp": "a", "ref": "a"}, "missing field 'biasing_words'"),
        ({"key": "u", "hyp": "a", "ref": "a", "biasing_words": "a b"}, "must be a list of strings"),
        ({"key": "u", "hyp": "a", "ref": "a", "biasing_words": [1]}, "must be a list of strings"),
        ({"key": "u", "hyp": "a", "ref": ["a", "b"], "biasing_words": []}, "one reference string"),
        ({"key": "u", "ref": "a", "biasing_words": []}, "missing field 'hyp'"),
    ],
)
def test_read_bwer_hyps_errors_name_file_and_line(tmp_path, line, message):
    good = json.dumps({"key": "g", "hyp": "a", "ref": "a", "biasing_words": []})
    path = _write(tmp_path / "hyp.jsonl", [good, json.dumps(line)])
    with pytest.raises(ValueError, match=message) as err:
        read_bwer_hyps(path)
    assert f"{path}:2" in str(err.value)


def test_read_bwer_hyps_invalid_json_and_empty_file(tmp_path):
    with pytest.raises(ValueError, match=r"hyp.jsonl:1: invalid JSON"):
        read_bwer_hyps(_write(tmp_path / "hyp.jsonl", ["{not json"]))
    with pytest.raises(ValueError, match="no hypothesis records"):
        read_bwer_hyps(_write(tmp_path / "empty.jsonl", [""]))


def test_biasing_item_accepted_directly():
    item = BiasingItem("k", "a b", "a", ("b",))
    assert bwer_scores([item])["b_deletions"] == 1
