"""Natural-English sentences for synthetic training speech: the text sources and their mix.

fortune-mod's data files hold short quotations separated by lines with a single ``%``. We cut
them into sentences and keep those a TTS engine reads cleanly and a scorer compares fairly
(:func:`clean_sentence`, in :mod:`slamkit.prepare.cleaning`, re-exported here): 3–25 words,
ASCII letters and light punctuation only (no digits, which a TTS engine and a transcript write
differently, no all-caps shouting, no attributions or dialogue markup).

More sources (WordNet's examples, Jane Austen, *Moby Dick*, the Jargon File; readers in
:mod:`slamkit.prepare.text_sources`) are registered in :data:`TEXT_SOURCES`, each tied to the asset
that installs it. :func:`mix_sentences` takes a spec such as ``"fortune,wordnet:8000,austen:6000"``
(a cap per source), drops every sentence that overlaps an evaluation transcript
(:class:`EvalGuard`, fed by :func:`evaluation_texts`) and every duplicate across sources, and
returns a deterministic list. See docs/text-sources.md for licences, counts and vocabulary coverage.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from slamkit.prepare.cleaning import clean_sentence
from slamkit.prepare.text_sources import (
    austen_sentences,
    jargon_sentences,
    moby_dick_sentences,
    wordnet_sentences,
)
from slamkit.registry import Registry

__all__ = ["DEFAULT_MIX", "FORTUNE_DIR", "FORTUNE_FILES", "TEXT_SOURCES", "EvalGuard", "SourceCount", "TextMix",
           "TextSource", "clean_sentence", "evaluation_texts", "fortune_entries", "fortune_sentences", "mix_sentences",
           "parse_mix", "sentences", "source_sentences", "word_key", "write_text_file"]

# Text files of the Debian `fortunes` package that read as everyday English prose.
FORTUNE_FILES = ("wisdom", "people", "work", "education", "food", "love", "men-women", "pets", "platitudes",
                 "fortunes", "humorists", "literature", "miscellaneous", "science", "politics", "goedel",
                 "kids", "law", "medicine", "songs-poems", "sports", "zippy", "computers", "cookie", "definitions")
FORTUNE_DIR = "usr/share/games/fortunes"

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def fortune_entries(text: str) -> Iterator[str]:
    """The entries of one fortune file (separated by ``%`` lines), whitespace-collapsed."""
    for block in re.split(r"^%\s*$", text, flags=re.MULTILINE):
        lines = [ln.strip() for ln in block.splitlines()]
        # Attribution lines ("-- Author") and indented dialogue are not prose.
        lines = [ln for ln in lines if ln and not ln.startswith("--")]
        entry = " ".join(lines)
        if entry:
            yield re.sub(r"\s+", " ", entry)


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


# --------------------------------------------------------------------------- registry of sources


@dataclass(frozen=True)
class TextSource:
    """A source of clean sentences: ``read(root)`` with ``root`` the installed ``asset``'s path."""

    name: str
    asset: str
    licence: str
    description: str
    read: Callable[[Path], list[str]]


TEXT_SOURCES: Registry[TextSource] = Registry("text source")


def _register(source: TextSource) -> None:
    TEXT_SOURCES.register(source.name)(source)


_register(TextSource("fortune", "fortunes", "BSD-3-Clause / public domain", "fortune-mod's cookies (quotations, jokes)",
                     lambda root: fortune_sentences(root)))
_register(TextSource("wordnet", "wordnet", "WordNet 3.0 licence (permissive, keep Princeton's notice)",
                     "WordNet 3.0's example sentences: short, everyday, every part of speech", wordnet_sentences))
_register(TextSource("austen", "austen-novels", "public domain (package MIT)",
                     "Jane Austen's novels but Sense and Sensibility (an evaluation text)",
                     austen_sentences))
_register(TextSource("moby-dick", "moby-dick", "public domain (package MIT)", "Herman Melville's Moby Dick",
                     moby_dick_sentences))
_register(TextSource("jargon", "jargon-file", "public domain", "The Jargon File 4.4.7: hacker slang, technical words",
                     jargon_sentences))

DEFAULT_MIX = "fortune,wordnet:8000,austen:6000,moby-dick:2000,jargon:2000"


def source_sentences(name: str, root: str | Path | None = None, install: bool = False) -> list[str]:
    """The clean sentences of text source ``name``, in its fixed order.

    ``root`` is the source asset's path (default: located, or installed first when ``install``).
    Raises KeyError for an unknown name, :class:`slamkit.assets.AssetMissingError` for a missing
    asset (the message says how to install it).
    """
    source = TEXT_SOURCES.get(name)
    if root is None:
        from slamkit.assets import asset_path

        root = asset_path(source.asset, install=install)
    return source.read(Path(root))


def parse_mix(spec: str) -> list[tuple[str, int | None]]:
    """``"fortune,wordnet:8000"`` → ``[("fortune", None), ("wordnet", 8000)]`` (no cap: every sentence).

    Raises KeyError for an unknown source, ValueError for a bad cap or a source named twice.
    """
    out: list[tuple[str, int | None]] = []
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        name, sep, cap_text = item.partition(":")
        TEXT_SOURCES.get(name.strip())
        cap = None
        if sep:
            if not cap_text.strip().isdigit() or int(cap_text) <= 0:
                raise ValueError(f"text mix {spec!r}: the cap of {name.strip()!r} must be a positive integer, got {cap_text!r}")
            cap = int(cap_text)
        if name.strip() in (n for n, _ in out):
            raise ValueError(f"text mix {spec!r}: {name.strip()!r} is named twice")
        out.append((name.strip(), cap))
    if not out:
        raise ValueError(f"text mix {spec!r} names no source (known: {', '.join(TEXT_SOURCES.names())})")
    return out


# --------------------------------------------------------------------------- evaluation text stays out


_WORD = re.compile(r"[a-z0-9']+")


def word_key(text: str) -> tuple[str, ...]:
    """Lower-case words of ``text``, digits spelt out ("Press 1." → ``("press", "one")``)."""
    from slamkit.prepare.phrases import number_words

    words = []
    for word in _WORD.findall(text.lower()):
        words.extend(number_words(int(word)).split() if word.isdigit() and len(word) <= 9 else [word])
    return tuple(words)


class EvalGuard:
    """Tells whether a training sentence overlaps an evaluation transcript.

    A sentence overlaps when (word-wise, see :func:`word_key`) it is part of a transcript, holds a
    whole transcript of ``min_words`` words or more, or shares a run of ``ngram`` words with one.
    """

    def __init__(self, texts: Iterable[str], ngram: int = 6, min_words: int = 3) -> None:
        self.ngram, self.min_words = ngram, min_words
        self._parts: set[tuple[str, ...]] = set()  # every contiguous run of every transcript
        self._whole: set[tuple[str, ...]] = set()  # transcripts of min_words..ngram-1 words
        for text in texts:
            words = word_key(text)
            for i in range(len(words)):
                for j in range(i + 1, len(words) + 1):
                    self._parts.add(words[i:j])
            if min_words <= len(words) < ngram:
                self._whole.add(words)
        self._sizes = sorted({len(w) for w in self._whole} | {ngram})
        self._wildcards: set[tuple[tuple[str, ...], tuple[str, ...]]] | None = None  # built by near() when first asked

    def __len__(self) -> int:
        return len(self._parts)

    def overlaps(self, sentence: str) -> bool:
        words = word_key(sentence)
        if words in self._parts:
            return True
        for size in self._sizes:
            for i in range(len(words) - size + 1):
                run = words[i:i + size]
                if run in self._whole or (size == self.ngram and run in self._parts):
                    return True
        return False

    def near(self, sentence: str, min_words: int = 4) -> bool:
        """Whether ``sentence`` (``min_words`` words or more) is a run of a transcript with at most one word
        replaced: "Press one to undelete this message" against "Press 7 to undelete this message". Generated
        phrases from templates can come this close to a prompt without sharing a whole run of it."""
        words = word_key(sentence)
        if len(words) < min_words:
            return False
        if words in self._parts:
            return True
        if self._wildcards is None:
            self._wildcards = {(p[:i], p[i + 1:]) for p in self._parts if len(p) >= 2 for i in range(len(p))}
        return any((words[:i], words[i + 1:]) in self._wildcards for i in range(len(words)))


def evaluation_texts(asterisk_root: str | Path | None = None, librivox_root: str | Path | None = None,
                     install: bool = False) -> list[str]:
    """Every transcript of the real evaluation sets: the Asterisk prompts and pocketsphinx-testdata's
    LibriVox and "cards" clips (roots default to the installed assets)."""
    from slamkit.prepare.base import asset_root
    from slamkit.prepare.debian import (
        ASTERISK_TEXT,
        POCKETSPHINX_DATA,
        clean_prompt_text,
        read_asterisk_transcripts,
        read_sphinx_transcription,
    )

    asterisk = asset_root(asterisk_root, "asterisk-sounds", install)
    text_file = next((asterisk / rel for rel in (ASTERISK_TEXT + ".gz", ASTERISK_TEXT) if (asterisk / rel).is_file()),
                     asterisk / (ASTERISK_TEXT + ".gz"))
    texts = [clean_prompt_text(t) for t in read_asterisk_transcripts(text_file).values()]
    data = asset_root(librivox_root, "pocketsphinx-testdata", install) / POCKETSPHINX_DATA
    for rel in ("librivox/transcription", "cards/cards.transcription"):
        texts += [text for _, text in read_sphinx_transcription(data / rel)]
    return [t for t in texts if t]


# --------------------------------------------------------------------------- the mix


@dataclass
class SourceCount:
    """What one source gave a mix: sentences read, dropped (evaluation overlap, duplicate), kept."""

    read: int
    eval_overlap: int
    duplicate: int
    kept: int


@dataclass
class TextMix:
    """Sentences of a mix (source by source, each in its own order) and what each source gave."""

    sentences: list[str]
    counts: dict[str, SourceCount] = field(default_factory=dict)


def mix_sentences(spec: str, exclude: Iterable[str] = (), seed: int = 0,
                  roots: Mapping[str, str | Path] | None = None, install: bool = False) -> TextMix:
    """The sentences of the sources of ``spec`` (see :func:`parse_mix`), deterministic for a ``seed``.

    Each source's sentences overlapping a text of ``exclude`` (:class:`EvalGuard`) or already
    taken from an earlier source (same :func:`word_key`) are dropped; a capped source then keeps a
    seeded random ``cap`` of the rest, in their order. Sources follow one another in ``spec``'s
    order: shuffle before cutting held-out sets. ``roots`` maps a source name to its asset path.
    """
    guard = EvalGuard(exclude)
    taken: set[tuple[str, ...]] = set()
    mix = TextMix([])
    for name, cap in parse_mix(spec):
        read = source_sentences(name, (roots or {}).get(name), install)
        clean = [s for s in read if not guard.overlaps(s)]
        fresh: dict[tuple[str, ...], str] = {}
        for sentence in clean:
            key = word_key(sentence)
            if key not in taken:
                fresh.setdefault(key, sentence)
        kept = list(fresh.values())
        if cap is not None and len(kept) > cap:
            chosen = sorted(random.Random(f"{seed}:{name}").sample(range(len(kept)), cap))
            kept = [kept[i] for i in chosen]
        taken.update(word_key(s) for s in kept)
        mix.sentences += kept
        mix.counts[name] = SourceCount(len(read), len(read) - len(clean), len(clean) - len(fresh), len(kept))
    return mix
