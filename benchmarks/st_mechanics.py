"""Speech-translation mechanics check: synthetic English speech -> transcript -> word-by-word French gloss.

    python benchmarks/st_mechanics.py --out runs/st_mechanics            # 12 sentences, 300 steps
    python benchmarks/st_mechanics.py --out runs/st_mechanics --quick    # 30 steps, a minute

Speaks the sentences of :data:`slamkit.prepare.freedict.SENTENCES` with flite, glosses each into
French word by word with Debian's FreeDict dictionary (asset ``freedict-eng-fra``), trains the tiny
random recipe (``tiny_asr.yaml`` with ``data.task=st_cot``) on them, decodes the same clips and
scores them (BLEU/chrF of the translation part, WER of the transcript part). It checks that the
chain-of-thought path runs end to end; the figures are a **mechanics check, not a result**: the
model memorises a dozen training clips and the "translations" are dictionary glosses.
Needs ``flite`` on PATH and ``slamkit assets install freedict-eng-fra``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for data/, run/, st.hyp.jsonl and score.json")
    parser.add_argument("--steps", type=int, default=300, help="training steps (default 300)")
    parser.add_argument("--quick", action="store_true", help="30 steps: only that everything runs")
    parser.add_argument("--direct", action="store_true", help="task st (the gloss alone) instead of st_cot")
    parser.add_argument("--install", action="store_true", help="install the freedict-eng-fra asset if missing")
    args = parser.parse_args()

    from slamkit.config import load_config
    from slamkit.infer.decode import decode
    from slamkit.infer.score import score_file
    from slamkit.prepare.freedict import prepare_gloss_st
    from slamkit.recipe_files import resolve_recipe
    from slamkit.train.loop import train

    out = Path(args.out)
    start = time.perf_counter()
    data = prepare_gloss_st(out / "data", cot=not args.direct, install=args.install)
    steps = 30 if args.quick else args.steps
    run = out / "run"
    task = "st" if args.direct else "st_cot"
    train(load_config(resolve_recipe("tiny_asr"), [
        f"train.output_dir={run}", f"data.train={data['manifest']}", "data.valid=null", f"data.task={task}",
        f"train.max_steps={steps}", "train.warmup_steps=10", f"train.save_every={steps}", "train.tensorboard=false"]))
    hyps = out / "st.hyp.jsonl"
    decode(run, data["manifest"], hyps, ["decode.max_new_tokens=96"])
    result = {"what": "mechanics check on the training clips (dictionary gloss, tiny random model), not a result",
              "task": task, "steps": steps, "utterances": data["utterances"], "unknown_words": data["unknown_words"],
              **score_file(hyps), "seconds": round(time.perf_counter() - start, 1)}
    (out / "score.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
