"""Benchmarks behind `slamkit bench`: measured on this machine, against a baseline in the same run.

``slamkit bench encoders`` times one forward pass of each registered encoder on a clip of
``seconds`` of audio (random weights at the encoder's official size: the arithmetic, hence the
time, is that of the real checkpoint). The baseline row is Whisper at the same size padded to 30 s,
which is what the original SLAM-LLM runs for every clip; each row reports its speed relative to it
and its real-time factor (audio seconds per compute second).
"""

from __future__ import annotations

import dataclasses
import gc
import statistics
import time
from typing import Any, Callable, Iterable

import torch

from slamkit.config import EncoderConfig
from slamkit.models.encoders.base import ENCODERS, build_encoder

BASELINE = "whisper (padded to 30 s)"


def _time(fn: Callable[[], Any], repeats: int) -> float:
    """Median wall seconds of ``fn`` over ``repeats`` runs, after one warm-up run."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _encoder_row(label: str, cfg: EncoderConfig, seconds: float, repeats: int) -> dict[str, Any]:
    """Time ``cfg``'s encoder on one random clip of ``seconds``; returns the row (no ratio yet)."""
    enc = build_encoder(cfg)
    samples = int(seconds * enc.sample_rate)
    audio = 0.1 * torch.randn(1, samples, generator=torch.Generator().manual_seed(0))
    lengths = torch.tensor([samples])
    with torch.inference_mode():
        frames = int(enc(audio, lengths)[1][0])
        elapsed = _time(lambda e=enc: e(audio, lengths), repeats)
    row = dict(encoder=label, preset=cfg.preset, parameters=sum(p.numel() for p in enc.parameters()), frames=frames,
               seconds=round(elapsed, 4), real_time_factor=round(seconds / elapsed, 2))
    del enc
    gc.collect()
    return row


def bench_encoders(names: Iterable[str] | None = None, seconds: float = 10.0, repeats: int = 3, preset: str | None = None,
                   progress: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Rows ``{encoder, preset, parameters, frames, seconds, real_time_factor, speed_vs_baseline}``.

    ``names`` defaults to every registered encoder; ``preset`` overrides each card's official size
    (``test`` gives a quick smoke run). The first row is the baseline.
    """
    names = list(names) if names is not None else ENCODERS.names()
    unknown = [n for n in names if n not in ENCODERS]
    if unknown:
        raise ValueError(f"unknown encoders {unknown}; registered: {', '.join(ENCODERS.names())}")
    whisper_preset = preset or ENCODERS.get("whisper").card.preset  # type: ignore[union-attr]
    jobs = [(BASELINE, EncoderConfig(name="whisper", preset=whisper_preset, pad_to_30s=True))]
    for name in names:
        card = ENCODERS.get(name).card
        jobs.append((name, EncoderConfig(name=name, preset=preset or (card.preset if card else "test"))))
    rows = []
    for label, cfg in jobs:
        if progress:
            progress(f"{label} ({cfg.preset})")
        rows.append(_encoder_row(label, cfg, seconds, repeats))
    base = rows[0]["seconds"]
    for row in rows:
        row["speed_vs_baseline"] = round(base / row["seconds"], 2)
    return rows


def format_table(rows: list[dict[str, Any]], seconds: float) -> str:
    """A Markdown table of ``bench_encoders`` rows."""
    lines = [f"| encoder | preset | params | frames | s per {seconds:g} s clip | real-time factor | speed vs {BASELINE} |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['encoder']} | {r['preset']} | {r['parameters'] / 1e6:.1f} M | {r['frames']} | {r['seconds']:.3f} | {r['real_time_factor']:g}x | {r['speed_vs_baseline']:g}x |")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    """What the timings were taken on."""
    import os
    import platform

    return dataclasses.asdict(_Machine(platform.processor() or platform.machine(), os.cpu_count() or 0, torch.get_num_threads(), torch.__version__))


@dataclasses.dataclass
class _Machine:
    processor: str
    cpus: int
    torch_threads: int
    torch: str
