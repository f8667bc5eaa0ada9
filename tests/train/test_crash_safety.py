"""Crash safety (issue 15 point 4): SIGKILL at random moments, damaged checkpoints, a disk that refuses a write.

Every test ends on the same check: the trainable weights a run ends with are bitwise those of an
uninterrupted run. Nothing in the product has a hook for these tests: the kills and write failures come
from a wrapper process (``python -c``) that replaces a library function before calling slamkit's CLI.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from slamkit.train import checkpoint as ckpt
from slamkit.train.log import read_metrics
from slamkit.train.loop import train

from conftest import TINY_RECIPE, tiny_config

# ---- SIGKILL at five moments drawn from a seeded generator -------------------------------------------------

KILL_STEPS, KILL_SAVE_EVERY = 60, 4
KILL_ARGS = (f"train.max_steps={KILL_STEPS}", f"train.save_every={KILL_SAVE_EVERY}", "train.keep_last=1", "train.log_every=1",
             "train.valid_every=0", "train.warmup_steps=4", "train.tensorboard=false", "data.batch_size=4",
             "model.lora.dropout=0.1", "model.projector.dropout=0.1")

# The trainer, run as `python -c CHILD KIND STEP ARGS…`: KIND names where it SIGKILLs itself (none: the test kills it).
CHILD = r"""
import io, os, shutil, signal, sys
from pathlib import Path
import torch
from safetensors.torch import save as to_bytes
from slamkit.train import checkpoint as ckpt
from slamkit.cli import main

kind, step = sys.argv[1], int(sys.argv[2])
tag = f"step_{step:08d}"
def die():
    os.kill(os.getpid(), signal.SIGKILL)

if kind == "weights":  # halfway through model.safetensors of checkpoint `step`
    real_save_file = ckpt.save_file
    def save_file(tensors, path):
        if tag in str(path):
            data = to_bytes(tensors)
            with open(path, "wb") as f:
                f.write(data[: len(data) // 2])
            die()
        real_save_file(tensors, path)
    ckpt.save_file = save_file
elif kind == "state":  # halfway through state.pt of checkpoint `step`
    real_save = torch.save
    def save(obj, f, *args, **kwargs):
        if tag in str(getattr(f, "name", f)):
            buffer = io.BytesIO()
            real_save(obj, buffer, *args, **kwargs)
            f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
            f.flush()
            die()
        return real_save(obj, f, *args, **kwargs)
    torch.save = save
elif kind == "prune":  # midway through deleting an old checkpoint (the first this process prunes)
    real_rmtree = shutil.rmtree
    def rmtree(path, *args, **kwargs):
        if Path(path).name.startswith(".old_step_") and Path(path).is_dir():
            (Path(path) / "model.safetensors").unlink()
            die()
        return real_rmtree(path, *args, **kwargs)
    shutil.rmtree = rmtree
sys.exit(main(["train", *sys.argv[3:]]))
"""


def _logged_steps(run: Path) -> list[int]:
    """The steps metrics.jsonl holds so far (a line still being written is not read)."""
    path = run / "metrics.jsonl"
    if not path.is_file():
        return []
    steps = []
    for line in path.read_text().split("\n")[:-1]:  # complete lines only
        steps.append(json.loads(line)["step"])
    return steps


def _start(kind: str, step: int, run: Path, corpus: Path, log: Path) -> subprocess.Popen:
    """`slamkit train … train.resume=true` (a fresh start when nothing was saved yet), dying as ``kind`` says."""
    args = [str(TINY_RECIPE), f"data.train={corpus}", f"train.output_dir={run}", *KILL_ARGS, "train.resume=true"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-c", CHILD, kind, str(step), *args], env=env, stdout=out, stderr=out)


def _kill_after_progress(proc: subprocess.Popen, run: Path, target: int, delay: float) -> None:
    """SIGKILL ``proc`` ``delay`` seconds after metrics.jsonl logs step ``target``."""
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and max(_logged_steps(run), default=0) < target:
        time.sleep(0.002)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)


def _plan(rng: random.Random, resumed_at: int, logged_to: int) -> tuple[int, int, float]:
    """For one kill: the checkpoint a kill inside the trainer aims at (the next or the one after), and for a kill
    from outside the step to wait for in metrics.jsonl (past what the killed run had logged: the resumed run
    truncates the file first) and the delay after it."""
    next_save = (resumed_at // KILL_SAVE_EVERY + 1) * KILL_SAVE_EVERY
    aim = min(next_save + KILL_SAVE_EVERY * rng.randint(0, 1), KILL_STEPS)
    return aim, max(resumed_at, logged_to) + rng.randint(1, 8), rng.uniform(0.0, 0.05)


def _check_metrics(run: Path) -> int:
    """metrics.jsonl is whole JSON lines, steps 1, 2, … in order; returns the last step."""
    text = (run / "metrics.jsonl").read_text() if (run / "metrics.jsonl").is_file() else ""
    assert not text or text.endswith("\n"), "no half-written line"
    steps = [json.loads(line)["step"] for line in text.splitlines()]
    assert steps == list(range(1, len(steps) + 1)), steps
    return len(steps)


def _assert_same_files(got: Path, expected: Path, events: list) -> None:
    """Byte-equal model.safetensors; on a mismatch, which tensors differ and by how much (never a diff of the bytes)."""
    a, b = load_file(str(got / "model.safetensors")), load_file(str(expected / "model.safetensors"))
    differ = {k: float((a[k].double() - b[k].double()).abs().max()) for k in b if k not in a or not torch.equal(a[k], b[k])}
    assert not differ, f"{len(differ)} of {len(b)} tensors differ (max |diff|): {dict(list(differ.items())[:4])}; kills: {events}"
    same = (got / "model.safetensors").read_bytes() == (expected / "model.safetensors").read_bytes()
    assert same, "equal tensors but different file bytes"


def test_sigkill_at_five_random_moments_then_resume_is_bitwise_exact(tmp_path, tone_corpus):
    """Five SIGKILLs — two at random times, one halfway through a checkpoint's weights, one halfway through
    its state.pt, one in the middle of deleting an old checkpoint — each followed by train.resume=true:
    the final weights file is byte for byte the uninterrupted run's, and metrics.jsonl reads as one run."""
    reference = tmp_path / "reference"  # run the way the killed runs are (a child process, one thread): same arithmetic
    uninterrupted = _start("none", 0, reference, tone_corpus["train"], tmp_path / "reference.log")
    assert uninterrupted.wait(timeout=300) == 0, (tmp_path / "reference.log").read_text()[-3000:]
    rng = random.Random(20261215)
    kinds = ["none", "none", "weights", "state", "prune"]
    rng.shuffle(kinds)
    run, log = tmp_path / "killed", tmp_path / "child.log"
    events, logged_to, started = [], 0, time.perf_counter()
    for kind in kinds:
        latest = ckpt.intact_checkpoint(run)
        resumed_at = latest.step if latest else 0
        aim, target, delay = _plan(rng, resumed_at, logged_to)
        proc = _start(kind, aim, run, tone_corpus["train"], log)
        if kind == "none":
            _kill_after_progress(proc, run, target, delay)
        proc.wait(timeout=120)
        assert proc.returncode == -signal.SIGKILL, (kind, proc.returncode, log.read_text()[-3000:])
        logged_to = _check_metrics(run)
        staging = sorted(p.name for p in (run / "checkpoints").glob(".*_step_*")) if (run / "checkpoints").is_dir() else []
        events.append({"kill": kind if kind != "none" else f"from outside, {delay * 1000:.0f} ms after step {target}",
                       "resumed_at": resumed_at, "aim": aim if kind != "none" else None, "logged_to": logged_to,
                       "left_over": staging, "intact_after": getattr(ckpt.intact_checkpoint(run), "step", None)})
    print(f"\nkills ({time.perf_counter() - started:.1f} s):", *events, sep="\n  ")
    assert any(e["left_over"] for e in events), "at least one kill landed while a checkpoint was being written or pruned"
    done = _start("none", 0, run, tone_corpus["train"], log)
    assert done.wait(timeout=120) == 0, log.read_text()[-3000:]
    final, expected = ckpt.latest_checkpoint(run), ckpt.latest_checkpoint(reference)
    assert final.step == expected.step == KILL_STEPS
    _assert_same_files(final.path, expected.path, events)
    assert ckpt.check_checkpoint(final.path) is None
    assert not list((run / "checkpoints").glob(".*_step_*")), "no staging or half-deleted directory is left"
    rows = read_metrics(run)  # every line is JSON (read_metrics parses each)
    assert [r["step"] for r in rows] == list(range(1, KILL_STEPS + 1))
    assert [r["loss"] for r in rows] == [r["loss"] for r in read_metrics(reference)]


# ---- damaged checkpoints ----------------------------------------------------------------------------------

COMMON = ("train.max_steps=8", "train.save_every=2", "train.valid_every=4", "train.keep_last=2", "train.log_every=1",
          "train.warmup_steps=2", "data.batch_size=4", "model.lora.dropout=0.1", "model.projector.dropout=0.1")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tone_corpus) -> dict[str, Path]:
    """``full``: 8 steps straight; ``cut``: the same run stopped after step 6 (checkpoints 4 and 6, best 4)."""
    root = tmp_path_factory.mktemp("crash")
    train(tiny_config(root / "full", tone_corpus, *COMMON))
    train(tiny_config(root / "cut", tone_corpus, *COMMON), stop_at_step=6)
    return {"full": root / "full", "cut": root / "cut"}


def _copy(runs: dict[str, Path], tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(runs["cut"], run)
    return run


def _assert_same_weights(run: Path, reference: Path) -> None:
    a = load_file(str(ckpt.latest_checkpoint(run).path / "model.safetensors"))
    b = load_file(str(ckpt.latest_checkpoint(reference).path / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def test_meta_json_records_size_and_sha256_of_every_file(runs):
    import hashlib

    for info in ckpt.list_checkpoints(runs["full"]):
        meta = json.loads((info.path / "meta.json").read_text())
        assert set(meta["files"]) == {"model.safetensors", "state.pt"}
        for name, record in meta["files"].items():
            data = (info.path / name).read_bytes()
            assert record == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        assert ckpt.check_checkpoint(info.path) is None


@pytest.mark.parametrize(("damage", "victim", "reason"), [
    (_flip_a_byte, "model.safetensors", "model.safetensors does not match its sha256"),
    (_truncate, "state.pt", "state.pt is truncated"),
    (Path.unlink, "state.pt", "state.pt is missing"),
], ids=["flipped-weights", "truncated-state", "missing-state"])
def test_a_damaged_latest_checkpoint_is_skipped_on_resume(runs, tone_corpus, tmp_path, caplog, damage, victim, reason):
    """Resume warns, naming step 6 and why, sets it aside, continues from step 4 and ends where the uninterrupted run ends."""
    run = _copy(runs, tmp_path)
    damage(run / "checkpoints" / "step_00000006" / victim)
    assert ckpt.check_checkpoint(run / "checkpoints" / "step_00000006").startswith(reason)
    with caplog.at_level(logging.INFO, logger="slamkit"):
        result = train(tiny_config(run, tone_corpus, *COMMON, "train.resume=true"))
    text = caplog.text
    assert "step_00000006 cannot be used: " + reason in text and "resumed from" in text and "(step 4)" in text
    assert (run / "checkpoints" / "step_00000006.damaged" / "meta.json").is_file()
    assert result.step == 8
    _assert_same_weights(run, runs["full"])


def test_checkpoints_without_checksums_are_accepted(runs, tone_corpus, tmp_path, caplog):
    """A meta.json written before checksums were recorded (no ``files``): unverified, resumed from as before."""
    run = _copy(runs, tmp_path)
    for info in ckpt.list_checkpoints(run):
        meta = json.loads((info.path / "meta.json").read_text())
        (info.path / "meta.json").write_text(json.dumps({"step": meta["step"], "valid_loss": meta["valid_loss"]}))
    with caplog.at_level(logging.WARNING, logger="slamkit"):
        train(tiny_config(run, tone_corpus, *COMMON, "train.resume=true"))
    assert "cannot be used" not in caplog.text
    _assert_same_weights(run, runs["full"])


def test_decode_and_init_from_take_the_newest_intact_checkpoint(runs, tmp_path, caplog):
    run = _copy(runs, tmp_path)
    root = run / "checkpoints"
    assert json.loads((root / "best.json").read_text())["step"] == 4
    _flip_a_byte(root / "step_00000006" / "model.safetensors")
    with caplog.at_level(logging.WARNING, logger="slamkit"):
        assert ckpt.resolve_checkpoint(run, "latest") == root / "step_00000004"
        assert ckpt.resolve_init_checkpoint(str(run)) == root / "step_00000004"
    assert "step_00000006 cannot be used" in caplog.text
    assert (root / "step_00000006").is_dir(), "reading never moves a checkpoint"
    _truncate(root / "step_00000004" / "state.pt")  # the best one too: nothing intact is left
    with caplog.at_level(logging.WARNING, logger="slamkit"):
        with pytest.raises(FileNotFoundError, match="none of its 2 checkpoint"):
            ckpt.resolve_checkpoint(run, "best")
    assert "best checkpoint step_00000004 cannot be used: state.pt is truncated" in caplog.text


def test_resume_with_no_intact_checkpoint_stops_and_changes_nothing(runs, tone_corpus, tmp_path):
    run = _copy(runs, tmp_path)
    for info in ckpt.list_checkpoints(run):
        _truncate(info.path / "model.safetensors")
    before = sorted(p.name for p in (run / "checkpoints").iterdir())
    with pytest.raises(FileNotFoundError, match="none of its 2 checkpoint.*nothing was changed"):
        train(tiny_config(run, tone_corpus, *COMMON, "train.resume=true"))
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == before


def test_pruning_never_counts_a_checkpoint_after_the_one_just_written(tmp_path):
    """keep_last=1 with a stray step 8 (say damaged, not set aside) beside 4 and a just-written 6: pruning deletes 4,
    keeps 6 and leaves 8 alone; counting 8 as the newest would have deleted 6, the only intact one."""
    root = tmp_path / "checkpoints"
    for step in (4, 6, 8):
        (root / f"step_{step:08d}").mkdir(parents=True)
        (root / f"step_{step:08d}" / "meta.json").write_text(json.dumps({"step": step, "valid_loss": None}))
    (root / ".tmp_step_00000002").mkdir()  # a write interrupted earlier
    ckpt._prune(tmp_path, keep_last=1, step=6)
    assert sorted(p.name for p in root.iterdir()) == ["step_00000006", "step_00000008"]


# ---- a disk that refuses a checkpoint ---------------------------------------------------------------------


def _refuse_step_4(monkeypatch) -> None:
    """model.safetensors of step 4 fails after half of it is written: the disk is full."""
    real = ckpt.save_file

    def save_file(tensors, path):
        if "step_00000004" not in str(path):
            return real(tensors, path)
        Path(path).write_bytes(b"\0" * 1000)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(ckpt, "save_file", save_file)


def test_a_full_disk_stops_the_run_with_the_previous_checkpoint_intact(runs, tone_corpus, tmp_path, monkeypatch):
    _refuse_step_4(monkeypatch)
    run = tmp_path / "run"
    message = (r"cannot write checkpoint step_00000004 to \S+checkpoints: \[Errno 28\] No space left on device; "
               r"the previous checkpoint step_00000002 is intact \(train.resume=true continues from it\)")
    with pytest.raises(ckpt.CheckpointWriteError, match=message) as caught:
        train(tiny_config(run, tone_corpus, *COMMON))
    assert isinstance(caught.value, OSError) and isinstance(caught.value, ValueError)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_00000002"], "the staging directory is removed"
    assert ckpt.resume_checkpoint(run).step == 2
    monkeypatch.undo()
    assert train(tiny_config(run, tone_corpus, *COMMON, "train.resume=true")).step == 8
    _assert_same_weights(run, runs["full"])


def test_a_refused_state_write_is_reported_with_the_systems_error(tone_corpus, tmp_path, monkeypatch):
    """A real refusal through torch.save (which turns it into a RuntimeError): files limited to 1.5 MB
    (RLIMIT_FSIZE) from step 4 on; state.pt (2 MB) fails with the system's own error."""
    run, real = tmp_path / "run", ckpt.finish_checkpoint
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails instead of killing

    def finish(run_dir, step, *args):
        if step < 4:
            return real(run_dir, step, *args)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1_500_000, limits[1]))
        try:
            return real(run_dir, step, *args)
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, limits)

    monkeypatch.setattr(ckpt, "finish_checkpoint", finish)
    try:
        with pytest.raises(ckpt.CheckpointWriteError, match=r"step_00000004 .*\[Errno 27\] File too large; the previous "
                                                            r"checkpoint step_00000002 is intact"):
            train(tiny_config(run, tone_corpus, *COMMON))
    finally:
        signal.signal(signal.SIGXFSZ, previous_handler)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_00000002"]


REFUSING_CHILD = r"""
import errno, os, sys
from slamkit.train import checkpoint as ckpt
from slamkit.cli import main
real = ckpt.save_file
def save_file(tensors, path):
    if "step_00000004" in str(path):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    real(tensors, path)
ckpt.save_file = save_file
sys.exit(main(["train", *sys.argv[1:]]))
"""


def test_slamkit_train_reports_a_full_disk_in_one_line(tone_corpus, tmp_path):
    run = tmp_path / "run"
    args = [str(TINY_RECIPE), f"data.train={tone_corpus['train']}", f"train.output_dir={run}", *COMMON, "train.tensorboard=false"]
    done = subprocess.run([sys.executable, "-c", REFUSING_CHILD, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode != 0
    message = (f"slamkit train: error: cannot write checkpoint step_00000004 to {run / 'checkpoints'}: [Errno 28] No space left "
               "on device; the previous checkpoint step_00000002 is intact (train.resume=true continues from it)")
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    # one line (it follows the progress bar, which the stopped run leaves unfinished on the same line)
    assert len(errors) == 1 and errors[0].endswith(message), done.stderr[-2000:]
    assert "Traceback" not in done.stderr
