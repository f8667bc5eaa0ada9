"""Shared fixtures: a tiny tone-speech corpus and tiny configs (offline, CPU, seconds)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

# Tiny models run fastest single-threaded; more threads only contend on a small CI machine.
torch.set_num_threads(1)

from slamkit.config import Config, load_config  # noqa: E402
from slamkit.data.synthetic import make_tone_corpus  # noqa: E402

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
