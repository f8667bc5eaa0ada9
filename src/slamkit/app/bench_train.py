"""``slamkit bench train``: the original SLAM-LLM data path against slamkit's, same model, same clips, one run.

Both paths train the same model (the demo recipe's Whisper + SmolLM2 by default) for one epoch of the
same synthetic clips, each through the real training loop (`slamkit train`) in a child process of its own
(so each has its own peak memory):

(a) **the original's path**, as SLAM-LLM's code runs it: every clip zero-padded to 30 s in the data
    (3 000 mel frames -> 1 500 encoder frames -> 300 audio slots at k=5 whatever the clip's length),
    fixed-size random batches (no duration buckets), the frozen encoder recomputed every epoch (no
    feature cache), the output head over the whole sequence (``model.llm.full_logits``), fp32;
(b) **slamkit's default path**: real lengths, duration buckets, the feature cache (epoch 1 cold,
    epoch 2 warm, reported apart), the head only where targets are, in the precision this machine
    multiplies fastest (bf16 autocast when its measured matmul peak beats fp32's).

Speed is audio-seconds of real speech per second of training-loop wall time (data loading included,
start-up excluded). The FLOPs of each path are counted on the same batches with
``torch.utils.flop_counter`` (every matmul, convolution and attention, forward and backward), so the
ideal speed-up (``flop_ratio``) is printed beside the measured one, and the achieved FLOP/s of
slamkit's step beside this machine's matrix-multiply peak measured in the same run.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf
import torch

from slamkit.app.bench_paths import PATHS, count_flops, first_batch_losses, matmul_peak, padding_fraction, profile_top
from slamkit.config import load_config
from slamkit.recipe_files import resolve_recipe as recipe_path
from slamkit.train.log import read_metrics

RATE = 16000
WORDS = ("the of and to in that was he it with as his for had you not be her on at by which have or from this him but all she they "
         "were my are me one their so an said them we who would been will no when there if more out up into do any your what has man "
         "could other than our some very time upon about may its only now like little then can should made did us such great before "
         "must two these see know over much down after first mister good men own never most old shall day where those came come "
         "himself way work life without go make well through being long say might how am too even under think again many back "
         "house still place while right young eyes hand nothing").split()

#: Clip-length mixes: ``rng -> seconds``. LibriSpeech's training utterances: a log-normal around 12 s (most 10-16 s),
#: 1-35 s, cut at Whisper's 30 s window; short commands and the demo's sentences: 1-6 s.
MIXES: dict[str, Callable[[np.random.Generator], float]] = {
    "librispeech": lambda rng: float(np.clip(rng.lognormal(math.log(12.0), 0.45), 1.0, 30.0)),
    "short": lambda rng: float(rng.uniform(1.0, 6.0)),
}
#: ``--encoder`` / ``--llm`` choices -> config overrides (assets for the real weights; ``test``/``tiny``: random, seconds).
ENCODERS = {"tiny.en": ["model.encoder.path=asset:whisper-tiny.en", "model.encoder.preset=tiny"],
            "base": ["model.encoder.path=asset:whisper-base", "model.encoder.preset=base"],
            "test": ["model.encoder.path=null", "model.encoder.preset=test"]}
LLMS = {"smollm2-135m": [],
        "tiny": ["model.llm.path=null", "model.llm.preset=tiny", "model.llm.use_chat_template=false"]}


QUICK = {"steps": 6, "batch": 4}  # --quick: 24 clips, minutes on 2 CPU cores


@dataclass
class Corpus:
    """The same clips twice: real length, and zero-padded to 30 s (the original's input)."""

    real: Path
    padded: Path
    seconds: float  # real audio in one epoch


def make_corpus(folder: Path, mix: str, clips: int, seed: int = 0) -> Corpus:
    """``clips`` synthetic clips (speech-band noise with a pitch contour) with ~2.7 words per second."""
    rng = np.random.default_rng(seed)
    lines = {"real": [], "padded": []}
    total = 0.0
    for i in range(clips):
        seconds = MIXES[mix](rng)
        n = int(seconds * RATE)
        t = np.arange(n) / RATE
        audio = (0.05 * rng.standard_normal(n) + 0.1 * np.sin(2 * np.pi * (120 + 30 * np.sin(t)) * t)).astype(np.float32)
        text = " ".join(rng.choice(WORDS, size=max(1, round(seconds * 2.7))))
        for kind, samples in (("real", audio), ("padded", np.pad(audio, (0, 30 * RATE - n)))):
            path = folder / kind / f"clip{i:04d}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(str(path), samples, RATE, subtype="PCM_16")
            lines[kind].append(json.dumps({"key": f"clip{i:04d}", "source": str(path), "target": text, "duration": len(samples) / RATE,
                                           "real_duration": seconds}))
        total += n / RATE
    for kind, rows in lines.items():
        (folder / f"{kind}.jsonl").write_text("\n".join(rows) + "\n")
    return Corpus(folder / "real.jsonl", folder / "padded.jsonl", total)


# The child's own peak: CUDA's allocator peak, else VmHWM (ru_maxrss would carry the parent's peak across exec).
_CHILD = """
import json, re, resource, sys, torch
from pathlib import Path
from slamkit.cli import main
code = main(sys.argv[2:])
if torch.cuda.is_available():
    peak = torch.cuda.max_memory_allocated() / 2**20
else:
    status = Path("/proc/self/status")
    hwm = re.search(r"VmHWM:\\s+(\\d+) kB", status.read_text()) if status.is_file() else None
    peak = int(hwm.group(1)) / 1024 if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
open(sys.argv[1], "w").write(json.dumps({"peak_mb": peak, "code": code}))
sys.exit(code)
"""


def run_path(overrides: list[str], out: Path) -> tuple[list[dict], float]:
    """`slamkit train` in a child process: (its per-step metrics, its peak memory in MB)."""
    peak_file = out.with_suffix(".peak.json")
    cmd = [sys.executable, "-c", _CHILD, str(peak_file), "train", str(recipe_path("demo_asr_tiny_en")), *overrides, f"train.output_dir={out}"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the training child failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return [r for r in read_metrics(out) if "audio_s_per_s" in r], json.loads(peak_file.read_text())["peak_mb"]


def epoch_seconds(metrics: list[dict], steps: int, epoch: int) -> float:
    """Wall seconds of the loop's steps ``epoch*steps+1 … (epoch+1)*steps`` (each logged window is one step)."""
    rows = [r for r in metrics if epoch * steps < r["step"] <= (epoch + 1) * steps]
    if len(rows) != steps:
        raise RuntimeError(f"expected {steps} logged steps in epoch {epoch + 1}, found {len(rows)}")
    return sum(r["audio_seconds"] / r["audio_s_per_s"] for r in rows)


def bench_train(encoder: str = "tiny.en", llm: str = "smollm2-135m", steps: int = 20, batch: int = 4, mix: str = "librispeech",
                device: str = "cpu", seed: int = 0, progress: Callable[[str], None] = print, profile: bool = False) -> dict:
    """Run both paths; returns the result dict (see the module docs and ``docs/performance.md``)."""
    dev = torch.device(device)
    peaks = {p: matmul_peak(dev, p) for p in ("fp32", "bf16")}
    fastest = "bf16" if peaks["bf16"] > 1.1 * peaks["fp32"] else "fp32"
    with tempfile.TemporaryDirectory(prefix="slamkit-bench-train-") as tmp:
        root = Path(tmp)
        progress(f"writing {steps * batch} clips ({mix} mix) …")
        corpus = make_corpus(root / "data", mix, steps * batch, seed)
        common = [*ENCODERS[encoder], *LLMS[llm], f"data.batch_size={batch}", "data.batch_seconds=null", "data.short_first_epochs=0",
                  "data.max_seconds=30", "train.prealign_steps=0", "train.valid_every=0", f"train.save_every={10 * steps}",
                  "train.log_every=1", "train.tensorboard=false", "train.warmup_steps=2", f"train.seed={seed}", f"train.device={device}"]
        paths = {name: [*common, *path.overrides(root, fastest)] for name, path in PATHS.items()}
        cfgs = {name: load_config(recipe_path("demo_asr_tiny_en"), paths[name]) for name in PATHS}
        progress("counting FLOPs and first-batch losses …")
        flops = {name: count_flops(cfgs[name], corpus.padded if name == "original" else corpus.real, epochs=PATHS[name].epochs)
                 for name in PATHS}
        losses = first_batch_losses(cfgs["original"], cfgs["slamkit"], corpus)
        pad = {name: padding_fraction(cfgs[name], corpus.padded if name == "original" else corpus.real) for name in PATHS}
        top = profile_top(cfgs["slamkit"], corpus.real) if profile else []
        timing, memory = {}, {}
        for name, path in PATHS.items():
            progress(f"training: {path.label} …")
            manifest = corpus.padded if name == "original" else corpus.real
            metrics, memory[name] = run_path([*paths[name], f"data.train={manifest}", f"train.max_steps={path.epochs * steps}"],
                                             root / name)
            timing[name] = [epoch_seconds(metrics, steps, e) for e in range(path.epochs)]
    rate = {"original": corpus.seconds / timing["original"][0], "slamkit_epoch1": corpus.seconds / timing["slamkit"][0],
            "slamkit_epoch2": corpus.seconds / timing["slamkit"][1]}
    step_flops = flops["slamkit"][1] / steps
    return {
        "benchmark": "train", "encoder": encoder, "llm": llm, "mix": mix, "steps_per_epoch": steps, "batch_size": batch,
        "clips": steps * batch, "audio_seconds_per_epoch": round(corpus.seconds, 1), "device": device,
        "precision_original": "fp32", "precision_slamkit": fastest,
        "audio_s_per_s_original": round(rate["original"], 2), "audio_s_per_s_slamkit_epoch1": round(rate["slamkit_epoch1"], 2),
        "audio_s_per_s_slamkit_epoch2": round(rate["slamkit_epoch2"], 2),
        "speedup_epoch1": round(rate["slamkit_epoch1"] / rate["original"], 2),
        "speedup_epoch2": round(rate["slamkit_epoch2"] / rate["original"], 2),
        "flop_ratio": round(flops["original"][0] / flops["slamkit"][1], 2),
        "flop_ratio_epoch1": round(flops["original"][0] / flops["slamkit"][0], 2),
        # the speed-up if each path ran at its precision's matmul peak: the work ratio times the precisions' peak ratio
        "ideal_speedup_epoch1": round(flops["original"][0] / flops["slamkit"][0] * peaks[fastest] / peaks["fp32"], 2),
        "ideal_speedup_epoch2": round(flops["original"][0] / flops["slamkit"][1] * peaks[fastest] / peaks["fp32"], 2),
        "padding_fraction": round(pad["slamkit"], 4), "padding_fraction_original": round(pad["original"], 4),
        "peak_memory_mb_original": round(memory["original"]), "peak_memory_mb_slamkit": round(memory["slamkit"]),
        "matmul_peak_flops": peaks[fastest], "matmul_peak_flops_fp32": peaks["fp32"], "matmul_peak_flops_bf16": peaks["bf16"],
        "train_step_flops": step_flops, "train_step_flops_per_s": round(step_flops * steps / timing["slamkit"][1]),
        "train_step_peak_fraction": round(step_flops * steps / timing["slamkit"][1] / peaks[fastest], 3),
        "loss_first_batch_original": round(losses[0], 4), "loss_first_batch_slamkit": round(losses[1], 4),
        "profile_top": top, "date": time.strftime("%Y-%m-%d"), "torch": torch.__version__, "threads": torch.get_num_threads(),
    }


def format_train(r: dict) -> str:
    """The result as a Markdown table plus the ratios."""
    rows = [("the original's path (a)", r["precision_original"], r["audio_s_per_s_original"], "1.00", r["peak_memory_mb_original"]),
            ("slamkit, epoch 1 (cold cache)", r["precision_slamkit"], r["audio_s_per_s_slamkit_epoch1"], f"{r['speedup_epoch1']:.2f}",
             r["peak_memory_mb_slamkit"]),
            ("slamkit, epoch 2 (warm cache)", r["precision_slamkit"], r["audio_s_per_s_slamkit_epoch2"], f"{r['speedup_epoch2']:.2f}",
             r["peak_memory_mb_slamkit"])]
    lines = [f"{r['encoder']} + {r['llm']}, {r['mix']} mix, {r['clips']} clips ({r['audio_seconds_per_epoch']} s) x batch {r['batch_size']}, "
             f"{r['device']}, {r['date']}", "",
             "| path | precision | audio-s/s | speed-up | peak memory (MB) |", "|---|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d}x | {e} |" for a, b, c, d, e in rows]
    lines += ["", f"FLOP ratio (a) / (b): {r['flop_ratio_epoch1']}x in epoch 1, {r['flop_ratio']}x from epoch 2; with each path at its "
              f"precision's matmul peak the ideal speed-up is {r['ideal_speedup_epoch1']}x and {r['ideal_speedup_epoch2']}x; measured / "
              f"ideal: {r['speedup_epoch1'] / r['ideal_speedup_epoch1']:.0%} and {r['speedup_epoch2'] / r['ideal_speedup_epoch2']:.0%}",
              f"padding: {r['padding_fraction']:.1%} of slamkit's audio tokens ({r['padding_fraction_original']:.1%} on the original's path)",
              f"slamkit's step: {r['train_step_flops_per_s'] / 1e9:.1f} GFLOP/s = {r['train_step_peak_fraction']:.1%} of the "
              f"{r['matmul_peak_flops'] / 1e9:.0f} GFLOP/s {r['precision_slamkit']} matmul peak measured in this run",
              f"first-batch loss, untrained model: {r['loss_first_batch_original']} (a) vs {r['loss_first_batch_slamkit']} (b)"]
    if r.get("profile_top"):
        lines += ["", "slamkit's warm step, torch.profiler's top operators by self time:", "", "| operator | calls | self ms | share |",
                  "|---|---|---|---|"] + [f"| `{p['op']}` | {p['calls']} | {p['self_ms']} | {p['share']:.1%} |" for p in r["profile_top"]]
    return "\n".join(lines)
