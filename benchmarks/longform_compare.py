"""Whisper past 30 s: VAD segments vs fixed windows vs the windowed encoder, WER and speed (docs/longform.md).

    python benchmarks/longform_compare.py [--quick] [--out result.json] [--run reference] [--window 6]
                                          [--methods vad utterance] [--merge-pause 0.6 …]

Builds long recordings (60, 120 and 180 s; ``--quick``: one of about 40 s) by joining real recorded
speech, the 5 LibriVox clips of ``pocketsphinx-testdata`` and Asterisk prompts of 1.5-8 s
(resampled to 16 kHz), shuffled with ``--seed``, with silent pauses of 0.3-1.5 s between them. Each
recording is one manifest record whose reference is the clips' transcripts joined. The run
(default: the shipped reference adapter, Whisper tiny.en + SmolLM2-135M + LoRA) decodes the
manifest once per method with `slamkit decode`'s own path (:func:`slamkit.infer.decode.decode_manifest`,
greedy unless ``--beam``):

- ``vad``: ``decode.segment=vad``, segments of at most ``--window`` s (default: the run's
  ``decode.max_segment_seconds``, else 30), decoded in batches and joined;
- ``utterance``: ``decode.segment=utterance``, the same VAD spans, each its own segment (never merged);
- ``fixed``: ``decode.segment=fixed``, contiguous windows of the same length cut at quiet points;
- ``overlap``: ``decode.segment=overlap``, windows of the same length sharing
  ``decode.segment_overlap`` s (the run's; 1 s by default), the repeated words kept once;
- ``windowed``: ``decode.segment=windowed``, the recording passed whole; the encoder runs it in
  30 s windows and concatenates their frames, and the LLM writes one transcript
  (``max_new_tokens`` per ``--window`` s of audio);
- ``vad<=P`` for each ``--merge-pause P``: ``vad`` with ``decode.merge_pause=P``, speech spans joined only
  across pauses of at most ``P`` s.

``--methods`` picks the rows of the first five (default: all).

Each row gives the corpus WER (``slamkit score``: Whisper's English normaliser), the segments
decoded, the wall time of decoding (audio loading and VAD included; the model is loaded once,
before), the process's CPU time for it (all threads; steadier than wall time on a busy machine)
and RTFx (audio seconds per wall second of decoding). Prints a markdown table, then the whole
result as one JSON line (also written to ``--out``). Needs the ``asterisk-sounds``,
``pocketsphinx-testdata``, ``whisper-tiny.en`` and ``smollm2-135m-instruct-gguf`` assets
(``make reference``) and silero-vad.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from slamkit.config import Config
from slamkit.data.audio import load_audio
from slamkit.data.manifest import Record, read_manifest
from slamkit.infer.decode import decode_manifest, load_run
from slamkit.infer.score import score_file
from slamkit.models.speech_llm import SpeechLLM

SR = 16_000
METHODS = ("vad", "utterance", "fixed", "overlap", "windowed")
FULL_SECONDS = (60.0, 120.0, 180.0)
QUICK_SECONDS = (40.0,)
PAUSE_SECONDS = (0.3, 1.5)  # silence between two clips, drawn uniformly
PROMPT_SECONDS = (1.5, 8.0)  # Asterisk prompts used (the shortest are single words)


def speech_pool(folder: Path, seed: int) -> list[Record]:
    """The LibriVox clips and the Asterisk prompts of 1.5-8 s, prepared into ``folder``, shuffled with ``seed``."""
    from slamkit.prepare import prepare_asterisk, prepare_librivox

    prepare_librivox(folder)
    prepare_asterisk(folder)
    prompts = [r for r in read_manifest(folder / "asterisk.jsonl") if PROMPT_SECONDS[0] <= (r.duration or 0.0) <= PROMPT_SECONDS[1]]
    pool = read_manifest(folder / "librivox.jsonl") + prompts
    random.Random(seed).shuffle(pool)
    return pool


def build_recordings(pool: list[Record], targets: tuple[float, ...], folder: Path, seed: int) -> list[dict]:
    """One wav per target length (clips from ``pool`` in order, never reused, pauses between them)
    -> manifest rows ``{key, source, target, duration}``."""
    rng = random.Random(seed)
    rows, at = [], 0
    for i, target in enumerate(targets):
        parts: list[np.ndarray] = []
        texts: list[str] = []
        seconds = 0.0
        while seconds < target:
            if at >= len(pool):
                raise RuntimeError(f"not enough speech for recordings of {targets} s")
            rec = pool[at]
            at += 1
            if parts:
                pause = np.zeros(int(rng.uniform(*PAUSE_SECONDS) * SR), dtype=np.float32)
                parts.append(pause)
                seconds += len(pause) / SR
            clip = load_audio(rec.source, SR, rec.offset, rec.duration)
            parts.append(clip)
            texts.append(rec.target)
            seconds += len(clip) / SR
        path = folder / f"long{i}.wav"
        audio = np.concatenate(parts)
        sf.write(str(path), audio, SR)
        rows.append({"key": f"long{i}", "source": str(path), "target": " ".join(texts), "duration": len(audio) / SR})
    return rows


def method_config(cfg: Config, method: str, window: float | None, beam: int, overlap: float | None = None,
                  merge_pause: float | None = None) -> Config:
    """``cfg`` with ``decode.segment=method``, the segment window, the beam size, ``decode.merge_pause`` and (when
    given) the overlap set."""
    dc = dataclasses.replace(cfg.decode, segment=method, beam_size=beam, max_segment_seconds=window, merge_pause=merge_pause,
                             segment_overlap=cfg.decode.segment_overlap if overlap is None else overlap)
    return dataclasses.replace(cfg, decode=dc)


def run_method(cfg: Config, model: SpeechLLM, manifest: Path, out: Path, audio_seconds: float) -> dict:
    """Decode ``manifest`` into ``out`` under ``cfg`` -> one result row."""
    threads = torch.get_num_threads()
    started, cpu = time.perf_counter(), time.process_time()
    with torch.no_grad():
        decode_manifest(cfg, model, manifest, out)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    torch.set_num_threads(threads)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    score = score_file(out)
    return {
        "method": cfg.decode.segment + ("" if cfg.decode.merge_pause is None else f"<={cfg.decode.merge_pause:g}"), "wer": score["wer"], "ref_words": score["ref_words"], "seconds": round(seconds, 2),
        "cpu_s": round(cpu, 2), "rtfx": round(audio_seconds / seconds, 2),
        "segments": sum(len(line.get("segments", [])) or 1 for line in lines),
        "hyp_words": sum(len(line["hyp"].split()) for line in lines), "errors": sum("error" in line for line in lines),
    }


def compare(run: str, quick: bool, window: float | None, beam: int, seed: int, work: Path,
            max_new_tokens: int | None = None, overlap: float | None = None, methods: tuple[str, ...] = METHODS,
            merge_pauses: tuple[float, ...] = ()) -> dict:
    """Build the recordings, load ``run`` once, decode them with each method -> the result dict."""
    from slamkit.serve.engine import resolve_run

    pool = speech_pool(work / "speech", seed)
    rows = build_recordings(pool, QUICK_SECONDS if quick else FULL_SECONDS, work, seed)
    manifest = work / "long.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    overrides = [f"decode.max_new_tokens={max_new_tokens}"] if max_new_tokens else []
    cfg, model = load_run(resolve_run(run), overrides)
    window = window if window is not None else cfg.decode.max_segment_seconds
    audio_seconds = sum(r["duration"] for r in rows)
    results = []
    variants = [(method, None) for method in methods] + [("vad", pause) for pause in merge_pauses]
    for i, (method, pause) in enumerate(variants):
        print(f"decoding {len(rows)} recordings ({audio_seconds:.0f} s) with decode.segment={method}, merge_pause={pause} …", file=sys.stderr)
        results.append(run_method(method_config(cfg, method, window, beam, overlap, pause), model, manifest,
                                  work / f"{i}-{method}.jsonl", audio_seconds))
    return {
        "benchmark": "longform", "run": run, "quick": quick, "recordings": [round(r["duration"], 2) for r in rows],
        "audio_s": round(audio_seconds, 2), "window_s": window,
        "overlap_s": cfg.decode.segment_overlap if overlap is None else overlap, "beam_size": beam, "max_new_tokens": cfg.decode.max_new_tokens,
        "threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine(), "rows": results,
    }


def format_table(result: dict) -> str:
    """The result as a markdown table."""
    head = (f"{len(result['recordings'])} recordings {result['recordings']} s, {result['rows'][0]['ref_words']} reference words; "
            f"segment window {result['window_s']} s, overlap {result.get('overlap_s')} s, beam {result['beam_size']}, {result['threads']} threads")
    lines = [head, "", "| decode.segment | segments | WER | decode s | CPU s | RTFx |", "|---|---|---|---|---|---|"]
    for row in result["rows"]:
        lines.append(f"| {row['method']} | {row['segments']} | {100 * row['wer']:.1f} % | {row['seconds']:.1f} | {row['cpu_s']:.1f} | {row['rtfx']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", default="reference", help="run directory, or `reference` (the shipped adapter; default)")
    p.add_argument("--quick", action="store_true", help="one recording of about 40 s (a smoke test)")
    p.add_argument("--window", type=float, default=None, help="segment window in s for vad/fixed and the token unit of windowed "
                   "(default: the run's decode.max_segment_seconds)")
    p.add_argument("--overlap", type=float, default=None, help="decode.segment_overlap for every method: the seconds the `overlap` "
                   "method's windows share and the width of `fixed`'s quiet-cut search (default: the run's)")
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS), help="decode.segment methods (default: all)")
    p.add_argument("--merge-pause", nargs="+", type=float, default=[], metavar="P",
                   help="also decode with vad and decode.merge_pause=P (seconds), once per value")
    p.add_argument("--beam", type=int, default=1, help="beam size (default 1: greedy)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="decode.max_new_tokens (default: the run's)")
    p.add_argument("--seed", type=int, default=0, help="which clips, in which order, and the pauses")
    p.add_argument("--out", type=Path, default=None, help="also write the result JSON here")
    p.add_argument("--keep", type=Path, default=None, help="keep the recordings and hypothesis files in this folder")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="slamkit-longform-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        result = compare(args.run, args.quick, args.window, args.beam, args.seed, work, args.max_new_tokens, args.overlap,
                         tuple(args.methods), tuple(args.merge_pause))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(format_table(result))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
