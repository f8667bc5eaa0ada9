"""`slamkit bench train` end to end on tiny random models (behaviour, not timings)."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO

KEYS = {"audio_s_per_s_original", "audio_s_per_s_slamkit_epoch1", "audio_s_per_s_slamkit_epoch2", "speedup_epoch1", "speedup_epoch2",
        "flop_ratio", "padding_fraction", "matmul_peak_flops", "train_step_flops"}


def test_bench_train_json_compares_both_paths_on_the_same_clips() -> None:
    cmd = [sys.executable, "-m", "slamkit", "bench", "train", "--encoder", "test", "--llm", "tiny", "--steps", "3", "--batch", "2", "--json", "--profile"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert KEYS <= set(result)
    assert result["clips"] == 6 and result["steps_per_epoch"] == 3
    assert all(result[k] > 0 for k in KEYS)
    # the original pads every clip to 30 s and recomputes everything: it does more work, and more of it is padding
    assert result["flop_ratio"] > result["flop_ratio_epoch1"] > 1.0, "a warm feature cache removes the encoder's FLOPs"
    assert result["ideal_speedup_epoch2"] >= result["flop_ratio"] * 0.99 or result["precision_slamkit"] == "fp32"
    assert result["padding_fraction_original"] > result["padding_fraction"] >= 0.0
    assert 0 < result["loss_first_batch_original"] < 20 and 0 < result["loss_first_batch_slamkit"] < 20
    assert result["precision_original"] == "fp32" and result["precision_slamkit"] in ("fp32", "bf16")
    top = result["profile_top"]
    assert top and all(p["self_ms"] > 0 for p in top) and sum(p["share"] for p in top) <= 1.0001


def test_bench_train_table() -> None:
    from slamkit.app.bench_train import format_train

    row = {"encoder": "tiny.en", "llm": "smollm2-135m", "mix": "librispeech", "clips": 8, "audio_seconds_per_epoch": 96.0, "batch_size": 4,
           "device": "cpu", "date": "2026-12-06", "precision_original": "fp32", "precision_slamkit": "bf16", "audio_s_per_s_original": 10.0,
           "audio_s_per_s_slamkit_epoch1": 25.0, "audio_s_per_s_slamkit_epoch2": 40.0, "speedup_epoch1": 2.5, "speedup_epoch2": 4.0,
           "peak_memory_mb_original": 900, "peak_memory_mb_slamkit": 700, "flop_ratio": 5.0, "flop_ratio_epoch1": 3.0,
           "padding_fraction": 0.05, "ideal_speedup_epoch1": 3.0, "ideal_speedup_epoch2": 5.0, "padding_fraction_original": 0.6, "train_step_flops_per_s": 2e10, "train_step_peak_fraction": 0.1,
           "matmul_peak_flops": 2e11, "loss_first_batch_original": 3.1, "loss_first_batch_slamkit": 3.0}
    table = format_train(row)
    assert "| slamkit, epoch 2 (warm cache) | bf16 | 40.0 | 4.00x | 700 |" in table
    assert "measured / ideal: 83% and 80%" in table and "padding: 5.0%" in table and "ideal speed-up is 3.0x and 5.0x" in table
