"""Hypothesis files: ``{"key", "hyp", "ref", …}`` JSON lines read into :class:`HypRecord` objects,
and the registry of metrics that score them (:data:`METRICS`).

Every error names ``file:line``. Metrics register here from their own modules (``wer``/``cer`` in
:mod:`~slamkit.eval.metrics`, ``bwer`` in :mod:`~slamkit.eval.bwer`, ``caption`` in
:mod:`~slamkit.eval.caption`, ``bleu`` in :mod:`~slamkit.eval.translation`); :mod:`~slamkit.eval.scoring` imports them all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, Union

from slamkit.registry import Registry

Reference = Union[str, list[str]]


@dataclass(frozen=True)
class HypRecord:
    """One decoded utterance as read from a hypothesis file.

    ``where`` is ``"file:line"`` for error messages; ``extra`` holds any other fields of the line.
    """

    key: str
    hyp: str
    ref: Reference
    where: str = "<memory>"
    extra: Mapping[str, Any] = field(default_factory=dict)


MetricFn = Callable[[Sequence[HypRecord], str], dict[str, Any]]
METRICS: Registry[MetricFn] = Registry("metric")


def _check_ref(ref: object, where: str) -> None:
    """A reference is a string or a non-empty list of strings (several captions); errors name ``where``."""
    if isinstance(ref, str):
        return
    if not isinstance(ref, list):
        raise ValueError(f"{where}: field 'ref' must be a string or a list of strings, got {type(ref).__name__}")
    if not ref:
        raise ValueError(f"{where}: field 'ref' is an empty list (give at least one reference)")
    for i, item in enumerate(ref):
        if not isinstance(item, str):
            raise ValueError(f"{where}: reference {i} in 'ref' must be a string, got {type(item).__name__}")


def _parse_line(raw: bytes, where: str) -> HypRecord | None:
    """Decode and validate one JSONL line; every error names ``where`` (file:line). ``None`` for a line
    `slamkit decode` wrote for an unusable manifest line (an ``error`` field, ``ref`` or ``key`` null): it
    has no reference to score against."""
    try:
        obj = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise ValueError(f"{where}: not valid UTF-8 ({err.reason})") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{where}: invalid JSON ({err.msg}, column {err.colno})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    if "error" in obj and (obj.get("key") is None or obj.get("ref") is None):
        return None
    for name in ("key", "hyp", "ref"):
        if name not in obj:
            raise ValueError(f"{where}: missing field {name!r}")
    for name in ("key", "hyp"):
        if not isinstance(obj[name], str):
            got = type(obj[name]).__name__
            raise ValueError(f"{where}: field {name!r} must be a string, got {got}")
    _check_ref(obj["ref"], where)
    extra = {k: v for k, v in obj.items() if k not in ("key", "hyp", "ref")}
    return HypRecord(obj["key"], obj["hyp"], obj["ref"], where, extra)


MAX_LISTED = 20  # bad lines named one by one in the error; the rest are counted


def read_hyp_file(path: Union[str, Path]) -> tuple[list[HypRecord], list[str]]:
    """Read a hypothesis JSONL file: its records, and the ``file:line`` of each line `slamkit decode` wrote
    for an unusable manifest line (not scored: it has no reference). Blank lines are skipped; keys must be
    unique. A line that decode could not transcribe (an ``error`` field, a key) is a record with an empty
    hypothesis: it counts against the score.

    Raises:
        ValueError: naming every bad line as ``file:line`` with its problem (invalid JSON, not UTF-8, a
            missing field, a wrong type, a duplicate key; the first :data:`MAX_LISTED`, then a count),
            or the file when it holds no records.
    """
    path = Path(path)
    records: list[HypRecord] = []
    unscored: list[str] = []
    problems: list[str] = []
    first_seen: dict[str, str] = {}
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            where = f"{path}:{number}"
            try:
                record = _parse_line(raw, where)
            except ValueError as err:
                problems.append(str(err))
                continue
            if record is None:
                unscored.append(where)
                continue
            first = first_seen.get(record.key)
            if first is not None:
                problems.append(f"{record.where}: duplicate key {record.key!r} (first at {first})")
                continue
            first_seen[record.key] = record.where
            records.append(record)
    if len(problems) == 1:
        raise ValueError(problems[0])
    if problems:
        listed = "\n  ".join(problems[:MAX_LISTED])
        more = f"\n  … and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
        raise ValueError(f"{len(problems)} unusable line(s) in {path}; fix them and score again:\n  {listed}{more}")
    if not records:
        raise ValueError(f"{path}: no hypothesis records")
    return records, unscored


def read_hyp_records(path: Union[str, Path]) -> list[HypRecord]:
    """The records of a hypothesis file (:func:`read_hyp_file`; lines without a reference left out)."""
    return read_hyp_file(path)[0]
