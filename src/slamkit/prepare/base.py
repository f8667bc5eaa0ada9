"""The corpus registry and what every preparer shares.

Every corpus is a function registered in :data:`CORPORA`; each writes our manifest (``key``,
``source``, ``target``, ``duration``, plus ``speaker``/``voice`` where known) and returns a summary
dict (manifest path, utterances, minutes, words, what was skipped and why) that the CLI prints.
Transcripts are kept as the corpus writes them (case, punctuation, digits): the scorer normalises.
"""

from __future__ import annotations

import gzip
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

from tqdm import tqdm

from slamkit.data.audio import audio_info
from slamkit.registry import Registry

logger = logging.getLogger(__name__)

CORPORA: Registry[Callable[..., dict[str, Any]]] = Registry("corpus")


class CorpusError(ValueError):
    """A corpus file is missing or malformed; the message names the file (and line)."""


def clip_duration(path: Path) -> float:
    """Seconds of the audio file at ``path`` (from its header), rounded to ms."""
    rate, frames = audio_info(path)
    return round(frames / rate, 3)


def corpus_summary(manifest: Path, records: Sequence[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """The result every ``prepare_*`` returns: manifest, utterance count, minutes, words, extras."""
    seconds = sum(r["duration"] for r in records)
    words = sum(len(r["target"].split()) for r in records)
    summary = {"manifest": str(manifest), "utterances": len(records), "minutes": round(seconds / 60, 2),
               "words": words, **extra}
    logger.info("wrote %s: %d utterances, %.1f min, %d words", manifest, len(records), seconds / 60, words)
    return summary


def asset_root(root: str | Path | None, asset: str, install: bool) -> Path:
    """``root`` when given, else where the installed asset ``asset`` lies (installed first if ``install``)."""
    if root is not None:
        return Path(root)
    from slamkit.assets import asset_path

    return asset_path(asset, install=install)


def text_lines(path: Path) -> Iterator[str]:
    """Lines of a UTF-8 text file (gzip when it ends in ``.gz``); unreadable files raise :class:`CorpusError`."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:  # type: ignore[operator]
            yield from handle
    except (OSError, UnicodeDecodeError) as err:
        raise CorpusError(f"{path}: cannot read ({err})") from err


def utf8_lines(path: Path, lines: Sequence[bytes], skips: list, first: int = 1) -> Iterator[tuple[str, str]]:
    """``(file:line, text)`` of each non-blank line of ``lines`` (numbered from ``first``); a line that is
    not UTF-8 is added to ``skips`` as a :class:`~slamkit.data.skips.Skip` instead."""
    from slamkit.data.skips import NOT_UTF8, Skip

    for number, raw in enumerate(lines, start=first):
        where = f"{path}:{number}"
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            skips.append(Skip(where, NOT_UTF8, f"not valid UTF-8 ({err.reason} at byte {err.start})"))
            continue
        if text.strip():
            yield where, text


def default_workers() -> int:
    """CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _worker_setup(parent: int, initializer: Callable[[], None] | None) -> None:
    """Pool worker set-up: a daemon thread ends the worker once ``parent`` (the process that made the pool) is
    gone, so a killed run leaves no idle workers behind; then ``initializer``, if any."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="slamkit-parent-watch", daemon=True).start()
    if initializer is not None:
        initializer()


def ordered_map(fn: Callable[[Any], Any], items: Sequence[Any], workers: int, desc: str, unit: str, chunksize: int = 8,
                initializer: Callable[[], None] | None = None) -> Iterator[Any]:
    """``fn`` over ``items`` in order, with a progress bar: in this process when ``workers`` is 1, else in a
    pool of ``workers`` spawned processes (safe after torch/OpenMP are loaded), each set up by ``initializer``.
    Workers exit by themselves when this process is killed."""
    bar = tqdm(total=len(items), desc=desc, unit=unit, disable=None)
    try:
        if workers <= 1:
            for item in items:
                yield fn(item)
                bar.update()
            return
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=partial(_worker_setup, os.getpid(), initializer)) as pool:
            for result in pool.map(fn, items, chunksize=chunksize):
                yield result
                bar.update()
    finally:
        bar.close()
