"""One ``log(metrics, step)`` call writes to metrics.jsonl, TensorBoard and the console.

metrics.jsonl holds one JSON object per line with ``step`` and the metric values; on resume the
file is truncated to the resumed step, so it always reads as one uninterrupted run.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger("slamkit")


class MetricLogger:
    """Writes metric dicts to JSONL (always) and TensorBoard (optional)."""

    def __init__(self, run_dir: str | Path, tensorboard: bool = True, resume_step: int | None = None) -> None:
        self.path = Path(run_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._truncate(resume_step)
        self._file = self.path.open("a")
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(Path(run_dir) / "tensorboard"), purge_step=resume_step)
            except ImportError:
                log.warning("tensorboard is not installed: metrics go to metrics.jsonl only")

    def _truncate(self, resume_step: int | None) -> None:
        """Drop lines logged after ``resume_step`` (they belong to the interrupted tail)."""
        if not self.path.is_file():
            return
        if resume_step is None:
            self.path.unlink()
            return
        keep = [line for line in self.path.read_text().splitlines() if _step_of(line) is not None and _step_of(line) <= resume_step]
        tmp = self.path.with_name(self.path.name + ".tmp")  # replaced in one rename: a kill now loses no line
        tmp.write_text("".join(line + "\n" for line in keep))
        os.replace(tmp, self.path)

    def log(self, metrics: dict[str, Any], step: int) -> None:
        """Record ``metrics`` at ``step``."""
        self._file.write(json.dumps({"step": step, **metrics}) + "\n")
        self._file.flush()
        if self._tb is not None:
            for name, value in metrics.items():
                if isinstance(value, (int, float)):
                    self._tb.add_scalar(name, value, step)

    def close(self) -> None:
        """Flush and close every sink."""
        self._file.close()
        if self._tb is not None:
            self._tb.close()


def _step_of(line: str) -> int | None:
    """The step of a metrics line; None for a blank line or one cut short by a kill mid-write."""
    try:
        return int(json.loads(line)["step"]) if line.strip() else None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """All records of a run's metrics.jsonl."""
    path = Path(run_dir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
