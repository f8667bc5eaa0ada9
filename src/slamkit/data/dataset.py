"""Dataset: manifest record -> waveform (or video frames, :mod:`slamkit.data.video`) + prompt/target token ids.

It knows nothing of the encoder or the LLM beyond two callables that turn text into ids. Each
example carries its clip's identity key (file identity + crop + sample rate, see
:func:`clip_key`), which the model may use to serve frozen-encoder features
from the feature cache. A sample whose audio fails to load is returned as a :class:`~slamkit.data.skips.Skip` (naming
``file:line``, the reason and the detail) when ``skip_errors`` is set — the collator drops it and the loop counts it by
reason — and raises :class:`AudioError` otherwise.

Prompts are resolved once, up front, except where training draws them anew every epoch
(``per_epoch=True`` with a :class:`~slamkit.data.tasks.PromptResolver` that draws biasing lists):
those follow :attr:`SpeechDataset.epoch`, which the training loop sets through :meth:`set_epoch`
before each epoch's DataLoader starts (workers get a copy of the dataset at that moment). The same
epoch gives the same prompts, so a resumed run sees what an uninterrupted one sees. Examples carry
the biasing words their prompt used in ``extra["biasing_words"]``.

A text-only record (no ``source``, docs/text-only.md) gives an example with no audio (``audio`` of
length 0, no cache key, no file opened): with a ``prompt`` field, its prompt rendered as usual (the
collator expands the placeholder to zero audio tokens); without one, plain text: only
``text_prefix_ids`` (the tokenizer's BOS) before the target, and every target token is learned.
Its length for the duration-bucketing sampler is a proxy, :func:`text_seconds`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from slamkit.data.audio import AudioError
from slamkit.data.biasing import FIELD
from slamkit.fingerprint import digest, file_identity
from slamkit.data.collate import Example
from slamkit.data.manifest import Record
from slamkit.data.skips import DURATION_RANGE, LONG_TARGET, Skip
from slamkit.data.tasks import PromptResolver
from slamkit.data.video import load_signal, signal_duration, signal_path

log = logging.getLogger(__name__)

# Characters per second of read English speech (about 150 words a minute at about 6 characters a
# word, space included): what a text-only record's length counts as in the sampler's seconds budget.
TEXT_CHARS_PER_SECOND = 15.0


def text_seconds(rec: Record) -> float:
    """The duration proxy of a text-only record: its prompt and target read aloud, in seconds (> 0)."""
    return max(len(rec.target) + len(rec.prompt or ""), 1) / TEXT_CHARS_PER_SECOND


def clip_key(source: str | Path, offset: float, duration: float | None, sample_rate: int, content_hash: bool = False) -> str:
    """Hex key of one clip: the file's identity, the crop (seconds) and the load sample rate."""
    return digest({"file": file_identity(source, content_hash), "offset": float(offset),
                   "duration": None if duration is None else float(duration), "rate": int(sample_rate)})


class SpeechDataset(Dataset):
    """Loads audio for manifest records and tokenises their prompt and target."""

    def __init__(
        self,
        records: Sequence[Record],
        sample_rate: int,
        prompt_ids: Callable[[str], list[int]],
        target_ids: Callable[[str], list[int]] | None,
        prompt_for: Callable[[Record], str],
        skip_errors: bool = True,
        per_epoch: bool = False,
        max_target_tokens: int = 0,
        text_prefix_ids: Sequence[int] = (),
    ) -> None:
        self.records = list(records)
        self.text_prefix_ids = list(text_prefix_ids)  # before the target of a plain text-only record (BOS)
        self.sample_rate = sample_rate
        self.prompt_ids = prompt_ids
        self.target_ids = target_ids
        self.skip_errors = skip_errors
        self.max_target_tokens = max_target_tokens  # 0: no limit
        self.epoch = 0
        self._resolver = prompt_for if per_epoch and isinstance(prompt_for, PromptResolver) else None
        # Resolved (or, when drawn per epoch, checked) up front: an unknown task or a missing
        # prompt field fails before any training. None marks a prompt drawn per epoch.
        self.prompts: list[str | None] = [self._prompt_or_check(prompt_for, rec) for rec in self.records]
        self._prompt_cache: dict[str, list[int]] = {}

    def _prompt_or_check(self, prompt_for: Callable[[Record], str], rec: Record) -> str | None:
        if rec.is_text:  # plain text (None) unless the record has a prompt of its own
            return prompt_for(rec) if rec.prompt is not None else None
        if self._resolver is not None and self._resolver.varies_by_epoch(rec):
            self._resolver.check(rec)
            return None
        return prompt_for(rec)

    def set_epoch(self, epoch: int) -> None:
        """Draw per-epoch prompts for training epoch ``epoch`` (called by the loop before each epoch)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.records)

    def _prompt(self, text: str) -> list[int]:
        if text not in self._prompt_cache:
            self._prompt_cache[text] = self.prompt_ids(text)
        return self._prompt_cache[text]

    def __getitem__(self, index: int) -> Example | Skip:
        rec = self.records[index]
        # The key is taken before reading: a file replaced in between then leaves an entry under
        # the old identity (never asked for again), never old features under the new identity.
        cache_key = self._cache_key(rec)
        target_ids = self.target_ids(rec.target) if self.target_ids is not None else []
        if 0 < self.max_target_tokens < len(target_ids):
            log.warning("skipping %s (%s): target of %d tokens", rec.key, rec.where, len(target_ids))
            return Skip(rec.where, LONG_TARGET, f"target of {len(target_ids)} tokens is longer than data.max_target_tokens="
                        f"{self.max_target_tokens}", rec.key)
        if rec.is_text:
            return self._text_example(index, target_ids)
        try:
            audio = load_signal(rec, self.sample_rate)  # a waveform, or video frames (slamkit.data.video)
        except AudioError as exc:
            if not self.skip_errors:
                raise
            log.warning("skipping %s (%s): %s", rec.key, rec.where, exc)
            return Skip(rec.where, exc.reason, str(exc), rec.key)
        prompt_ids, extra = self._prompt_for(index)
        return Example(
            key=rec.key, audio=audio, prompt_ids=prompt_ids,
            target_ids=target_ids, target=rec.target, extra=extra, cache_key=cache_key,
        )

    def _text_example(self, index: int, target_ids: list[int]) -> Example:
        """The example of text-only record ``index``: no audio, its prompt (placeholder included) or
        the plain-text prefix."""
        rec, prompt = self.records[index], self.prompts[index]
        prompt_ids = self._prompt(prompt) if prompt is not None else list(self.text_prefix_ids)
        return Example(key=rec.key, audio=np.zeros(0, dtype=np.float32), prompt_ids=prompt_ids, target_ids=target_ids,
                       target=rec.target, extra=rec.extra, cache_key=None)

    def _prompt_for(self, index: int) -> tuple[list[int], dict]:
        """Prompt ids and extra fields of record ``index`` in the current epoch."""
        rec, prompt = self.records[index], self.prompts[index]
        if prompt is not None:
            return self._prompt(prompt), rec.extra
        assert self._resolver is not None
        text, words = self._resolver.for_epoch(rec, self.epoch)
        # Not cached: a per-epoch prompt is (nearly) never seen twice.
        return self.prompt_ids(text), {**rec.extra, FIELD: words}

    def _cache_key(self, rec: Record) -> str | None:
        """The clip's identity key; None when its file cannot be stat'ed (then it is never cached)."""
        if rec.source is None:  # text-only: nothing to cache
            return None
        try:
            key = clip_key(rec.source, rec.offset, rec.duration, self.sample_rate)
            video = signal_path(rec)  # an audio-visual clip is also its video
            return key if video is None else digest({"audio": key, "video": file_identity(video)})
        except (OSError, AudioError):
            return None


def record_durations(records: Sequence[Record]) -> tuple[list[float | None], list[Skip]]:
    """Duration of each record in seconds (from the manifest, else the file header; a text-only
    record's :func:`text_seconds`), and a :class:`Skip` for each record whose header cannot be read
    (its duration is ``None``)."""
    durations: list[float | None] = []
    skips: list[Skip] = []
    for rec in records:
        if rec.source is None or rec.duration is not None:
            durations.append(text_seconds(rec) if rec.source is None else float(rec.duration))  # type: ignore[arg-type]
            continue
        try:
            durations.append(signal_duration(rec))
        except AudioError as exc:
            skips.append(Skip(rec.where, exc.reason, str(exc), rec.key))
            durations.append(None)
    return durations, skips


def filter_by_duration(
    records: Sequence[Record], durations: Sequence[float | None], min_seconds: float, max_seconds: float
) -> tuple[list[Record], list[float], list[Skip]]:
    """Keep records whose duration is known and within [min_seconds, max_seconds].

    Returns (kept records, their durations, a :class:`Skip` for each out-of-range one). Records of
    unknown duration are dropped without a Skip: :func:`record_durations` gave theirs. Text-only
    records are always kept (their length is a proxy; ``data.max_target_tokens`` bounds them).
    """
    kept, kept_d, skips = [], [], []
    for rec, d in zip(records, durations):
        if d is not None and (rec.is_text or min_seconds <= d <= max_seconds):
            kept.append(rec)
            kept_d.append(d)
        elif d is not None:
            skips.append(Skip(rec.where, DURATION_RANGE, f"{d:.2f} s is outside data.min_seconds..data.max_seconds "
                              f"= [{min_seconds:g}, {max_seconds:g}] s", rec.key))
    return kept, kept_d, skips


def worker_init(worker_id: int) -> None:
    """Keep DataLoader workers single-threaded: the main process owns the cores."""
    torch.set_num_threads(1)
