"""benchmarks/demo_ablation.py: rows read from demo reports, reused, and put in one table."""

from __future__ import annotations

import importlib.util
import json

import pytest
from conftest import REPO


def _bench():
    spec = importlib.util.spec_from_file_location("demo_ablation", REPO / "benchmarks" / "demo_ablation.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def _report(path, wer, steps):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"wer": wer, "wer_by_step": [{"step": 10, "wer": 1.0}, {"step": steps, "wer": 0.5}],
                                "timings": {"data": 12.0}, "train_seconds": 1800.0,
                                "details": {"ours": {"asterisk": {"substitutions": 7, "deletions": 2, "insertions": 3}}}}))
    return path


def test_rows_come_from_reports_without_rerunning(tmp_path, monkeypatch, capsys):
    bench = _bench()
    monkeypatch.setattr(bench.subprocess, "run", lambda *a, **k: pytest.fail("a row with a report is not rerun"))
    _report(tmp_path / "abl" / "no-augment" / "report.json", {"synthetic": 0.5, "asterisk": 0.6, "librivox": 0.4}, 4046)
    given = _report(tmp_path / "demo" / "report.json", {"synthetic": 0.568, "asterisk": 0.535, "librivox": 0.465}, 4046)
    assert bench.main(["--out", str(tmp_path / "abl"), "--rows", "all,no-augment", "--report", f"all={given}"]) == 0
    out = capsys.readouterr().out
    assert "| all | nothing: the demo's defaults | 4046 | 56.8 % | 53.5 % | 46.5 % | 7 / 2 / 3 |" in out
    assert "| no-augment |" in out and "60.0 %" in out
    saved = json.loads((tmp_path / "abl" / "ablation.json").read_text())
    assert [r["row"] for r in saved] == ["all", "no-augment"] and saved[1]["steps"] == 4046


def test_a_missing_row_runs_the_demo_with_its_flags(tmp_path, monkeypatch):
    bench = _bench()
    calls = []

    def fake_run(cmd, check):
        calls.append(cmd)
        _report(tmp_path / "no-augment" / "report.json", {"synthetic": 0.5, "asterisk": 0.6, "librivox": 0.4}, 100)

    monkeypatch.setattr(bench.subprocess, "run", fake_run)
    bench.run_row("no-augment", tmp_path, ["--minutes", "1"])
    assert calls[0][3:] == ["demo", "--out", str(tmp_path / "no-augment"), "--no-whisper", "--no-reference",
                            "--augment", "", "--minutes", "1"]
    monkeypatch.setattr(bench, "run_row", lambda name, out, extra: calls.append(extra) or (tmp_path / "no-augment" / "report.json"))
    assert bench.main(["--out", str(tmp_path), "--rows", "no-augment", "--minutes", "1"]) == 0
    assert calls[-1] == ["--minutes", "1"], "unknown options go to slamkit demo"
    with pytest.raises(SystemExit, match="unknown row"):
        bench.main(["--out", str(tmp_path), "--rows", "bogus"])
