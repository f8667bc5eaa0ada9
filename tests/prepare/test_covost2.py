"""`slamkit prepare covost2` on a fake CoVoST 2 tree (Common Voice clips/*.mp3 + the CoVoST TSVs)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from slamkit.cli import main
from slamkit.data.tasks import TASKS
from slamkit.eval.translation import COT_SEPARATOR, split_cot
from slamkit.prepare import CORPORA, CorpusError
from slamkit.prepare.covost2 import prepare_covost2

CLIPS = {"common_voice_en_1": 0.5, "common_voice_en_2": 0.75, "common_voice_en_3": 1.0, "common_voice_en_4": 0.25}
SPLIT_HEADER = "path\tsentence\ttranslation\tclient_id\n"


def _mp3(path: Path, seconds: float) -> None:
    t = np.arange(int(seconds * 16000)) / 16000
    sf.write(str(path), (0.2 * np.sin(2 * np.pi * 200 * t)).astype(np.float32), 16000, format="MP3")


@pytest.fixture()
def covost(tmp_path: Path) -> Path:
    """``en/clips`` with 3 of the 4 clips the TSVs name, ``validated.tsv``, the release TSV and a split TSV."""
    root = tmp_path / "cv" / "en"
    (root / "clips").mkdir(parents=True)
    for name, seconds in list(CLIPS.items())[:3]:
        _mp3(root / "clips" / f"{name}.mp3", seconds)
    (root / "validated.tsv").write_text(
        "client_id\tpath\tsentence\tup_votes\n"
        "spk1\tcommon_voice_en_1.mp3\t\"She'll be all right.\"\t2\n"
        "spk2\tcommon_voice_en_2.mp3\tThe cat drinks water.\t3\n"
        "spk1\tcommon_voice_en_3.mp3\tIt is cold \\\"outside\\\".\t2\n", encoding="utf-8")
    (root / "covost_v2.en_de.tsv").write_text(
        "path\ttranslation\tsplit\n"
        "common_voice_en_1.mp3\tSie wird schon in Ordnung sein.\ttrain\n"
        "common_voice_en_2.mp3\tDie Katze trinkt Wasser.\ttrain_covost\n"
        "common_voice_en_3.mp3\tEs ist kalt draußen.\ttest\n", encoding="utf-8")
    (root / "covost_v2.en_de.test.tsv").write_text(
        SPLIT_HEADER
        + "common_voice_en_1.mp3\t\"She'll be all right.\"\tSie wird schon in Ordnung sein.\tspk1\n"
        + "common_voice_en_2.mp3\tThe cat drinks water.\t\tspk2\n"  # empty translation
        + "common_voice_en_4.mp3\tA missing clip.\tEin fehlender Clip.\tspk3\n"  # no audio
        + "common_voice_en_3.mp3\tonly three fields\tspk1\n"  # malformed
        + "common_voice_en_3.mp3\tIt is cold outside.\tEs ist kalt draußen.\tspk1\n", encoding="utf-8")
    return root


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_split_tsv_gives_st_records_and_counts_what_it_skips(covost: Path, tmp_path: Path) -> None:
    summary = prepare_covost2(covost, tmp_path / "test.jsonl", tgt="de", split="test")
    records = _lines(tmp_path / "test.jsonl")
    assert [r["key"] for r in records] == ["common_voice_en_1", "common_voice_en_3"]
    first = records[0]
    assert first["target"] == "Sie wird schon in Ordnung sein." and first["task"] == "st"
    assert first["transcript"] == "\"She'll be all right.\"" and first["target_language"] == "German"
    assert first["speaker"] == "spk1" and first["split"] == "test" and first["duration"] == pytest.approx(0.5, abs=0.06)
    assert Path(first["source"]).is_absolute() and Path(first["source"]).name == "common_voice_en_1.mp3"
    assert summary["utterances"] == 2 and summary["skipped"] == 3
    assert summary["skipped_by_reason"] == {"malformed line": 1, "empty target": 1, "missing file": 1}
    # the task's prompt is filled from the record's language
    assert TASKS.get("st").format_prompt(TASKS.get("st").prompt, _record(first)) == "Translate the speech into German."


def _record(line: dict):
    from slamkit.data.manifest import parse_record

    return parse_record(line, Path("."), "m.jsonl", 1)


def test_release_tsv_is_joined_with_validated_and_cot_targets_split_back(covost: Path, tmp_path: Path) -> None:
    (covost / "covost_v2.en_de.test.tsv").unlink()
    summary = prepare_covost2(covost, tmp_path / "train.jsonl", split="train", cot=True)
    records = _lines(tmp_path / "train.jsonl")
    assert [r["key"] for r in records] == ["common_voice_en_1", "common_voice_en_2"]  # train + train_covost
    assert summary["task"] == "st_cot" and summary["separator"] == COT_SEPARATOR and "skipped" not in summary
    cat = records[1]
    assert cat["task"] == "st_cot" and COT_SEPARATOR in cat["target"]
    assert split_cot(cat["target"], COT_SEPARATOR) == ("The cat drinks water.", "Die Katze trinkt Wasser.")
    test = prepare_covost2(covost, tmp_path / "t.jsonl", split="test")
    assert _lines(tmp_path / "t.jsonl")[0]["transcript"] == 'It is cold "outside".'  # backslash escapes read
    assert test["utterances"] == 1


def test_errors_name_what_is_missing(covost: Path, tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="no clips/ folder"):
        prepare_covost2(tmp_path, tmp_path / "m.jsonl")
    with pytest.raises(CorpusError, match="covost_v2.en_ja.test.tsv"):
        prepare_covost2(covost, tmp_path / "m.jsonl", tgt="ja")
    with pytest.raises(CorpusError, match="unknown language code 'xx'"):
        prepare_covost2(covost, tmp_path / "m.jsonl", tgt="xx")
    with pytest.raises(CorpusError, match="unknown split"):
        prepare_covost2(covost, tmp_path / "m.jsonl", split="eval")
    (covost / "covost_v2.en_de.test.tsv").write_text("path\tsentence\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"covost_v2.en_de.test.tsv:1: missing column\(s\) translation"):
        prepare_covost2(covost, tmp_path / "m.jsonl")
    assert "covost2" in CORPORA


def test_cli_writes_the_manifest_and_prints_the_summary(covost: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "cli.jsonl"
    assert main(["prepare", "covost2", str(covost), "--out", str(out), "--split", "test", "--cot"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["manifest"] == str(out) and summary["utterances"] == 2 and summary["task"] == "st_cot"
    assert main(["prepare", "covost2", str(tmp_path / "nope"), "--out", str(out)]) == 2
    assert "no such Common Voice folder" in capsys.readouterr().err
