"""scripts/reference_data.py: the reference adapter's extra sets never reuse the demo's sentences, the union
manifest stands alone, and a run started from the demo's checkpoint resumes on it."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import random

import pytest
import torch
from conftest import REPO, write_wav
from safetensors.torch import save_file

from slamkit.train import checkpoint as ckpt


def _script():
    spec = importlib.util.spec_from_file_location("reference_data", REPO / "scripts" / "reference_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_new_sentences_are_disjoint_from_the_demo_and_each_other():
    """Against the demo's own line builder: no sentence the demo speaks, held-out ones included, is reused."""
    from slamkit.app.demo import DemoOptions, _tts_lines, ensure_assets
    from slamkit.prepare.text import EvalGuard, evaluation_texts, mix_sentences, word_key

    script = _script()
    first, second = script.new_sentences(300, 0), script.new_sentences(300, 1)
    assert len(first) == len(second) == 300 and not set(first) & set(second)
    opts = DemoOptions()
    assets = ensure_assets(opts)
    exclude = evaluation_texts(assets["asterisk-sounds"], assets["pocketsphinx-testdata"])
    sentences = list(mix_sentences(opts.text, exclude=exclude, seed=opts.seed, install=True).sentences)
    random.Random(opts.seed).shuffle(sentences)
    short = round(opts.utterances * opts.short_fraction)
    spoken = set(_tts_lines(sentences, opts, short))
    assert not spoken & (set(first) | set(second))
    fourth = script.new_sentences(7200, 3)  # set 4: the mix's last unspoken sentences, then the extra text
    mixed = {word_key(s) for s in sentences}
    assert len(fourth) == 7200 and len({word_key(s) for s in fourth}) == 7200
    assert 0 < sum(word_key(s) not in mixed for s in fourth) < 7200
    assert not {word_key(s) for s in spoken} & {word_key(s) for s in fourth}
    guard = EvalGuard(exclude)
    assert not any(guard.overlaps(s) for s in fourth)
    with pytest.raises(SystemExit, match="unused sentences"):
        script.new_sentences(10_000, 20)


def _manifest(folder, name, keys):
    (folder / "wav").mkdir(parents=True, exist_ok=True)
    lines = []
    for key in keys:
        write_wav(folder / "wav" / f"{key}.wav", 0.2, 16000)
        lines.append(json.dumps({"key": key, "source": f"wav/{key}.wav", "target": "hello", "duration": 0.2}))
    (folder / name).write_text("\n".join(lines) + "\n")
    return folder / name


def test_union_prefixes_keys_and_makes_paths_absolute(tmp_path):
    script = _script()
    a = _manifest(tmp_path / "demo", "train.jsonl", ["tts-0", "tts-1"])
    b = _manifest(tmp_path / "seed1", "train.jsonl", ["tts-0"])
    union = script.write_union(tmp_path / "out.jsonl", [(a, ""), (b, "s1-")])
    records = [json.loads(line) for line in union.read_text().splitlines()]
    assert [r["key"] for r in records] == ["tts-0", "tts-1", "s1-tts-0"]
    assert records[2]["source"] == str((tmp_path / "seed1" / "wav" / "tts-0.wav").resolve())
    with pytest.raises(SystemExit, match="missing.jsonl: not found"):
        script.write_union(tmp_path / "x.jsonl", [(tmp_path / "missing.jsonl", "")])


def _demo_run(run):
    """A run folder whose last checkpoint carries the sampler state a real run writes."""
    step = run / "checkpoints" / "step_00000040"
    step.mkdir(parents=True)
    (run / "config.yaml").write_text("train: {}\n")
    (run / "metrics.jsonl").write_text('{"step": 40, "loss": 1.0}\n')
    save_file({"w": torch.zeros(2)}, str(step / "model.safetensors"))
    torch.save({"step": 40, "sampler": {"epoch": 2, "position": 7, "seed": 42, "num_items": 3, "num_replicas": 1}},
               step / "state.pt")
    files = {f: {"size": (step / f).stat().st_size, "sha256": hashlib.sha256((step / f).read_bytes()).hexdigest()}
             for f in ("model.safetensors", "state.pt")}
    (step / "meta.json").write_text(json.dumps({"step": 40, "valid_loss": 2.0, "files": files}))
    return run


def test_start_copies_the_checkpoint_with_the_sampler_resized(tmp_path):
    script = _script()
    demo = _demo_run(tmp_path / "demo")
    union = tmp_path / "union.jsonl"
    union.write_text("{}\n" * 5)
    script.start_run(demo, tmp_path / "ref", union)
    copied = tmp_path / "ref" / "checkpoints" / "step_00000040"
    assert ckpt.check_checkpoint(copied) is None, "the rewritten state must match its meta.json"
    assert ckpt.load_state(copied)["sampler"] == {"epoch": 2, "position": 0, "seed": 42, "num_items": 5, "num_replicas": 1}
    assert (tmp_path / "ref" / "config.yaml").read_text() == "train: {}\n"
    with pytest.raises(SystemExit, match="exists already"):
        script.start_run(demo, tmp_path / "ref", union)


def test_start_warns_when_the_manifest_looks_like_the_same_data(tmp_path, capsys):
    """A manifest as long as the sampler's items is likely the same data: starting over would replay the batches
    already trained on in this pass, so start says so (the run it writes is the same)."""
    script = _script()
    demo = _demo_run(tmp_path / "demo")
    same, other = tmp_path / "same.jsonl", tmp_path / "other.jsonl"
    same.write_text("{}\n" * 3)
    other.write_text("{}\n" * 5)
    script.start_run(demo, tmp_path / "ref_other", other)
    assert "replays the 7 batches" not in capsys.readouterr().err
    script.start_run(demo, tmp_path / "ref_same", same)
    assert "replays the 7 batches already trained on" in capsys.readouterr().err


def test_mix_keeps_every_new_line_and_draws_the_replayed_ones_from_the_seen_part(tmp_path, capsys):
    """``mix``: all lines after --seen, --replay distinct lines of the first --seen, shuffled; the same seed writes
    the same file, another seed another draw; bad counts name the manifest and the limits."""
    script = _script()
    manifest = tmp_path / "union.jsonl"
    manifest.write_text("".join(json.dumps({"key": f"k{i}"}) + "\n" for i in range(30)))
    out = tmp_path / "mix.jsonl"
    assert script.main(["mix", str(manifest), str(out), "--seen", "20", "--replay", "6"]) == 0
    assert "10 new + 6 replayed = 16 lines" in capsys.readouterr().out
    keys = [json.loads(line)["key"] for line in out.read_text().splitlines()]
    assert len(keys) == len(set(keys)) == 16
    assert {f"k{i}" for i in range(20, 30)} <= set(keys)
    replayed = set(keys) - {f"k{i}" for i in range(20, 30)}
    assert len(replayed) == 6 and all(int(k[1:]) < 20 for k in replayed)
    assert keys != sorted(keys, key=lambda k: int(k[1:]))  # shuffled, not appended
    first = out.read_text()
    script.mix_manifest(manifest, out, 20, 6, 16)
    assert out.read_text() == first
    script.mix_manifest(manifest, out, 20, 6, 17)
    assert out.read_text() != first
    with pytest.raises(SystemExit, match="union.jsonl: --seen 30 must be between 1 and 29"):
        script.mix_manifest(manifest, out, 30, 6, 16)
    with pytest.raises(SystemExit, match="--replay 21 must be between 0 and --seen"):
        script.mix_manifest(manifest, out, 20, 21, 16)


def test_joined_clips_come_from_the_new_sets_and_join_the_union(tmp_path):
    """``--joined``: clean clips of every new set joined 2–3 at a time, augmented, appended with keys ``j-``."""
    script = _script()
    demo = tmp_path / "demo"
    _manifest(demo / script.DEMO_DATA / script.DEMO_AUGMENTED.split("/")[0], "train.jsonl", ["tts-0"])
    for s in (1, 2):
        _manifest(tmp_path / "out" / f"seed{s}", "tts.jsonl", [f"tts-{i}" for i in range(4)])
        (tmp_path / "out" / f"seed{s}" / "augment").mkdir()
        (tmp_path / "out" / f"seed{s}" / "augment" / "train.jsonl").write_text(
            (tmp_path / "out" / f"seed{s}" / "tts.jsonl").read_text().replace("wav/", "../wav/"))
    joined = script.make_joined(tmp_path / "out", 2, 5, spec="speed:0.5")
    records = [json.loads(line) for line in joined.read_text().splitlines()]
    assert len(records) == 5 and all(r["key"].endswith("~aug1") for r in records)
    used = [k for r in records for k in r["concat"]["keys"]]
    assert {k.split("-")[0] for k in used} == {"s1", "s2"} and all(2 <= len(r["concat"]["keys"]) <= 3 for r in records)
    union = script.make_data(tmp_path / "out", demo, 2, joined=5)
    keys = [json.loads(line)["key"] for line in union.read_text().splitlines()]
    assert keys[0] == "tts-0" and len(keys) == 1 + 8 + 5 and sum(k.startswith("j-cat") for k in keys) == 5


def _fake_mix(script, monkeypatch, evaluation=("Press 4 to delete this message.",)):
    """The script on a made-up text mix of 9 000 sentences (7 200 spoken by the demo, 1 800 left) and transcripts."""
    sentences = [f"Sentence number {i} is spoken here." for i in range(9000)]
    monkeypatch.setattr(script, "_mix", lambda: (sentences, 7200))
    monkeypatch.setattr(script, "_eval_texts", lambda: tuple(evaluation))
    return sentences


def test_set_lines_keeps_the_old_sets_and_guards_the_prompt_phrases(monkeypatch):
    from slamkit.prepare import with_short_phrases
    from slamkit.prepare.prompt_phrases import prompt_phrases

    script = _script()
    sentences = _fake_mix(script, monkeypatch, [p + "." for p in prompt_phrases(40, seed=script.PROMPT_SEED + 1)[:5]])
    plain = script.set_lines(1)
    assert len(plain) == 2000 and plain == with_short_phrases(list(enumerate(sentences[7200:9000], start=1)), 200, 1)
    with_prompts = script.set_lines(1, prompts=40)
    texts = [t for n, t in with_prompts if n == 0]
    guarded = set(prompt_phrases(40, seed=script.PROMPT_SEED + 1)[:5])
    assert len(with_prompts) == 2000 + 40 - len(guarded) and not guarded & set(texts)
    assert [x for x in with_prompts if x[0]] == [x for x in plain if x[0]]  # the sentences unchanged, in order


def test_the_union_drops_clips_one_word_from_an_evaluation_run(tmp_path, monkeypatch):
    script = _script()
    _fake_mix(script, monkeypatch)
    lines = [{"key": k, "source": "a.wav", "target": t, "duration": 1.0} for k, t in
             [("a", "Press seven to delete this message"), ("b", "Press seven to save that message"), ("c", "Hello")]]
    manifest = tmp_path / "train.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in lines))
    script.drop_near_evaluation(manifest)
    assert [json.loads(line)["key"] for line in manifest.read_text().splitlines()] == ["b", "c"]


def test_from_set_joins_only_the_later_sets_after_the_demo_split(tmp_path, capsys):
    """``--from-set 2``: the union is the demo's split and set 2 (set 1 neither made nor joined); out of range refused."""
    script = _script()
    demo = tmp_path / "demo"
    _manifest(demo / script.DEMO_DATA / script.DEMO_AUGMENTED.split("/")[0], "train.jsonl", ["tts-0"])
    _manifest(tmp_path / "out" / "seed2" / "augment", "train.jsonl", ["tts-0", "tts-1"])
    union = script.make_data(tmp_path / "out", demo, 2, first=2)
    assert [json.loads(line)["key"] for line in union.read_text().splitlines()] == ["tts-0", "s2-tts-0", "s2-tts-1"]
    assert not (tmp_path / "out" / "seed1").exists()
    with pytest.raises(SystemExit):
        script.main(["data", str(tmp_path / "out"), "--sets", "2", "--from-set", "3"])
    assert "--from-set must be between 1 and --sets (2)" in capsys.readouterr().err


def test_the_demo_split_is_made_when_missing(tmp_path, monkeypatch):
    """No demo folder: the demo's data (not its training) is made there; a split made elsewhere is refused by name."""
    import slamkit.app.demo as demo_app

    script = _script()
    demo = tmp_path / "demo"
    calls = []

    def fake_prepare(opts, assets):
        calls.append(opts.out)
        _manifest(opts.out / script.DEMO_DATA / script.DEMO_AUGMENTED.split("/")[0], "train.jsonl", ["tts-0"])
        return {"train": opts.out / script.DEMO_DATA / script.DEMO_AUGMENTED}

    monkeypatch.setattr(demo_app, "ensure_assets", lambda opts: {})
    monkeypatch.setattr(demo_app, "prepare_data", fake_prepare)
    assert script.demo_training_split(demo) == demo / script.DEMO_DATA / script.DEMO_AUGMENTED
    assert script.demo_training_split(demo).is_file() and calls == [demo]  # made once, then reused
    monkeypatch.setattr(demo_app, "prepare_data", lambda opts, assets: {"train": tmp_path / "elsewhere.jsonl"})
    with pytest.raises(SystemExit, match="DEMO_DATA is out of date"):
        script.demo_training_split(tmp_path / "demo2")
