"""Dynamic batching under load: 32 concurrent clients x 5 requests, nothing failed or lost, and every
answer equal to the offline decode of its clip (batch composition does not change a clip's text)."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai

from slamkit.infer.decode import decode

from conftest import SERVE_KEY

CLIENTS, REQUESTS = 32, 5


def test_32_concurrent_clients_get_the_offline_answers(server, tone_corpus, tiny_run, tmp_path) -> None:
    clips = sorted(Path(tone_corpus["train"]).parent.glob("train/*.wav"))
    assert len(clips) >= 20
    manifest = tmp_path / "clips.jsonl"
    manifest.write_text("".join(json.dumps({"key": c.name, "source": str(c), "target": ""}) + "\n" for c in clips))
    decode(tiny_run, manifest, tmp_path / "offline.jsonl")
    offline = {r["key"]: r["hyp"] for r in map(json.loads, (tmp_path / "offline.jsonl").read_text().splitlines())}
    batches_before = _batch_count(server.url)

    def one_client(i: int) -> list[tuple[str, str]]:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key=SERVE_KEY, max_retries=0, timeout=300)
        answers = []
        for j in range(REQUESTS):
            clip = clips[(i * REQUESTS + j) % len(clips)]
            answers.append((clip.name, client.audio.transcriptions.create(model=server.engine.name, file=clip.open("rb")).text))
        return answers

    with ThreadPoolExecutor(CLIENTS) as pool:
        results = [a for answers in pool.map(one_client, range(CLIENTS)) for a in answers]
    assert len(results) == CLIENTS * REQUESTS, "no request failed or was lost"
    wrong = [(name, text, offline[name]) for name, text in results if text != offline[name]]
    assert not wrong, f"{len(wrong)} answers differ from the offline decode, e.g. {wrong[:2]}"
    batches = _batch_count(server.url) - batches_before
    assert batches < CLIENTS * REQUESTS, f"{batches} batches for {CLIENTS * REQUESTS} requests: concurrent requests were batched"


def _batch_count(url: str) -> float:
    text = httpx.get(url + "/metrics").text
    return float(re.search(r"^slamkit_batch_size_count (\S+)$", text, re.M).group(1))
