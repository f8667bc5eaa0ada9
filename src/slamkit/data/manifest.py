"""JSONL manifests: one record per line, validated up front.

A manifest line is a JSON object::

    {"key": "1089-134686-0000", "source": "audio/1089-134686-0000.flac", "target": "HE HOPED ...",
     "prompt": "Transcribe the speech.", "task": "asr", "offset": 0.0, "duration": 10.4}

``key``, ``source`` and ``target`` are required (``target`` may be an empty string, e.g. for
decoding); the rest are optional, and any other field is kept in :attr:`Record.extra` (biasing
lists, speaker ids, …). SLAM-LLM's ``{"key", "source", "target"}`` JSONL works unchanged.

A record without ``source`` (or with ``"source": null``) is a **text-only** record (its ``source``
is ``None``): text-only training (docs/text-only.md) reads such records when the run's
``data.text_records`` is ``mixed`` or ``only`` (:data:`TEXT_RECORD_MODES`); by default
(``refuse``) a missing ``source`` is the error it always was.

A relative ``source`` is resolved against the manifest's folder, so a corpus folder with its
manifest can be moved as a whole. Every problem raises :class:`ManifestError` naming
``file:line``. Audio files are *not* opened here: a missing or broken file is found when the
sample is loaded, where training skips and counts it.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, NoReturn

from slamkit.data.skips import BAD_FIELD, DUPLICATE_KEY, INVALID_JSON, NOT_UTF8, Skip

Fail = Callable[[str], NoReturn]

# Fields with a meaning of their own; anything else on a line goes to Record.extra.
CORE_FIELDS = ("key", "source", "target", "prompt", "task", "offset", "duration")

# What a manifest may hold (``data.text_records``): audio records only (a record without ``source``
# is a bad line), both kinds, or text-only records only (a record with a ``source`` is a bad line).
TEXT_RECORD_MODES = ("refuse", "mixed", "only")


class ManifestError(ValueError):
    """A manifest file or line is wrong; the message is ``"{file}:{line}: {problem}"``."""


@dataclass
class Record:
    """One manifest line.

    Attributes:
        key: unique id of the sample within its manifest.
        source: audio path; relative paths in the file are already resolved against the
            manifest's folder. ``None``: a text-only record (no audio; see the module docstring).
        target: reference text (may be empty).
        prompt: instruction text; ``None`` means "use the task's default prompt".
        task: task name (``asr``, ``aac``, …); ``None`` means "use the run's task".
        offset: crop start in seconds.
        duration: crop length in seconds; ``None`` means "to the end of the file".
        extra: every other field of the line, unchanged.
        manifest: the file this record came from ("" if built in code).
        line: 1-based line number in ``manifest`` (0 if built in code).
    """

    key: str
    source: str | None
    target: str
    prompt: str | None = None
    task: str | None = None
    offset: float = 0.0
    duration: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    manifest: str = ""
    line: int = 0

    @property
    def is_text(self) -> bool:
        """True for a text-only record (no ``source``)."""
        return self.source is None

    @property
    def where(self) -> str:
        """``file:line`` of this record, for error messages."""
        return f"{self.manifest}:{self.line}" if self.manifest else f"record {self.key!r}"

    def to_json(self) -> dict[str, Any]:
        """The manifest line for this record (optional fields only when set)."""
        overlap = set(self.extra) & set(CORE_FIELDS)
        if overlap:
            raise ValueError(f"{self.where}: extra repeats core fields {sorted(overlap)}")
        out: dict[str, Any] = {"key": self.key}
        if self.source is not None:  # a text-only record has none
            out["source"] = self.source
        out["target"] = self.target
        if self.prompt is not None:
            out["prompt"] = self.prompt
        if self.task is not None:
            out["task"] = self.task
        if self.offset:
            out["offset"] = self.offset
        if self.duration is not None:
            out["duration"] = self.duration
        out.update(self.extra)
        return out


def _is_number(value: Any) -> bool:
    """True for finite int/float values (``bool`` is not a number here)."""
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
    )


def _text(obj: dict[str, Any], name: str, required: bool, fail: Fail) -> str | None:
    """Validate a string field: present if ``required``; ``None`` allowed when optional."""
    if name not in obj:
        if required:
            fail(f"missing required field {name!r}")
        return None
    value = obj[name]
    if value is None and not required:
        return None
    if not isinstance(value, str):
        fail(f"field {name!r} must be a string, got {type(value).__name__} {value!r}")
    return value


def _key(obj: dict[str, Any], fail: Fail) -> str:
    """The record key: a non-empty string (integer keys are accepted and turned into strings)."""
    if "key" not in obj:
        fail("missing required field 'key'")
    value = obj["key"]
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value:
        fail(f"field 'key' must be a non-empty string, got {value!r}")
    return value


def _seconds(obj: dict[str, Any], name: str, positive: bool, fail: Fail) -> float | None:
    """Validate ``offset`` (>= 0) or ``duration`` (> 0); missing or null gives ``None``."""
    value = obj.get(name)
    if value is None:
        return None
    bound = "> 0" if positive else ">= 0"
    if not _is_number(value) or value < 0 or (positive and value == 0):
        fail(f"field {name!r} must be a number {bound} (seconds), got {value!r}")
    return float(value)


def _resolve(source: str, folder: Path) -> str:
    """Resolve a relative (or ``~``) source path against the manifest's folder."""
    path = Path(os.path.expanduser(source))
    if not path.is_absolute():
        path = folder / path
    return os.path.normpath(str(path))


def _source(obj: dict[str, Any], text_records: str, fail: Fail) -> str | None:
    """The ``source`` path, or ``None`` for a text-only record where ``text_records`` allows one."""
    if text_records not in TEXT_RECORD_MODES:
        raise ValueError(f"data.text_records must be one of {', '.join(TEXT_RECORD_MODES)}, got {text_records!r}")
    if obj.get("source") is None and text_records != "refuse":
        return None
    if "source" in obj and text_records == "only":
        fail("field 'source' is set, but data.text_records=only takes text-only records (no `source`); "
             "use data.text_records=mixed to train on audio and text records together")
    if obj.get("source") is None:
        problem = "missing required field 'source'" if "source" not in obj else "field 'source' must be a string, got null"
        fail(f"{problem} (a record without audio is text-only: data.text_records=mixed or only trains on such records)")
    source = _text(obj, "source", True, fail)
    if not source:
        fail("field 'source' must be a non-empty path")
    return source


def parse_record(obj: Any, folder: Path, manifest: str, line: int, text_records: str = "refuse") -> Record:
    """Validate one decoded JSON line and build its :class:`Record` (``text_records``: one of
    :data:`TEXT_RECORD_MODES`, whether a record without ``source`` is a text-only record).

    Raises:
        ManifestError: ``"{manifest}:{line}: {problem}"``.
    """

    def fail(problem: str) -> NoReturn:
        raise ManifestError(f"{manifest}:{line}: {problem}")

    if not isinstance(obj, dict):
        fail(f"expected a JSON object, got {type(obj).__name__}")
    key = _key(obj, fail)
    source = _source(obj, text_records, fail)
    target = _text(obj, "target", True, fail)
    offset = _seconds(obj, "offset", False, fail)
    return Record(
        key=key,
        source=None if source is None else _resolve(source, folder),
        target=str(target),
        prompt=_text(obj, "prompt", False, fail),
        task=_text(obj, "task", False, fail),
        offset=0.0 if offset is None else offset,
        duration=_seconds(obj, "duration", True, fail),
        extra={k: v for k, v in obj.items() if k not in CORE_FIELDS},
        manifest=manifest,
        line=line,
    )


def _raw_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """Yield ``(1-based line number, raw bytes)`` for the non-blank lines of a file."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if raw.strip():
                yield number, raw


def _line_record(number: int, raw: bytes, path: Path, folder: Path, text_records: str) -> Record | Skip:
    """The record of one raw line, or the :class:`Skip` saying why the line is unusable."""
    where = f"{path}:{number}"
    try:
        text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
    except UnicodeDecodeError as err:
        return Skip(where, NOT_UTF8, f"not valid UTF-8 ({err.reason} at byte {err.start})")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        return Skip(where, INVALID_JSON, f"invalid JSON ({err.msg}, column {err.colno})")
    try:
        return parse_record(obj, folder, str(path), number, text_records)
    except ManifestError as err:
        key = obj.get("key") if isinstance(obj, dict) and isinstance(obj.get("key"), str) else None
        return Skip(where, BAD_FIELD, str(err).split(": ", 1)[-1], key)


def iter_manifest(path: str | Path, text_records: str = "refuse") -> Iterator[Record | Skip]:
    """Every non-blank line of a JSONL manifest as its :class:`Record`, or as a :class:`Skip` naming
    ``file:line`` and the reason it cannot be used (not UTF-8, invalid JSON, a missing or mistyped
    field, a key seen on an earlier line). One line at a time: a bad line never hides the next, and a
    manifest of millions of lines is never held whole. ``text_records`` (:data:`TEXT_RECORD_MODES`)
    says whether lines without ``source`` are text-only records or bad lines.

    Raises:
        ManifestError: the file is missing or cannot be read (no line can be judged then).
    """
    path = Path(path)
    if not path.is_file():
        problem = "is not a file" if path.exists() else "no such manifest file"
        raise ManifestError(f"{path}: {problem}")
    folder = path.absolute().parent
    seen: dict[str, int] = {}
    try:
        for number, raw in _raw_lines(path):
            item = _line_record(number, raw, path, folder, text_records)
            if isinstance(item, Record):
                if item.key in seen:
                    item = Skip(item.where, DUPLICATE_KEY, f"duplicate key {item.key!r} (first at line {seen[item.key]})", item.key)
                else:
                    seen[item.key] = number
            yield item
    except OSError as err:
        raise ManifestError(f"{path}: cannot read manifest ({err})") from err


def scan_manifest(path: str | Path, text_records: str = "refuse") -> tuple[list[Record], list[Skip]]:
    """The usable records of a manifest and the lines left out (:func:`iter_manifest`; ``text_records``
    as there).

    Raises:
        ManifestError: the file is missing, unreadable, or holds no line at all.
    """
    records: list[Record] = []
    skips: list[Skip] = []
    for item in iter_manifest(path, text_records):
        (records if isinstance(item, Record) else skips).append(item)  # type: ignore[arg-type]
    if not records and not skips:
        raise ManifestError(f"{path}: manifest has no records")
    return records, skips


def read_manifest(path: str | Path, text_records: str = "refuse") -> list[Record]:
    """Read and validate a JSONL manifest, strictly: the first unusable line is an error.

    Blank lines are skipped. Relative ``source`` paths are resolved against the manifest's folder.
    (Training and decoding use :func:`scan_manifest`, which leaves bad lines out and names them.)

    Raises:
        ManifestError: missing/unreadable/empty file, invalid JSON, a line that is not an object,
            a missing ``key``/``source``/``target``, a field of the wrong type, a negative offset,
            a non-positive duration, or a duplicate key (both lines named).
    """
    records: list[Record] = []
    for item in iter_manifest(path, text_records):
        if isinstance(item, Skip):
            raise ManifestError(item.message)
        records.append(item)
    if not records:
        raise ManifestError(f"{path}: manifest has no records")
    return records


def write_manifest(records: Iterable[Record | dict[str, Any]], path: str | Path) -> None:
    """Write records as JSONL (UTF-8, one object per line), atomically.

    ``source`` is written as given (not made relative). Records become their manifest line
    (:meth:`Record.to_json`); dicts are written as they are. Parent folders are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    try:
        with tmp.open("w", encoding="utf-8") as handle:
            for record in records:
                obj = record.to_json() if isinstance(record, Record) else dict(record)
                handle.write(json.dumps(obj, ensure_ascii=False) + "\n")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
