"""One model for ASR and captioning: the linear, Q-Former and hybrid projectors trained on one mixture.

    python benchmarks/projector_mix.py --steps 3000            # the experiment (3-3.5 h on 2 CPU cores; docs/projectors.md)
    python benchmarks/projector_mix.py --quick                  # the whole path in minutes, numbers meaningless

1. Data. ASR: the demo's synthetic speech (``slamkit demo``'s data: mixed English text spoken by
   piper, flite and espeak-ng with pseudo-speakers, augmented; made once under ``<out>/data`` by
   :func:`slamkit.app.demo.prepare_data`, or reused from ``--demo-out``) with its clean held-out
   split (``synthetic``) and the real Asterisk prompts (``asterisk``) as ASR evaluation sets.
   Captioning: the Sonic Pi samples with templated captions (``slamkit prepare sonicpi``, one line
   per reference), its 34 test clips (``sonicpi``). The training lines of both go into one manifest,
   each with its ``task`` (asr | aac, which picks the prompt); the captioning lines are repeated so
   that they make up about ``--caption-share`` of it (they are few: 131 clips x 5 references).
2. Training. The recipe (``mix_asr_aac_hybrid_tiny_en``: Whisper tiny.en frozen -> projector ->
   SmolLM2-135M + LoRA) once per projector, with the same data, seed, schedule and budget
   (``--steps``, or ``--minutes`` of wall clock each); only ``model.projector`` changes:
   ``linear`` (the recipe's time branch alone: k=5, hidden 2048), ``qformer`` (the recipe's query
   branch alone: global, its width and layers, ``--qformer-queries`` queries, 64 by default, as
   SLAM-LLM's Q-Former) and ``hybrid`` (both: 16 global queries, then the frames).
3. Evaluation. Each run's last checkpoint decodes every evaluation set (ASR sets with the recipe's
   decoding settings, captions with ``--caption-tokens`` new tokens and no segmentation), and
   :func:`slamkit.infer.score.score_file` (what ``slamkit score`` runs) scores each hypothesis file:
   WER for the ASR sets, BLEU-4 / METEOR / ROUGE-L / CIDEr-D (needs Java) for the captions.
   One markdown table goes to stdout and ``<out>/results.md``; every number to ``<out>/results.json``.

With ``--minutes``, the first run also fills the encoder-feature cache (the recipe caches Whisper's
frozen features) unless an earlier run did; ``--steps`` gives every projector the same number of
updates whatever the cache holds.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slamkit.config import Config, load_config
from slamkit.data.manifest import read_manifest, write_manifest
from slamkit.recipe_files import resolve_recipe

log = logging.getLogger("slamkit")

COMPARED = ("linear", "qformer", "hybrid")
RECIPE = "mix_asr_aac_hybrid_tiny_en"
CAPTION_KEYS = ("bleu_4", "meteor", "rouge_l", "cider_d")
Scorer = Callable[[Path], dict[str, Any]]


@dataclass
class MixOptions:
    """What the comparison does; defaults are the experiment, :meth:`quick` the smoke run."""

    out: Path = Path("runs/projector_mix")
    recipe: str = RECIPE
    projectors: tuple[str, ...] = COMPARED
    steps: int = 3000  # optimizer steps per projector (ignored when minutes is set)
    minutes: float | None = None  # wall-clock training budget per projector instead of steps
    seed: int = 0
    utterances: int = 8000  # demo TTS utterances (train + held out; the demo's default, so --demo-out reuses its data)
    test_utterances: int = 100  # clean synthetic ASR test clips
    eval_limit: int | None = 100  # Asterisk clips (None: all)
    caption_share: float = 0.25  # share of captioning lines in the mixed training manifest
    qformer_queries: int = 64
    caption_tokens: int = 40  # max new tokens when captioning (the aac recipe's)
    demo_out: Path | None = None  # where the demo's data lives (default: out)
    overrides: list[str] = field(default_factory=list)  # applied to every run, last

    @classmethod
    def quick(cls, **kwargs: Any) -> "MixOptions":
        """Minutes end to end: a little speech, a few steps, small evaluation sets."""
        base = dict(steps=30, utterances=300, test_utterances=10, eval_limit=10)
        return cls(**{**base, **kwargs})


@dataclass
class MixData:
    """The mixed training manifest and the evaluation sets (name -> manifest; the task is in the lines)."""

    train: Path
    eval_sets: dict[str, Path]
    counts: dict[str, Any]


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------


def _lines(manifest: Path, task: str) -> list[dict[str, Any]]:
    """``manifest``'s records as manifest lines with absolute sources and ``task`` set."""
    return [{**r.to_json(), "source": str(Path(str(r.source)).resolve()), "task": task} for r in read_manifest(manifest)]


def mix_manifests(asr: Path, captions: Path, out: Path, caption_share: float, seed: int) -> dict[str, Any]:
    """Write one training manifest holding ``asr``'s records (task asr) and ``captions``' (task aac).

    The captioning lines are repeated (keys ``KEY~n``) as often as it takes to come nearest to
    ``caption_share`` of the lines, at least once; the lines are shuffled with ``seed``. Returns
    the counts: asr and aac lines, the repeat factor and the share reached.
    """
    if not 0.0 < caption_share < 1.0:
        raise ValueError(f"--caption-share must be in (0, 1), got {caption_share}")
    speech, sounds = _lines(asr, "asr"), _lines(captions, "aac")
    if not speech or not sounds:
        raise ValueError(f"the mixture needs both tasks: {len(speech)} ASR lines in {asr}, {len(sounds)} captioning lines in {captions}")
    repeats = max(1, round(caption_share / (1.0 - caption_share) * len(speech) / len(sounds)))
    copies = sounds if repeats == 1 else [{**r, "key": f"{r['key']}~{n}"} for n in range(repeats) for r in sounds]
    lines = speech + copies
    random.Random(seed).shuffle(lines)
    write_manifest(lines, out)
    return {"asr_lines": len(speech), "aac_lines": len(copies), "aac_repeats": repeats,
            "caption_share": round(len(copies) / len(lines), 3)}


def prepare_mix(opts: MixOptions) -> MixData:
    """The demo's speech and the Sonic Pi captions, mixed; made once under ``opts.out`` (or reused)."""
    from slamkit.app.demo import DemoOptions, ensure_assets, prepare_data
    from slamkit.prepare.sonicpi import prepare_sonicpi

    demo = DemoOptions(out=opts.demo_out or opts.out, utterances=opts.utterances, test_utterances=opts.test_utterances,
                       eval_limit=opts.eval_limit, seed=opts.seed)
    speech = prepare_data(demo, ensure_assets(demo))
    sonicpi = opts.out / "data" / "sonicpi"
    prepare_sonicpi(sonicpi, install=True, seed=opts.seed, per_caption=True)
    train = opts.out / "data" / "mix_train.jsonl"
    counts = mix_manifests(speech["train"], sonicpi / "train.jsonl", train, opts.caption_share, opts.seed)
    sets = {"synthetic": speech["synthetic"], "asterisk": speech["asterisk"], "sonicpi": sonicpi / "test.jsonl"}
    return MixData(train, sets, counts)


# ---------------------------------------------------------------------------------------------
# Training and evaluation
# ---------------------------------------------------------------------------------------------


def projector_overrides(name: str, recipe_cfg: Config, qformer_queries: int) -> list[str]:
    """``model.projector`` settings of one compared projector, derived from the recipe's hybrid:
    ``linear`` is its time branch, ``qformer`` its query branch (with ``qformer_queries`` queries)."""
    pc = recipe_cfg.model.projector
    if name == "qformer" and pc.query_hidden is None:
        raise ValueError("the recipe's model.projector.query_hidden is null: set it, so the Q-Former baseline gets the hybrid's query width")
    settings = {
        "linear": ["model.projector.name=linear"],
        "qformer": ["model.projector.name=qformer", f"model.projector.hidden={pc.query_hidden}",
                    f"model.projector.num_queries={qformer_queries}", "model.projector.window=null"],
        "hybrid": ["model.projector.name=hybrid"],
    }
    if name not in settings:
        raise ValueError(f"--projectors: unknown {name!r}; compared: {', '.join(settings)}")
    return settings[name]


def run_config(opts: MixOptions, data: MixData, name: str) -> Config:
    """The training config of projector ``name``: the recipe, the mixture, the budget, the seed."""
    recipe = resolve_recipe(opts.recipe)
    budget = ([f"train.max_minutes={opts.minutes}", "train.max_steps=1000000000"] if opts.minutes is not None
              else [f"train.max_steps={opts.steps}"])
    common = [f"data.train={data.train}", "data.valid=null", f"train.output_dir={opts.out / 'runs' / name}",
              f"train.seed={opts.seed}", f"model.projector.init_seed={opts.seed}", *budget]
    base = load_config(recipe, [*common, *opts.overrides])
    return load_config(recipe, [*common, *projector_overrides(name, base, opts.qformer_queries), *opts.overrides])


def evaluate(run_dir: Path, data: MixData, out: Path, caption_tokens: int, scorer: Scorer) -> tuple[dict[str, dict], dict[str, Any]]:
    """Decode every evaluation set with the run's last checkpoint and score it; returns the scores
    per set and facts about the model (projector parameters, audio tokens for a 3 s clip)."""
    from slamkit.infer.decode import decode_manifest, load_run

    cfg, model = load_run(run_dir, ["decode.checkpoint=latest"])
    captioning = dataclasses.replace(cfg, decode=dataclasses.replace(cfg.decode, max_new_tokens=caption_tokens, max_segment_seconds=None))
    out.mkdir(parents=True, exist_ok=True)
    scores = {}
    for name, manifest in data.eval_sets.items():
        tasks = {r.task or cfg.data.task for r in read_manifest(manifest)}
        start = time.perf_counter()
        hyp = out / f"{name}.hyp.jsonl"
        decode_manifest(captioning if tasks == {"aac"} else cfg, model, manifest, hyp)
        scores[name] = {**scorer(hyp), "decode_seconds": round(time.perf_counter() - start, 1), "hyps": str(hyp)}
    facts = {"projector_params": sum(p.numel() for p in model.projector.parameters()),
             "audio_tokens_3s": model.audio_token_count(3 * 16000)}
    return scores, facts


def compare(opts: MixOptions, data: MixData, scorer: Scorer | None = None) -> list[dict[str, Any]]:
    """Train and evaluate every projector of ``opts.projectors``; one flat result row each."""
    from slamkit.train.loop import train

    if scorer is None:
        from slamkit.infer.score import score_file

        scorer = score_file
    rows = []
    for name in opts.projectors:
        cfg = run_config(opts, data, name)
        start = time.perf_counter()
        result = train(cfg)
        seconds = time.perf_counter() - start
        scores, facts = evaluate(result.run_dir, data, opts.out / "hyps" / name, opts.caption_tokens, scorer)
        rows.append({"projector": name, **facts, "steps": result.step, "train_seconds": round(seconds, 1),
                     "last_loss": result.last_loss, **flatten(scores), "scores": scores})
        log.info("%s: %s", name, json.dumps({k: v for k, v in rows[-1].items() if k != "scores"}))
    return rows


def flatten(scores: dict[str, dict]) -> dict[str, float | None]:
    """``{set}_wer`` for sets scored by WER, ``{set}_{metric}`` for caption sets (None: not computed)."""
    row: dict[str, float | None] = {}
    for name, result in scores.items():
        if "wer" in result:
            row[f"{name}_wer"] = result["wer"]
        else:
            row.update({f"{name}_{key}": result.get(key) for key in CAPTION_KEYS})
    return row


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """The markdown table of the rows: size, training, then every score column they share."""
    scored = [k for k in rows[0] if k.endswith(("_wer", *(f"_{m}" for m in CAPTION_KEYS)))] if rows else []
    head = ["projector", "params (M)", "audio tokens / 3 s", "steps", "train (s)", *scored]

    def cell(key: str, value: Any) -> str:
        if value is None:
            return "n/a"
        if key.endswith("_wer"):
            return f"{100 * value:.1f} %"
        if isinstance(value, float):
            return f"{value:.3f}"
        return str(value)

    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        fixed = [r["projector"], f"{r['projector_params'] / 1e6:.2f}", str(r["audio_tokens_3s"]), str(r["steps"]), f"{r['train_seconds']:.0f}"]
        lines.append("| " + " | ".join(fixed + [cell(k, r.get(k)) for k in scored]) + " |")
    return "\n".join(lines)


def write_results(opts: MixOptions, data: MixData, rows: Sequence[dict[str, Any]]) -> str:
    """``results.json`` (options, data counts, rows) and ``results.md`` under ``opts.out``; returns the table."""
    table = format_table(rows)
    opts.out.mkdir(parents=True, exist_ok=True)
    options = {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(opts).items()}
    payload = {"options": options, "data": {"train": str(data.train), **data.counts,
               "eval_sets": {k: str(v) for k, v in data.eval_sets.items()}}, "rows": list(rows)}
    (opts.out / "results.json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    (opts.out / "results.md").write_text(table + "\n", encoding="utf-8")
    return table


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> MixOptions:
    """``MixOptions`` from the command line (``--quick`` sets the small defaults, flags win)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=None, help="output folder (default runs/projector_mix, or runs/projector_mix_quick)")
    p.add_argument("--quick", action="store_true", help="minutes end to end: 300 utterances, 30 steps, 10-clip ASR sets")
    p.add_argument("--projectors", default=",".join(COMPARED), help="comma-separated subset of linear,qformer,hybrid")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=int, default=None, help="optimizer steps per projector (default 3000; quick 30)")
    budget.add_argument("--minutes", type=float, default=None, help="wall-clock training minutes per projector instead of steps")
    p.add_argument("--seed", type=int, default=0, help="data, split, shuffling and initial weights (the same for every projector)")
    p.add_argument("--utterances", type=int, default=None, help="demo TTS utterances (default 8000, as `slamkit demo`; quick 300)")
    p.add_argument("--eval-limit", type=int, default=None, help="Asterisk clips decoded (default 100; quick 10)")
    p.add_argument("--caption-share", type=float, default=0.25, help="share of captioning lines in the training manifest")
    p.add_argument("--qformer-queries", type=int, default=64, help="queries of the Q-Former baseline")
    p.add_argument("--caption-tokens", type=int, default=40, help="most new tokens of a caption (the aac recipe's)")
    p.add_argument("--demo-out", type=Path, default=None, help="a `slamkit demo --out` folder (e.g. runs/demo) whose synthetic speech to reuse: made with the same --utterances and --seed it is not made again")
    p.add_argument("--recipe", default=RECIPE, help="the recipe every run starts from")
    p.add_argument("overrides", nargs="*", help="config overrides applied to every run (key=value)")
    a = p.parse_args(argv)
    given = {k: v for k, v in {"steps": a.steps, "minutes": a.minutes, "utterances": a.utterances, "eval_limit": a.eval_limit}.items() if v is not None}
    common = dict(out=a.out or Path("runs/projector_mix" + ("_quick" if a.quick else "")), recipe=a.recipe,
                  projectors=tuple(n.strip() for n in a.projectors.split(",") if n.strip()), seed=a.seed,
                  caption_share=a.caption_share, qformer_queries=a.qformer_queries, caption_tokens=a.caption_tokens, demo_out=a.demo_out, overrides=list(a.overrides))
    return MixOptions.quick(**common, **given) if a.quick else MixOptions(**common, **given)


def main(argv: Sequence[str] | None = None) -> int:
    """Prepare, train, evaluate, print the table."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    opts = parse_args(argv)
    for name in opts.projectors:
        projector_overrides(name, load_config(resolve_recipe(opts.recipe)), opts.qformer_queries)  # fail before hours of work
    start = time.perf_counter()
    data = prepare_mix(opts)
    log.info("mixture: %s", json.dumps(data.counts))
    rows = compare(opts, data)
    print(write_results(opts, data, rows))
    print(f"\n{len(rows)} projectors in {math.ceil(time.perf_counter() - start)} s; numbers in {opts.out / 'results.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
