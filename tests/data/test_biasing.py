"""Biasing words: list loading and its errors, per-utterance selection (determinism, distractor
count, no duplicates, reference words kept, distractors never in the reference), the published
TSV lists, and the prompt."""

from __future__ import annotations

import json
import random

import pytest

from slamkit.data.biasing import (
    DEFAULT_BIASING_TEMPLATE,
    WordList,
    attach_biasing_words,
    format_biasing_prompt,
    load_biasing_list,
    read_biasing_tsv,
    select_biasing_words,
)

RARE = [f"rare{i:03d}" for i in range(300)] + ["montrose", "prowess", "nobleman's"]
REFERENCE = "THIS NOBLEMAN'S CHARACTER WAS LOW FOR MILITARY PROWESS HE ALLOWED MONTROSE TO ESCAPE"


@pytest.fixture()
def rare() -> WordList:
    return WordList(RARE)


# --------------------------------------------------------------------------- lists


def test_load_biasing_list(tmp_path):
    path = tmp_path / "rare.txt"
    path.write_text("montrose\n\nProwess\r\nmontrose\n  worsted  \n", encoding="utf-8")
    words = load_biasing_list(path)
    assert list(words) == ["montrose", "Prowess", "worsted"]  # blank skipped, repeat dropped
    assert "PROWESS" in words and "prowl" not in words
    assert words.lookup("MONTROSE") == "montrose"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"montrose\nnew york\n", r"rare.txt:2: expected one word per line"),
        (b"montrose\n---\n", r"rare.txt:2: '---' is not a word"),
        (b"montrose\n\xff\xfe\n", r"rare.txt:2: not valid UTF-8"),
        (b"\n  \n", r"rare.txt: the biasing list holds no words"),
    ],
)
def test_load_biasing_list_errors(tmp_path, content, message):
    path = tmp_path / "rare.txt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        load_biasing_list(path)


def test_load_biasing_list_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        load_biasing_list(tmp_path / "nope.txt")


# --------------------------------------------------------------------------- selection


def test_reference_words_found_in_the_list_plus_distractors(rare):
    words = select_biasing_words(REFERENCE, None, rare, distractors=20, seed=0, key="u1")
    assert len(words) == 23 and len(set(words)) == 23
    assert {"montrose", "prowess", "nobleman's"} <= set(words)  # found despite upper case
    reference = set(REFERENCE.lower().split())
    distractors = [w for w in words if w not in {"montrose", "prowess", "nobleman's"}]
    assert len(distractors) == 20 and not reference & set(distractors)
    assert all(w in rare for w in words)


def test_deterministic_per_seed_and_key(rare):
    first = select_biasing_words(REFERENCE, None, rare, 50, seed=3, key="u1")
    assert select_biasing_words(REFERENCE, None, list(RARE), 50, seed=3, key="u1") == first
    assert select_biasing_words(REFERENCE, None, rare, 50, seed=4, key="u1") != first
    assert select_biasing_words(REFERENCE, None, rare, 50, seed=3, key="u2") != first


def test_shuffled_not_reference_first(rare):
    # Across keys the reference words must not always sit at the front of the list.
    positions = {
        select_biasing_words(REFERENCE, None, rare, 30, seed=0, key=f"u{k}").index("montrose")
        for k in range(20)
    }
    assert len(positions) > 5


def test_record_words_are_used_instead_of_the_reference(rare):
    words = select_biasing_words(REFERENCE, ["Escape", "montrose", "MONTROSE"], rare, 5, seed=0, key="u")
    assert len(words) == 7
    assert "Escape" in words and "montrose" in words and "MONTROSE" not in words  # repeat dropped
    assert "prowess" not in words  # in the reference and the list, but not asked for


def test_no_distractors_and_empty_reference(rare):
    assert sorted(select_biasing_words(REFERENCE, None, rare, 0, seed=0, key="u")) == [
        "montrose", "nobleman's", "prowess",
    ]  # fmt: skip
    assert select_biasing_words("", None, rare, 0, seed=0, key="u") == []
    assert len(select_biasing_words("", None, rare, 7, seed=0, key="u")) == 7


def test_asking_for_every_remaining_word():
    small = WordList(["a1", "a2", "a3", "a4", "montrose"])
    words = select_biasing_words("see montrose", None, small, 4, seed=0, key="u")
    assert sorted(words) == ["a1", "a2", "a3", "a4", "montrose"]


def test_exact_fallback_when_random_draws_keep_hitting_taken_words(monkeypatch):
    # 999 of 1000 listed words are in the reference: random draws almost always hit them, so
    # the explicit candidate list is sampled instead; it must still find the one eligible word.
    vocab = WordList(f"w{i}" for i in range(1000))
    reference = " ".join(f"w{i}" for i in range(999))
    calls = []
    original = random.Random.sample
    monkeypatch.setattr(random.Random, "sample", lambda self, *a, **k: calls.append(a) or original(self, *a, **k))
    words = select_biasing_words(reference, [], vocab, 1, seed=0, key="u")
    assert words == ["w999"] and calls == [(["w999"], 1)]


def test_too_many_distractors_or_negative_count(rare):
    with pytest.raises(ValueError, match="asked for 301 distractors"):
        select_biasing_words(REFERENCE, None, rare, 301, seed=0, key="u")
    with pytest.raises(ValueError, match=">= 0"):
        select_biasing_words(REFERENCE, None, rare, -1, seed=0, key="u")


def test_attach_biasing_words(rare):
    records = [{"key": "a", "target": REFERENCE}, {"key": "b", "target": "NO RARE WORD", "biasing_words": ["x1"]}]
    out = list(attach_biasing_words(records, rare, distractors=10, seed=1))
    assert len(out[0]["biasing_words"]) == 13 and "montrose" in out[0]["biasing_words"]
    assert len(out[1]["biasing_words"]) == 11 and "x1" in out[1]["biasing_words"]
    assert "biasing_words" not in records[0]  # inputs untouched
    with pytest.raises(ValueError, match="must be a list of strings"):
        list(attach_biasing_words([{"key": "c", "target": "", "biasing_words": "x"}], rare, 1, 0))


# --------------------------------------------------------------------------- published lists


def test_read_biasing_tsv(tmp_path):
    path = tmp_path / "test-clean.biasing_100.tsv"
    rows = [
        ["237-134493-0004", "the air and the earth are curiously mated", ["mated"], ["atherton", "mated", "zwingli's"]],
        ["2830-3980-0017", "when i was a young man", [], ["acterrally"]],
    ]
    path.write_text("".join("\t".join([a, b, json.dumps(c), json.dumps(d)]) + "\n" for a, b, c, d in rows))
    assert read_biasing_tsv(path) == {"237-134493-0004": ["atherton", "mated", "zwingli's"], "2830-3980-0017": ["acterrally"]}
    path.write_text("u1\tsome text\t[]\n")
    with pytest.raises(ValueError, match=r"biasing_100.tsv:1: expected 4 tab-separated columns"):
        read_biasing_tsv(path)
    path.write_text('u1\tt\t[]\t["a"]\nu1\tt\t[]\t["b"]\n')
    with pytest.raises(ValueError, match=r":2: utterance 'u1' appears twice"):
        read_biasing_tsv(path)
    path.write_text("u1\tt\t[]\tnot-json\n")
    with pytest.raises(ValueError, match=r":1: column 4 is not a JSON list"):
        read_biasing_tsv(path)


# --------------------------------------------------------------------------- prompt


def test_format_biasing_prompt():
    assert format_biasing_prompt(["montrose", "prowess"]) == (
        'Transcribe speech to text. Some hotwords might help. The hotwords are "montrose, prowess".'
    )
    assert format_biasing_prompt([]) == DEFAULT_BIASING_TEMPLATE.replace("{biasing_words}", "")
    slam = format_biasing_prompt(["montrose", "prowess"], separator=" ", case="upper")
    assert slam.endswith('The hotwords are "MONTROSE PROWESS".')
    assert format_biasing_prompt(["a"], "{json} words: {biasing_words}") == "{json} words: a"
    with pytest.raises(ValueError, match="placeholder"):
        format_biasing_prompt(["a"], "Transcribe.")
    with pytest.raises(ValueError, match="unknown case"):
        format_biasing_prompt(["a"], case="title")
