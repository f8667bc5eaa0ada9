"""``slamkit bench decode``: the original's decoding against slamkit's and faster-whisper's, same clips, one run.

The clips are real recorded speech (the 5 LibriVox clips of ``pocketsphinx-testdata`` and a seeded
subset of the Asterisk prompts, resampled to 16 kHz); the model is the shipped reference adapter
(Whisper tiny.en + SmolLM2-135M + LoRA), greedy in every row, each clip decoded whole:

(a) **the original's decoding**: one clip at a time, its audio zero-padded to 30 s (so the LLM reads
    300 audio slots whatever the clip's length), as SLAM-LLM's batch-size-1-equivalent inference does;
(a') the same one clip at a time on the real length (no padding): the gain of batching alone, at
    the same WER (batched greedy decoding gives the texts batch size 1 gives);
(b) **slamkit's** `slamkit decode`: real length, batches of ``decode.batch_size`` clips of similar
    length, left-padded, with the KV cache; in fp32 (the same texts as batch size 1), and in bf16 when
    this machine multiplies bf16 faster (``decode.precision=bf16``: the LLM stored in bf16);
(c) **faster-whisper** (CTranslate2, int8) with the same Whisper checkpoint: what a pure-ASR user
    would run instead.

Real-time factor (RTFx) = seconds of audio / seconds of decoding (model loading excluded; each
path is warmed up on one clip first). WER with Whisper's normaliser, as `slamkit score` computes it.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf
import torch

from slamkit.app.bench_paths import matmul_peak
from slamkit.app.demo import whisper_decode
from slamkit.assets import asset_path
from slamkit.data.audio import load_audio
from slamkit.data.manifest import read_manifest
from slamkit.infer.decode import decode_manifest, load_run
from slamkit.infer.reference import reference_run_dir
from slamkit.infer.score import score_file
from slamkit.prepare import prepare_asterisk, prepare_librivox

RATE = 16000
QUICK_ASTERISK = 10  # --quick: 5 LibriVox clips + 10 Asterisk prompts
WHOLE = ["decode.beam_size=1", "decode.max_segment_seconds=30"]  # greedy; every clip (all <= 30 s) decoded whole


def clip_set(folder: Path, asterisk: int, seed: int = 0) -> tuple[Path, Path, float]:
    """(real-length manifest, 30 s-padded manifest, audio seconds): LibriVox + ``asterisk`` Asterisk prompts of at most 30 s."""
    prepare_asterisk(folder / "asterisk", root=asset_path("asterisk-sounds"))
    prepare_librivox(folder / "librivox", root=asset_path("pocketsphinx-testdata"))
    prompts = [r for r in read_manifest(folder / "asterisk" / "asterisk.jsonl") if r.target.strip()]
    chosen = random.Random(seed).sample(prompts, min(asterisk, len(prompts)))
    records = read_manifest(folder / "librivox" / "librivox.jsonl") + chosen
    real, padded, total = [], [], 0.0
    for i, rec in enumerate(records):
        audio = load_audio(rec.source, RATE, rec.offset, rec.duration)
        if len(audio) > 30 * RATE:
            continue
        total += len(audio) / RATE
        for rows, kind, samples in ((real, "real", audio), (padded, "padded", np.pad(audio, (0, 30 * RATE - len(audio))))):
            path = folder / kind / f"{i:03d}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(str(path), samples, RATE, subtype="FLOAT")
            rows.append(json.dumps({"key": rec.key, "source": str(path), "target": rec.target}))
    for name, rows in (("real", real), ("padded", padded)):
        (folder / f"{name}.jsonl").write_text("\n".join(rows) + "\n")
    return folder / "real.jsonl", folder / "padded.jsonl", total


def _first_line(manifest: Path, out: Path) -> Path:
    out.write_text(manifest.read_text().splitlines()[0] + "\n")
    return out


def _timed_decode(run: Path, overrides: list[str], manifest: Path, out: Path, device: str) -> tuple[float, dict]:
    """(seconds, scores) of decoding ``manifest`` with the run, after a one-clip warm-up."""
    cfg, model = load_run(run, overrides, device)
    decode_manifest(cfg, model, _first_line(manifest, out.with_suffix(".warm.jsonl")), out.with_suffix(".warm.hyp.jsonl"))
    start = time.perf_counter()
    decode_manifest(cfg, model, manifest, out)
    return time.perf_counter() - start, score_file(out)


def bench_decode(encoder: str = "tiny.en", asterisk: int = 60, device: str = "cpu", seed: int = 0,
                 progress: Callable[[str], None] = print) -> dict:
    """Decode the clip set three ways; returns RTFx and WER of each (see the module docs)."""
    run = reference_run_dir(encoder)
    if run is None:
        raise ValueError(f"--encoder {encoder!r}: no shipped reference adapter for it (this installation has tiny.en)")
    with tempfile.TemporaryDirectory(prefix="slamkit-bench-decode-") as tmp:
        root = Path(tmp)
        progress("preparing the clips …")
        real, padded, seconds = clip_set(root / "clips", asterisk, seed)
        n = len(real.read_text().splitlines())
        progress(f"(a) the original's decoding: {n} clips one at a time, padded to 30 s …")
        t_a, s_a = _timed_decode(run, [*WHOLE, "decode.batch_size=1"], padded, root / "a.hyp.jsonl", device)
        progress("(a') one clip at a time, real length …")
        t_one, s_one = _timed_decode(run, [*WHOLE, "decode.batch_size=1"], real, root / "a1.hyp.jsonl", device)
        progress("(b) slamkit's batched decoding, fp32 …")
        t_b32, s_b32 = _timed_decode(run, WHOLE, real, root / "b32.hyp.jsonl", device)
        fastest = "bf16" if matmul_peak(torch.device(device), "bf16") > 1.1 * matmul_peak(torch.device(device), "fp32") else "fp32"
        if fastest == "fp32":
            t_b, s_b = t_b32, s_b32
        else:
            progress(f"(b) slamkit's batched decoding, {fastest} …")
            t_b, s_b = _timed_decode(run, [*WHOLE, f"decode.precision={fastest}"], real, root / "b.hyp.jsonl", device)
        progress("(c) faster-whisper …")
        whisper = asset_path(f"whisper-{encoder}")
        whisper_decode(whisper, {"warm": _first_line(real, root / "warm.jsonl")}, root / "c-warm")
        c = whisper_decode(whisper, {"clips": real}, root / "c")["clips"]
        batch = load_run(run, WHOLE)[0].decode.batch_size
    return {
        "benchmark": "decode", "encoder": encoder, "clips": n, "audio_seconds": round(seconds, 1), "device": device,
        "batch_size_slamkit": batch, "date": time.strftime("%Y-%m-%d"),
        "rtfx_original": round(seconds / t_a, 2), "rtfx_slamkit": round(seconds / t_b, 2), "rtfx_faster_whisper": round(seconds / c["seconds"], 2),
        "speedup_vs_original": round(t_a / t_b, 2), "rtfx_one_at_a_time": round(seconds / t_one, 2),
        "speedup_vs_one_at_a_time": round(t_one / t_b, 2), "wer_one_at_a_time": round(s_one["wer"], 4),
        "precision_slamkit": fastest, "rtfx_slamkit_fp32": round(seconds / t_b32, 2), "wer_slamkit_fp32": round(s_b32["wer"], 4),
        "speedup_fp32_vs_one_at_a_time": round(t_one / t_b32, 2),
        "wer_original": round(s_a["wer"], 4), "wer_slamkit": round(s_b["wer"], 4), "wer_faster_whisper": round(c["wer"], 4),
    }


def format_decode(r: dict) -> str:
    """The result as a Markdown table."""
    lines = [f"reference adapter (Whisper {r['encoder']} + SmolLM2-135M), {r['clips']} real clips ({r['audio_seconds']} s), greedy, "
             f"{r['device']}, {r['date']}", "", "| decoding | RTFx | WER |", "|---|---|---|",
             f"| (a) the original's: one clip at a time, padded to 30 s | {r['rtfx_original']} | {r['wer_original']:.1%} |",
             f"| (a') one clip at a time, real length | {r['rtfx_one_at_a_time']} | {r['wer_one_at_a_time']:.1%} |",
             f"| (b) slamkit decode: batches of {r['batch_size_slamkit']}, real length, fp32 | {r['rtfx_slamkit_fp32']} | "
             f"{r['wer_slamkit_fp32']:.1%} |",
             *([f"| (b) the same in {r['precision_slamkit']} (this machine's faster precision; the LLM stored in it) | "
                f"{r['rtfx_slamkit']} | {r['wer_slamkit']:.1%} |"] if r["precision_slamkit"] != "fp32" else []),
             f"| (c) faster-whisper, same Whisper checkpoint, int8 | {r['rtfx_faster_whisper']} | {r['wer_faster_whisper']:.1%} |",
             "", f"slamkit / original: {r['speedup_vs_original']}x; slamkit / one at a time at the same length: "
             f"{r['speedup_vs_one_at_a_time']}x ({r['speedup_fp32_vs_one_at_a_time']}x from batching alone, with the same text: "
             "batched greedy decoding equals batch 1)"]
    return "\n".join(lines)
