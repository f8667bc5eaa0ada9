"""GPU check: a paper-size speech LLM trained for ~30 steps on one CUDA device, under DDP with one rank.

    python benchmarks/gpu_check.py                 # on a CUDA machine (about 5 minutes on one H100)
    python benchmarks/gpu_check.py --dry-run       # tiny sizes on the CPU: what the tests run

It writes synthetic clips with a LibriSpeech-like length mix (1–35 s), builds Whisper-large-v3's
encoder and a 7B-class Llama (Vicuna-7B's architecture) with random weights — the arithmetic, hence
the speed and memory, of the real checkpoints — and trains them exactly as `slamkit train` does
(`torchrun --nproc-per-node 1`, `train.strategy=ddp`, LoRA r=8 on q/v, projector k=5, bf16 autocast,
activation checkpointing). It prints, as JSON: audio-seconds and LLM tokens per second, model FLOP
utilisation against the device's bf16 matrix-multiply peak measured in the same run, peak memory,
and whether batched greedy decoding equals batch size 1 on the trained model.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

SIZES = {  # (encoder preset, LLM preset, clips, steps, batch size)
    "paper": ("large-v3", "vicuna-7b", 64, 30, 4),
    "dry-run": ("test", "tiny", 12, 3, 2),
}


def write_clips(folder: Path, count: int, seed: int = 0) -> Path:
    """``count`` noise clips of LibriSpeech-like lengths (lognormal around 12 s, cut to 1–35 s) and a manifest."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(count):
        seconds = float(np.clip(rng.lognormal(np.log(12.0), 0.55), 1.0, 30.0))  # Whisper's window: LibriSpeech's 30-35 s tail is cut at 30
        audio = (0.05 * rng.standard_normal(int(seconds * 16000))).astype(np.float32)
        path = folder / f"clip{i:03d}.wav"
        sf.write(str(path), audio, 16000)
        words = " ".join("word" for _ in range(max(1, int(seconds * 2.7))))  # about 2.7 words per second
        lines.append(json.dumps({"key": f"clip{i:03d}", "source": str(path), "target": words, "duration": round(seconds, 3)}))
    manifest = folder / "train.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def overrides(size: str, manifest: Path, out: Path, device: str) -> list[str]:
    """The recipe: the paper's ASR configuration at ``size``, random weights."""
    encoder, llm, _, steps, batch = SIZES[size]
    precision = "bf16"
    return [
        "model.encoder.name=whisper", f"model.encoder.preset={encoder}", "model.encoder.path=null", "model.encoder.trainable=frozen",
        "model.projector.name=linear", "model.projector.k=5", "model.projector.hidden=2048",
        f"model.llm.preset={llm}", "model.llm.path=null", "model.llm.dtype=bfloat16", "model.llm.trainable=lora",
        "model.lora.r=8", "model.lora.alpha=32", "model.lora.target_modules=[q_proj,v_proj]",
        f"data.train={manifest}", f"data.batch_size={batch}", "data.max_seconds=30",
        f"train.output_dir={out}", f"train.max_steps={steps}", "train.warmup_steps=2", "train.log_every=1",
        "train.valid_every=0", f"train.save_every={steps}", f"train.precision={precision}", "train.strategy=ddp",
        "train.activation_checkpointing=true", "train.tensorboard=false", f"train.device={device}",
    ]


def matmul_peak(device: torch.device, dtype: torch.dtype) -> float:
    """FLOP/s of a large square matrix multiply on ``device`` (the machine's practical peak)."""
    n = 8192 if device.type == "cuda" else 1024
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    _sync(device)
    start, reps = time.perf_counter(), 10
    for _ in range(reps):
        a @ b
    _sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - start)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def worker(args: argparse.Namespace) -> None:
    """Runs under torchrun: train, then measure; rank 0 prints the JSON line."""
    from slamkit.config import load_config
    from slamkit.infer.decode import load_run
    from slamkit.train.distributed import teardown
    from slamkit.train.log import read_metrics
    from slamkit.train.loop import train

    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    device = torch.device("cpu" if args.dry_run else "cuda")
    cfg = load_config("tiny_asr", overrides(args.size, Path(args.manifest), Path(args.out), str(device)))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    train(cfg)
    seconds = time.perf_counter() - start
    peak_memory = torch.cuda.max_memory_allocated(device) / 1024**3 if device.type == "cuda" else None
    ddp_world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 0
    teardown()
    steps = [r for r in read_metrics(args.out) if "step_loss" in r][1:]  # the first step includes warm-up
    step_time = sum(1 / max(r["audio_s_per_s"], 1e-9) * r["audio_seconds"] for r in steps)
    _, model = load_run(args.out, device=str(device))
    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "size": args.size, "ddp_world_size": ddp_world, "steps": len(steps) + 1, "wall_seconds": round(seconds, 1),
        "audio_s_per_s": round(sum(r["audio_seconds"] for r in steps) / step_time, 1),
        "tokens_per_s": round(sum(r["tokens"] for r in steps) / step_time, 1),
        "final_loss": steps[-1]["step_loss"] if steps else None,
        "peak_memory_gb": None if peak_memory is None else round(peak_memory, 2),
        **utilisation(model, steps, step_time, device),
        "batch_decode_equals_batch_1": decode_equality(cfg, model, Path(args.manifest)),
    }
    print(json.dumps(result))


def utilisation(model: torch.nn.Module, steps: list[dict], step_time: float, device: torch.device) -> dict[str, float]:
    """Model FLOP/s of the training steps (6·N per LLM token: forward + backward; 2·N per encoder frame:
    forward only, frozen) against the measured bf16 matmul peak; recomputation is not counted."""
    llm = sum(p.numel() for p in model.llm.parameters())
    encoder = sum(p.numel() for p in model.encoder.parameters())
    frames = sum(r["audio_seconds"] for r in steps) * model.encoder.frame_rate
    flops = 6 * llm * sum(r["tokens"] for r in steps) + 2 * encoder * frames
    achieved, peak = flops / step_time, matmul_peak(device, torch.bfloat16)
    return {"model_tflops": round(achieved / 1e12, 3), "matmul_peak_tflops": round(peak / 1e12, 3), "mfu": round(achieved / peak, 4)}


def decode_equality(cfg, model, manifest: Path) -> bool:
    """Greedy decoding of 4 clips in one batch equals decoding each alone."""
    import dataclasses

    from slamkit.infer.decode import decode_manifest

    with tempfile.TemporaryDirectory() as tmp:
        four = Path(tmp) / "four.jsonl"
        four.write_text("".join(manifest.read_text().splitlines(keepends=True)[:4]))
        texts = {}
        for batch in (1, 4):
            run_cfg = dataclasses.replace(cfg, decode=dataclasses.replace(cfg.decode, batch_size=batch, max_new_tokens=16))
            out = Path(tmp) / f"b{batch}.jsonl"
            decode_manifest(run_cfg, model, four, out)
            texts[batch] = [json.loads(line)["hyp"] for line in out.read_text().splitlines()]
        return texts[1] == texts[4]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU (what the tests run)")
    parser.add_argument("--out", help="working folder (default: a temporary one)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--manifest", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.size = "dry-run" if args.dry_run else "paper"
    if args.worker:
        worker(args)
        return 0
    if not args.dry_run and not torch.cuda.is_available():
        print("gpu_check: no CUDA device (use --dry-run for the CPU smoke run)", file=sys.stderr)
        return 2
    root = Path(args.out or tempfile.mkdtemp(prefix="slamkit-gpu-check-"))
    manifest = write_clips(root / "clips", SIZES[args.size][2])
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=1", __file__, "--worker",
           "--manifest", str(manifest), "--out", str(root / "run")] + (["--dry-run"] if args.dry_run else [])
    return subprocess.call(cmd, env={**os.environ, "HF_HUB_OFFLINE": "1"})


if __name__ == "__main__":
    raise SystemExit(main())
