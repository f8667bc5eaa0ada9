"""The server through OpenAI's own Python client: every response format, chat with input_audio, streaming,
and answers equal to the offline `slamkit decode` of the same clips."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import httpx
import pytest

from slamkit.infer.decode import decode

from conftest import SERVE_KEY as KEY


def _offline(run: Path, clips: list[Path], tmp_path: Path) -> dict[str, str]:
    """`slamkit decode` of ``clips``: file name -> hypothesis."""
    manifest = tmp_path / "clips.jsonl"
    manifest.write_text("".join(json.dumps({"key": c.name, "source": str(c), "target": ""}) + "\n" for c in clips))
    out = tmp_path / "offline.jsonl"
    decode(run, manifest, out)
    return {line["key"]: line["hyp"] for line in map(json.loads, out.read_text().splitlines())}


@pytest.fixture(scope="module")
def clips(tone_corpus) -> list[Path]:
    return sorted(Path(tone_corpus["valid"]).parent.glob("valid/*.wav"))


@pytest.fixture(scope="module")
def offline(tiny_run, clips, tmp_path_factory) -> dict[str, str]:
    return _offline(tiny_run, clips, tmp_path_factory.mktemp("offline"))


def test_every_response_format_carries_the_offline_transcript(client, server, clips, offline) -> None:
    clip = clips[0]
    expected = offline[clip.name]
    assert expected, "the tiny run decodes to a non-empty string"
    model = client.models.list().data[0].id
    assert model == server.engine.name
    as_json = client.audio.transcriptions.create(model=model, file=clip.open("rb"))
    assert as_json.text == expected
    assert client.audio.transcriptions.create(model=model, file=clip.open("rb"), response_format="text").strip() == expected
    srt = client.audio.transcriptions.create(model=model, file=clip.open("rb"), response_format="srt")
    assert re.fullmatch(r"1\n00:00:00,000 --> 00:00:0\d,\d{3}\n.*\n\n", srt, re.S) and expected in srt
    vtt = client.audio.transcriptions.create(model=model, file=clip.open("rb"), response_format="vtt")
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> ") and expected in vtt
    verbose = client.audio.transcriptions.create(model=model, file=clip.open("rb"), response_format="verbose_json",
                                                 timestamp_granularities=["segment"])
    assert verbose.text == expected and verbose.duration > 0
    assert [(s.start, s.text) for s in verbose.segments] == [(0.0, expected)] and verbose.segments[0].end == pytest.approx(verbose.duration)


def test_chat_with_input_audio_and_streaming(client, server, clips, offline) -> None:
    clip = clips[1]
    audio = base64.b64encode(clip.read_bytes()).decode()
    # the run's own prompt ("Transcribe.", data.prompt of the tiny recipe), given as text, is the offline decode
    messages = [{"role": "user", "content": [{"type": "text", "text": "Transcribe."},
                                             {"type": "input_audio", "input_audio": {"data": audio, "format": "wav"}}]}]
    reply = client.chat.completions.create(model=server.engine.name, messages=messages)
    assert reply.choices[0].message.content == offline[clip.name]
    assert reply.choices[0].finish_reason == "stop" and reply.usage.completion_tokens > 0
    chunks = list(client.chat.completions.create(model=server.engine.name, messages=messages, stream=True,
                                                 stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert "".join(pieces) == offline[clip.name]
    assert len(pieces) > 3, "greedy decoding streams token by token, not the whole text at once"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == reply.usage.completion_tokens
    # another instruction is another prompt: the answer follows the text part
    other = [{"role": "user", "content": [{"type": "text", "text": "Describe the audio."}, messages[0]["content"][1]]}]
    assert isinstance(client.chat.completions.create(model=server.engine.name, messages=other).choices[0].message.content, str)


def test_models_health_and_metrics(server) -> None:
    health = httpx.get(server.url + "/health").json()
    assert health["status"] == "ok" and health["model"] == server.engine.name
    models = httpx.get(server.url + "/v1/models", headers={"Authorization": f"Bearer {KEY}"}).json()
    assert models["data"][0]["task"] == "asr" and "aac" in models["data"][0]["tasks"]
    text = httpx.get(server.url + "/metrics").text
    assert 'slamkit_requests_total{endpoint="/health",status="200"}' in text
    assert "slamkit_batch_size_bucket" in text and "slamkit_queue_depth" in text and "slamkit_request_seconds_bucket" in text


def test_a_biasing_run_takes_the_transcription_prompt_as_its_word_list(tiny_run, clips) -> None:
    from slamkit.data.tasks import prompt_resolver
    from slamkit.serve.engine import Clip, Engine

    engine = Engine(str(tiny_run), ["data.task=asr_biasing", "data.prompt=Hotwords: {biasing_words}. Transcribe."])
    try:
        fields = engine.prompt_fields("Elinor, Marianne Dashwood")
        assert fields == {"biasing_words": ["Elinor", "Marianne", "Dashwood"]}
        [record] = engine.plan(Clip(clips[0], 1.0, extra=fields))
        assert prompt_resolver(engine.cfg)(record) == "Hotwords: Elinor, Marianne, Dashwood. Transcribe."
    finally:
        engine.close()
    plain = Engine(str(tiny_run))
    try:
        assert plain.prompt_fields("Elinor") == {}, "an ASR run's prompt is Transcribe.: the request's prompt is not used"
    finally:
        plain.close()
