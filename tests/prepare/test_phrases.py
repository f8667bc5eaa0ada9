"""Short training utterances: spoken numbers, ordinals, years, sentence fragments, interleaving."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from slamkit.cli import main as cli_main
from slamkit.data.manifest import read_manifest
from slamkit.prepare.phrases import MONTHS, WEEKDAYS, number_words, ordinal_words, short_phrases, year_words
from slamkit.prepare import with_short_phrases
from slamkit.eval.normalizer import get_normalizer

SENTENCES = ["The cat sat on the mat, quietly.", "A penny saved is a penny earned!", "Hello world."]


@pytest.mark.parametrize(("n", "words"), [
    (0, "zero"), (7, "seven"), (13, "thirteen"), (20, "twenty"), (42, "forty two"), (100, "one hundred"),
    (101, "one hundred one"), (342, "three hundred forty two"), (1000, "one thousand"),
    (12345, "twelve thousand three hundred forty five"), (2_000_017, "two million seventeen"),
])
def test_number_words(n: int, words: str) -> None:
    assert number_words(n) == words


@pytest.mark.parametrize(("n", "words"), [
    (1, "first"), (2, "second"), (3, "third"), (4, "fourth"), (5, "fifth"), (8, "eighth"), (9, "ninth"),
    (12, "twelfth"), (20, "twentieth"), (21, "twenty first"), (31, "thirty first"), (100, "one hundredth"),
])
def test_ordinal_words(n: int, words: str) -> None:
    assert ordinal_words(n) == words


@pytest.mark.parametrize(("year", "words"), [
    (1900, "nineteen hundred"), (1905, "nineteen o five"), (1984, "nineteen eighty four"),
    (2000, "two thousand"), (2007, "two thousand seven"), (2024, "twenty twenty four"),
])
def test_year_words(year: int, words: str) -> None:
    assert year_words(year) == words


def test_numbers_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError, match="outside"):
        number_words(-1)
    with pytest.raises(ValueError, match="positive"):
        ordinal_words(0)


def test_spoken_numbers_score_as_their_digits() -> None:
    """What the phrases say must normalise like the digits a transcript may write (press 1 / one)."""
    norm = get_normalizer("whisper")
    for n in (1, 42, 342, 2024):
        assert norm(number_words(n)) == norm(str(n))


def test_short_phrases_mix_and_reproducibility() -> None:
    phrases = short_phrases(SENTENCES, 400, seed=3)
    assert phrases == short_phrases(SENTENCES, 400, seed=3)
    assert phrases != short_phrases(SENTENCES, 400, seed=4)
    assert all(p and p[0].isupper() for p in phrases)
    sentence_words = {w.lower() for s in SENTENCES for w in re.findall(r"[A-Za-z']+", s)}
    fragments = [p for p in phrases if all(w.lower() in sentence_words for w in p.split())]
    calendar = [p for p in phrases if p.split()[0] in MONTHS + WEEKDAYS]
    assert 150 < len(fragments) < 260  # half, give or take (some numbers are also sentence words)
    assert 25 < len(calendar) < 100
    assert all(1 <= len(p.split()) <= 3 for p in fragments)
    assert not any(re.search(r"[,.!?0-9]", p) for p in phrases)  # no punctuation, no digits


def test_short_phrases_errors() -> None:
    assert short_phrases([], 0) == []
    with pytest.raises(ValueError, match="no sentences"):
        short_phrases([], 3)
    with pytest.raises(ValueError, match="count"):
        short_phrases(SENTENCES, -1)


def test_with_short_phrases_spreads_them_and_keeps_line_order() -> None:
    lines = [(i + 1, f"Sentence {i} is here.") for i in range(12)]
    merged = with_short_phrases(lines, 4, seed=0)
    assert len(merged) == 16
    assert [m for m in merged if m[0]] == lines  # every line, in file order
    positions = [i for i, (number, _) in enumerate(merged) if number == 0]
    assert positions == [2, 6, 10, 14]  # evenly spaced
    assert with_short_phrases(lines, 0, seed=0) == lines
    assert len(with_short_phrases(lines[:2], 5, seed=0)) == 7  # more phrases than lines


def test_prepare_tts_with_short_phrases(tmp_path: Path) -> None:
    if shutil.which("flite") is None:
        pytest.skip("`flite` is not on PATH (apt-get install flite)")
    text = tmp_path / "s.txt"
    text.write_text("\n".join(SENTENCES) + "\n")
    code = cli_main(["prepare", "tts", str(text), "--out", str(tmp_path / "out"), "--engines", "flite",
                     "--short-phrases", "3", "--workers", "1"])
    assert code == 0
    records = read_manifest(tmp_path / "out" / "tts.jsonl")
    targets = [r.target for r in records]
    assert len(targets) == 6 and [t for t in targets if t in SENTENCES] == SENTENCES
    for record in records:
        if record.target not in SENTENCES:
            assert 1 <= len(record.target.split()) <= 6 and record.duration is not None and record.duration > 0.1
