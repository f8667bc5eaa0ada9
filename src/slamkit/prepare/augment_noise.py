"""The ``noise`` augmentation kind: additive noise at a drawn signal-to-noise ratio.

Noise comes from sources in :data:`NOISE_SOURCES`, one drawn uniformly per clip among those usable here:

- ``moh``: music on hold, the five tracks of Debian ``asterisk-moh-opsound-wav`` (asset ``asterisk-moh``,
  8 kHz, 18 minutes in all); a random stretch of a track drawn in proportion to its length;
- ``sonicpi``: the 165 Sonic Pi samples (asset ``sonic-pi-samples``), looped from a random start;
- ``babble``: 3-6 other clips of the same manifest, each at unit level, looped from random starts, summed;
- ``colored``: white, pink or brown Gaussian noise, made here (needs nothing; the fallback).

A source whose asset is missing (and ``--install`` not given) is left out with a warning naming the install
command; if none is left, setup fails. The SNR is the ratio of mean powers over the whole clip:
``10·log10(mean(speech²) / mean(noise²))``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from slamkit.data.audio import AudioError, load_audio, resample
from slamkit.prepare.augment_base import (
    SAMPLE_RATE,
    AugmentSetupError,
    Clip,
    SetupContext,
    int_range,
    name_list,
    number_range,
    option,
    rms,
    uniform,
)
from slamkit.registry import Registry

logger = logging.getLogger(__name__)

MOH_ASSET = "asterisk-moh"
MOH_DIR = "usr/share/asterisk/moh"
SONICPI_ASSET = "sonic-pi-samples"
SONICPI_DIR = "usr/share/sonic-pi/samples"
# Spectral slope of each colour: power ∝ 1/f^alpha.
COLORS = {"white": 0.0, "pink": 1.0, "brown": 2.0}
# Coloured noise has no content below this (brown noise would otherwise be mostly DC drift).
COLOR_LOW_HZ = 20.0


class NoiseUnavailable(Exception):
    """A noise source cannot be used here; the message says why and how to fix it."""


@dataclass(frozen=True)
class NoiseSource:
    """A kind of noise: ``setup(ctx, install) -> state`` (raises :class:`NoiseUnavailable`) and
    ``draw(rng, samples, state, params, clip) -> (noise [samples] float32 at any level, info)``."""

    setup: Callable[[SetupContext, "NoiseParams"], Any]
    draw: Callable[[np.random.Generator, int, Any, "NoiseParams", Clip], tuple[np.ndarray, dict[str, Any]]]


NOISE_SOURCES: Registry[NoiseSource] = Registry("noise source")
DEFAULT_SOURCES = ("moh", "sonicpi", "babble", "colored")


@dataclass(frozen=True)
class NoiseParams:
    """Additive noise: the SNR range and where the noise comes from."""

    snr_db: tuple[float, float] = option((5.0, 20.0), number_range(-20.0, 60.0), "signal-to-noise ratio range, dB")
    sources: tuple[str, ...] = option(DEFAULT_SOURCES, name_list(DEFAULT_SOURCES), "noise sources drawn uniformly (those unavailable here are left out)")
    talkers: tuple[int, int] = option((3, 6), int_range(1, 20), "babble: how many other clips are mixed")
    colors: tuple[str, ...] = option(tuple(COLORS), name_list(COLORS), "colored: the colours drawn")


def loop_from(wave: np.ndarray, rng: np.random.Generator, samples: int) -> tuple[np.ndarray, int]:
    """``samples`` of ``wave`` from a random start, looped when ``wave`` is shorter; returns the start too."""
    start = int(rng.integers(len(wave)))
    reps = -(-(start + samples) // len(wave))
    return np.tile(wave, reps)[start: start + samples], start


# --------------------------------------------------------------------------- coloured noise


def colored_noise(rng: np.random.Generator, samples: int, alpha: float) -> np.ndarray:
    """Gaussian noise with power ∝ 1/f^alpha above :data:`COLOR_LOW_HZ`, at unit RMS: ``[samples]`` float32."""
    size = 1 << max(samples - 1, 1).bit_length()  # a power of two: FFTs of lengths with large prime factors are slow
    spectrum = np.fft.rfft(rng.standard_normal(size))
    freqs = np.fft.rfftfreq(size, 1.0 / SAMPLE_RATE)
    gain = np.where(freqs >= COLOR_LOW_HZ, np.maximum(freqs, COLOR_LOW_HZ) ** (-alpha / 2), 0.0)
    noise = np.fft.irfft(spectrum * gain, n=size)[:samples]
    level = rms(noise)
    return (noise / level if level > 0 else noise).astype(np.float32)


def _draw_colored(rng: np.random.Generator, samples: int, state: None, params: NoiseParams, clip: Clip) -> tuple[np.ndarray, dict[str, Any]]:
    color = params.colors[int(rng.integers(len(params.colors)))]
    return colored_noise(rng, samples, COLORS[color]), {"color": color}


def _setup_colored(ctx: SetupContext, params: NoiseParams) -> None:
    return None


NOISE_SOURCES.register("colored")(NoiseSource(setup=_setup_colored, draw=_draw_colored))


# --------------------------------------------------------------------------- packaged audio (assets)


def _asset_files(asset: str, folder: str, pattern: str, install: bool) -> tuple[Path, ...]:
    """The files matching ``pattern`` in ``folder`` of an installed asset (installed first if ``install``)."""
    from slamkit.assets import AssetError, asset_path

    try:
        root = asset_path(asset, install=install)
    except AssetError as err:
        raise NoiseUnavailable(f"{err} (or pass --install)") from err
    files = tuple(sorted((root / folder).glob(pattern)))
    if not files:
        raise NoiseUnavailable(f"asset {asset!r} at {root} has no {folder}/{pattern}")
    return files


@dataclass(frozen=True)
class Tracks:
    """Long recordings to cut stretches from: their paths and lengths (frames, at each file's rate)."""

    paths: tuple[Path, ...]
    frames: tuple[int, ...]
    rates: tuple[int, ...]


def _setup_moh(ctx: SetupContext, params: NoiseParams) -> Tracks:
    paths = _asset_files(MOH_ASSET, MOH_DIR, "*.wav", ctx.install)
    infos = [sf.info(str(p)) for p in paths]
    return Tracks(paths, tuple(int(i.frames) for i in infos), tuple(int(i.samplerate) for i in infos))


def _draw_moh(rng: np.random.Generator, samples: int, state: Tracks, params: NoiseParams, clip: Clip) -> tuple[np.ndarray, dict[str, Any]]:
    weights = np.asarray(state.frames, dtype=np.float64)
    pick = int(rng.choice(len(state.paths), p=weights / weights.sum()))
    rate, frames = state.rates[pick], state.frames[pick]
    need = min(-(-samples * rate // SAMPLE_RATE) + 64, frames)
    start = int(rng.integers(frames - need + 1))
    data, _ = sf.read(str(state.paths[pick]), start=start, frames=need, dtype="float32", always_2d=True)
    stretch = resample(data.mean(axis=1).astype(np.float32), rate, SAMPLE_RATE)
    noise = np.tile(stretch, -(-samples // len(stretch)))[:samples]
    return noise, {"file": state.paths[pick].name, "start": round(start / rate, 2)}


NOISE_SOURCES.register("moh")(NoiseSource(setup=_setup_moh, draw=_draw_moh))


@functools.lru_cache(maxsize=64)
def _sample_16k(path: Path) -> np.ndarray:
    """A short sample file as mono 16 kHz (kept per process: Sonic Pi samples are a few seconds each)."""
    return load_audio(path, SAMPLE_RATE)


def _setup_sonicpi(ctx: SetupContext, params: NoiseParams) -> tuple[Path, ...]:
    return _asset_files(SONICPI_ASSET, SONICPI_DIR, "*.flac", ctx.install)


def _draw_sonicpi(rng: np.random.Generator, samples: int, state: tuple[Path, ...], params: NoiseParams,
                  clip: Clip) -> tuple[np.ndarray, dict[str, Any]]:
    path = state[int(rng.integers(len(state)))]
    noise, start = loop_from(_sample_16k(path), rng, samples)
    return noise, {"file": path.name, "start": round(start / SAMPLE_RATE, 2)}


NOISE_SOURCES.register("sonicpi")(NoiseSource(setup=_setup_sonicpi, draw=_draw_sonicpi))


# --------------------------------------------------------------------------- babble


@dataclass(frozen=True)
class Babble:
    """The manifest whose clips are mixed, and how many usable clips it has."""

    manifest: Path
    clips: int


@functools.lru_cache(maxsize=4)
def _manifest_clips(manifest: Path) -> tuple[tuple[str, str, float, float | None], ...]:
    """``(key, source, offset, duration)`` of the usable records, in order (read once per process)."""
    from slamkit.data.manifest import Record, iter_manifest

    return tuple((r.key, r.source, r.offset, r.duration) for r in iter_manifest(manifest) if isinstance(r, Record))


def _setup_babble(ctx: SetupContext, params: NoiseParams) -> Babble:
    if ctx.manifest is None or ctx.clips <= params.talkers[0]:
        raise NoiseUnavailable(f"babble needs at least {params.talkers[0] + 1} clips in the manifest, it has {ctx.clips}")
    return Babble(ctx.manifest, ctx.clips)


def _talker(index: int, clips: tuple[tuple[str, str, float, float | None], ...], rng: np.random.Generator,
            samples: int) -> np.ndarray | None:
    """Clip ``index`` at unit RMS, looped to ``samples`` from a random start; None when it cannot be used."""
    key, source, offset, duration = clips[index]
    try:
        wave = load_audio(source, SAMPLE_RATE, offset, duration)
    except AudioError as err:
        logger.debug("babble: talker %s left out: %s", key, err)
        return None
    level = rms(wave)
    return loop_from(wave / level, rng, samples)[0] if level > 0 else None


def _draw_babble(rng: np.random.Generator, samples: int, state: Babble, params: NoiseParams, clip: Clip) -> tuple[np.ndarray, dict[str, Any]]:
    clips = _manifest_clips(state.manifest)
    count = min(int(rng.integers(params.talkers[0], params.talkers[1] + 1)), len(clips) - 1)
    others = rng.choice(len(clips) - 1, size=count, replace=False)
    picks = [int(i) + int(i >= clip.index) for i in others]  # every clip but this one
    voices = [(clips[i][0], _talker(i, clips, rng, samples)) for i in picks]
    used = [(key, wave) for key, wave in voices if wave is not None]
    if not used:
        return colored_noise(rng, samples, COLORS["pink"]), {"talkers": [], "color": "pink"}
    return np.sum([w for _, w in used], axis=0).astype(np.float32), {"talkers": [k for k, _ in used]}


NOISE_SOURCES.register("babble")(NoiseSource(setup=_setup_babble, draw=_draw_babble))


# --------------------------------------------------------------------------- the kind


@dataclass(frozen=True)
class NoiseState:
    """The params and the usable sources with their states."""

    params: NoiseParams
    sources: tuple[tuple[str, NoiseSource, Any], ...]


def setup_noise(params: NoiseParams, ctx: SetupContext) -> NoiseState:
    """Set up every source asked for; leave out (with a warning) those unavailable here.

    Raises:
        AugmentSetupError: no source is usable; the message says why for each.
    """
    usable, problems = [], []
    for name in params.sources:
        source = NOISE_SOURCES.get(name)
        try:
            usable.append((name, source, source.setup(ctx, params)))
        except NoiseUnavailable as err:
            problems.append(f"{name}: {err}")
    for problem in problems:
        logger.warning("noise: source left out: %s", problem)
    if not usable:
        raise AugmentSetupError("--param noise.sources: none of " + ", ".join(params.sources) + " is usable (" + "; ".join(problems) + ")")
    return NoiseState(params, tuple(usable))


def add_noise(wave: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``wave + g·noise`` with ``g`` chosen so that ``10·log10(mean(wave²) / mean((g·noise)²)) == snr_db``."""
    level, noise_level = rms(wave), rms(noise)
    if level == 0 or noise_level == 0:
        return wave
    gain = level / noise_level / 10 ** (snr_db / 20)
    return (wave + gain * noise).astype(np.float32)


def apply_noise(wave: np.ndarray, rng: np.random.Generator, state: NoiseState, clip: Clip) -> tuple[np.ndarray, dict[str, Any]]:
    """Add noise from a drawn source at a drawn SNR; a silent clip is left as it is (no SNR exists)."""
    name, source, source_state = state.sources[int(rng.integers(len(state.sources)))]
    snr_db = uniform(rng, state.params.snr_db, 1)
    noise, info = source.draw(rng, len(wave), source_state, state.params, clip)
    if rms(wave) == 0:
        return wave, {"kind": name, "skipped": "silent clip"}
    return add_noise(wave, noise, snr_db), {"kind": name, "snr_db": snr_db, **info}
