"""`slamkit memory`: the per-GPU estimate, and the tables in README.md and docs/distributed.md are its output."""

from __future__ import annotations

import re

import pytest

from slamkit.app.memory import ModelSizes, format_markdown, memory_table, per_gpu_gb
from slamkit.config import load_config

from conftest import REPO

RECIPE = "asr_librispeech_whisper_vicuna"
BLOCK = re.compile(r"<!-- BEGIN MEMORY TABLE[^>]*-->\n(.*?)\n<!-- END MEMORY TABLE -->", re.S)


def test_fsdp_divides_weights_and_state_ddp_does_not() -> None:
    sizes = ModelSizes(weight_bytes=8 * 1024**3, trainable=1024**3 // 12, largest_unit_bytes=0, hidden=1024, layers=4)
    one = per_gpu_gb(sizes, 1, "ddp", tokens=1000, activation_checkpointing=False)
    assert one["weights"] == pytest.approx(8.0) and one["training_state"] == pytest.approx(1.0, rel=1e-6)
    assert per_gpu_gb(sizes, 4, "ddp", 1000, False) == one
    four = per_gpu_gb(sizes, 4, "fsdp", 1000, False)
    assert four["weights"] == pytest.approx(2.0) and four["training_state"] == pytest.approx(0.25, rel=1e-6)
    assert four["activations"] == one["activations"] == pytest.approx(34 * 1024 * 1000 * 4 / 1024**3)
    kept = per_gpu_gb(sizes, 1, "ddp", 1000, True)["activations"]
    assert kept == pytest.approx((2 * 1024 * 1000 * 4 + 34 * 1024 * 1000) / 1024**3) and kept < one["activations"]


@pytest.mark.parametrize("doc", ["README.md", "docs/distributed.md"])
def test_the_documented_table_is_the_commands_output(doc: str) -> None:
    cfg = load_config(RECIPE, ["model.encoder.path=null", "model.llm.path=null"])
    expected = format_markdown(memory_table(cfg))
    found = BLOCK.search((REPO / doc).read_text())
    assert found, f"{doc} has no generated memory table block"
    assert found.group(1).strip() == expected.strip(), (
        f"{doc}'s memory table is stale: paste the output of `slamkit memory {RECIPE} --architecture-only`")
