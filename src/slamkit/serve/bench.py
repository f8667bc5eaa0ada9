"""``slamkit bench serve``: throughput and latency with dynamic batching vs one request at a time.

The run is loaded once and served twice from this process on 127.0.0.1: *batched* (``max_batch``
clips per batch, ``max_wait_ms``) and the baseline *one at a time* (batches of 1, no wait). For each
number of concurrent clients, every client posts clips to ``/v1/audio/transcriptions`` back to back
until the level's requests are done; the table gives requests/s, audio-seconds/s, p50/p95 latency
and the batched/baseline throughput ratio, all from the same run. Answers of the two servers are
compared: batching must not change any text.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

from slamkit.data.manifest import read_manifest
from slamkit.serve.api import ServeSettings, create_app
from slamkit.serve.engine import Engine
from slamkit.serve.server import BackgroundServer


@dataclass
class Level:
    """One concurrency level of one server mode."""

    mode: str
    clients: int
    requests: int
    seconds: float
    audio_seconds: float
    latencies: list[float]
    texts: dict[str, str]

    def row(self) -> dict:
        lat = sorted(self.latencies)
        return {"mode": self.mode, "clients": self.clients, "requests": self.requests, "req_per_s": round(self.requests / self.seconds, 2),
                "audio_s_per_s": round(self.audio_seconds / self.seconds, 1), "p50_s": round(statistics.median(lat), 3),
                "p95_s": round(lat[min(len(lat) - 1, int(0.95 * len(lat)))], 3)}


def _load(url: str, model: str, clips: list[tuple[Path, float]], clients: int, total: int) -> tuple[float, float, list[float], dict[str, str]]:
    """``total`` requests from ``clients`` threads: (wall seconds, audio seconds, latencies, text per clip)."""
    latencies: list[float] = []
    texts: dict[str, str] = {}
    audio = [0.0]

    def client(i: int) -> None:
        with httpx.Client(timeout=600) as http:
            for n in range(i, total, clients):
                path, seconds = clips[n % len(clips)]
                start = time.perf_counter()
                r = http.post(url + "/v1/audio/transcriptions", data={"model": model}, files={"file": (path.name, path.read_bytes())})
                r.raise_for_status()
                latencies.append(time.perf_counter() - start)
                texts[str(path)] = r.json()["text"]
                audio[0] += seconds

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    return time.perf_counter() - start, audio[0], latencies, texts


def bench_serve(run: str, manifest: str, levels: list[int], requests: int | None = None, max_batch: int = 8, max_wait_ms: float = 10.0,
                overrides: list[str] | None = None, progress: Callable[[str], None] = print) -> dict:
    """Measure both modes at every level; returns ``{"rows", "ratios", "mismatches", …}``."""
    engine = Engine(run, overrides, max_batch=max_batch, max_wait_ms=max_wait_ms, max_queue=100_000)
    clips = [(Path(r.source), float(r.duration or 0.0)) for r in read_manifest(manifest)]
    if not clips:
        raise ValueError(f"{manifest}: no clips")
    clips = [(p, d or engine.open(p.read_bytes(), p.name)[1]) for p, d in clips]  # durations from the audio when the manifest has none
    for leftover in engine.folder.iterdir():
        leftover.unlink()
    results: list[Level] = []
    try:
        for mode, batch, wait in (("one at a time", 1, 0.0), ("batched", max_batch, max_wait_ms)):
            engine.batcher.max_batch, engine.batcher.max_wait = batch, wait / 1000.0
            with BackgroundServer(create_app(engine, ServeSettings(max_upload_mb=1024, timeout_s=3600))) as server:
                _load(server.url, engine.name, clips[:1], 1, 1)  # warm-up
                for clients in levels:
                    total = requests or max(16, 2 * clients)
                    progress(f"{mode}: {clients} client(s), {total} requests …")
                    results.append(Level(mode, clients, total, *_load(server.url, engine.name, clips, clients, total)))
    finally:
        engine.close()
    rows = [level.row() for level in results]
    base = {r["clients"]: r for r in rows if r["mode"] == "one at a time"}
    ratios = {r["clients"]: round(r["req_per_s"] / base[r["clients"]]["req_per_s"], 2) for r in rows if r["mode"] == "batched"}
    one = {k: v for level in results if level.mode == "one at a time" for k, v in level.texts.items()}
    mismatches = sorted(k for level in results if level.mode == "batched" for k, v in level.texts.items() if one.get(k, v) != v)
    return {"benchmark": "serve", "run": run, "manifest": manifest, "max_batch": max_batch, "max_wait_ms": max_wait_ms,
            "rows": rows, "throughput_ratio": ratios, "mismatches": mismatches}


def format_table(result: dict) -> str:
    """A Markdown table of the rows plus the ratio per level."""
    lines = ["| server | clients | requests | req/s | audio-s/s | p50 latency (s) | p95 latency (s) |", "|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['mode']} | {r['clients']} | {r['requests']} | {r['req_per_s']} | {r['audio_s_per_s']} | {r['p50_s']} | {r['p95_s']} |")
    ratios = ", ".join(f"{c} clients {x}x" for c, x in result["throughput_ratio"].items())
    lines.append(f"\nbatched / one-at-a-time throughput: {ratios}; answers that differ between the two: {len(result['mismatches'])}")
    return "\n".join(lines)


def write(result: dict, out: str | None) -> None:
    """Write the JSON result when asked."""
    if out:
        Path(out).write_text(json.dumps(result, indent=1) + "\n")
