"""`slamkit score`: a hypothesis file scored with the metric each line's task names.

The task registry (:data:`slamkit.data.tasks.TASKS`) says which metric a task uses; the scoring
itself lives in :mod:`slamkit.eval.scoring`, which knows nothing of tasks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slamkit.data.tasks import TASKS
from slamkit.eval import scoring


def task_metric(task: str) -> str:
    """The metric the registered task ``task`` is scored with; unknown tasks raise ``ValueError``."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; registered tasks: {', '.join(TASKS.names())}")
    return TASKS.get(task).metric


def score_file(path: str | Path, metric: str | None = None, normalizer: str | None = None) -> dict[str, Any]:
    """Score a JSONL hypothesis file (see :func:`slamkit.eval.scoring.score_file`); a line's
    ``task`` picks its metric unless ``metric`` is given."""
    return scoring.score_file(path, metric, normalizer, task_metric)
