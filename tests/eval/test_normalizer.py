"""Text normalisers: expected outputs of Whisper's English normaliser rules, quirks included.

The expected strings are what openai-whisper 20250625's ``EnglishTextNormalizer`` returns
(minus the stray leading/trailing space it can leave, which we strip).
"""

from __future__ import annotations

import pytest

from slamkit.eval import normalizer as nm
from slamkit.eval.normalizer import NORMALIZERS, get_normalizer
from slamkit.eval.numbers import normalize_numbers


@pytest.fixture(scope="module")
def whisper():
    return get_normalizer("whisper")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("twenty five", "25"),
        ("one thousand two hundred", "1200"),
        ("one hundred and five", "105"),
        ("nineteen ninety nine", "1999"),
        ("twenty nineteen", "2019"),
        ("five twenty four", "524"),
        ("nine one one", "911"),
        ("three thousand twenty nine", "3029"),
        ("forty three thousand two hundred and sixty", "43260"),
        ("one million two hundred thousand three hundred forty five", "1200345"),
        ("twenty first", "21st"),
        ("the second world war", "the 2nd world war"),
        ("august twenty sixth twenty twenty one", "august 26th 2021"),
        ("nineteen fifties", "1950s"),
        ("two thousandth", "2000th"),
        ("two point five", "2.5"),
        ("3 point 14", "3.14"),
        ("two point five million", "2500000"),
        ("three and a half million", "3500000"),
        ("1,000,000", "1000000"),
        ("ninety percent", "90%"),
        ("seventy six per cent", "76%"),
        ("it's 50% off", "it is 50% off"),
        ("double oh seven", "007"),
        ("nine double one", "911"),
        ("one triple oh one", "10001"),
        ("minus five hundred", "-500"),
        ("positive twenty thousand", "+20000"),
        ("10km", "10 km"),
        ("RC232", "rc 232"),
        ("the 10 th", "the 10th"),
    ],
)
def test_numbers(whisper, text, expected):
    assert whisper(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("$5", "$5"),
        ("twenty dollars", "$20"),
        ("five dollars and twenty cents", "$5.20"),
        ("two dollars and seven cents", "$2.07"),
        ("fifty cents", "¢50"),
        ("$0.36", "¢36"),
        ("three euros and sixty five cents", "€3.65"),
        ("two hundred million dollars", "$200000000"),
        ("$20 million", "$20000000"),
        ("forty eight and a half dollars", "$48.5"),
        ("a $ sign", "a sign"),
    ],
)
def test_currency(whisper, text, expected):
    assert whisper(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("one", "one"),  # a lone 1 is written out again
        ("one point five", "one.5"),  # ... even in front of a decimal point
        ("one dollar", "one"),  # "$1" -> "$one" -> the stray "$" goes
        ("one second", "12nd"),  # "second" read as an ordinal after a digit
        ("the ninth day", "the ninth day"),  # only "nineth" is in the ordinal table
        ("five o'clock", "50 clock"),  # the apostrophe goes, "o" is a zero
        ("two point hundred", "200"),  # a "point" not before a digit word vanishes
        ("1,2,3", "12 3"),  # commas between digits go one match at a time
    ],
)
def test_reference_quirks(whisper, text, expected):
    assert whisper(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("won't", "will not"),
        ("can't", "can not"),
        ("it's", "it is"),
        ("don't", "do not"),
        ("I'm sure they've left", "i am sure they have left"),
        ("Let's go", "let us go"),
        ("she's been like", "she has been like"),
        ("he'd gone", "he had gone"),
        ("the cat 's toy", "the cat is toy"),  # space before the apostrophe is closed first
        ("y'all gonna wanna", "you all going to want to"),
        ("ma'am", "madam"),
        (
            "Mr. Park visited Assoc. Prof. Kim Jr.",
            "mister park visited associate professor kim junior",
        ),
        ("St. Louis", "saint louis"),
    ],
)
def test_contractions_and_titles(whisper, text, expected):
    assert whisper(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("colour", "color"),
        ("organise", "organize"),
        ("The colours were organised", "the colors were organized"),
        ("mobilisation", "mobilization"),
        ("cancelation", "cancellation"),
    ],
)
def test_british_spellings(whisper, text, expected):
    assert whisper(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("hello [noise] world", "hello world"),
        ("hello (laughs) world", "hello world"),
        ("<unk> hi there", "hi there"),
        ("uh I um think hmm so", "i think so"),
        ("mhm mmm mm yes", "yes"),
        ("Hello, World!", "hello world"),
        ("end. Start", "end start"),
        ("pi is 3.14", "pi is 3.14"),
        ("café naïve œuvre", "cafe naive oeuvre"),
        ("rock 'n' roll", "rock n roll"),
        ("  spaced\tout \n text  ", "spaced out text"),
        ("", ""),
    ],
)
def test_punctuation_brackets_fillers(whisper, text, expected):
    assert whisper(text) == expected


def test_number_stage_alone():
    assert normalize_numbers("minus 500") == "-500"
    assert normalize_numbers("€52.4 million") == "€52400000"
    assert normalize_numbers("£77 thousands") == "£77000s"
    assert normalize_numbers("b747") == "b 747"
    assert normalize_numbers("and a half") == ""


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Hello, World!", "hello world"),
        ("Twenty-Five [noise] (laughs)", "twenty five"),
        ("café won't", "café won t"),
        ("  a\t b  ", "a b"),
    ],
)
def test_basic(text, expected):
    assert get_normalizer("basic")(text) == expected


def test_none_is_identity():
    assert get_normalizer("none")("  Mr. X, [noise] ") == "  Mr. X, [noise] "


def test_registry():
    assert NORMALIZERS.names() == ["basic", "librispeech", "none", "whisper"]
    assert nm.DEFAULT_NORMALIZER == "whisper"
    with pytest.raises(KeyError, match="unknown normalizer 'whsiper'.*whisper"):
        get_normalizer("whsiper")


def test_spelling_table_loaded_from_package():
    table = nm.load_spelling_table()
    assert len(table) > 1000
    assert table["colour"] == "color"


def test_missing_spelling_table_says_what_to_install(monkeypatch):
    monkeypatch.setattr(nm, "SPELLING_MODULE", "slamkit_no_such_package")
    nm.load_spelling_table.cache_clear()
    try:
        with pytest.raises(FileNotFoundError, match="pip install 'whisper-normalizer==0.1.15'"):
            get_normalizer("whisper")
    finally:
        monkeypatch.undo()
        nm.load_spelling_table.cache_clear()
