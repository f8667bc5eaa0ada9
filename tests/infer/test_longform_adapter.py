"""benchmarks/longform_adapter.py: the long training recordings it joins from short clips."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import soundfile as sf
from conftest import REPO


def _bench():
    spec = importlib.util.spec_from_file_location("longform_adapter", REPO / "benchmarks" / "longform_adapter.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_long_recordings_join_clips_inside_the_window(tmp_path):
    bench = _bench()
    rng = np.random.default_rng(0)
    lines = []
    for i in range(40):
        seconds = float(rng.uniform(1.5, 6.0)) if i != 7 else 31.0  # one clip too long to pair
        sf.write(str(tmp_path / f"c{i}.wav"), np.full(int(seconds * 16_000), 0.01, dtype=np.float32), 16_000)
        lines.append({"key": f"c{i}", "source": f"c{i}.wav", "target": f"words of clip {i}", "duration": round(seconds, 3)})
    manifest = tmp_path / "train.jsonl"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))

    out = bench.make_data(manifest, tmp_path / "made", n_long=5, lo=8.0, hi=20.0, seed=0)
    made = [json.loads(line) for line in out.read_text().splitlines()]
    long = [m for m in made if m["key"].startswith("long-")]
    assert len(long) == 5 and len(made) == 10, "five long recordings and five single clips"
    for rec in long:
        parts = [next(line for line in lines if line["key"] == key) for key in rec["clips"]]
        assert len(parts) >= 2 and rec["duration"] <= 20.0
        assert rec["target"] == " ".join(p["target"] for p in parts)
        pauses = rec["duration"] - sum(p["duration"] for p in parts)
        assert 0.3 * (len(parts) - 1) - 0.01 <= pauses <= 1.0 * (len(parts) - 1) + 0.01
        assert abs(sf.info(rec["source"]).duration - rec["duration"]) < 1e-3
    assert "c7" not in {key for rec in long for key in rec["clips"]}
    singles = {m["key"] for m in made if not m["key"].startswith("long-")}
    assert not singles & {key for rec in long for key in rec["clips"]}, "single clips are not also inside a long one"
    assert bench.make_data(manifest, tmp_path / "made", n_long=5, lo=8.0, hi=20.0, seed=0) == out  # reused
