"""`slamkit bench decode --quick` on real recorded speech with the shipped adapter (behaviour, not timings)."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO


def test_bench_decode_quick_json() -> None:
    done = subprocess.run([sys.executable, "-m", "slamkit", "bench", "decode", "--quick", "--json"], cwd=REPO, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    for key in ("rtfx_original", "rtfx_slamkit", "rtfx_faster_whisper"):
        assert result[key] > 0, key
    for key in ("wer_original", "wer_slamkit", "wer_faster_whisper"):
        assert 0.0 <= result[key] < 2.0, key
    assert result["clips"] == 15 and result["audio_seconds"] > 30, "5 LibriVox clips + 10 Asterisk prompts"
    assert result["wer_faster_whisper"] < 0.3, "Whisper's own decoder on real speech: the set and the scoring are sane"
    assert result["wer_one_at_a_time"] == result["wer_slamkit_fp32"], "batched greedy decoding gives the texts of batch size 1"
