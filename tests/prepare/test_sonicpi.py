"""The Sonic Pi captioning demo data: name parsing, measured captions, the stratified split, the
baselines, the CLI, the recipe, and (when installed) the real Debian package."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from slamkit.assets import AssetMissingError, asset_path
from slamkit.cli import main
from slamkit.config import load_config
from slamkit.prepare import CORPORA
from slamkit.prepare.sonicpi import (
    SAMPLES_DIR,
    SonicPiError,
    describe_name,
    duration_class,
    loudness_class,
    prepare_sonicpi,
    seconds_words,
)

from conftest import REPO

RECIPE = REPO / "recipes" / "aac_sonicpi_whisper_tiny.yaml"
RATE = 44100
LOUD, MID, QUIET = 0.5, 0.1, 0.03  # sine amplitudes: -9.0, -23.0 and -33.5 dBFS RMS

# name -> (seconds, amplitude), in Sonic Pi's naming style
FAKE = {
    "drum_tom_hi_soft": (0.5, LOUD), "drum_cymbal_open": (2.0, QUIET), "drum_snare_hard": (0.2, MID),
    "drum_bass_soft": (0.8, MID), "tabla_na_o": (1.0, MID), "tabla_ghe1": (0.25, LOUD),
    "tabla_ghe2": (3.0, MID), "bass_hard_c": (5.0, LOUD), "elec_blip2": (0.1, QUIET), "elec_hollow_kick": (0.15, QUIET),
}


def _flac(path: Path, seconds: float, amplitude: float, channels: int = 1) -> None:
    t = np.arange(round(seconds * RATE)) / RATE
    wave = (amplitude * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
    sf.write(str(path), np.stack([wave] * channels, axis=1) if channels > 1 else wave, RATE, format="FLAC")


@pytest.fixture
def fake_tree(tmp_path: Path) -> Path:
    """A Debian-style extraction root with a few samples (one stereo, one of unknown prefix)."""
    folder = tmp_path / "root" / SAMPLES_DIR
    folder.mkdir(parents=True)
    for i, (name, (seconds, amplitude)) in enumerate(FAKE.items()):
        _flac(folder / f"{name}.flac", seconds, amplitude, channels=1 + i % 2)
    _flac(folder / "zzz_unknown.flac", 0.3, MID)
    (folder / "README.md").write_text("not audio\n")
    return tmp_path / "root"


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# --------------------------------------------------------------------------- names and captions


@pytest.mark.parametrize(("name", "prefix", "details", "note"), [
    ("drum_tom_hi_soft", "drum", "high soft tom", None),
    ("drum_bass_hard", "drum", "hard bass drum", None),
    ("bass_voxy_hit_c", "bass", "vocal hit", "C"),
    ("loop_drone_g_97", "loop", "drone", "G"),
    ("guit_e_fifths", "guit", "chord of fifths", "E"),
    ("guit_em9", "guit", "E minor ninth chord", None),
    ("elec_blip2", "elec", "blip", None),
    ("bd_808", "bd", "808", None),
    ("bd_zome", "bd", "", None),
    ("tabla_te_ne", "tabla", "te-ne", None),
    ("tabla_ghe8", "tabla", "ghe", None),
    ("loop_3d_printer", "loop", "3D printer", None),
])
def test_describe_name(name: str, prefix: str, details: str, note: str | None) -> None:
    category, got_details, got_note = describe_name(name)
    assert (category.prefix, got_details, got_note) == (prefix, details, note)


def test_unknown_prefix_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="tabla"):
        describe_name("kazoo_solo")


def test_measured_classes() -> None:
    assert [duration_class(s) for s in (0.02, 0.3, 1.49, 1.5, 3.99, 4.0, 11.0)] == [
        "very short", "short", "short", "medium-length", "medium-length", "long", "long"]
    assert [loudness_class(db) for db in (-3.0, -12.0, -12.1, -24.9, -25.0, -40.0)] == [
        "loud", "loud", None, None, "quiet", "quiet"]
    assert [seconds_words(s) for s in (0.1, 0.8, 1.4, 2.6)] == [
        "a fraction of a second", "about one second", "about one second", "about 3 seconds"]


# --------------------------------------------------------------------------- prepare


def test_prepare_writes_stratified_manifests_with_measured_captions(fake_tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary = prepare_sonicpi(out, root=fake_tree)
    assert summary["skipped"] == ["zzz_unknown.flac"]
    assert summary["categories"] == {"bass": 1, "drum": 4, "elec": 2, "tabla": 3}
    train, test = _lines(out / "train.jsonl"), _lines(out / "test.jsonl")
    assert summary["clips"] == {"train": len(train), "test": len(test)} == {"train": 7, "test": 3}
    # round(n * 0.2), at least one, never all: drum 4 -> 1, tabla 3 -> 1, elec 2 -> 1, bass 1 -> 0
    assert sorted(r["category"] for r in test) == ["drum", "elec", "tabla"]
    assert {r["split"] for r in train} == {"train"} and {r["split"] for r in test} == {"test"}
    by_key = {r["key"]: r for r in train + test}
    tom = by_key["sonicpi-drum_tom_hi_soft"]
    assert tom["task"] == "aac" and tom["duration"] == pytest.approx(0.5, abs=1e-3)
    assert tom["rms_dbfs"] == pytest.approx(20 * math.log10(LOUD / math.sqrt(2)), abs=0.2)
    assert tom["references"] == [
        "A short loud high soft tom from a drum kit.",
        "An acoustic drum kit high soft tom lasting a fraction of a second.",
        "A loud high soft tom from a drum kit that is short.",
        "The loud sound of an acoustic drum kit high soft tom.",
        "A short, loud drum kit sample.",
    ]
    assert tom["target"] == tom["references"][0]
    assert by_key["sonicpi-bass_hard_c"]["target"] == "A long loud hard bass sound in C."
    assert by_key["sonicpi-drum_cymbal_open"]["target"] == "A medium-length quiet open cymbal from a drum kit."
    assert by_key["sonicpi-drum_snare_hard"]["target"] == "A very short hard snare from a drum kit."
    assert by_key["sonicpi-tabla_na_o"]["references"][1] == "A na-o stroke played on a tabla lasting about one second."
    assert Path(tom["source"]).is_absolute() and Path(tom["source"]).is_file()


def test_split_is_deterministic_and_follows_the_seed(fake_tree: Path, tmp_path: Path) -> None:
    def test_keys(out: str, seed: int) -> list[str]:
        prepare_sonicpi(tmp_path / out, root=fake_tree, seed=seed)
        return [r["key"] for r in _lines(tmp_path / out / "test.jsonl")]

    first = test_keys("a", 0)
    assert test_keys("b", 0) == first
    assert any(test_keys(f"s{seed}", seed) != first for seed in range(1, 6)), "the seed must change the split"


def test_per_caption_training_lines(fake_tree: Path, tmp_path: Path) -> None:
    prepare_sonicpi(tmp_path / "out", root=fake_tree, per_caption=True)
    train = _lines(tmp_path / "out" / "train.jsonl")
    assert len(train) == 7 * 5 and len(_lines(tmp_path / "out" / "test.jsonl")) == 3
    tom = [r for r in train if r["key"].startswith("sonicpi-drum_tom_hi_soft#")]
    assert [r["target"] for r in tom] == tom[0]["references"]


def test_baselines_are_scorable_hypothesis_files(fake_tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary = prepare_sonicpi(out, root=fake_tree)
    train, test = _lines(out / "train.jsonl"), _lines(out / "test.jsonl")
    majority = _lines(Path(summary["baselines"]["majority"]))
    assert [h["key"] for h in majority] == [r["key"] for r in test]
    assert all(h["task"] == "aac" and h["ref"] == r["references"] for h, r in zip(majority, test))
    expected = min((t["target"] for t in train), key=lambda s: (-[t["target"] for t in train].count(s), s))
    assert {h["hyp"] for h in majority} == {expected}
    nearest = _lines(Path(summary["baselines"]["nearest"]))
    train_targets = {r["target"] for r in train}
    assert all(h["hyp"] in train_targets for h in nearest)
    assert len({h["hyp"] for h in nearest}) > 1, "the nearest clip differs between test clips"


def test_samples_folder_itself_is_accepted(fake_tree: Path, tmp_path: Path) -> None:
    summary = prepare_sonicpi(tmp_path / "out", root=fake_tree / SAMPLES_DIR)
    assert summary["folder"] == str(fake_tree / SAMPLES_DIR)


def test_missing_or_empty_folder_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SonicPiError, match=r"nowhere: no such folder.*slamkit assets install sonic-pi-samples"):
        prepare_sonicpi(tmp_path / "out", root=tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SonicPiError, match=r"empty: no \*\.flac samples"):
        prepare_sonicpi(tmp_path / "out", root=tmp_path / "empty")
    assert main(["prepare", "sonicpi", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "no such folder" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_cli_and_registry(fake_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert CORPORA.get("sonicpi") is prepare_sonicpi
    assert main(["prepare", "sonicpi", str(fake_tree), "--out", str(tmp_path / "out"), "--test-fraction", "0.5"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["clips"] == {"train": 5, "test": 5}  # drum 2, tabla 2 (round(1.5)), elec 1, bass 0


# --------------------------------------------------------------------------- recipe and real data


def test_recipe_loads_strictly() -> None:
    cfg = load_config(RECIPE)
    assert cfg.data.task == "aac" and cfg.data.min_seconds <= 0.02
    assert cfg.model.encoder.path == "asset:whisper-tiny.en" and cfg.model.encoder.trainable == "frozen"
    assert cfg.model.llm.path.startswith("asset:smollm2-135m-instruct-gguf/") and cfg.model.llm.trainable == "lora"
    text = RECIPE.read_text(encoding="utf-8")
    for command in ("slamkit assets install sonic-pi-samples", "slamkit prepare sonicpi", "slamkit train",
                    "slamkit decode", "slamkit score"):
        assert command in text, f"the recipe header lacks `{command}`"


def test_real_package_gives_165_clips(tmp_path: Path) -> None:
    try:
        root = asset_path("sonic-pi-samples")
    except AssetMissingError as err:
        pytest.skip(f"asset not installed (`slamkit assets install sonic-pi-samples`): {err}")
    summary = prepare_sonicpi(tmp_path / "out", root=root)
    assert summary["skipped"] == [] and sum(summary["clips"].values()) == 165
    assert len(summary["categories"]) == 14 and summary["categories"]["tabla"] == 26
    test = _lines(tmp_path / "out" / "test.jsonl")
    assert {r["category"] for r in test} == set(summary["categories"]), "every category is tested"
