"""The web page at ``/`` driven in a real browser: Playwright's Python client and Debian's Chromium.

The shipped reference adapter (greedy) is served in-process with an API key; the page uploads a
recorded LibriVox clip, records from Chromium's fake microphone (the same clip, looped), and
shows the server's refusals. What the page shows is compared with what the API answers for the
same audio. Chromium is never downloaded: a missing ``/usr/bin/chromium`` fails with the
install command (CI installs it in ``.ci/run``).

``SLAMKIT_PAGE_SCREENSHOT=docs/img/serve-page.png`` makes the upload test write the README's
screenshot of the page after its transcription.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
from collections.abc import Iterator
from fnmatch import fnmatch
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf
from playwright.sync_api import expect, sync_playwright

from slamkit.assets import resolve_path
from slamkit.serve.api import PAGE_DIR, ServeSettings, create_app
from slamkit.serve.engine import Engine
from slamkit.serve.server import BackgroundServer

CHROMIUM = Path("/usr/bin/chromium")
KEY = "page-key"
LIBRIVOX = "asset:pocketsphinx-testdata/usr/share/pocketsphinx/test/data/librivox"
CLIP = "sense_and_sensibility_01_austen_64kb-0880.wav"  # 2.99 s: "he was not an ill disposed young man"
TIMEOUT_MS = 60_000
REPO = Path(__file__).resolve().parents[2]
# Records what the page's fetch() calls send (Chromium does not report multipart bodies holding
# a Blob to Playwright): URL, a JSON body as text, or a form's fields with files in base64.
SPY = """
window.__sent = [];
const realFetch = window.fetch;
const b64 = (blob) => new Promise((ok) => { const r = new FileReader(); r.onload = () => ok(String(r.result).split(",")[1]); r.readAsDataURL(blob); });
window.fetch = async (input, init = {}) => {
  const entry = { url: String(input) };
  if (init.body instanceof FormData) {
    entry.form = {};
    for (const [k, v] of init.body.entries()) entry.form[k] = v instanceof Blob ? { name: v.name, data: await b64(v) } : v;
  } else if (typeof init.body === "string") {
    entry.json = init.body;
  }
  window.__sent.push(entry);
  return realFetch(input, init);
};
"""


def chromium_args(fake_audio: Path) -> list[str]:
    """Headless Chromium without network chatter, with a fake microphone playing ``fake_audio`` (looped)."""
    return ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={fake_audio}"]


def clock(seconds: float) -> str:
    """The page's ``mm:ss.s``."""
    tenths = max(0, round(seconds * 10))
    return f"{tenths // 600:02d}:{tenths % 600 // 10:02d}.{tenths % 10}"


@pytest.fixture(scope="module")
def clip() -> Path:
    """The LibriVox clip; a missing asset fails with its install command (``make test`` installs it)."""
    path = Path(resolve_path(LIBRIVOX)) / CLIP
    assert path.is_file(), f"{path} is missing from the pocketsphinx-testdata asset"
    return path


@pytest.fixture(scope="module")
def site(clip) -> Iterator[BackgroundServer]:
    """The reference adapter (greedy) served with an API key from a thread of this process."""
    engine = Engine("reference", ["decode.beam_size=1"], max_batch=4, max_wait_ms=10)
    app = create_app(engine, ServeSettings(api_key=KEY, timeout_s=120))
    with BackgroundServer(app) as running:
        yield running
    engine.close()


@pytest.fixture(scope="module")
def browser(clip):
    """Debian's Chromium under Playwright; fails (never skips) when it is not installed."""
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: the web page tests need Debian's Chromium "
                    "(sudo apt-get install -y chromium; .ci/run does this). Playwright's own browser download is not used.")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=chromium_args(clip.resolve()))
        yield browser
        browser.close()


@pytest.fixture()
def page(browser, site):
    """A fresh context (empty localStorage) allowed to use the microphone, on the served page."""
    expect.set_options(timeout=TIMEOUT_MS)
    context = browser.new_context(permissions=["microphone"], viewport={"width": 900, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.add_init_script(SPY)
    page.goto(site.url + "/")
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def api(site: BackgroundServer, path: str, **kwargs) -> dict:
    """POST to the server as a client would (with the key); the JSON answer."""
    reply = httpx.post(site.url + path, headers={"Authorization": f"Bearer {KEY}"}, timeout=120, **kwargs)
    assert reply.status_code == 200, reply.text
    return reply.json()


def sign_in(page) -> None:
    """Type the key and wait for the model card to load."""
    open_key_field(page)
    page.fill("#api-key", KEY)
    expect(page.locator("#model")).to_have_text("slamkit-reference · task asr")


def open_key_field(page) -> None:
    """Wait until the page has asked for the model without a key (which opens the key field), then open it if closed."""
    expect(page.locator("#model")).to_have_text("API key needed")
    if page.locator("#settings").get_attribute("open") is None:
        page.locator("#settings summary").click()
    expect(page.locator("#api-key")).to_be_visible()


def read_result(page) -> str:
    """Wait for the answer (or fail with the page's error) and return the shown text."""
    expect(page.locator("#busy")).to_be_hidden()
    error = page.locator("#error")
    assert error.is_hidden(), f"the page shows an error: {error.text_content()}"
    expect(page.locator("#output")).to_be_visible()
    return page.locator("#result").text_content() or ""


def last_sent(page, endpoint: str) -> dict:
    """The last request the page sent to ``endpoint`` (see :data:`SPY`)."""
    sent = [e for e in page.evaluate("window.__sent") if e["url"].endswith(endpoint)]
    assert sent, f"the page sent nothing to {endpoint}"
    return sent[-1]


def wav_of(data: bytes) -> tuple[np.ndarray, int, str]:
    """A WAV file's samples, rate and soundfile's subtype."""
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE", "the page did not send WAV"
    audio, rate = sf.read(io.BytesIO(data), dtype="float32")
    return audio, rate, sf.info(io.BytesIO(data)).subtype


def test_upload_shows_the_api_transcript(page, site, clip):
    expect(page.locator("#error")).to_contain_text("needs an API key")  # the page asked /v1/models without one
    sign_in(page)
    expect(page.locator("#error")).to_be_hidden()
    expect(page.locator("#task")).to_have_value("asr")
    expect(page.locator("#task-prompt")).not_to_be_empty()
    expect(page.locator("#transcribe")).to_be_disabled()
    page.set_input_files("#file", str(clip))
    page.click("#transcribe")
    shown = read_result(page)
    form = last_sent(page, "/v1/audio/transcriptions")["form"]
    assert form["response_format"] == "verbose_json" and form["model"] == "slamkit-reference"
    assert base64.b64decode(form["file"]["data"]) == clip.read_bytes()

    want = api(site, "/v1/audio/transcriptions", files={"file": (clip.name, clip.read_bytes(), "audio/wav")},
               data={"model": "slamkit-reference", "response_format": "verbose_json"})
    assert shown.strip() and shown == want["text"]
    rows = page.locator("#segments tbody tr")
    assert rows.count() == len(want["segments"]) >= 1
    for i, seg in enumerate(want["segments"]):
        cells = rows.nth(i).locator("td").all_text_contents()
        assert cells == [str(i + 1), clock(seg["start"]), clock(seg["end"]), seg["text"]]
    assert rows.first.locator("td").all_text_contents()[1:3] == ["00:00.0", "00:03.0"]
    expect(page.locator("#meta")).to_contain_text("/v1/audio/transcriptions")

    if os.environ.get("SLAMKIT_PAGE_SCREENSHOT"):
        page.locator("#settings").evaluate("details => { details.open = false; }")  # the key field folded away
        page.screenshot(path=os.environ["SLAMKIT_PAGE_SCREENSHOT"], full_page=True)

    page.reload()  # the key was kept in localStorage
    expect(page.locator("#api-key")).to_have_value(KEY)
    expect(page.locator("#model")).to_have_text("slamkit-reference · task asr")


def test_wrong_key_shows_the_401_message(page, clip):
    open_key_field(page)
    page.fill("#api-key", "not-the-key")
    page.set_input_files("#file", str(clip))
    page.click("#transcribe")
    error = page.locator("#error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("401")
    expect(error).to_contain_text("missing or wrong API key: send 'Authorization: Bearer <key>'")
    expect(page.locator("#model")).to_have_text("API key needed")
    expect(page.locator("#output")).to_be_hidden()


def test_other_task_and_typed_prompt_go_to_chat(page, site, clip):
    sign_in(page)
    page.set_input_files("#file", str(clip))
    page.select_option("#task", "aac")
    expect(page.locator("#task-prompt")).to_contain_text("“")
    page.click("#transcribe")
    shown = read_result(page)
    body = json.loads(last_sent(page, "/v1/chat/completions")["json"])
    assert body["task"] == "aac" and body["model"] == "slamkit-reference"
    parts = body["messages"][0]["content"]
    assert [p["type"] for p in parts] == ["input_audio"] and parts[0]["input_audio"]["format"] == "wav"
    assert base64.b64decode(parts[0]["input_audio"]["data"]) == clip.read_bytes()
    assert shown == api(site, "/v1/chat/completions", json=body)["choices"][0]["message"]["content"]
    expect(page.locator("#segments")).to_be_hidden()

    page.select_option("#task", "asr")
    page.fill("#prompt", "Transcribe the speech.")
    page.click("#transcribe")
    shown = read_result(page)
    body = json.loads(last_sent(page, "/v1/chat/completions")["json"])
    assert "task" not in body
    assert [p.get("text") for p in body["messages"][0]["content"]] == [None, "Transcribe the speech."]
    assert shown == api(site, "/v1/chat/completions", json=body)["choices"][0]["message"]["content"]


def test_recording_from_the_microphone_sends_wav(page, clip):
    sign_in(page)
    record = page.locator("#record")
    record.click()
    expect(record).to_have_attribute("aria-pressed", "true")
    page.wait_for_timeout(3500)  # Chromium's fake microphone plays the clip (2.99 s) in a loop
    record.click()
    expect(record).to_have_attribute("aria-pressed", "false")
    expect(page.locator("#clip-name")).to_contain_text("recording-")
    page.click("#transcribe")
    shown = read_result(page)
    file = last_sent(page, "/v1/audio/transcriptions")["form"]["file"]
    audio, rate, subtype = wav_of(base64.b64decode(file["data"]))
    assert file["name"].startswith("recording-") and file["name"].endswith(".wav")
    assert (rate, subtype, audio.ndim) == (16000, "PCM_16", 1)
    assert 2.5 < len(audio) / rate < 6.0
    assert np.abs(audio).max() > 0.05, "the recording is silent"
    assert shown.strip(), "the recording gave no transcript"
    assert page.locator("#segments tbody tr").count() >= 1


def test_page_files_ship_in_the_wheel():
    """Every file of the page matches a package-data pattern (tests/test_packaging.py builds the wheel)."""
    text = (REPO / "pyproject.toml").read_text()
    section = text.split("[tool.setuptools.package-data]", 1)[1].split("\n[", 1)[0]
    patterns = re.findall(r'"([^"]+)"', section)
    pkg = PAGE_DIR.parents[1]
    files = [p.relative_to(pkg).as_posix() for p in PAGE_DIR.iterdir() if p.is_file()]
    assert {"serve/page/index.html", "serve/page/app.js", "serve/page/style.css"} <= set(files)
    assert [f for f in files if not any(fnmatch(f, pat) for pat in patterns)] == []
