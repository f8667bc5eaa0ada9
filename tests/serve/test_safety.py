"""Every bad request gets OpenAI's error shape with the right status, and the server keeps serving."""

from __future__ import annotations

import base64
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest

from slamkit.serve.api import ServeSettings, create_app
from slamkit.serve.engine import Engine
from slamkit.serve.server import BackgroundServer

from conftest import SERVE_KEY, write_wav

AUTH = {"Authorization": f"Bearer {SERVE_KEY}"}


def _post(server, files=None, data=None, headers=AUTH, **kw) -> httpx.Response:
    data = {"model": server.engine.name, **(data or {})}
    return httpx.post(server.url + "/v1/audio/transcriptions", files=files, data=data, headers=headers, timeout=60, **kw)


def _error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()["error"]
    assert set(body) == {"message", "type", "param", "code"}
    return body["message"]


@pytest.fixture(scope="module")
def clip(tone_corpus) -> Path:
    return sorted(Path(tone_corpus["valid"]).parent.glob("valid/*.wav"))[0]


def test_bad_requests_are_refused_by_status_and_the_server_keeps_serving(server, clip, tmp_path) -> None:
    wav = clip.read_bytes()
    big = write_wav(tmp_path / "big.wav", 70, 16000)  # 2.2 MB > the fixture's 2 MB limit
    assert "2 MB" in _error(_post(server, files={"file": ("big.wav", big.read_bytes())}), 413)
    assert "2 MB" in _error(_post_chunked(server, big.read_bytes()), 413)
    assert "not decodable" in _error(_post(server, files={"file": ("noise.wav", b"RIFF" + bytes(range(256)) * 40)}), 400)
    assert "noise.wav" in _error(_post(server, files={"file": ("noise.wav", b"\x00\x01garbage" * 100)}), 400)
    assert "empty" in _error(_post(server, files={"file": ("empty.wav", b"")}), 400)
    assert "not served here" in _error(_post(server, files={"file": ("a.wav", wav)}, data={"model": "whisper-1"}), 404)
    assert "API key" in _error(_post(server, files={"file": ("a.wav", wav)}, headers={}), 401)
    assert "API key" in _error(_post(server, files={"file": ("a.wav", wav)}, headers={"Authorization": "Bearer wrong"}), 401)
    assert "response_format" in _error(_post(server, files={"file": ("a.wav", wav)}, data={"response_format": "xml"}), 400)
    assert "temperature" in _error(_post(server, files={"file": ("a.wav", wav)}, data={"temperature": "0.5"}), 400)
    assert "word" in _error(_post(server, files={"file": ("a.wav", wav)},
                                  data={"response_format": "verbose_json", "timestamp_granularities[]": "word"}), 400)
    assert "file" in _error(_post(server, data={"file": "/etc/passwd"}), 400)  # a path is not a file: never read
    assert _post(server, files={"file": ("../../../../tmp/slamkit-escape.wav", wav)}).status_code == 200
    assert not Path("/tmp/slamkit-escape.wav").exists(), "an upload's name never chooses where it is written"
    assert not list(server.engine.folder.iterdir()), "every upload is deleted once answered"
    assert httpx.get(server.url + "/health").json()["status"] == "ok"
    assert _post(server, files={"file": ("a.wav", wav)}).json()["text"], "still serving after every bad request"


def _post_chunked(server, audio: bytes) -> httpx.Response:
    """A multipart upload sent in chunks, without Content-Length: the limit is enforced while reading."""
    body = (b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\nContent-Type: audio/wav\r\n\r\n'
            + audio + b"\r\n--xyz--\r\n")
    chunks = (body[i:i + 65536] for i in range(0, len(body), 65536))
    headers = {**AUTH, "Content-Type": "multipart/form-data; boundary=xyz"}
    return httpx.post(server.url + "/v1/audio/transcriptions", content=chunks, headers=headers, timeout=60)


def test_bad_chat_requests(server, clip) -> None:
    url = server.url + "/v1/chat/completions"
    audio = base64.b64encode(clip.read_bytes()).decode()

    def chat(content, **extra) -> httpx.Response:
        body = {"model": server.engine.name, "messages": [{"role": "user", "content": content}], **extra}
        return httpx.post(url, json=body, headers=AUTH, timeout=60)

    assert "exactly one input_audio" in _error(chat("hello"), 400)
    assert "base64" in _error(chat([{"type": "input_audio", "input_audio": {"data": "%%%", "format": "wav"}}]), 400)
    passwd = base64.b64encode(b"/etc/passwd").decode()  # bytes, not a path: refused as audio
    assert "not decodable" in _error(chat([{"type": "input_audio", "input_audio": {"data": passwd, "format": "wav"}}]), 400)
    assert "format" in _error(chat([{"type": "input_audio", "input_audio": {"data": audio, "format": "../x"}}]), 400)
    assert "task" in _error(chat([{"type": "input_audio", "input_audio": {"data": audio, "format": "wav"}}], task="nope"), 400)
    assert "JSON" in _error(httpx.post(url, content=b"{not json", headers=AUTH), 400)
    assert chat([{"type": "input_audio", "input_audio": {"data": audio, "format": "wav"}}]).status_code == 200


def _slow_engine(run: Path, release: threading.Event, entered: threading.Event | None = None, **kw) -> Engine:
    """An engine whose batches start (``entered``) then wait for ``release``: a busy server, on demand."""
    engine = Engine(str(run), **kw)
    decode = engine.decode_records

    def slow(records):
        if entered is not None:
            entered.set()
        release.wait(60)
        return decode(records)

    engine.batcher.run_batch = slow
    return engine


def test_a_full_queue_answers_503_with_retry_after(tiny_run, clip) -> None:
    release, entered = threading.Event(), threading.Event()
    engine = _slow_engine(tiny_run, release, entered, max_batch=1, max_wait_ms=0, max_queue=1)
    with BackgroundServer(create_app(engine, ServeSettings())) as running:
        client = openai.OpenAI(base_url=running.url + "/v1", api_key="none", max_retries=0, timeout=60)
        first, second = ([], [])
        threads = [threading.Thread(target=lambda out=out: out.append(client.audio.transcriptions.create(model=engine.name,
                                                                                                      file=clip.open("rb")).text))
                   for out in (first, second)]
        threads[0].start()
        assert entered.wait(30), "the first request reached the model"
        threads[1].start()
        _wait(lambda: engine.batcher.depth == 1)
        with pytest.raises(openai.InternalServerError) as refused:
            client.audio.transcriptions.create(model=engine.name, file=clip.open("rb"))
        assert refused.value.status_code == 503 and refused.value.response.headers["Retry-After"] == "1"
        release.set()
        for t in threads:
            t.join(60)
        assert first and second and first == second, "the queued requests are answered once the worker is free"
    engine.close()


def test_a_request_past_its_timeout_answers_504(tiny_run, clip) -> None:
    release = threading.Event()
    engine = _slow_engine(tiny_run, release)
    with BackgroundServer(create_app(engine, ServeSettings(timeout_s=0.5))) as running:
        response = httpx.post(running.url + "/v1/audio/transcriptions", files={"file": ("a.wav", clip.read_bytes())},
                              data={"model": engine.name}, timeout=60)
        assert "timeout" in _error(response, 504)
        release.set()
        assert httpx.get(running.url + "/health").status_code == 200
    engine.close()


def _wait(condition, seconds: float = 30.0) -> None:
    end = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.02)
