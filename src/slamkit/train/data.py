"""The one loader builder: a manifest becomes a DataLoader for training, validation or decoding.

It joins the runtime data path (:mod:`slamkit.data`) to a built model's text side (prompt and
target token ids, the audio placeholder) and its pure length rule (:meth:`SpeechLLM.token_counter`),
so neither package imports the other. Modes differ only in what the task needs:

============ ========== =========== ============ ===============================================
mode         targets    padding     order        records
============ ========== =========== ============ ===============================================
``train``    yes        right       shuffled     unusable lines and records skipped and counted
``valid``    yes        right       fixed        unusable lines and records skipped and counted
``decode``   no         left        by duration  all usable lines kept (each gets a hypothesis line)
============ ========== =========== ============ ===============================================

What training and validation leave out before loading, each as a :class:`~slamkit.data.skips.Skip`
naming ``file:line``: lines that are not UTF-8, not JSON, miss or mistype a field, or repeat a key;
records with an empty target; audio whose header cannot be read (missing, unreadable, not audio); and
durations outside ``data.min_seconds``..``data.max_seconds``. A clip whose samples turn out unusable
while loading (NaN, truncated data) is skipped by the dataset and counted by the loop.

Training and validation read text-only records (no ``source``) as ``data.text_records`` says
(docs/text-only.md); decoding always needs audio, so there a line without ``source`` is a bad line.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal, Sequence

import torch
from torch.utils.data import DataLoader

from slamkit.batch import Batch
from slamkit.config import Config
from slamkit.data.collate import Collator
from slamkit.data.dataset import SpeechDataset, filter_by_duration, record_durations, worker_init
from slamkit.data.manifest import Record, scan_manifest
from slamkit.data.skips import EMPTY_TARGET, Skip, count_by_reason, describe
from slamkit.data.sampler import BucketBatchSampler
from slamkit.data.tasks import prompt_resolver
from slamkit.models.encoders import ENCODERS
from slamkit.models.speech_llm import SpeechLLM

Mode = Literal["train", "valid", "decode"]
log = logging.getLogger("slamkit")


@dataclass
class Loader:
    """Everything one manifest's batches come from; :meth:`dataloader` makes the DataLoader."""

    records: list[Record]
    dataset: SpeechDataset
    sampler: BucketBatchSampler
    collator: Collator
    workers: int
    skips: list[Skip]  # records dropped before loading, with their file:line and reason
    pin_memory: bool = False  # page-locked batches for asynchronous copies to a CUDA device
    prefetch: int = 2  # batches each worker prepares ahead (DataLoader prefetch_factor)

    @property
    def skipped(self) -> int:
        """Records dropped before loading."""
        return len(self.skips)

    def dataloader(self) -> DataLoader:
        """A DataLoader over the sampler's current epoch. A private generator keeps its start-up
        from consuming the global RNG, which would shift dropout noise after a resume."""
        return DataLoader(self.dataset, batch_sampler=self.sampler, collate_fn=self.collator, num_workers=self.workers,
                          worker_init_fn=worker_init if self.workers else None, generator=torch.Generator().manual_seed(0),
                          pin_memory=self.pin_memory, prefetch_factor=self.prefetch if self.workers else None)


def build_loader(cfg: Config, model: SpeechLLM, manifest: str | Path | Sequence[Record], mode: Mode, seed: int = 0,
                 rank: int = 0, world: int = 1, pin_memory: bool | None = None) -> Loader:
    """The :class:`Loader` of ``manifest`` (a JSONL path, or records already read) for ``mode`` (see
    the module's table); with ``world`` processes, this ``rank``'s share of every global batch
    (:class:`BucketBatchSampler`). Batches are pinned when the model is on a CUDA device
    (``pin_memory`` None) or when asked."""
    text_records = cfg.data.text_records if mode != "decode" else "refuse"
    if mode == "train" and text_records != "refuse" and cfg.train.prealign_steps:
        raise ValueError(f"train.prealign_steps={cfg.train.prealign_steps} with data.text_records={text_records}: pre-alignment "
                         "trains the projector on audio alone; set train.prealign_steps=0 for text-only training")
    records, skips = _read(manifest, text_records)
    durations, unreadable = record_durations(records)
    skips += unreadable
    if mode == "decode":
        durations = [d if d is not None else 0.0 for d in durations]
    else:
        records, durations, out_of_range = filter_by_duration(*_with_targets(records, durations, skips),
                                                              cfg.data.min_seconds, cfg.data.max_seconds)
        skips += out_of_range
        report_skips(skips, f"{mode} set")
        if not records:
            source = manifest if isinstance(manifest, (str, Path)) else "the given records"
            first = "; ".join(f"{s.message} [{s.reason}]" for s in skips[:3])
            raise ValueError(f"{source}: no usable records (all {len(skips)} were skipped: {describe(count_by_reason(skips))}; "
                             f"`slamkit validate` names each line). First: {first}")
    prompts, train = model.prompts, mode == "train"
    targets = prompts.target_ids if mode != "decode" else None
    dataset = SpeechDataset(records, model.encoder.sample_rate, prompts.prompt_ids, targets, prompt_resolver(cfg),
                            skip_errors=True, per_epoch=train,
                            max_target_tokens=cfg.data.max_target_tokens if mode != "decode" else 0,
                            text_prefix_ids=_bos(prompts.tokenizer))
    if mode == "decode":
        sampler = BucketBatchSampler(durations, cfg.decode.batch_size, shuffle=False, bucket=True, num_replicas=world, rank=rank)
    else:
        sampler = BucketBatchSampler(durations, cfg.data.batch_size, cfg.data.batch_seconds, shuffle=train, bucket=cfg.data.bucket,
                                     seed=seed, short_first_epochs=cfg.data.short_first_epochs if train else 0,
                                     num_replicas=world, rank=rank)
    collator = Collator(model.audio_token_id, int(prompts.tokenizer.pad_token_id), model.token_counter(),
                        "left" if mode == "decode" else "right", with_targets=mode != "decode")
    if pin_memory is None:
        pin_memory = next(model.parameters()).device.type == "cuda"
    if cfg.data.prefetch_factor < 1:
        raise ValueError(f"data.prefetch_factor must be at least 1 (got {cfg.data.prefetch_factor})")
    return Loader(records, dataset, sampler, collator, cfg.data.num_workers, skips, pin_memory, cfg.data.prefetch_factor)


def _read(manifest: str | Path | Sequence[Record], text_records: str = "refuse") -> tuple[list[Record], list[Skip]]:
    """A manifest's usable records and its unusable lines (records given in code are all usable)."""
    if isinstance(manifest, (str, Path)):
        return scan_manifest(manifest, text_records)
    return list(manifest), []


def _bos(tokenizer) -> list[int]:  # noqa: ANN001 - a transformers tokenizer
    """What a plain text-only example starts with: the tokenizer's BOS, if it has one."""
    bos = getattr(tokenizer, "bos_token_id", None)
    return [int(bos)] if bos is not None else []


def _with_targets(records: list[Record], durations: list[float | None],
                  skips: list[Skip]) -> tuple[list[Record], list[float | None]]:
    """Records that have a target to learn (and their durations); the others are added to ``skips``."""
    kept = [(r, d) for r, d in zip(records, durations) if r.target.strip()]
    skips += [Skip(r.where, EMPTY_TARGET, "empty target: nothing to learn or to validate against", r.key)
              for r in records if not r.target.strip()]
    return [r for r, _ in kept], [d for _, d in kept]


def report_skips(skips: Sequence[Skip], what: str, detailed: int = 10) -> None:
    """Log the first ``detailed`` skips one per line (file:line, reason, detail), then the count by reason."""
    for skip in skips[:detailed]:
        log.warning("%s: skipping %s [%s]", what, skip.message, skip.reason)
    if skips:
        more = f" ({len(skips) - detailed} more not shown; `slamkit validate` lists all)" if len(skips) > detailed else ""
        log.warning("%s: %d record(s) skipped before loading: %s%s", what, len(skips), describe(count_by_reason(skips)), more)


def check_clip_window(cfg: Config) -> None:
    """Refuse a ``data.max_seconds`` longer than the encoder's input window (before anything is built).

    Training keeps clips up to ``data.max_seconds``; an encoder with a fixed window
    (:attr:`AudioEncoder.max_seconds`, 30 s for Whisper) refuses longer ones, so the run would
    fail on its first long clip instead of at the start.
    """
    limit = ENCODERS.get(cfg.model.encoder.name).max_seconds
    if limit is not None and cfg.data.max_seconds > limit:
        raise ValueError(f"data.max_seconds={cfg.data.max_seconds:g} exceeds the {cfg.model.encoder.name} encoder's input "
                         f"window of {limit:g} s: set data.max_seconds <= {limit:g} (longer clips are skipped and counted)")


def batch_stream(loader: Loader) -> Iterator[Batch]:
    """Endless batches across epochs; advances ``sampler.position`` as batches are consumed."""
    sampler = loader.sampler
    while True:
        loader.dataset.set_epoch(sampler.epoch)  # per-epoch prompts (biasing distractors) follow the sampler, resumes included
        for batch in loader.dataloader():
            sampler.position += 1
            yield batch
        sampler.epoch += 1
        sampler.position = 0
