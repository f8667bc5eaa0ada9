"""`slamkit bench serve` end to end on the tiny run: both modes measured at each level, same answers."""

from __future__ import annotations

import json
import sys
import subprocess
from pathlib import Path

from conftest import REPO


def test_bench_serve_compares_batched_with_one_at_a_time(tiny_run, tone_corpus, tmp_path) -> None:
    out = tmp_path / "bench.json"
    cmd = [sys.executable, "-m", "slamkit", "bench", "serve", "--run", str(tiny_run), "--manifest", str(tone_corpus["valid"]),
           "--clients", "1", "4", "--requests", "8", "--out", str(out)]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert [(r["mode"], r["clients"], r["requests"]) for r in result["rows"]] == [
        ("one at a time", 1, 8), ("one at a time", 4, 8), ("batched", 1, 8), ("batched", 4, 8)]
    assert all(r["req_per_s"] > 0 and 0 < r["p50_s"] <= r["p95_s"] for r in result["rows"])
    assert set(result["throughput_ratio"]) == {"1", "4"} and result["mismatches"] == []
    assert "batched / one-at-a-time throughput" in done.stdout
    assert not list(Path(tmp_path).glob("*.wav")), "nothing written beside the caller's files"
