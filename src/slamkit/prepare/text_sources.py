"""Readers of the natural-English text sources beyond the fortune cookies (see docs/text-sources.md).

Each reader takes the extraction root of its Debian package (the asset's path) and returns clean
sentences (:func:`slamkit.prepare.cleaning.clean_sentence`: 3–25 words, ASCII letters and light
punctuation, no digits), unique, in a fixed order (the order of the files), so a seeded shuffle
downstream is reproducible.

- :func:`wordnet_sentences`: the example sentences of WordNet 3.0's glosses (``"he ran down the
  street"``), capitalised and given a full stop.
- :func:`austen_sentences`: five of Jane Austen's six novels (``janeaustenr``). *Sense and
  Sensibility* is left out on purpose: the LibriVox evaluation clips are read from it.
- :func:`moby_dick_sentences`: *Moby Dick* (``tokenizers``), Project Gutenberg's header and
  licence cut off.
- :func:`jargon_sentences`: the Jargon File 4.4.7 (hacker slang; technical vocabulary).

Books are cut by :func:`prose_sentences`: paragraphs, then sentences (titles such as "Mr." do not
end one), then clauses at ``;`` and ``:``; quotation marks and ``_italics_`` are dropped, pieces
that start in lower case (a clause cut mid-thought) or carry no final punctuation (headings) are
skipped.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from slamkit.prepare.cleaning import clean_sentence
from slamkit.prepare.rdata import read_character_vector

WORDNET_DIR = "usr/share/wordnet"
WORDNET_FILES = ("data.noun", "data.verb", "data.adj", "data.adv")
AUSTEN_DATA = "usr/lib/R/site-library/janeaustenr/data"
# Not "sensesensibility": the LibriVox evaluation clips (pocketsphinx-testdata) are read from it.
AUSTEN_BOOKS = ("prideprejudice", "emma", "mansfieldpark", "northangerabbey", "persuasion")
AUSTEN_EXCLUDED = ("sensesensibility",)
TOKENIZERS_DATA = "usr/lib/R/site-library/tokenizers/data"
JARGON_TEXT = "usr/share/doc/jargon-text/jargon.txt.gz"

_TYPOGRAPHY = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2014": " -- ",
                             "\u2013": "-", "\u00a0": " ", "_": ""})
# Titles whose full stop does not end a sentence; protected while splitting.
_TITLE = re.compile(r"\b(Mr|Mrs|Ms|Dr|St|Jr|Sr|Capt|Col|Gen|Lt|Rev|Prof|Hon|Messrs)\.\s+")
_PROTECT = "\x00"
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+")
_CLAUSE = re.compile(r"\s*[;:]\s+")


def paragraphs(lines: Iterable[str]) -> Iterator[str]:
    """Blank-line separated paragraphs of ``lines``, each on one line."""
    block: list[str] = []
    for line in lines:
        if line.strip():
            block.append(line.strip())
        elif block:
            yield " ".join(block)
            block = []
    if block:
        yield " ".join(block)


def _pieces(paragraph: str) -> Iterator[str]:
    """Sentences and clauses of one paragraph, a full stop added where a clause was cut."""
    text = " ".join(paragraph.translate(_TYPOGRAPHY).replace('"', " ").split())
    text = _TITLE.sub(lambda m: m.group(1) + _PROTECT + " ", text)
    for sentence in _SENTENCE_END.split(text):
        clauses = [c for c in _CLAUSE.split(sentence.strip()) if c]
        for i, clause in enumerate(clauses):
            clause = clause.replace(_PROTECT, ".")
            if i < len(clauses) - 1:
                clause = clause.rstrip(",") + "."
            yield clause


def prose_sentences(paragraphs: Iterable[str]) -> list[str]:
    """Unique clean sentences of book paragraphs, in order (see the module docstring)."""
    seen: dict[str, None] = {}
    for paragraph in paragraphs:
        for piece in _pieces(paragraph):
            if not piece or not piece[0].isupper() or piece[-1] not in ".!?":
                continue
            sentence = clean_sentence(piece)
            if sentence is not None:
                seen.setdefault(sentence, None)
    return list(seen)


def _need(path: Path, asset: str) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found (install it: slamkit assets install {asset})")
    return path


def wordnet_examples(line: str) -> list[str]:
    """The quoted example sentences of one line of a WordNet ``data.*`` file (after the ``|`` gloss mark)."""
    _, bar, gloss = line.partition(" | ")
    return [ex.strip() for ex in re.findall(r'"([^"]+)"', gloss)] if bar else []


def wordnet_sentences(root: str | Path) -> list[str]:
    """WordNet's example sentences under ``root`` (the ``wordnet`` asset), capitalised with a full stop."""
    folder = _need(Path(root) / WORDNET_DIR, "wordnet")
    seen: dict[str, None] = {}
    for name in WORDNET_FILES:
        with _need(folder / name, "wordnet").open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("  "):  # the licence header
                    continue
                for example in wordnet_examples(line):
                    text = example[:1].upper() + example[1:]
                    sentence = clean_sentence(text if text[-1:] in ".!?" else text + ".")
                    if sentence is not None:
                        seen.setdefault(sentence, None)
    return list(seen)


def austen_sentences(root: str | Path, books: Iterable[str] = AUSTEN_BOOKS) -> list[str]:
    """Sentences of Jane Austen's novels ``books`` under ``root`` (the ``austen-novels`` asset).

    Raises ValueError for a book in :data:`AUSTEN_EXCLUDED` (an evaluation text)."""
    books = list(books)
    excluded = [b for b in books if b in AUSTEN_EXCLUDED]
    if excluded:
        raise ValueError(f"{excluded}: the LibriVox evaluation clips are read from it; it never goes into training text")
    folder = _need(Path(root) / AUSTEN_DATA, "austen-novels")
    return prose_sentences(p for book in books for p in paragraphs(read_character_vector(folder, book)))


def strip_gutenberg(text: str, where: str = "text") -> str:
    """The body of a Project Gutenberg e-text: between its ``*** START OF`` and ``*** END OF`` lines."""
    start, end = text.find("*** START OF"), text.find("*** END OF")
    if start < 0 or end < start:
        raise ValueError(f"{where}: no Project Gutenberg '*** START OF' / '*** END OF' markers")
    return text[text.index("\n", start) + 1:end]


def moby_dick_sentences(root: str | Path) -> list[str]:
    """Sentences of *Moby Dick* under ``root`` (the ``moby-dick`` asset)."""
    folder = _need(Path(root) / TOKENIZERS_DATA, "moby-dick")
    text = "\n".join(read_character_vector(folder, "mobydick")).replace("\r\n", "\n")
    return prose_sentences(paragraphs(strip_gutenberg(text, f"{folder} mobydick").split("\n")))


def jargon_sentences(root: str | Path) -> list[str]:
    """Sentences of the Jargon File under ``root`` (the ``jargon-file`` asset)."""
    path = _need(Path(root) / JARGON_TEXT, "jargon-file")
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as handle:
        return prose_sentences(paragraphs(handle))
