"""Text-only in-domain adaptation: does training the LLM's LoRA on a domain's text lower the ASR WER
on that domain's speech, and leave another domain alone? (docs/text-only.md)

    python benchmarks/textonly_adaptation.py --out /tmp/textonly              # the measured run
    python benchmarks/textonly_adaptation.py --out /tmp/textonly-quick --quick  # mechanics, minutes

1. Text: the sentences of a target text source (default ``jargon``, the Jargon File's hacker slang)
   and of a control source (default ``wordnet``'s everyday examples), from
   :data:`slamkit.prepare.text.TEXT_SOURCES`, each shuffled with ``--seed``. The first ``--test``
   of each are the held-out test sentences; the adaptation text is the next target sentences that
   share no 6-word run with any test sentence (:class:`slamkit.prepare.text.EvalGuard`), a
   ``--valid`` slice for validation and ``--train`` sentences for training. Both domains are in the
   demo's default text mix (wordnet:8000, jargon:2000), on which the shipped reference adapter was
   trained: every sentence of that training text (``--base-text``, rebuilt exactly as ``slamkit
   demo`` builds it) and every sentence sharing a 6-word run with it is removed from both domains
   first, so neither the test speech nor the adaptation text was ever seen by the baseline.
   ``--target-manifest M`` takes a target domain of real speech instead (e.g. the demo's
   ``asterisk.jsonl``: telephone-system prompts, never in the baseline's training text): ``--test``
   of its recordings are the test set and the other transcripts, minus any that share a 6-word run
   with a test transcript or are part of one, are the adaptation text.
2. Speech: the test sentences spoken by ``slamkit prepare tts`` (``--engines``, default the demo's
   engine mix) -> ``<out>/speech/{target,control}/tts.jsonl``.
3. Adaptation: ``slamkit train recipes/textonly_adapt_smollm2.yaml`` from the shipped reference
   adapter (``train.init_from``), on text-only records (no ``source``), once per ``--layout``:
   ``plain`` (records without a prompt: the text alone, loss on every token) and/or ``prompt``
   (records with the ASR prompt: laid out as an ASR sample with zero audio tokens); with
   ``--replay`` (the baseline's ASR training manifest) also ``mixed`` (the plain text plus as many
   of those ASR clips, so the LoRA keeps following the audio) and ``replay`` (the clips alone, the
   same steps: what continued ASR training does without the target text, the control for ``mixed``).
4. Decoding both test sets with the reference adapter (the frozen-LLM baseline: the adapter as
   shipped) and with each adapted run, the same decoding settings for all, then
   ``slamkit score`` (WER, Whisper normaliser). Prints a markdown table and writes
   ``<out>/results.json`` (rows of earlier runs in the same folder are kept; a folder made with other settings is refused). Every command run is logged, so each step can be repeated by hand.

Needs the assets whisper-tiny.en, smollm2-135m-instruct-gguf, the two text sources' assets and the
TTS engines (flite, espeak-ng, piper: ``slamkit assets list``).
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from slamkit.data.manifest import read_manifest
from slamkit.prepare.text import DEFAULT_MIX, EvalGuard, evaluation_texts, mix_sentences, source_sentences, write_text_file

log = logging.getLogger("textonly")
RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "textonly_adapt_smollm2.yaml"
ASR_PROMPT = "Transcribe."  # the reference adapter's prompt (its data.prompt)
LAYOUTS = ("plain", "prompt", "mixed", "replay")  # the adaptation runs --layout can ask for
DEMO_ENGINES = "piper:0.5,flite:0.3,espeak-ng:0.2"  # slamkit.app.demo.DEFAULT_ENGINES: the reference's voices


def split_domains(target: Sequence[str], control: Sequence[str], n_test: int, n_train: int, n_valid: int,
                  seed: int = 0) -> dict[str, list[str]]:
    """Held-out test sentences of both domains and the target's adaptation text (train, valid).

    Each source is shuffled with ``seed``; its first ``n_test`` sentences are the test set. The
    adaptation text comes from the rest of the target source, leaving out every sentence that
    shares a 6-word run with a test sentence of either domain, so no test sentence is ever trained on.
    """
    tgt, ctl = list(target), list(control)
    random.Random(f"{seed}:target").shuffle(tgt)
    random.Random(f"{seed}:control").shuffle(ctl)
    target_test, control_test = tgt[:n_test], ctl[:n_test]
    guard = EvalGuard(target_test + control_test)
    pool = [s for s in tgt[n_test:] if not guard.overlaps(s)]
    if len(pool) < n_valid + n_train or len(target_test) < n_test or len(control_test) < n_test:
        raise ValueError(f"not enough sentences: {len(pool)} for adaptation ({n_valid + n_train} asked), "
                         f"{len(target_test)} and {len(control_test)} for test ({n_test} asked)")
    return {"target_test": target_test, "control_test": control_test,
            "adapt_valid": pool[:n_valid], "adapt_train": pool[n_valid : n_valid + n_train]}


def split_manifest_domain(lines: Sequence[dict[str, Any]], control: Sequence[str], n_test: int, n_train: int, n_valid: int,
                          seed: int = 0) -> tuple[dict[str, list[str]], list[dict[str, Any]]]:
    """A target domain given as real speech (``--target-manifest``): ``n_test`` of its recordings are
    the test set, and the transcripts of the others that share no 6-word run with a test transcript
    (nor are part of one) are the adaptation text (``n_valid`` for validation, up to ``n_train`` for
    training). Returns the sets (as :func:`split_domains`) and the test recordings' lines."""
    recs = list(lines)
    random.Random(f"{seed}:target").shuffle(recs)
    ctl = list(control)
    random.Random(f"{seed}:control").shuffle(ctl)
    test, control_test = recs[:n_test], ctl[:n_test]
    guard = EvalGuard([r["target"] for r in test] + control_test)
    seen: set[str] = set()
    pool = []
    for r in recs[n_test:]:
        text = str(r["target"]).strip()
        if text and text not in seen and not guard.overlaps(text):
            seen.add(text)
            pool.append(text)
    if len(test) < n_test or len(control_test) < n_test or len(pool) <= n_valid:
        raise ValueError(f"not enough lines: {len(test)} and {len(control_test)} test ({n_test} asked), "
                         f"{len(pool)} adaptation transcripts ({n_valid} for validation)")
    sets = {"target_test": [r["target"] for r in test], "control_test": control_test,
            "adapt_valid": pool[:n_valid], "adapt_train": pool[n_valid : n_valid + n_train]}
    return sets, test


def unseen(sentences: Sequence[str], base_text: str, seed: int = 0) -> list[str]:
    """``sentences`` minus those the baseline was trained on: the text mix ``base_text`` as ``slamkit
    demo`` builds it (evaluation transcripts excluded, ``seed`` 0), and any sentence sharing a
    6-word run with it. An empty ``base_text`` keeps everything."""
    if not base_text:
        return list(sentences)
    guard = EvalGuard(mix_sentences(base_text, exclude=evaluation_texts(), seed=seed).sentences)
    return [s for s in sentences if not guard.overlaps(s)]


def text_records(sentences: Sequence[str], prefix: str, prompt: str | None) -> list[dict[str, Any]]:
    """Text-only manifest lines (no ``source``); with ``prompt``, laid out as ASR samples."""
    extra = {"prompt": prompt} if prompt is not None else {}
    return [{"key": f"{prefix}{i:05d}", "target": s, **extra} for i, s in enumerate(sentences)]


def write_jsonl(lines: Sequence[dict[str, Any]], path: Path) -> Path:
    """Write JSON lines (parents created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
    return path


def slamkit(*args: str) -> None:
    """Run one ``slamkit`` command in a fresh process (logged as the command a user would type)."""
    cmd = [sys.executable, "-m", "slamkit", *args]
    log.info("$ slamkit %s", " ".join(args))
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    log.info("  done in %.0f s", time.perf_counter() - start)


def speak(sentences: list[str], folder: Path, engines: str, seed: int, workers: int) -> Path:
    """The test sentences as speech (``slamkit prepare tts``); reused when already there."""
    manifest = folder / "tts.jsonl"
    if not manifest.is_file():
        write_text_file(sentences, folder / "lines.txt")
        slamkit("prepare", "tts", str(folder / "lines.txt"), "--out", str(folder), "--engines", engines,
                "--seed", str(seed), "--workers", str(workers))
    return manifest


def audio_lines(manifest: Path) -> list[dict[str, Any]]:
    """A manifest's audio lines as dicts, sources resolved against its folder (text-only lines left out)."""
    return [r.to_json() for r in read_manifest(manifest, text_records="mixed") if not r.is_text]


def replay_records(manifest: Path | None, n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` ASR lines drawn from ``manifest`` (the baseline's own training data), sources made absolute."""
    if manifest is None:
        raise SystemExit("--layout mixed/replay needs --replay MANIFEST: the baseline's ASR training manifest "
                         "(the demo's: <demo --out>/data/tts-…/train.jsonl)")
    lines = audio_lines(manifest)
    if len(lines) < n:
        raise SystemExit(f"{manifest}: {len(lines)} lines, {n} replay clips asked")
    picked = random.Random(f"{seed}:replay").sample(lines, n)
    return picked


def adaptation_records(layout: str, sentences: Sequence[str], prefix: str, replay: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A layout's training lines: the text alone (``plain``), as ASR samples without audio
    (``prompt``), the plain text with as many replayed ASR clips (``mixed``), or the clips alone
    (``replay``: continued ASR training with no target text, the control for ``mixed``)."""
    if layout == "replay":
        return replay
    text = text_records(sentences, prefix, ASR_PROMPT if layout == "prompt" else None)
    return text + replay if layout == "mixed" else text


def adapt(out: Path, layout: str, sets: dict[str, list[str]], reference: Path, args: argparse.Namespace) -> Path:
    """Train the adapted run of ``layout`` (reused when it finished before)."""
    with_clips = layout in ("mixed", "replay")
    replay = replay_records(args.replay, len(sets["adapt_train"]), args.seed) if with_clips else []
    train = write_jsonl(adaptation_records(layout, sets["adapt_train"], "train", replay), out / "text" / f"train_{layout}.jsonl")
    valid = write_jsonl(text_records(sets["adapt_valid"], "valid", ASR_PROMPT if layout == "prompt" else None),
                        out / "text" / f"valid_{layout}.jsonl")
    run = out / "runs" / f"adapted_{layout}"
    # clips: the demo's feature cache. The projector stays trainable, as in the baseline's own training (train.init_from
    # cannot yet load a checkpoint's projector into a frozen one), so mixed/replay also move it; plain/prompt cannot.
    clips = ["data.text_records=mixed", "model.encoder.cache_dtype=float16"] if with_clips else []
    if not _finished(run, args.steps):
        slamkit("train", str(RECIPE), f"data.train={train}", f"data.valid={valid}", f"train.init_from={reference}",
                f"train.output_dir={run}", f"train.max_steps={args.steps}", f"train.lr={args.lr}",
                f"train.warmup_steps={max(args.steps // 15, 1)}",  # the recipe's 20 of 300, scaled
                f"train.valid_every={max(args.steps // 3, 1)}", f"train.save_every={args.steps}", "train.tensorboard=false",
                *clips, *args.override)
    return run


SETTINGS = ("target", "control", "test", "steps", "lr", "beam", "engines", "seed", "base_text")  # what one table holds fixed


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings every row of one results table shares."""
    return {key: getattr(args, key) for key in SETTINGS}


def _check_folder(path: Path, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """The rows of an earlier run in this ``--out`` (its runs and hypotheses are reused); refuses a
    folder made with other settings, whose reused runs would be mislabelled."""
    if not path.is_file():
        return {}
    old = json.loads(path.read_text())
    differ = [key for key, value in _settings(args).items() if old.get("settings", {}).get(key) != value]
    if differ:
        raise SystemExit(f"{path}: made with other settings ({', '.join(differ)}); use another --out")
    return old.get("wer_percent", {})


def _run_name(layout: str) -> str:
    """A run's row name in the table."""
    return "replay only (no text)" if layout == "replay" else f"text-adapted ({layout})"


def _finished(run: Path, steps: int) -> bool:
    """Whether ``run`` has a checkpoint at step ``steps``."""
    from slamkit.train.checkpoint import latest_checkpoint

    latest = latest_checkpoint(run) if run.is_dir() else None
    return latest is not None and latest.step >= steps


def wer(run: Path, manifest: Path, hyp: Path, beam: int) -> float:
    """Decode ``manifest`` with ``run`` (reused when ``hyp`` exists) and return its WER (%)."""
    from slamkit.infer.score import score_file

    if not hyp.is_file():
        slamkit("decode", str(run), "--manifest", str(manifest), "--out", str(hyp), f"decode.beam_size={beam}",
                "decode.no_repeat_ngram_size=3", "decode.batch_size=8", "decode.checkpoint=latest")
    return 100.0 * float(score_file(hyp, metric="wer")["wer"])


def table(results: dict[str, dict[str, float]], target: str, control: str) -> str:
    """Markdown table: WER per adapter and domain, and the change against the reference."""
    base = results["reference"]
    rows = [f"| adapter | target: {target} WER % | Δ | control: {control} WER % | Δ |", "|---|---|---|---|---|"]
    for name, r in results.items():
        dt = "" if name == "reference" else f"{r['target'] - base['target']:+.1f}"
        dc = "" if name == "reference" else f"{r['control'] - base['control']:+.1f}"
        rows.append(f"| {name} | {r['target']:.1f} | {dt} | {r['control']:.1f} | {dc} |")
    return "\n".join(rows)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/textonly_adaptation"), help="work folder (reused on rerun)")
    p.add_argument("--target", default="jargon", help="text source of the target domain (default jargon)")
    p.add_argument("--target-manifest", type=Path, default=None,
                   help="a target domain of real speech instead of --target: --test of its recordings are the test set, "
                   "the other transcripts the adaptation text (e.g. the demo's asterisk.jsonl)")
    p.add_argument("--control", default="wordnet", help="text source of the control domain (default wordnet)")
    p.add_argument("--base-text", default=DEFAULT_MIX, help="the baseline's training text mix, removed from both domains "
                   f"(default the demo's, {DEFAULT_MIX}; '' keeps every sentence)")
    p.add_argument("--test", type=int, default=60, help="test sentences (spoken clips) per domain (default 60)")
    p.add_argument("--train", type=int, default=2400, help="adaptation sentences of the target domain (default 2400: the jargon file has about 2 600 once the demo's training text is removed)")
    p.add_argument("--valid", type=int, default=100, help="validation sentences of the target domain (default 100)")
    p.add_argument("--steps", type=int, default=300, help="adaptation steps (batch 8; default 300)")
    p.add_argument("--lr", type=float, default=1e-4, help="adaptation learning rate (default 1e-4, the recipe's)")
    p.add_argument("--layout", default="both",
                   help="comma-separated runs: plain (text records without a prompt), prompt (with the ASR prompt), "
                   "mixed (plain text + as many replayed ASR clips, needs --replay), replay (the clips alone: the "
                   "control for mixed); `both` = plain,prompt (default), `all` = all four")
    p.add_argument("--replay", type=Path, default=None, help="the baseline's ASR training manifest, for the mixed and replay runs")
    p.add_argument("--beam", type=int, default=4, help="beam size for every decode (default 4, the reference's)")
    p.add_argument("--engines", default=DEMO_ENGINES, help=f"TTS engines (default the demo's: {DEMO_ENGINES})")
    p.add_argument("--workers", type=int, default=2, help="TTS processes (default 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--reference", type=Path, default=None, help="the baseline run (default the shipped tiny.en reference)")
    p.add_argument("--quick", action="store_true", help="mechanics only, as defaults: 8 clips per domain, 400 "
                   "sentences, 40 steps, plain layout, greedy, flite (a few minutes on a CPU)")
    p.add_argument("override", nargs="*", help="key=value overrides for the adaptation runs (e.g. train.precision=fp32)")
    if "--quick" in (sys.argv[1:] if argv is None else argv):  # new defaults; options given still win
        p.set_defaults(test=8, train=400, valid=16, steps=40, layout="plain", beam=1, engines="flite")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    args = parse_args(argv)
    from slamkit.infer.reference import reference_run_dir

    reference = args.reference or reference_run_dir("tiny.en")
    if reference is None:
        raise SystemExit("no reference adapter found (src/slamkit/reference/demo_asr_tiny_en); pass --reference RUN_DIR")
    out: Path = args.out
    if args.target_manifest:
        args.target = args.target_manifest.stem
    earlier = _check_folder(out / "results.json", args)
    control = unseen(source_sentences(args.control), args.base_text)
    if args.target_manifest:  # real speech of the target domain: its other transcripts are the text
        lines = audio_lines(args.target_manifest)
        sets, test_lines = split_manifest_domain(lines, control, args.test, args.train, args.valid, args.seed)
        speech = {"target": write_jsonl(test_lines, out / "speech" / "target" / "real.jsonl")}
    else:
        sets = split_domains(unseen(source_sentences(args.target), args.base_text), control, args.test, args.train, args.valid, args.seed)
        speech = {"target": speak(sets["target_test"], out / "speech" / "target", args.engines, args.seed, args.workers)}
    speech["control"] = speak(sets["control_test"], out / "speech" / "control", args.engines, args.seed, args.workers)
    layouts = {"both": ("plain", "prompt"), "all": LAYOUTS}.get(args.layout) or tuple(args.layout.split(","))
    if unknown := [lay for lay in layouts if lay not in LAYOUTS]:
        raise SystemExit(f"--layout: unknown {', '.join(unknown)}; choose from {', '.join(LAYOUTS)}, both, all")
    runs = {"reference": Path(reference), **{_run_name(lay): adapt(out, lay, sets, Path(reference), args) for lay in layouts}}
    results: dict[str, dict[str, float]] = {}
    for name, run in runs.items():
        tag = name.replace(" ", "_").replace("(", "").replace(")", "")
        results[name] = {d: wer(run, speech[d], out / "hyps" / f"{tag}_{d}_beam{args.beam}.jsonl", args.beam) for d in speech}
    results = {**earlier, **results}
    report = {"settings": _settings(args), "target": args.target, "control": args.control, "test_clips": args.test,
              "adapt_sentences": len(sets["adapt_train"]), "steps": args.steps, "lr": args.lr, "layouts": list(layouts),
              "replay": str(args.replay) if args.replay else None, "beam": args.beam, "engines": args.engines, "reference": str(reference),
              "wer_percent": results}
    (out / "results.json").write_text(json.dumps(report, indent=2))
    print(table(results, args.target, args.control))
    print(f"\n(results: {out / 'results.json'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
