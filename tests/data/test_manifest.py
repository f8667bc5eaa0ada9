"""Tests for slamkit.data.manifest: parsing, path resolution, and file:line errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from slamkit.data.manifest import ManifestError, Record, read_manifest, write_manifest


def _manifest(path: Path, *lines: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_slam_llm_lines_work_unchanged(tmp_path: Path) -> None:
    path = _manifest(
        tmp_path / "test.jsonl",
        '{"key": "1089-134686-0000", "source": "/data/ls/1089-134686-0000.flac", '
        '"target": "HE HOPED THERE WOULD BE STEW FOR DINNER"}',
        '{"key": "1089-134686-0001", "source": "/data/ls/1089-134686-0001.flac", "target": ""}',
    )
    first, second = read_manifest(path)
    assert first == Record(
        key="1089-134686-0000",
        source="/data/ls/1089-134686-0000.flac",
        target="HE HOPED THERE WOULD BE STEW FOR DINNER",
        manifest=str(path),
        line=1,
    )
    assert second.target == "" and second.line == 2
    assert first.prompt is None and first.task is None
    assert first.offset == 0.0 and first.duration is None and first.extra == {}


def test_optional_and_extra_fields(tmp_path: Path) -> None:
    line = {
        "key": "k1", "source": "/a.wav", "target": "t", "prompt": "Transcribe.",
        "task": "asr", "offset": 1, "duration": 2.5, "biasing_words": ["STEW"], "speaker": 7,
    }
    (record,) = read_manifest(_manifest(tmp_path / "m.jsonl", json.dumps(line)))
    assert record.prompt == "Transcribe." and record.task == "asr"
    assert record.offset == 1.0 and isinstance(record.offset, float)
    assert record.duration == 2.5
    assert record.extra == {"biasing_words": ["STEW"], "speaker": 7}


def test_relative_sources_resolve_against_manifest_folder(tmp_path: Path) -> None:
    path = _manifest(
        tmp_path / "corpus" / "dev.jsonl",
        '{"key": "a", "source": "audio/a.wav", "target": "x"}',
        '{"key": "b", "source": "../other/b.wav", "target": "y"}',
    )
    cwd = os.getcwd()
    os.chdir(tmp_path / "corpus")
    try:
        a, b = read_manifest("dev.jsonl")
    finally:
        os.chdir(cwd)
    assert a.source == str(tmp_path / "corpus" / "audio" / "a.wav")
    assert b.source == str(tmp_path / "other" / "b.wav")
    assert a.line == 1 and b.line == 2
    assert Path(read_manifest(path)[0].source).is_absolute()


def test_blank_lines_skipped_and_line_numbers_kept(tmp_path: Path) -> None:
    path = _manifest(
        tmp_path / "m.jsonl",
        "",
        '{"key": "a", "source": "/a.wav", "target": "x"}',
        "   ",
        '{"key": "b", "source": "/b.wav", "target": "y"}',
    )
    assert [r.line for r in read_manifest(path)] == [2, 4]


def test_integer_keys_become_strings(tmp_path: Path) -> None:
    (record,) = read_manifest(
        _manifest(tmp_path / "m.jsonl", '{"key": 12, "source": "/a.wav", "target": "x"}')
    )
    assert record.key == "12"


GOOD = '{"key": "ok", "source": "/ok.wav", "target": "fine"}'


@pytest.mark.parametrize(
    ("bad_line", "problem"),
    [
        ('{"key": "a", "source": "/a.wav", "target": "x"', "invalid JSON"),
        ('["a", "/a.wav", "x"]', "expected a JSON object, got list"),
        ('{"source": "/a.wav", "target": "x"}', "missing required field 'key'"),
        ('{"key": "a", "target": "x"}', "missing required field 'source'"),
        ('{"key": "a", "source": "/a.wav"}', "missing required field 'target'"),
        ('{"key": "", "source": "/a.wav", "target": "x"}', "'key' must be a non-empty"),
        ('{"key": "a", "source": "", "target": "x"}', "'source' must be a non-empty"),
        ('{"key": "a", "source": 3, "target": "x"}', "'source' must be a string"),
        ('{"key": "a", "source": "/a.wav", "target": null}', "'target' must be a string"),
        ('{"key": "a", "source": "/a.wav", "target": "x", "prompt": 1}', "'prompt' must be"),
        ('{"key": "a", "source": "/a.wav", "target": "x", "task": ["asr"]}', "'task' must be"),
        ('{"key": "a", "source": "/a.wav", "target": "x", "offset": -1}', "'offset' must be"),
        ('{"key": "a", "source": "/a.wav", "target": "x", "offset": "1"}', "'offset' must be"),
        ('{"key": "a", "source": "/a.wav", "target": "x", "offset": true}', "'offset' must be"),
        ('{"key": "a", "source": "/a.wav", "target": "x", "duration": 0}', "'duration' must be"),
        ('{"key": "a", "source": "/a.wav", "target": "x", "duration": NaN}', "'duration' must"),
    ],
)
def test_bad_line_names_file_and_line(tmp_path: Path, bad_line: str, problem: str) -> None:
    path = _manifest(tmp_path / "bad.jsonl", GOOD, "", bad_line)
    with pytest.raises(ManifestError) as info:
        read_manifest(path)
    message = str(info.value)
    assert message.startswith(f"{path}:3: ")
    assert problem in message


def test_duplicate_key_names_both_lines(tmp_path: Path) -> None:
    path = _manifest(
        tmp_path / "dup.jsonl",
        '{"key": "a", "source": "/a.wav", "target": "x"}',
        '{"key": "b", "source": "/b.wav", "target": "y"}',
        '{"key": "a", "source": "/c.wav", "target": "z"}',
    )
    with pytest.raises(ManifestError, match=r"dup\.jsonl:3: duplicate key 'a' \(first at line 1\)"):
        read_manifest(path)


def test_invalid_utf8_names_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(GOOD.encode() + b'\n{"key": "b", "source": "/b.wav", "target": "\xe9"}\n')
    with pytest.raises(ManifestError, match=r"latin1\.jsonl:2: not valid UTF-8"):
        read_manifest(path)


def test_missing_and_empty_manifest(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"nope\.jsonl: no such manifest file"):
        read_manifest(tmp_path / "nope.jsonl")
    with pytest.raises(ManifestError, match="is not a file"):
        read_manifest(tmp_path)
    with pytest.raises(ManifestError, match=r"blank\.jsonl: manifest has no records"):
        read_manifest(_manifest(tmp_path / "blank.jsonl", "", ""))


def test_sources_are_not_checked_for_existence(tmp_path: Path) -> None:
    path = _manifest(tmp_path / "m.jsonl", '{"key": "a", "source": "gone.wav", "target": ""}')
    (record,) = read_manifest(path)
    assert not Path(record.source).exists()


def test_write_then_read_round_trip(tmp_path: Path) -> None:
    records = [
        Record(key="a", source="/x/a.wav", target="héllo", prompt="P", task="asr",
               offset=0.5, duration=1.25, extra={"speaker": "s1"}),
        {"key": "b", "source": "/x/b.wav", "target": "", "lang": "de"},
    ]
    path = tmp_path / "out" / "m.jsonl"
    write_manifest(records, path)
    a, b = read_manifest(path)
    assert (a.key, a.source, a.target, a.prompt, a.task) == ("a", "/x/a.wav", "héllo", "P", "asr")
    assert (a.offset, a.duration, a.extra) == (0.5, 1.25, {"speaker": "s1"})
    assert b.extra == {"lang": "de"} and b.offset == 0.0 and b.duration is None
    assert "héllo" in path.read_text(encoding="utf-8")  # written as UTF-8, not \\u escapes
    assert sorted(p.name for p in path.parent.iterdir()) == ["m.jsonl"]  # no temp file left


def test_write_keeps_relative_source_as_given(tmp_path: Path) -> None:
    write_manifest([{"key": "a", "source": "audio/a.wav", "target": "x"}], tmp_path / "m.jsonl")
    line = json.loads((tmp_path / "m.jsonl").read_text(encoding="utf-8"))
    assert line["source"] == "audio/a.wav"
    assert read_manifest(tmp_path / "m.jsonl")[0].source == str(tmp_path / "audio" / "a.wav")
