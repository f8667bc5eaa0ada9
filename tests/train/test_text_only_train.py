"""Text-only training (docs/text-only.md): the one loop learns from records without audio, adapts a
trained ASR run's LoRA from text alone (projector untouched), trains on a mixed manifest, and the
adapted run still decodes speech."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from slamkit.infer.decode import decode
from slamkit.train import checkpoint as ckpt
from slamkit.train.log import read_metrics
from slamkit.train.loop import train

from conftest import tiny_config

TEXTS = ["grep the kernel source", "a hacker writes code", "the daemon forks twice", "cons up a new list"]
STEPS = ("train.warmup_steps=2", "train.log_every=5", "train.valid_every=0", "train.save_every=100", "data.batch_size=4")


def _text_manifest(path: Path, repeat: int = 4, **extra: object) -> Path:
    lines = [{"key": f"t{i}", "target": t, **extra} for i, t in enumerate(TEXTS * repeat)]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def _losses(run: Path) -> list[float]:
    return [r["loss"] for r in read_metrics(run) if "loss" in r]


def test_text_only_training_learns(tmp_path, tone_corpus):
    text = _text_manifest(tmp_path / "text.jsonl")
    run = tmp_path / "run"
    train(tiny_config(run, {"train": text, "valid": text}, "data.text_records=only", "train.max_steps=30", *STEPS))
    losses = _losses(run)
    assert len(losses) == 6 and all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.6 * losses[0], losses  # a random LLM learns four sentences
    assert any("valid_loss" in r for r in read_metrics(run))  # validation reads text records too


def test_text_records_are_refused_by_default_and_prealign_is_refused(tmp_path, tone_corpus):
    text = _text_manifest(tmp_path / "text.jsonl", repeat=1)
    with pytest.raises(ValueError, match="no usable records.*bad field"):
        train(tiny_config(tmp_path / "a", {"train": text, "valid": text}, "train.max_steps=1"))
    with pytest.raises(ValueError, match="prealign_steps=5 with data.text_records=mixed"):
        train(tiny_config(tmp_path / "b", {"train": text, "valid": text}, "data.text_records=mixed", "train.prealign_steps=5",
                          "train.max_steps=1"))


def test_text_adaptation_of_an_asr_run_then_decode(tmp_path, tone_corpus):
    asr = tmp_path / "asr"
    train(tiny_config(asr, tone_corpus, "train.max_steps=4", *STEPS))
    text = _text_manifest(tmp_path / "text.jsonl", repeat=2, prompt="Transcribe.")  # ASR layout, zero audio tokens
    adapted = tmp_path / "adapted"
    train(tiny_config(adapted, {"train": text, "valid": text}, "data.text_records=only", f"train.init_from={asr}",
                      "train.max_steps=6", *STEPS))
    before = load_file(str(ckpt.latest_checkpoint(asr).path / "model.safetensors"))
    after = load_file(str(ckpt.latest_checkpoint(adapted).path / "model.safetensors"))
    assert before.keys() == after.keys()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed and all("lora_" in k for k in changed), "text alone trains the LoRA only (no gradient reaches the rest)"
    assert any(k.startswith("projector.") for k in before)  # the checkpoint stays a whole adapter
    out = tmp_path / "hyp.jsonl"
    n = decode(str(adapted), str(tone_corpus["valid"]), str(out), ["decode.batch_size=4"])
    hyps = [json.loads(line) for line in out.read_text().splitlines()]
    assert n == len(hyps) == 6 and all(isinstance(h["hyp"], str) for h in hyps)


def test_mixed_manifest_trains(tmp_path, tone_corpus):
    lines = [json.loads(line) for line in Path(tone_corpus["train"]).read_text().splitlines()]
    for line in lines:
        line["source"] = str(Path(tone_corpus["train"]).parent / line["source"])
    mixed = tmp_path / "mixed.jsonl"
    text_lines = [{"key": f"t{i}", "target": t} for i, t in enumerate(TEXTS * 3)]
    mixed.write_text("".join(json.dumps(x) + "\n" for x in lines + text_lines))
    run = tmp_path / "run"
    # No bucketing: shuffled order puts clips and text in the same batches.
    train(tiny_config(run, {"train": mixed, "valid": tone_corpus["valid"]}, "data.text_records=mixed", "data.bucket=false",
                      "train.max_steps=6", *STEPS))
    losses = _losses(run)
    assert losses and all(torch.isfinite(torch.tensor(losses)))
    assert sum(r.get("audio_seconds", 0) > 0 for r in read_metrics(run) if "loss" in r) >= 1


def test_benchmark_split_keeps_test_sentences_out_of_the_adaptation_text():
    import importlib.util

    from conftest import REPO
    from slamkit.prepare.text import EvalGuard

    spec = importlib.util.spec_from_file_location("textonly_adaptation", REPO / "benchmarks" / "textonly_adaptation.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)  # type: ignore[union-attr]
    words = [f"w{i}" for i in range(40)]
    target = [" ".join(words[i : i + 8]) for i in range(30)]  # neighbours share 7-word runs
    control = [f"control sentence number {i} here" for i in range(10)]
    sets = bench.split_domains(target, control, n_test=3, n_train=5, n_valid=2, seed=1)
    assert len(sets["target_test"]) == len(sets["control_test"]) == 3
    assert len(sets["adapt_train"]) == 5 and len(sets["adapt_valid"]) == 2
    guard = EvalGuard(sets["target_test"] + sets["control_test"])
    assert not any(guard.overlaps(s) for s in sets["adapt_train"] + sets["adapt_valid"])
    assert not set(sets["adapt_train"]) & set(sets["adapt_valid"])
    assert sets == bench.split_domains(target, control, n_test=3, n_train=5, n_valid=2, seed=1)  # deterministic
    lines = bench.text_records(["a b c"], "t", "Transcribe.")
    assert lines == [{"key": "t00000", "target": "a b c", "prompt": "Transcribe."}] and "source" not in lines[0]
    with pytest.raises(ValueError, match="not enough sentences"):
        bench.split_domains(target, control, n_test=3, n_train=500, n_valid=2)


def test_benchmark_removes_the_baselines_training_text_from_both_domains() -> None:
    """The reference adapter trained on the demo's text mix: the benchmark's domains lose every sentence of it."""
    import importlib.util

    from conftest import REPO
    from slamkit.prepare.text import evaluation_texts, mix_sentences

    spec = importlib.util.spec_from_file_location("textonly_adaptation", REPO / "benchmarks" / "textonly_adaptation.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)  # type: ignore[union-attr]
    seen = mix_sentences("jargon:40", exclude=evaluation_texts(), seed=0).sentences
    fresh = "the quick brown fox typed a sentence nobody has trained on"
    assert bench.unseen([*seen[:5], fresh, seen[7] + " indeed"], "jargon:40") == [fresh]
    assert bench.unseen([*seen[:5], fresh], "") == [*seen[:5], fresh]


def test_benchmark_replay_layouts_mix_asr_clips_with_the_text(tmp_path) -> None:
    """`mixed` = the plain text + as many of the baseline's ASR clips (absolute sources); `replay` = the clips alone."""
    import importlib.util

    from conftest import REPO

    spec = importlib.util.spec_from_file_location("textonly_adaptation", REPO / "benchmarks" / "textonly_adaptation.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    manifest = tmp_path / "data" / "train.jsonl"
    manifest.parent.mkdir()
    manifest.write_text("".join(json.dumps({"key": f"c{i}", "source": f"wav/c{i}.wav", "target": f"clip {i}"}) + "\n" for i in range(5)))
    replay = bench.replay_records(manifest, 2, seed=0)
    assert len(replay) == 2 and all(r["source"].startswith(str(tmp_path / "data" / "wav")) for r in replay)
    assert replay == bench.replay_records(manifest, 2, seed=0), "the draw is seeded"
    mixed = bench.adaptation_records("mixed", ["one sentence", "another"], "t", replay)
    assert [("source" in r, "prompt" in r) for r in mixed] == [(False, False), (False, False), (True, False), (True, False)]
    assert bench.adaptation_records("replay", ["one sentence"], "t", replay) == replay
    assert all(r["prompt"] == bench.ASR_PROMPT for r in bench.adaptation_records("prompt", ["a", "b"], "t", []))
    with pytest.raises(SystemExit, match="--replay"):
        bench.replay_records(None, 2, seed=0)
    with pytest.raises(SystemExit, match="5 lines, 9 replay clips"):
        bench.replay_records(manifest, 9, seed=0)


def test_benchmark_real_speech_target_keeps_test_transcripts_out_of_the_text() -> None:
    import importlib.util

    from conftest import REPO
    from slamkit.prepare.text import EvalGuard

    spec = importlib.util.spec_from_file_location("textonly_adaptation", REPO / "benchmarks" / "textonly_adaptation.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    prompts = [f"press {i} to record your greeting number {i} now please" for i in range(30)]
    prompts += ["Activated.", "Goodbye.", "Goodbye."]
    lines = [{"key": f"p{i}", "source": f"p{i}.wav", "target": t} for i, t in enumerate(prompts)]
    control = [f"an everyday example sentence number {i}" for i in range(20)]
    sets, test = bench.split_manifest_domain(lines, control, n_test=10, n_train=100, n_valid=2, seed=0)
    assert [r["target"] for r in test] == sets["target_test"] and len(test) == 10
    guard = EvalGuard(sets["target_test"] + sets["control_test"])
    text = sets["adapt_train"] + sets["adapt_valid"]
    assert text and not any(guard.overlaps(t) for t in text)
    assert len(set(text)) == len(text), "a repeated transcript is one adaptation sentence"
    with pytest.raises(ValueError, match="not enough lines"):
        bench.split_manifest_domain(lines, control, n_test=40, n_train=100, n_valid=2, seed=0)


def test_benchmark_refuses_a_folder_made_with_other_settings(tmp_path) -> None:
    import importlib.util

    from conftest import REPO

    spec = importlib.util.spec_from_file_location("textonly_adaptation", REPO / "benchmarks" / "textonly_adaptation.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    args = bench.parse_args(["--out", str(tmp_path)])
    results = tmp_path / "results.json"
    assert bench._check_folder(results, args) == {}
    rows = {"reference": {"target": 50.0, "control": 40.0}}
    results.write_text(json.dumps({"settings": bench._settings(args), "wer_percent": rows}))
    assert bench._check_folder(results, args) == rows, "same settings: the earlier rows are kept"
    args.target, args.beam = "asterisk", 1
    with pytest.raises(SystemExit, match=r"other settings \(target, beam\)"):
        bench._check_folder(results, args)
