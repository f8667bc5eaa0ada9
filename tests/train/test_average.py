"""`slamkit average`: the mean of several checkpoints' trainable weights, as a checkpoint decode takes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from slamkit.cli import main
from slamkit.train.average import average_checkpoints, average_run
from slamkit.train.checkpoint import check_checkpoint
from conftest import tiny_config


def _fake_ckpt(run: Path, step: int, weights: dict[str, torch.Tensor], valid_loss: float | None = None) -> Path:
    """A checkpoint written as training writes one (weights + meta.json with size and sha256)."""
    ckpt = run / "checkpoints" / f"step_{step:08d}"
    ckpt.mkdir(parents=True)
    save_file(weights, str(ckpt / "model.safetensors"))
    data = (ckpt / "model.safetensors").read_bytes()
    meta = {"step": step, "valid_loss": valid_loss,
            "files": {"model.safetensors": {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}}}
    (ckpt / "meta.json").write_text(json.dumps(meta))
    return ckpt


@pytest.fixture
def fake_run(tmp_path: Path) -> Path:
    """Four checkpoints: w = step / 100 (float32 and bfloat16 tensors), validation losses 3, 1, 2, 4."""
    run = tmp_path / "run"
    for step, loss in zip((100, 200, 300, 400), (3.0, 1.0, 2.0, 4.0), strict=True):
        _fake_ckpt(run, step, {"proj.w": torch.full((2, 3), step / 100), "lora.b": torch.full((4,), step / 100, dtype=torch.bfloat16)}, loss)
    return run


def test_last_best_and_steps_choose_the_checkpoints_and_write_their_mean(fake_run, capsys):
    assert main(["average", str(fake_run), "--last", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["steps"] == [300, 400] and out["out"].endswith("averaged/last2_step_00000400")
    w = load_file(str(Path(out["out"]) / "model.safetensors"))
    assert torch.equal(w["proj.w"], torch.full((2, 3), 3.5)) and w["lora.b"].dtype == torch.bfloat16
    assert torch.equal(w["lora.b"], torch.full((4,), 3.5, dtype=torch.bfloat16))
    meta = json.loads((Path(out["out"]) / "meta.json").read_text())
    assert [m["step"] for m in meta["averaged_from"]] == [300, 400] and check_checkpoint(out["out"]) is None

    best = average_run(fake_run, best=2)  # losses 1 (step 200) and 2 (step 300)
    assert best.steps == [200, 300] and best.path.name == "best2_step_00000300"
    assert torch.allclose(load_file(str(best.path / "model.safetensors"))["proj.w"], torch.full((2, 3), 2.5))
    chosen = average_run(fake_run, steps=[400, 100], out=fake_run / "mine")
    assert chosen.steps == [100, 400] and chosen.path == fake_run / "mine"
    assert torch.allclose(load_file(str(chosen.path / "model.safetensors"))["proj.w"], torch.full((2, 3), 2.5))
    # the averaged folders are not checkpoints of the run: --last still counts the four
    assert average_run(fake_run, last=4).steps == [100, 200, 300, 400]


@pytest.mark.parametrize("args, message", [
    (["--last", "5"], "--last 5: {run} has 4 checkpoint(s)"),
    (["--last", "0"], "--last must be at least 1, got 0"),
    (["--steps", "100", "150"], "--steps: {run} has no checkpoint at step 150 (it has 100, 200, 300, 400)"),
    (["--steps", "100", "100"], "--steps: a step is given twice (100 100)"),
])
def test_a_bad_choice_is_refused_in_one_line(fake_run, capsys, args, message):
    assert main(["average", str(fake_run), *args]) == 2
    err = capsys.readouterr().err
    assert err == f"slamkit average: error: {message.format(run=fake_run)}\n"
    assert not (fake_run / "averaged").exists()


def test_damaged_unscored_mismatched_and_existing_are_refused_by_name(fake_run, tmp_path):
    ckpt = fake_run / "checkpoints" / "step_00000300"
    (ckpt / "model.safetensors").write_bytes((ckpt / "model.safetensors").read_bytes()[:-8])
    with pytest.raises(ValueError, match=r"step_00000300: model.safetensors is truncated .*leave it out \(--steps\)"):
        average_run(fake_run, last=2)
    assert average_run(fake_run, steps=[200, 400]).steps == [200, 400]  # the others still average

    unscored = tmp_path / "unscored"
    _fake_ckpt(unscored, 10, {"w": torch.ones(2)})
    with pytest.raises(ValueError, match="--best 1: .* has 0 checkpoint.* with a validation loss"):
        average_run(unscored, best=1)

    other = _fake_ckpt(tmp_path / "other", 10, {"w": torch.ones(2)})
    with pytest.raises(ValueError, match=r"holds other tensors than .*step_00000100 \(lora.b, proj.w, w\)"):
        average_checkpoints([fake_run / "checkpoints" / "step_00000100", other])
    wide = _fake_ckpt(tmp_path / "wide", 10, {"proj.w": torch.ones(3, 3), "lora.b": torch.ones(4, dtype=torch.bfloat16)})
    with pytest.raises(ValueError, match=r"proj.w has shape \(3, 3\), .* has \(2, 3\)"):
        average_checkpoints([fake_run / "checkpoints" / "step_00000100", wide])

    kept = average_run(fake_run, steps=[100, 200]).path
    before = (kept / "model.safetensors").read_bytes()
    with pytest.raises(FileExistsError, match="exists already"):
        average_run(fake_run, steps=[100, 200])
    assert (kept / "model.safetensors").read_bytes() == before


def test_an_averaged_checkpoint_decodes_and_differs_from_each_of_its_parts(tmp_path, tone_corpus):
    from slamkit.infer.decode import decode
    from slamkit.train.loop import train

    run = tmp_path / "run"
    train(tiny_config(run, tone_corpus, "train.max_steps=30", "train.warmup_steps=5", "train.save_every=10",
                      "train.valid_every=10", "train.log_every=10", "train.keep_last=5"))
    done = average_run(run, last=3)
    assert done.steps == [10, 20, 30]
    parts = [load_file(str(run / "checkpoints" / f"step_{s:08d}" / "model.safetensors")) for s in done.steps]
    mean = load_file(str(done.path / "model.safetensors"))
    assert mean.keys() == parts[0].keys()
    for k, v in mean.items():
        assert torch.allclose(v, sum(p[k] for p in parts) / 3, atol=1e-6)
    assert any(not torch.equal(mean[k], parts[-1][k]) for k in mean)
    hyps = tmp_path / "hyp.jsonl"
    n = decode(run, tone_corpus["valid"], hyps, [f"decode.checkpoint={done.path}"])
    lines = [json.loads(line) for line in hyps.read_text().splitlines()]
    assert n == len(lines) > 0 and all("hyp" in line and "error" not in line for line in lines)
