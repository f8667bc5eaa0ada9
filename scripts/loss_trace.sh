#!/usr/bin/env bash
# Per-step training trace of the tiny recipe (300 steps, seed 42) of the slamkit checkout REPO,
# run with this repository's venv: `step step_loss grad_norm` lines (and `step valid loss`).
# Two checkouts that train the same print the same bytes. Used to show that a refactor changes
# no number, e.g.:
#   git worktree add /tmp/before 06722a5
#   scripts/loss_trace.sh /tmp/before /tmp/trace-before > /tmp/before.txt
#   scripts/loss_trace.sh .           /tmp/trace-after  > /tmp/after.txt
#   cmp /tmp/before.txt /tmp/after.txt && echo identical
# Extra key=value overrides may follow (e.g. train.grad_accum=2).
set -euo pipefail
REPO=$(cd "$1" && pwd); OUT=$2; shift 2
PY=$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/python
export HF_HUB_OFFLINE=1 PYTHONPATH="$REPO/src"
rm -rf "$OUT/run"; mkdir -p "$OUT"
[ -f "$OUT/data/train.jsonl" ] || (cd "$REPO" && "$PY" -m slamkit.cli prepare tones --out "$OUT/data" > /dev/null)
(cd "$REPO" && "$PY" -m slamkit.cli train recipes/tiny_asr.yaml "train.output_dir=$OUT/run" "data.train=$OUT/data/train.jsonl" \
    "data.valid=$OUT/data/valid.jsonl" train.max_steps=300 train.log_every=1 train.valid_every=100 train.save_every=100 \
    train.tensorboard=false "$@" > "$OUT/train.log" 2>&1)
"$PY" - "$OUT/run/metrics.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    for key in ("step_loss", "prealign_loss"):
        if key in r:
            print(r["step"], key, repr(r[key]), repr(r["grad_norm"]))
    if "valid_loss" in r:
        print(r["step"], "valid_loss", repr(r["valid_loss"]))
PY
