"""Speech corpora from Debian packages, installed as assets (absolute paths into them).

- ``asterisk``: the Asterisk core prompts (Debian ``asterisk-core-sounds-en-wav``), transcripts
  from ``core-sounds-en.txt.gz``.
- ``librivox``: the LibriVox clips (and optionally the "cards" clips) of ``pocketsphinx-testdata``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any


from slamkit.data.manifest import write_manifest
from slamkit.prepare.base import CORPORA, CorpusError, asset_root, clip_duration, corpus_summary, text_lines

ASTERISK_SOUNDS = ("usr/share/asterisk/sounds/en_US_f_Allison", "usr/share/asterisk/sounds/en")
ASTERISK_TEXT = "usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt"
POCKETSPHINX_DATA = "usr/share/pocketsphinx/test/data"

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------- Asterisk


def clean_prompt_text(text: str) -> str:
    """A prompt transcript without ``[…]``/``(…)`` notes (``at [@]`` → ``at``), whitespace normalised.
    An empty result means the prompt is not speech (tones, silence)."""
    text = re.sub(r"\[[^\]]*\]|\([^)]*\)", " ", text)
    return " ".join(text.split())


def read_asterisk_transcripts(path: str | Path) -> dict[str, str]:
    """``{prompt name: raw text}`` from ``core-sounds-en.txt[.gz]`` (``name: text`` lines, ``;`` comments)."""
    path = Path(path)
    out: dict[str, str] = {}
    for number, line in enumerate(text_lines(path), start=1):
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
    base = asset_root(root, "asterisk-sounds", install)
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
                        "duration": clip_duration(wavs[prompt]), "speaker": sounds.name})
    if not records:
        raise CorpusError(f"{sounds}: no prompt has both audio and a transcript in {text_file}")
    manifest = Path(out_dir) / f"{name}.jsonl"
    write_manifest(records, manifest)
    logger.info("asterisk: skipped %s", skipped)
    return corpus_summary(manifest, records, skipped=skipped)


# --------------------------------------------------------------------------- LibriVox (pocketsphinx)

_SPHINX_LINE = re.compile(r"^(?:<s>)?\s*(?P<text>.*?)\s*(?:</s>)?\s*\((?P<id>[^()\s]+)\)\s*$")


def read_sphinx_transcription(path: str | Path) -> list[tuple[str, str]]:
    """``[(utterance id, text)]`` from a Sphinx ``.transcription`` file: ``<s> text </s> (id)``."""
    path = Path(path)
    out = []
    for number, line in enumerate(text_lines(path), start=1):
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
                        "duration": clip_duration(wav)})
    return records


@CORPORA.register("librivox")
def prepare_librivox(out_dir: str | Path, root: str | Path | None = None, cards: bool = False,
                     install: bool = False) -> dict[str, Any]:
    """Manifest of the 5 LibriVox clips of ``pocketsphinx-testdata``: ``<out_dir>/librivox.jsonl``
    (and, with ``cards``, the 5 "cards" clips in ``<out_dir>/cards.jsonl``).

    ``root`` is the package's extraction root (default: the ``pocketsphinx-testdata`` asset).
    Transcripts are the package's, lower case, as read.
    """
    data = asset_root(root, "pocketsphinx-testdata", install) / POCKETSPHINX_DATA
    records = _sphinx_records(data / "librivox", "transcription", "")
    manifest = Path(out_dir) / "librivox.jsonl"
    write_manifest(records, manifest)
    summary = corpus_summary(manifest, records)
    if cards:
        card_records = _sphinx_records(data / "cards", "cards.transcription", "cards-")
        card_manifest = Path(out_dir) / "cards.jsonl"
        write_manifest(card_records, card_manifest)
        summary["cards"] = corpus_summary(card_manifest, card_records)
    return summary
