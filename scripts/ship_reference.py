"""Copy one checkpoint of a training run into the package as a shipped reference adapter.

    python scripts/ship_reference.py RUN_DIR (--step N | --checkpoint DIR) [--name demo_asr_tiny_en] [--after DIR] [key=value …]

Writes ``src/slamkit/reference/NAME/``: ``config.yaml`` (the run's config, machine paths replaced
by the demo's defaults, ``key=value`` overrides applied, e.g. decoding settings), the checkpoint's
``model.safetensors`` stored in float16 (the trainable weights only: projector + LoRA) with its
``meta.json``, and the run's ``metrics.jsonl`` up to that step. ``slamkit demo`` finds it through
``slamkit.app.demo.reference_run_dir``. ``--checkpoint DIR`` ships that checkpoint directory instead of
a step of the run (e.g. ``slamkit average RUN --last 6``'s output; its ``meta.json`` step, the newest
averaged, names it and bounds the log); the folder's README (written by hand) says how it was trained.

``--after DIR`` is for a run started with ``train.init_from`` from a shipped reference folder ``DIR`` (a new run counts
its steps from 0): the steps shipped count on from ``DIR``'s checkpoint (run step N is shipped as step D + N, D being
``DIR``'s step), the log is ``DIR``'s ``metrics.jsonl`` followed by the run's with D added to its steps, and
``meta.json`` records ``"init_from_step": D``. ``DIR`` may be the folder being replaced.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from slamkit.config import dump_config, load_config

REPO = Path(__file__).resolve().parents[1]
# Where `slamkit demo --out runs/demo` (default settings) writes the data the reference is trained on.
DEMO_DATA = "runs/demo/data/tts-8000-0-short800-9a138708"
PORTABLE = {
    "train.output_dir": "runs/reference_tiny_en",
    "data.train": f"{DEMO_DATA}/augment-7a16b86e/train.jsonl",
    "data.valid": f"{DEMO_DATA}/valid.jsonl",
}


def write_meta(src: Path, dest: Path, offset: int = 0) -> None:
    """``dest/meta.json``: the run's record of the checkpoint, with the size and sha256 of the files
    shipped (the float16 weights; the optimizer state ``state.pt`` is not shipped), so resolving
    the checkpoint verifies what is in the package. ``offset``: added to the step (``--after``)."""
    meta = json.loads((src / "meta.json").read_text())
    if offset:
        meta["step"] = meta["step"] + offset
        meta["init_from_step"] = offset
    for part in meta.get("averaged_from", []):  # `slamkit average`'s record: keep the steps, not this machine's paths
        part.pop("path", None)
    if "files" in meta:
        meta["files"] = {f.name: {"size": f.stat().st_size, "sha256": hashlib.sha256(f.read_bytes()).hexdigest()}
                         for f in sorted(dest.iterdir()) if f.is_file() and f.name != "meta.json"}
    (dest / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")


def shipped_step(folder: Path) -> int:
    """The step of the one checkpoint in a shipped reference folder."""
    metas = sorted((folder / "checkpoints").glob("step_*/meta.json"))
    if len(metas) != 1:
        raise SystemExit(f"{folder}: expected one checkpoint under checkpoints/, found {len(metas)}")
    return int(json.loads(metas[0].read_text())["step"])


def run_log(run_dir: Path, step: int, after: Path | None) -> list[str]:
    """The log to ship: the run's ``metrics.jsonl`` up to ``step``, after ``after``'s log with its steps offset."""
    offset, lines = 0, []
    if after is not None:
        offset = shipped_step(after)
        lines = [line for line in (after / "metrics.jsonl").read_text().splitlines() if line.strip()]
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        if record.get("step", 0) <= step:
            if offset:
                record["step"] = record.get("step", 0) + offset
                line = json.dumps(record)
            lines.append(line)
    return lines


def ship(run_dir: Path, step: int, name: str, overrides: list[str], checkpoint: Path | None = None,
         after: Path | None = None) -> Path:
    """Write the reference folder; returns it."""
    src = checkpoint or run_dir / "checkpoints" / f"step_{step:08d}"
    if not (src / "meta.json").is_file():
        raise SystemExit(f"{src}: no complete checkpoint (meta.json missing)")
    offset = shipped_step(after) if after is not None else 0
    log_lines = run_log(run_dir, step, after)  # read before `after` (possibly the same folder) is replaced
    dest = REPO / "src" / "slamkit" / "reference" / name
    ckpt_dest = dest / "checkpoints" / f"step_{offset + step:08d}"
    if dest.exists():
        shutil.rmtree(dest / "checkpoints", ignore_errors=True)
    ckpt_dest.mkdir(parents=True)
    cfg = load_config(run_dir / "config.yaml", [f"{k}={v}" for k, v in PORTABLE.items()] + overrides)
    dump_config(cfg, dest / "config.yaml")
    weights = load_file(str(src / "model.safetensors"))
    save_file({k: v.to(torch.float16) if v.is_floating_point() else v for k, v in weights.items()}, str(ckpt_dest / "model.safetensors"))
    write_meta(src, ckpt_dest, offset)
    (dest / "metrics.jsonl").write_text("\n".join(log_lines) + "\n")
    return dest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--step", type=int, help="ship RUN_DIR/checkpoints/step_N")
    which.add_argument("--checkpoint", type=Path, help="ship this checkpoint directory (e.g. an average)")
    parser.add_argument("--name", default="demo_asr_tiny_en")
    parser.add_argument("--after", type=Path, default=None,
                        help="the shipped reference folder the run started from (train.init_from): count steps on from its step")
    parser.add_argument("overrides", nargs="*")
    args, extra = parser.parse_known_args()
    args.overrides += extra
    step = args.step if args.checkpoint is None else json.loads((args.checkpoint / "meta.json").read_text())["step"]
    dest = ship(args.run_dir, step, args.name, args.overrides, args.checkpoint, args.after)
    size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    print(f"{dest}: {size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
