"""Tests for corpus preparation: LibriSpeech, Asterisk, LibriVox (fake trees in the real layouts,
plus the real Debian packages when installed) and TTS (when flite / espeak-ng are on PATH)."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from slamkit.assets import AssetMissingError, asset_path
from slamkit.cli import main
from slamkit.data.manifest import read_manifest

from conftest import fake_librispeech as _librispeech
from conftest import write_wav as _wav
from slamkit.prepare import CORPORA, CorpusError, prepare_asterisk, prepare_librispeech, prepare_librivox, prepare_tts
from slamkit.prepare.debian import clean_prompt_text
from slamkit.prepare.tts import read_sentences
from slamkit.prepare.voices import SAMPLE_RATE, telephone_band


def test_registry_has_every_corpus() -> None:
    assert {"tts", "asterisk", "librivox", "librispeech"} <= set(CORPORA.names())


# --------------------------------------------------------------------------- LibriSpeech


def test_librispeech_root_and_subset(tmp_path: Path) -> None:
    root = _librispeech(tmp_path)
    summary = prepare_librispeech(root, tmp_path / "all.jsonl")
    assert summary["utterances"] == 3 and summary["chapters"] == 2 and summary["words"] == 4 + 6 + 8
    records = {r.key: r for r in read_manifest(tmp_path / "all.jsonl")}
    first = records["84-121123-0001"]
    assert first.target == "BUT IN LESS THAN FIVE MINUTES" and first.duration == pytest.approx(1.5)
    assert first.extra == {"speaker": "84", "chapter": "121123", "subset": "dev-clean"}
    assert Path(first.source).is_file() and first.source.endswith("84-121123-0001.flac")
    only = prepare_librispeech(root / "test-clean", tmp_path / "test.jsonl")
    assert only["utterances"] == 1
    assert [r.key for r in read_manifest(tmp_path / "test.jsonl")] == ["1089-134686-0000"]


def test_librispeech_bad_lines_are_skipped_named_and_counted(tmp_path: Path, caplog) -> None:
    root = _librispeech(tmp_path)
    trans = root / "dev-clean/84/121123/84-121123.trans.txt"
    (trans.parent / "84-121123-0008.flac").write_text("not audio")
    trans.write_bytes(trans.read_bytes() + b"84-121123-0009 NO AUDIO HERE\n84-121123-0008 A TEXT FILE\n"
                      b"84-121123-0007 CAF\xc9\n84-121123-0006\n")
    summary = prepare_librispeech(root, tmp_path / "m.jsonl")
    assert summary["utterances"] == 3 and summary["skipped"] == 4
    assert summary["skipped_by_reason"] == {"not UTF-8": 1, "malformed line": 1, "missing file": 1, "unusable audio": 1}
    assert "84-121123.trans.txt:3: " in caplog.text and "84-121123.trans.txt:6: expected" in caplog.text
    assert [r.key for r in read_manifest(tmp_path / "m.jsonl")] == ["84-121123-0000", "84-121123-0001", "1089-134686-0000"]
    for other in root.rglob("*.trans.txt"):
        other.write_text("84-121123-0000\n")
    with pytest.raises(CorpusError, match=r"no usable utterance \(2 skipped: 2 malformed line\)"):
        prepare_librispeech(root, tmp_path / "m.jsonl")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match="no <speaker>-<chapter>.trans.txt"):
        prepare_librispeech(tmp_path / "empty", tmp_path / "m.jsonl")
    with pytest.raises(CorpusError, match="no such LibriSpeech folder"):
        prepare_librispeech(tmp_path / "missing", tmp_path / "m.jsonl")


def test_cli_prepare_librispeech(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _librispeech(tmp_path)
    assert main(["prepare", "librispeech", str(root), "--out", str(tmp_path / "m.jsonl")]) == 0
    assert json.loads(capsys.readouterr().out)["utterances"] == 3


# --------------------------------------------------------------------------- Asterisk

ASTERISK_TXT = """; Core Asterisk Sounds in English

activated: Activated.
beep: [this is a simple beep tone]
digits/1: one
letters/at: at [@]
silence/1: (1 second of silence)
spy-iax2: IAX (note: does not say "2")
no-audio: This prompt has no recording.
"""


def _asterisk(root: Path) -> Path:
    sounds = root / "usr/share/asterisk/sounds/en_US_f_Allison"
    for name, seconds in [("activated", 1.0), ("beep", 0.3), ("digits/1", 0.5), ("letters/at", 0.4),
                          ("silence/1", 1.0), ("spy-iax2", 0.6), ("no-text", 0.5)]:
        _wav(sounds / f"{name}.wav", seconds, 8000)
    doc = root / "usr/share/doc/asterisk-core-sounds-en"
    doc.mkdir(parents=True)
    with gzip.open(doc / "core-sounds-en.txt.gz", "wt") as handle:
        handle.write(ASTERISK_TXT)
    return root


def test_clean_prompt_text() -> None:
    assert clean_prompt_text("at [@]") == "at"
    assert clean_prompt_text('IAX (note: does not say "2")') == "IAX"
    assert clean_prompt_text("(1 second of silence)") == ""
    assert clean_prompt_text("Please  leave your message.  (tone plays)") == "Please leave your message."


def test_asterisk_fake_tree(tmp_path: Path) -> None:
    root = _asterisk(tmp_path / "deb")
    summary = prepare_asterisk(tmp_path / "out", root=root)
    assert summary["skipped"] == {"no_transcript": 1, "no_audio": 1, "not_speech": 2}
    records = {r.key: r for r in read_manifest(tmp_path / "out" / "asterisk.jsonl")}
    assert set(records) == {"asterisk-activated", "asterisk-digits-1", "asterisk-letters-at", "asterisk-spy-iax2"}
    assert records["asterisk-activated"].target == "Activated."
    assert records["asterisk-letters-at"].target == "at"
    assert records["asterisk-digits-1"].duration == pytest.approx(0.5)
    assert records["asterisk-digits-1"].extra["speaker"] == "en_US_f_Allison"
    assert summary["utterances"] == 4 and summary["words"] == 4


def test_asterisk_bad_line_names_file_and_line(tmp_path: Path) -> None:
    root = _asterisk(tmp_path / "deb")
    text = root / "usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz"
    with gzip.open(text, "wt") as handle:
        handle.write("activated: Activated.\nthis line has no colon\n")
    with pytest.raises(CorpusError, match=r"core-sounds-en.txt.gz:2: expected `name: text`"):
        prepare_asterisk(tmp_path / "out", root=root)


# --------------------------------------------------------------------------- LibriVox


def _pocketsphinx(root: Path) -> Path:
    data = root / "usr/share/pocketsphinx/test/data"
    ids = ["sense_and_sensibility_01_austen_64kb-0870", "sense_and_sensibility_01_austen_64kb-0880"]
    texts = ["and mister john dashwood had then leisure", "he was not an ill disposed young man"]
    for utt in ids:
        _wav(data / "librivox" / f"{utt}.wav", 1.0, 16000)
    (data / "librivox/transcription").write_text("".join(f"<s> {t} </s> ({u})\n" for t, u in zip(texts, ids)))
    _wav(data / "cards/001.wav", 0.5, 16000)
    (data / "cards/cards.transcription").write_text("<s> ten of clubs  </s> (001)\n")
    return root


def test_librivox_fake_tree(tmp_path: Path) -> None:
    root = _pocketsphinx(tmp_path / "deb")
    summary = prepare_librivox(tmp_path / "out", root=root, cards=True)
    assert summary["utterances"] == 2 and summary["words"] == 7 + 8
    records = read_manifest(tmp_path / "out" / "librivox.jsonl")
    assert records[1].key == "sense_and_sensibility_01_austen_64kb-0880"
    assert records[1].target == "he was not an ill disposed young man" and records[1].duration == pytest.approx(1.0)
    cards = read_manifest(tmp_path / "out" / "cards.jsonl")
    assert [(r.key, r.target) for r in cards] == [("cards-001", "ten of clubs")]


def test_librivox_missing_audio_is_named(tmp_path: Path) -> None:
    root = _pocketsphinx(tmp_path / "deb")
    next((root / "usr/share/pocketsphinx/test/data/librivox").glob("*0880.wav")).unlink()
    with pytest.raises(CorpusError, match="0880' has no audio file"):
        prepare_librivox(tmp_path / "out", root=root)


def _installed(name: str) -> Path:
    try:
        return asset_path(name)
    except AssetMissingError as err:
        pytest.skip(f"asset not installed: {err}")


def test_real_asterisk_package(tmp_path: Path) -> None:
    summary = prepare_asterisk(tmp_path, root=_installed("asterisk-sounds"))
    # ASSETS.md: 553 spoken utterances, 24.3 min; 3 263 words once notes like "[@]" are removed.
    assert summary["utterances"] == 553
    assert summary["minutes"] == pytest.approx(24.3, abs=0.05)
    assert summary["words"] == 3263
    assert summary["skipped"] == {"no_transcript": 0, "no_audio": 1, "not_speech": 15}


def test_real_librivox_package(tmp_path: Path) -> None:
    summary = prepare_librivox(tmp_path, root=_installed("pocketsphinx-testdata"), cards=True)
    assert summary["utterances"] == 5 and summary["words"] == 71
    assert summary["cards"]["utterances"] == 5
    assert all(sf.info(r.source).samplerate == 16000 for r in read_manifest(summary["manifest"]))


# --------------------------------------------------------------------------- TTS


def test_read_sentences_skips_and_normalises(tmp_path: Path) -> None:
    text = tmp_path / "t.txt"
    text.write_text("  Hello,   World!\n\n ... \n" + "word " * 50 + "\nLast line.")
    lines, skipped = read_sentences(text, max_words=40)
    assert lines == [(1, "Hello, World!"), (5, "Last line.")]
    assert skipped == {"empty": 2, "too_long": 1}
    with pytest.raises(CorpusError, match="no such text file"):
        read_sentences(tmp_path / "missing.txt")


def test_telephone_band_removes_high_frequencies() -> None:
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.1, SAMPLE_RATE).astype(np.float32)
    narrow = telephone_band(noise)
    assert narrow.shape == noise.shape
    spectrum = np.abs(np.fft.rfft(narrow))
    freqs = np.fft.rfftfreq(len(narrow), 1 / SAMPLE_RATE)
    assert spectrum[freqs > 4200].mean() < 0.01 * spectrum[freqs < 3500].mean()


SENTENCES = "Hello world.\nThe cat sat on the mat, quietly.\n-5 degrees is cold!\n"


@pytest.mark.parametrize("engine", ["flite", "espeak-ng"])
def test_tts_engine(engine: str, tmp_path: Path) -> None:
    if shutil.which(engine) is None:
        pytest.skip(f"`{engine}` is not on PATH (apt-get install {engine})")
    text = tmp_path / "s.txt"
    text.write_text(SENTENCES)
    summary = prepare_tts(text, tmp_path / "out", engines=(engine,), workers=1, telephone_fraction=0.5)
    assert summary["utterances"] == 3 and summary["failed"] == 0
    records = read_manifest(tmp_path / "out" / "tts.jsonl")
    assert [r.target for r in records] == SENTENCES.strip().split("\n")
    for record in records:
        info = sf.info(record.source)
        assert info.samplerate == SAMPLE_RATE and info.channels == 1
        assert record.duration is not None and record.duration > 0.3
        assert record.duration == pytest.approx(info.frames / info.samplerate, abs=1e-3)
        assert record.extra["engine"] == engine and record.extra["voice"].startswith(f"{engine}/")


def test_tts_is_reproducible_across_workers(tmp_path: Path) -> None:
    if shutil.which("flite") is None:
        pytest.skip("`flite` is not on PATH (apt-get install flite)")
    text = tmp_path / "s.txt"
    text.write_text(SENTENCES)
    prepare_tts(text, tmp_path / "a", engines=("flite",), num_utterances=4, seed=3, workers=1)
    prepare_tts(text, tmp_path / "b", engines=("flite",), num_utterances=4, seed=3, workers=2)
    a, b = (tmp_path / d / "tts.jsonl" for d in "ab")
    assert a.read_text() == b.read_text()
    assert [r.target for r in read_manifest(a)][3] == "Hello world."  # lines cycle


def test_tts_unknown_or_missing_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = tmp_path / "s.txt"
    text.write_text(SENTENCES)
    with pytest.raises(KeyError, match="unknown TTS engine 'mbrola'"):
        prepare_tts(text, tmp_path / "out", engines=("mbrola",))
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(FileNotFoundError, match="apt-get install -y flite"):
        prepare_tts(text, tmp_path / "out", engines=("flite",))
