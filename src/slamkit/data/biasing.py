"""Biasing words for contextual-biasing ASR: word lists, per-utterance selection, prompts.

The setup is that of Le et al. (Interspeech 2021), which SLAM-LLM's contextual ASR and the
CTC-assisted LLM papers reuse on LibriSpeech: the 5 000 most frequent training words are
"common", every other word is "rare" (``all_rare_words.txt``, 209.2K words, in
facebookresearch/fbai-speech ``is21_deep_bias/words``). An utterance's biasing list is the rare
words of its reference plus N distractors drawn from the rare-word list (N = 100, 500, 1000 or
2000 in the published test lists, ``ref/test-{clean,other}.biasing_{N}.tsv``).

- :func:`load_biasing_list` reads a one-word-per-line list (such as ``all_rare_words.txt``).
- :func:`select_biasing_words` builds one utterance's list: the record's own ``biasing_words``
  when it has them, else the reference's words found in the global list; plus ``distractors``
  others from the global list; shuffled. Deterministic per ``(seed, key)`` whatever the order
  in which utterances are visited (a new seed per epoch gives fresh distractors in training).
- :func:`read_biasing_tsv` reads the published test lists, to attach them to a manifest.
- :func:`format_biasing_prompt` puts a list into an instruction (see :data:`DEFAULT_BIASING_TEMPLATE`).

Words are compared after :func:`slamkit.eval.bwer.librispeech_normalize` (lower case,
punctuation other than apostrophes dropped), the normalisation the B-WER scorer applies, so
"MONTROSE" in a LibriSpeech transcript matches "montrose" in the list; words are returned in the
list's (or the record's) spelling.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, overload

from slamkit.eval.bwer import librispeech_normalize

# SLAM-LLM's contextual-ASR prompt (examples/contextual_asr, CTC-assisted LLM-based contextual
# ASR) is `Transcribe speech to text. Some hotwords might help. The hotwords are "{}". `, the
# words joined by spaces in upper case, wrapped in "USER: {}\n ASSISTANT:". We keep its wording
# and join with ", " so that the word boundaries stay visible to the tokenizer.
DEFAULT_BIASING_TEMPLATE = (
    'Transcribe speech to text. Some hotwords might help. The hotwords are "{biasing_words}".'
)
PLACEHOLDER = "{biasing_words}"
_CASES = {"keep": str, "upper": str.upper, "lower": str.lower}


def word_key(word: str) -> str:
    """The form in which words are compared: ``"Nobleman’s"`` -> ``"nobleman's"``."""
    return librispeech_normalize(word)


class WordList(Sequence[str]):
    """An ordered list of distinct words with O(1) membership by :func:`word_key`.

    ``"MONTROSE" in words`` is true when the list holds "montrose". Words whose key is empty
    (punctuation only) or repeats an earlier word's key are dropped.
    """

    def __init__(self, words: Iterable[str]) -> None:
        self._words: list[str] = []
        self._keys: list[str] = []
        self._index: dict[str, str] = {}
        for word in words:
            key = word_key(word)
            if key and key not in self._index:
                self._index[key] = word
                self._words.append(word)
                self._keys.append(key)

    def key_at(self, index: int) -> str:
        """:func:`word_key` of the word at ``index`` (computed once, at construction)."""
        return self._keys[index]

    def lookup(self, word: str) -> str | None:
        """The list's spelling of ``word``, or ``None`` when it is not in the list."""
        return self._index.get(word_key(word))

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and word_key(word) in self._index

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> list[str]: ...

    def __getitem__(self, index: int | slice) -> str | list[str]:
        return self._words[index]

    def __len__(self) -> int:
        return len(self._words)

    def __repr__(self) -> str:
        return f"WordList({len(self)} words)"


def _read_lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of a UTF-8 file; bad bytes raise naming ``file:line``."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such biasing-list file")
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                yield number, raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as err:
                raise ValueError(f"{path}:{number}: not valid UTF-8 ({err.reason})") from None


def load_biasing_list(path: str | Path) -> WordList:
    """Read a biasing-word list: one word per line (blank lines skipped, repeats dropped).

    Raises:
        FileNotFoundError: no such file.
        ValueError: naming ``file:line`` for a line holding several words or no letters, bad
            UTF-8, or naming the file when it holds no words.
    """
    path = Path(path)
    words: list[str] = []
    for number, line in _read_lines(path):
        word = line.strip()
        if not word:
            continue
        if len(word.split()) > 1:
            raise ValueError(f"{path}:{number}: expected one word per line, got {word[:80]!r}")
        if not word_key(word):
            raise ValueError(f"{path}:{number}: {word!r} is not a word (nothing left after normalisation)")
        words.append(word)
    if not words:
        raise ValueError(f"{path}: the biasing list holds no words")
    return WordList(words)


def _rng(seed: int, key: str) -> random.Random:
    """A generator that depends only on ``(seed, key)`` (Python's ``hash`` is salted per process)."""
    digest = hashlib.sha256(f"{seed}\0{key}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _base_words(reference: str, record_words: Sequence[str] | None, global_list: WordList) -> list[str]:
    """The words the utterance's list must hold: the record's own, else the reference's listed words."""
    if record_words is not None:
        candidates: Iterable[str] = record_words
    else:
        found = (global_list.lookup(word) for word in word_key(reference).split())
        candidates = [word for word in found if word is not None]
    seen: set[str] = set()
    out: list[str] = []
    for word in candidates:
        key = word_key(word)
        if key and key not in seen:
            seen.add(key)
            out.append(word)
    return out


def _draw(global_list: WordList, count: int, exclude: set[str], rng: random.Random, where: str) -> list[str]:
    """``count`` distinct words of ``global_list`` whose keys are not in ``exclude``.

    Rejection sampling (fast when ``count`` is small beside the list, the usual case), falling
    back to sampling from the explicit candidate list; both depend only on ``rng``.
    """
    chosen: list[str] = []
    taken = set(exclude)
    for _ in range(4 * count + 64):
        if len(chosen) == count or not global_list:
            break
        index = rng.randrange(len(global_list))
        key = global_list.key_at(index)
        if key not in taken:
            taken.add(key)
            chosen.append(global_list[index])
    missing = count - len(chosen)
    if missing:
        candidates = [w for i, w in enumerate(global_list) if global_list.key_at(i) not in taken]
        if len(candidates) < missing:
            raise ValueError(
                f"{where}: asked for {count} distractors but the global list ({len(global_list)} "
                f"words) has only {len(chosen) + len(candidates)} not already in the list or the reference"
            )
        chosen += rng.sample(candidates, missing)
    return chosen


def select_biasing_words(
    reference: str,
    record_words: Sequence[str] | None,
    global_list: Sequence[str],
    distractors: int,
    seed: int,
    key: str,
) -> list[str]:
    """One utterance's biasing list, shuffled; the same for the same ``(seed, key)``.

    Args:
        reference: the utterance's transcript (any case/punctuation).
        record_words: the record's own biasing words (manifest field ``biasing_words``), or
            ``None`` to take the reference's words that are in ``global_list``.
        global_list: the rare-word list, best a :class:`WordList` from
            :func:`load_biasing_list` (a plain sequence is indexed on every call, O(n)).
        distractors: how many words to add from ``global_list``, none already in the list and
            none occurring in the reference.
        seed: run seed; ``key``: the utterance key.

    Raises:
        ValueError: negative ``distractors``, or fewer eligible distractors than asked.
    """
    if distractors < 0:
        raise ValueError(f"{key}: distractors must be >= 0, got {distractors}")
    words = global_list if isinstance(global_list, WordList) else WordList(global_list)
    rng = _rng(seed, key)
    base = _base_words(reference, record_words, words)
    exclude = {word_key(word) for word in base} | set(word_key(reference).split())
    chosen = base + _draw(words, distractors, exclude, rng, key)
    rng.shuffle(chosen)
    return chosen


def attach_biasing_words(
    records: Iterable[dict[str, Any]],
    global_list: Sequence[str],
    distractors: int,
    seed: int,
    field: str = "biasing_words",
) -> Iterator[dict[str, Any]]:
    """Copies of manifest records (``key``, ``target``) with ``field`` set by :func:`select_biasing_words`.

    A record that already has ``field`` keeps its words (distractors are still added).
    """
    words = global_list if isinstance(global_list, WordList) else WordList(global_list)
    for record in records:
        own = record.get(field)
        if own is not None and not (isinstance(own, list) and all(isinstance(w, str) for w in own)):
            raise ValueError(f"record {record.get('key')!r}: field {field!r} must be a list of strings")
        chosen = select_biasing_words(record["target"], own, words, distractors, seed, record["key"])
        yield {**record, field: chosen}


def _tsv_words(cell: str, where: str, column: int) -> list[str]:
    """A JSON list of strings from one TSV cell."""
    try:
        value = json.loads(cell)
    except json.JSONDecodeError as err:
        raise ValueError(f"{where}: column {column} is not a JSON list ({err.msg})") from None
    if not isinstance(value, list) or not all(isinstance(word, str) for word in value):
        raise ValueError(f"{where}: column {column} must be a JSON list of strings")
    return value


def read_biasing_tsv(path: str | Path) -> dict[str, list[str]]:
    """Published test lists (``test-clean.biasing_100.tsv``): utterance id -> full biasing list.

    Each line is ``id <TAB> reference <TAB> [rare words] <TAB> [biasing list]`` (JSON lists);
    the biasing list (column 4: rare words + distractors) is returned.

    Raises:
        ValueError: naming ``file:line`` for a malformed line or a repeated id.
    """
    path = Path(path)
    lists: dict[str, list[str]] = {}
    for number, line in _read_lines(path):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        cells = line.split("\t")
        if len(cells) != 4:
            raise ValueError(f"{where}: expected 4 tab-separated columns (id, text, rare words, biasing list), got {len(cells)}")
        if cells[0] in lists:
            raise ValueError(f"{where}: utterance {cells[0]!r} appears twice")
        _tsv_words(cells[2], where, 3)
        lists[cells[0]] = _tsv_words(cells[3], where, 4)
    if not lists:
        raise ValueError(f"{path}: no biasing lists")
    return lists


def format_biasing_prompt(
    words: Sequence[str],
    template: str = DEFAULT_BIASING_TEMPLATE,
    separator: str = ", ",
    case: str = "keep",
) -> str:
    """Instruction text with the words in place of ``{biasing_words}``.

    ``format_biasing_prompt(["montrose", "prowess"])`` ->
    ``'Transcribe speech to text. Some hotwords might help. The hotwords are "montrose, prowess".'``
    An empty list leaves the quotes empty, as SLAM-LLM does for its no-biasing runs. ``case`` is
    ``keep``, ``upper`` (SLAM-LLM's choice, matching upper-case LibriSpeech targets) or ``lower``.
    Only ``{biasing_words}`` is substituted; other braces in the template are left alone.

    Raises:
        ValueError: the template has no ``{biasing_words}``, or an unknown ``case``.
    """
    if PLACEHOLDER not in template:
        raise ValueError(f"the biasing prompt template {template!r} has no {PLACEHOLDER} placeholder")
    if case not in _CASES:
        raise ValueError(f"unknown case {case!r}; expected one of {', '.join(_CASES)}")
    return template.replace(PLACEHOLDER, separator.join(_CASES[case](word) for word in words))
