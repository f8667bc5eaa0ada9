"""``tts``: sentences of a text file spoken by flite / espeak-ng / Piper (:mod:`slamkit.prepare.voices`),
mixed by weight (:mod:`slamkit.prepare.engine_mix`), optionally as pseudo-speakers
(:mod:`slamkit.prepare.perturb`); TTS audio lives next to its manifest (relative paths)."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any


from slamkit.data.manifest import write_manifest
from slamkit.prepare.phrases import short_phrases as short_phrase_texts
from slamkit.prepare.engine_mix import EngineMix, parse_engines
from slamkit.prepare.perturb import DEFAULT_PITCH, DEFAULT_TEMPO, PseudoSpeaker, choose_pseudo_speaker, draw_pseudo_speakers
from slamkit.prepare.voices import TTS_ENGINES, TTSError, TTSJob, check_engines, init_worker, synthesize
from slamkit.prepare.base import CORPORA, CorpusError, corpus_summary, default_workers, ordered_map

logger = logging.getLogger(__name__)


def read_sentences(text_file: str | Path, max_words: int = 40) -> tuple[list[tuple[int, str]], dict[str, int]]:
    """The usable lines of ``text_file`` as ``(line number, text)``, whitespace normalised.

    Empty lines, lines with no letter or digit and lines of more than ``max_words`` words are
    skipped and counted (second return value).
    """
    path = Path(text_file)
    if not path.is_file():
        raise CorpusError(f"{path}: no such text file")
    kept: list[tuple[int, str]] = []
    skipped = {"empty": 0, "too_long": 0}
    with path.open(encoding="utf-8", errors="strict") as handle:
        for number, raw in enumerate(handle, start=1):
            text = " ".join(raw.split())
            if not any(ch.isalnum() for ch in text):
                skipped["empty"] += 1
            elif len(text.split()) > max_words:
                skipped["too_long"] += 1
            else:
                kept.append((number, text))
    if not kept:
        raise CorpusError(f"{path}: no usable lines (one sentence per line, at most {max_words} words)")
    return kept, skipped


def with_short_phrases(lines: Sequence[tuple[int, str]], count: int, seed: int) -> list[tuple[int, str]]:
    """``lines`` with ``count`` short phrases spread evenly among them (line number 0: not from the file)."""
    if count <= 0:
        return list(lines)
    return interleave(lines, short_phrase_texts([text for _, text in lines], count, seed))


def interleave(lines: Sequence[tuple[int, str]], extra: Sequence[str]) -> list[tuple[int, str]]:
    """``lines`` with the texts ``extra`` spread evenly among them, in order, as line number 0 (not from the file)."""
    count, total = len(extra), len(lines) + len(extra)
    if not count:
        return list(lines)
    slots = {(2 * i + 1) * total // (2 * count) for i in range(count)}  # evenly spaced, distinct
    merged: list[tuple[int, str]] = []
    line_iter, extra_iter = iter(lines), iter(extra)
    for index in range(total):
        merged.append((0, next(extra_iter)) if index in slots else next(line_iter))
    return merged


def make_tts_jobs(lines: Sequence[tuple[int, str]], source: str, wav_dir: Path, engines: Sequence[str] | EngineMix,
                  num_utterances: int | None, seed: int, telephone_fraction: float,
                  pseudo_speakers: Sequence[PseudoSpeaker] = ()) -> list[TTSJob]:
    """One job per utterance: lines in file order (cycled when more utterances are asked for),
    each with an engine and voice drawn from a generator seeded by ``(seed, index)``, and one of
    ``pseudo_speakers`` or none from a stream of its own (:func:`choose_pseudo_speaker`)."""
    mix = parse_engines(engines)
    count = len(lines) if num_utterances is None else num_utterances
    jobs = []
    for index in range(count):
        number, text = lines[index % len(lines)]
        rng = random.Random(f"{seed}-{index}")
        engine = TTS_ENGINES.get(mix.draw(rng))
        key = f"tts-{index:06d}"
        where = f"{source}:{number}" if number else f"a short phrase made from {source}"
        jobs.append(TTSJob(key=key, text=text, where=where, voice=engine.sample_voice(rng),
                           telephone=rng.random() < telephone_fraction, wav=wav_dir / f"{key}.wav",
                           pseudo=choose_pseudo_speaker(pseudo_speakers, seed, index)))
    return jobs


def _run_jobs(jobs: Sequence[TTSJob], workers: int) -> Iterator[dict[str, Any]]:
    """Synthesise ``jobs`` with a process pool of ``workers`` (in this process when 1), in order. Each worker
    loads an in-process model (Piper) once, on first use, for its life."""
    return ordered_map(synthesize, jobs, workers, "tts", "utt", chunksize=8, initializer=init_worker)


@CORPORA.register("tts")
def prepare_tts(text_file: str | Path, out_dir: str | Path,
                engines: str | Iterable[str] | Mapping[str, float] = ("flite", "espeak-ng"),
                num_utterances: int | None = None, seed: int = 0, telephone_fraction: float = 0.0,
                max_words: int = 40, workers: int | None = None, name: str = "tts",
                short_phrases: int = 0, pseudo_speakers: int = 0,
                pseudo_pitch: Sequence[float] = DEFAULT_PITCH, pseudo_tempo: Sequence[float] = DEFAULT_TEMPO) -> dict[str, Any]:
    """Speak the sentences of ``text_file`` with many voices; write ``<out_dir>/<name>.jsonl``.

    Args:
        text_file: UTF-8 text, one sentence per line; its text is the transcript, as written.
        out_dir: gets ``wav/<key>.wav`` (16 kHz mono PCM-16) and the manifest.
        engines: registered engine names (``flite``, ``espeak-ng``, ``piper``), each utterance
            drawing one with equal chance, or weighted: ``"piper:0.6,flite:0.2,espeak-ng:0.2"`` or
            ``{"piper": 0.6, …}`` (:mod:`slamkit.prepare.engine_mix`).
        num_utterances: how many to make (``None``: one per usable line; more cycles the lines).
        seed: makes voices, rates, pitches and telephone choices reproducible.
        telephone_fraction: share of clips passed through 8 kHz and back.
        max_words: longer lines are skipped.
        workers: processes (default: all usable cores).
        short_phrases: also speak this many short utterances (:mod:`slamkit.prepare.phrases`: 1–3-word
            spans of the file's lines, numbers, ordinals, dates), spread evenly among the lines.
        pseudo_speakers: N > 0 draws N pseudo-speakers (:mod:`slamkit.prepare.perturb`); each
            utterance is then spoken by its voice as is or by one of them, all equally likely,
            and its manifest line gets ``pseudo_speaker`` (1..N), ``semitones`` and ``tempo``.
        pseudo_pitch: ``(low, high)`` semitones the pseudo-speakers' pitch shifts span.
        pseudo_tempo: ``(low, high)`` of their tempo factors.
    """
    if not 0.0 <= telephone_fraction <= 1.0:
        raise ValueError(f"telephone_fraction must be in [0, 1], got {telephone_fraction}")
    mix = parse_engines(engines)
    check_engines(mix.names)
    speakers = draw_pseudo_speakers(pseudo_speakers, seed, pseudo_pitch, pseudo_tempo)
    lines, skipped = read_sentences(text_file, max_words=max_words)
    lines = with_short_phrases(lines, short_phrases, seed)
    out = Path(out_dir)
    (out / "wav").mkdir(parents=True, exist_ok=True)
    jobs = make_tts_jobs(lines, str(text_file), out / "wav", mix, num_utterances, seed, telephone_fraction, speakers)
    start = time.perf_counter()
    records, errors = [], []
    for result in _run_jobs(jobs, workers or default_workers()):
        if "error" in result:
            errors.append(result["error"])
            continue
        key = result.pop("key")
        records.append({"key": key, "source": f"wav/{key}.wav", **result})
    seconds = time.perf_counter() - start
    for message in errors[:5]:
        logger.warning("tts: %s", message)
    if not records:
        raise TTSError(f"every utterance failed; first error: {errors[0] if errors else 'none'}")
    manifest = out / f"{name}.jsonl"
    write_manifest(records, manifest)
    return corpus_summary(manifest, records, failed=len(errors), skipped_lines=skipped,
                    seconds=round(seconds, 1), utterances_per_second=round(len(records) / max(seconds, 1e-9), 1))
