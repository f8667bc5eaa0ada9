"""`slamkit serve reference` as a real process: the shipped adapter (real Whisper tiny.en + SmolLM2 weights)
on real recorded speech, a short clip and a long one split into segments, each equal to `slamkit decode`."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import openai
import pytest
import soundfile as sf

from slamkit.assets import resolve_path
from slamkit.infer.decode import decode
from slamkit.infer.reference import reference_run_dir

from conftest import REPO

GREEDY = "decode.beam_size=1"  # the adapter's beam 4 would triple the time; both sides decode alike


@pytest.fixture(scope="module")
def librivox() -> list[Path]:
    """The 5 LibriVox clips of the pocketsphinx-testdata asset (fails with the install command when absent)."""
    folder = Path(resolve_path("asset:pocketsphinx-testdata/usr")) / "share/pocketsphinx/test/data/librivox"
    clips = sorted(folder.glob("*.wav"))
    assert len(clips) == 5, f"{folder}: expected the 5 LibriVox clips"
    return clips


@pytest.fixture(scope="module")
def served():
    """`python -m slamkit serve reference --port 0 --api-key K`: its URL once it listens; interrupted at the end."""
    cmd = [sys.executable, "-m", "slamkit", "serve", "reference", "--port", "0", "--api-key", "k", GREEDY]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line, f"the server exited before listening:\n{proc.stderr.read()[-3000:]}"
        yield json.loads(line)["url"]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            assert proc.wait(30) == 0, proc.stderr.read()[-2000:]
        finally:
            proc.kill()


def _offline(clips: list[Path], tmp_path: Path) -> dict[str, dict]:
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps({"key": c.name, "source": str(c), "target": ""}) + "\n" for c in clips))
    decode(reference_run_dir(), manifest, tmp_path / "hyp.jsonl", [GREEDY])
    return {r["key"]: r for r in map(json.loads, (tmp_path / "hyp.jsonl").read_text().splitlines())}


def test_reference_adapter_serves_short_and_long_recordings_as_slamkit_decode_does(served, librivox, tmp_path) -> None:
    audio = [sf.read(str(c), dtype="float32")[0] for c in librivox]
    pause = np.zeros(16000, dtype=np.float32)
    long_clip = tmp_path / "long.wav"
    sf.write(str(long_clip), np.concatenate([x for a in audio for x in (a, pause)]), 16000)
    offline = _offline([librivox[0], long_clip], tmp_path)

    client = openai.OpenAI(base_url=served + "/v1", api_key="k", max_retries=0, timeout=300)
    [model] = [m.id for m in client.models.list().data]
    assert model == "slamkit-reference"
    short = client.audio.transcriptions.create(model=model, file=librivox[0].open("rb"))
    assert short.text and short.text == offline[librivox[0].name]["hyp"]

    verbose = client.audio.transcriptions.create(model=model, file=long_clip.open("rb"), response_format="verbose_json",
                                                 timestamp_granularities=["segment"])
    segments = [(s.start, s.end, s.text) for s in verbose.segments]
    assert verbose.duration == pytest.approx(sum(len(a) + 16000 for a in audio) / 16000, abs=0.01)
    assert len(segments) >= verbose.duration / 30, "a clip past the 30 s window is split, not cut"
    assert all(0 <= start < end <= verbose.duration and end - start <= 30.0 for start, end, _ in segments)
    assert all(a[1] <= b[0] for a, b in zip(segments, segments[1:])), "segments in order, not overlapping"
    assert segments[-1][1] > verbose.duration - 10, "the last recording is transcribed"
    line = offline["long.wav"]
    assert verbose.text == line["hyp"]
    assert [(s["start"], s["end"], s["text"]) for s in line.get("segments", [])] == [(pytest.approx(a, abs=1e-3), pytest.approx(b, abs=1e-3), t)
                                                                             for a, b, t in segments]
