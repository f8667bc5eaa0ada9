"""`slamkit prepare lrs3` on fake trees in both official layouts (AV-HuBERT's 433h_data, the release + mouth crops)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fake_video import write_video, write_wav

from slamkit.cli import main
from slamkit.prepare.base import CorpusError
from slamkit.prepare.lrs3 import prepare_lrs3

pytest.importorskip("av")


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _avhubert_tree(root: Path) -> Path:
    """AV-HuBERT's prepared layout: 433h_data/{train,valid,test}.{tsv,wrd} naming video/ and audio/ files."""
    data = root / "433h_data"
    data.mkdir(parents=True)
    for split, ids in {"train": ["trainval/spk1/50001", "pretrain/spk2/00001"], "valid": ["trainval/spk1/50002"],
                       "test": ["test/spk3/00001"]}.items():
        rows = [f"{i}\t{root}/video/{i}.mp4\t{root}/audio/{i}.wav\t{50 + n}\t{(50 + n) * 640}" for n, i in enumerate(ids)]
        (data / f"{split}.tsv").write_text("/\n" + "\n".join(rows) + "\n", encoding="utf-8")
        (data / f"{split}.wrd").write_text("\n".join(f"words of {i}" for i in ids) + "\n", encoding="utf-8")
    return root


def test_avhubert_layout_gives_three_splits_without_opening_a_file(tmp_path: Path) -> None:
    root = _avhubert_tree(tmp_path / "lrs3")
    summary = prepare_lrs3(root, tmp_path / "out")
    assert summary["layout"] == "avhubert 433h_data" and set(summary["splits"]) == {"train", "valid", "test"}
    train = _read(tmp_path / "out" / "train.jsonl")
    assert train[1] == {"key": "pretrain/spk2/00001", "source": f"{root}/video/pretrain/spk2/00001.mp4",
                        "target": "words of pretrain/spk2/00001", "duration": 2.04}
    prepare_lrs3(root, tmp_path / "av", audio_visual=True)
    test = _read(tmp_path / "av" / "test.jsonl")[0]
    assert test["source"].endswith("audio/test/spk3/00001.wav") and test["video"].endswith("video/test/spk3/00001.mp4")
    (root / "433h_data" / "test.wrd").write_text("one line short\n", encoding="utf-8")
    (root / "433h_data" / "test.tsv").write_text("/\na\tv\ta\t1\t640\nb\tv\ta\t1\t640\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"test.tsv: 2 clips but .*test.wrd has 1 transcripts"):
        prepare_lrs3(root, tmp_path / "out")


def test_release_layout_reads_transcripts_and_mouth_crops_through_the_cli(tmp_path: Path, capsys) -> None:
    root = tmp_path / "lrs3"
    for key, n in (("trainval/spkA/50001", 10), ("trainval/spkA/50002", 12), ("test/spkB/00001", 8), ("test/spkB/00002", 5)):
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / f"{key}.txt").write_text(f"Text:  HELLO {key.split('/')[-1]}\nConf:  3\n\nWORD START END ASDSCORE\n", encoding="utf-8")
        write_video(root / f"{key}.mp4", n, size=160)  # the released whole-face video
        if key != "test/spkB/00002":  # this one has no mouth crop: skipped and counted
            write_video(root / "video" / f"{key}.mp4", n)
    write_wav(root / "audio" / "trainval/spkA/50001.wav", 0.4)
    (tmp_path / "valid.id").write_text("trainval/spkA/50002\n", encoding="utf-8")
    assert main(["prepare", "lrs3", str(root), "--out", str(tmp_path / "out"), "--valid-ids", str(tmp_path / "valid.id"),
                 "--audio-visual"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["layout"] == "release" and summary["skipped"] == 1 and summary["skipped_by_reason"] == {"missing file": 1}
    train, valid, test = (_read(tmp_path / "out" / f"{s}.jsonl") for s in ("train", "valid", "test"))
    assert [r["key"] for r in train] == ["trainval/spkA/50001"] and [r["key"] for r in valid] == ["trainval/spkA/50002"]
    assert train[0] == {"key": "trainval/spkA/50001", "source": str(root / "audio/trainval/spkA/50001.wav"),
                        "target": "HELLO 50001", "duration": 0.4, "video": str(root / "video/trainval/spkA/50001.mp4")}
    assert valid[0]["source"] == str(root / "trainval/spkA/50002.mp4")  # no .wav: the released video's audio track
    assert test == [{"key": "test/spkB/00001", "source": str(root / "test/spkB/00001.mp4"), "target": "HELLO 00001",
                     "duration": 0.32, "video": str(root / "video/test/spkB/00001.mp4")}]
    assert main(["prepare", "lrs3", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")]) == 2
    assert "no such LRS3 folder" in capsys.readouterr().err
