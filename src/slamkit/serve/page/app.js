// slamkit serve's web page. Plain browser JavaScript, no build step, nothing fetched from elsewhere.
//
// GET /v1/models gives the served model, its own task and every registered task's default prompt.
// The run's own task with no typed prompt goes to POST /v1/audio/transcriptions (verbose_json: text
// and timed segments); another task or a typed prompt goes to POST /v1/chat/completions with the
// audio as an input_audio part (and the prompt as a text part). Recording uses the Web Audio API
// and encodes 16-bit PCM WAV here, so the server always gets WAV.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY_STORE = "slamkit.apiKey";
const CHAT_FORMATS = ["wav", "mp3", "flac", "ogg", "webm", "m4a"];
const state = { model: null, audio: null, previewUrl: null, recorder: null, loading: null };

// ------------------------------------------------------------------------------------------ HTTP

class ServerError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function authHeaders(extra = {}) {
  const key = $("api-key").value.trim();
  return key ? { ...extra, Authorization: `Bearer ${key}` } : { ...extra };
}

// fetch + JSON; a refusal becomes a ServerError carrying the body's error.message.
async function call(path, init = {}) {
  let res;
  try {
    res = await fetch(path, { ...init, headers: authHeaders(init.headers) });
  } catch (err) {
    throw new ServerError(0, `could not reach the server (${err.message})`);
  }
  const text = await res.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!res.ok) {
    const message = body && body.error && body.error.message ? body.error.message : text || res.statusText;
    throw new ServerError(res.status, message);
  }
  return body;
}

// ----------------------------------------------------------------------------------------- model

function setModel(text, status) {
  $("model").textContent = text;
  $("model-dot").className = `dot ${status}`;
}

async function loadModel() {
  setModel("connecting…", "wait");
  try {
    const card = (await call("/v1/models")).data[0];
    state.model = card;
    setModel(`${card.id} · task ${card.task}`, "ok");
    fillTasks(card);
    return card;
  } catch (err) {
    state.model = null;
    setModel(err.status === 401 ? "API key needed" : "not connected", "bad");
    throw err;
  }
}

// One request at a time: typing the key and pressing Transcribe share the same load.
function ensureModel() {
  if (state.model) return Promise.resolve(state.model);
  if (!state.loading) state.loading = loadModel().finally(() => { state.loading = null; });
  return state.loading;
}

function fillTasks(card) {
  const select = $("task");
  const keep = select.value;
  select.replaceChildren();
  for (const name of Object.keys(card.tasks)) {
    const option = document.createElement("option");
    option.value = name;
    option.textContent = name === card.task ? `${name} (this model's task)` : name;
    select.append(option);
  }
  select.value = keep && keep in card.tasks ? keep : card.task;
  showTaskPrompt();
}

function showTaskPrompt() {
  const card = state.model;
  const prompt = card ? card.tasks[$("task").value] || "" : "";
  $("task-prompt").textContent = prompt ? `Prompt: “${prompt}”` : "";
  $("prompt").placeholder = prompt ? `Leave empty to use: ${prompt}` : "Leave empty to use the task's prompt";
}

// ----------------------------------------------------------------------------------------- audio

function formatOf(name, type) {
  const ext = (name.split(".").pop() || "").toLowerCase();
  if (CHAT_FORMATS.includes(ext)) return ext;
  const sub = (type || "").split("/")[1] || "";
  if (sub.includes("mpeg")) return "mp3";
  if (sub.includes("mp4") || sub.includes("aac")) return "m4a";
  return CHAT_FORMATS.find((f) => sub.includes(f)) || "wav";
}

function sizeText(bytes) {
  return bytes < 1024 * 1024 ? `${(bytes / 1024).toFixed(0)} KB` : `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

function setAudio(blob, name, format) {
  state.audio = { blob, name, format };
  if (state.previewUrl) URL.revokeObjectURL(state.previewUrl);
  state.previewUrl = URL.createObjectURL(blob);
  $("preview").src = state.previewUrl;
  $("clip-name").textContent = `${name} · ${sizeText(blob.size)}`;
  $("clip").hidden = false;
  $("transcribe").disabled = false;
}

// A 16-bit PCM mono WAV of float chunks (samples in [-1, 1]) at `rate` Hz.
function encodeWav(chunks, rate) {
  const n = chunks.reduce((sum, c) => sum + c.length, 0);
  const view = new DataView(new ArrayBuffer(44 + 2 * n));
  const ascii = (at, s) => { for (let i = 0; i < s.length; i++) view.setUint8(at + i, s.charCodeAt(i)); };
  ascii(0, "RIFF"); view.setUint32(4, 36 + 2 * n, true); ascii(8, "WAVE");
  ascii(12, "fmt "); view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, rate, true); view.setUint32(28, rate * 2, true); view.setUint16(32, 2, true); view.setUint16(34, 16, true);
  ascii(36, "data"); view.setUint32(40, 2 * n, true);
  let at = 44;
  for (const chunk of chunks) {
    for (let i = 0; i < chunk.length; i++, at += 2) {
      const s = Math.max(-1, Math.min(1, chunk[i]));
      view.setInt16(at, s < 0 ? s * 0x8000 : s * 0x7fff, true);
    }
  }
  return new Blob([view.buffer], { type: "audio/wav" });
}

// An AudioWorklet that hands every render quantum (channels averaged to mono) to the page.
const TAP = `class Tap extends AudioWorkletProcessor {
  process(inputs) {
    const chans = inputs[0];
    if (chans && chans.length) {
      const out = new Float32Array(chans[0].length);
      for (const c of chans) for (let i = 0; i < out.length; i++) out[i] += c[i] / chans.length;
      this.port.postMessage(out, [out.buffer]);
    }
    return true;
  }
}
registerProcessor("slamkit-tap", Tap);`;

// The microphone's samples, collected as Float32Array chunks while the context runs.
async function tapMicrophone(stream) {
  let ctx, source;
  try { // 16 kHz keeps uploads small; browsers that cannot resample a microphone use their own rate
    ctx = new AudioContext({ sampleRate: 16000 });
    source = ctx.createMediaStreamSource(stream);
  } catch {
    if (ctx) ctx.close();
    ctx = new AudioContext();
    source = ctx.createMediaStreamSource(stream);
  }
  const url = URL.createObjectURL(new Blob([TAP], { type: "text/javascript" }));
  try {
    await ctx.audioWorklet.addModule(url);
  } finally {
    URL.revokeObjectURL(url);
  }
  const tap = new AudioWorkletNode(ctx, "slamkit-tap");
  const chunks = [];
  tap.port.onmessage = (event) => chunks.push(event.data);
  const mute = ctx.createGain();
  mute.gain.value = 0; // keeps the graph pulled without playing the microphone back
  source.connect(tap).connect(mute).connect(ctx.destination);
  return { ctx, chunks };
}

async function startRecording() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    throw new Error("this browser cannot record from this page (recording needs https or localhost)");
  }
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
  });
  let graph;
  try {
    graph = await tapMicrophone(stream);
  } catch (err) {
    stream.getTracks().forEach((track) => track.stop());
    throw err;
  }
  const started = performance.now();
  const tick = () => {
    const s = Math.floor((performance.now() - started) / 1000);
    $("rec-time").textContent = `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  };
  state.recorder = { stream, ctx: graph.ctx, chunks: graph.chunks, timer: setInterval(tick, 250) };
  tick();
  setRecording(true);
}

async function stopRecording() {
  const rec = state.recorder;
  state.recorder = null;
  clearInterval(rec.timer);
  rec.stream.getTracks().forEach((track) => track.stop());
  const rate = rec.ctx.sampleRate;
  await rec.ctx.close();
  setRecording(false);
  if (!rec.chunks.length) throw new Error("the recording is empty: no audio came from the microphone");
  const stamp = new Date().toISOString().slice(11, 19).replaceAll(":", "");
  setAudio(encodeWav(rec.chunks, rate), `recording-${stamp}.wav`, "wav");
}

function setRecording(on) {
  $("record").setAttribute("aria-pressed", String(on));
  $("record").classList.toggle("recording", on);
  $("record-label").textContent = on ? "Stop" : "Record";
  $("rec-time").classList.toggle("live", on);
}

// ------------------------------------------------------------------------------------- requests

function base64Of(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",", 2)[1] || "");
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}

async function viaTranscriptions(card, audio) {
  const form = new FormData();
  form.append("file", audio.blob, audio.name);
  form.append("model", card.id);
  form.append("response_format", "verbose_json");
  const body = await call("/v1/audio/transcriptions", { method: "POST", body: form });
  return { endpoint: "/v1/audio/transcriptions", text: body.text, duration: body.duration, segments: body.segments };
}

async function viaChat(card, audio, task, prompt) {
  const content = [{ type: "input_audio", input_audio: { data: await base64Of(audio.blob), format: audio.format } }];
  if (prompt) content.push({ type: "text", text: prompt });
  const request = { model: card.id, messages: [{ role: "user", content }] };
  if (task !== card.task) request.task = task;
  const body = await call("/v1/chat/completions", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(request),
  });
  return { endpoint: "/v1/chat/completions", text: body.choices[0].message.content, duration: null, segments: null };
}

async function transcribe() {
  if (!state.audio) return;
  clearError();
  setBusy(true);
  const t0 = performance.now();
  try {
    const card = await ensureModel();
    const task = $("task").value || card.task;
    const prompt = $("prompt").value.trim();
    const out = task === card.task && !prompt
      ? await viaTranscriptions(card, state.audio)
      : await viaChat(card, state.audio, task, prompt);
    showResult(out, task, (performance.now() - t0) / 1000);
  } catch (err) {
    showError(err);
  } finally {
    setBusy(false);
  }
}

// ---------------------------------------------------------------------------------------- output

// Seconds as mm:ss.s
function clock(seconds) {
  const t = Math.max(0, Math.round(seconds * 10)) / 10;
  const m = Math.floor(t / 60);
  return `${String(m).padStart(2, "0")}:${(t - m * 60).toFixed(1).padStart(4, "0")}`;
}

function showResult(out, task, elapsed) {
  const parts = [task, out.endpoint];
  if (out.duration != null) parts.push(`${out.duration.toFixed(1)} s of audio`);
  parts.push(`answered in ${elapsed.toFixed(1)} s`);
  if (!out.text) parts.push("no text came back");
  $("meta").textContent = parts.join(" · ");
  $("result").textContent = out.text;
  const rows = (out.segments || []).map((seg, i) => {
    const tr = document.createElement("tr");
    for (const [value, cls] of [[i + 1, "num"], [clock(seg.start), "time"], [clock(seg.end), "time"], [seg.text, "text"]]) {
      const td = document.createElement("td");
      td.textContent = value;
      td.className = cls;
      tr.append(td);
    }
    return tr;
  });
  $("segments").tBodies[0].replaceChildren(...rows);
  $("segments").hidden = rows.length === 0;
  $("output").hidden = false;
}

function showError(err) {
  const status = err && err.status ? `${err.status} · ` : "";
  $("error").textContent = `${status}${err && err.message ? err.message : String(err)}`;
  $("error").hidden = false;
  if (err && err.status === 401) $("settings").open = true;
}

function clearError() {
  $("error").hidden = true;
  $("error").textContent = "";
}

function setBusy(on) {
  $("busy").hidden = !on;
  $("transcribe").disabled = on || !state.audio;
  $("output").setAttribute("aria-busy", String(on));
  document.body.classList.toggle("busy", on);
}

// ----------------------------------------------------------------------------------------- wire up

function init() {
  const key = $("api-key");
  key.value = localStorage.getItem(KEY_STORE) || "";
  let pending = null;
  key.addEventListener("input", () => {
    localStorage.setItem(KEY_STORE, key.value.trim());
    state.model = null;
    clearTimeout(pending);
    pending = setTimeout(() => ensureModel().then(clearError, () => {}), 400);
  });

  $("file").addEventListener("change", () => {
    const file = $("file").files[0];
    if (file) setAudio(file, file.name, formatOf(file.name, file.type));
  });
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    const file = event.dataTransfer.files[0];
    if (file) setAudio(file, file.name, formatOf(file.name, file.type));
  });

  $("record").addEventListener("click", async () => {
    clearError();
    $("record").disabled = true; // no second start while the microphone is opening
    try {
      await (state.recorder ? stopRecording() : startRecording());
    } catch (err) {
      setRecording(false);
      showError(err);
    } finally {
      $("record").disabled = false;
    }
  });
  $("task").addEventListener("change", showTaskPrompt);
  $("transcribe").addEventListener("click", transcribe);
  $("prompt").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) transcribe();
  });
  ensureModel().catch(showError);
}

init();
