"""Tasks: prompt precedence, placeholders, hypothesis lines per task, mixed-task manifests."""

from __future__ import annotations

import json
import math

import pytest

from slamkit.data.manifest import Record, read_manifest
from slamkit.data.tasks import TASKS, record_task, resolve_prompt
from slamkit.infer.decode import decode
from slamkit.train.log import read_metrics
from slamkit.train.loop import train

from conftest import tiny_config


def _rec(**kw) -> Record:
    return Record(key=kw.pop("key", "k"), source="a.wav", target=kw.pop("target", "t"), manifest="m.jsonl", line=3, **kw)


def test_the_paper_tasks_are_registered() -> None:
    assert {"asr", "asr_biasing", "aac", "sec", "mc", "st", "vsr"} <= set(TASKS.names())
    assert {TASKS.get(t).metric for t in ("aac", "sec", "mc")} == {"caption"}
    assert TASKS.get("asr_biasing").metric == "bwer"


def test_every_task_metric_is_registered() -> None:
    """`slamkit score` looks each task's metric up: a task naming an unregistered metric cannot be scored."""
    from slamkit.eval.scoring import METRICS

    missing = {name: TASKS.get(name).metric for name in TASKS.names() if TASKS.get(name).metric not in METRICS}
    assert not missing, f"tasks whose metric is not registered: {missing}"


def test_prompt_precedence() -> None:
    assert resolve_prompt(_rec(), "asr", None) == "Transcribe the speech."
    assert resolve_prompt(_rec(), "aac", None) == TASKS.get("aac").prompt
    assert resolve_prompt(_rec(), "asr", "Write it down.") == "Write it down."  # data.prompt over the run task
    assert resolve_prompt(_rec(task="mc"), "asr", "Write it down.") == TASKS.get("mc").prompt  # the record's task wins
    assert resolve_prompt(_rec(task="mc", prompt="Say {x}."), "asr", None) == "Say {x}."  # literal


def test_biasing_words_fill_the_prompt_and_a_missing_field_names_the_line() -> None:
    rec = _rec(task="asr_biasing", extra={"biasing_words": ["Kubernetes", "Zanzibar"]})
    assert resolve_prompt(rec, "asr", None) == 'Transcribe speech to text. Some hotwords might help. The hotwords are "Kubernetes, Zanzibar".'
    with pytest.raises(ValueError, match=r"m.jsonl:3.*biasing_words"):
        resolve_prompt(_rec(task="asr_biasing"), "asr", None)


def test_unknown_task_names_the_line() -> None:
    with pytest.raises(ValueError, match=r"m.jsonl:3: unknown task 'asrr'"):
        record_task(_rec(task="asrr"), "asr")


def test_hypothesis_lines_carry_what_the_metric_needs() -> None:
    cap = _rec(task="aac", target="a dog barks", extra={"references": ["a dog barks", "barking dog"]})
    assert TASKS.get("aac").hypothesis_line(cap, "dog") == {"key": "k", "hyp": "dog", "ref": ["a dog barks", "barking dog"], "task": "aac"}
    bias = _rec(task="asr_biasing", extra={"biasing_words": ["w"], "other": 1})
    assert TASKS.get("asr_biasing").hypothesis_line(bias, "h") == {"key": "k", "hyp": "h", "ref": "t", "task": "asr_biasing", "biasing_words": ["w"]}


def test_one_model_trains_and_decodes_a_mixed_task_manifest(tmp_path, tone_corpus) -> None:
    records = read_manifest(tone_corpus["train"])[:12]
    mixed = []
    for i, rec in enumerate(records):
        line = {"key": rec.key, "source": rec.source, "target": rec.target}
        if i % 2:
            line.update(task="aac", references=[rec.target, "a tone"])
        mixed.append(line)
    manifest = tmp_path / "mixed.jsonl"
    manifest.write_text("".join(json.dumps(x) + "\n" for x in mixed))
    corpus = {"train": manifest, "valid": manifest}
    cfg = tiny_config(tmp_path / "run", corpus, "train.max_steps=4", "train.valid_every=4", "train.save_every=4", "data.batch_size=4")
    assert train(cfg).step == 4
    assert all(math.isfinite(r["loss"]) for r in read_metrics(tmp_path / "run") if "loss" in r)
    out = tmp_path / "hyps.jsonl"
    decode(tmp_path / "run", manifest, out, ["decode.max_new_tokens=4"])
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["task"] for x in lines] == ["asr", "aac"] * 6
    assert lines[1]["ref"] == [records[1].target, "a tone"] and lines[0]["ref"] == records[0].target


def test_a_bad_task_in_a_manifest_fails_before_training(tmp_path, tone_corpus) -> None:
    rec = read_manifest(tone_corpus["train"])[0]
    manifest = tmp_path / "bad.jsonl"
    manifest.write_text(json.dumps({"key": "a", "source": rec.source, "target": "x", "task": "captioning"}) + "\n")
    cfg = tiny_config(tmp_path / "run", {"train": manifest, "valid": manifest}, "train.max_steps=2")
    with pytest.raises(ValueError, match=r"bad.jsonl:1: unknown task 'captioning'"):
        train(cfg)
