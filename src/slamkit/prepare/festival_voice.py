"""The Festival voices (Debian ``festival`` + festvox packages) of the ``festival`` TTS engine.

Used by :class:`slamkit.prepare.voices.Festival`, which runs Festival's ``text2wave`` once per
utterance (text on stdin, 16-bit PCM WAV out). Three English voices, each from its own package:

- ``slt_hts``: HTS (statistical parametric) synthesis of the CMU ARCTIC SLT speaker (US female,
  32 kHz), ``festvox-us-slt-hts``. Rate through hts_engine's ``-r`` (speed factor); Festival's
  HTS module ignores hts_engine's ``-fm`` (pitch shift), so the pitch is left alone
  (pseudo-speakers move it).
- ``kal_diphone`` (US male, ``festvox-kallpc16k``) and ``ked_diphone`` (US male,
  ``festvox-kdlpc16k``): 16 kHz residual-LPC diphone synthesis. Rate through
  ``Duration_Stretch`` (the voice's own value, 1.1, divided by the rate factor), pitch through the
  ``target_f0_mean`` of the linear-regression intonation model (105 Hz times the pitch factor).

The diphone voices crash (SIGSEGV) on a text that starts with a punctuation-only token of more
than one character ("-- Hello", "... so") or holds two such tokens in a row ("Hi ... ... there"):
:func:`speakable` drops those tokens, which are silent anyway, so the transcript stays exact.

Festival starts and loads the voice for every utterance (0.15-0.3 s), which bounds its speed on
short sentences; the program is found on ``PATH`` and the voices are asked of Festival itself
(``(voice.list)``), so a Festival outside Debian's layout works as well.
"""

from __future__ import annotations

import random
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

PROGRAM = "text2wave"
# A whitespace-separated token of punctuation Festival does not speak (dashes, dots, quotes, …).
SILENT_TOKEN = re.compile(r"[-\u2013\u2014.\u2026,;:!?'\"\u201c\u201d\u2018\u2019`*()]+")
RATE = (0.8, 1.2)  # the rate range of flite and espeak-ng
PITCH = (0.85, 1.2)  # flite's pitch range (factor on the voice's mean F0)


@dataclass(frozen=True)
class FestivalVoice:
    """One Festival voice: its voice function ``(voice_<function>)``, the Debian package that ships
    it, and whether it is an HTS voice (rate by hts_engine's ``-r``, no pitch control) or a diphone
    voice (rate by ``Duration_Stretch``, pitch by the intonation model's target mean F0)."""

    function: str
    package: str
    hts: bool


VOICES: dict[str, FestivalVoice] = {
    "slt_hts": FestivalVoice("cmu_us_slt_arctic_hts", "festvox-us-slt-hts", hts=True),
    "kal_diphone": FestivalVoice("kal_diphone", "festvox-kallpc16k", hts=False),
    "ked_diphone": FestivalVoice("ked_diphone", "festvox-kdlpc16k", hts=False),
}
PACKAGES = ("festival", *(v.package for v in VOICES.values()))


def installed_voices() -> set[str]:
    """The voice functions Festival finds here (empty when ``festival`` is not on PATH)."""
    program = shutil.which("festival")
    if program is None:
        return set()
    try:
        done = subprocess.run([program, "--batch", "(print (voice.list))"], capture_output=True, text=True,
                              timeout=60, check=False)
    except (OSError, subprocess.SubprocessError):
        return set()
    return set(re.findall(r"[\w-]+", done.stdout)) if done.returncode == 0 else set()


def missing() -> str | None:
    """Why the ``festival`` engine cannot run here, naming the Debian packages; ``None`` when it can."""
    lacking = [] if shutil.which(PROGRAM) is not None else ["festival"]
    found = installed_voices()
    lacking += [v.package for v in VOICES.values() if v.function not in found]
    if not lacking:
        return None
    return (f"TTS engine 'festival' needs the Debian package(s) {', '.join(lacking)} (program `{PROGRAM}` and the "
            f"voices {', '.join(VOICES)}): install them with `sudo apt-get install -y {' '.join(PACKAGES)}` "
            "or `slamkit assets install festival` (as root)")


def speakable(text: str) -> str:
    """``text`` without the silent punctuation tokens that crash the diphone voices: one at the
    start, or one right after another (``"-- Hi ... ... there"`` → ``"Hi ... there"``)."""
    kept: list[str] = []
    for token in text.split():
        if SILENT_TOKEN.fullmatch(token) and (not kept or SILENT_TOKEN.fullmatch(kept[-1])):
            continue
        kept.append(token)
    return " ".join(kept)


def draw(rng: random.Random) -> tuple[str, float, float | None]:
    """A voice as ``prepare tts`` draws it: ``(name, rate factor, pitch factor or None for HTS)``."""
    name = rng.choice(sorted(VOICES))
    rate = rng.uniform(*RATE)
    pitch = None if VOICES[name].hts else rng.uniform(*PITCH)
    return name, rate, pitch


def command(name: str, rate: float, pitch: float | None, wav: Path) -> list[str]:
    """``text2wave`` argv that speaks stdin with voice ``name`` at ``rate`` (> 1 is faster) and
    ``pitch`` (factor on the voice's mean F0; ignored for HTS voices) into ``wav``."""
    voice = VOICES[name]
    evals = [f"(voice_{voice.function})"]
    if voice.hts:
        evals.append(f"(set! hts_engine_params (append hts_engine_params (list (list \"-r\" {rate:.4f}))))")
    else:
        # Duration_Stretch > 1 is slower speech: the voice's own stretch over the rate factor.
        evals.append(f"(Parameter.set 'Duration_Stretch (/ (Parameter.get 'Duration_Stretch) {rate:.4f}))")
        if pitch is not None:
            # A new head of the alist shadows the voice's own target_f0_mean.
            evals.append(f"(set! int_lr_params (cons (list 'target_f0_mean (* {pitch:.4f} "
                         "(car (cdr (assoc 'target_f0_mean int_lr_params))))) int_lr_params))")
    argv = [PROGRAM]
    for expr in evals:
        argv += ["-eval", expr]
    return argv + ["-otype", "riff", "-o", str(wav)]
