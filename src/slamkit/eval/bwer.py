"""Contextual-biasing scores: WER, B-WER and U-WER (Le et al., Interspeech 2021).

The rules are those of the published scorer (facebookresearch/fbai-speech,
``is21_deep_bias/score.py``), released with the LibriSpeech biasing lists on which
contextual-biasing results are reported (SLAM-LLM's contextual ASR among them); this is our own
implementation of those rules:

- **Alignment** is a weighted Levenshtein distance: a match costs 0, an insertion or a deletion
  3, a substitution 4. Unit-cost aligners such as jiwer can split the same errors into
  different S/I/D counts (e.g. they may pair two wrong words as two substitutions where the
  weighted cost prefers a deletion and an insertion), so they cannot be reused here.
- **Tie-break**: each cell of the table keeps the diagonal step (match or substitution) unless an
  insertion is strictly cheaper, and then a deletion only if strictly cheaper still; the path is
  read back from the last cell along those choices.
- **Attribution**: a reference word (hit, substitution or deletion) counts toward B-WER when it
  is in the utterance's biasing set, toward U-WER otherwise; an insertion counts toward B-WER
  when the *inserted hypothesis word* is in the set. Counts are summed over the corpus and each
  rate is (S + D + I) / reference words of its class: a corpus-level rate, not a mean of
  per-utterance rates.
- **Which set**: the official reference files carry two lists per utterance, the rare words of
  the reference and the full biasing list (those words plus N distractors); the scorer reads the
  *first*. Because the full list is a superset drawn from the same rare-word vocabulary, the
  reference's rare words are exactly ``full list ∩ reference words``. :func:`bwer_counts`
  therefore intersects the given ``biasing_words`` with the reference's words by default
  (``restrict_to_reference=True``), so a hypothesis file carrying the prompt's full list (with
  distractors) scores exactly as the official scorer scores its reference file, and the score
  does not depend on how many distractors were in the prompt. With ``False``, an inserted
  distractor counts toward B-WER.
- **Text**: the official scorer compares whitespace-split tokens exactly, because its references
  are already LibriSpeech-normalised (lower case, no punctuation, apostrophes kept). LLM output
  has case and punctuation, so :func:`bwer_scores` first applies one of :data:`BWER_NORMALIZERS`
  to reference, hypothesis *and* biasing words alike: ``librispeech`` (default: lower case,
  curly apostrophes straightened, punctuation and symbols other than apostrophes dropped) or
  ``none`` (the official behaviour: whitespace split only, case-sensitive). Whisper's
  normaliser is not offered: it rewrites "nobleman's" as "nobleman is", which turns one biasing
  word into two tokens that no longer match the list.

Two deliberate departures from the official script: an utterance whose reference and hypothesis
are both empty adds nothing (the script raises), and a class with no reference words reports its
rate as ``None`` (the script fails an assertion). Numbers are not converted, so "5" against
"five" is an error, as in the official scorer.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slamkit.eval.hyps import METRICS, HypRecord, read_hyp_records
from slamkit.eval.normalizer import librispeech_normalize
from slamkit.registry import Registry


INSERTION_COST = 3
DELETION_COST = 3
SUBSTITUTION_COST = 4

Words = str | Sequence[str]
EditOp = tuple[str | None, str | None]

# Back-pointers of the alignment table.
_DIAGONAL, _INSERTION, _DELETION = 0, 1, 2


def _table(ref: Sequence[str], hyp: Sequence[str]) -> list[list[int]]:
    """Back-pointer table ``[len(ref)+1][len(hyp)+1]`` of the weighted alignment.

    Row ``i`` has consumed ``i`` reference words, column ``j`` ``j`` hypothesis words. Ties keep
    the diagonal, then the insertion (strict ``<`` comparisons, in that order).
    """
    cols = len(hyp) + 1
    back = [[_DIAGONAL] * cols for _ in range(len(ref) + 1)]
    prev = [j * INSERTION_COST for j in range(cols)]
    back[0] = [_DIAGONAL] + [_INSERTION] * len(hyp)
    for i in range(1, len(ref) + 1):
        row = [prev[0] + DELETION_COST] + [0] * len(hyp)
        back[i][0] = _DELETION
        for j in range(1, cols):
            best = prev[j - 1] + (0 if ref[i - 1] == hyp[j - 1] else SUBSTITUTION_COST)
            step = _DIAGONAL
            if row[j - 1] + INSERTION_COST < best:
                best, step = row[j - 1] + INSERTION_COST, _INSERTION
            if prev[j] + DELETION_COST < best:
                best, step = prev[j] + DELETION_COST, _DELETION
            row[j] = best
            back[i][j] = step
        prev = row
    return back


def align(ref_words: Sequence[str], hyp_words: Sequence[str]) -> list[EditOp]:
    """Weighted alignment of two word sequences, in reading order.

    Each step is ``(ref, hyp)``: both set for a match or substitution, ``(ref, None)`` for a
    deletion, ``(None, hyp)`` for an insertion. Example: ``align(["a"], ["b", "c"])`` gives
    ``[(None, "b"), ("a", "c")]`` — substituting then inserting costs the same, and the
    diagonal wins the tie at the last cell.
    """
    back = _table(ref_words, hyp_words)
    i, j = len(ref_words), len(hyp_words)
    ops: list[EditOp] = []
    while i > 0 or j > 0:
        step = back[i][j]
        if step == _DIAGONAL:
            i, j = i - 1, j - 1
            ops.append((ref_words[i], hyp_words[j]))
        elif step == _INSERTION:
            j -= 1
            ops.append((None, hyp_words[j]))
        else:
            i -= 1
            ops.append((ref_words[i], None))
    ops.reverse()
    return ops


@dataclass
class ClassCounts:
    """Error counts of one word class (all words, biasing words, or the others)."""

    ref_words: int = 0
    substitutions: int = 0
    insertions: int = 0
    deletions: int = 0

    @property
    def errors(self) -> int:
        """S + I + D."""
        return self.substitutions + self.insertions + self.deletions

    @property
    def rate(self) -> float | None:
        """errors / ref_words as a fraction; ``None`` when the class has no reference words."""
        return self.errors / self.ref_words if self.ref_words else None

    def __add__(self, other: ClassCounts) -> ClassCounts:
        return ClassCounts(
            self.ref_words + other.ref_words,
            self.substitutions + other.substitutions,
            self.insertions + other.insertions,
            self.deletions + other.deletions,
        )


@dataclass
class Counts:
    """WER counts split into biasing (``biased``) and other (``unbiased``) words."""

    total: ClassCounts = field(default_factory=ClassCounts)
    biased: ClassCounts = field(default_factory=ClassCounts)
    unbiased: ClassCounts = field(default_factory=ClassCounts)
    utterances: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.total + other.total,
            self.biased + other.biased,
            self.unbiased + other.unbiased,
            self.utterances + other.utterances,
        )


def _words(text: Words) -> list[str]:
    """A string is split on whitespace; a sequence is taken as already split."""
    return text.split() if isinstance(text, str) else list(text)


def _count_op(counts: Counts, ref: str | None, hyp: str | None, bias: Collection[str]) -> None:
    """Add one alignment step to ``counts`` (see the module docs for the attribution)."""
    cls = counts.biased if (hyp if ref is None else ref) in bias else counts.unbiased
    for target in (counts.total, cls):
        if ref is None:
            target.insertions += 1
            continue
        target.ref_words += 1
        if hyp is None:
            target.deletions += 1
        elif hyp != ref:
            target.substitutions += 1


def bwer_counts(
    ref: Words, hyp: Words, biasing_words: Iterable[str], *, restrict_to_reference: bool = True
) -> Counts:
    """Counts of one utterance; ``ref``/``hyp`` are compared as given (no normalisation).

    Args:
        ref: reference text (split on whitespace) or its words.
        hyp: hypothesis text or its words.
        biasing_words: the utterance's biasing words (any order, duplicates harmless).
        restrict_to_reference: keep only the biasing words that occur in the reference, as the
            official scorer's rare-word column does (module docs); ``False`` uses the set as is,
            so an inserted distractor counts toward B-WER.
    """
    ref_words, hyp_words = _words(ref), _words(hyp)
    bias = set(biasing_words)
    if restrict_to_reference:
        bias &= set(ref_words)
    counts = Counts(utterances=1)
    for ref_word, hyp_word in align(ref_words, hyp_words):
        _count_op(counts, ref_word, hyp_word, bias)
    return counts


# --------------------------------------------------------------------------- text


def _split_only(text: str) -> str:
    """The official scorer's treatment: none beyond whitespace splitting."""
    return " ".join(text.split())


BWER_NORMALIZERS: Registry[Callable[[str], str]] = Registry("B-WER normaliser")
BWER_NORMALIZERS.register("librispeech")(librispeech_normalize)
BWER_NORMALIZERS.register("none")(_split_only)
DEFAULT_BWER_NORMALIZER = "librispeech"


def _bwer_normalizer(name: str) -> Callable[[str], str]:
    """The B-WER normaliser ``name``; others (e.g. ``whisper``) fail with the reason."""
    if name not in BWER_NORMALIZERS:
        raise KeyError(
            f"B-WER normaliser {name!r} is not supported; use one of "
            f"{', '.join(BWER_NORMALIZERS.names())} (default {DEFAULT_BWER_NORMALIZER}): "
            "biasing words must stay single words that match the list, and the whisper/basic "
            "normalisers rewrite or split them (\"nobleman's\" -> \"nobleman is\" / \"nobleman s\")"
        )
    return BWER_NORMALIZERS.get(name)


# --------------------------------------------------------------------------- corpus


@dataclass(frozen=True)
class BiasingItem:
    """One scored utterance; ``where`` is ``file:line`` (or ``<memory>``) for messages."""

    key: str
    ref: str
    hyp: str
    biasing_words: tuple[str, ...]
    where: str = "<memory>"


ItemLike = BiasingItem | tuple[str, str, Sequence[str]]


def _as_item(item: ItemLike, index: int) -> BiasingItem:
    """Accept a :class:`BiasingItem` or a ``(ref, hyp, biasing_words)`` tuple."""
    if isinstance(item, BiasingItem):
        return item
    ref, hyp, words = item
    return BiasingItem(str(index), ref, hyp, tuple(words), f"item {index}")


def _normalized_bias(words: Iterable[str], norm: Callable[[str], str], where: str) -> set[str]:
    """Normalise each biasing entry; a phrase ("new york", or "new-york" that normalises to two words)
    makes each of its words a biasing word (hotword lists hold phrases; the scorer counts words)."""
    out: set[str] = set()
    for word in words:
        out.update(norm(word).split())
    return out


def _flat(prefix: str, counts: ClassCounts) -> dict[str, Any]:
    """``{prefix}ref_words``, ``{prefix}errors``, ``{prefix}substitutions`` … of one class."""
    return {
        f"{prefix}ref_words": counts.ref_words,
        f"{prefix}errors": counts.errors,
        f"{prefix}substitutions": counts.substitutions,
        f"{prefix}insertions": counts.insertions,
        f"{prefix}deletions": counts.deletions,
    }


def bwer_scores(
    items: Iterable[ItemLike],
    normalizer: str = DEFAULT_BWER_NORMALIZER,
    *,
    restrict_to_reference: bool = True,
) -> dict[str, Any]:
    """Corpus WER, B-WER and U-WER with their raw counts.

    Args:
        items: :class:`BiasingItem` objects or ``(ref, hyp, biasing_words)`` tuples.
        normalizer: a name in :data:`BWER_NORMALIZERS`, applied to ref, hyp and biasing words.
        restrict_to_reference: see :func:`bwer_counts`.

    Returns:
        ``{"wer", "b_wer", "u_wer"}`` as fractions (``b_wer``/``u_wer`` are ``None`` when no
        reference word falls in their class), plus ``ref_words``, ``errors``,
        ``substitutions``, ``insertions``, ``deletions`` for all words and the same with the
        prefixes ``b_`` and ``u_``, ``utterances`` and ``normalizer``.

    Raises:
        ValueError: no items, a biasing word that normalises to several words, or no reference
            words at all (WER undefined).
        KeyError: unknown normaliser name.
    """
    norm = _bwer_normalizer(normalizer)
    total = Counts()
    for index, raw in enumerate(items):
        item = _as_item(raw, index)
        bias = _normalized_bias(item.biasing_words, norm, item.where)
        total += bwer_counts(
            norm(item.ref), norm(item.hyp), bias, restrict_to_reference=restrict_to_reference
        )
    if total.utterances == 0:
        raise ValueError("no utterances to score")
    if total.total.ref_words == 0:
        raise ValueError(
            f"WER is undefined: all {total.utterances} references are empty after {normalizer!r} "
            f"normalisation (the hypotheses hold {total.total.insertions} words)"
        )
    return {
        "wer": total.total.rate,
        "b_wer": total.biased.rate,
        "u_wer": total.unbiased.rate,
        **_flat("", total.total),
        **_flat("b_", total.biased),
        **_flat("u_", total.unbiased),
        "utterances": total.utterances,
        "normalizer": normalizer,
    }


def _biasing_words(value: object, where: str) -> tuple[str, ...]:
    """Validate a ``biasing_words`` field: a list of strings."""
    if not isinstance(value, list) or not all(isinstance(word, str) for word in value):
        got = type(value).__name__
        raise ValueError(f"{where}: field 'biasing_words' must be a list of strings, got {got}")
    return tuple(value)


def _to_item(record: HypRecord) -> BiasingItem:
    """A hypothesis-file record -> :class:`BiasingItem`; errors name the record's line."""
    if not isinstance(record.ref, str):
        raise ValueError(f"{record.where}: B-WER needs one reference string, got a list")
    if "biasing_words" not in record.extra:
        raise ValueError(f"{record.where}: missing field 'biasing_words'")
    words = _biasing_words(record.extra["biasing_words"], record.where)
    return BiasingItem(record.key, record.ref, record.hyp, words, record.where)


def read_bwer_hyps(path: str | Path) -> list[BiasingItem]:
    """Read JSONL lines ``{"key", "hyp", "ref", "biasing_words": [...]}``.

    Blank lines are skipped; keys must be unique; other fields are ignored.

    Raises:
        ValueError: naming ``file:line`` (invalid JSON, missing or mistyped field, duplicate
            key), or the file when it holds no records.
    """
    return [_to_item(record) for record in read_hyp_records(path)]


@METRICS.register("bwer")
def bwer_metric(records: Sequence[HypRecord], normalizer: str) -> dict[str, Any]:
    """The ``bwer`` metric (:data:`slamkit.eval.hyps.METRICS`): WER, B-WER and U-WER of lines carrying ``biasing_words``."""
    return bwer_scores([_to_item(record) for record in records], normalizer)
