"""Corpus preparation: turn a corpus on disk (or a text file, through TTS) into a JSONL manifest.

Every corpus is a function registered in :data:`CORPORA`; each writes our manifest (``key``,
``source``, ``target``, ``duration``, plus ``speaker``/``voice`` where known) and returns a summary
dict (manifest path, utterances, minutes, words, what was skipped and why) that the CLI prints.

- ``tts``: sentences of a text file spoken by flite / espeak-ng (:mod:`slamkit.data.tts`).
- ``asterisk``: the Asterisk core prompts (Debian ``asterisk-core-sounds-en-wav``), transcripts
  from ``core-sounds-en.txt.gz``.
- ``librivox``: the LibriVox clips (and optionally the "cards" clips) of ``pocketsphinx-testdata``.
- ``librispeech``: the official LibriSpeech layout.
- ``sonicpi``: the Sonic Pi samples (Debian ``sonic-pi-samples``) as a captioning set with
  templated captions; registered by :mod:`slamkit.data.sonicpi` when it is imported.

Transcripts are kept as the corpus writes them (case, punctuation, digits): the scorer normalises.
Paths into installed assets are absolute; TTS audio lives next to its manifest (relative paths).
"""

from __future__ import annotations

import gzip
import logging
import multiprocessing
import os
import random
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from tqdm import tqdm

from slamkit.data.audio import audio_info
from slamkit.data.biasing import (
    attach_biasing_words,
    attach_tsv_lists,
    load_biasing_list,
)
from slamkit.data.manifest import write_manifest
from slamkit.data.phrases import short_phrases as short_phrase_texts
from slamkit.data.tts import TTS_ENGINES, TTSError, TTSJob, check_engines, synthesize
from slamkit.registry import Registry

logger = logging.getLogger(__name__)

CORPORA: Registry[Callable[..., dict[str, Any]]] = Registry("corpus")

ASTERISK_SOUNDS = ("usr/share/asterisk/sounds/en_US_f_Allison", "usr/share/asterisk/sounds/en")
ASTERISK_TEXT = "usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt"
POCKETSPHINX_DATA = "usr/share/pocketsphinx/test/data"


class CorpusError(ValueError):
    """A corpus file is missing or malformed; the message names the file (and line)."""


def _duration(path: Path) -> float:
    rate, frames = audio_info(path)
    return round(frames / rate, 3)


def _summary(manifest: Path, records: Sequence[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """The result every ``prepare_*`` returns: manifest, utterance count, minutes, words, extras."""
    seconds = sum(r["duration"] for r in records)
    words = sum(len(r["target"].split()) for r in records)
    summary = {"manifest": str(manifest), "utterances": len(records), "minutes": round(seconds / 60, 2),
               "words": words, **extra}
    logger.info("wrote %s: %d utterances, %.1f min, %d words", manifest, len(records), seconds / 60, words)
    return summary


def _asset_root(root: str | Path | None, asset: str, install: bool) -> Path:
    if root is not None:
        return Path(root)
    from slamkit.assets import asset_path

    return asset_path(asset, install=install)


# --------------------------------------------------------------------------- TTS


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
    phrases = short_phrase_texts([text for _, text in lines], count, seed)
    total = len(lines) + count
    slots = {(2 * i + 1) * total // (2 * count) for i in range(count)}  # evenly spaced, distinct
    merged: list[tuple[int, str]] = []
    line_iter, phrase_iter = iter(lines), iter(phrases)
    for index in range(total):
        merged.append((0, next(phrase_iter)) if index in slots else next(line_iter))
    return merged


def make_tts_jobs(lines: Sequence[tuple[int, str]], source: str, wav_dir: Path, engines: Sequence[str],
                  num_utterances: int | None, seed: int, telephone_fraction: float) -> list[TTSJob]:
    """One job per utterance: lines in file order (cycled when more utterances are asked for),
    each with an engine and voice drawn from a generator seeded by ``(seed, index)``."""
    count = len(lines) if num_utterances is None else num_utterances
    jobs = []
    for index in range(count):
        number, text = lines[index % len(lines)]
        rng = random.Random(f"{seed}-{index}")
        engine = TTS_ENGINES.get(rng.choice(list(engines)))
        key = f"tts-{index:06d}"
        where = f"{source}:{number}" if number else f"a short phrase made from {source}"
        jobs.append(TTSJob(key=key, text=text, where=where, voice=engine.sample_voice(rng),
                           telephone=rng.random() < telephone_fraction, wav=wav_dir / f"{key}.wav"))
    return jobs


def _run_jobs(jobs: Sequence[TTSJob], workers: int) -> Iterator[dict[str, Any]]:
    """Synthesise ``jobs`` with a process pool of ``workers`` (in this process when 1), in order."""
    bar = tqdm(total=len(jobs), desc="tts", unit="utt", disable=None)
    try:
        if workers <= 1:
            for job in jobs:
                yield synthesize(job)
                bar.update()
            return
        context = multiprocessing.get_context("spawn")  # safe after torch/OpenMP are loaded
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            for result in pool.map(synthesize, jobs, chunksize=8):
                yield result
                bar.update()
    finally:
        bar.close()


def default_workers() -> int:
    """CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@CORPORA.register("tts")
def prepare_tts(text_file: str | Path, out_dir: str | Path, engines: Sequence[str] = ("flite", "espeak-ng"),
                num_utterances: int | None = None, seed: int = 0, telephone_fraction: float = 0.0,
                max_words: int = 40, workers: int | None = None, name: str = "tts",
                short_phrases: int = 0) -> dict[str, Any]:
    """Speak the sentences of ``text_file`` with many voices; write ``<out_dir>/<name>.jsonl``.

    Args:
        text_file: UTF-8 text, one sentence per line; its text is the transcript, as written.
        out_dir: gets ``wav/<key>.wav`` (16 kHz mono PCM-16) and the manifest.
        engines: registered engine names (``flite``, ``espeak-ng``); each utterance draws one.
        num_utterances: how many to make (``None``: one per usable line; more cycles the lines).
        seed: makes voices, rates, pitches and telephone choices reproducible.
        telephone_fraction: share of clips passed through 8 kHz and back.
        max_words: longer lines are skipped.
        workers: processes (default: all usable cores).
        short_phrases: also speak this many short utterances (:mod:`slamkit.data.phrases`: 1–3-word
            spans of the file's lines, numbers, ordinals, dates), spread evenly among the lines.
    """
    if not 0.0 <= telephone_fraction <= 1.0:
        raise ValueError(f"telephone_fraction must be in [0, 1], got {telephone_fraction}")
    check_engines(engines)
    lines, skipped = read_sentences(text_file, max_words=max_words)
    lines = with_short_phrases(lines, short_phrases, seed)
    out = Path(out_dir)
    (out / "wav").mkdir(parents=True, exist_ok=True)
    jobs = make_tts_jobs(lines, str(text_file), out / "wav", engines, num_utterances, seed, telephone_fraction)
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
    return _summary(manifest, records, failed=len(errors), skipped_lines=skipped,
                    seconds=round(seconds, 1), utterances_per_second=round(len(records) / max(seconds, 1e-9), 1))


# --------------------------------------------------------------------------- Asterisk


def clean_prompt_text(text: str) -> str:
    """A prompt transcript without ``[…]``/``(…)`` notes (``at [@]`` → ``at``), whitespace normalised.
    An empty result means the prompt is not speech (tones, silence)."""
    text = re.sub(r"\[[^\]]*\]|\([^)]*\)", " ", text)
    return " ".join(text.split())


def _text_lines(path: Path) -> Iterator[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:  # type: ignore[operator]
            yield from handle
    except (OSError, UnicodeDecodeError) as err:
        raise CorpusError(f"{path}: cannot read ({err})") from err


def read_asterisk_transcripts(path: str | Path) -> dict[str, str]:
    """``{prompt name: raw text}`` from ``core-sounds-en.txt[.gz]`` (``name: text`` lines, ``;`` comments)."""
    path = Path(path)
    out: dict[str, str] = {}
    for number, line in enumerate(_text_lines(path), start=1):
        line = line.strip()
        if not line or line.startswith(";"):
            continue
        name, sep, text = line.partition(":")
        if not sep or not name.strip() or " " in name.strip():
            raise CorpusError(f"{path}:{number}: expected `name: text`, got {line[:80]!r}")
        out[name.strip()] = text.strip()
    return out


def _find_first(root: Path, candidates: Iterable[str], what: str) -> Path:
    for rel in candidates:
        if (root / rel).exists():
            return root / rel
    raise CorpusError(f"{root}: no {what} (looked for {', '.join(candidates)})")


@CORPORA.register("asterisk")
def prepare_asterisk(out_dir: str | Path, root: str | Path | None = None, install: bool = False,
                     name: str = "asterisk") -> dict[str, Any]:
    """Manifest of the spoken Asterisk prompts: ``<out_dir>/<name>.jsonl``.

    ``root`` is the extraction root of the Debian packages (default: the ``asterisk-sounds``
    asset; ``install`` fetches it when missing). Prompts with no transcript, no audio, or a
    transcript that is only a note (``[beep]``, ``(1 second of silence)``) are skipped and counted.
    Audio stays 8 kHz: the loader resamples.
    """
    base = _asset_root(root, "asterisk-sounds", install)
    sounds = _find_first(base, ASTERISK_SOUNDS, "Asterisk sounds folder")
    text_file = _find_first(base, (ASTERISK_TEXT + ".gz", ASTERISK_TEXT), "core-sounds-en.txt(.gz)")
    transcripts = read_asterisk_transcripts(text_file)
    wavs = {p.relative_to(sounds).with_suffix("").as_posix(): p for p in sorted(sounds.rglob("*.wav"))}
    records: list[dict[str, Any]] = []
    keys: dict[str, str] = {}
    skipped = {"no_transcript": len(set(wavs) - set(transcripts)),
               "no_audio": len(set(transcripts) - set(wavs)), "not_speech": 0}
    for prompt, raw in sorted(transcripts.items()):
        if prompt not in wavs:
            continue
        target = clean_prompt_text(raw)
        if not any(ch.isalnum() for ch in target):
            skipped["not_speech"] += 1
            continue
        key = "asterisk-" + prompt.replace("/", "-")
        if key in keys:
            raise CorpusError(f"{text_file}: prompts {keys[key]!r} and {prompt!r} give the same key {key!r}")
        keys[key] = prompt
        records.append({"key": key, "source": str(wavs[prompt].absolute()), "target": target,
                        "duration": _duration(wavs[prompt]), "speaker": sounds.name})
    if not records:
        raise CorpusError(f"{sounds}: no prompt has both audio and a transcript in {text_file}")
    manifest = Path(out_dir) / f"{name}.jsonl"
    write_manifest(records, manifest)
    logger.info("asterisk: skipped %s", skipped)
    return _summary(manifest, records, skipped=skipped)


# --------------------------------------------------------------------------- LibriVox (pocketsphinx)

_SPHINX_LINE = re.compile(r"^(?:<s>)?\s*(?P<text>.*?)\s*(?:</s>)?\s*\((?P<id>[^()\s]+)\)\s*$")


def read_sphinx_transcription(path: str | Path) -> list[tuple[str, str]]:
    """``[(utterance id, text)]`` from a Sphinx ``.transcription`` file: ``<s> text </s> (id)``."""
    path = Path(path)
    out = []
    for number, line in enumerate(_text_lines(path), start=1):
        if not line.strip():
            continue
        match = _SPHINX_LINE.match(line.strip())
        if match is None or not match["text"]:
            raise CorpusError(f"{path}:{number}: expected `<s> text </s> (id)`, got {line.strip()[:80]!r}")
        out.append((match["id"], " ".join(match["text"].split())))
    return out


def _sphinx_records(folder: Path, transcription: str, prefix: str) -> list[dict[str, Any]]:
    records = []
    for utt, text in read_sphinx_transcription(folder / transcription):
        wav = folder / f"{utt}.wav"
        if not wav.is_file():
            raise CorpusError(f"{folder / transcription}: utterance {utt!r} has no audio file {wav}")
        records.append({"key": f"{prefix}{utt}", "source": str(wav.absolute()), "target": text,
                        "duration": _duration(wav)})
    return records


@CORPORA.register("librivox")
def prepare_librivox(out_dir: str | Path, root: str | Path | None = None, cards: bool = False,
                     install: bool = False) -> dict[str, Any]:
    """Manifest of the 5 LibriVox clips of ``pocketsphinx-testdata``: ``<out_dir>/librivox.jsonl``
    (and, with ``cards``, the 5 "cards" clips in ``<out_dir>/cards.jsonl``).

    ``root`` is the package's extraction root (default: the ``pocketsphinx-testdata`` asset).
    Transcripts are the package's, lower case, as read.
    """
    data = _asset_root(root, "pocketsphinx-testdata", install) / POCKETSPHINX_DATA
    records = _sphinx_records(data / "librivox", "transcription", "")
    manifest = Path(out_dir) / "librivox.jsonl"
    write_manifest(records, manifest)
    summary = _summary(manifest, records)
    if cards:
        card_records = _sphinx_records(data / "cards", "cards.transcription", "cards-")
        card_manifest = Path(out_dir) / "cards.jsonl"
        write_manifest(card_records, card_manifest)
        summary["cards"] = _summary(card_manifest, card_records)
    return summary


# --------------------------------------------------------------------------- LibriSpeech


def _librispeech_chapter(trans: Path) -> list[dict[str, Any]]:
    """Records of one ``<speaker>-<chapter>.trans.txt`` (``<utt id> <TEXT>`` lines)."""
    speaker, _, chapter = trans.name[: -len(".trans.txt")].partition("-")
    records = []
    for number, line in enumerate(_text_lines(trans), start=1):
        if not line.strip():
            continue
        utt, _, text = line.strip().partition(" ")
        if not text.strip() or not utt.startswith(f"{speaker}-{chapter}-"):
            raise CorpusError(f"{trans}:{number}: expected `{speaker}-{chapter}-NNNN TEXT`, got {line.strip()[:80]!r}")
        flac = trans.parent / f"{utt}.flac"
        if not flac.is_file():
            raise CorpusError(f"{trans}:{number}: no audio file {flac}")
        records.append({"key": utt, "source": str(flac.absolute()), "target": " ".join(text.split()),
                        "duration": _duration(flac), "speaker": speaker, "chapter": chapter,
                        "subset": trans.parents[2].name})
    return records


@CORPORA.register("librispeech")
def prepare_librispeech(root: str | Path, out_manifest: str | Path, biasing_tsv: str | Path | None = None,
                        biasing_list: str | Path | None = None, distractors: int = 100, seed: int = 0) -> dict[str, Any]:
    """Manifest of a LibriSpeech tree: ``root`` is the LibriSpeech folder or one subset in it
    (``<subset>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt`` + ``.flac``).

    Keys are utterance ids, targets the transcripts as written (upper case), durations read
    from the FLAC headers.

    Contextual biasing (:mod:`slamkit.data.biasing`): ``biasing_tsv`` (a published
    ``test-{clean,other}.biasing_N.tsv``) sets each line's ``biasing_words`` to its list there
    (every utterance needs one); ``biasing_list`` (one word per line, e.g. ``all_rare_words.txt``)
    adds ``distractors`` words drawn from it (seeded by ``seed``) to those lists, or to the
    reference's words found in it when there is no TSV.
    """
    root = Path(root)
    if not root.is_dir():
        raise CorpusError(f"{root}: no such LibriSpeech folder")
    transcripts = sorted(root.rglob("*.trans.txt"))
    if not transcripts:
        raise CorpusError(f"{root}: no <speaker>-<chapter>.trans.txt files below it (is this LibriSpeech?)")
    records: list[dict[str, Any]] = []
    for trans in tqdm(transcripts, desc="librispeech", unit="chapter", disable=None):
        records.extend(_librispeech_chapter(trans))
    extra: dict[str, Any] = {}
    if biasing_tsv is not None or biasing_list is not None:
        records = _attach_biasing(records, biasing_tsv, biasing_list, distractors, seed)
        words = [len(r["biasing_words"]) for r in records]
        extra["biasing_words_per_utterance"] = round(sum(words) / len(words), 1)
    write_manifest(records, out_manifest)
    return _summary(Path(out_manifest), records, chapters=len(transcripts), **extra)


def _attach_biasing(records: list[dict[str, Any]], tsv: str | Path | None, word_list: str | Path | None,
                    distractors: int, seed: int) -> list[dict[str, Any]]:
    """``records`` with ``biasing_words`` from the published TSV and/or a word list plus distractors."""
    for path, what in ((tsv, "biasing TSV"), (word_list, "biasing word list")):
        if path is not None and not Path(path).is_file():
            raise CorpusError(f"{path}: no such {what} file")
    if tsv is not None:
        records = attach_tsv_lists(records, tsv)
    if word_list is not None:
        records = list(attach_biasing_words(records, load_biasing_list(word_list), distractors, seed))
    return records
