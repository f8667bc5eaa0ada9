"""Speech synthesis with exact transcripts: flite, espeak-ng, Piper, Kokoro and Festival, many voices, rates and pitches.

Each utterance is one :class:`TTSJob` (a sentence plus a voice drawn from a seeded generator, so
the same seed gives the same corpus however many workers run it). A job runs the engine, mixes
to mono, resamples to 16 kHz (soxr), optionally applies a pseudo-speaker
(:mod:`slamkit.prepare.perturb`) and passes it through 8 kHz and back (telephone band), and
writes 16-bit PCM. Engines are registered in :data:`TTS_ENGINES`; each says what it lacks
(:meth:`Engine.missing`) before a run starts.

- flite: voices kal (8 kHz diphone), kal16, awb, rms, slt; rate with ``duration_stretch``, pitch
  with ``int_f0_target_mean`` (rms ignores it, so its pitch is left alone).
- espeak-ng: 8 English accents × voice variants (``en-us+f3``), rate ``-s`` (words/min), pitch
  ``-p`` (0–99). Text goes in on stdin, so a sentence starting with ``-`` is not an option.
- piper: one neural voice, joe (US male, :mod:`slamkit.prepare.piper_voice`), in this process (no
  program); rate through ``length_scale``, voice quality ``noise_scale`` and phoneme-duration
  noise ``noise_w_scale``. It cannot change its pitch: pseudo-speakers do that.
- kokoro: Kokoro-82M with five packaged voices (four female, one male) and mixes of two
  (:mod:`slamkit.prepare.kokoro_voice`), in this process; rate through its ``speed``.
- festival: Festival's ``text2wave`` with three Debian voices, slt_hts (HTS), kal_diphone and
  ked_diphone (:mod:`slamkit.prepare.festival_voice`); rate on all, pitch on the diphone voices.
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
from slamkit.prepare import festival_voice, kokoro_voice, piper_voice
from slamkit.prepare.perturb import PseudoSpeaker, perturb
from slamkit.registry import Registry

SAMPLE_RATE = 16000
TELEPHONE_RATE = 8000


class TTSError(RuntimeError):
    """A synthesis command failed or gave no audio; the message names the command."""


@dataclass(frozen=True)
class Voice:
    """One engine setting: ``voice`` name, ``rate`` (speed factor, 1 = default), ``pitch``
    (factor on the voice's mean F0, 1 = default; ``None`` where the voice cannot change it) and
    engine-specific ``settings`` (``(name, value)`` pairs, written to the manifest as they are)."""

    engine: str
    voice: str
    rate: float
    pitch: float | None
    settings: tuple[tuple[str, float], ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"voice": f"{self.engine}/{self.voice}", "rate": round(self.rate, 3)}
        if self.pitch is not None:
            out["pitch"] = round(self.pitch, 3)
        return out | {name: round(value, 3) for name, value in self.settings}


class Engine(Protocol):
    """A TTS engine: says what it lacks, draws voices, speaks a text."""

    name: str

    def missing(self) -> str | None:
        """Why the engine cannot run here, with the command that fixes it; ``None`` when it can."""
        ...

    def sample_voice(self, rng: random.Random) -> Voice: ...

    def speak(self, text: str, voice: Voice, tmp_wav: Path, where: str) -> tuple[np.ndarray, int]:
        """``text`` spoken by ``voice``: ``(float32 [t] or [t, channels], rate)``. ``tmp_wav`` is a
        scratch file the engine may write; ``where`` ("file:line") goes into its errors."""
        ...


TTS_ENGINES: Registry[Engine] = Registry("TTS engine")


class ProgramEngine:
    """Base of the engines that run a program writing a WAV file; subclasses give :meth:`command`."""

    name = ""
    program = ""

    def command(self, text: str, voice: Voice, wav: Path) -> tuple[list[str], str | None]:
        """``(argv, stdin text or None)`` that writes ``text`` spoken by ``voice`` to ``wav``."""
        raise NotImplementedError

    def missing(self) -> str | None:
        if shutil.which(self.program) is not None:
            return None
        return (f"TTS engine {self.name!r} needs the program `{self.program}` on PATH: install it with "
                f"`sudo apt-get install -y {self.program}` or `slamkit assets install {self.name}` (as root)")

    def speak(self, text: str, voice: Voice, tmp_wav: Path, where: str) -> tuple[np.ndarray, int]:
        argv, stdin = self.command(text, voice, tmp_wav)
        done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0 or not tmp_wav.is_file():
            raise TTSError(f"{where}: `{' '.join(argv)}` failed (exit {done.returncode}): {done.stderr.strip()[-300:]}")
        data, rate = sf.read(str(tmp_wav), dtype="float32", always_2d=True)
        return data, int(rate)


# Mean F0 (Hz) of each flite voice as shipped (measured); None: int_f0_target_mean has no effect.
FLITE_VOICES: dict[str, float | None] = {"kal": 95.0, "kal16": 95.0, "awb": 125.0, "rms": None, "slt": 170.0}


class Flite(ProgramEngine):
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


class EspeakNG(ProgramEngine):
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


# Ranges around the joe voice's defaults (length_scale 1, noise_scale 0.667, noise_w 0.8) that
# stay natural; the rate range is that of flite and espeak-ng.
PIPER_RATE = (0.85, 1.2)
PIPER_NOISE = (0.5, 0.8)
PIPER_NOISE_W = (0.6, 1.0)


class Piper:
    """Piper (``piper-tts``) speaking the packaged joe voice, in this process (:mod:`slamkit.prepare.piper_voice`)."""

    name = "piper"

    def missing(self) -> str | None:
        return piper_voice.missing()

    def sample_voice(self, rng: random.Random) -> Voice:
        rate = rng.uniform(*PIPER_RATE)
        settings = (("noise_scale", rng.uniform(*PIPER_NOISE)), ("noise_w_scale", rng.uniform(*PIPER_NOISE_W)))
        return Voice(self.name, "joe", rate=rate, pitch=None, settings=settings)

    def speak(self, text: str, voice: Voice, tmp_wav: Path, where: str) -> tuple[np.ndarray, int]:
        # length_scale > 1 is slower speech, so the rate factor is its inverse.
        settings = dict(voice.settings)
        return piper_voice.speak(text, 1.0 / voice.rate, settings["noise_scale"], settings["noise_w_scale"])


# Kokoro voices: half the clips one packaged voice, half a mix of two (the first's share drawn
# from KOKORO_MIX); the rate range is piper's.
KOKORO_RATE = (0.85, 1.2)
KOKORO_MIX = (0.25, 0.75)


class Kokoro:
    """Kokoro-82M speaking English with its packaged voices and their mixes (:mod:`slamkit.prepare.kokoro_voice`)."""

    name = "kokoro"

    def missing(self) -> str | None:
        return kokoro_voice.missing()

    def sample_voice(self, rng: random.Random) -> Voice:
        rate = rng.uniform(*KOKORO_RATE)
        if rng.random() < 0.5:
            return Voice(self.name, rng.choice(kokoro_voice.VOICES), rate=rate, pitch=None)
        first, second = rng.sample(kokoro_voice.VOICES, 2)
        return Voice(self.name, f"{first}+{second}", rate=rate, pitch=None, settings=(("mix", rng.uniform(*KOKORO_MIX)),))

    def speak(self, text: str, voice: Voice, tmp_wav: Path, where: str) -> tuple[np.ndarray, int]:
        names = voice.voice.split("+")
        share = dict(voice.settings).get("mix", 1.0)
        mix = ((names[0], share),) + tuple((name, (1.0 - share) / (len(names) - 1)) for name in names[1:])
        try:
            return kokoro_voice.speak(text, mix, voice.rate)
        except ValueError as err:
            raise TTSError(f"{where}: {err}") from None


class Festival(ProgramEngine):
    """Festival's ``text2wave``, voices and settings from :mod:`slamkit.prepare.festival_voice`."""

    name = "festival"
    program = festival_voice.PROGRAM

    def missing(self) -> str | None:
        return festival_voice.missing()

    def sample_voice(self, rng: random.Random) -> Voice:
        name, rate, pitch = festival_voice.draw(rng)
        return Voice(self.name, name, rate=rate, pitch=pitch)

    def command(self, text: str, voice: Voice, wav: Path) -> tuple[list[str], str | None]:
        return festival_voice.command(voice.voice, voice.rate, voice.pitch, wav), festival_voice.speakable(text)

    def speak(self, text: str, voice: Voice, tmp_wav: Path, where: str) -> tuple[np.ndarray, int]:
        # text2wave exits 0 after a Scheme error: only a file it wrote counts as success.
        tmp_wav.unlink(missing_ok=True)
        return super().speak(text, voice, tmp_wav, where)


TTS_ENGINES.register("flite")(Flite())
TTS_ENGINES.register("espeak-ng")(EspeakNG())
TTS_ENGINES.register("piper")(Piper())
TTS_ENGINES.register("festival")(Festival())
TTS_ENGINES.register("kokoro")(Kokoro())


def check_engines(names: Sequence[str]) -> None:
    """Raise if an engine is unknown (KeyError) or cannot run here (:class:`AssetMissingError`, a
    FileNotFoundError whose message names what to install)."""
    from slamkit.assets import AssetMissingError

    for name in names:
        problem = TTS_ENGINES.get(name).missing()
        if problem is not None:
            raise AssetMissingError(problem)


@dataclass(frozen=True)
class TTSJob:
    """One utterance to synthesise: where the text came from, who speaks it, where it goes."""

    key: str
    text: str
    where: str  # "file:line" of the text, for error messages
    voice: Voice
    telephone: bool
    wav: Path
    pseudo: PseudoSpeaker | None = None  # perturbation applied after synthesis, at 16 kHz


def telephone_band(wave: np.ndarray, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Pass ``wave`` ``[t]`` through ``TELEPHONE_RATE`` and back: removes content above 4 kHz."""
    narrow = resample(wave, rate, TELEPHONE_RATE)
    back = resample(narrow, TELEPHONE_RATE, rate)
    return back[: len(wave)] if len(back) >= len(wave) else np.pad(back, (0, len(wave) - len(back)))


def init_worker() -> None:
    """Initializer of a synthesis pool's processes: in-process models use one thread each."""
    piper_voice.use_threads(1)
    kokoro_voice.use_threads(1)


def synthesize(job: TTSJob) -> dict[str, Any]:
    """Synthesise one job into ``job.wav`` (16 kHz mono PCM-16); return its manifest fields.

    Returns ``{"key", "target", "duration", **voice}`` or, when the engine fails or gives no
    audio, ``{"key", "error"}`` (so one bad line costs one utterance, not the run).
    """
    fd, name = tempfile.mkstemp(suffix=".wav", dir=job.wav.parent, prefix=f".{job.key}.")
    os.close(fd)
    tmp = Path(name)
    try:
        data, rate = TTS_ENGINES.get(job.voice.engine).speak(job.text, job.voice, tmp, job.where)
        wave = resample(to_mono(data), rate, SAMPLE_RATE)
        if wave.size == 0 or not np.any(wave):
            raise TTSError(f"{job.where}: {job.voice.engine} produced no audio for {job.text!r}")
        if job.pseudo is not None:
            wave = perturb(wave, job.pseudo, SAMPLE_RATE)
        if job.telephone:
            wave = telephone_band(wave)
        wave = np.clip(wave, -1.0, 1.0)
        sf.write(str(tmp), wave, SAMPLE_RATE, subtype="PCM_16", format="WAV")
        os.replace(tmp, job.wav)
    except (TTSError, subprocess.SubprocessError, OSError, RuntimeError) as err:
        return {"key": job.key, "error": str(err)}
    finally:
        tmp.unlink(missing_ok=True)
    pseudo = job.pseudo.to_json() if job.pseudo is not None else {}
    return {"key": job.key, "target": job.text, "duration": round(len(wave) / SAMPLE_RATE, 3),
            "engine": job.voice.engine, **job.voice.to_json(), **pseudo, "telephone": job.telephone}
