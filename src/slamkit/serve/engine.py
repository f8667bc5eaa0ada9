"""The served model: loaded once, fed by the batcher, answering clips of any length.

:class:`Engine` owns the run's config and model, a private temporary folder for uploads and the
:class:`~slamkit.serve.batcher.Batcher`. A request becomes a :class:`Clip` (its audio file, its
prompt or task); a clip longer than the encoder's window is split into segments exactly as
`slamkit decode` splits it (:mod:`slamkit.infer.longform`); every segment is one job for the
batcher, and the segments' texts are joined back with their times.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import AsyncIterator, Callable
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import torch

from slamkit.data.manifest import Record
from slamkit.data.tasks import TASKS
from slamkit.infer.decode import load_run
from slamkit.infer.longform import generation_settings, join_segments, plan_segments, prepare_long_form, segment_span
from slamkit.infer.reference import reference_run_dir
from slamkit.infer.segment import Span
from slamkit.serve.batcher import Batcher
from slamkit.serve.streaming import Listener, RowStreamer, text_deltas
from slamkit.serve.upload import open_upload
from slamkit.train.data import build_loader
from slamkit.train.distributed import autocast

log = logging.getLogger("slamkit.serve")


@dataclass
class Clip:
    """One request's audio (a private file) and what to do with it."""

    path: Path
    duration: float  # seconds
    prompt: str | None = None  # an instruction taken literally; None: the task's prompt
    task: str | None = None  # None: the run's task
    extra: dict = field(default_factory=dict)  # record fields a prompt may use (e.g. biasing_words)


@dataclass
class Transcript:
    """A clip's answer: the joined text and each segment's times (seconds) and text."""

    text: str
    duration: float
    segments: list[dict]


def resolve_run(run: str) -> Path:
    """``reference`` -> the shipped reference adapter's run directory; anything else is a run directory."""
    if run == "reference":
        folder = reference_run_dir()
        if folder is None:
            raise FileNotFoundError("the shipped reference adapter is not in this installation (src/slamkit/reference/)")
        return folder
    return Path(run)


class Engine:
    """A loaded run that decodes :class:`Clip` objects through a dynamic batcher."""

    def __init__(self, run: str, overrides: list[str] | None = None, device: str | None = None, name: str | None = None,
                 max_batch: int = 8, max_wait_ms: float = 10.0, max_queue: int = 256) -> None:
        run_dir = resolve_run(run)
        self.cfg, self.model = load_run(run_dir, overrides, device)
        self.name = name or ("slamkit-reference" if run == "reference" else run_dir.resolve().name)
        self.device = next(self.model.parameters()).device
        self.sample_rate = self.model.encoder.sample_rate
        self.window = prepare_long_form(self.cfg, self.model)  # inf with decode.segment=windowed: clips decoded whole
        self._tmp = tempfile.TemporaryDirectory(prefix="slamkit-serve-")
        self.folder = Path(self._tmp.name)
        self.on_batch: list[Callable[[int], None]] = []  # called with each decoded batch's size (metrics)
        self._listeners: dict[str, Listener] = {}  # record key -> its streaming request's token listener
        self.batcher: Batcher[Record] = Batcher(self.decode_records, max_batch, max_wait_ms, max_queue, self._batch_done)
        autocast(self.cfg.decode.precision, self.device, "decode.precision")  # a bad setting fails at start-up
        log.info("serving %s (%s) on %s; segments of at most %.0f s", self.name, run_dir, self.device, self.window)

    @property
    def tasks(self) -> dict[str, str]:
        """Registered tasks and their default prompts (the run's own task first)."""
        names = [self.cfg.data.task] + [n for n in TASKS.names() if n != self.cfg.data.task]
        return {n: TASKS.get(n).prompt for n in names}

    def prompt_fields(self, prompt: str | None) -> dict:
        """Record fields from a transcription request's ``prompt``: its words become ``biasing_words``
        when the run's prompt asks for them (contextual biasing); otherwise the prompt is not used."""
        template = self.cfg.data.prompt if self.cfg.data.prompt is not None else TASKS.get(self.cfg.data.task).prompt
        if not prompt or "{biasing_words}" not in template:
            return {}
        return {"biasing_words": prompt.replace(",", " ").split()}

    def open(self, data: bytes, filename: str) -> tuple[Path, float]:
        """Store and check an upload (:func:`slamkit.serve.upload.open_upload`)."""
        return open_upload(data, filename, self.folder, self.sample_rate)

    def plan(self, clip: Clip) -> list[Record]:
        """The clip's segment records (one when it fits the encoder's window; none when a long clip has no speech)."""
        dc = self.cfg.decode
        record = Record(key=uuid.uuid4().hex, source=str(clip.path), target="", prompt=clip.prompt, task=clip.task,
                        duration=clip.duration, extra=dict(clip.extra))
        return plan_segments(record, self.sample_rate, self.window, dc.segment, dc.segment_overlap, dc.merge_pause)

    async def segments(self, clip: Clip, records: list[Record], timeout: float | None = None) -> AsyncIterator[tuple[Span, str]]:
        """Each segment's ``(span, text)`` in order, as soon as it and those before it are decoded.

        All segments are queued at once (raises :class:`~slamkit.serve.batcher.QueueFull`), so a
        long clip's segments share batches; on a timeout (:class:`asyncio.TimeoutError`) or when
        the caller stops early, the segments not yet decoded are cancelled.
        """
        futures = self.batcher.submit(records)
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        try:
            for rec, future in zip(records, futures):
                left = None if deadline is None else max(0.0, deadline - asyncio.get_running_loop().time())
                text = await asyncio.wait_for(asyncio.wrap_future(future), left)
                yield _span(rec, clip.duration), text
        finally:
            for future in futures:
                future.cancel()

    async def stream(self, records: list[Record], timeout: float | None = None) -> AsyncIterator[str]:
        """The records' joined text in pieces, token by token where decoding is greedy
        (:mod:`slamkit.serve.streaming`); raises :class:`~slamkit.serve.batcher.QueueFull` or
        :class:`asyncio.TimeoutError`; stopping early cancels what is not decoded yet.

        With ``decode.segment=overlap`` a long clip's windows repeat words that only the join
        removes, so its text comes as one piece once every window is decoded."""
        if len(records) > 1 and self.cfg.decode.segment == "overlap":
            if text := await self._joined(records, timeout):
                yield text
            return
        loop = asyncio.get_running_loop()
        updates: asyncio.Queue = asyncio.Queue()
        for i, rec in enumerate(records):
            self._listeners[rec.key] = lambda ids, i=i: loop.call_soon_threadsafe(updates.put_nowait, (i, ids))
        try:
            futures = self.batcher.submit(records)
            for i, future in enumerate(futures):
                future.add_done_callback(lambda _, i=i: loop.call_soon_threadsafe(updates.put_nowait, (i, None)))
            try:
                async for piece in text_deltas(futures, updates, self.model.prompts.decode, timeout):
                    yield piece
            finally:
                for future in futures:
                    future.cancel()
        finally:
            for rec in records:
                self._listeners.pop(rec.key, None)

    async def _joined(self, records: list[Record], timeout: float | None) -> str:
        """The records' texts decoded (in shared batches) and joined as :func:`join_segments` does."""
        futures = self.batcher.submit(records)
        try:
            texts = await asyncio.wait_for(asyncio.gather(*(asyncio.wrap_future(f) for f in futures)), timeout)
        finally:
            for future in futures:
                future.cancel()
        return join_segments([(segment_span(rec), text) for rec, text in zip(records, texts)])[0]

    async def transcribe(self, clip: Clip, timeout: float | None = None) -> Transcript:
        """Decode every segment of ``clip`` (batched with other requests' segments) and join them."""
        records = await asyncio.to_thread(self.plan, clip)
        parts = [part async for part in self.segments(clip, records, timeout)]
        text, segments = join_segments(parts)
        return Transcript(text, clip.duration, segments)

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` in the LLM's tokenizer (usage figures)."""
        return len(self.model.prompts.tokenizer(text, add_special_tokens=False)["input_ids"])

    @torch.no_grad()
    def decode_records(self, records: list[Record]) -> list[str]:
        """One batch: the records' texts in order (the batcher's ``run_batch``)."""
        loader = build_loader(self.cfg, self.model, records, "decode")
        examples = [loader.dataset[i] for i in range(len(records))]
        batch = loader.collator(examples)
        texts: dict[str, str] = {}
        if batch.keys:
            listeners = [self._listeners.get(key) for key in batch.keys]
            streamer = None
            if self.cfg.decode.beam_size == 1 and any(listeners):
                streamer = RowStreamer(listeners, self.model.prompts.tokenizer.eos_token_id)
            with autocast(self.cfg.decode.precision, self.device, "decode.precision"):
                settings = generation_settings(self.cfg, self.model, batch.audio_lengths)
                texts = dict(zip(batch.keys, self.model.generate(batch.to(self.device), settings, streamer)))
        missing = [r.key for r in records if r.key not in texts]
        if missing:  # the upload was checked when it arrived: only a file changed since could fail here
            log.warning("%d clip(s) of a batch could not be loaded", len(missing))
        return [texts.get(r.key, "") for r in records]

    def _batch_done(self, size: int) -> None:
        for listener in self.on_batch:
            listener(size)

    def close(self) -> None:
        """Stop the batcher and delete the upload folder."""
        self.batcher.stop()
        self._tmp.cleanup()


def _span(record: Record, duration: float) -> Span:
    """The seconds of the original clip a record covers: a segment's span, else the whole clip."""
    return segment_span(record) if "segment" in record.extra else Span(0.0, duration)
