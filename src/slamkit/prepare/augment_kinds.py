"""The ``speed``, ``room`` and ``telephone`` augmentation kinds (the interface: :mod:`slamkit.prepare.augment_base`).

- ``speed``: Kaldi's speed perturbation, by resampling (tempo and pitch move together);
- ``room``: a shoebox room simulated with pyroomacoustics (image sources), its decay corrected to the drawn
  RT60, convolved with the clip so that the direct path stays where the dry sound was;
- ``telephone``: 8 kHz, a 300-3400 Hz band-pass and a codec round trip through libsndfile (μ-law, A-law,
  GSM 06.10, Opus, MP3, Vorbis), the codec's delay taken out.
"""

from __future__ import annotations

import functools
import io
import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import soundfile as sf
import soxr

from slamkit.data.audio import resample
from slamkit.prepare.augment_base import (
    SAMPLE_RATE,
    AugmentSetupError,
    Clip,
    SetupContext,
    derive_seed,
    fit_length,
    name_list,
    number_list,
    number_range,
    option,
    rms,
    uniform,
    whole,
)

logger = logging.getLogger(__name__)

TELEPHONE_RATE = 8000
SPEED_QUALITY = "HQ"


# --------------------------------------------------------------------------- speed


@dataclass(frozen=True)
class SpeedParams:
    """Speed perturbation (Kaldi's recipe: resampling changes tempo and pitch together)."""

    factors: tuple[float, ...] = option((0.9, 1.1), number_list(0.5, 2.0), "speed factors drawn uniformly (1.0: the clean copy)")


def setup_speed(params: SpeedParams, ctx: SetupContext) -> SpeedParams:
    """Nothing to prepare: the state is the params."""
    return params


def apply_speed(wave: np.ndarray, rng: np.random.Generator, state: SpeedParams, clip: Clip) -> tuple[np.ndarray, dict[str, Any]]:
    """Play ``wave`` ``factor`` times faster: resample from ``16000·factor`` to 16000 Hz (soxr), so the result
    has ``len/factor`` samples and every frequency moves by ``factor``."""
    factor = float(state.factors[int(rng.integers(len(state.factors)))])
    if factor == 1.0:
        return wave, {"factor": factor}
    out = soxr.resample(wave, SAMPLE_RATE * factor, SAMPLE_RATE, quality=SPEED_QUALITY)
    return np.asarray(out, dtype=np.float32), {"factor": factor}


# --------------------------------------------------------------------------- room


@dataclass(frozen=True)
class RoomParams:
    """A shoebox room simulated with pyroomacoustics' image-source method."""

    rt60: tuple[float, float] = option((0.2, 0.8), number_range(0.05, 2.0), "reverberation time range, seconds")
    length: tuple[float, float] = option((3.0, 10.0), number_range(1.5, 50.0), "room length range, metres")
    width: tuple[float, float] = option((3.0, 8.0), number_range(1.5, 50.0), "room width range, metres")
    height: tuple[float, float] = option((2.5, 4.0), number_range(1.5, 20.0), "room height range, metres")
    pool: int = option(64, whole(0, 100_000), "impulse responses per run, each drawn once and reused (0: a new one per clip, slow)")


# Source and microphone keep this far from every wall (metres).
WALL_MARGIN = 0.5
# Samples of the RIR kept before its direct-path peak (the fractional-delay filter's left half).
PRE_PEAK = 40
# The RIR is cut where its remaining energy falls below this fraction of the total (-60 dB).
TAIL_ENERGY = 1e-6
# The RIR's decay is corrected until its measured RT60 is this close to the drawn one (relative), or
# after this many rounds.
RT60_TOLERANCE = 0.03
RT60_ROUNDS = 4


@dataclass(frozen=True)
class RoomState:
    """The room kind's run state: its params and the seed its RIR pool is drawn from."""

    params: RoomParams
    seed: int


def setup_room(params: RoomParams, ctx: SetupContext) -> RoomState:
    """Check that pyroomacoustics and scipy import (they are the ``augment`` extra)."""
    try:
        import pyroomacoustics  # noqa: F401
        import scipy.signal  # noqa: F401
    except ImportError as err:
        raise AugmentSetupError(f"the room kind needs pyroomacoustics and scipy ({err}); "
                                "install them with `pip install 'slamkit[augment]'`") from err
    return RoomState(params, ctx.seed)


def measure_rt60(rir: np.ndarray) -> float:
    """RT60 (seconds) of ``rir`` from its Schroeder decay, extrapolated from the first 30 dB."""
    import pyroomacoustics as pra

    return float(pra.experimental.measure_rt60(rir, fs=SAMPLE_RATE, decay_db=30))


def _shape_tail(rir: np.ndarray, direct: int, rt60: float) -> tuple[np.ndarray, float]:
    """Make ``rir`` decay with ``rt60`` and cut its silent end; returns it with its measured RT60.

    The image-source RIR of a room built by Sabine's formula does not decay as asked (measured here: up
    to 90 % longer), so the part after the direct path is multiplied by the exponential that moves its
    decay rate to the target's; the decay is not a pure exponential, so this is repeated until the
    measured RT60 is within :data:`RT60_TOLERANCE` (at most :data:`RT60_ROUNDS` times).
    """
    rir = rir.copy()
    t = np.arange(len(rir) - direct) / SAMPLE_RATE
    measured = measure_rt60(rir[direct:])
    for _ in range(RT60_ROUNDS):
        if abs(measured - rt60) <= RT60_TOLERANCE * rt60:
            break
        rir[direct:] *= np.exp(-math.log(1000.0) * (1.0 / rt60 - 1.0 / measured) * t)
        measured = measure_rt60(rir[direct:])
    remaining = np.cumsum(np.square(rir[::-1]))[::-1]
    end = int(np.searchsorted(-remaining, -TAIL_ENERGY * remaining[0]))
    return rir[: max(end, direct + 1)], measured


def make_rir(params: RoomParams, rng: np.random.Generator) -> tuple[np.ndarray, int, dict[str, Any]]:
    """Draw a room, a source and a microphone, and simulate the impulse response.

    Returns:
        ``rir [n]`` float32, ``direct`` (the index of its direct-path peak) and the drawn values.
    """
    import pyroomacoustics as pra

    rt60 = uniform(rng, params.rt60, 3)
    dims = np.array([uniform(rng, params.length, 2), uniform(rng, params.width, 2), uniform(rng, params.height, 2)])
    margin = np.minimum(WALL_MARGIN, dims / 4)
    source, mic = rng.uniform(margin, dims - margin), rng.uniform(margin, dims - margin)
    absorption, max_order = pra.inverse_sabine(rt60, dims)
    room = pra.ShoeBox(dims, fs=SAMPLE_RATE, materials=pra.Material(absorption), max_order=max_order)
    room.add_source(source)
    room.add_microphone(mic)
    room.compute_rir()
    rir = np.asarray(room.rir[0][0], dtype=np.float64)
    peak = int(np.argmax(np.abs(rir)))
    start = max(peak - PRE_PEAK, 0)
    rir, measured = _shape_tail(rir[start:], peak - start, rt60)
    info = {"rt60": rt60, "rt60_measured": round(measured, 3), "size": dims.tolist(),
            "distance": round(float(np.linalg.norm(source - mic)), 2)}
    return rir.astype(np.float32), peak - start, info


@functools.lru_cache(maxsize=None)
def pooled_rir(params: RoomParams, seed: int, index: int) -> tuple[np.ndarray, int, dict[str, Any]]:
    """RIR ``index`` of the run's pool: a pure function of ``(params, seed, index)``, computed once per
    process the first time a clip draws it (so every worker count gives the same RIRs)."""
    rir, direct, info = make_rir(params, np.random.default_rng(derive_seed(seed, "room-pool", index)))
    rir.flags.writeable = False
    return rir, direct, info


def reverberate(wave: np.ndarray, rir: np.ndarray, direct: int) -> np.ndarray:
    """``wave`` convolved with ``rir``, shifted so the direct path lands where the dry sound was (transcript
    timing holds), cut to the input length and brought back to the input's RMS level."""
    from scipy.signal import fftconvolve

    wet = fftconvolve(wave, rir)[direct: direct + len(wave)]
    wet = fit_length(wet, len(wave))
    level = rms(wet)
    return (wet * (rms(wave) / level) if level > 0 else wet).astype(np.float32)


def apply_room(wave: np.ndarray, rng: np.random.Generator, state: RoomState, clip: Clip) -> tuple[np.ndarray, dict[str, Any]]:
    """Reverberate ``wave`` with an RIR of the run's pool (or a fresh one when ``pool`` is 0)."""
    if state.params.pool:
        index = int(rng.integers(state.params.pool))
        rir, direct, info = pooled_rir(state.params, state.seed, index)
        info = {**info, "rir": index}
    else:
        rir, direct, info = make_rir(state.params, rng)
    return reverberate(wave, rir, direct), info


# --------------------------------------------------------------------------- telephone


@dataclass(frozen=True)
class Codec:
    """A codec libsndfile writes: container, subtype, and the ``compression_level`` range drawn (None: fixed rate)."""

    format: str
    subtype: str
    levels: tuple[float, float] | None = None


#: Codecs the telephone kind may draw; levels are chosen for low bit rates at 8 kHz (measured with
#: libsndfile 1.2.2: opus 0.9-1.0 ≈ 34-7 kbit/s, mp3 0.5-0.95 ≈ 16-13, vorbis 0.7-1.0 ≈ 29-24).
CODECS: dict[str, Codec] = {
    "ulaw": Codec("WAV", "ULAW"),
    "alaw": Codec("WAV", "ALAW"),
    "gsm": Codec("WAV", "GSM610"),
    "opus": Codec("OGG", "OPUS", (0.9, 1.0)),
    "mp3": Codec("MP3", "MPEG_LAYER_III", (0.5, 0.95)),
    "vorbis": Codec("OGG", "VORBIS", (0.7, 1.0)),
    "pcm": Codec("WAV", "PCM_16"),
}
DEFAULT_CODECS = ("ulaw", "alaw", "gsm", "opus", "mp3", "vorbis")


@dataclass(frozen=True)
class TelephoneParams:
    """A narrow-band telephone channel: 8 kHz, a band-pass, a speech codec."""

    codecs: tuple[str, ...] = option(DEFAULT_CODECS, name_list(CODECS), "codecs drawn uniformly (those libsndfile cannot write are left out)")
    band: tuple[float, float] = option((300.0, 3400.0), number_range(20.0, 3900.0), "pass band, Hz")


@dataclass(frozen=True)
class TelephoneState:
    """The usable codecs with the delay (samples at 8 kHz) each adds on a round trip, and the band."""

    codecs: tuple[tuple[str, Codec, int], ...]
    band: tuple[float, float]


def encode_decode(wave: np.ndarray, codec: Codec, level: float | None) -> tuple[np.ndarray, int]:
    """``wave`` (8 kHz) through ``codec`` and back, in memory; returns the decoded samples and the encoded bytes."""
    buffer = io.BytesIO()
    extra = {} if level is None else {"compression_level": level}
    sf.write(buffer, wave, TELEPHONE_RATE, format=codec.format, subtype=codec.subtype, **extra)
    size = buffer.tell()
    buffer.seek(0)
    decoded, _ = sf.read(buffer, dtype="float32", always_2d=True)
    return decoded[:, 0], size


def codec_delay(codec: Codec) -> int:
    """Samples the round trip through ``codec`` shifts a signal by (MP3 pads its start), found with a click.

    Raises:
        AugmentSetupError: libsndfile here cannot write or read ``codec``.
    """
    probe = np.zeros(TELEPHONE_RATE, dtype=np.float32)
    probe[2000:2200] = np.hanning(200) * 0.5
    try:
        decoded, _ = encode_decode(probe, codec, None if codec.levels is None else codec.levels[0])
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
        raise AugmentSetupError(f"libsndfile {sf.__libsndfile_version__} cannot round-trip {codec.format}/{codec.subtype}: {err}") from err
    corr = np.correlate(decoded[: len(probe) + 4000], probe[1800:2400], mode="valid")
    return max(int(np.argmax(corr)) - 1800, 0)


def setup_telephone(params: TelephoneParams, ctx: SetupContext) -> TelephoneState:
    """Probe each codec (and its delay) once; leave out, with a warning, those this libsndfile cannot write."""
    try:
        import scipy.signal  # noqa: F401
    except ImportError as err:
        raise AugmentSetupError(f"the telephone kind needs scipy ({err}); install it with `pip install 'slamkit[augment]'`") from err
    if params.band[0] >= params.band[1]:
        raise AugmentSetupError(f"--param telephone.band: the low edge must be below the high one, got {params.band}")
    usable, problems = [], []
    for name in params.codecs:
        try:
            usable.append((name, CODECS[name], codec_delay(CODECS[name])))
        except AugmentSetupError as err:
            problems.append(f"{name}: {err}")
    for problem in problems:
        logger.warning("telephone: codec left out: %s", problem)
    if not usable:
        raise AugmentSetupError("--param telephone.codecs: no codec of " + ", ".join(params.codecs) + " works here (" + "; ".join(problems) + ")")
    return TelephoneState(tuple(usable), params.band)


def band_pass(wave: np.ndarray, band: tuple[float, float]) -> np.ndarray:
    """Zero-phase 4th-order Butterworth band-pass at 8 kHz (forward-backward, so nothing moves in time)."""
    from scipy.signal import butter, sosfiltfilt

    sos = butter(4, band, btype="bandpass", fs=TELEPHONE_RATE, output="sos")
    return sosfiltfilt(sos, wave).astype(np.float32) if len(wave) > 30 else wave


def apply_telephone(wave: np.ndarray, rng: np.random.Generator, state: TelephoneState, clip: Clip) -> tuple[np.ndarray, dict[str, Any]]:
    """16 kHz → 8 kHz → band-pass → codec round trip (delay removed) → 16 kHz; the length is kept."""
    name, codec, delay = state.codecs[int(rng.integers(len(state.codecs)))]
    level = None if codec.levels is None else uniform(rng, codec.levels, 2)
    narrow = band_pass(resample(wave, SAMPLE_RATE, TELEPHONE_RATE), state.band)
    peak = float(np.max(np.abs(narrow))) if narrow.size else 0.0
    gain = 0.95 / peak if peak > 0.95 else 1.0  # the codecs clip at full scale
    decoded, size = encode_decode(narrow * gain, codec, level)
    decoded = fit_length(decoded[delay:], len(narrow)) / gain
    out = fit_length(resample(decoded.astype(np.float32), TELEPHONE_RATE, SAMPLE_RATE), len(wave))
    info: dict[str, Any] = {"codec": name, "kbps": round(size * 8 / (len(narrow) / TELEPHONE_RATE) / 1000, 1)}
    if level is not None:
        info["level"] = level
    return out.astype(np.float32), info
