"""Decoding: batch size 1 and N give identical greedy output; beam search; output format."""

from __future__ import annotations

import json

import pytest

from slamkit.infer.decode import decode
from slamkit.train.loop import train

from conftest import tiny_config


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tone_corpus):
    run = tmp_path_factory.mktemp("decode") / "run"
    train(tiny_config(run, tone_corpus, "train.max_steps=60", "train.valid_every=0"))
    return run


def _read(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_batch_1_equals_batch_n(run_dir, tone_corpus, tmp_path):
    one, many = tmp_path / "b1.jsonl", tmp_path / "b8.jsonl"
    decode(run_dir, tone_corpus["train"], one, ["decode.batch_size=1", "decode.max_new_tokens=24"])
    decode(run_dir, tone_corpus["train"], many, ["decode.batch_size=8", "decode.max_new_tokens=24"])
    a, b = _read(one), _read(many)
    assert [r["key"] for r in a] == [json.loads(l)["key"] for l in tone_corpus["train"].read_text().splitlines()]
    assert a == b
    assert len({r["hyp"] for r in a}) > 1, "hypotheses should depend on the audio"


def test_beam_search_and_options(run_dir, tone_corpus, tmp_path):
    out = tmp_path / "beam.jsonl"
    decode(run_dir, tone_corpus["valid"], out, ["decode.beam_size=3", "decode.batch_size=4", "decode.max_new_tokens=5",
                                                "decode.no_repeat_ngram_size=2", "decode.repetition_penalty=1.2"])
    rows = _read(out)
    assert len(rows) == 6 and all(set(r) == {"key", "hyp", "ref", "task"} and r["task"] == "asr" for r in rows)
    assert all(len(r["hyp"].encode()) <= 5 for r in rows)


def test_unreadable_clip_keeps_its_line(run_dir, tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"garbage")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"key": "bad", "source": str(bad), "target": "red", "duration": 1.0}) + "\n")
    out = tmp_path / "o.jsonl"
    decode(run_dir, manifest, out)
    (row,) = _read(out)
    assert row["key"] == "bad" and row["hyp"] == "" and "error" in row


def test_decode_precision_bf16_decodes_and_fp16_on_cpu_is_refused(tmp_path, tone_corpus):
    from slamkit.train.loop import train as _train

    run = tmp_path / "run"
    _train(tiny_config(run, tone_corpus, "train.max_steps=2", "train.valid_every=0"))
    out = tmp_path / "bf16.jsonl"
    assert decode(run, tone_corpus["valid"], out, ["decode.precision=bf16"]) == 6
    assert len(out.read_text().splitlines()) == 6
    with pytest.raises(ValueError, match="decode.precision=fp16"):
        decode(run, tone_corpus["valid"], tmp_path / "fp16.jsonl", ["decode.precision=fp16"])


def test_bf16_decoding_stores_the_llm_in_bf16_and_gives_autocasts_texts(run_dir, tone_corpus, tmp_path):
    """decode.precision=bf16 keeps the LLM's weights in bf16 (no cast of every weight at every token): the texts
    are nearly those of bf16 autocast over the fp32 weights (the norms' products round differently in bf16: one
    clip of 24 differed on one machine, none on another)."""
    import torch

    from slamkit.infer.decode import decode_manifest, load_run

    cfg, model = load_run(run_dir, ["decode.precision=bf16", "decode.max_new_tokens=24"])
    assert {p.dtype for p in model.llm.parameters()} == {torch.bfloat16}
    stored = tmp_path / "stored.jsonl"
    decode_manifest(cfg, model, tone_corpus["train"], stored)
    cfg32, model32 = load_run(run_dir, ["decode.max_new_tokens=24"])
    cfg32.decode.precision = "bf16"  # autocast over the fp32 weights, as before the cast
    cast_each_step = tmp_path / "autocast.jsonl"
    decode_manifest(cfg32, model32, tone_corpus["train"], cast_each_step)
    same = sum(a == b for a, b in zip(_read(stored), _read(cast_each_step)))
    assert same >= 0.8 * len(_read(stored)), f"only {same} of {len(_read(stored))} texts agree"


def _repeats_a_bigram(text: str) -> bool:
    """A token pair occurs twice (the tiny LLM's tokenizer maps each byte to one token; a text holding U+FFFD,
    half a character, does not map back to its tokens and is left out)."""
    if "\ufffd" in text:
        return False
    units = list(text.encode())
    pairs = list(zip(units, units[1:]))
    return len(pairs) != len(set(pairs))


def test_no_repeat_ngram_and_repetition_penalty_change_the_output(run_dir, tone_corpus, tmp_path):
    base = ["decode.max_new_tokens=30", "decode.batch_size=8"]
    plain, banned, penalised = (tmp_path / f"{n}.jsonl" for n in ("plain", "banned", "penalised"))
    decode(run_dir, tone_corpus["train"], plain, base)
    decode(run_dir, tone_corpus["train"], banned, [*base, "decode.no_repeat_ngram_size=2"])
    decode(run_dir, tone_corpus["train"], penalised, [*base, "decode.repetition_penalty=3.0"])
    plain_hyps, banned_hyps = [r["hyp"] for r in _read(plain)], [r["hyp"] for r in _read(banned)]
    assert sum(_repeats_a_bigram(h) for h in plain_hyps) >= 3, "the test needs outputs that repeat themselves"
    assert not any(_repeats_a_bigram(h) for h in banned_hyps), [h for h in banned_hyps if _repeats_a_bigram(h)][:3]
    assert [r["hyp"] for r in _read(penalised)] != plain_hyps, "repetition_penalty changes what is generated"
