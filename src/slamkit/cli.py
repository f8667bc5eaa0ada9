"""The ``slamkit`` command: train, decode, score, normalize, config, list.

Each subcommand is a small function that parses its arguments and calls library code; nothing
here does work of its own. Heavy imports happen inside the subcommands so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from typing import Callable

EPILOG_OVERRIDES = (
    "Overrides are key=value pairs on the config, e.g. train.max_steps=500 model.projector.k=4 "
    "(SLAM-LLM's ++key=value works too). `slamkit config` lists every key."
)


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    for noisy in ("httpx", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def cmd_train(args: argparse.Namespace) -> int:
    from slamkit.config import load_config
    from slamkit.train.loop import train

    cfg = load_config(args.config, args.overrides)
    start = time.perf_counter()
    result = train(cfg)
    print(json.dumps({"run_dir": str(result.run_dir), "step": result.step, "loss": result.last_loss,
                      "valid_loss": result.valid_loss, "skipped": result.skipped,
                      "seconds": round(time.perf_counter() - start, 2)}))
    return 0


def cmd_decode(args: argparse.Namespace) -> int:
    from slamkit.infer.decode import decode

    start = time.perf_counter()
    n = decode(args.run_dir, args.manifest, args.out, args.overrides)
    print(json.dumps({"out": args.out, "utterances": n, "seconds": round(time.perf_counter() - start, 2)}))
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from slamkit.eval.metrics import score_file

    print(json.dumps(score_file(args.hyps, metric=args.metric, normalizer=args.normalizer)))
    return 0


def cmd_normalize(args: argparse.Namespace) -> int:
    from slamkit.eval.metrics import normalize_lines

    for line in normalize_lines((raw.rstrip("\n") for raw in sys.stdin), args.normalizer):
        print(line)
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    from slamkit.config import config_reference, config_to_dict, load_config

    if args.config and "=" in args.config:
        args.overrides, args.config = [args.config, *args.overrides], None
    if args.config or args.overrides:
        import yaml

        print(yaml.safe_dump(config_to_dict(load_config(args.config, args.overrides)), sort_keys=False), end="")
        return 0
    for key, tp, default, help_text in config_reference():
        print(f"{key:34s} {tp:28s} default {default:14s} {help_text}")
    return 0


def cmd_prepare_tones(args: argparse.Namespace) -> int:
    from slamkit.data.synthetic import make_tone_corpus

    out = {}
    for offset, (split, n) in enumerate((("train", args.train), ("valid", args.valid), ("test", args.test))):
        if n > 0:
            out[split] = str(make_tone_corpus(args.out, n, seed=args.seed + 1000 * offset, name=split))
    print(json.dumps(out))
    return 0


def cmd_prepare_tts(args: argparse.Namespace) -> int:
    from slamkit.data.prepare import prepare_tts

    engines = [name for item in args.engines for name in item.split(",") if name]
    print(json.dumps(prepare_tts(args.text_file, args.out, engines=engines, num_utterances=args.limit, seed=args.seed,
                                 telephone_fraction=args.telephone_fraction, workers=args.workers,
                                 short_phrases=args.short_phrases)))
    return 0


def cmd_prepare_corpus(args: argparse.Namespace) -> int:
    from slamkit.assets import AssetError, AssetMissingError
    from slamkit.data.prepare import CORPORA

    kwargs = {k: getattr(args, k) for k in ("root", "install", "cards") if getattr(args, k, None) is not None}
    try:
        print(json.dumps(CORPORA.get(args.corpus)(args.out, **kwargs)))
    except AssetError as exc:
        hint = " (or pass --install)" if isinstance(exc, AssetMissingError) else ""
        print(f"slamkit prepare {args.corpus}: error: {exc}{hint}", file=sys.stderr)
        return 2
    return 0


def cmd_prepare_captions(args: argparse.Namespace) -> int:
    """`prepare clotho|audiocaps|musiccaps|secap DIR --out M`: the official layout to our manifest."""
    import slamkit.data.corpora  # noqa: F401  (registers the captioning corpora)
    from slamkit.data.prepare import CORPORA, CorpusError

    options = ("split", "audio_dir", "per_caption", "prompt")
    kwargs = {k: getattr(args, k) for k in options if getattr(args, k, None) not in (None, False)}
    try:
        print(json.dumps(CORPORA.get(args.corpus)(args.root, args.out, **kwargs)))
    except CorpusError as exc:
        print(f"slamkit prepare {args.corpus}: error: {exc}", file=sys.stderr)
        return 2
    return 0


# name -> (help, accepts --audio-dir, accepts --per-caption, splits)
_CAPTION_CORPORA = {
    "clotho": ("Clotho v2 (clotho_captions_<split>.csv + audio folders), task aac", False, True, "development | validation | evaluation (default: all found)"),
    "audiocaps": ("AudioCaps (train/val/test.csv; audio you downloaded, named by YouTube id), task aac", True, True, "train | val | test (default: all)"),
    "musiccaps": ("MusicCaps (musiccaps-public.csv; audio you downloaded, named by ytid), task mc", True, False, "train | test (is_audioset_eval) (default: all)"),
    "secap": ("SECap emotion-caption test set (dataset/fid2captions.json + wav/), task sec", False, False, "test"),
}


def _add_caption_corpora(prep: argparse._SubParsersAction) -> None:
    for corpus, (text, audio_dir, per_caption, splits) in _CAPTION_CORPORA.items():
        t = prep.add_parser(corpus, help=f"manifest of {text}")
        t.add_argument("root", metavar="DIR", help="the corpus folder as downloaded (its official layout)")
        t.add_argument("--out", required=True, help="output manifest (JSONL): one line per clip, all captions in `references`")
        t.add_argument("--split", default=None, help=f"split: {splits}")
        if audio_dir:
            t.add_argument("--audio-dir", default=None, help="folder of the audio you downloaded (default: DIR)")
        if per_caption:
            t.add_argument("--per-caption", action="store_true", help="one line per caption (training only; never score such a manifest)")
        t.add_argument("--prompt", default=None, help="prompt written into each line (default: the task's)")
        t.set_defaults(func=cmd_prepare_captions)


def cmd_prepare_sonicpi(args: argparse.Namespace) -> int:
    """`prepare sonicpi [DIR] --out OUT`: train/test captioning manifests of the Sonic Pi samples."""
    from slamkit.assets import AssetError, AssetMissingError
    from slamkit.data.sonicpi import prepare_sonicpi

    try:
        print(json.dumps(prepare_sonicpi(args.out, root=args.root, install=args.install, test_fraction=args.test_fraction,
                                         seed=args.seed, per_caption=args.per_caption)))
    except AssetError as exc:
        hint = " (or pass --install)" if isinstance(exc, AssetMissingError) else ""
        print(f"slamkit prepare sonicpi: error: {exc}{hint}", file=sys.stderr)
        return 2
    return 0


def cmd_prepare_librispeech(args: argparse.Namespace) -> int:
    from slamkit.data.prepare import prepare_librispeech

    if args.biasing_list is None and (args.distractors is not None or args.seed is not None):
        print("slamkit prepare librispeech: error: --distractors and --seed need --biasing-list", file=sys.stderr)
        return 2
    options = {"distractors": args.distractors, "seed": args.seed}
    print(json.dumps(prepare_librispeech(args.root, args.out, biasing_tsv=args.biasing_tsv, biasing_list=args.biasing_list,
                                         **{k: v for k, v in options.items() if v is not None})))
    return 0


def cmd_assets(args: argparse.Namespace) -> int:
    """`assets list` prints JSON lines, `assets install NAME` a JSON object, `assets path NAME` the bare path."""
    from slamkit.assets import AssetError, asset_path, install_asset, list_assets

    if args.action != "list" and not args.name:
        print(f"slamkit assets: error: `assets {args.action}` needs an asset NAME (see `slamkit assets list`)", file=sys.stderr)
        return 2
    try:
        if args.action == "list":
            for status in list_assets():
                print(json.dumps(status.to_dict()))
        elif args.action == "install":
            start = time.perf_counter()
            path = install_asset(args.name)
            print(json.dumps({"name": args.name, "path": str(path), "seconds": round(time.perf_counter() - start, 2)}))
        else:
            print(asset_path(args.name))
    except AssetError as exc:
        print(f"slamkit assets: error: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from pathlib import Path

    from slamkit.demo import DemoOptions, run_demo

    kwargs = dict(out=Path(args.out), encoder=args.encoder, whisper=not args.no_whisper, reference=not args.no_reference,
                  overrides=args.overrides)
    if args.minutes is not None:
        kwargs["minutes"] = args.minutes
    opts = DemoOptions.quick(**kwargs) if args.quick else DemoOptions(**kwargs)
    report = run_demo(opts)
    print(json.dumps({k: report[k] for k in ("wer", "reference_wer", "whisper_wer", "train_seconds", "peak_rss_mb")}))
    print(f"report: {Path(args.out) / 'report.md'}", file=sys.stderr)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """`bench encoders`: forward time of each encoder on one clip, vs Whisper padded to 30 s; prints a table and JSON."""
    from slamkit.bench import bench_encoders, format_table, machine
    from pathlib import Path

    try:
        rows = bench_encoders(args.encoders or None, seconds=args.seconds, repeats=args.repeats, preset=args.preset,
                              progress=lambda label: print(f"timing {label} …", file=sys.stderr))
    except ValueError as err:
        print(f"slamkit bench: error: {err}", file=sys.stderr)
        return 2
    result = {"benchmark": "encoders", "seconds": args.seconds, "repeats": args.repeats, "machine": machine(), "rows": rows}
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(format_table(rows, args.seconds))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from slamkit.models.llm import LLM_PRESETS
    from slamkit.models.projectors import PROJECTORS

    if args.what in ("encoders", "all"):
        print_encoder_table()
    tables = {"projectors": PROJECTORS.names(), "llm-presets": LLM_PRESETS.names()}
    for name in [args.what] if args.what in tables else tables if args.what == "all" else []:
        print(f"{name}: {', '.join(tables[name])}")
    return 0


def print_encoder_table() -> None:
    """Every registered encoder: sample rate, frame rate, width and size at its official preset, presets."""
    from slamkit.models.encoders import encoder_table

    header = ("encoder", "sample rate", "frames/s", "hidden", "params", "shown at", "presets")
    rows = [(r["name"], f"{r['sample_rate']} Hz", f"{r['frame_rate']:g}", str(r["hidden_size"]), f"{r['parameters'] / 1e6:.1f} M", str(r["preset"]), str(r["presets"])) for r in encoder_table()]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand (also used to document them)."""
    parser = argparse.ArgumentParser(prog="slamkit", description="Train, decode and score speech LLMs (audio encoder -> projector -> LLM).")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train a model from a YAML config", epilog=EPILOG_OVERRIDES)
    p.add_argument("config", help="YAML config, e.g. recipes/tiny_asr.yaml")
    p.add_argument("overrides", nargs="*", help="key=value config overrides")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("decode", help="transcribe a manifest with a trained run", epilog=EPILOG_OVERRIDES)
    p.add_argument("run_dir", help="a training run directory (holds config.yaml and checkpoints/)")
    p.add_argument("--manifest", required=True, help="JSONL manifest to decode")
    p.add_argument("--out", required=True, help="output JSONL of {key, hyp, ref} lines")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. decode.beam_size=4 decode.batch_size=16")
    p.set_defaults(func=cmd_decode)

    p = sub.add_parser("score", help="score a hypothesis JSONL ({key, hyp, ref} lines); prints one JSON object")
    p.add_argument("hyps", help="JSONL written by `slamkit decode`")
    p.add_argument("--metric", default=None, help="wer | cer | bwer (WER, B-WER, U-WER; lines carry biasing_words) | caption (BLEU-1..4, METEOR, ROUGE-L, CIDEr-D; needs Java); default: the lines' task (`slamkit decode` writes it), else wer")
    p.add_argument("--normalizer", default=None, help="whisper (Whisper's English rules; default for wer/cer), librispeech (default for bwer), basic or none")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("normalize", help="normalise text lines from stdin (as `score` does before comparing)")
    p.add_argument("--normalizer", default="whisper", help="whisper (default), basic or none")
    p.set_defaults(func=cmd_normalize)

    p = sub.add_parser("config", help="list every config key, or print a resolved config", epilog=EPILOG_OVERRIDES)
    p.add_argument("config", nargs="?", help="YAML config to resolve (omit to list all keys with defaults)")
    p.add_argument("overrides", nargs="*", help="key=value overrides")
    p.set_defaults(func=cmd_config)

    p = sub.add_parser("prepare", help="write data sets and their manifests")
    prep = p.add_subparsers(dest="corpus", required=True, metavar="CORPUS")
    t = prep.add_parser("tones", help="synthetic tone-speech corpus (no TTS or download needed), for the tiny recipe")
    t.add_argument("--out", required=True, help="output folder: {train,valid,test}.jsonl and WAV folders")
    t.add_argument("--train", type=int, default=1000, help="training clips (default 1000)")
    t.add_argument("--valid", type=int, default=40, help="validation clips (default 40)")
    t.add_argument("--test", type=int, default=100, help="test clips (default 100)")
    t.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    t.set_defaults(func=cmd_prepare_tones)
    t = prep.add_parser("tts", help="speak the sentences of a text file with flite/espeak-ng (many voices)")
    t.add_argument("text_file", metavar="TEXTFILE", help="UTF-8 text, one sentence per line (the transcripts)")
    t.add_argument("--out", required=True, help="output folder: tts.jsonl and wav/")
    t.add_argument("--engines", nargs="+", default=["flite", "espeak-ng"], help="TTS engines (default: flite espeak-ng)")
    t.add_argument("--limit", type=int, default=None, help="number of utterances (default: one per usable line)")
    t.add_argument("--seed", type=int, default=0, help="random seed for voices, rates, pitches (default 0)")
    t.add_argument("--telephone-fraction", type=float, default=0.0, help="share of clips passed through 8 kHz (default 0)")
    t.add_argument("--workers", type=int, default=None, help="processes (default: all usable cores)")
    t.add_argument("--short-phrases", type=int, default=0, metavar="N",
                   help="also speak N short utterances (1-3-word spans of the lines, numbers, ordinals, dates), "
                        "spread among the lines (default 0)")
    t.set_defaults(func=cmd_prepare_tts)
    for corpus, text in (("asterisk", "Asterisk phone prompts (Debian asterisk-core-sounds-en-wav), 553 utterances"),
                         ("librivox", "the 5 LibriVox clips of Debian pocketsphinx-testdata")):
        t = prep.add_parser(corpus, help=f"manifest of {text}")
        t.add_argument("--out", required=True, help=f"output folder for {corpus}.jsonl")
        t.add_argument("--root", default=None, help="extraction root of the Debian package(s) (default: the installed asset)")
        t.add_argument("--install", action="store_true", default=None, help="install the asset first if it is missing")
        if corpus == "librivox":
            t.add_argument("--cards", action="store_true", default=None, help="also write cards.jsonl (5 short clips)")
        t.set_defaults(func=cmd_prepare_corpus)
    _add_caption_corpora(prep)
    t = prep.add_parser("sonicpi", help="captioning demo data: the Sonic Pi samples with templated captions, task aac")
    t.add_argument("root", metavar="DIR", nargs="?", default=None, help="samples folder or the Debian package's extraction root (default: the installed sonic-pi-samples asset)")
    t.add_argument("--out", required=True, help="output folder: train.jsonl, test.jsonl, baseline_{majority,nearest}.hyp.jsonl")
    t.add_argument("--install", action="store_true", help="install the asset first if it is missing")
    t.add_argument("--test-fraction", type=float, default=0.2, help="share of each category held out for testing (default 0.2)")
    t.add_argument("--seed", type=int, default=0, help="changes which clips are held out (default 0)")
    t.add_argument("--per-caption", action="store_true", help="training manifest with one line per reference caption (5 per clip)")
    t.set_defaults(func=cmd_prepare_sonicpi)
    t = prep.add_parser("librispeech", help="manifest of a LibriSpeech folder (the root or one subset)")
    t.add_argument("root", metavar="DIR", help="LibriSpeech/ or LibriSpeech/<subset>/")
    t.add_argument("--out", required=True, help="output manifest (JSONL)")
    t.add_argument("--biasing-tsv", metavar="FILE", default=None,
                   help="contextual biasing: set each line's biasing_words to its list in a published test-{clean,other}.biasing_N.tsv (every utterance needs a line)")
    t.add_argument("--biasing-list", metavar="FILE", default=None,
                   help="contextual biasing: a one-word-per-line list (e.g. all_rare_words.txt); each line gets its --biasing-tsv list, else the reference's words in FILE, plus --distractors words drawn from FILE")
    t.add_argument("--distractors", type=int, default=None, help="with --biasing-list: distractors per utterance (default 100)")
    t.add_argument("--seed", type=int, default=None, help="with --biasing-list: seed of the draw (default 0)")
    t.set_defaults(func=cmd_prepare_librispeech)

    p = sub.add_parser("assets", help="list, install or locate real weights, speech data and TTS programs")
    p.add_argument("action", choices=["list", "install", "path"], help="list: status of every asset; install NAME; path NAME")
    p.add_argument("name", nargs="?", help="asset name (see `slamkit assets list`)")
    p.set_defaults(func=cmd_assets)

    p = sub.add_parser("demo", help="the main job: train a real speech LLM on this machine and test it on real speech",
                       description="Installs the assets (Whisper, SmolLM2-135M, TTS voices, real recorded speech) once, "
                       "synthesises training speech, trains within a time budget, decodes real recorded speech with "
                       "the new model, the shipped reference adapter and Whisper's own decoder, and writes a report "
                       "(report.md, report.json, loss.png) into --out.", epilog=EPILOG_OVERRIDES)
    p.add_argument("--out", default="runs/demo", help="report and work folder (default runs/demo)")
    p.add_argument("--encoder", default="tiny.en", choices=["tiny.en", "base"], help="Whisper encoder (default tiny.en)")
    p.add_argument("--minutes", type=float, default=None, help="training time budget in minutes (default 30; --quick: 2)")
    p.add_argument("--quick", action="store_true", help="smoke test: little data, 2-minute budget, small evaluation sets")
    p.add_argument("--no-whisper", action="store_true", help="skip Whisper's own decoder as reference point")
    p.add_argument("--no-reference", action="store_true", help="skip evaluating the shipped reference adapter")
    p.add_argument("overrides", nargs="*", help="key=value overrides of the demo recipe, e.g. data.batch_size=4")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("list", help="list registered encoders, projectors and LLM presets")
    p.add_argument("what", nargs="?", default="all", choices=["all", "encoders", "projectors", "llm-presets"])
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("bench", help="benchmarks against a baseline in the same run (encoders: forward time on one clip)")
    p.add_argument("what", choices=["encoders"], help="encoders: each encoder vs Whisper padded to 30 s")
    p.add_argument("--encoders", nargs="*", help="registered encoder names (default: all)")
    p.add_argument("--seconds", type=float, default=10.0, help="clip length in seconds (default 10)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs after one warm-up; the median is reported (default 3)")
    p.add_argument("--preset", help="size preset for every encoder (default: each one's official size; `test` for a smoke run)")
    p.add_argument("--out", help="also write the rows and the machine as JSON here")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``slamkit`` console script."""
    parser = build_parser()
    # key=value overrides may also follow options (`decode RUN --out H decode.beam_size=4`), which
    # argparse leaves over when a positional list precedes the options.
    args, extra = parser.parse_known_args(argv)
    if extra:
        if not hasattr(args, "overrides") or not all("=" in e and not e.startswith("-") for e in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = [*args.overrides, *extra]
    _setup_logging(args.verbose)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except (ValueError, FileNotFoundError, FileExistsError, KeyError) as exc:
        # User-caused errors (config, manifest, audio, run directory): one clear line, no traceback.
        if args.verbose:
            raise
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"slamkit {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
