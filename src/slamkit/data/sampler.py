"""Duration-bucketing batch sampler with an exact, resumable position.

Batches fill a budget: at most ``batch_size`` items and, when ``batch_seconds`` is set, a *padded*
cost ``max(duration) × len(batch) <= batch_seconds`` (what the encoder actually computes on after
padding). An item longer than the budget forms a batch of its own rather than being dropped.

With ``bucket=True`` the epoch order is: a seeded shuffle of all items, cut into large pools
(about :attr:`BucketBatchSampler.POOL_BATCHES` batches each), each pool sorted by duration and cut
into batches, then the batch order shuffled. Items in a batch have similar lengths, so padding is
small, while each epoch still mixes differently. Without shuffling, bucketing sorts the whole set
by duration (best for decoding); without bucketing, batches follow manifest (or shuffled) order.

With ``short_first_epochs=N`` (a curriculum), the first ``N`` epochs instead run from the shortest
clips to the longest: the items sorted by duration (ties in seeded random order) and cut into
batches in that order. Short clips hold few words, which is where a fresh projector first learns
to line audio up with text; measured on the demo, this is what makes the loss drop early.

Across ``num_replicas`` processes (torchrun), every process builds the same *global* batches, with
``batch_size`` and ``batch_seconds`` multiplied by ``num_replicas`` (the budgets are per process),
and takes every ``num_replicas``-th item of each from its ``rank`` on: no item is seen twice or
skipped, every process runs the same number of batches, and together they see the batches one
process with the global budget would (a process whose share of a short last batch is empty gets an
empty batch and still takes part in the step).

Everything is a pure function of ``(seed, epoch)`` through a local ``numpy.random.Generator``; the
global RNGs are never touched. The sampler does not advance itself: a DataLoader prefetches, so
the training loop increments :attr:`position` as it *consumes* batches, and a checkpoint stores
:meth:`state_dict`. On resume, iteration restarts at the first batch not yet trained on.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Iterator, Sequence

import numpy as np
import torch

logger = logging.getLogger(__name__)


class BucketBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Yields lists of dataset indices; see the module docstring for the batching rules.

    Args:
        durations: seconds of audio per item (index ``i`` ↔ dataset item ``i``); finite, >= 0.
        batch_size: most items per batch.
        batch_seconds: most padded seconds per batch (``max × count``); ``None`` for no limit.
        shuffle: reshuffle every epoch (seeded by ``(seed, epoch)``).
        bucket: group items of similar duration to cut padding.
        seed: base seed (>= 0).
        short_first_epochs: number of leading epochs ordered shortest-first (curriculum).
        num_replicas: processes sharing each global batch (torchrun's world size).
        rank: this process's index among them.

    Attributes:
        epoch: the current epoch.
        position: index of the next batch of the current epoch to yield.
    """

    # Pool size, in batches' worth of items: large enough that a sorted pool has little padding,
    # small enough that batches still change from epoch to epoch.
    POOL_BATCHES = 50

    def __init__(
        self,
        durations: Sequence[float],
        batch_size: int,
        batch_seconds: float | None = None,
        shuffle: bool = True,
        bucket: bool = True,
        seed: int = 0,
        short_first_epochs: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        self.durations = _check_durations(durations)
        if int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        if batch_seconds is not None and not (math.isfinite(batch_seconds) and batch_seconds > 0):
            raise ValueError(f"batch_seconds must be a finite number > 0, got {batch_seconds!r}")
        if int(seed) != seed or seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is outside 0..{num_replicas - 1}")
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        self.batch_size = int(batch_size) * self.num_replicas  # the global batch
        self.batch_seconds = None if batch_seconds is None else float(batch_seconds) * self.num_replicas
        self.shuffle = bool(shuffle)
        self.bucket = bool(bucket)
        if int(short_first_epochs) != short_first_epochs or short_first_epochs < 0:
            raise ValueError(f"short_first_epochs must be an integer >= 0, got {short_first_epochs!r}")
        self.seed = int(seed)
        self.short_first_epochs = int(short_first_epochs)
        self.epoch = 0
        self.position = 0
        self._cache: tuple[int, list[list[int]]] | None = None

    @property
    def num_items(self) -> int:
        """Number of items (dataset size)."""
        return int(self.durations.shape[0])

    def set_epoch(self, epoch: int) -> None:
        """Move to the start of ``epoch`` (position 0)."""
        self.epoch = int(epoch)
        self.position = 0

    def batches(self, epoch: int) -> list[list[int]]:
        """All batches of ``epoch``, in order. Deterministic in ``(seed, epoch)``; no side effects
        on :attr:`epoch` or :attr:`position`. Every item appears exactly once."""
        if self._cache is None or self._cache[0] != epoch:
            self._cache = (epoch, self._make_batches(epoch))
        return [list(batch) for batch in self._cache[1]]

    def num_batches(self, epoch: int) -> int:
        """Number of batches in ``epoch`` (it can vary between epochs under a seconds budget)."""
        self.batches(epoch)
        assert self._cache is not None
        return len(self._cache[1])

    def __iter__(self) -> Iterator[list[int]]:
        """Yield this process's share of the batches of :attr:`epoch` from :attr:`position` on
        (does not advance); alone, the whole batches."""
        for batch in self.batches(self.epoch)[self.position :]:
            yield batch[self.rank :: self.num_replicas]

    def __len__(self) -> int:
        """Batches left in the current epoch from :attr:`position`."""
        return max(self.num_batches(self.epoch) - self.position, 0)

    def state_dict(self) -> dict[str, int]:
        """``{"epoch", "position", "seed", "num_items", "num_replicas"}``: enough to resume at the same batch."""
        return {
            "epoch": self.epoch,
            "position": self.position,
            "seed": self.seed,
            "num_items": self.num_items,
            "num_replicas": self.num_replicas,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output.

        Raises:
            ValueError: a key is missing, the dataset size differs (the data changed since the
                checkpoint, so the saved position means nothing), or the position is past the end.
        """
        missing = {"epoch", "position", "seed", "num_items"} - set(state)
        if missing:
            raise ValueError(f"sampler state is missing {sorted(missing)}")
        if int(state["num_items"]) != self.num_items:
            raise ValueError(
                f"sampler state was saved for {state['num_items']} items but the dataset has "
                f"{self.num_items}; the data changed since the checkpoint, so the saved "
                "position cannot be resumed"
            )
        if int(state["seed"]) != self.seed:
            logger.warning(
                "sampler seed %s from the checkpoint replaces the configured seed %s",
                state["seed"], self.seed,
            )
        self.seed = int(state["seed"])
        self._cache = None
        epoch, position = int(state["epoch"]), int(state["position"])
        saved_replicas = int(state.get("num_replicas", 1))
        if saved_replicas != self.num_replicas:
            position = self._rescaled_position(epoch, position, saved_replicas)
        if not 0 <= position <= self.num_batches(epoch):
            raise ValueError(
                f"sampler position {position} is outside epoch {epoch} "
                f"({self.num_batches(epoch)} batches); was the batch budget changed?"
            )
        self.epoch, self.position = epoch, position

    # ----------------------------------------------------------------------------- internals

    def _rescaled_position(self, epoch: int, position: int, saved_replicas: int) -> int:
        """The first batch of this job's ``epoch`` after as many items as the checkpoint's job (with
        ``saved_replicas`` processes) had consumed; says what changes."""
        consumed = position * (self.batch_size // self.num_replicas) * saved_replicas
        done, new_position = 0, 0
        for batch in self.batches(epoch):
            if done >= consumed:
                break
            done, new_position = done + len(batch), new_position + 1
        logger.warning(
            "resuming a run saved with %d processes on %d: the global batch changes from %d to %d items, so the "
            "learning-rate schedule now sees a different batch; epoch %d continues after about %d items (batch %d), "
            "and in this epoch a few items may be seen twice or not at all; later epochs are complete",
            saved_replicas, self.num_replicas, self.batch_size // self.num_replicas * saved_replicas, self.batch_size,
            epoch, consumed, new_position)
        return new_position

    def _make_batches(self, epoch: int) -> list[list[int]]:
        """Build the batch list of ``epoch`` (see the module docstring for the order)."""
        rng = np.random.default_rng([self.seed, int(epoch)])
        n = self.num_items
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        if epoch < self.short_first_epochs:
            return self._cut(order[np.argsort(self.durations[order], kind="stable")])
        if not self.bucket:
            return self._cut(order)
        pool = self._pool_size() if self.shuffle else max(n, 1)
        batches: list[list[int]] = []
        for begin in range(0, n, pool):
            chunk = order[begin : begin + pool]
            ranked = chunk[np.argsort(self.durations[chunk], kind="stable")]
            batches.extend(self._cut(ranked))
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def _pool_size(self) -> int:
        """Items per bucketing pool: about POOL_BATCHES typical batches."""
        per_batch = float(self.batch_size)
        if self.batch_seconds is not None and self.num_items:
            typical = float(np.median(self.durations))
            if typical > 0:
                per_batch = min(per_batch, max(self.batch_seconds / typical, 1.0))
        return max(int(per_batch * self.POOL_BATCHES), 1)

    def _cut(self, order: np.ndarray) -> list[list[int]]:
        """Greedily cut ``order`` into consecutive batches that fit the budget."""
        batches: list[list[int]] = []
        current: list[int] = []
        longest = 0.0
        for index in order.tolist():
            length = float(self.durations[index])
            if current and not self._fits(len(current) + 1, max(longest, length)):
                batches.append(current)
                current, longest = [], 0.0
            current.append(index)
            longest = max(longest, length)
        if current:
            batches.append(current)
        return batches

    def _fits(self, count: int, longest: float) -> bool:
        """Whether ``count`` items padded to ``longest`` seconds fit the budget."""
        if count > self.batch_size:
            return False
        return self.batch_seconds is None or longest * count <= self.batch_seconds


def _check_durations(durations: Sequence[float]) -> np.ndarray:
    """Durations as a float64 ``[n]`` array; each must be finite and >= 0."""
    array = np.asarray(durations, dtype=np.float64).reshape(-1)
    bad = np.flatnonzero(~np.isfinite(array) | (array < 0))
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"durations must be finite and >= 0; item {i} has {array[i]!r} "
            f"({bad.size} bad in all)"
        )
    return array


def padding_waste(batches: Sequence[Sequence[int]], durations: Sequence[float]) -> float:
    """Fraction of padded audio that is padding: ``1 - Σ real / Σ (max × count)`` over batches."""
    array = np.asarray(durations, dtype=np.float64)
    full = [array[list(batch)] for batch in batches if len(batch)]
    padded = sum(float(part.max()) * part.size for part in full)
    real = sum(float(part.sum()) for part in full)
    return 0.0 if padded == 0 else 1.0 - real / padded
