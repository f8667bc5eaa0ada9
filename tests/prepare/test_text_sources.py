"""Training-text sources (slamkit.prepare.text / text_sources): readers on tiny fake package trees,
the mix with per-source caps, and evaluation text kept out; plus the real packages when installed."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from fake_rdata import write_lazyload

from slamkit.assets import AssetMissingError, asset_path
from slamkit.prepare.text import (
    FORTUNE_DIR,
    TEXT_SOURCES,
    EvalGuard,
    evaluation_texts,
    mix_sentences,
    parse_mix,
    source_sentences,
    word_key,
)
from slamkit.prepare.text_sources import (
    AUSTEN_DATA,
    JARGON_TEXT,
    TOKENIZERS_DATA,
    WORDNET_DIR,
    austen_sentences,
    moby_dick_sentences,
    prose_sentences,
    wordnet_examples,
)

WORDNET_LINE = ('00001740 03 n 01 entity 0 003 ~ 00001930 n 0000 | that which exists; "the cat sat on the mat"; '
                '"Dogs bark loudly at night!"; "he owns 3 cars"  \n')


def _wordnet(root: Path) -> Path:
    folder = root / WORDNET_DIR
    folder.mkdir(parents=True)
    (folder / "data.noun").write_text("  1 This software and database is provided \"AS IS\" by Princeton\n" + WORDNET_LINE)
    for pos in ("verb", "adj", "adv"):
        (folder / f"data.{pos}").write_text('00000001 00 v 01 run 0 000 | move fast; "she ran down the street"\n')
    return root


def _austen(root: Path) -> Path:
    write_lazyload(root / AUSTEN_DATA, {
        "prideprejudice": ["PRIDE AND PREJUDICE", "", "Chapter 1", "", "\u201cMy dear Mr. Bennet,\u201d said his lady",
                           "to him one day, \u201chave you heard that Netherfield Park is let at last?\u201d", "",
                           "It was a _truth_ universally acknowledged; but she did not know it at all."],
        "emma": ["Emma Woodhouse, handsome, clever, and rich, had lived nearly twenty-one years."],
        "mansfieldpark": ["About thirty years ago Miss Maria Ward had the good luck to captivate."],
        "northangerabbey": ["No one who had ever seen Catherine Morland would have supposed her born to be a heroine."],
        "persuasion": ["Sir Walter Elliot never took up any book but the Baronetage."],
        "sensesensibility": ["The family of Dashwood had long been settled in Sussex."]})
    return root


def _moby(root: Path) -> Path:
    text = ("The Project Gutenberg EBook of Moby Dick\r\nYou may copy it, give it away or re-use it.\r\n"
            "*** START OF THIS PROJECT GUTENBERG EBOOK MOBY DICK ***\r\n\r\nCHAPTER 1. Loomings.\r\n\r\n"
            "Call me Ishmael. Some years ago, never mind how long precisely,\r\nI thought I would sail about a little.\r\n"
            "\r\n*** END OF THIS PROJECT GUTENBERG EBOOK MOBY DICK ***\r\nThis license is the Project Gutenberg License.\r\n")
    write_lazyload(root / TOKENIZERS_DATA, {"mobydick": [text]})
    return root


def _jargon(root: Path) -> Path:
    path = root / JARGON_TEXT
    path.parent.mkdir(parents=True)
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("The Jargon File\n\nA hacker is a person who enjoys exploring the details of programmable systems.\n"
                     "Please press any key to continue.\n\nSee also the entries for cracker and wizard.\n")
    return root


def _fortunes(root: Path) -> Path:
    folder = root / FORTUNE_DIR
    folder.mkdir(parents=True)
    (folder / "wisdom").write_text("The early bird gets the worm.\n%\nThe cat sat on the mat.\n%\n"
                                   "Please enter your password followed by the pound key.\n%\n")
    return root


@pytest.fixture
def roots(tmp_path: Path) -> dict[str, Path]:
    """Fake package trees for every registered source."""
    return {"fortune": _fortunes(tmp_path / "fortunes"), "wordnet": _wordnet(tmp_path / "wordnet"),
            "austen": _austen(tmp_path / "austen"), "moby-dick": _moby(tmp_path / "moby"),
            "jargon": _jargon(tmp_path / "jargon")}


def test_registry_ties_each_source_to_an_asset() -> None:
    assert TEXT_SOURCES.names() == ["austen", "fortune", "jargon", "moby-dick", "wordnet"]
    assert {n: TEXT_SOURCES.get(n).asset for n in TEXT_SOURCES.names()} == {
        "austen": "austen-novels", "fortune": "fortunes", "jargon": "jargon-file", "moby-dick": "moby-dick",
        "wordnet": "wordnet"}


def test_readers_on_fake_trees(roots: dict[str, Path]) -> None:
    assert wordnet_examples(WORDNET_LINE) == ["the cat sat on the mat", "Dogs bark loudly at night!", "he owns 3 cars"]
    assert source_sentences("wordnet", roots["wordnet"]) == ["The cat sat on the mat.", "Dogs bark loudly at night!",
                                                             "She ran down the street."]
    assert source_sentences("austen", roots["austen"]) == [
        "My dear Mr. Bennet, said his lady to him one day, have you heard that Netherfield Park is let at last?",
        "It was a truth universally acknowledged.",
        "Emma Woodhouse, handsome, clever, and rich, had lived nearly twenty-one years.",
        "About thirty years ago Miss Maria Ward had the good luck to captivate.",
        "No one who had ever seen Catherine Morland would have supposed her born to be a heroine.",
        "Sir Walter Elliot never took up any book but the Baronetage."]
    assert source_sentences("moby-dick", roots["moby-dick"]) == [
        "Call me Ishmael.", "Some years ago, never mind how long precisely, I thought I would sail about a little."]
    assert source_sentences("jargon", roots["jargon"]) == [
        "A hacker is a person who enjoys exploring the details of programmable systems.",
        "Please press any key to continue.", "See also the entries for cracker and wizard."]


def test_sense_and_sensibility_never_read(roots: dict[str, Path]) -> None:
    assert not any("Dashwood" in s for s in source_sentences("austen", roots["austen"]))
    with pytest.raises(ValueError, match="LibriVox evaluation clips are read from it"):
        austen_sentences(roots["austen"], ["emma", "sensesensibility"])


def test_prose_splitting_rules() -> None:
    text = ["He said to me: \"Stay right here; I will be back soon.\" Then he left the room.", "CHAPTER TWO",
            "and so it went on and on.", "Mrs. Jennings came to Dr. Davies yesterday."]
    assert prose_sentences(text) == ["He said to me.", "Stay right here.", "I will be back soon.", "Then he left the room.",
                                     "Mrs. Jennings came to Dr. Davies yesterday."]


def test_missing_trees_say_how_to_install(tmp_path: Path) -> None:
    for name, asset in [("wordnet", "wordnet"), ("austen", "austen-novels"), ("moby-dick", "moby-dick"),
                        ("jargon", "jargon-file")]:
        with pytest.raises(FileNotFoundError, match=f"slamkit assets install {asset}"):
            source_sentences(name, tmp_path)
    (tmp_path / "m").mkdir()
    write_lazyload(tmp_path / "m" / TOKENIZERS_DATA, {"mobydick": ["no markers here"]})
    with pytest.raises(ValueError, match="Project Gutenberg"):
        moby_dick_sentences(tmp_path / "m")


def test_parse_mix() -> None:
    assert parse_mix("fortune, wordnet:8000,") == [("fortune", None), ("wordnet", 8000)]
    with pytest.raises(KeyError, match="Did you mean wordnet"):
        parse_mix("wordnt")
    for bad, message in [("wordnet:0", "positive integer"), ("wordnet:many", "positive integer"),
                         ("fortune,fortune:5", "named twice"), (" , ", "names no source")]:
        with pytest.raises(ValueError, match=message):
            parse_mix(bad)


def test_eval_guard() -> None:
    guard = EvalGuard(["Please enter your password followed by the pound key.", "Press 1 for sales.", "Goodbye."])
    assert word_key("Press 1, now!") == ("press", "one", "now")
    assert guard.overlaps("Please enter your password.")  # part of a transcript
    assert guard.overlaps("Press one for sales.")  # the whole transcript, digits spelt out
    assert guard.overlaps("Now press one for sales, or wait.")  # holds a whole transcript of 3+ words
    assert guard.overlaps("Then enter your password followed by the dog.")  # shares a run of 6 words
    assert not guard.overlaps("Enter your password followed by a smile.")  # 5 shared words only
    assert not guard.overlaps("He said goodbye to the pound key.")  # 1- and 2-word runs are common English


def test_mix_caps_dedupes_and_keeps_evaluation_text_out(roots: dict[str, Path]) -> None:
    exclude = ["Please enter your password followed by the pound key.", "Please press any key to continue."]
    mix = mix_sentences("fortune,wordnet,jargon:1", exclude=exclude, roots=roots)
    assert mix.sentences[:3] == ["The early bird gets the worm.", "The cat sat on the mat.", "Dogs bark loudly at night!"]
    assert not any(word_key(s) == word_key(e) for s in mix.sentences for e in exclude)
    counts = {name: (c.read, c.eval_overlap, c.duplicate, c.kept) for name, c in mix.counts.items()}
    assert counts == {"fortune": (3, 1, 0, 2), "wordnet": (3, 0, 1, 2), "jargon": (3, 1, 0, 1)}
    assert len(set(map(word_key, mix.sentences))) == len(mix.sentences) == 5
    again = mix_sentences("fortune,wordnet,jargon:1", exclude=exclude, roots=roots)
    assert again.sentences == mix.sentences, "a mix is deterministic"
    picks = {tuple(mix_sentences("austen:2", roots=roots, seed=seed).sentences) for seed in range(8)}
    assert len(picks) > 1 and all(len(p) == 2 for p in picks), "the seed picks which capped sentences stay"


def test_mixed_text_keeps_held_out_sentences_out_of_training(roots: dict[str, Path]) -> None:
    """The demo's split (held-out sentences first, phrases cut only from training ones) still holds."""
    import random

    from slamkit.app.demo import DemoOptions, _tts_lines

    sentences = mix_sentences("fortune,wordnet,austen,moby-dick,jargon", roots=roots).sentences
    random.Random(0).shuffle(sentences)
    opts = DemoOptions(utterances=14, test_utterances=2)
    lines = _tts_lines(sentences, opts, short=0)
    held = 2 + 10  # test + validation (at least 10)
    assert not {word_key(s) for s in lines[:held]} & {word_key(s) for s in lines[held:]}


def test_evaluation_texts_from_fake_trees(tmp_path: Path) -> None:
    doc = tmp_path / "ast/usr/share/doc/asterisk-core-sounds-en"
    doc.mkdir(parents=True)
    with gzip.open(doc / "core-sounds-en.txt.gz", "wt") as handle:
        handle.write("; comment\nauth-thankyou: Thank you.\nbeep: [this is a simple beep tone]\n")
    data = tmp_path / "ps/usr/share/pocketsphinx/test/data"
    (data / "librivox").mkdir(parents=True)
    (data / "cards").mkdir(parents=True)
    (data / "librivox/transcription").write_text("<s> he was not an ill disposed young man </s> (s-0880)\n")
    (data / "cards/cards.transcription").write_text("<s> ten of clubs </s> (001)\n")
    assert evaluation_texts(tmp_path / "ast", tmp_path / "ps") == ["Thank you.", "he was not an ill disposed young man",
                                                                   "ten of clubs"]


# --------------------------------------------------------------------------- the real packages


def _installed(name: str) -> Path:
    try:
        return asset_path(name)
    except AssetMissingError as err:
        pytest.skip(f"asset not installed: {err}")


# Counts of docs/text-sources.md (Debian bookworm packages).
REAL_COUNTS = {"fortune": 13048, "wordnet": 41123, "austen": 20505, "moby-dick": 5734, "jargon": 4754}


@pytest.mark.parametrize("name", sorted(REAL_COUNTS))
def test_real_source(name: str) -> None:
    sentences = source_sentences(name, _installed(TEXT_SOURCES.get(name).asset))
    assert len(sentences) == REAL_COUNTS[name]
    assert len(set(sentences)) == len(sentences)
    assert all(3 <= len(s.split()) <= 25 for s in sentences)


def test_real_mix_holds_no_evaluation_text() -> None:
    for name in ("asterisk-sounds", "pocketsphinx-testdata", *(TEXT_SOURCES.get(n).asset for n in REAL_COUNTS)):
        _installed(name)
    exclude = evaluation_texts()
    assert len(exclude) == 564
    mix = mix_sentences("fortune,wordnet:8000,austen:6000,moby-dick:2000,jargon:2000", exclude=exclude)
    assert {n: c.kept for n, c in mix.counts.items()} == {"fortune": 13025, "wordnet": 8000, "austen": 6000,
                                                           "moby-dick": 2000, "jargon": 2000}
    guard = EvalGuard(exclude)
    assert not any(guard.overlaps(s) for s in mix.sentences)
    assert "Please check the number and dial again or ask your operator for assistance." not in mix.sentences
    assert not any("Dashwood" in s for s in mix.sentences)
