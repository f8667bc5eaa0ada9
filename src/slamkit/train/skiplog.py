"""What a training run left out: counts by reason, and ``skipped.jsonl`` naming every item.

Two kinds of skips reach the loop: those found before loading (unusable manifest lines, empty
targets, unreadable headers, out-of-range durations — the same on every process) and those found
while loading a batch (a clip whose samples are NaN, a file truncated after its header — each
process its own). :class:`SkipTally` counts both by reason (:data:`slamkit.data.skips.REASONS`); the
counts go to ``metrics.jsonl`` (``skipped``, ``skipped_by_reason``), into every checkpoint (a resumed
run goes on counting where it stopped), and into the final summary. Rank 0 also writes
``skipped.jsonl`` in the run directory: one line per skip with its ``file:line``, key, reason,
detail and the step it was met at (0 before training). A resumed run first drops the lines of steps
after its checkpoint, so the file is what an uninterrupted run writes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

from slamkit.data.skips import Skip, add_counts, as_vector, count_by_reason, describe, from_vector
from slamkit.train.distributed import Dist

FILE = "skipped.jsonl"


class SkipTally:
    """Counts of skipped items by reason, and the ``skipped.jsonl`` log (written by rank 0)."""

    def __init__(self, run_dir: str | Path, dist: Dist) -> None:
        self.path = Path(run_dir) / FILE
        self.dist = dist
        self.by_reason: dict[str, int] = {}

    @property
    def total(self) -> int:
        """Items skipped so far."""
        return sum(self.by_reason.values())

    def start(self, preload: Sequence[Skip], resumed_step: int | None) -> None:
        """Begin a run: a fresh one counts and writes ``preload`` (what the loader left out); a resumed
        one keeps the log's lines up to ``resumed_step`` (its counts come from :meth:`load_state_dict`)."""
        if resumed_step is None:
            self.by_reason = count_by_reason(preload)
            if self.dist.is_main:
                self._rewrite([{**s.to_json(), "step": 0} for s in preload])
        elif self.dist.is_main:
            self._rewrite([line for line in self._lines() if line.get("step", 0) <= resumed_step])

    def add(self, skips: Sequence[Skip], step: int) -> None:
        """Count the skips every process met in one optimizer step (a collective under torchrun)."""
        counts = from_vector(self.dist.sum(as_vector(count_by_reason(skips))))
        if not counts:
            return
        self.by_reason = add_counts(self.by_reason, counts)
        gathered = self.dist.gather([s.to_json() for s in skips])  # every rank takes part: the sum above was not zero
        if self.dist.is_main:
            with self.path.open("a", encoding="utf-8") as f:
                for part in gathered:
                    for line in part:
                        f.write(json.dumps({**line, "step": step}, ensure_ascii=False) + "\n")

    def describe(self) -> str:
        """``"3 missing file, 1 invalid JSON"``."""
        return describe(self.by_reason)

    def state_dict(self) -> dict[str, int]:
        """The counts, for a checkpoint."""
        return dict(self.by_reason)

    def load_state_dict(self, state: dict[str, int] | int) -> None:
        """Restore the counts (a checkpoint written before the counts by reason holds a plain total)."""
        self.by_reason = dict(state) if isinstance(state, dict) else ({"unusable audio": int(state)} if state else {})

    def _lines(self) -> list[dict]:
        if not self.path.is_file():
            return []
        lines = []
        for raw in self.path.read_text(encoding="utf-8").splitlines():
            try:
                lines.append(json.loads(raw))
            except json.JSONDecodeError:  # a line cut by a kill mid-write
                continue
        return lines

    def _rewrite(self, lines: list[dict]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
        os.replace(tmp, self.path)
