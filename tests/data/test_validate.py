"""`slamkit validate`: every bad line named as FILE:LINE with its reason, good lines pass, exit status 1 on errors."""

from __future__ import annotations

import json
import os

import numpy as np
import soundfile as sf

from slamkit.cli import main

from conftest import write_wav


def _corpus(tmp_path) -> tuple:
    good = write_wav(tmp_path / "good.wav", 1.0, 16000)
    six = tmp_path / "six.wav"
    sf.write(str(six), np.full((16000, 6), 0.1, dtype=np.float32), 16000)
    nan = tmp_path / "nan.wav"
    sf.write(str(nan), np.full(16000, np.nan, dtype=np.float32), 16000, subtype="FLOAT")
    text = tmp_path / "text.wav"
    text.write_text("this is not audio")
    locked = write_wav(tmp_path / "locked.wav", 1.0, 16000)
    locked.chmod(0)
    long = write_wav(tmp_path / "long.wav", 31.0, 8000)
    row = lambda key, src, target="a b": json.dumps({"key": key, "source": str(src), "target": target})  # noqa: E731
    lines = [
        "\ufeff" + row("ok", good),               # 1 BOM (warning), fine
        row("six", six),                          # 2 six channels (warning)
        row("nan", nan),                          # 3 NaN samples (error)
        row("text", text),                        # 4 a text file named .wav (error)
        row("gone", tmp_path / "missing.wav"),    # 5 missing file
        "{not json",                              # 6 invalid JSON
        json.dumps({"key": "nosrc", "target": "x"}),  # 7 missing field
        json.dumps({"key": "typ", "source": str(good), "target": 5}),  # 8 wrong type
        row("ok", good),                          # 9 duplicate key
        row("empty", good, ""),                   # 10 empty target (warning)
        row("long", long),                        # 11 31 s (warning)
        row("locked", locked),                    # 12 no read permission (error, unless root ignores permissions)
    ]
    manifest = tmp_path / "m.jsonl"
    manifest.write_bytes(("\n".join(lines[:5]) + "\n").encode() + b'{"key": "bad\xff", "source": "x", "target": "y"}\n'
                         + ("\n".join(lines[5:]) + "\n").encode())
    return manifest, os.geteuid() == 0


def test_validate_names_every_bad_line_and_exits_1(tmp_path, capsys) -> None:
    manifest, root_user = _corpus(tmp_path)
    assert main(["validate", str(manifest), "--audio", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    by_line = {}
    for p in report["problems"]:
        by_line.setdefault(int(p["where"].rsplit(":", 1)[1]), []).append((p["reason"], p["error"]))
    expected = {1: [("byte-order mark", False)], 2: [("several channels", False)], 3: [("unusable audio", True)],
                4: [("unusable audio", True)], 5: [("missing file", True)], 6: [("not UTF-8", True)], 7: [("invalid JSON", True)],
                8: [("bad field", True)], 9: [("bad field", True)], 10: [("duplicate key", True)], 11: [("empty target", False)],
                12: [("long clip", False)]}
    if not root_user:  # root reads a file whatever its mode
        expected[13] = [("unreadable file", True)]
    assert by_line == expected
    assert report["records"] == 13 and report["unusable_lines"] == len([k for k, v in expected.items() if v[0][1]])
    nan_detail = next(p["detail"] for p in report["problems"] if p["where"].endswith(":3"))
    assert "non-finite" in nan_detail or "NaN" in nan_detail, nan_detail


def test_validate_text_report_and_a_clean_manifest(tmp_path, capsys) -> None:
    good = write_wav(tmp_path / "a.wav", 1.0, 16000)
    manifest = tmp_path / "ok.jsonl"
    manifest.write_text(json.dumps({"key": "a", "source": "a.wav", "target": "hello"}) + "\n")
    assert main(["validate", str(manifest), "--audio"]) == 0
    assert "1 records in 1 manifest(s): 0 unusable line(s), 0 error(s), 0 warning(s)" in capsys.readouterr().out
    outside = tmp_path / "sub" / "o.jsonl"
    outside.parent.mkdir()
    outside.write_text(json.dumps({"key": "a", "source": str(good), "target": "hello"}) + "\n")
    assert main(["validate", str(outside), "--root", str(outside.parent)]) == 1
    out = capsys.readouterr().out
    assert f"{outside}:1: error: outside root:" in out and "| outside root | error | 1 |" in out
