"""A word-by-word English→French gloss from Debian's FreeDict dictionary, and the speech-translation
mechanics corpus built with it (``slamkit`` asset ``freedict-eng-fra``).

This is a **mechanics check, not a translation**: each word becomes one French dictionary
equivalent, in English word order, with no agreement, articles or idiom. It exists so that the
whole speech-translation path (TTS speech → transcript → target-language text → train, decode,
BLEU/chrF and transcript WER) runs offline on packaged data; its scores say nothing about
translation quality.

The dictionary is the dictd format: ``freedict-eng-fra.index`` lines ``headword<TAB>offset<TAB>length``
(base-64 numbers over ``A-Za-z0-9+/``) into ``freedict-eng-fra.dict.dz`` (dictzip, gzip-compatible).
An entry is ``headword /pronunciation/`` then senses, numbered (``1. chat, matou``) or not, each a
comma-separated list of equivalents. The gloss of a word is its shortest one-word equivalent over all
senses (ties: the first), which tends to pick the plain word (``cat`` → ``chat``, ``drink`` →
``boire``); a word with no entry (also tried without a plural ``s``) stays as it is and is counted.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from slamkit.eval.translation import join_cot
from slamkit.prepare.base import CorpusError

ASSET = "freedict-eng-fra"
DICT_DIR = "usr/share/dictd"
NAME = "freedict-eng-fra"
_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_SENSE = re.compile(r"^\d+\.\s*")
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")

#: Short everyday English sentences for the mechanics demonstration (synthetic speech is made of them).
SENTENCES = (
    "the cat drinks water", "the dog eats bread", "a small house", "the big red house",
    "the woman sees the dog", "the man drinks wine", "a cat sleeps in the house", "the child eats an apple",
    "the water is cold", "the dog sees a cat", "a woman and a man", "the bread is good",
)


def _number(text: str) -> int:
    """A dictd base-64 number."""
    value = 0
    for char in text:
        value = value * 64 + _B64.index(char)
    return value


class FreeDict:
    """One FreeDict dictionary: ``lookup(word)`` gives its senses, ``gloss(text)`` the word-by-word gloss."""

    def __init__(self, index: str | Path, data: str | Path) -> None:
        index, data = Path(index), Path(data)
        for path in (index, data):
            if not path.is_file():
                raise CorpusError(f"{path}: no such FreeDict file (slamkit assets install {ASSET})")
        try:
            raw = data.read_bytes()
            self._data = gzip.decompress(raw) if data.suffix == ".dz" else raw
        except OSError as err:
            raise CorpusError(f"{data}: cannot read the dictionary ({err})") from err
        self._entries: dict[str, list[tuple[int, int]]] = {}
        for number, line in enumerate(index.read_text(encoding="utf-8").splitlines(), start=1):
            parts = line.split("\t")
            if len(parts) != 3:
                raise CorpusError(f"{index}:{number}: expected `headword<TAB>offset<TAB>length`, got {line[:80]!r}")
            self._entries.setdefault(parts[0].strip().lower(), []).append((_number(parts[1]), _number(parts[2])))

    @classmethod
    def from_root(cls, root: str | Path) -> FreeDict:
        """The dictionary below an extraction root (``<root>/usr/share/dictd/freedict-eng-fra.*``)."""
        folder = Path(root) / DICT_DIR
        return cls(folder / f"{NAME}.index", folder / f"{NAME}.dict.dz")

    def lookup(self, word: str) -> list[list[str]]:
        """Senses of ``word`` (each a list of equivalents), over all its entries; ``[]`` when it has none."""
        senses: list[list[str]] = []
        for offset, length in self._entries.get(word.lower(), []):
            lines = self._data[offset:offset + length].decode("utf-8", errors="replace").splitlines()
            if not lines or lines[0].split(" /")[0].strip().lower() != word.lower():
                continue  # an entry for a prefix or suffix form (``water‐``) indexed under the bare word
            for line in lines[1:]:
                alternatives = [a.strip() for a in _SENSE.sub("", line).split(",") if a.strip()]
                if alternatives:
                    senses.append(alternatives)
        return senses

    def word(self, word: str) -> str | None:
        """The gloss of one lower-case word (module docs), ``None`` when the dictionary lacks it."""
        for form in (word, word[:-1] if word.endswith("s") and len(word) > 3 else None):
            if form is None:
                continue
            options = [a for sense in self.lookup(form) for a in sense]
            if options:
                single = [a for a in options if " " not in a]
                return min(single or options, key=len)
        return None

    def gloss(self, text: str) -> tuple[str, int]:
        """``(French gloss, words left in English)`` of ``text``, word by word."""
        out, unknown = [], 0
        for word in _WORD.findall(text.lower()):
            french = self.word(word)
            unknown += french is None
            out.append(french if french is not None else word)
        return " ".join(out), unknown


def gloss_records(records: Sequence[dict[str, Any]], dictionary: FreeDict, cot: bool = True) -> tuple[list[dict[str, Any]], int]:
    """Speech-translation records from transcribed ones (``target`` = English transcript): task ``st_cot``
    (``"<transcript> <|translation|> <gloss>"``) or ``st`` (the gloss), ``target_language`` French."""
    out, unknown = [], 0
    for record in records:
        french, missing = dictionary.gloss(record["target"])
        unknown += missing
        out.append({**record, "target": join_cot(record["target"], french) if cot else french, "task": "st_cot" if cot else "st",
                    "target_language": "French", "transcript": record["target"], "translation": french})
    return out, unknown


def prepare_gloss_st(out_dir: str | Path, root: str | Path | None = None, *, sentences: Sequence[str] = SENTENCES,
                     engines: Sequence[str] = ("flite",), cot: bool = True, seed: int = 0, workers: int = 1,
                     install: bool = False) -> dict[str, Any]:
    """The mechanics corpus: ``sentences`` spoken by TTS into ``<out_dir>/wav``, glossed into French;
    writes ``<out_dir>/st.jsonl`` and returns a summary (``unknown_words``: words left in English).

    ``root`` is the FreeDict extraction root (default: the installed ``freedict-eng-fra`` asset).
    """
    from slamkit.data.manifest import write_manifest
    from slamkit.prepare.base import asset_root, corpus_summary
    from slamkit.prepare.tts import prepare_tts

    dictionary = FreeDict.from_root(asset_root(root, ASSET, install))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    text = out / "sentences.txt"
    text.write_text("".join(f"{s}\n" for s in sentences), encoding="utf-8")
    tts = prepare_tts(text, out, engines=engines, seed=seed, workers=workers, name="transcripts")
    transcribed = [json.loads(line) for line in Path(tts["manifest"]).read_text(encoding="utf-8").splitlines() if line.strip()]
    records, unknown = gloss_records(transcribed, dictionary, cot)
    manifest = out / "st.jsonl"
    write_manifest(records, manifest)
    return corpus_summary(manifest, records, task=records[0]["task"], target_language="French", unknown_words=unknown,
                          note="word-by-word dictionary gloss: a mechanics check, not a translation")
