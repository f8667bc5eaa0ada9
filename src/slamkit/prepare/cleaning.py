"""Which sentences make good synthetic training speech (shared by every text source).

A sentence is kept when a TTS engine reads it cleanly and a scorer compares it fairly: 3–25
words, ASCII letters and light punctuation only (no digits, which a TTS engine and a transcript
write differently, no all-caps shouting, no dialogue markup or ``--`` attributions).
"""

from __future__ import annotations

import re

_ALLOWED = re.compile(r"^[A-Za-z][A-Za-z ,.'?!-]*$")


def clean_sentence(sentence: str, min_words: int = 3, max_words: int = 25) -> str | None:
    """The sentence if it is good TTS/ASR material, else None."""
    s = sentence.strip().strip('"').strip()
    s = s.replace("`", "'")
    if not _ALLOWED.match(s) or "--" in s:
        return None
    words = s.split()
    if not min_words <= len(words) <= max_words:
        return None
    letters = [c for c in s if c.isalpha()]
    if sum(c.isupper() for c in letters) > 0.3 * len(letters):
        return None
    return s

