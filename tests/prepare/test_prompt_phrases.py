"""Generated phone-menu and spelling phrases (words no packaged text holds) and how they join the lines."""

from __future__ import annotations

import re

import pytest

from slamkit.prepare.prompt_phrases import KINDS, NATO, SYMBOLS, prompt_phrases
from slamkit.prepare.text import EvalGuard
from slamkit.prepare.tts import interleave


def test_prompt_phrases_are_reproducible_and_written_like_sentences() -> None:
    phrases = prompt_phrases(400, seed=3)
    assert phrases == prompt_phrases(400, seed=3) and phrases != prompt_phrases(400, seed=4)
    assert len(phrases) == 400 and prompt_phrases(0) == []
    for p in phrases:
        assert p[0].isupper(), p
        assert re.fullmatch(r"[A-Za-z][A-Za-z ,'-]*", p), p  # words only: digits and symbols are spelt out
        assert 1 <= len(p.split()) <= 12, p
    with pytest.raises(ValueError, match="count"):
        prompt_phrases(-1)


def test_every_inventory_word_is_spoken() -> None:
    phrases = prompt_phrases(3000, seed=0)
    text = " " + " ".join(p.lower().replace(",", " ") for p in phrases) + " "
    assert sum(share for share, _ in KINDS.values()) == pytest.approx(1.0)
    for word in NATO:
        assert f" {word.lower()} " in text, word
    read_outs = [p.lower() for p in phrases if ", " in p]  # symbol read-outs: names between commas
    items = {item for p in read_outs for item in p.split(", ")}
    for char, names in SYMBOLS.items():
        assert items & set(names), char
    for word in ("niner", "press", "pound key", "voicemail", "keypad", "extension", " as in "):
        assert word in text, word


def test_the_evaluation_guard_drops_template_phrases_near_a_transcript() -> None:
    guard = EvalGuard(["Press 4 to delete this message.", "Goodbye."])
    assert guard.overlaps("Press four to delete this message")
    assert not guard.overlaps("Press seven to delete this message")
    assert guard.near("Press seven to delete this message")  # one word replaced
    assert guard.near("Press seven to delete")  # of a run of 4
    assert not guard.near("Press seven to save this message")  # two words replaced
    assert not guard.near("Press seven")  # too short to tell
    assert not guard.near("Say goodbye")


def test_interleave_spreads_the_extra_texts_in_order() -> None:
    lines = [(i + 1, f"Sentence {i}.") for i in range(6)]
    merged = interleave(lines, ["a", "b", "c"])
    assert [m for m in merged if m[0]] == lines
    assert [(i, t) for i, (n, t) in enumerate(merged) if n == 0] == [(1, "a"), (4, "b"), (7, "c")]
    assert interleave(lines, []) == lines
