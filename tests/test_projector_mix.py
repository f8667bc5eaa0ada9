"""benchmarks/projector_mix.py's mechanics at tiny sizes: one manifest with both tasks, three
projectors trained on it with the same budget, both kinds of evaluation set decoded and scored, one
table (the real experiment needs the demo's assets and hours; see the script's docstring)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from slamkit.data.manifest import read_manifest, write_manifest
from slamkit.eval.caption import caption_scores
from slamkit.infer.score import score_file

from conftest import REPO

# Sizes only (as tests/recipes/test_paper_recipes.py shrinks a recipe): the recipe's projectors,
# task mixture, template and schedule stay; fp32 because bf16 autocast is slow on small CPU ops.
TINY = [
    "model.encoder.path=null", "model.encoder.preset=test", "model.encoder.cache_dir=null",
    "model.llm.path=null", "model.llm.preset=tiny", "model.projector.hidden=32", "model.projector.query_hidden=32",
    "model.projector.num_heads=4", "model.projector.num_layers=1", "data.batch_size=4", "train.precision=fp32",
    "train.log_every=1", "train.save_every=2", "train.warmup_steps=1", "train.tensorboard=false",
    "decode.max_new_tokens=4", "decode.batch_size=8",
]


def _load_script():
    spec = importlib.util.spec_from_file_location("projector_mix", REPO / "benchmarks" / "projector_mix.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


mix = _load_script()


@pytest.fixture(scope="module")
def sounds(tmp_path_factory) -> dict[str, Path]:
    """A tiny captioning corpus in the Sonic Pi manifest's form: noise bursts and chirps, 2 references each."""
    root = tmp_path_factory.mktemp("sounds")
    rng = np.random.default_rng(0)
    records = []
    for i in range(8):
        seconds = 0.2 + 0.15 * i
        kind = "noise" if i % 2 else "tone"
        t = np.arange(int(16000 * seconds)) / 16000
        audio = 0.2 * rng.standard_normal(t.size) if kind == "noise" else 0.3 * np.sin(2 * np.pi * (300 + 200 * i) * t)
        sf.write(str(root / f"s{i}.wav"), audio.astype(np.float32), 16000)
        refs = [f"a short {kind} sample", f"a {kind} sound"]
        records.append({"key": f"snd-{i}", "source": f"s{i}.wav", "target": refs[0], "task": "aac", "duration": seconds, "references": refs})
    write_manifest(records[:6], root / "train.jsonl")
    write_manifest(records[6:], root / "test.jsonl")
    return {"train": root / "train.jsonl", "test": root / "test.jsonl"}


def fast_scorer(path: Path) -> dict:
    """``score_file`` for WER; captions with the pure-Python tokenizer and no METEOR (no Java in a unit test)."""
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if lines[0]["task"] != "aac":
        return score_file(path)
    return caption_scores([x["hyp"] for x in lines], [x["ref"] for x in lines], tokenizer="simple", java=str(path.parent / "no-java"))


def test_mixed_manifest_holds_both_tasks(tmp_path: Path, tone_corpus, sounds) -> None:
    out = tmp_path / "mix.jsonl"
    counts = mix.mix_manifests(Path(tone_corpus["train"]), sounds["train"], out, caption_share=0.5, seed=3)
    records = read_manifest(out)
    tasks = [r.task for r in records]
    assert counts["asr_lines"] == tasks.count("asr") == len(read_manifest(tone_corpus["train"]))
    assert counts["aac_lines"] == tasks.count("aac") == 6 * counts["aac_repeats"] and counts["aac_repeats"] == 4
    assert len({r.key for r in records}) == len(records), "repeated captioning lines need their own keys"
    assert all(Path(str(r.source)).is_absolute() and Path(str(r.source)).is_file() for r in records)
    assert tasks != sorted(tasks), "the lines are shuffled"
    with pytest.raises(ValueError, match="caption-share"):
        mix.mix_manifests(Path(tone_corpus["train"]), sounds["train"], out, caption_share=1.0, seed=3)


def test_three_projectors_trained_decoded_and_scored(tmp_path: Path, tone_corpus, sounds) -> None:
    train = tmp_path / "data" / "mix.jsonl"
    counts = mix.mix_manifests(Path(tone_corpus["train"]), sounds["train"], train, caption_share=0.3, seed=0)
    data = mix.MixData(train, {"tones": Path(tone_corpus["valid"]), "sounds": sounds["test"]}, counts)
    opts = mix.MixOptions(out=tmp_path / "out", steps=2, qformer_queries=4, caption_tokens=3, overrides=TINY)
    rows = mix.compare(opts, data, scorer=fast_scorer)
    by_name = {r["projector"]: r for r in rows}
    assert list(by_name) == ["linear", "qformer", "hybrid"]
    for name, row in by_name.items():
        assert row["steps"] == 2, name
        assert 0.0 <= row["tones_wer"] and all(row[f"sounds_{k}"] is not None for k in ("bleu_4", "rouge_l", "cider_d"))
        assert row["sounds_meteor"] is None  # no Java here: listed as unavailable, never faked
        hyps = {s: [json.loads(x) for x in Path(row["scores"][s]["hyps"]).read_text().splitlines()] for s in ("tones", "sounds")}
        assert {x["task"] for x in hyps["tones"]} == {"asr"} and {x["task"] for x in hyps["sounds"]} == {"aac"}
        assert all(isinstance(x["ref"], list) for x in hyps["sounds"]), "captions are scored against every reference"
    # The hybrid is exactly the other two side by side (16 queries in the recipe, 4 in this Q-Former).
    lin, qf, hyb = (by_name[n] for n in ("linear", "qformer", "hybrid"))
    assert hyb["projector_params"] == lin["projector_params"] + qf["projector_params"] + (16 - 4) * 32
    assert qf["audio_tokens_3s"] == 4 and hyb["audio_tokens_3s"] == lin["audio_tokens_3s"] + 16
    table = mix.write_results(opts, data, rows)
    lines = table.splitlines()
    assert len(lines) == 5 and "tones_wer" in lines[0] and "sounds_cider_d" in lines[0]
    assert [line.split("|")[1].strip() for line in lines[2:]] == ["linear", "qformer", "hybrid"]
    saved = json.loads((opts.out / "results.json").read_text())
    assert [r["projector"] for r in saved["rows"]] == ["linear", "qformer", "hybrid"] and saved["data"]["aac_lines"] == counts["aac_lines"]


def test_command_line_budget_and_quick_defaults() -> None:
    quick = mix.parse_args(["--quick", "--projectors", "linear,hybrid", "model.lora.r=4"])
    assert (quick.steps, quick.utterances, quick.projectors, quick.overrides) == (30, 300, ("linear", "hybrid"), ["model.lora.r=4"])
    assert mix.parse_args(["--quick", "--steps", "7"]).steps == 7
    full = mix.parse_args(["--minutes", "20"])
    assert full.minutes == 20 and full.out == Path("runs/projector_mix")
    with pytest.raises(SystemExit):
        mix.parse_args(["--steps", "5", "--minutes", "2"])
    with pytest.raises(ValueError, match="unknown 'mlpp'"):
        mix.main(["--projectors", "mlpp"])
