"""Shared fixtures: a tiny tone-speech corpus and tiny configs (offline, CPU, seconds)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

# Tiny models run fastest single-threaded; more threads only contend on a small CI machine.
torch.set_num_threads(1)

from slamkit.config import Config, load_config  # noqa: E402
from slamkit.prepare.tones import make_tone_corpus  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TINY_RECIPE = REPO / "recipes" / "tiny_asr.yaml"


@pytest.fixture(scope="session")
def tone_corpus(tmp_path_factory) -> dict[str, Path]:
    """A small train / valid split of synthetic tone speech."""
    root = tmp_path_factory.mktemp("tones")
    return {
        "train": make_tone_corpus(root, 24, seed=1, name="train"),
        "valid": make_tone_corpus(root, 6, seed=2, name="valid"),
    }


def tiny_config(out_dir: Path, corpus: dict[str, Path], *overrides: str) -> Config:
    """The tiny recipe pointed at ``corpus``, writing into ``out_dir``, quiet logging."""
    base = [f"train.output_dir={out_dir}", f"data.train={corpus['train']}", f"data.valid={corpus['valid']}", "train.tensorboard=false"]
    return load_config(TINY_RECIPE, base + list(overrides))


def write_wav(path: Path, seconds: float, rate: int, fmt: str | None = None) -> Path:
    """A 220 Hz sine of ``seconds`` at ``rate`` (``fmt``: soundfile format, e.g. "FLAC")."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    sf.write(str(path), (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), rate, format=fmt)
    return path


def fake_librispeech(root: Path) -> Path:
    """LibriSpeech/{dev-clean/84/121123, test-clean/1089/134686}: 2 + 1 utterances."""
    chapters = {("dev-clean", "84", "121123"): ["GO DO YOU HEAR", "BUT IN LESS THAN FIVE MINUTES"],
                ("test-clean", "1089", "134686"): ["HE HOPED THERE WOULD BE STEW FOR DINNER"]}
    for (subset, spk, chap), texts in chapters.items():
        folder = root / "LibriSpeech" / subset / spk / chap
        lines = []
        for i, text in enumerate(texts):
            utt = f"{spk}-{chap}-{i:04d}"
            write_wav(folder / f"{utt}.flac", 0.5 + i, 16000, fmt="FLAC")
            lines.append(f"{utt} {text}\n")
        (folder / f"{spk}-{chap}.trans.txt").write_text("".join(lines))
    return root / "LibriSpeech"
