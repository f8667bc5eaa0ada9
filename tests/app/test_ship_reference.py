"""scripts/ship_reference.py: a run's checkpoint becomes a shipped reference folder (float16 weights, checked
meta.json, the log up to the step); ``--after`` counts a run started with ``train.init_from`` on from the folder
it started from."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import REPO
from safetensors.torch import load_file, save_file


def _script(monkeypatch, root: Path):
    spec = importlib.util.spec_from_file_location("ship_reference", REPO / "scripts" / "ship_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "REPO", root)
    return module


def _run(folder: Path, steps: list[int], value: float) -> Path:
    """A run folder: the demo recipe as config, one checkpoint per step, a log line per step."""
    folder.mkdir(parents=True)
    shutil.copy(REPO / "recipes" / "demo_asr_tiny_en.yaml", folder / "config.yaml")
    lines = []
    for step in steps:
        ck = folder / "checkpoints" / f"step_{step:08d}"
        ck.mkdir(parents=True)
        save_file({"projector.w": torch.full((2, 3), value + step, dtype=torch.float32)}, str(ck / "model.safetensors"))
        (ck / "meta.json").write_text(json.dumps({"step": step, "files": {"model.safetensors": {}}}))
        lines += [json.dumps({"step": step, "loss": value}), json.dumps({"step": step, "valid_loss": value})]
    (folder / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def test_ship_writes_float16_weights_checked_meta_and_the_log_up_to_the_step(tmp_path, monkeypatch):
    mod = _script(monkeypatch, tmp_path)
    run = _run(tmp_path / "run", [100, 200], 1.0)
    dest = mod.ship(run, 100, "ref", ["decode.beam_size=4"])
    weights = load_file(str(dest / "checkpoints" / "step_00000100" / "model.safetensors"))
    assert weights["projector.w"].dtype == torch.float16 and float(weights["projector.w"][0, 0]) == 101.0
    meta = json.loads((dest / "checkpoints" / "step_00000100" / "meta.json").read_text())
    data = (dest / "checkpoints" / "step_00000100" / "model.safetensors").read_bytes()
    assert meta["step"] == 100 and "init_from_step" not in meta
    assert meta["files"]["model.safetensors"] == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert [json.loads(line)["step"] for line in (dest / "metrics.jsonl").read_text().splitlines()] == [100, 100]
    assert "beam_size: 4" in (dest / "config.yaml").read_text()


def test_after_counts_steps_on_from_the_folder_it_replaces(tmp_path, monkeypatch):
    mod = _script(monkeypatch, tmp_path)
    first = mod.ship(_run(tmp_path / "old", [300], 1.0), 300, "ref", [])
    new = _run(tmp_path / "new", [40, 80], 2.0)
    dest = mod.ship(new, 80, "ref", [], after=first)  # the folder it started from is the one replaced
    assert [p.name for p in (dest / "checkpoints").iterdir()] == ["step_00000380"]
    meta = json.loads((dest / "checkpoints" / "step_00000380" / "meta.json").read_text())
    assert meta["step"] == 380 and meta["init_from_step"] == 300
    log = [json.loads(line) for line in (dest / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [300, 300, 340, 340, 380, 380]
    assert [r.get("loss", r.get("valid_loss")) for r in log] == [1.0, 1.0, 2.0, 2.0, 2.0, 2.0]
    assert float(load_file(str(dest / "checkpoints" / "step_00000380" / "model.safetensors"))["projector.w"][0, 0]) == 82.0


def test_after_needs_exactly_one_shipped_checkpoint(tmp_path, monkeypatch):
    mod = _script(monkeypatch, tmp_path)
    run = _run(tmp_path / "run", [10, 20], 1.0)
    with pytest.raises(SystemExit, match="expected one checkpoint"):
        mod.ship(run, 10, "ref", [], after=tmp_path / "run")  # a run folder is not a shipped folder: it may hold many
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="found 0"):
        mod.ship(run, 10, "ref", [], after=tmp_path / "empty")
