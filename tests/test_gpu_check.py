"""benchmarks/gpu_check.py --dry-run: the GPU check's whole path (torchrun, DDP with one rank, bf16,
activation checkpointing, measurement, decode equality) at tiny sizes on the CPU, so it never rots."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import REPO


def test_gpu_check_dry_run(tmp_path) -> None:
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--dry-run", "--out", str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["device"] == "cpu" and result["steps"] == 3 and result["ddp_world_size"] == 1
    assert result["audio_s_per_s"] > 0 and result["tokens_per_s"] > 0 and 0 < result["mfu"] < 1
    assert result["batch_decode_equals_batch_1"] is True
    assert "joined the gloo process group" in done.stderr, "the check trains under DDP (one rank)"
    assert "activation checkpointing" in done.stderr
