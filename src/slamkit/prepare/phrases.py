"""Short utterances for synthetic training speech: isolated words, numbers and dates.

A model trained only on 3–25-word sentences has never heard a clip that holds one word, and
answers "eleven" with a sentence. Real test sets are full of such clips (prompts, commands,
digits, dates). :func:`short_phrases` mixes, in fixed shares, short spans cut from the training
sentences themselves (so no new text source is needed) with spoken numbers, ordinals and calendar
words, written out in words as a TTS engine says them.
"""

from __future__ import annotations

import random
import re
from typing import Callable, Sequence

_ONES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
         "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_SCALES = ((1_000_000, "million"), (1_000, "thousand"), (100, "hundred"))
_ORDINAL_IRREGULAR = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
                      "nine": "ninth", "twelve": "twelfth"}
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")


def number_words(n: int) -> str:
    """``n`` (0 ≤ n < 10⁹) in English words: 342 → "three hundred forty two"."""
    if not 0 <= n < 1_000_000_000:
        raise ValueError(f"number_words: {n} is outside 0..999999999")
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + ("" if ones == 0 else " " + _ONES[ones])
    for value, name in _SCALES:
        if n >= value:
            head, rest = divmod(n, value)
            return f"{number_words(head)} {name}" + ("" if rest == 0 else " " + number_words(rest))
    raise AssertionError("unreachable")


def ordinal_words(n: int) -> str:
    """``n`` ≥ 1 as an ordinal in words: 21 → "twenty first", 12 → "twelfth"."""
    if n < 1:
        raise ValueError(f"ordinal_words: {n} is not a positive integer")
    *head, last = number_words(n).split()
    if last in _ORDINAL_IRREGULAR:
        last = _ORDINAL_IRREGULAR[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return " ".join([*head, last])


def year_words(year: int) -> str:
    """A year as people say it: 1984 → "nineteen eighty four", 1905 → "nineteen o five",
    1900 → "nineteen hundred", 2007 → "two thousand seven"."""
    head, tail = divmod(year, 100)
    if year % 1000 < 10 or not 1000 <= year < 10_000:
        return number_words(year)
    if tail == 0:
        return f"{number_words(head)} hundred"
    return f"{number_words(head)} {'o ' if tail < 10 else ''}{number_words(tail)}"


def _cardinal(rng: random.Random) -> str:
    """Mostly small numbers, as prompts and menus say them; sometimes large ones and years."""
    roll = rng.random()
    if roll < 0.6:
        return number_words(rng.randrange(0, 100))
    if roll < 0.85:
        return number_words(rng.randrange(100, 10_000))
    if roll < 0.95:
        return year_words(rng.randrange(1900, 2100))
    return number_words(rng.randrange(10_000, 10_000_000))


def _ordinal(rng: random.Random) -> str:
    return ordinal_words(rng.randrange(1, 32) if rng.random() < 0.9 else rng.randrange(32, 200))


def _calendar(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.35:
        return rng.choice(MONTHS)
    if roll < 0.6:
        return rng.choice(WEEKDAYS)
    if roll < 0.85:
        return f"{rng.choice(MONTHS)} {ordinal_words(rng.randrange(1, 32))}"
    return f"{number_words(rng.randrange(1, 13))} {rng.choice(['a m', 'p m', 'o clock'])}"


def _fragment(sentences: Sequence[str], rng: random.Random) -> str:
    """One to three consecutive words of a random sentence, punctuation dropped."""
    for _ in range(100):
        words = _WORD.findall(rng.choice(sentences))
        if words:
            size = min(len(words), rng.choice((1, 1, 2, 3)))
            start = rng.randrange(len(words) - size + 1)
            return " ".join(words[start:start + size])
    raise ValueError("short_phrases: the sentences hold no words")


KINDS: dict[str, tuple[float, Callable[[Sequence[str], random.Random], str]]] = {
    "fragment": (0.5, _fragment),
    "cardinal": (0.25, lambda _s, rng: _cardinal(rng)),
    "ordinal": (0.1, lambda _s, rng: _ordinal(rng)),
    "calendar": (0.15, lambda _s, rng: _calendar(rng)),
}


def short_phrases(sentences: Sequence[str], count: int, seed: int = 0) -> list[str]:
    """``count`` short utterances: word spans of ``sentences`` (half), numbers, ordinals, dates.

    Reproducible for a given ``seed``; duplicates are allowed (different voices will speak them).
    """
    if count < 0:
        raise ValueError(f"short_phrases: count must be ≥ 0, got {count}")
    if count and not sentences:
        raise ValueError("short_phrases: no sentences to cut fragments from")
    rng = random.Random(seed)
    names = list(KINDS)
    weights = [KINDS[n][0] for n in names]
    phrases = [KINDS[rng.choices(names, weights)[0]][1](sentences, rng) for _ in range(count)]
    return [p[0].upper() + p[1:] for p in phrases]  # written like the sentences: capital first
