"""Sentences for synthetic training speech from fortune files."""

from __future__ import annotations

import pytest

from slamkit.prepare.text import FORTUNE_DIR, clean_sentence, fortune_entries, fortune_sentences


def test_entries_and_cleaning(tmp_path):
    text = "The early bird gets the worm.  But the second mouse\ngets the cheese.\n\t\t-- Anonymous\n%\nCALL 555 1234 NOW!\n%\nBob: Hi there friend.\n%\n"
    entries = list(fortune_entries(text))
    assert entries[0] == "The early bird gets the worm. But the second mouse gets the cheese."
    assert clean_sentence("CALL NOW OR ELSE, FRIEND!") is None  # shouting
    assert clean_sentence("Call 555 now please.") is None  # digits
    assert clean_sentence("Bob: Hi there friend.") is None  # dialogue markup
    assert clean_sentence("Too short.") is None
    assert clean_sentence("It's a fine day, isn't it?") == "It's a fine day, isn't it?"
    folder = tmp_path / FORTUNE_DIR
    folder.mkdir(parents=True)
    (folder / "wisdom").write_text(text + "The early bird gets the worm.\n%\n")
    assert fortune_sentences(tmp_path, ["wisdom"]) == ["The early bird gets the worm.", "But the second mouse gets the cheese."]


def test_missing_files_say_how_to_install(tmp_path):
    with pytest.raises(FileNotFoundError, match="slamkit assets install fortunes"):
        fortune_sentences(tmp_path)
