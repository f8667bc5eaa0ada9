"""The `slamkit` command: help for every subcommand, clear one-line errors, small commands."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys

import pytest

from slamkit.cli import build_parser, main

from conftest import REPO

SUBCOMMANDS = ["train", "decode", "score", "normalize", "config", "list", "prepare", "assets", "demo", "bench", "memory"]


def test_console_script_help():
    exe = shutil.which("slamkit") or str(__import__("pathlib").Path(sys.executable).with_name("slamkit"))
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, check=True).stdout
    for name in SUBCOMMANDS:
        assert name in out


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_every_subcommand_documents_its_options(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: slamkit" in out and "options:" in out


def test_config_lists_keys_and_resolves_overrides(capsys):
    assert main(["config"]) == 0
    listing = capsys.readouterr().out
    assert "train.max_steps" in listing and "model.projector.k" in listing
    assert main(["config", "train.max_steps=3"]) == 0
    assert "max_steps: 3" in capsys.readouterr().out


def test_config_typo_is_one_clear_line(capsys):
    assert main(["config", "train.max_stepz=3"]) == 2
    err = capsys.readouterr().err
    assert "unknown config key 'train.max_stepz'" in err and "train.max_steps" in err and "Traceback" not in err


def test_train_without_data_is_a_clear_error(tmp_path, capsys):
    assert main(["train", "recipes/tiny_asr.yaml", f"train.output_dir={tmp_path}"]) == 2
    assert "data.train is not set" in capsys.readouterr().err


def test_bad_manifest_line_names_file_and_line(tmp_path, capsys):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"key": "a", "source": "a.wav", "target": "x"}\n{"key": "b", "source": 3}\n')
    assert main(["train", "recipes/tiny_asr.yaml", f"train.output_dir={tmp_path / 'run'}", f"data.train={manifest}"]) == 2
    assert f"{manifest}:2:" in capsys.readouterr().err


def test_score_and_normalize(tmp_path, capsys, monkeypatch):
    hyps = tmp_path / "h.jsonl"
    hyps.write_text(json.dumps({"key": "a", "hyp": "Hello, World!", "ref": "hello world"}) + "\n"
                    + json.dumps({"key": "b", "hyp": "twenty five", "ref": "25 cats"}) + "\n")
    assert main(["score", str(hyps)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["wer"] == pytest.approx(1 / 4) and result["deletions"] == 1 and result["utterances"] == 2
    monkeypatch.setattr(sys, "stdin", io.StringIO("Mr. Smith's colour is TWENTY ONE\n"))
    assert main(["normalize"]) == 0
    assert capsys.readouterr().out.strip() == "mister smith is color is 21"  # Whisper's rule: 's -> is


def test_prepare_tones_and_list(tmp_path, capsys):
    assert main(["prepare", "tones", "--out", str(tmp_path), "--train", "3", "--valid", "1", "--test", "0"]) == 0
    paths = json.loads(capsys.readouterr().out)
    assert set(paths) == {"train", "valid"}
    assert len((tmp_path / "train.jsonl").read_text().splitlines()) == 3
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "whisper" in out and "hf_ssl" in out and "qformer" in out


def test_parser_builds():
    assert build_parser().prog == "slamkit"


def test_overrides_after_options_reach_the_command(monkeypatch):
    seen = {}
    monkeypatch.setattr("slamkit.infer.decode.decode", lambda run, manifest, out, overrides: seen.update(o=overrides) or 0)
    assert main(["decode", "run", "--manifest", "m.jsonl", "--out", "h.jsonl", "decode.beam_size=4", "decode.batch_size=2"]) == 0
    assert seen["o"] == ["decode.beam_size=4", "decode.batch_size=2"]
    with pytest.raises(SystemExit):
        main(["decode", "run", "--manifest", "m.jsonl", "--out", "h.jsonl", "--bogus"])


def test_list_encoders_shows_every_encoder_with_its_rates(capsys):
    from slamkit.models.encoders.base import ENCODERS, encoder_table

    assert main(["list", "encoders"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["encoder", "sample", "rate"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == set(ENCODERS.names())
    for row in encoder_table():
        line = rows[str(row["name"])]
        assert f"{row['sample_rate']} Hz" in line and f" {row['hidden_size']} " in line and f"{row['frame_rate']:g}" in line
    mert = next(r for r in encoder_table() if r["name"] == "mert")
    assert (mert["sample_rate"], mert["frame_rate"]) == (24000, 75.0)


def test_readme_encoder_table_lists_every_encoder():

    from slamkit.models.encoders.base import ENCODERS

    readme = (REPO / "README.md").read_text()
    section = readme.split("## Encoders", 1)[1].split("\n## ", 1)[0]
    missing = [name for name in ENCODERS.names() if f"| `{name}` |" not in section]
    assert not missing, f"README's Encoders table lacks {missing}"


def test_bench_encoders_reports_ratios_against_the_baseline(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "encoders", "--encoders", "beats", "mert", "--preset", "test", "--seconds", "1", "--repeats", "1", "--out", str(out)]) == 0
    table = capsys.readouterr().out
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert [r["encoder"] for r in rows] == ["whisper (padded to 30 s)", "beats", "mert"]
    assert rows[0]["speed_vs_baseline"] == 1.0 and rows[0]["frames"] == 50  # valid frames; the 30 s window is computed
    assert rows[2]["frames"] == 74  # 1 s at 24 kHz, 75 frames/s (conv edges)
    for r in rows:
        assert r["seconds"] > 0 and abs(r["speed_vs_baseline"] - rows[0]["seconds"] / r["seconds"]) < 0.01 + 0.01 * r["speed_vs_baseline"]
        assert f"| {r['encoder']} |" in table
    assert main(["bench", "encoders", "--encoders", "nope"]) == 2
    assert "unknown encoders ['nope']" in capsys.readouterr().err


def test_score_picks_the_metric_from_the_task(tmp_path, capsys):
    hyps = tmp_path / "h.jsonl"
    lines = [
        {"key": "a", "hyp": "call kubernetes now", "ref": "call Kubernetes now", "task": "asr_biasing", "biasing_words": ["Kubernetes", "zebra"]},
        {"key": "b", "hyp": "visit zanzi bar", "ref": "visit Zanzibar", "task": "asr_biasing", "biasing_words": ["Zanzibar"]},
    ]
    hyps.write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert main(["score", str(hyps)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["metric"] == "bwer" and out["normalizer"] == "librispeech"
    # 5 reference words, 2 biased (kubernetes, zanzibar). zanzibar -> "zanzi bar" aligns as a substitution
    # (biased) + an insertion of "bar", which counts as unbiased because the inserted word is not a biasing word.
    assert out["b_wer"] == 0.5 and abs(out["u_wer"] - 1 / 3) < 1e-9 and abs(out["wer"] - 2 / 5) < 1e-9


def test_score_caption_metric_from_the_cli(tmp_path, capsys):
    import shutil

    import pytest

    if shutil.which("java") is None:
        pytest.skip("Java is not installed (apt-get install default-jre-headless): the PTB tokenizer and METEOR need it")
    hyps = tmp_path / "h.jsonl"
    lines = [{"key": "a", "hyp": "a dog barks", "ref": ["a dog is barking", "dog barking loudly"], "task": "aac"},
             {"key": "b", "hyp": "rain falls on a roof", "ref": "rain falling on a tin roof", "task": "aac"}]
    hyps.write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert main(["score", str(hyps)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"bleu_1", "bleu_4", "meteor", "rouge_l", "cider_d"} <= set(out) and out["metric"] == "caption"
    assert 0 < out["bleu_1"] <= 1 and 0 < out["meteor"] < 1 and "spice" in out["unavailable"]


def test_prepare_caption_corpus_errors_name_the_folder(tmp_path, capsys):
    assert main(["prepare", "clotho", str(tmp_path / "nope"), "--out", str(tmp_path / "m.jsonl")]) == 2
    assert "nope" in capsys.readouterr().err


def test_config_markdown_prints_the_generated_reference(capsys):
    from slamkit.config import config_reference_markdown

    assert main(["config", "--markdown"]) == 0
    assert capsys.readouterr().out == config_reference_markdown()
    assert main(["config", "--markdown", "train.max_steps=3"]) == 2
    assert "take no CONFIG or overrides" in capsys.readouterr().err


def test_config_write_readme_rewrites_only_the_marked_block(tmp_path, capsys):
    from slamkit.config import CONFIG_REFERENCE_BEGIN, CONFIG_REFERENCE_END, config_reference_markdown

    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{CONFIG_REFERENCE_BEGIN}\n| stale |\n{CONFIG_REFERENCE_END}\n\n## After\n")
    assert main(["config", "--markdown", "--write-readme", str(readme)]) == 0
    assert json.loads(capsys.readouterr().out) == {"file": str(readme), "changed": True}
    assert readme.read_text() == f"# x\n\n{CONFIG_REFERENCE_BEGIN}\n\n{config_reference_markdown()}\n{CONFIG_REFERENCE_END}\n\n## After\n"
    assert main(["config", "--write-readme", str(readme)]) == 0
    assert json.loads(capsys.readouterr().out)["changed"] is False
    readme.write_text("# no markers\n")
    assert main(["config", "--write-readme", str(readme)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"slamkit config: error: {readme}: ") and err.count("\n") == 1
    assert readme.read_text() == "# no markers\n"


def test_every_command_group_registers_subcommands_with_handlers():
    import argparse

    from slamkit.cli import COMMAND_GROUPS

    names = []
    for group in COMMAND_GROUPS:
        sub = argparse.ArgumentParser().add_subparsers()
        group.register(sub)
        for name, parser in sub.choices.items():
            nested = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
            leaves = [p for a in nested for p in a.choices.values()] or [parser]
            assert all(callable(p.get_default("func")) for p in leaves), f"{group.__name__}: {name} lacks a handler"
            names.append(name)
    assert names == ["train", "average", "decode", "serve", "score", "normalize", "validate", "config", "prepare", "assets", "demo", "list", "bench", "memory"]
