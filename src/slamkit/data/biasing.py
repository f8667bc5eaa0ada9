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
- :class:`BiasingOptions` is a run's ``data.biasing_*`` settings: it builds the list each
  utterance's prompt gets, with seed :func:`epoch_seed` ``(train.seed, epoch)`` in training (fresh
  distractors every epoch, the same again for the same epoch, so a resumed run sees what an
  uninterrupted one sees) and ``data.biasing_seed`` for decoding and validation.
- :func:`attach_tsv_lists` puts the published lists on manifest records (``slamkit prepare``).

Words are compared after :func:`slamkit.eval.normalizer.librispeech_normalize` (lower case,
punctuation other than apostrophes dropped), the normalisation the B-WER scorer applies, so
"MONTROSE" in a LibriSpeech transcript matches "montrose" in the list; words are returned in the
list's (or the record's) spelling.
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from slamkit.data.manifest import Record
from slamkit.eval.normalizer import librispeech_normalize

if TYPE_CHECKING:
    from slamkit.config import DataConfig

# SLAM-LLM's contextual-ASR prompt (examples/contextual_asr, CTC-assisted LLM-based contextual
# ASR) is `Transcribe speech to text. Some hotwords might help. The hotwords are "{}". `, the
# words joined by spaces in upper case, wrapped in "USER: {}\n ASSISTANT:". We keep its wording
# and join with ", " so that the word boundaries stay visible to the tokenizer.
DEFAULT_BIASING_TEMPLATE = (
    'Transcribe speech to text. Some hotwords might help. The hotwords are "{biasing_words}".'
)
PLACEHOLDER = "{biasing_words}"
FIELD = "biasing_words"  # the manifest field (and hypothesis-line field) holding an utterance's list
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


# --------------------------------------------------------------------------- a run's biasing lists


def epoch_seed(seed: int, epoch: int) -> int:
    """The distractor seed of training epoch ``epoch`` in a run seeded ``seed``.

    Hashed rather than added (``seed + epoch``) so that runs with neighbouring seeds do not
    share lists one epoch apart.
    """
    digest = hashlib.sha256(f"epoch\0{seed}\0{epoch}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def record_words(record: Record) -> list[str] | None:
    """The record's own ``biasing_words``, or ``None`` when it has none.

    Raises:
        ValueError: naming the record's ``file:line`` when the field is not a list of strings.
    """
    words = record.extra.get(FIELD)
    if words is not None and not (isinstance(words, list) and all(isinstance(w, str) for w in words)):
        raise ValueError(f"{record.where}: field {FIELD!r} must be a list of strings, got {words!r}")
    return words


@functools.lru_cache(maxsize=4)
def _cached_list(path: str, mtime_ns: int, size: int) -> WordList:
    """One load per file version: training reads the same list for its train and valid sets."""
    return load_biasing_list(path)


@dataclass(frozen=True)
class BiasingOptions:
    """How a run builds each utterance's biasing list (the ``data.biasing_*`` keys).

    Attributes:
        global_list: the rare-word list distractors come from (``data.biasing_list``); ``None``
            uses the records' own ``biasing_words`` as they are.
        distractors: words drawn from ``global_list`` per utterance.
        train_seed: the run seed; training epoch ``e`` draws with ``epoch_seed(train_seed, e)``.
        fixed_seed: the seed of decoding and validation (``data.biasing_seed``).
        case: ``keep`` | ``upper`` | ``lower``, applied to the words put in the prompt.
    """

    global_list: WordList | None = None
    distractors: int = 0
    train_seed: int = 0
    fixed_seed: int = 0
    case: str = "keep"

    @classmethod
    def from_config(cls, data: DataConfig, train_seed: int) -> BiasingOptions:
        """Options from ``data.biasing_*``; every problem names the config key (and the file)."""
        if data.biasing_distractors < 0:
            raise ValueError(f"data.biasing_distractors must be >= 0, got {data.biasing_distractors}")
        if data.biasing_case not in _CASES:
            raise ValueError(f"data.biasing_case: unknown case {data.biasing_case!r}; expected one of {', '.join(_CASES)}")
        words = None
        if data.biasing_list is not None:
            path = Path(data.biasing_list).expanduser()
            if not path.is_file():
                raise FileNotFoundError(f"data.biasing_list: no such file: {path}")
            try:
                stat = path.stat()
                words = _cached_list(str(path.resolve()), stat.st_mtime_ns, stat.st_size)
            except ValueError as err:
                raise ValueError(f"data.biasing_list: {err}") from None
            if data.biasing_distractors >= len(words):
                raise ValueError(f"data.biasing_distractors={data.biasing_distractors} but data.biasing_list {path} holds only {len(words)} words")
        return cls(words, data.biasing_distractors, train_seed, data.biasing_seed, data.biasing_case)

    @property
    def draws(self) -> bool:
        """True when lists are drawn from a global list (they then change with the seed)."""
        return self.global_list is not None

    def words(self, record: Record, seed: int) -> list[str] | None:
        """The list for ``record`` drawn with ``seed``, case applied; ``None`` when there is nothing to draw from.

        With a global list: :func:`select_biasing_words` (the record's own words, else the
        reference's words in the list, plus ``distractors``; shuffled). Without: the record's own
        words in their order.
        """
        own = record_words(record)
        if self.global_list is not None:
            chosen = select_biasing_words(record.target, own, self.global_list, self.distractors, seed, record.key)
        elif own is None:
            return None
        else:
            chosen = list(own)
        return [_CASES[self.case](word) for word in chosen]

    def epoch_words(self, record: Record, epoch: int) -> list[str]:
        """The list training epoch ``epoch`` gives ``record`` (needs a global list)."""
        if self.global_list is None:
            raise ValueError("epoch_words needs data.biasing_list: without it the lists do not change between epochs")
        words = self.words(record, epoch_seed(self.train_seed, epoch))
        assert words is not None  # a global list always gives a list
        return words


def attach_tsv_lists(records: Iterable[dict[str, Any]], path: str | Path, field: str = FIELD) -> list[dict[str, Any]]:
    """Copies of manifest records with ``field`` set to their list in the published TSV ``path``.

    Raises:
        ValueError: an utterance has no line in the file (names the file, the count and examples).
    """
    lists = read_biasing_tsv(path)
    out, missing = [], []
    for record in records:
        words = lists.get(record["key"])
        if words is None:
            missing.append(record["key"])
        out.append({**record, field: words})
    if missing:
        raise ValueError(f"{path}: no biasing list for {len(missing)} utterance(s) (e.g. {', '.join(missing[:3])}); "
                         "prepare the subset the file is for (test-clean or test-other)")
    return out
