"""Speech synthesis with exact transcripts: flite and espeak-ng, many voices, rates and pitches.

Each utterance is one :class:`TTSJob` (a sentence plus a voice drawn from a seeded generator, so
the same seed gives the same corpus however many workers run it). A job runs the engine, reads
its WAV, mixes to mono, resamples to 16 kHz (soxr), optionally passes it through 8 kHz and back
(telephone band), and writes 16-bit PCM. Engines are registered in :data:`TTS_ENGINES`.

- flite: voices kal (8 kHz diphone), kal16, awb, rms, slt; rate with ``duration_stretch``, pitch
  with ``int_f0_target_mean`` (rms ignores it, so its pitch is left alone).
- espeak-ng: 8 English accents × voice variants (``en-us+f3``), rate ``-s`` (words/min), pitch
  ``-p`` (0–99). Text goes in on stdin, so a sentence starting with ``-`` is not an option.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import soundfile as sf

from slamkit.data.audio import resample, to_mono
from slamkit.registry import Registry

SAMPLE_RATE = 16000
TELEPHONE_RATE = 8000


class TTSError(RuntimeError):
    """A synthesis command failed or gave no audio; the message names the command."""


@dataclass(frozen=True)
class Voice:
    """One engine setting: ``voice`` name, ``rate`` (speed factor, 1 = default) and ``pitch``
    (factor on the voice's mean F0, 1 = default; ``None`` where the voice cannot change it)."""

    engine: str
    voice: str
    rate: float
    pitch: float | None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"voice": f"{self.engine}/{self.voice}", "rate": round(self.rate, 3)}
        if self.pitch is not None:
            out["pitch"] = round(self.pitch, 3)
        return out


class Engine(Protocol):
    """A TTS program: draws voices and builds the command that speaks a text into a WAV file."""

    name: str
    program: str

    def sample_voice(self, rng: random.Random) -> Voice: ...

    def command(self, text: str, voice: Voice, wav: Path) -> tuple[list[str], str | None]:
        """``(argv, stdin text or None)`` that writes ``text`` spoken by ``voice`` to ``wav``."""
        ...


TTS_ENGINES: Registry[Engine] = Registry("TTS engine")

# Mean F0 (Hz) of each flite voice as shipped (measured); None: int_f0_target_mean has no effect.
FLITE_VOICES: dict[str, float | None] = {"kal": 95.0, "kal16": 95.0, "awb": 125.0, "rms": None, "slt": 170.0}


class Flite:
    """flite 2.x: ``-voice NAME --setf duration_stretch=R --setf int_f0_target_mean=F -t TEXT -o WAV``."""

    name = "flite"
    program = "flite"

    def sample_voice(self, rng: random.Random) -> Voice:
        name = rng.choice(sorted(FLITE_VOICES))
        pitch = None if FLITE_VOICES[name] is None else rng.uniform(0.85, 1.2)
        return Voice(self.name, name, rate=rng.uniform(0.8, 1.2), pitch=pitch)

    def command(self, text: str, voice: Voice, wav: Path) -> tuple[list[str], str | None]:
        # duration_stretch > 1 is slower speech, so the rate factor is its inverse.
        argv = [self.program, "-voice", voice.voice, "--setf", f"duration_stretch={1.0 / voice.rate:.3f}"]
        mean_f0 = FLITE_VOICES.get(voice.voice)
        if voice.pitch is not None and mean_f0 is not None:
            argv += ["--setf", f"int_f0_target_mean={mean_f0 * voice.pitch:.1f}"]
        return argv + ["-t", text, "-o", str(wav)], None


ESPEAK_ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd",
                  "en-029", "en-us-nyc")
# Intelligible voice variants (whisper, croak and the novelty voices are left out).
ESPEAK_VARIANTS = ("", "f1", "f2", "f3", "f4", "f5", "m1", "m2", "m3", "m4", "m5", "m6", "m7",
                   "klatt", "klatt2", "klatt3", "Annie", "belinda", "david", "edward", "linda", "max",
                   "michel", "paul", "steph", "travis")
ESPEAK_RATE = 175  # words per minute at rate factor 1
ESPEAK_PITCH = 50  # espeak-ng's default pitch (0-99)


class EspeakNG:
    """espeak-ng: ``-v ACCENT+VARIANT -s WPM -p PITCH -w WAV --stdin``."""

    name = "espeak-ng"
    program = "espeak-ng"

    def sample_voice(self, rng: random.Random) -> Voice:
        accent, variant = rng.choice(ESPEAK_ACCENTS), rng.choice(ESPEAK_VARIANTS)
        voice = f"{accent}+{variant}" if variant else accent
        return Voice(self.name, voice, rate=rng.uniform(0.75, 1.2), pitch=rng.uniform(0.6, 1.5))

    def command(self, text: str, voice: Voice, wav: Path) -> tuple[list[str], str | None]:
        pitch = ESPEAK_PITCH if voice.pitch is None else ESPEAK_PITCH * voice.pitch
        argv = [self.program, "-v", voice.voice, "-s", str(round(ESPEAK_RATE * voice.rate)),
                "-p", str(min(99, max(0, round(pitch)))), "-w", str(wav), "--stdin"]
        # "[[ ... ]]" is espeak's phoneme-input syntax; brackets are not spoken anyway.
        return argv, text.replace("[[", "[ [")


TTS_ENGINES.register("flite")(Flite())
TTS_ENGINES.register("espeak-ng")(EspeakNG())


def check_engines(names: Sequence[str]) -> None:
    """Raise if an engine is unknown (KeyError) or its program is not on PATH (FileNotFoundError)."""
    for name in names:
        engine = TTS_ENGINES.get(name)
        if shutil.which(engine.program) is None:
            raise FileNotFoundError(
                f"TTS engine {name!r} needs the program `{engine.program}` on PATH: install it with "
                f"`sudo apt-get install -y {engine.program}` or `slamkit assets install {name}` (as root)"
            )


@dataclass(frozen=True)
class TTSJob:
    """One utterance to synthesise: where the text came from, who speaks it, where it goes."""

    key: str
    text: str
    where: str  # "file:line" of the text, for error messages
    voice: Voice
    telephone: bool
    wav: Path


def telephone_band(wave: np.ndarray, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Pass ``wave`` ``[t]`` through ``TELEPHONE_RATE`` and back: removes content above 4 kHz."""
    narrow = resample(wave, rate, TELEPHONE_RATE)
    back = resample(narrow, TELEPHONE_RATE, rate)
    return back[: len(wave)] if len(back) >= len(wave) else np.pad(back, (0, len(wave) - len(back)))


def _speak(job: TTSJob, tmp_wav: Path) -> tuple[np.ndarray, int]:
    """Run the engine for ``job`` into ``tmp_wav``; return ``(float32 [t, ch], rate)``."""
    engine = TTS_ENGINES.get(job.voice.engine)
    argv, stdin = engine.command(job.text, job.voice, tmp_wav)
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0 or not tmp_wav.is_file():
        raise TTSError(f"{job.where}: `{' '.join(argv)}` failed (exit {done.returncode}): {done.stderr.strip()[-300:]}")
    data, rate = sf.read(str(tmp_wav), dtype="float32", always_2d=True)
    return data, int(rate)


def synthesize(job: TTSJob) -> dict[str, Any]:
    """Synthesise one job into ``job.wav`` (16 kHz mono PCM-16); return its manifest fields.

    Returns ``{"key", "target", "duration", **voice}`` or, when the engine fails or gives no
    audio, ``{"key", "error"}`` (so one bad line costs one utterance, not the run).
    """
    fd, name = tempfile.mkstemp(suffix=".wav", dir=job.wav.parent, prefix=f".{job.key}.")
    os.close(fd)
    tmp = Path(name)
    try:
        data, rate = _speak(job, tmp)
        wave = resample(to_mono(data), rate, SAMPLE_RATE)
        if wave.size == 0 or not np.any(wave):
            raise TTSError(f"{job.where}: {job.voice.engine} produced no audio for {job.text!r}")
        if job.telephone:
            wave = telephone_band(wave)
        wave = np.clip(wave, -1.0, 1.0)
        sf.write(str(tmp), wave, SAMPLE_RATE, subtype="PCM_16", format="WAV")
        os.replace(tmp, job.wav)
    except (TTSError, subprocess.SubprocessError, OSError, RuntimeError) as err:
        return {"key": job.key, "error": str(err)}
    finally:
        tmp.unlink(missing_ok=True)
    return {"key": job.key, "target": job.text, "duration": round(len(wave) / SAMPLE_RATE, 3),
            "engine": job.voice.engine, **job.voice.to_json(), "telephone": job.telephone}
