"""Dynamic batching: concurrent requests' clips decoded together, off the event loop.

Requests put *jobs* (one clip, or one segment of a long clip) on a queue. One worker thread takes
the oldest job, waits until ``max_wait_ms`` after that job arrived or until ``max_batch`` jobs are
waiting, whichever comes first, and runs them as one batch through ``run_batch``. Each job's
result goes back to its request through a :class:`concurrent.futures.Future`, which the event loop
awaits without blocking. Decoding is per-clip independent (left padding, per-clip attention masks),
so a job's text does not depend on which other jobs share its batch.

The queue is bounded (``max_queue`` jobs): a request that would overflow it is refused at once
(:class:`QueueFull`, HTTP 503 with ``Retry-After``) rather than waiting without limit. A request
that times out cancels its jobs (``Future.cancel``); the worker skips cancelled jobs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Generic, TypeVar

log = logging.getLogger("slamkit.serve")

J = TypeVar("J")


class QueueFull(RuntimeError):
    """The batcher's queue cannot take a request's jobs now."""


@dataclass
class _Pending(Generic[J]):
    job: J
    future: Future = field(default_factory=Future)
    arrived: float = field(default_factory=time.monotonic)


class Batcher(Generic[J]):
    """Collects jobs into batches for ``run_batch(jobs) -> results`` (one result per job, in order)."""

    def __init__(self, run_batch: Callable[[list[J]], list], max_batch: int = 8, max_wait_ms: float = 10.0,
                 max_queue: int = 256, on_batch: Callable[[int], None] | None = None) -> None:
        if max_batch < 1 or max_queue < 1 or max_wait_ms < 0:
            raise ValueError(f"need max_batch >= 1, max_queue >= 1, max_wait_ms >= 0 (got {max_batch}, {max_queue}, {max_wait_ms})")
        self.run_batch, self.max_batch, self.max_wait = run_batch, max_batch, max_wait_ms / 1000.0
        self.max_queue, self.on_batch = max_queue, on_batch
        self._queue: deque[_Pending[J]] = deque()
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._work, name="slamkit-batcher", daemon=True)
        self._thread.start()

    @property
    def depth(self) -> int:
        """Jobs waiting (not yet in a running batch)."""
        return len(self._queue)

    def submit(self, jobs: Sequence[J]) -> list[Future]:
        """Queue ``jobs`` (all or none); one future per job. Raises :class:`QueueFull`."""
        pending = [_Pending(job) for job in jobs]
        with self._cond:
            if self._stopped:
                raise QueueFull("the server is shutting down")
            if len(self._queue) + len(pending) > self.max_queue:
                raise QueueFull(f"{len(self._queue)} clips are queued (limit {self.max_queue}); retry shortly")
            self._queue.extend(pending)
            self._cond.notify()
        return [p.future for p in pending]

    def stop(self) -> None:
        """Stop the worker after the batch in progress; queued jobs are cancelled."""
        with self._cond:
            self._stopped = True
            while self._queue:
                self._queue.popleft().future.cancel()
            self._cond.notify()
        self._thread.join(timeout=30)

    # ---- worker ---------------------------------------------------------------------------
    def _take(self) -> list[_Pending[J]] | None:
        """The next batch: the oldest job plus what arrives within its wait, at most max_batch."""
        with self._cond:
            while not self._queue and not self._stopped:
                self._cond.wait()
            if self._stopped:
                return None
            deadline = self._queue[0].arrived + self.max_wait
            while len(self._queue) < self.max_batch and not self._stopped:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            batch = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
        return [p for p in batch if p.future.set_running_or_notify_cancel()]

    def _work(self) -> None:
        while (batch := self._take()) is not None:
            if not batch:
                continue
            try:
                results = self.run_batch([p.job for p in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"run_batch returned {len(results)} results for {len(batch)} jobs")
            except Exception as exc:  # a failed batch fails its requests, never the worker
                log.exception("a batch of %d failed", len(batch))
                for p in batch:
                    p.future.set_exception(exc)
                continue
            if self.on_batch is not None:
                self.on_batch(len(batch))
            for p, result in zip(batch, results):
                p.future.set_result(result)
