"""Natural-English sentences for synthetic training speech, from fortune-cookie files.

fortune-mod's data files hold short quotations separated by lines with a single ``%``. We cut
them into sentences and keep those a TTS engine reads cleanly and a scorer compares fairly:
3–25 words, ASCII letters and light punctuation only (no digits, which a TTS engine and a
transcript write differently, no all-caps shouting, no attributions or dialogue markup).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable, Iterator

# Text files of the Debian `fortunes` package that read as everyday English prose.
FORTUNE_FILES = ("wisdom", "people", "work", "education", "food", "love", "men-women", "pets", "platitudes",
                 "fortunes", "humorists", "literature", "miscellaneous", "science", "politics", "goedel",
                 "kids", "law", "medicine", "songs-poems", "sports", "zippy", "computers", "cookie", "definitions")
FORTUNE_DIR = "usr/share/games/fortunes"

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_ALLOWED = re.compile(r"^[A-Za-z][A-Za-z ,.'?!-]*$")


def fortune_entries(text: str) -> Iterator[str]:
    """The entries of one fortune file (separated by ``%`` lines), whitespace-collapsed."""
    for block in re.split(r"^%\s*$", text, flags=re.M):
        lines = [ln.strip() for ln in block.splitlines()]
        # Attribution lines ("-- Author") and indented dialogue are not prose.
        lines = [ln for ln in lines if ln and not ln.startswith("--")]
        entry = " ".join(lines)
        if entry:
            yield re.sub(r"\s+", " ", entry)


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


def sentences(entries: Iterable[str], min_words: int = 3, max_words: int = 25) -> Iterator[str]:
    """Clean sentences from fortune entries, in order."""
    for entry in entries:
        for raw in _SENTENCE_END.split(entry):
            s = clean_sentence(raw, min_words, max_words)
            if s is not None:
                yield s


def fortune_sentences(root: str | Path, files: Iterable[str] = FORTUNE_FILES) -> list[str]:
    """Unique clean sentences from the fortune files under ``root`` (the asset's extraction root)."""
    folder = Path(root) / FORTUNE_DIR
    seen: dict[str, None] = {}
    for name in files:
        path = folder / name
        if path.is_file():
            for s in sentences(fortune_entries(path.read_text(encoding="latin-1"))):
                seen.setdefault(s, None)
    if not seen:
        raise FileNotFoundError(f"{folder}: no fortune files found (install them: slamkit assets install fortunes)")
    return list(seen)


def write_text_file(lines: Iterable[str], path: str | Path) -> int:
    """Write one sentence per line; returns the count."""
    lines = list(lines)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("".join(line + "\n" for line in lines))
    return len(lines)
