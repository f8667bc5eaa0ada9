"""Tests for the captioning corpora (Clotho, AudioCaps, MusicCaps, SECap): tiny fake trees with the
official file names and CSV columns, the exact manifest lines they give, and the errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from slamkit.prepare.captions import (
    index_audio,
    prepare_audiocaps,
    prepare_clotho,
    prepare_musiccaps,
    prepare_secap,
)
from slamkit.data.manifest import read_manifest
from slamkit.prepare import CORPORA, CorpusError

RATE = 8000


def _wav(path: Path, seconds: float) -> Path:
    """A tone of exactly ``seconds`` (a whole number of frames at 8 kHz)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(round(seconds * RATE)) / RATE
    sf.write(str(path), (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), RATE)
    return path


def _csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_registry_has_the_captioning_corpora() -> None:
    assert {"clotho", "audiocaps", "musiccaps", "secap"} <= set(CORPORA.names())
    assert CORPORA.get("clotho") is prepare_clotho


# --------------------------------------------------------------------------- Clotho

CLOTHO_HEADER = ["file_name", "caption_1", "caption_2", "caption_3", "caption_4", "caption_5"]
DEV_ROWS = [
    ["Distorted AM Radio noise.wav", "A radio hisses.", "Static  crackles loudly.", "Noise from a radio.",
     "A radio is being tuned.", "Someone tunes a radio, with static."],
    ["rain, on a roof.wav", "Rain falls on a roof.", "Rain hits metal.", "It is raining hard.",
     "Drops of rain patter.", "Heavy rain on a tin roof."],
]


def _clotho(root: Path) -> Path:
    """Clotho v2.1 as extracted: captions CSVs at the top, ``development/`` and
    ``clotho_audio_evaluation/evaluation/`` (a ``7z x`` into a folder of its own)."""
    _csv(root / "clotho_captions_development.csv", CLOTHO_HEADER, DEV_ROWS)
    _wav(root / "development" / "Distorted AM Radio noise.wav", 1.5)
    _wav(root / "development" / "rain, on a roof.wav", 2.0)
    _csv(root / "clotho_captions_evaluation.csv", CLOTHO_HEADER,
         [["birds.wav", "Birds sing.", "Birds chirp.", "A bird calls.", "Birds in a park.", "Many birds sing."]])
    _wav(root / "clotho_audio_evaluation" / "evaluation" / "birds.wav", 0.5)
    return root


def test_clotho_manifest_lines(tmp_path: Path) -> None:
    root = _clotho(tmp_path / "clotho")
    summary = prepare_clotho(root, tmp_path / "dev.jsonl", split="dev")
    assert summary == {"manifest": str(tmp_path / "dev.jsonl"), "records": 2, "clips": 2, "captions": 10,
                       "missing_audio": 0, "hours": round(3.5 / 3600, 3), "splits": {"development": 2}}
    lines = _lines(tmp_path / "dev.jsonl")
    assert lines[0] == {
        "key": "Distorted AM Radio noise",
        "source": str((root / "development" / "Distorted AM Radio noise.wav").absolute()),
        "target": "A radio hisses.", "task": "aac", "duration": 1.5,
        "references": ["A radio hisses.", "Static crackles loudly.", "Noise from a radio.",
                       "A radio is being tuned.", "Someone tunes a radio, with static."],
        "split": "development",
    }
    assert lines[1]["key"] == "rain, on a roof" and lines[1]["duration"] == 2.0
    records = read_manifest(tmp_path / "dev.jsonl")
    assert records[1].extra["references"][4] == "Heavy rain on a tin roof."
    assert records[1].task == "aac" and records[1].offset == 0.0


def test_clotho_all_splits_and_per_caption(tmp_path: Path) -> None:
    root = _clotho(tmp_path / "clotho")
    summary = prepare_clotho(root, tmp_path / "all.jsonl")
    assert summary["splits"] == {"development": 2, "evaluation": 1} and summary["captions"] == 15
    assert [r["key"] for r in _lines(tmp_path / "all.jsonl")] == ["Distorted AM Radio noise", "rain, on a roof", "birds"]
    summary = prepare_clotho(root, tmp_path / "eval.jsonl", split="test", per_caption=True, prompt="Describe it.")
    assert summary["records"] == 5 and summary["clips"] == 1
    lines = _lines(tmp_path / "eval.jsonl")
    assert [r["key"] for r in lines] == [f"birds#{i}" for i in range(1, 6)]
    assert [r["target"] for r in lines] == ["Birds sing.", "Birds chirp.", "A bird calls.", "Birds in a park.", "Many birds sing."]
    assert all(r["references"] == lines[0]["references"] and r["prompt"] == "Describe it." for r in lines)


def test_clotho_errors_name_file_and_line(tmp_path: Path) -> None:
    root = _clotho(tmp_path / "clotho")
    dev = root / "clotho_captions_development.csv"
    _csv(dev, CLOTHO_HEADER[:-1], [row[:-1] for row in DEV_ROWS])
    with pytest.raises(CorpusError, match=r"clotho_captions_development.csv:1: missing column\(s\) caption_5"):
        prepare_clotho(root, tmp_path / "m.jsonl", split="development")
    _csv(dev, CLOTHO_HEADER, [DEV_ROWS[0], DEV_ROWS[1][:4] + ["  ", "x"]])
    with pytest.raises(CorpusError, match=r"clotho_captions_development.csv:3: empty caption_4"):
        prepare_clotho(root, tmp_path / "m.jsonl", split="development")
    _csv(dev, CLOTHO_HEADER, [DEV_ROWS[0], DEV_ROWS[1][:4]])
    with pytest.raises(CorpusError, match=r"clotho_captions_development.csv:3: row has no value for caption_4, caption_5"):
        prepare_clotho(root, tmp_path / "m.jsonl", split="development")
    _csv(dev, CLOTHO_HEADER, DEV_ROWS + [["gone.wav"] + DEV_ROWS[0][1:]])
    with pytest.raises(CorpusError, match=r"clotho_captions_development.csv:4: no audio file gone"):
        prepare_clotho(root, tmp_path / "m.jsonl", split="development")
    _csv(dev, CLOTHO_HEADER, DEV_ROWS + [DEV_ROWS[0]])
    with pytest.raises(CorpusError, match=r"clotho_captions_development.csv:4: file_name .* repeats line 2"):
        prepare_clotho(root, tmp_path / "m.jsonl", split="development")
    with pytest.raises(CorpusError, match="unknown split 'holdout'"):
        prepare_clotho(root, tmp_path / "m.jsonl", split="holdout")
    with pytest.raises(CorpusError, match="no Clotho validation captions"):
        prepare_clotho(root, tmp_path / "m.jsonl", split="val")
    assert not (tmp_path / "m.jsonl").exists()


def test_clotho_nfd_file_names_match(tmp_path: Path) -> None:
    """Archives extracted on macOS store names decomposed (NFD); the CSV has them composed (NFC)."""
    root = tmp_path / "clotho"
    _csv(root / "clotho_captions_validation.csv", CLOTHO_HEADER, [["caf\u00e9.wav"] + ["A cafe."] * 5])
    _wav(root / "validation" / "cafe\u0301.wav", 0.25)
    assert prepare_clotho(root, tmp_path / "v.jsonl")["clips"] == 1


# --------------------------------------------------------------------------- AudioCaps

AUDIOCAPS_HEADER = ["audiocap_id", "youtube_id", "start_time", "caption"]


def _audiocaps(root: Path) -> Path:
    """The CSVs of the AudioCaps repository (``dataset/``) and a folder of downloaded audio named
    three different ways; one test clip was never downloaded."""
    data = root / "dataset"
    _csv(data / "train.csv", AUDIOCAPS_HEADER, [
        [91139, "r1nicOVtvkQ", 130, "A woman talks nearby as water pours"],
        [58146, "UDGBjjwyaqE", 20, "Multiple clanging and clanking sounds"],
        [11542, "fz0bzv3m5vc", 0, "A motor vehicle engine starts"],
    ])
    _csv(data / "test.csv", AUDIOCAPS_HEADER, [
        [103549, "--0w1YA1Hm4", 30, "A vehicle driving as a man speaks"],
        [103548, "--0w1YA1Hm4", 30, "High pitched speaking and a vehicle"],
        [103541, "--0w1YA1Hm4", 30, "A man speaks as a car drives by"],
        [107898, "-AheI8Epim4", 30, "A sewing machine runs"],
    ])
    audio = root / "audio"
    _wav(audio / "train" / "r1nicOVtvkQ_130.wav", 1.0)      # aac-datasets: {youtube_id}_{start_time}
    _wav(audio / "train" / "YUDGBjjwyaqE.wav", 25.0)        # the whole video, cropped at 20 s
    _wav(audio / "train" / "11542.wav", 0.75)               # {audiocap_id}
    _wav(audio / "test" / "Y--0w1YA1Hm4_30.000_40.000.wav", 10.0)  # AudioSet naming
    return root


def test_audiocaps_naming_grouping_and_missing(tmp_path: Path) -> None:
    root = _audiocaps(tmp_path / "audiocaps")
    out = tmp_path / "ac.jsonl"
    summary = prepare_audiocaps(root, out, audio_dir=root / "audio")
    assert summary == {"manifest": str(out), "records": 4, "clips": 4, "captions": 6, "missing_audio": 1,
                       "hours": round((1.0 + 5.0 + 0.75 + 10.0) / 3600, 3), "splits": {"train": 3, "test": 1},
                       "missing_list": str(tmp_path / "ac.jsonl.missing.txt")}
    assert (tmp_path / "ac.jsonl.missing.txt").read_text() == "-AheI8Epim4_30\n"
    lines = {r["key"]: r for r in _lines(out)}
    assert lines["UDGBjjwyaqE_20"] == {
        "key": "UDGBjjwyaqE_20", "source": str((root / "audio/train/YUDGBjjwyaqE.wav").absolute()),
        "target": "Multiple clanging and clanking sounds", "task": "aac", "offset": 20.0, "duration": 5.0,
        "references": ["Multiple clanging and clanking sounds"], "split": "train",
        "youtube_id": "UDGBjjwyaqE", "start_time": 20.0, "audiocap_ids": [58146],
    }
    test = lines["--0w1YA1Hm4_30"]
    assert test["references"] == ["A vehicle driving as a man speaks", "High pitched speaking and a vehicle",
                                  "A man speaks as a car drives by"]
    assert test["target"] == test["references"][0] and "offset" not in test and test["duration"] == 10.0
    assert test["audiocap_ids"] == [103549, 103548, 103541]
    assert lines["fz0bzv3m5vc_0"]["source"].endswith("11542.wav") and "offset" not in lines["fz0bzv3m5vc_0"]
    only = prepare_audiocaps(root, tmp_path / "test.jsonl", split="test", audio_dir=root / "audio")
    assert only["splits"] == {"test": 1} and only["missing_audio"] == 1


def test_audiocaps_errors(tmp_path: Path) -> None:
    root = _audiocaps(tmp_path / "audiocaps")
    with pytest.raises(CorpusError, match=r"none of the 2 clips has audio here"):
        prepare_audiocaps(root, tmp_path / "m.jsonl", split="test", audio_dir=root / "audio" / "train")
    data = root / "dataset"
    _csv(data / "val.csv", AUDIOCAPS_HEADER, [[1, "abc", "thirty", "A dog barks"]])
    with pytest.raises(CorpusError, match=r"val.csv:2: start_time must be a number of seconds, got 'thirty'"):
        prepare_audiocaps(root, tmp_path / "m.jsonl", split="val")
    _csv(data / "val.csv", AUDIOCAPS_HEADER, [[1, "abc", 30, "A dog barks"], [2, "abc", 30, ""]])
    with pytest.raises(CorpusError, match=r"val.csv:3: empty caption"):
        prepare_audiocaps(root, tmp_path / "m.jsonl", split="val")
    _csv(data / "val.csv", ["audiocap_id", "youtube_id", "caption"], [[1, "abc", "A dog barks"]])
    with pytest.raises(CorpusError, match=r"val.csv:1: missing column\(s\) start_time"):
        prepare_audiocaps(root, tmp_path / "m.jsonl", split="val")
    with pytest.raises(CorpusError, match="no AudioCaps train.csv"):
        prepare_audiocaps(root / "audio", tmp_path / "m.jsonl")
    _wav(root / "audio" / "extra" / "r1nicOVtvkQ_130.flac", 1.0)
    with pytest.raises(CorpusError, match="two audio files named 'r1nicOVtvkQ_130'"):
        index_audio(root / "audio")


# --------------------------------------------------------------------------- MusicCaps

MUSICCAPS_HEADER = ["ytid", "start_s", "end_s", "audioset_positive_labels", "aspect_list", "caption",
                    "author_id", "is_balanced_subset", "is_audioset_eval"]
MUSICCAPS_ROWS = [
    ["-0Gj8-vB1q4", 30, 40, "/m/0140xf,/m/02cjck,/m/04rlf", "['low quality', 'sustained strings melody']",
     "The low quality recording features a ballad song.", 4, "False", "True"],
    ["-0SdAVK79lg", 30, 40, "/m/0155w,/m/01lyv", "['guitar song', 'piano backing']",
     "This song features an electric guitar as the main instrument.", 0, "False", "False"],
    ["-0vPFx-wRRI", 30, 40, "/m/025_jnm", "['amateur recording', 'finger snipping']",
     "A male voice is singing a melody.", 6, "True", "False"],
    ["-0xzrMun0Rs", 30, 40, "/m/02sgy", "['instrumental']", "Someone plays a harmonica.", 1, "False", "True"],
]


def _musiccaps(root: Path) -> Path:
    _csv(root / "musiccaps-public.csv", MUSICCAPS_HEADER, MUSICCAPS_ROWS)
    _wav(root / "wav" / "[-0Gj8-vB1q4]-[30-40].wav", 10.0)   # clip with its span in the name
    _wav(root / "wav" / "-0SdAVK79lg.wav", 45.0)             # whole video: cropped to 30-40 s
    _wav(root / "wav" / "-0vPFx-wRRI.wav", 10.0)             # {ytid} holding just the clip
    return root


def test_musiccaps_splits_and_crops(tmp_path: Path) -> None:
    root = _musiccaps(tmp_path / "musiccaps")
    summary = prepare_musiccaps(root, tmp_path / "mc.jsonl")
    assert summary["clips"] == 3 and summary["missing_audio"] == 1 and summary["captions"] == 3
    assert summary["splits"] == {"test": 1, "train": 2} and summary["hours"] == round(30 / 3600, 3)
    lines = {r["key"]: r for r in _lines(tmp_path / "mc.jsonl")}
    assert lines["-0SdAVK79lg"] == {
        "key": "-0SdAVK79lg", "source": str((root / "wav" / "-0SdAVK79lg.wav").absolute()),
        "target": "This song features an electric guitar as the main instrument.", "task": "mc",
        "offset": 30.0, "duration": 10.0,
        "references": ["This song features an electric guitar as the main instrument."], "split": "train",
        "ytid": "-0SdAVK79lg", "start_s": 30.0, "end_s": 40.0, "aspect_list": ["guitar song", "piano backing"],
        "audioset_positive_labels": ["/m/0155w", "/m/01lyv"], "author_id": "0", "is_balanced_subset": False,
    }
    assert "offset" not in lines["-0vPFx-wRRI"] and lines["-0Gj8-vB1q4"]["split"] == "test"
    test = prepare_musiccaps(root / "musiccaps-public.csv", tmp_path / "test.jsonl", split="eval",
                             audio_dir=root / "wav")
    assert test["splits"] == {"test": 1} and test["missing_audio"] == 1
    assert [r["key"] for r in _lines(tmp_path / "test.jsonl")] == ["-0Gj8-vB1q4"]


def test_musiccaps_errors(tmp_path: Path) -> None:
    root = _musiccaps(tmp_path / "musiccaps")
    bad = [row[:] for row in MUSICCAPS_ROWS]
    bad[1][4] = "guitar song, piano backing"
    _csv(root / "musiccaps-public.csv", MUSICCAPS_HEADER, bad)
    with pytest.raises(CorpusError, match=r"musiccaps-public.csv:3: aspect_list must be a list of strings"):
        prepare_musiccaps(root, tmp_path / "m.jsonl")
    bad = [row[:] for row in MUSICCAPS_ROWS]
    bad[2][8] = "maybe"
    _csv(root / "musiccaps-public.csv", MUSICCAPS_HEADER, bad)
    with pytest.raises(CorpusError, match=r"musiccaps-public.csv:4: is_audioset_eval must be True or False"):
        prepare_musiccaps(root, tmp_path / "m.jsonl")
    bad = [row[:] for row in MUSICCAPS_ROWS]
    bad[0][2] = 30
    _csv(root / "musiccaps-public.csv", MUSICCAPS_HEADER, bad)
    with pytest.raises(CorpusError, match=r"musiccaps-public.csv:2: end_s \(30\) must be after start_s"):
        prepare_musiccaps(root, tmp_path / "m.jsonl")
    _csv(root / "musiccaps-public.csv", MUSICCAPS_HEADER, MUSICCAPS_ROWS + [MUSICCAPS_ROWS[0]])
    with pytest.raises(CorpusError, match=r"musiccaps-public.csv:6: ytid '-0Gj8-vB1q4' repeats line 2"):
        prepare_musiccaps(root, tmp_path / "m.jsonl")
    with pytest.raises(CorpusError, match="no MusicCaps CSV"):
        prepare_musiccaps(root / "wav", tmp_path / "m.jsonl")


# --------------------------------------------------------------------------- SECap


def _secap(repo: Path) -> Path:
    """The ``dataset/`` folder of the SECap repository: captions JSON, transcripts, wav/."""
    data = repo / "dataset"
    data.mkdir(parents=True)
    captions = {"tx_emotion_00201000015": "悲伤逆流成河", "tx_emulate_00_108_0004_000011": "语气中带着疑惑，十分意外"}
    (data / "fid2captions.json").write_text(json.dumps(captions, ensure_ascii=False, indent=4), encoding="utf-8")
    (data / "text.txt").write_text("tx_emotion_00201000015 一年又一年。 \ntx_emulate_00_108_0004_000011\t跟人打架啦？\n",
                                   encoding="utf-8")
    _wav(data / "wav" / "tx_emotion_00201000015.wav", 1.25)
    _wav(data / "wav" / "tx_emulate_00_108_0004_000011.wav", 0.5)
    return repo


def test_secap_manifest_lines(tmp_path: Path) -> None:
    repo = _secap(tmp_path / "SECap")
    summary = prepare_secap(repo, tmp_path / "sec.jsonl")
    assert summary["clips"] == 2 and summary["splits"] == {"test": 2} and summary["missing_audio"] == 0
    lines = _lines(tmp_path / "sec.jsonl")
    assert lines == [
        {"key": "tx_emotion_00201000015", "source": str((repo / "dataset/wav/tx_emotion_00201000015.wav").absolute()),
         "target": "悲伤逆流成河", "task": "sec", "duration": 1.25, "references": ["悲伤逆流成河"], "split": "test",
         "transcript": "一年又一年。"},
        {"key": "tx_emulate_00_108_0004_000011",
         "source": str((repo / "dataset/wav/tx_emulate_00_108_0004_000011.wav").absolute()),
         "target": "语气中带着疑惑，十分意外", "task": "sec", "duration": 0.5,
         "references": ["语气中带着疑惑，十分意外"], "split": "test", "transcript": "跟人打架啦？"},
    ]
    assert prepare_secap(repo / "dataset", tmp_path / "again.jsonl", split="test")["clips"] == 2


def test_secap_errors(tmp_path: Path) -> None:
    repo = _secap(tmp_path / "SECap")
    data = repo / "dataset"
    (data / "wav" / "tx_emotion_00201000015.wav").unlink()
    with pytest.raises(CorpusError, match=r"fid2captions.json: entry 'tx_emotion_00201000015': no audio file"):
        prepare_secap(repo, tmp_path / "m.jsonl")
    (data / "fid2captions.json").write_text(json.dumps({"tx_emulate_00_108_0004_000011": " "}), encoding="utf-8")
    with pytest.raises(CorpusError, match=r"entry 'tx_emulate_00_108_0004_000011': empty caption"):
        prepare_secap(repo, tmp_path / "m.jsonl")
    with pytest.raises(CorpusError, match="unknown split 'train'"):
        prepare_secap(repo, tmp_path / "m.jsonl", split="train")
    with pytest.raises(CorpusError, match="no fid2captions.json"):
        prepare_secap(tmp_path, tmp_path / "m.jsonl")
