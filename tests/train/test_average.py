"""`slamkit average`: the mean of several checkpoints' trainable weights, as a checkpoint decode takes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from conftest import tiny_config
from safetensors.torch import load_file, save_file

from slamkit.cli import main
from slamkit.train.average import average_checkpoints, average_run
from slamkit.train.checkpoint import check_checkpoint


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
    assert average_run(fake_run, steps=[200, 400]).path.name == "steps_200-400_step_00000400"  # not the same as 100, 400
    assert sorted(p.name for p in fake_run.iterdir()) == ["averaged", "checkpoints", "mine"]  # no staging folder left


def test_best_takes_the_newer_of_equal_losses_and_skips_non_finite_ones(tmp_path):
    run = tmp_path / "run"
    for step, loss in zip((1, 2, 3, 4), (1.0, float("nan"), 1.0, 2.0), strict=True):
        _fake_ckpt(run, step, {"w": torch.full((1,), float(step))}, loss)
    assert average_run(run, best=1).steps == [3]
    assert average_run(run, best=3).steps == [1, 3, 4]
    with pytest.raises(ValueError, match=r"--best 4: .* has 3 checkpoint\(s\) with a finite validation loss; 1 have one that is not finite; use --last"):
        average_run(run, best=4)


def test_the_mean_is_taken_in_float64_and_stored_in_each_tensors_dtype(tmp_path):
    # in bfloat16, 256 + 1 + 1 + 1 rounds back to 256 at every step; the float64 mean of 256, 1, 1, 1 is 64.75 -> 64.5 or 65
    run = tmp_path / "run"
    for step, value in zip((1, 2, 3, 4), (256.0, 1.0, 1.0, 1.0), strict=True):
        _fake_ckpt(run, step, {"w": torch.full((2,), value, dtype=torch.bfloat16), "n": torch.full((1,), step)})
    w = load_file(str(average_run(run, last=4).path / "model.safetensors"))
    assert w["w"].dtype == torch.bfloat16 and w["w"][0].item() == torch.tensor(64.75).to(torch.bfloat16).item()
    assert w["n"].tolist() == [4]  # integer tensors: the newest checkpoint's


@pytest.mark.parametrize("args, message", [
    (["--last", "5"], "--last 5: {run} has 4 checkpoint(s)"),
    (["--last", "0"], "--last must be at least 1, got 0"),
    (["--steps", "100", "150"], "--steps: {run} has no checkpoint at step 150 (it has 100, 200, 300, 400)"),
    (["--steps", "100", "100"], "--steps: a step is given twice (100 100)"),
    (["--best", "0"], "--best must be at least 1, got 0"),
    (["--out", "{run}/checkpoints/avg", "--last", "2"],
     "--out {run}/checkpoints/avg: inside the run's checkpoints/, where it would pass for a training checkpoint; choose a folder outside it"),
])
def test_a_bad_choice_is_refused_in_one_line(fake_run, capsys, args, message):
    assert main(["average", str(fake_run), *[a.format(run=fake_run) for a in args]]) == 2
    err = capsys.readouterr().err
    assert err == f"slamkit average: error: {message.format(run=fake_run)}\n"
    assert not (fake_run / "averaged").exists() and not (fake_run / "checkpoints" / "avg").exists()


def test_a_missing_run_and_a_failed_write_are_one_line_and_leave_nothing(fake_run, tmp_path, capsys, monkeypatch):
    assert main(["average", str(tmp_path / "typo"), "--last", "1"]) == 2
    assert capsys.readouterr().err == f"slamkit average: error: {tmp_path / 'typo'}: no such run directory\n"

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("slamkit.train.average.save_file", full_disk)
    assert main(["average", str(fake_run), "--last", "2", "--out", str(tmp_path / "new" / "avg")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"slamkit average: error: cannot write {tmp_path / 'new' / 'avg'}: ") and err.count("\n") == 1
    assert "nothing was written" in err and not (tmp_path / "new").exists()


def test_damaged_unscored_mismatched_and_existing_are_refused_by_name(fake_run, tmp_path):
    ckpt = fake_run / "checkpoints" / "step_00000300"
    (ckpt / "model.safetensors").write_bytes((ckpt / "model.safetensors").read_bytes()[:-8])
    with pytest.raises(ValueError, match=r"step_00000300: model.safetensors is truncated .*leave it out \(--steps\)"):
        average_run(fake_run, last=2)
    assert average_run(fake_run, steps=[200, 400]).steps == [200, 400]  # the others still average

    unscored = tmp_path / "unscored"
    _fake_ckpt(unscored, 10, {"w": torch.ones(2)})
    with pytest.raises(ValueError, match=r"--best 1: .* has 0 checkpoint\(s\) with a finite validation loss; 1 have none \(set data.valid when training\); use"):
        average_run(unscored, best=1)

    other = _fake_ckpt(tmp_path / "other", 10, {"w": torch.ones(2)})
    with pytest.raises(ValueError, match=r"holds other tensors than .*step_00000100 \(lora.b, proj.w, w\)"):
        average_checkpoints([fake_run / "checkpoints" / "step_00000100", other])
    wide = _fake_ckpt(tmp_path / "wide", 10, {"proj.w": torch.ones(3, 3), "lora.b": torch.ones(4, dtype=torch.bfloat16)})
    with pytest.raises(ValueError, match=r"proj.w is \(3, 3\) torch.float32, in .* \(2, 3\) torch.float32"):
        average_checkpoints([fake_run / "checkpoints" / "step_00000100", wide])
    half = _fake_ckpt(tmp_path / "half", 10, {"proj.w": torch.ones(2, 3, dtype=torch.float16), "lora.b": torch.ones(4, dtype=torch.bfloat16)})
    with pytest.raises(ValueError, match=r"proj.w is \(2, 3\) torch.float16, in .* \(2, 3\) torch.float32"):
        average_checkpoints([fake_run / "checkpoints" / "step_00000100", half])

    kept = average_run(fake_run, steps=[100, 200]).path
    before = (kept / "model.safetensors").read_bytes()
    with pytest.raises(FileExistsError, match="exists already"):
        average_run(fake_run, steps=[100, 200])
    assert (kept / "model.safetensors").read_bytes() == before


def test_an_averaged_checkpoint_of_a_trained_run_is_their_mean_and_decodes(tmp_path, tone_corpus):
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
    assert all(any(not torch.equal(mean[k], p[k]) for k in mean) for p in parts)
    hyps = tmp_path / "hyp.jsonl"
    n = decode(run, tone_corpus["valid"], hyps, [f"decode.checkpoint={done.path}"])
    lines = [json.loads(line) for line in hyps.read_text().splitlines()]
    assert n == len(lines) > 0 and all("hyp" in line and "error" not in line for line in lines)
