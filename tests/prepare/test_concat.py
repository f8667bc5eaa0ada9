"""``slamkit prepare concat``: joined clips hold their inputs' audio in order, with the drawn silences."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from slamkit.cli import main
from slamkit.data.audio import load_audio
from slamkit.data.manifest import read_manifest
from slamkit.prepare.concat import ConcatOptions, parse_join, parse_range, plan_groups

RATE = 16000


def _manifest(folder: Path, count: int, extra_lines: tuple[str, ...] = ()) -> Path:
    """``count`` clips, clip i a constant level (i + 1) / 20 lasting 0.5 + 0.1 i s, then ``extra_lines`` verbatim."""
    lines = []
    for i in range(count):
        wav = folder / "audio" / f"c{i}.wav"
        wav.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(wav), np.full(int((0.5 + 0.1 * i) * RATE), (i + 1) / 20, dtype=np.float32), RATE)
        lines.append(json.dumps({"key": f"c{i}", "source": f"audio/c{i}.wav", "target": f"clip {i}.", "task": "asr"}))
    path = folder / "in.jsonl"
    path.write_text("\n".join([*lines, *extra_lines]) + "\n")
    return path


def test_a_joined_clip_is_its_inputs_in_order_with_the_drawn_silences(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = _manifest(tmp_path, 5)
    assert main(["prepare", "concat", str(manifest), "--out", str(tmp_path / "out"), "--count", "6", "--join", "2-3",
                 "--pause", "0.2,0.6", "--edge", "0,0.3", "--workers", "1", "--seed", "3"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["lines"] == 6 and summary["too_long"] == 0 and summary["skipped"] == 0
    records = read_manifest(tmp_path / "out" / "concat.jsonl")
    assert {len(r.extra["concat"]["keys"]) for r in records} == {2, 3}
    for record in records:
        info = record.extra["concat"]
        keys = info["keys"]
        assert len(set(keys)) == len(keys) and len(info["pauses"]) == len(keys) - 1
        assert all(0.2 <= p <= 0.6 for p in info["pauses"]) and 0 <= info["lead"] <= 0.3 and 0 <= info["tail"] <= 0.3
        assert record.target == " ".join(f"clip {k[1:]}." for k in keys) and record.task == "asr"
        wave = load_audio(record.source, RATE)
        expected = [np.zeros(round(info["lead"] * RATE))]
        for key, gap in zip(keys, [*info["pauses"], info["tail"]]):
            i = int(key[1:])
            expected += [np.full(int((0.5 + 0.1 * i) * RATE), (i + 1) / 20), np.zeros(round(gap * RATE))]
        np.testing.assert_allclose(wave, np.concatenate(expected), atol=1e-4)
        assert record.duration == pytest.approx(len(wave) / RATE, abs=1e-3)
    assert sf.info(records[0].source).subtype == "PCM_16"


def test_inputs_are_used_evenly_and_the_draw_depends_on_the_seed_only(tmp_path: Path) -> None:
    records = read_manifest(_manifest(tmp_path, 6))
    groups = plan_groups(records, 6, ConcatOptions(join=(2, 2)), seed=1)
    uses = [k for g in groups for k in (r.key for r in g.records)]
    assert sorted(uses) == sorted([f"c{i}" for i in range(6)] * 2)  # two full shuffles, no clip used a third time
    assert plan_groups(records, 6, ConcatOptions(join=(2, 2)), seed=1) == groups
    assert plan_groups(records, 6, ConcatOptions(join=(2, 2)), seed=2) != groups


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_bytes_whatever_the_worker_count(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, 4)
    for name, workers in (("one", "1"), ("two", "2")):
        assert main(["prepare", "concat", str(manifest), "--out", str(tmp_path / name), "--workers", workers, "--seed", "5"]) == 0
    one = _tree(tmp_path / "one")
    assert len(one) == 1 + 2 and one == _tree(tmp_path / "two")  # default count: 2 × 4 clips / (2 + 3) → 2 joined


def test_bad_lines_and_unloadable_audio_are_named_and_too_long_joins_dropped(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    broken = tmp_path / "audio" / "broken.wav"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"RIFF0000WAVEnot audio at all")
    manifest = _manifest(tmp_path, 3, ('{"key": "bad json", ', json.dumps({"key": "broken", "source": "audio/broken.wav", "target": "y"})))
    with caplog.at_level(logging.WARNING):
        assert main(["prepare", "concat", str(manifest), "--out", str(tmp_path / "out"), "--count", "8", "--join", "2",
                     "--workers", "1"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert f"{manifest}:4" in caplog.text and f"{manifest}:5" in caplog.text and "broken.wav" in caplog.text
    assert summary["skipped_by_reason"] == {"invalid JSON": 1, "unusable audio": 1} and caplog.text.count("broken.wav:") == 1
    lines = read_manifest(tmp_path / "out" / "concat.jsonl")
    assert summary["unusable"] >= 1 and len(lines) == summary["lines"] == 8 - summary["unusable"]
    assert all("broken" not in r.extra["concat"]["keys"] for r in lines)
    assert main(["prepare", "concat", str(manifest), "--out", str(tmp_path / "short"), "--count", "4", "--join", "2",
                 "--max-seconds", "0.5", "--workers", "1"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["lines"] == 0 and summary["too_long"] + summary["unusable"] == 4 and summary["too_long"] >= 1


@pytest.mark.parametrize(("args", "message"), [
    (["--join", "1"], "--join must be N or MIN-MAX with 2 <= MIN"),
    (["--join", "3-2"], "--join must be N or MIN-MAX with 2 <= MIN"),
    (["--join", "two"], "--join must be N or MIN-MAX (e.g. 2-3), got 'two'"),
    (["--pause", "0.5,0.1"], "--pause must be LOW,HIGH seconds with 0 <= LOW <= HIGH"),
    (["--edge", "a,b"], "--edge must be LOW,HIGH seconds (e.g. 0.1,1.0), got 'a,b'"),
    (["--count", "0"], "--count must be >= 1"),
    (["--max-seconds", "0"], "--max-seconds must be > 0"),
])
def test_bad_options_name_the_option(args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = _manifest(tmp_path, 2)
    assert main(["prepare", "concat", str(manifest), "--out", str(tmp_path / "out"), *args]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "out" / "concat.jsonl").exists()


def test_output_never_overwrites_the_input_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = _manifest(tmp_path, 2)
    before = manifest.read_bytes()
    assert main(["prepare", "concat", str(manifest), "--out", str(tmp_path), "--name", "in"]) == 2
    assert "would overwrite the input" in capsys.readouterr().err and manifest.read_bytes() == before


def test_parsers() -> None:
    assert parse_join("2") == (2, 2) and parse_join("2-4") == (2, 4)
    assert parse_range("0.3", "pause") == (0.3, 0.3) and parse_range("0,1.5", "edge") == (0.0, 1.5)
