"""A synthetic "tone speech" corpus: every word is a short melody, a sentence is words in a row.

It needs no TTS engine and no download, so the tiny recipe, ``make demo`` and the end-to-end
test run anywhere in seconds. Each word of a small vocabulary owns a fixed pair of tones; a
clip strings 2–4 words together with small random changes in duration, loudness and noise, and
its transcript is the words. A model that learns this maps audio to text for real: the words
are only recoverable from the audio.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf

WORDS = ["red", "green", "blue", "cat", "dog", "bird", "one", "two", "three", "up", "down", "stop"]
SAMPLE_RATE = 16000


def _word_wave(index: int, rng: np.random.Generator, sr: int) -> np.ndarray:
    """Two consecutive tones whose frequencies identify the word (±3 % jitter in length).

    Frequencies are log-spaced from 250 Hz to 4 kHz (about 4 mel bins apart), and the second
    tone follows a different order than the first, so no two words share a tone pair.
    """
    n = len(WORDS)
    f1 = 250.0 * 16.0 ** (index / (n - 1))
    f2 = 250.0 * 16.0 ** (((index * 5 + 3) % n) / (n - 1))
    parts = []
    for freq in (f1, f2):
        n = int(sr * 0.09 * rng.uniform(0.97, 1.03))
        t = np.arange(n) / sr
        envelope = np.sin(np.pi * np.arange(n) / n)
        parts.append(np.sin(2 * np.pi * freq * t) * envelope)
    return np.concatenate(parts)


def synth_sentence(words: list[str], rng: np.random.Generator, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Audio [t] float32 of ``words`` with silences, random gain and light noise."""
    gap = np.zeros(int(sr * 0.04))
    pieces = [gap]
    for word in words:
        pieces += [_word_wave(WORDS.index(word), rng, sr), gap]
    wave = np.concatenate(pieces) * rng.uniform(0.3, 0.8)
    wave = wave + rng.normal(0.0, 0.005, size=wave.shape)
    return wave.astype(np.float32)


def make_tone_corpus(out_dir: str | Path, num_clips: int, seed: int = 0, name: str = "train",
                     min_words: int = 2, max_words: int = 4) -> Path:
    """Write ``num_clips`` WAV files and ``{name}.jsonl`` under ``out_dir``; return the manifest."""
    out = Path(out_dir)
    (out / name).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    manifest = out / f"{name}.jsonl"
    with manifest.open("w") as f:
        for i in range(num_clips):
            words = list(rng.choice(WORDS, size=int(rng.integers(min_words, max_words + 1))))
            wav = out / name / f"{name}_{i:05d}.wav"
            sf.write(wav, synth_sentence(words, rng), SAMPLE_RATE)
            f.write(json.dumps({"key": f"{name}_{i:05d}", "source": f"{name}/{wav.name}", "target": " ".join(words)}) + "\n")
    return manifest
