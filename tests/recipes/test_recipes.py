"""Every recipe is a valid config, and instantiates at its real size (meta device: no memory)."""

from __future__ import annotations


import pytest
import torch

from slamkit.config import load_config
from slamkit.models.speech_llm import build_model, parameter_report

from conftest import REPO

RECIPES = sorted((REPO / "recipes").glob("*.yaml"))
# Pretrained paths point at files users bring; tests build the same architecture from `preset`.
ARCHITECTURE_ONLY = ["model.encoder.path=null", "model.llm.path=null"]


def test_recipes_exist():
    names = {p.name for p in RECIPES}
    assert "tiny_asr.yaml" in names
    assert len([n for n in names if n.startswith("asr_librispeech_")]) >= 2


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_recipe_is_valid_and_instantiates(recipe):
    cfg = load_config(recipe, ARCHITECTURE_ONLY)
    assert "Run:" in recipe.read_text(), "each recipe names the command that runs it"
    with torch.device("meta"):
        model = build_model(cfg)
    report = parameter_report(model)
    assert report["total"][0] > 0, "something must train"
    low = [n for n, p in model.named_parameters() if p.requires_grad and p.dtype != torch.float32]
    assert not low, f"trainable weights must stay fp32 under the recipe's dtypes ({cfg.model.llm.dtype} LLM): {low[:3]}"
    if recipe.stem.startswith("asr_librispeech_"):
        assert report["llm"][1] > 6.7e9, "Vicuna-7B at its real size"
        d_enc = model.encoder.hidden_size
        k, hidden = cfg.model.projector.k, cfg.model.projector.hidden
        assert report["projector"][1] == k * d_enc * hidden + hidden + hidden * 4096 + 4096


def test_paper_projector_sizes_match_slam_asr():
    """SLAM-ASR's linear projectors: 21.50 M for HuBERT-XL, 18.88 M for WavLM-L (its published sizes)."""
    sizes = {}
    for name in ("hubert", "wavlm"):
        cfg = load_config(next(p for p in RECIPES if p.stem.startswith("asr_librispeech_") and name in p.stem), ARCHITECTURE_ONLY)
        with torch.device("meta"):
            sizes[name] = parameter_report(build_model(cfg))["projector"][1]
    assert round(sizes["hubert"] / 1e6, 2) == 21.50
    assert round(sizes["wavlm"] / 1e6, 2) == 18.88
