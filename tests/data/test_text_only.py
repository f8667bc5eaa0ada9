"""Text-only records (no ``source``): manifest modes, validation, dataset, collator, and the model's
encoder skipping rows without audio (docs/text-only.md)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from slamkit.batch import IGNORE_INDEX
from slamkit.data.collate import Collator, Example
from slamkit.data.dataset import SpeechDataset, filter_by_duration, record_durations, text_seconds
from slamkit.data.manifest import ManifestError, Record, read_manifest, scan_manifest, write_manifest
from slamkit.data.skips import BAD_FIELD
from slamkit.data.validate import validate_manifest

from conftest import tiny_config, write_wav

AUDIO, PAD, BOS = 99, 0, 1


def _write(path: Path, lines: list[dict]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


@pytest.fixture
def mixed_manifest(tmp_path) -> Path:
    write_wav(tmp_path / "a.wav", 0.5, 16000)
    return _write(tmp_path / "m.jsonl", [
        {"key": "a", "source": "a.wav", "target": "audio words"},
        {"key": "t1", "target": "only text here"},
        {"key": "t2", "source": None, "target": "null source", "prompt": "Write."},
    ])


def test_refuse_is_the_default_and_names_the_key(mixed_manifest):
    with pytest.raises(ManifestError, match=r"m\.jsonl:2: missing required field 'source' .*data\.text_records"):
        read_manifest(mixed_manifest)
    records, skips = scan_manifest(mixed_manifest)
    assert [r.key for r in records] == ["a"]
    assert [(s.reason, s.key) for s in skips] == [(BAD_FIELD, "t1"), (BAD_FIELD, "t2")]
    assert "got null" in skips[1].detail


def test_mixed_reads_both_kinds_and_round_trips(mixed_manifest, tmp_path):
    records = read_manifest(mixed_manifest, "mixed")
    assert [r.is_text for r in records] == [False, True, True]
    assert records[0].source == str(mixed_manifest.parent / "a.wav") and records[1].source is None
    assert "source" not in records[1].to_json() and records[2].prompt == "Write."
    write_manifest(records, tmp_path / "again.jsonl")
    again = read_manifest(tmp_path / "again.jsonl", "mixed")
    assert [(r.key, r.source, r.target, r.prompt) for r in again] == [(r.key, r.source, r.target, r.prompt) for r in records]


def test_only_refuses_audio_records(mixed_manifest):
    records, skips = scan_manifest(mixed_manifest, "only")
    assert [r.key for r in records] == ["t1", "t2"]
    assert [s.key for s in skips] == ["a"] and "data.text_records=only" in skips[0].detail
    with pytest.raises(ValueError, match="data.text_records must be one of"):
        scan_manifest(mixed_manifest, "sometimes")


def test_validate_checks_no_file_for_text_records(mixed_manifest):
    _, refused = validate_manifest(mixed_manifest)
    assert [p.where.rsplit(":", 1)[1] for p in refused if p.error] == ["2", "3"]
    count, found = validate_manifest(mixed_manifest, text_records="mixed")
    assert count == 3 and not [p for p in found if p.error]


def test_durations_proxy_and_range_filter(mixed_manifest):
    records = read_manifest(mixed_manifest, "mixed")
    long_text = Record("long", None, "word " * 200)  # 1000 characters: about 67 s of speech
    durations, skips = record_durations(records + [long_text])
    assert not skips and durations[0] == pytest.approx(0.5)
    assert durations[1] == pytest.approx(text_seconds(records[1])) == pytest.approx(len("only text here") / 15.0)
    kept, _, out = filter_by_duration(records + [long_text], durations, 0.6, 30.0)
    assert [r.key for r in kept] == ["t1", "t2", "long"]  # text is never out of range; the 0.5 s clip is
    assert [s.key for s in out] == ["a"]


def _prompt_ids(text: str) -> list[int]:
    return [5, AUDIO] + [ord(c) % 50 + 10 for c in text]


def test_dataset_text_example_opens_no_file(mixed_manifest):
    records = read_manifest(mixed_manifest, "mixed")
    ds = SpeechDataset(records, 16000, _prompt_ids, lambda t: [ord(c) for c in t] + [2], lambda r: r.prompt or "Transcribe.",
                       text_prefix_ids=[BOS])
    audio, plain, prompted = ds[0], ds[1], ds[2]
    assert len(audio.audio) == 8000 and audio.cache_key is not None
    assert plain.audio.shape == (0,) and plain.cache_key is None
    assert plain.prompt_ids == [BOS]  # plain text: no task prompt
    assert plain.target_ids == [ord(c) for c in "only text here"] + [2]
    assert prompted.prompt_ids == _prompt_ids("Write.")  # its own prompt, placeholder included


def _ex(key: str, samples: int, prompt: list[int], target: list[int]) -> Example:
    return Example(key=key, audio=np.ones(samples, dtype=np.float32), prompt_ids=prompt, target_ids=target, target=key)


def test_collator_text_rows_and_mixed_batch():
    col = Collator(AUDIO, PAD, token_count=lambda n: n // 10 + 1)  # 0 samples would give 1 token: must not be used
    batch = col([_ex("a", 30, [5, AUDIO, 6], [7, 2]), _ex("plain", 0, [BOS], [8, 9, 2]), _ex("prompted", 0, [5, AUDIO, 6], [7, 2])])
    assert batch.input_ids.tolist() == [[5, AUDIO, AUDIO, AUDIO, AUDIO, 6, 7, 2], [BOS, 8, 9, 2, PAD, PAD, PAD, PAD],
                                         [5, 6, 7, 2, PAD, PAD, PAD, PAD]]
    assert batch.labels.tolist() == [[IGNORE_INDEX] * 6 + [7, 2], [IGNORE_INDEX, 8, 9, 2] + [IGNORE_INDEX] * 4,
                                     [IGNORE_INDEX] * 2 + [7, 2] + [IGNORE_INDEX] * 4]
    assert batch.audio_lengths.tolist() == [30, 0, 0] and batch.audio.shape == (3, 30)
    text_only = col([_ex("plain", 0, [BOS], [8, 2])])
    assert text_only.audio.shape == (1, 0) and text_only.num_target_tokens == 2
    with pytest.raises(ValueError, match="no audio placeholder"):
        col([_ex("bad", 10, [5, 6], [7])])


def test_model_encodes_only_rows_with_audio(tmp_path, tone_corpus):
    from slamkit.models.speech_llm import build_model

    model = build_model(tiny_config(tmp_path, tone_corpus)).eval()
    col = Collator(model.audio_token_id, 0, model.token_counter())
    prompt = model.prompts.prompt_ids("Transcribe.")
    rng = np.random.default_rng(0)
    audio_ex = Example("a", rng.standard_normal(8000).astype(np.float32) * 0.1, prompt, model.prompts.target_ids("hi"), "hi")
    text_ex = Example("t", np.zeros(0, np.float32), [], model.prompts.target_ids("plain text"), "plain text")
    alone, mixed = col([audio_ex]), col([text_ex, audio_ex])
    with torch.no_grad():
        emb_alone, len_alone = model.encode_batch(alone)
        emb_mixed, len_mixed = model.encode_batch(mixed)
        model.forward(mixed)  # the splice count check holds with a text row
    assert len_mixed.tolist() == [0, int(len_alone[0])]
    torch.testing.assert_close(emb_mixed[1, : int(len_alone[0])], emb_alone[0], rtol=1e-4, atol=1e-5)

    def refuse(*args, **kwargs):
        raise AssertionError("the encoder (or its feature cache) ran on an all-text batch")

    model.encoder.forward = refuse  # type: ignore[method-assign]
    model._active_cache = refuse  # type: ignore[method-assign]
    with torch.no_grad():
        out = model.forward(col([text_ex, text_ex]))
    assert out.logits is not None and out.logits.shape[0] == out.targets.numel() > 0
