"""Contextual biasing wired into training, decoding, scoring and LibriSpeech preparation.

Tone-speech clips (words such as "cat", "dog") with a biasing list holding six of their words
and 49 made-up ones: per-epoch lists in training (the same for the same epoch, after a resume
too, in DataLoader workers too), fixed lists in decoding written into the hypothesis lines,
`slamkit score` on them, `prepare librispeech --biasing-tsv/--biasing-list`, and errors that name
the key, file or line.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from slamkit.cli import main
from slamkit.config import load_config
from slamkit.data.biasing import BiasingOptions
from slamkit.data.manifest import read_manifest
from slamkit.infer.decode import decode
from slamkit.models.speech_llm import build_model, parameter_report
from slamkit.train import checkpoint as ckpt
from slamkit.train.log import read_metrics
from slamkit.train.data import batch_stream, build_loader
from slamkit.train.loop import train

from conftest import REPO, tiny_config
from conftest import fake_librispeech as _librispeech

IN_LIST = ["cat", "dog", "bird", "red", "blue", "stop"]  # tone words that are "rare"
MADE_UP = [f"zeta{a}{b}" for a in "abcdefg" for b in "abcdefg"]
N = 4  # distractors per utterance in these tests
RECIPE = REPO / "recipes" / "asr_biasing_librispeech_wavlm_vicuna.yaml"


@pytest.fixture(scope="module")
def word_list(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("biasing") / "rare.txt"
    path.write_text("\n".join(IN_LIST + MADE_UP) + "\n")
    return path


def _cfg(out: Path, corpus: dict[str, Path], word_list: Path, *extra: str):
    return tiny_config(out, corpus, "data.task=asr_biasing", "data.prompt=null", f"data.biasing_list={word_list}",
                       f"data.biasing_distractors={N}", *extra)


def _check_list(words: list[str], reference: str) -> None:
    """``words`` = the reference's listed words + N distractors that are not in the reference."""
    ref = set(reference.lower().split())
    keys = [w.lower() for w in words]
    wanted = ref & set(IN_LIST)
    assert wanted <= set(keys) and len(keys) == len(set(keys))
    distractors = [w for w in keys if w not in wanted]
    assert len(distractors) == N and not set(distractors) & ref


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# --------------------------------------------------------------------------- training


def test_training_lists_change_per_epoch_and_repeat_within_one(tmp_path, tone_corpus, word_list):
    cfg = _cfg(tmp_path / "run", tone_corpus, word_list)
    model = build_model(cfg)
    dataset = build_loader(cfg, model, str(tone_corpus["train"]), "train", seed=cfg.train.seed).dataset

    def lists(epoch: int) -> list[list[str]]:
        dataset.set_epoch(epoch)
        return [dataset[i].extra["biasing_words"] for i in range(len(dataset))]

    first, second = lists(0), lists(1)
    assert lists(0) == first, "the same epoch must give the same lists"
    assert sum(a != b for a, b in zip(first, second)) >= len(first) - 1, "a new epoch draws new distractors"
    for rec, words in zip(dataset.records, first):
        _check_list(words, rec.target)
        assert "biasing_words" not in rec.extra, "training must leave the manifest records alone"
    dataset.set_epoch(1)
    prompt = model.prompts.tokenizer.decode(dataset[0].prompt_ids)
    assert f'The hotwords are "{", ".join(second[0])}"' in prompt


def test_record_words_are_kept_and_distractors_added(tmp_path, tone_corpus, word_list):
    lines = _read(tone_corpus["train"])[:6]
    for line in lines:
        line["biasing_words"] = ["Kubernetes", "Zanzibar"]
    manifest = tmp_path / "own.jsonl"
    manifest.write_text("".join(json.dumps({**line, "source": str(tone_corpus["train"].parent / line["source"])}) + "\n" for line in lines))
    cfg = _cfg(tmp_path / "run", {"train": manifest, "valid": manifest}, word_list, "data.biasing_case=upper")
    dataset = build_loader(cfg, build_model(cfg), str(manifest), "train", seed=0).dataset
    for i in range(len(dataset)):
        words = dataset[i].extra["biasing_words"]
        assert {"KUBERNETES", "ZANZIBAR"} <= set(words) and len(words) == 2 + N
        assert all(w == w.upper() for w in words)


@pytest.mark.parametrize("workers", [0, 1])
def test_batch_stream_hands_the_epoch_to_the_dataset(tmp_path, tone_corpus, word_list, workers):
    cfg = _cfg(tmp_path / "run", tone_corpus, word_list)
    data = build_loader(cfg, build_model(cfg), str(tone_corpus["train"]), "train", seed=cfg.train.seed)
    data.workers = workers
    dataset, sampler = data.dataset, data.sampler
    stream = batch_stream(data)
    seen: dict[tuple[int, str], list[str]] = {}
    for _ in range(2 * len(sampler)):
        batch = next(stream)
        seen.update({(sampler.epoch, key): extra["biasing_words"] for key, extra in zip(batch.keys, batch.extras)})
    options = BiasingOptions.from_config(cfg.data, cfg.train.seed)
    records = {rec.key: rec for rec in dataset.records}
    assert {epoch for epoch, _ in seen} == {0, 1} and len(seen) == 2 * len(records)
    for (epoch, key), words in seen.items():
        assert words == options.epoch_words(records[key], epoch)
    assert any(seen[(0, key)] != seen[(1, key)] for key in records)


def test_resume_across_an_epoch_boundary_is_exact(tmp_path, tone_corpus, word_list):
    """24 clips in batches of 4: steps 1-6 are epoch 0; a checkpoint at step 7 sits in epoch 1."""
    fast = ("train.max_steps=10", "train.warmup_steps=2", "train.log_every=1", "train.valid_every=0", "train.save_every=7",
            "data.batch_size=4", "model.lora.dropout=0.1")
    train(_cfg(tmp_path / "full", tone_corpus, word_list, *fast))
    train(_cfg(tmp_path / "cut", tone_corpus, word_list, *fast), stop_at_step=8)
    assert ckpt.latest_checkpoint(tmp_path / "cut").step == 7
    train(_cfg(tmp_path / "cut", tone_corpus, word_list, *fast, "train.resume=true"))
    full, cut = ({r["step"]: (r["loss"], r["epoch"]) for r in read_metrics(d) if "loss" in r} for d in (tmp_path / "full", tmp_path / "cut"))
    assert sorted(full) == list(range(1, 11)) and full[10][1] == 1
    assert full == cut, "every step's loss must equal the uninterrupted run's"
    wa = load_file(str(ckpt.latest_checkpoint(tmp_path / "full").path / "model.safetensors"))
    wb = load_file(str(ckpt.latest_checkpoint(tmp_path / "cut").path / "model.safetensors"))
    assert all(torch.equal(wa[name], wb[name]) for name in wa)


# --------------------------------------------------------------------------- decoding and scoring


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tone_corpus, word_list) -> Path:
    run = tmp_path_factory.mktemp("biasing_run") / "run"
    train(_cfg(run, tone_corpus, word_list, "train.max_steps=3", "train.valid_every=0", "train.warmup_steps=1"))
    return run


def test_decode_writes_the_lists_it_used_and_is_reproducible(run_dir, tone_corpus, tmp_path):
    opts = ["decode.max_new_tokens=4"]
    a, b, c = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    decode(run_dir, tone_corpus["valid"], a, opts)
    decode(run_dir, tone_corpus["valid"], b, opts + ["decode.batch_size=1"])
    decode(run_dir, tone_corpus["valid"], c, opts + ["data.biasing_seed=1"])
    lines = _read(a)
    assert lines == _read(b), "decoding draws its lists with a fixed seed"
    assert [line["biasing_words"] for line in lines] != [line["biasing_words"] for line in _read(c)]
    for line in lines:
        assert line["task"] == "asr_biasing"
        _check_list(line["biasing_words"], line["ref"])


def test_decode_uses_the_manifests_lists_without_a_word_list(run_dir, tone_corpus, tmp_path, caplog):
    lines = _read(tone_corpus["valid"])
    for i, line in enumerate(lines):
        line["source"] = str(tone_corpus["valid"].parent / line["source"])
        line["biasing_words"] = [f"word{i}", "Zanzibar"]
    manifest = tmp_path / "lists.jsonl"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = tmp_path / "h.jsonl"
    decode(run_dir, manifest, out, ["decode.max_new_tokens=4", "data.biasing_list=null"])
    assert [h["biasing_words"] for h in _read(out)] == [line["biasing_words"] for line in lines]
    with caplog.at_level(logging.WARNING, logger="slamkit.data.tasks"):
        decode(run_dir, manifest, out, ["decode.max_new_tokens=4"])  # the run's list: the record's words + N distractors
    warnings = [r.getMessage() for r in caplog.records if "data.biasing_list=null" in r.getMessage()]
    assert len(warnings) == 1 and f"{N} distractors" in warnings[0]  # said once, with the way out
    for line, hyp in zip(lines, _read(out)):
        assert set(line["biasing_words"]) <= set(hyp["biasing_words"]) and len(hyp["biasing_words"]) == 2 + N


def test_score_gives_wer_b_wer_and_u_wer(run_dir, tone_corpus, tmp_path, capsys):
    out = tmp_path / "h.jsonl"
    decode(run_dir, tone_corpus["valid"], out, ["decode.max_new_tokens=4"])
    capsys.readouterr()
    assert main(["score", str(out)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"wer", "b_wer", "u_wer"} <= set(result)
    refs = [line["ref"].split() for line in _read(out)]
    assert result["b_ref_words"] == sum(w in IN_LIST for ref in refs for w in ref)
    assert result["u_ref_words"] == sum(w not in IN_LIST for ref in refs for w in ref)


# --------------------------------------------------------------------------- errors


def test_missing_or_bad_settings_name_the_key(tmp_path, tone_corpus, word_list):
    with pytest.raises(FileNotFoundError, match=r"data\.biasing_list: no such file: .*nowhere\.txt"):
        train(_cfg(tmp_path / "a", tone_corpus, tmp_path / "nowhere.txt"))
    with pytest.raises(ValueError, match=r"data\.biasing_distractors must be >= 0"):
        train(_cfg(tmp_path / "b", tone_corpus, word_list, "data.biasing_distractors=-1"))
    with pytest.raises(ValueError, match=r"data\.biasing_distractors=500 but data\.biasing_list .* holds only 55 words"):
        train(_cfg(tmp_path / "c", tone_corpus, word_list, "data.biasing_distractors=500"))
    bad = tmp_path / "bad.txt"
    bad.write_text("fine\ntwo words\n")
    with pytest.raises(ValueError, match=r"data\.biasing_list: .*bad\.txt:2: expected one word per line"):
        train(_cfg(tmp_path / "d", tone_corpus, bad))


def test_bad_or_missing_record_lists_name_the_line(tmp_path, tone_corpus, word_list):
    lines = _read(tone_corpus["train"])[:4]
    for line in lines:
        line["source"] = str(tone_corpus["train"].parent / line["source"])
    lines[2]["biasing_words"] = "cat dog"
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    corpus = {"train": manifest, "valid": manifest}
    with pytest.raises(ValueError, match=r"m\.jsonl:3: field 'biasing_words' must be a list of strings"):
        train(_cfg(tmp_path / "a", corpus, word_list, "train.max_steps=1"))
    del lines[2]["biasing_words"]
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    with pytest.raises(ValueError, match=r"m\.jsonl:1: .*needs a 'biasing_words' list.*data\.biasing_list"):
        train(_cfg(tmp_path / "b", corpus, word_list, "train.max_steps=1", "data.biasing_list=null"))


# --------------------------------------------------------------------------- preparation


def _tsv(path: Path, lists: dict[str, tuple[str, list[str], list[str]]]) -> Path:
    path.write_text("".join(f"{utt}\t{text}\t{json.dumps(rare)}\t{json.dumps(full)}\n" for utt, (text, rare, full) in lists.items()))
    return path


def test_prepare_librispeech_attaches_biasing_lists(tmp_path, capsys):
    root = _librispeech(tmp_path)
    tsv = _tsv(tmp_path / "test-clean.biasing_3.tsv", {"1089-134686-0000": ("he hoped there would be stew for dinner", ["stew"], ["zebu", "stew", "quoll", "okapi"])})
    out = tmp_path / "tc.jsonl"
    assert main(["prepare", "librispeech", str(root / "test-clean"), "--out", str(out), "--biasing-tsv", str(tsv)]) == 0
    assert json.loads(capsys.readouterr().out)["biasing_words_per_utterance"] == 4
    assert read_manifest(out)[0].extra["biasing_words"] == ["zebu", "stew", "quoll", "okapi"]

    rare = tmp_path / "rare.txt"
    rare.write_text("stew\nminutes\n" + "\n".join(MADE_UP) + "\n")
    args = ["prepare", "librispeech", str(root), "--out", str(out), "--biasing-list", str(rare), "--distractors", "3"]
    assert main(args) == 0 and main([*args[:4], str(tmp_path / "again.jsonl"), *args[5:]]) == 0
    records = {r.key: r for r in read_manifest(out)}
    assert out.read_text() == (tmp_path / "again.jsonl").read_text(), "the same seed gives the same lists"
    _words = {key: [w.lower() for w in r.extra["biasing_words"]] for key, r in records.items()}
    assert "stew" in _words["1089-134686-0000"] and "minutes" in _words["84-121123-0001"]
    assert [len(w) for w in _words.values()] == [3, 4, 4]  # GO DO YOU HEAR has no listed word
    assert main([*args, "--seed", "7"]) == 0 and {r.key: r.extra["biasing_words"] for r in read_manifest(out)} != {k: r.extra["biasing_words"] for k, r in records.items()}

    assert main(["prepare", "librispeech", str(root / "test-clean"), "--out", str(out), "--biasing-tsv", str(tsv),
                 "--biasing-list", str(rare), "--distractors", "2"]) == 0
    both = read_manifest(out)[0].extra["biasing_words"]
    assert {"zebu", "stew", "quoll", "okapi"} <= set(both) and len(both) == 6


def test_prepare_librispeech_biasing_errors(tmp_path, capsys):
    root = _librispeech(tmp_path)
    tsv = _tsv(tmp_path / "t.tsv", {"1089-134686-0000": ("x", [], ["zebu"])})
    out = str(tmp_path / "m.jsonl")
    assert main(["prepare", "librispeech", str(root), "--out", out, "--biasing-tsv", str(tsv)]) == 2
    assert "t.tsv: no biasing list for 2 utterance(s) (e.g. 84-121123-0000, 84-121123-0001)" in capsys.readouterr().err
    assert main(["prepare", "librispeech", str(root), "--out", out, "--biasing-list", str(tmp_path / "none.txt")]) == 2
    assert "none.txt: no such biasing word list file" in capsys.readouterr().err
    assert main(["prepare", "librispeech", str(root), "--out", out, "--distractors", "5"]) == 2
    assert "--distractors and --seed need --biasing-list" in capsys.readouterr().err
    assert not Path(out).exists()


# --------------------------------------------------------------------------- recipe


def test_recipe_is_slam_llms_contextual_asr_setup():
    cfg = load_config(RECIPE, ["model.encoder.path=null", "model.llm.path=null"])
    assert (cfg.data.task, cfg.data.biasing_case, cfg.model.projector.name) == ("asr_biasing", "upper", "conv1d")
    with torch.device("meta"):
        report = parameter_report(build_model(cfg))
    assert round(report["projector"][1] / 1e6, 2) == 15.74  # SLAM-LLM's released contextual-ASR projector
    assert report["total"][0] == report["projector"][1], "only the projector trains"
