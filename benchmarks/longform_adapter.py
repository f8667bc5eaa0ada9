"""An adapter that has heard long clips: the reference adapter fine-tuned on the demo's clips joined
into recordings of up to 30 s, so that the long-form comparison (benchmarks/longform_compare.py)
can ask whether long windows, or the windowed encoder, win once the model is trained for them.

    python benchmarks/longform_adapter.py --data runs/demo/data/tts-8000-0-short800-9a138708/train.jsonl \\
        --out runs/longform_adapter
    python benchmarks/longform_compare.py --run runs/longform_adapter/run --window 30 --max-new-tokens 192

1. Long clips: the lines of ``--data`` (the reference adapter's own training manifest: synthetic
   speech, never the evaluation recordings) in a seeded random order, joined in turn with silent
   pauses of 0.3–1.0 s into recordings whose length is drawn between ``--min-seconds`` and
   ``--max-seconds`` (29 s by default: inside the encoder's 30 s window); the target is the clips' texts joined with
   spaces. ``--long`` of them, plus as many single clips of the same manifest, so the adapter keeps
   reading short ones.
2. Training: ``slamkit train recipes/demo_asr_tiny_en.yaml`` from the shipped reference adapter
   (``train.init_from``), without pre-alignment, ``--steps`` steps at ``--lr`` (cosine to a tenth),
   the demo's float16 feature cache. Writes ``<out>/run``, which ``slamkit decode``,
   ``slamkit serve`` and ``longform_compare.py --run`` take.

Everything made is reused on a rerun (the clips when their manifest exists, the run when it
reached ``--steps``). Needs whisper-tiny.en and smollm2-135m-instruct-gguf (``slamkit assets list``).
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from slamkit.data.manifest import read_manifest

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "demo_asr_tiny_en.yaml"
RATE = 16_000
log = logging.getLogger("longform_adapter")


def read_lines(manifest: Path) -> list[dict[str, Any]]:
    """A manifest's lines with absolute sources."""
    return [record.to_json() for record in read_manifest(manifest)]


def group(lines: list[dict[str, Any]], n: int, lo: float, hi: float, seed: int) -> list[list[dict[str, Any]]]:
    """``n`` runs of consecutive lines (a seeded shuffle), each of two clips or more, filled until
    their durations plus 1 s per pause (the longest pause drawn) reach a length drawn from
    ``[lo, hi]`` seconds, never passing ``hi``."""
    rng = random.Random(seed)
    order = list(lines)
    rng.shuffle(order)
    groups: list[list[dict[str, Any]]] = []
    i = 0
    while len(groups) < n and i < len(order):
        goal, run, total = rng.uniform(lo, hi), [], -1.0
        while i < len(order) and total + float(order[i]["duration"]) + 1.0 <= hi:
            run.append(order[i])
            total += float(order[i]["duration"]) + 1.0
            i += 1
            if total >= goal:
                break
        if len(run) < 2:
            i += 1 if not run else 0  # a clip too long to pair is skipped
            continue
        groups.append(run)
    if len(groups) < n:
        raise SystemExit(f"only {len(groups)} long clips could be made from {len(lines)} lines ({n} asked)")
    return groups


def join_clips(run: list[dict[str, Any]], path: Path, rng: random.Random) -> dict[str, Any]:
    """Write one recording of ``run``'s clips with silent pauses between them -> its manifest line."""
    from slamkit.data.audio import load_audio

    parts: list[np.ndarray] = []
    for k, line in enumerate(run):
        if k:
            parts.append(np.zeros(int(rng.uniform(0.3, 1.0) * RATE), dtype=np.float32))
        parts.append(np.asarray(load_audio(line["source"], RATE), dtype=np.float32))
    audio = np.concatenate(parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), audio, RATE, subtype="PCM_16")
    return {"key": path.stem, "source": str(path), "target": " ".join(line["target"].strip() for line in run),
            "duration": round(len(audio) / RATE, 3), "clips": [line["key"] for line in run]}


def make_data(data: Path, out: Path, n_long: int, lo: float, hi: float, seed: int) -> Path:
    """The training manifest: ``n_long`` long recordings and as many single clips (reused when made)."""
    manifest = out / "train.jsonl"
    if manifest.is_file():
        return manifest
    lines = read_lines(data)
    groups = group(lines, n_long, lo, hi, seed)
    rng = random.Random(f"{seed}:pauses")
    long = [join_clips(run, out / "wav" / f"long-{i:05d}.wav", rng) for i, run in enumerate(groups)]
    used = {key for line in long for key in line["clips"]}
    single = random.Random(f"{seed}:single").sample([line for line in lines if line["key"] not in used], n_long)
    mixed = long + single
    random.Random(f"{seed}:order").shuffle(mixed)
    tmp = manifest.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in mixed), encoding="utf-8")
    tmp.replace(manifest)
    seconds = [line["duration"] for line in long]
    log.info("%d long clips (%.1f-%.1f s, %.2f h) + %d single clips -> %s", len(long), min(seconds), max(seconds),
             sum(seconds) / 3600, len(single), manifest)
    return manifest


def train(manifest: Path, valid: Path | None, run: Path, reference: Path, steps: int, lr: float, extra: list[str]) -> None:
    """Fine-tune the reference adapter on ``manifest`` (skipped when ``run`` already reached ``steps``)."""
    from slamkit.train.checkpoint import latest_checkpoint

    latest = latest_checkpoint(run) if run.is_dir() else None
    if latest is not None and latest.step >= steps:
        return
    args = ["train", str(RECIPE), f"data.train={manifest}", f"train.init_from={reference}", f"train.output_dir={run}",
            f"train.max_steps={steps}", f"train.lr={lr}", "train.prealign_steps=0", f"train.warmup_steps={max(steps // 20, 1)}",
            "train.schedule=cosine", "train.min_lr_ratio=0.1", f"train.save_every={max(steps // 4, 1)}",
            f"train.valid_every={max(steps // 4, 1) if valid else 0}", "train.tensorboard=false",
            "model.encoder.cache_dtype=float16", *([f"data.valid={valid}"] if valid else []), *extra]
    log.info("$ slamkit %s", " ".join(args))
    subprocess.run([sys.executable, "-m", "slamkit", *args], check=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="the reference adapter's training manifest (the demo's train.jsonl)")
    p.add_argument("--valid", type=Path, default=None, help="a validation manifest (default: the --data folder's valid.jsonl if any)")
    p.add_argument("--out", type=Path, default=Path("runs/longform_adapter"), help="work folder (reused on rerun)")
    p.add_argument("--long", type=int, default=600, help="long recordings made (default 600), plus as many single clips")
    p.add_argument("--min-seconds", type=float, default=12.0, help="shortest long recording aimed at (default 12)")
    p.add_argument("--max-seconds", type=float, default=29.0, help="longest long recording (default 29: inside Whisper's 30 s window)")
    p.add_argument("--steps", type=int, default=400, help="fine-tuning steps (batch 4; default 400)")
    p.add_argument("--lr", type=float, default=3e-4, help="peak learning rate (default 3e-4)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--reference", type=Path, default=None, help="the run to start from (default the shipped tiny.en reference)")
    p.add_argument("override", nargs="*", help="key=value overrides for the training run")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    from slamkit.infer.reference import reference_run_dir

    reference = a.reference or reference_run_dir("tiny.en")
    if reference is None:
        raise SystemExit("no reference adapter found; pass --reference RUN_DIR")
    if not a.data.is_file():
        raise SystemExit(f"--data {a.data}: no such manifest (the demo's training manifest: <demo --out>/data/tts-…/train.jsonl)")
    valid = a.valid or (a.data.parent / "valid.jsonl" if (a.data.parent / "valid.jsonl").is_file() else None)
    manifest = make_data(a.data, a.out / "data", a.long, a.min_seconds, a.max_seconds, a.seed)
    train(manifest, valid, a.out / "run", Path(reference), a.steps, a.lr, a.override)
    print(f"run: {a.out / 'run'}\nnext: python benchmarks/longform_compare.py --run {a.out / 'run'} --window 30 --max-new-tokens 192")
    return 0


if __name__ == "__main__":
    sys.exit(main())
