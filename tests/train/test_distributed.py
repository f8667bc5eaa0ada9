"""Real torchrun processes on CPU (gloo): N ranks train what one process trains.

Every test launches ``torch.distributed.run`` (what the ``torchrun`` script runs) with 2 processes,
against one process with the combined batch, and compares what they wrote to their run directories.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from slamkit.train import checkpoint as ckpt
from slamkit.train.log import read_metrics

from conftest import REPO

STEPS = 20
COMMON = ["train.tensorboard=false", "train.log_every=1", "train.valid_every=10", "train.save_every=5", f"train.max_steps={STEPS}"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
TIMEOUT = 240


def _run(cmd: list[str]) -> None:
    """Run ``cmd`` in the repository; on failure, show the end of what it printed."""
    done = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, f"{' '.join(cmd[-6:])} exited {done.returncode}:\n{done.stderr[-4000:]}"


def _data(corpus: dict[str, Path]) -> list[str]:
    return [f"data.train={corpus['train']}", f"data.valid={corpus['valid']}"]


def _single(out: Path, corpus: dict[str, Path], *extra: str) -> None:
    cmd = [sys.executable, "-m", "slamkit", "train", "recipes/tiny_asr.yaml", *_data(corpus), *COMMON, f"train.output_dir={out}", *extra]
    _run(cmd)


def _torchrun(out: Path, corpus: dict[str, Path], *extra: str, launcher: list[str] | None = None) -> list[str]:
    launcher = launcher or ["--standalone", "--nproc-per-node=2"]
    return [sys.executable, "-m", "torch.distributed.run", *launcher, "-m", "slamkit", "train", "recipes/tiny_asr.yaml",
            *_data(corpus), *COMMON, f"train.output_dir={out}", *extra]


def _losses(run: Path) -> dict[int, float]:
    return {r["step"]: r["step_loss"] for r in read_metrics(run) if "step_loss" in r}


def _weights(run: Path) -> dict[str, torch.Tensor]:
    """The latest checkpoint's trainable weights (from model.safetensors, or read back from a sharded dcp/)."""
    path = ckpt.latest_checkpoint(run).path
    if (path / "model.safetensors").is_file():
        return load_file(str(path / "model.safetensors"))
    from slamkit.infer.decode import load_run

    _, model = load_run(run)
    return {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}


def _assert_same_training(one: Path, two: Path) -> None:
    a, b = _losses(one), _losses(two)
    assert sorted(a) == sorted(b) == list(range(1, STEPS + 1))
    worst = max(abs(a[s] - b[s]) / abs(a[s]) for s in a)
    assert worst < 1e-5, f"per-step losses differ by up to {worst:.2e} (relative)"
    wa, wb = _weights(one), _weights(two)
    assert wa.keys() == wb.keys() and wa
    for key in wa:
        torch.testing.assert_close(wb[key], wa[key], rtol=1e-5, atol=1e-5, msg=lambda m, k=key: f"{k}: {m}")


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tone_corpus) -> Path:
    """One process, data.batch_size=4: what 2 ranks with batch 2 must reproduce."""
    out = tmp_path_factory.mktemp("single") / "run"
    _single(out, tone_corpus, "data.batch_size=4")
    return out


def test_two_ranks_equal_one_process_with_the_combined_batch(tmp_path, tone_corpus, reference) -> None:
    out = tmp_path / "ddp"
    _run(_torchrun(out, tone_corpus, "data.batch_size=2"))
    _assert_same_training(reference, out)
    # rank 0 alone wrote the run directory: one config, one line per logged step, one loss per step
    assert (out / "config.yaml").is_file()
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines if "step_loss" in r] == list(range(1, STEPS + 1))
    assert [r["step"] for r in lines if "valid_loss" in r] == [10, 20]
    valid_one = [r["valid_loss"] for r in read_metrics(reference) if "valid_loss" in r]
    valid_two = [r["valid_loss"] for r in lines if "valid_loss" in r]
    assert valid_two == pytest.approx(valid_one, rel=1e-5), "validation is summed over both ranks' shares"


def test_fsdp_with_activation_checkpointing_equals_one_process_and_the_checkpoint_decodes_alone(tmp_path, tone_corpus, reference) -> None:
    out = tmp_path / "fsdp"
    _run(_torchrun(out, tone_corpus, "data.batch_size=2", "train.strategy=fsdp", "train.activation_checkpointing=true"))
    _assert_same_training(reference, out)
    hyp = tmp_path / "hyp.jsonl"
    _run([sys.executable, "-m", "slamkit", "decode", str(out), "--manifest", str(tone_corpus["valid"]), "--out", str(hyp)])
    assert len(hyp.read_text().splitlines()) == 6, "a checkpoint written by 2 sharded ranks loads in one process"


def test_nproc_flag_starts_the_same_launcher(tmp_path, tone_corpus, reference) -> None:
    out = tmp_path / "nproc"
    cmd = [sys.executable, "-m", "slamkit", "train", "recipes/tiny_asr.yaml", *_data(tone_corpus), *COMMON, f"train.output_dir={out}",
           "data.batch_size=2", "--nproc", "2"]
    done = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count('"run_dir"') == 1, "only rank 0 prints the summary"
    _assert_same_training(reference, out)


def test_two_nodes_through_the_c10d_rendezvous(tmp_path, tone_corpus, reference) -> None:
    """Two torchrun agents, one process each, meeting at 127.0.0.1:PORT as two machines would."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "nodes"
    launcher = ["--nnodes=2", "--nproc-per-node=1", "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=slamkit-test"]
    cmd = _torchrun(out, tone_corpus, "data.batch_size=2", launcher=launcher)
    agents = [subprocess.Popen(cmd, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(2)]
    for agent in agents:
        _, err = agent.communicate(timeout=TIMEOUT)
        assert agent.returncode == 0, err.decode()[-2000:]
    _assert_same_training(reference, out)


@pytest.mark.parametrize("strategy", ["ddp", "fsdp", "fsdp-full"])
def test_a_killed_rank_stops_the_job_and_the_resumed_run_matches(tmp_path, tone_corpus, strategy: str) -> None:
    """fsdp-full: a full fine-tune of the LLM, whose checkpoints are written shard by shard (dcp/)."""
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    steps = 80
    args = ("data.batch_size=2", f"train.max_steps={steps}", f"train.strategy={strategy.split('-')[0]}",
            *(["model.llm.trainable=full"] if strategy == "fsdp-full" else []))
    _run(_torchrun(whole, tone_corpus, *args))
    proc = subprocess.Popen(_torchrun(cut, tone_corpus, *args), cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + TIMEOUT
    while time.time() < deadline and not (cut / "checkpoints" / "step_00000010").exists() and proc.poll() is None:
        time.sleep(0.02)
    workers = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert workers, "torchrun's worker processes were not found"
    os.kill(int(workers[-1]), signal.SIGKILL)
    assert proc.wait(timeout=TIMEOUT) != 0, "torchrun must stop (non-zero) when a rank dies"
    killed_at = ckpt.latest_checkpoint(cut)
    assert killed_at is not None and killed_at.step < steps, "the job must die mid-run"
    _run(_torchrun(cut, tone_corpus, *args, "train.resume=true"))
    a, b = _losses(whole), _losses(cut)
    assert sorted(b) == list(range(1, steps + 1))
    assert all(b[s] == pytest.approx(a[s], rel=1e-6) for s in range(killed_at.step + 1, steps + 1))
    for key, value in _weights(whole).items():
        torch.testing.assert_close(_weights(cut)[key], value, rtol=1e-6, atol=1e-6)


def test_decode_with_two_ranks_writes_what_one_process_writes(tmp_path, tone_corpus, reference) -> None:
    args = ["decode", str(reference), "--manifest", str(tone_corpus["train"]), "decode.batch_size=3"]
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    _run([sys.executable, "-m", "slamkit", *args, "--out", str(one)])
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "slamkit", *args,
                    "--out", str(two)])
    lines = one.read_text().splitlines()
    assert len(lines) == 24 and [json.loads(x)["key"] for x in lines] == [json.loads(x)["key"] for x in
                                                                          Path(tone_corpus["train"]).read_text().splitlines()]
    assert two.read_text() == one.read_text(), "2 ranks must write the same file, in manifest order"


def test_long_form_decode_with_two_ranks_writes_what_one_process_writes(tmp_path, tone_corpus, reference) -> None:
    """Segment planning is shared between the ranks too; the joined lines are the same."""
    import soundfile as sf

    from slamkit.data.audio import load_audio
    from slamkit.data.manifest import read_manifest

    records = read_manifest(tone_corpus["train"])
    rows = [r.to_json() for r in records[:3]]
    for n, part in enumerate((records[:8], records[8:16], records[16:])):
        audio = np.concatenate([np.concatenate([load_audio(r.source, 16000), np.zeros(8000, np.float32)]) for r in part])
        sf.write(str(tmp_path / f"long{n}.wav"), audio, 16000)
        rows.append({"key": f"long{n}", "source": str(tmp_path / f"long{n}.wav"), "target": " ".join(r.target for r in part)})
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["decode", str(reference), "--manifest", str(manifest), "decode.batch_size=3", "decode.segment=fixed",
            "decode.max_segment_seconds=2.5", "decode.max_new_tokens=12"]
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    _run([sys.executable, "-m", "slamkit", *args, "--out", str(one)])
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "slamkit", *args,
          "--out", str(two)])
    lines = [json.loads(x) for x in one.read_text().splitlines()]
    assert [x["key"] for x in lines] == [r["key"] for r in rows]
    assert all(len(x["segments"]) > 1 for x in lines[3:]) and all("segments" not in x for x in lines[:3])
    assert two.read_text() == one.read_text(), "2 ranks must write the same file, in manifest order"


def test_a_sharded_full_fine_tune_checkpoint_loads_in_one_process(tmp_path, tone_corpus) -> None:
    out = tmp_path / "full"
    _run(_torchrun(out, tone_corpus, "data.batch_size=2", "train.strategy=fsdp", "model.llm.trainable=full"))
    latest = ckpt.latest_checkpoint(out)
    shards = sorted(p.name for p in (latest.path / ckpt.DCP_DIR).glob("*.distcp"))
    assert shards == ["__0_0.distcp", "__1_0.distcp"], "each rank writes its own shard"
    assert not (latest.path / "model.safetensors").exists()
    hyp = tmp_path / "hyp.jsonl"
    _run([sys.executable, "-m", "slamkit", "decode", str(out), "--manifest", str(tone_corpus["valid"]), "--out", str(hyp)])
    assert len(hyp.read_text().splitlines()) == 6
    # what one process reads back is what training ended with: the LLM moved away from its random start
    from slamkit.infer.decode import load_run
    from slamkit.models.speech_llm import build_model

    cfg, model = load_run(out)
    fresh = build_model(cfg)
    moved = [n for n, p in model.named_parameters() if p.requires_grad and not torch.equal(p, dict(fresh.named_parameters())[n])]
    assert any(n.startswith("llm.") for n in moved) and any(n.startswith("projector.") for n in moved)
