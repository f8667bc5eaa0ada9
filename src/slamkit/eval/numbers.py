"""Spoken English numbers -> digits, following the rules of Whisper's English number normaliser.

Published LibriSpeech-style WERs are computed with OpenAI Whisper's ``EnglishTextNormalizer``
(openai-whisper 20250625), so this module reproduces the behaviour of its number stage, odd
corners included, in code of our own:

- spelled-out numbers become digits: "twenty one" -> "21", "one hundred and five" -> "105",
  "nineteen ninety nine" -> "1999", successive digits read as nominal: "nine one one" -> "911";
- ordinals and plurals keep their suffix: "twenty first" -> "21st", "nineteen fifties" -> "1950s";
- "point" makes decimals ("two point five" -> "2.5"), "double"/"triple" repeat a digit;
- currency words become symbols ("twenty dollars" -> "$20", "fifty cents" -> "¢50",
  "$2 and ¢7" -> "$2.07"), "percent"/"per cent" -> "%", "minus"/"plus" -> a sign;
- a lone 1 is written "one" again, as the reference does for readability.

Quirks kept on purpose because they change WER: "ninth" is not recognised (the reference derives
"nineth"), "one second" reads as "12nd", "five o'clock" (after punctuation removal) becomes
"50 clock", "1.5" is written "one.5", and a "point" not followed by a number word is dropped.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Callable, Iterable, Optional, Union

Value = Union[int, str]

_ONE_NAMES = (
    "one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
ZEROS = frozenset({"o", "oh", "zero"})
ONES: dict[str, int] = {name: value for value, name in enumerate(_ONE_NAMES, start=1)}
TENS: dict[str, int] = {
    name: 10 * factor
    for factor, name in enumerate(
        "twenty thirty forty fifty sixty seventy eighty ninety".split(), start=2
    )
}
MULTIPLIERS: dict[str, int] = {
    name: 10**exponent
    for name, exponent in [
        ("hundred", 2),
        ("thousand", 3),
        ("million", 6),
        ("billion", 9),
        ("trillion", 12),
        ("quadrillion", 15),
        ("quintillion", 18),
        ("sextillion", 21),
        ("septillion", 24),
        ("octillion", 27),
        ("nonillion", 30),
        ("decillion", 33),
    ]
}
_IRREGULAR_ORDINALS = {"zeroth": 0, "first": 1, "second": 2, "third": 3, "fifth": 5, "twelfth": 12}


def _ones_suffixed() -> dict[str, tuple[int, str]]:
    """Plurals ("twos", "sixes") and ordinals of 0..19; "eight" -> "eighth", "nine" -> "nineth"."""
    table = {("sixes" if n == "six" else n + "s"): (v, "s") for n, v in ONES.items()}
    table.update({n: (v, _ordinal_suffix(v)) for n, v in _IRREGULAR_ORDINALS.items()})
    for name, value in ONES.items():
        if value not in _IRREGULAR_ORDINALS.values():
            # The reference appends "th" (or "h" after a "t"), so it never learns "ninth".
            table[name + ("h" if name.endswith("t") else "th")] = (value, "th")
    return table


def _ordinal_suffix(value: int) -> str:
    """English ordinal suffix of a small number: 1 -> st, 2 -> nd, 3 -> rd, else th."""
    return {1: "st", 2: "nd", 3: "rd"}.get(value, "th")


ONES_SUFFIXED = _ones_suffixed()
TENS_SUFFIXED: dict[str, tuple[int, str]] = {
    **{n[:-1] + "ies": (v, "s") for n, v in TENS.items()},
    **{n[:-1] + "ieth": (v, "th") for n, v in TENS.items()},
}
MULTIPLIERS_SUFFIXED: dict[str, tuple[int, str]] = {
    **{n + "s": (v, "s") for n, v in MULTIPLIERS.items()},
    **{n + "th": (v, "th") for n, v in MULTIPLIERS.items()},
}
SIGN_WORDS = {"minus": "-", "negative": "-", "plus": "+", "positive": "+"}
CURRENCY_WORDS = {
    "pound": "£", "pounds": "£", "euro": "€", "euros": "€",
    "dollar": "$", "dollars": "$", "cent": "¢", "cents": "¢",
}  # fmt: skip
PERCENT_WORDS = frozenset({"per", "percent"})
SPECIAL_WORDS = frozenset({"and", "double", "triple", "point"})
DECIMAL_WORDS = frozenset({*ONES, *TENS, *ZEROS})
PREFIX_SYMBOLS = frozenset({*SIGN_WORDS.values(), *CURRENCY_WORDS.values()})


def _word_kinds() -> dict[str, str]:
    """Every number-related word -> the name of the rule that reads it (the sets are disjoint)."""
    groups: list[tuple[str, Iterable[str]]] = [
        ("zero", ZEROS), ("one", ONES), ("one_suffixed", ONES_SUFFIXED), ("ten", TENS),
        ("ten_suffixed", TENS_SUFFIXED), ("multiplier", MULTIPLIERS),
        ("multiplier_suffixed", MULTIPLIERS_SUFFIXED), ("sign", SIGN_WORDS),
        ("currency", CURRENCY_WORDS), ("percent", PERCENT_WORDS), ("special", SPECIAL_WORDS),
    ]  # fmt: skip
    return {word: kind for kind, words in groups for word in words}


_KINDS = _word_kinds()
NUMBER_WORDS = frozenset(_KINDS)

_ARABIC = re.compile(r"\d+(?:\.\d+)?")
_AND_A_HALF = re.compile(r"\band\s+a\s+half\b")
_LETTER_DIGIT = re.compile(r"([a-z])([0-9])")
_DIGIT_LETTER = re.compile(r"([0-9])([a-z])")
_SPACED_SUFFIX = re.compile(r"([0-9])\s+(st|nd|rd|th|s)\b")
_UNITS_AND_CENTS = re.compile(r"([€£$])([0-9]+) (?:and )?¢([0-9]{1,2})\b")
# The unescaped "." matches any character, as in the reference: "$0 12" also becomes "¢12".
_ZERO_UNITS_CENTS = re.compile(r"[€£$]0.([0-9]{1,2})\b")
_LONE_ONE = re.compile(r"\b1(s?)\b")


def _is_arabic(token: Optional[str]) -> bool:
    """True for digit strings with an optional decimal part ("12", "3.14")."""
    return token is not None and _ARABIC.fullmatch(token) is not None


class _NumberReader:
    """Left-to-right reader that accumulates one number at a time and emits output tokens.

    ``value`` is the number being built: an int while arithmetic applies, a str once digits are
    concatenated ("1990" from "nineteen ninety", "2." after "point"). ``prefix`` is a sign or
    currency symbol waiting for the next emitted token.
    """

    def __init__(self) -> None:
        self.value: Optional[Value] = None
        self.prefix: Optional[str] = None
        self.out: list[str] = []

    def emit(self, item: Value) -> None:
        """Write ``item`` (with any pending prefix) and reset the number being built."""
        text = str(item) if self.prefix is None else self.prefix + str(item)
        self.out.append(text)
        self.value = None
        self.prefix = None

    def flush(self) -> None:
        """Emit the number being built, if any."""
        if self.value is not None:
            self.emit(self.value)

    def step(self, word: str, prev: Optional[str], nxt: Optional[str]) -> bool:
        """Consume one token; return True when the next token was consumed too."""
        symbol = word[0] if word[0] in PREFIX_SYMBOLS else ""
        if _is_arabic(word[len(symbol) :]):
            self._arabic(word, symbol)
            return False
        kind = _KINDS.get(word)
        if kind is None:
            self.flush()
            self.emit(word)
            return False
        return _HANDLERS[kind](self, word, prev, nxt)

    def _arabic(self, word: str, symbol: str) -> None:
        """A written number, possibly with a leading sign or currency symbol."""
        if isinstance(self.value, str) and self.value.endswith("."):
            self.value += word  # digits after "point", or the next part of an address
            return
        self.flush()
        if symbol:
            self.prefix = symbol
        body = word[len(symbol) :]
        number = Fraction(body)
        self.value = number.numerator if number.denominator == 1 else body

    def _with_unit(self, unit: int, prev: Optional[str]) -> Value:
        """The value after appending a 1..19 word."""
        value = self.value
        if value is None:
            return unit
        if isinstance(value, str) or prev in ONES:
            if prev in TENS and unit < 10:  # "...ninety nine": the 9 replaces the tens' 0
                return str(value)[:-1] + str(unit)
            return str(value) + str(unit)
        if value % (10 if unit < 10 else 100) == 0:
            return value + unit
        return str(value) + str(unit)

    def _with_tens(self, tens: int) -> Value:
        """The value after appending a twenty..ninety word."""
        value = self.value
        if value is None:
            return tens
        if isinstance(value, int) and value % 100 == 0:
            return value + tens
        return str(value) + str(tens)

    def _scaled(self, multiplier: int) -> Optional[int]:
        """The value times a multiplier word, or None when it cannot be scaled exactly."""
        value = self.value
        if value is None:
            return multiplier
        if isinstance(value, int):
            # only the last three digits are multiplied: "two thousand five hundred" -> 2500
            return value // 1000 * 1000 + value % 1000 * multiplier
        try:
            product = Fraction(value) * multiplier
        except ValueError:
            return None
        return product.numerator if product.denominator == 1 else None

    def _zero(self, word: str, prev: Optional[str], nxt: Optional[str]) -> bool:
        self.value = str(self.value or "") + "0"
        return False

    def _one(self, word: str, prev: Optional[str], nxt: Optional[str]) -> bool:
        self.value = self._with_unit(ONES[word], prev)
        return False

    def _one_suffixed(self, word: str, prev: Optional[str], nxt: Optional[str]) -> bool:
        unit, suffix = ONES_SUFFIXED[word]
        self.emit(str(self._with_unit(unit, prev)) + suffix)
        return False

    def _ten(self, word: str, prev: Optional[str], nxt: Optional[str]) -> bool:
        self.value = self._with_tens(TENS[word])
        return False

    def _ten_suffixed(self, word: str, prev: Optional[str], nxt: Optional[str]) -> bool:
        tens, suffix = TENS_SUFFIXED[word]
        self.emit(str(self._with_tens(tens)) + suffix)
        return False

    def _multiplier(self, word: str, prev: Optional[str], nxt: Optional[str]) -> bool:
        multiplier = MULTIPLIERS[word]
        scaled = self._scaled(multiplier)
        if scaled is None:
            self.flush()
            scaled = multiplier
        self.value = scaled
        return False

    def _multiplier_suffixed(self, word: str, prev: Optional[str], nxt: Optional[str]) -> bool:
        multiplier, suffix = MULTIPLIERS_SUFFIXED[word]
        scaled = self._scaled(multiplier)
        if scaled is None:
            self.flush()
            scaled = multiplier
        self.emit(str(scaled) + suffix)
        return False

    def _sign(self, word: str, prev: Optional[str], nxt: Optional[str]) -> bool:
        self.flush()
        if nxt in NUMBER_WORDS or _is_arabic(nxt):
            self.prefix = SIGN_WORDS[word]
        else:
            self.emit(word)
        return False

    def _currency(self, word: str, prev: Optional[str], nxt: Optional[str]) -> bool:
        if self.value is None:
            self.emit(word)
        else:
            self.prefix = CURRENCY_WORDS[word]  # replaces a pending sign, as the reference does
            self.emit(self.value)
        return False

    def _percent(self, word: str, prev: Optional[str], nxt: Optional[str]) -> bool:
        if self.value is None:
            self.emit(word)
        elif word == "percent" or nxt == "cent":
            self.emit(f"{self.value}%")
            return word == "per"
        else:
            self.emit(self.value)
            self.emit(word)
        return False

    def _special(self, word: str, prev: Optional[str], nxt: Optional[str]) -> bool:
        if nxt not in NUMBER_WORDS and not _is_arabic(nxt):
            self.flush()
            self.emit(word)
        elif word == "and":
            if prev not in MULTIPLIERS:  # "hundred and five" reads as one number
                self.flush()
                self.emit(word)
        elif word in ("double", "triple"):
            return self._repeat(word, nxt)
        elif nxt in DECIMAL_WORDS or _is_arabic(nxt):  # word == "point"
            self.value = str(self.value or "") + "."
        return False

    def _repeat(self, word: str, nxt: Optional[str]) -> bool:
        """"double five" -> "55", "triple oh" -> "000"; otherwise the word stays."""
        if nxt in ONES or nxt in ZEROS:
            digit = str(ONES.get(nxt, 0))
            self.value = str(self.value or "") + digit * (2 if word == "double" else 3)
            return True
        self.flush()
        self.emit(word)
        return False


_Handler = Callable[[_NumberReader, str, Optional[str], Optional[str]], bool]
_HANDLERS: dict[str, _Handler] = {
    "zero": _NumberReader._zero,
    "one": _NumberReader._one,
    "one_suffixed": _NumberReader._one_suffixed,
    "ten": _NumberReader._ten,
    "ten_suffixed": _NumberReader._ten_suffixed,
    "multiplier": _NumberReader._multiplier,
    "multiplier_suffixed": _NumberReader._multiplier_suffixed,
    "sign": _NumberReader._sign,
    "currency": _NumberReader._currency,
    "percent": _NumberReader._percent,
    "special": _NumberReader._special,
}


def _expand_halves(text: str) -> str:
    """"three and a half" -> "three point five" when "and a half" follows a number word."""
    parts = _AND_A_HALF.split(text)
    pieces: list[str] = []
    for index, part in enumerate(parts):
        if not part.strip():
            continue  # the reference drops an "and a half" with nothing before it
        pieces.append(part)
        if index < len(parts) - 1:
            last = part.split()[-1]
            numeric = last in DECIMAL_WORDS or last in MULTIPLIERS
            pieces.append("point five" if numeric else "and a half")
    return " ".join(pieces)


def _preprocess(text: str) -> str:
    """Split digits from letters ("10km" -> "10 km") but keep ordinal/plural suffixes."""
    text = _expand_halves(text)
    text = _LETTER_DIGIT.sub(r"\1 \2", text)
    text = _DIGIT_LETTER.sub(r"\1 \2", text)
    return _SPACED_SUFFIX.sub(r"\1\2", text)


def _postprocess(text: str) -> str:
    """Merge "$2 and ¢7" into "$2.07", "$0.36" into "¢36", and write a lone 1 as "one"."""
    text = _UNITS_AND_CENTS.sub(lambda m: f"{m[1]}{m[2]}.{int(m[3]):02d}", text)
    text = _ZERO_UNITS_CENTS.sub(lambda m: f"¢{int(m[1])}", text)
    return _LONE_ONE.sub(r"one\1", text)


def read_numbers(words: list[str]) -> list[str]:
    """Rewrite a list of lower-case tokens, turning spoken numbers into digit tokens."""
    reader = _NumberReader()
    padded: list[Optional[str]] = [None, *words, None]
    skip = False
    for i in range(1, len(padded) - 1):
        if skip:
            skip = False
            continue
        word = padded[i]
        assert word is not None
        skip = reader.step(word, padded[i - 1], padded[i + 1])
    reader.flush()
    return reader.out


def normalize_numbers(text: str) -> str:
    """Whisper-style number normalisation of lower-case text: "twenty five dollars" -> "$25"."""
    words = _preprocess(text).split()
    return _postprocess(" ".join(read_numbers(words)))
