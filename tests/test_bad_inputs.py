"""A corpus of bad inputs (built here, never committed) through every command: train, decode, score, validate.

Each bad item is left out with its ``file:line`` and reason, every usable one is used, and no command
dies with a traceback. The good-but-unusual items (several channels, 96 kHz, 8/24-bit PCM, FLAC/OGG/MP3,
silence, a byte-order mark) are used like any other.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from slamkit.cli import main
from slamkit.data.manifest import read_manifest

from conftest import write_wav

ROOT_USER = os.geteuid() == 0  # root reads a file whatever its mode: the "no permission" item is then usable


def _audio(folder: Path) -> dict[str, Path]:
    """Every audio item of the corpus (name -> file)."""
    folder.mkdir(parents=True, exist_ok=True)
    tone = lambda sec, rate: (0.3 * np.sin(2 * np.pi * 220 * np.arange(int(sec * rate)) / rate)).astype(np.float32)  # noqa: E731
    items: dict[str, Path] = {}
    full = write_wav(folder / "full.wav", 1.0, 16000)
    items["truncated header"] = folder / "truncated.wav"
    items["truncated header"].write_bytes(full.read_bytes()[:30])
    items["zero-length file"] = folder / "zero.wav"
    items["zero-length file"].write_bytes(b"")
    for name, values in (("all-zero audio", np.zeros(16000)), ("NaN samples", np.full(16000, np.nan)),
                         ("Inf samples", np.concatenate([tone(1.0, 16000)[:8000], np.full(8000, np.inf)]))):
        items[name] = folder / f"{name.split()[0].lower()}.wav"
        sf.write(str(items[name]), values.astype(np.float32), 16000, subtype="FLOAT")
    items["6 channels"] = folder / "six.wav"
    sf.write(str(items["6 channels"]), np.repeat(tone(1.0, 16000)[:, None], 6, axis=1), 16000)
    for name, file, rate, fmt, subtype in (("96 kHz", "hi.wav", 96000, "WAV", "PCM_16"), ("8-bit PCM", "u8.wav", 16000, "WAV", "PCM_U8"),
                                           ("24-bit PCM", "p24.wav", 16000, "WAV", "PCM_24"), ("FLAC", "a.flac", 16000, "FLAC", "PCM_16"),
                                           ("OGG", "a.ogg", 16000, "OGG", "VORBIS"), ("MP3", "a.mp3", 16000, "MP3", "MPEG_LAYER_III")):
        items[name] = folder / file
        sf.write(str(items[name]), tone(1.2, rate), rate, format=fmt, subtype=subtype)
    items["text file named .wav"] = folder / "text.wav"
    items["text file named .wav"].write_text("this is not audio\n")
    items["missing file"] = folder / "missing.wav"
    items["no read permission"] = write_wav(folder / "locked.wav", 1.0, 16000)
    items["no read permission"].chmod(0)
    items["10-minute clip"] = folder / "long.wav"
    sf.write(str(items["10-minute clip"]), np.tile(tone(1.0, 16000), 600), 16000)
    return items


# Reason each item is skipped with in training (None: used); decoding fails the same items except the
# duration and target-length ones (it segments long clips and has no target limit).
TRAIN_REASON = {
    "truncated header": "unusable audio", "zero-length file": "unusable audio", "all-zero audio": None,
    "NaN samples": "unusable audio", "Inf samples": "unusable audio", "6 channels": None, "96 kHz": None, "8-bit PCM": None,
    "24-bit PCM": None, "FLAC": None, "OGG": None, "MP3": None, "text file named .wav": "unusable audio",
    "missing file": "missing file", "no read permission": None if ROOT_USER else "unreadable file",
    "10-minute clip": "duration out of range",
    "invalid JSON": "invalid JSON", "missing field": "bad field", "wrong type": "bad field", "empty target": "empty target",
    "non-UTF-8 line": "not UTF-8", "UTF-8 BOM": None, "duplicate key": "duplicate key", "5000-character target": "target too long",
}
DECODE_OK = {"10-minute clip", "empty target", "5000-character target"}


def _corpus(root: Path, good: Path) -> tuple[Path, dict[int, str]]:
    """The manifest: the tone corpus's lines with every bad item among them; returns it and line -> item."""
    audio = _audio(root / "audio")
    row = lambda key, src, target="one two": json.dumps({"key": key, "source": str(src), "target": target}).encode()  # noqa: E731
    good_lines = [json.dumps(r.to_json()).encode() for r in read_manifest(good)]  # sources made absolute
    good_src = json.loads(good_lines[0])["source"]
    bad: list[tuple[str, bytes]] = [("UTF-8 BOM", b"\xef\xbb\xbf" + row("bom", good_src))]
    bad += [(name, row(name.replace(" ", "_"), path)) for name, path in audio.items()]
    bad += [("invalid JSON", b'{"key": "broken", "source": '), ("missing field", json.dumps({"key": "nosrc", "target": "x"}).encode()),
            ("wrong type", json.dumps({"key": "typ", "source": good_src, "target": 5}).encode()),
            ("empty target", row("empty", good_src, "")), ("non-UTF-8 line", b'{"key": "caf\xe9", "source": "x.wav", "target": "y"}'),
            ("duplicate key", row("bom", good_src)), ("5000-character target", row("long_target", good_src, "ab " * 1666 + "ab"))]
    lines, items = [bad[0][1]], {1: "UTF-8 BOM"}
    for i, (name, line) in enumerate(bad[1:]):  # bad items spread among the good lines
        lines += good_lines[i:i + 1] + [line]
        items[len(lines)] = name
    lines += good_lines[len(bad) - 1:]
    manifest = root / "bad.jsonl"
    manifest.write_bytes(b"\n".join(lines) + b"\n")
    return manifest, items


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, tone_corpus) -> tuple[Path, dict[int, str]]:
    return _corpus(tmp_path_factory.mktemp("bad-corpus"), tone_corpus["train"])


def _by_line(entries: list[dict]) -> dict[int, set[str]]:
    found: dict[int, set[str]] = {}
    for e in entries:
        found.setdefault(int(e["where"].rsplit(":", 1)[1]), set()).add(e["reason"])
    return found


def test_train_completes_and_counts_every_skip_by_reason(corpus, tone_corpus, tmp_path, capsys) -> None:
    manifest, items = corpus
    args = ["train", "recipes/tiny_asr.yaml", f"train.output_dir={tmp_path / 'run'}", f"data.train={manifest}",
            f"data.valid={manifest}", "train.tensorboard=false", "train.max_steps=10", "train.log_every=5",
            "train.valid_every=10", "train.save_every=10", "data.batch_size=8"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    summary = json.loads(captured.out.strip().splitlines()[-1])
    skipped = [json.loads(line) for line in (tmp_path / "run" / "skipped.jsonl").read_text().splitlines()]
    by_line = _by_line(skipped)
    for line, name in items.items():  # 10 steps of 8 cover every usable record at least once
        expected = None if TRAIN_REASON[name] is None else {TRAIN_REASON[name]}
        assert by_line.get(line) == expected, f"{name} (line {line}): skipped for {by_line.get(line)}, expected {expected}"
    expected_preload = {}
    for name in items.values():
        reason = TRAIN_REASON[name]
        if reason and name not in ("NaN samples", "Inf samples", "5000-character target"):
            expected_preload[reason] = expected_preload.get(reason, 0) + 1
    preload = {}
    for e in skipped:
        if e["step"] == 0:
            preload[e["reason"]] = preload.get(e["reason"], 0) + 1
    assert preload == expected_preload
    assert summary["skipped"] == len(skipped) and summary["skipped_by_reason"] == {r: sum(e["reason"] == r for e in skipped)
                                                                                  for r in {e["reason"] for e in skipped}}
    last = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines() if "skipped" in line][-1]
    assert last["skipped_by_reason"] == summary["skipped_by_reason"] and last["skipped"] == summary["skipped"]


def test_decode_writes_a_line_per_input_line_with_errors(corpus, tiny_run, tmp_path, capsys) -> None:
    manifest, items = corpus
    out = tmp_path / "hyps.jsonl"
    assert main(["decode", str(tiny_run), "--manifest", str(manifest), "--out", str(out), "decode.segment=fixed"]) == 0
    assert "Traceback" not in capsys.readouterr().err
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    n_input = sum(1 for raw in manifest.read_bytes().splitlines() if raw.strip())
    assert len(lines) == n_input
    for number, line in enumerate(lines, start=1):
        name = items.get(number)
        should_fail = name is not None and TRAIN_REASON[name] is not None and name not in DECODE_OK
        assert ("error" in line) == should_fail, f"line {number} ({name}): {line}"
        if should_fail:
            assert line["where"] == f"{manifest}:{number}" and line["reason"] == TRAIN_REASON[name] and line["hyp"] == ""
        else:
            assert isinstance(line["hyp"], str) and line["key"]
    long = next(line for number, line in enumerate(lines, start=1) if items.get(number) == "10-minute clip")
    assert long["segments"] and long["segments"][-1]["end"] == pytest.approx(600.0, abs=1.0)

    # score: decode errors count as empty hypotheses, unusable manifest lines are named and not scored
    assert main(["score", str(out)]) == 0
    result = json.loads(capsys.readouterr().out)
    line_level = {"invalid JSON", "bad field", "not UTF-8", "duplicate key"}
    failed = [name for name in items.values() if TRAIN_REASON[name] is not None and name not in DECODE_OK]
    assert result["decode_errors"] == sum(TRAIN_REASON[name] not in line_level for name in failed)
    assert result["unscored_lines"] == sum(TRAIN_REASON[name] in line_level for name in failed) == 5
    assert result["utterances"] == n_input - 5


def test_score_names_every_bad_hypothesis_line(tmp_path, capsys) -> None:
    hyps = tmp_path / "h.jsonl"
    good = json.dumps({"key": "a", "hyp": "x", "ref": "x"})
    hyps.write_bytes(b"\n".join([good.encode(), b"{oops", json.dumps({"key": "b", "ref": "y"}).encode(), good.encode(),
                                 b'{"key": "c", "hyp": "\xff", "ref": "z"}', json.dumps({"key": "d", "hyp": 3, "ref": "z"}).encode()]) + b"\n")
    assert main(["score", str(hyps)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "5 unusable line(s)" in err
    for number, what in ((2, "invalid JSON"), (3, "missing field 'hyp'"), (4, "duplicate key 'a'"), (5, "not valid UTF-8"),
                         (6, "field 'hyp' must be a string")):
        assert f"{hyps}:{number}: {what}" in err, (number, err)


def test_validate_flags_what_training_skips_before_loading(corpus, capsys) -> None:
    manifest, items = corpus
    assert main(["validate", str(manifest), "--audio", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    errors = _by_line([p for p in report["problems"] if p["error"]])
    for line, name in items.items():
        reason = TRAIN_REASON[name]
        if reason in (None, "duration out of range", "target too long", "empty target"):  # warnings, or a training limit
            assert line not in errors, f"{name}: {errors.get(line)}"
        else:
            assert errors.get(line) == {reason}, f"{name} (line {line}): {errors.get(line)}"
