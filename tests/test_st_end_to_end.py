"""Speech translation end to end at tiny size: chain-of-thought targets, their scoring, the FreeDict gloss,
and TTS speech -> gloss corpus -> a tiny random model trained a few steps -> decode -> score (mechanics only)."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest
from conftest import TINY_RECIPE

from slamkit.data.manifest import parse_record
from slamkit.data.tasks import TASKS
from slamkit.eval.translation import COT_SEPARATOR, join_cot, split_cot
from slamkit.infer.score import score_file
from slamkit.prepare.freedict import FreeDict, gloss_records


def _write(path: Path, lines: list[dict]) -> Path:
    path.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
    return path


def _hyp_line(key: str, hyp: str, transcript: str, translation: str) -> dict:
    record = parse_record({"key": key, "source": "a.wav", "target": join_cot(transcript, translation), "task": "st_cot",
                           "target_language": "French"}, Path("."), "m.jsonl", 1)
    return TASKS.get("st_cot").hypothesis_line(record, hyp)


def test_cot_lines_score_the_translation_with_bleu_and_the_transcript_with_wer(tmp_path: Path) -> None:
    line = _hyp_line("a", "x", "the cat drinks water", "le chat boit de l'eau")
    assert line["separator"] == COT_SEPARATOR and line["target_language"] == "French" and line["task"] == "st_cot"
    exact = _write(tmp_path / "exact.jsonl", [_hyp_line("a", join_cot("the cat drinks water", "le chat boit de l'eau"),
                                                        "the cat drinks water", "le chat boit de l'eau")])
    result = score_file(exact)
    assert result["metric"] == "bleu" and result["bleu"] == pytest.approx(100.0) and result["chrf"] == pytest.approx(100.0)
    assert result["transcript_wer"] == 0.0 and result["cot_lines"] == 1 and result["no_separator"] == 0
    # a wrong transcript costs WER only; BLEU reads the translation alone
    wrong = _write(tmp_path / "wrong.jsonl", [_hyp_line("a", join_cot("a dog eats", "le chat boit de l'eau"),
                                                        "the cat drinks water", "le chat boit de l'eau")])
    result = score_file(wrong)
    assert result["bleu"] == pytest.approx(100.0) and result["transcript_wer"] == pytest.approx(1.0)
    # no separator: an empty translation (counted), the whole output taken as the transcript
    missing = _write(tmp_path / "missing.jsonl", [_hyp_line("a", "the cat drinks water", "the cat drinks water", "le chat boit")])
    result = score_file(missing)
    assert result["bleu"] == 0.0 and result["no_separator"] == 1 and result["transcript_wer"] == 0.0
    assert split_cot("a <|de|> b <|de|> c", "<|de|>") == ("a", "b <|de|> c")


def test_a_record_separator_wins_and_a_reference_without_one_is_named(tmp_path: Path) -> None:
    record = parse_record({"key": "k", "source": "a.wav", "target": "hi there <|de|> hallo mein lieber freund", "task": "st_cot", "target_language": "German",
                           "separator": "<|de|>"}, Path("."), "m.jsonl", 1)
    line = TASKS.get("st_cot").hypothesis_line(record, "hi <|de|> hallo mein lieber freund")
    assert line["separator"] == "<|de|>" and score_file(_write(tmp_path / "h.jsonl", [line]))["bleu"] == pytest.approx(100.0)
    bad = _write(tmp_path / "bad.jsonl", [{**line, "ref": "no separator here"}])
    with pytest.raises(ValueError, match=r"bad.jsonl:1: the reference has no separator '<\|de\|>'"):
        score_file(bad)


def _fake_freedict(root: Path) -> Path:
    """A two-entry dictd dictionary in FreeDict's layout below ``root``."""
    entries = {"cat": "cat /kæt/\n1. mégère, peau de vache\n2. chat\n", "water": "water /wɔːtər/\n1. aquatique\n2. eau, onde\n"}
    data, index, offset = b"", [], 0
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    for word, text in entries.items():
        raw = text.encode("utf-8")
        index.append(f"{word}\t{alphabet[offset // 64] if offset >= 64 else ''}{alphabet[offset % 64]}\t{alphabet[len(raw)]}")
        data, offset = data + raw, offset + len(raw)
    folder = root / "usr/share/dictd"
    folder.mkdir(parents=True)
    (folder / "freedict-eng-fra.index").write_text("\n".join(index) + "\n", encoding="utf-8")
    (folder / "freedict-eng-fra.dict.dz").write_bytes(gzip.compress(data))
    return root


def test_freedict_gloss_is_word_by_word_and_counts_unknown_words(tmp_path: Path) -> None:
    dictionary = FreeDict.from_root(_fake_freedict(tmp_path))
    assert dictionary.lookup("cat") == [["mégère", "peau de vache"], ["chat"]]
    assert dictionary.gloss("The cats, water!") == ("the chat eau", 1)  # plural tried without its s; 'the' unknown here
    records, unknown = gloss_records([{"key": "k", "source": "a.wav", "target": "cat water"}], dictionary)
    assert unknown == 0 and records[0]["target"] == f"cat water {COT_SEPARATOR} chat eau" and records[0]["task"] == "st_cot"
    assert records[0]["translation"] == "chat eau" and records[0]["target_language"] == "French"


def test_tts_gloss_corpus_trains_decodes_and_scores(tmp_path: Path) -> None:
    """The mechanics path at tiny size: a random model, a few steps; the scores only have to exist."""
    from slamkit.assets import AssetMissingError, asset_path
    from slamkit.config import load_config
    from slamkit.infer.decode import decode
    from slamkit.prepare.freedict import ASSET, prepare_gloss_st
    from slamkit.train.loop import train

    if shutil.which("flite") is None:
        pytest.skip("`flite` is not on PATH (apt-get install flite)")
    try:
        root = asset_path(ASSET)
    except AssetMissingError:
        pytest.skip(f"asset {ASSET} is not installed (slamkit assets install {ASSET})")
    summary = prepare_gloss_st(tmp_path / "data", root, sentences=("the cat drinks water", "a small house", "the dog sees a cat"))
    manifest = Path(summary["manifest"])
    assert summary["utterances"] == 3 and summary["task"] == "st_cot"
    run = tmp_path / "run"
    train(load_config(TINY_RECIPE, [f"train.output_dir={run}", f"data.train={manifest}", "data.valid=null", "data.task=st_cot",
                                    "train.max_steps=4", "train.warmup_steps=1", "train.save_every=4", "train.tensorboard=false"]))
    hyps = tmp_path / "st.hyp.jsonl"
    decode(run, manifest, hyps, ["decode.max_new_tokens=24", "decode.batch_size=3"])
    lines = [json.loads(line) for line in hyps.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 3 and all(line["task"] == "st_cot" and line["separator"] == COT_SEPARATOR for line in lines)
    assert lines[0]["ref"] == f"the cat drinks water {COT_SEPARATOR} au chat boire eau"
    result = score_file(hyps)
    assert {"bleu", "chrf", "transcript_wer", "cot_lines", "no_separator"} <= set(result) and result["cot_lines"] == 3
    assert 0.0 <= result["bleu"] <= 100.0 and 0.0 <= result["chrf"] <= 100.0


def test_target_language_picks_the_bleu_tokenizer(tmp_path: Path) -> None:
    line = {"key": "a", "hyp": "我们去公园", "ref": "我们去公园", "task": "st", "target_language": "Chinese"}
    result = score_file(_write(tmp_path / "zh.jsonl", [line]))
    assert "tok:zh" in result["signature"] and result["bleu"] == pytest.approx(100.0)
    mixed = _write(tmp_path / "mixed.jsonl", [line, {**line, "key": "b", "target_language": "German"}])
    with pytest.raises(ValueError, match="mix target languages"):
        score_file(mixed)
