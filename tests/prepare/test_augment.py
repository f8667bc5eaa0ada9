"""Pre-rendered augmentation: each kind does what it says, the output is seeded per clip, the CLI writes a
manifest that reads back and skips bad lines by name. Synthetic audio only (one test uses the installed
music-on-hold asset and is skipped with the reason when it is absent)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import write_wav
from slamkit.cli import main
from slamkit.data.manifest import read_manifest
from slamkit.prepare.augment import AUGMENTS, DEFAULT_SPEC, AugmentSpecError, Clip, SetupContext, augment_clip, build_plan, parse_spec
from slamkit.prepare.augment_base import rms
from slamkit.prepare.augment_kinds import CODECS

RATE = 16000


def _tone(seconds: float, freq: float = 220.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _apply(kind: str, wave: np.ndarray, params: tuple[str, ...] = (), key: str = "k", copy: int = 1,
           ctx: SetupContext | None = None) -> tuple[np.ndarray, dict]:
    plan = build_plan(f"{kind}:1", params, ctx or SetupContext(seed=0))
    out, info = augment_clip(wave, plan, Clip(0, key), copy)
    return out, info[kind]


def _band_energy(wave: np.ndarray, lo: float, hi: float) -> float:
    spectrum = np.abs(np.fft.rfft(wave)) ** 2
    freqs = np.fft.rfftfreq(len(wave), 1 / RATE)
    return float(spectrum[(freqs >= lo) & (freqs < hi)].sum() / spectrum.sum())


def _manifest(folder: Path, count: int, extra_lines: tuple[str, ...] = ()) -> Path:
    """``count`` tone clips (different pitches and lengths) and then ``extra_lines`` verbatim."""
    lines = []
    for i in range(count):
        wav = folder / "audio" / f"c{i}.wav"
        wav.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(wav), _tone(0.6 + 0.1 * i, 180.0 + 40 * i), RATE)
        lines.append(json.dumps({"key": f"c{i}", "source": f"audio/c{i}.wav", "target": f"clip {i}", "speaker": f"s{i % 2}"}))
    path = folder / "in.jsonl"
    path.write_text("\n".join([*lines, *extra_lines]) + "\n")
    return path


# --------------------------------------------------------------------------- the kinds


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_scales_length_and_pitch(factor: float) -> None:
    wave = _tone(1.0, 400.0)
    out, info = _apply("speed", wave, (f"speed.factors={factor}",))
    assert info == {"factor": factor}
    assert abs(len(out) - len(wave) / factor) <= 2
    peak_hz = np.argmax(np.abs(np.fft.rfft(out))) * RATE / len(out)
    assert abs(peak_hz - 400.0 * factor) < 3


def test_room_spreads_a_click_and_keeps_its_time() -> None:
    pytest.importorskip("pyroomacoustics")
    wave = np.zeros(RATE, dtype=np.float32)
    click = 4000
    wave[click] = 0.8
    params = ("room.rt60=0.4", "room.length=4,5", "room.width=3,4", "room.height=2.5,3", "room.pool=1")
    out, info = _apply("room", wave, params)
    assert len(out) == len(wave)
    assert abs(int(np.argmax(np.abs(out))) - click) <= 1  # the direct path lands where the dry click was
    energy = np.square(out.astype(np.float64))
    assert energy[click + 160:].sum() > 0.2 * energy.sum()  # a tail after the first 10 ms
    assert energy[: click - 50].sum() < 1e-6 * energy.sum()  # nothing before the sound
    assert info["rt60"] == 0.4 and abs(info["rt60_measured"] - 0.4) <= 0.1 * 0.4
    assert np.isclose(rms(out), rms(wave), rtol=1e-3)


def test_noise_is_added_at_the_drawn_snr(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, 6)
    ctx = SetupContext(seed=3, manifest=manifest, clips=6)
    wave = _tone(1.0)
    seen = set()
    for copy in range(1, 9):
        out, info = _apply("noise", wave, ("noise.sources=colored,babble", "noise.snr_db=0,20"), copy=copy, ctx=ctx)
        noise = out.astype(np.float64) - wave
        measured = 10 * np.log10(np.mean(np.square(wave, dtype=np.float64)) / np.mean(noise**2))
        assert abs(measured - info["snr_db"]) < 1.0, info
        assert 0 <= info["snr_db"] <= 20
        seen.add(info["kind"])
        if info["kind"] == "babble":
            assert 3 <= len(info["talkers"]) <= 6 and "k" not in info["talkers"]
    assert seen == {"colored", "babble"}


def test_babble_never_mixes_the_clip_itself(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, 4)
    plan = build_plan("noise", ("noise.sources=babble", "noise.talkers=3"), SetupContext(seed=0, manifest=manifest, clips=4))
    for index in range(4):
        _, info = augment_clip(_tone(0.5), plan, Clip(index, f"c{index}"), 1)
        assert sorted(info["noise"]["talkers"]) == sorted(f"c{i}" for i in range(4) if i != index)


def test_missing_noise_asset_is_left_out_or_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("SLAMKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("slamkit.assets.DebAsset.locate", lambda self, root: None)
    with caplog.at_level(logging.WARNING):
        plan = build_plan("noise", ("noise.sources=moh,colored",))
    assert [name for name, _, _ in plan.steps[0].state.sources] == ["colored"]
    assert "slamkit assets install asterisk-moh" in caplog.text
    with pytest.raises(ValueError, match=r"--param noise.sources: none of moh is usable.*asterisk-moh"):
        build_plan("noise", ("noise.sources=moh",))


@pytest.mark.parametrize("codec", [name for name in CODECS])
def test_telephone_keeps_the_band_and_the_timing(codec: str) -> None:
    rng = np.random.default_rng(0)
    wave = (0.1 * rng.standard_normal(RATE)).astype(np.float32)  # energy up to 8 kHz
    out, info = _apply("telephone", wave, (f"telephone.codecs={codec}",))
    assert info["codec"] == codec and len(out) == len(wave)
    assert _band_energy(wave, 4000, 8000) > 0.4
    assert _band_energy(out, 4000, 8000) < 0.01
    assert _band_energy(out, 0, 200) < 0.01
    lags = np.correlate(out, wave[2000:14000], mode="valid")
    assert abs(int(np.argmax(lags)) - 2000) <= 2  # the codec's delay is taken out


def test_chain_runs_every_kind_in_stage_order() -> None:
    assert list(parse_spec("telephone:0.1,noise,speed:0.3,room:0")) == ["speed", "room", "noise", "telephone"]
    assert parse_spec("noise")["noise"] == 1.0
    assert [AUGMENTS.get(n).stage for n in ("speed", "room", "noise", "telephone")] == sorted(
        AUGMENTS.get(n).stage for n in ("speed", "room", "noise", "telephone"))


def test_draws_depend_on_seed_key_and_copy_only() -> None:
    plan = build_plan("speed:0.5,noise:0.5,telephone:0.5", ("noise.sources=colored",), SetupContext(seed=7))
    wave = _tone(0.5)
    first = augment_clip(wave, plan, Clip(0, "a"), 1)
    assert np.array_equal(first[0], augment_clip(wave, plan, Clip(5, "a"), 1)[0])  # the position is not in the seed
    draws = {json.dumps(augment_clip(wave, plan, Clip(0, "a"), copy)[1], sort_keys=True) for copy in range(1, 9)}
    assert len(draws) > 4
    # a kind's draws do not move when another kind joins the spec
    alone = build_plan("noise:0.5", ("noise.sources=colored",), SetupContext(seed=7))
    for copy in range(1, 6):
        with_others = augment_clip(wave, plan, Clip(0, "a"), copy)[1].get("noise")
        assert augment_clip(wave, alone, Clip(0, "a"), copy)[1].get("noise") == with_others


# --------------------------------------------------------------------------- spec errors


@pytest.mark.parametrize("spec, message", [
    ("room:2", "'room:2': the probability must be a number in [0, 1], got '2'"),
    ("bogus:0.5", "unknown kind 'bogus' in 'bogus:0.5' (known: noise, room, speed, telephone)"),
    ("noise:x", "'noise:x': the probability must be a number in [0, 1], got 'x'"),
    ("noise:0.5,noise:0.2", "kind 'noise' is given twice"),
    ("room:0.3,,noise", "empty item"),
])
def test_bad_spec_names_the_option(spec: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(AugmentSpecError) as err:
        parse_spec(spec)
    assert str(err.value).startswith("--augment: ") and message in str(err.value)
    manifest = _manifest(tmp_path, 1)
    assert main(["prepare", "augment", str(manifest), "--out", str(tmp_path / "out"), "--augment", spec]) == 2
    stderr = capsys.readouterr().err
    assert "--augment" in stderr and message in stderr and not (tmp_path / "out").exists()


@pytest.mark.parametrize("param, message", [
    ("room.rt60=abc", "--param room.rt60: expected numbers, got 'abc'"),
    ("room.rt60=0.9,0.2", "--param room.rt60: need 0.05 <= LOW <= HIGH <= 2"),
    ("noise.snr=5", "noise has no parameter 'snr' (known: snr_db, sources, talkers, colors)"),
    ("telephone.codecs=ulaw,amr", "--param telephone.codecs: unknown 'amr'"),
    ("speed.factors=0.9", "kind not in --augment 'speed'"),
    ("rt60=0.3", "expected KIND.NAME=VALUE"),
])
def test_bad_param_names_the_option(param: str, message: str) -> None:
    with pytest.raises(AugmentSpecError, match="^--param") as err:
        build_plan("room:0.5,noise:0.5,telephone:0.5", (param,))
    assert message in str(err.value)


def test_cli_default_spec_and_param_listing(capsys: pytest.CaptureFixture[str]) -> None:
    from slamkit.cli.prepare_augment import DEFAULT_SPEC as CLI_DEFAULT

    assert CLI_DEFAULT == DEFAULT_SPEC
    with pytest.raises(SystemExit) as done:
        main(["prepare", "augment", "--list-params"])
    listing = capsys.readouterr().out
    assert done.value.code == 0 and "room.rt60=0.2,0.8" in listing and "noise.snr_db=5,20" in listing


# --------------------------------------------------------------------------- the CLI


def test_cli_writes_a_manifest_that_reads_back_and_skips_bad_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    write_wav(tmp_path / "audio" / "cropped.wav", 2.0, 8000)
    broken = tmp_path / "audio" / "broken.wav"
    broken.write_bytes(b"RIFF0000WAVEnot audio at all")
    manifest = _manifest(tmp_path, 4, (
        '{"key": "bad json", ',
        json.dumps({"key": "cropped", "source": "audio/cropped.wav", "target": "x", "offset": 0.5, "duration": 1.0}),
        json.dumps({"key": "broken", "source": "audio/broken.wav", "target": "y"}),
    ))
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING):
        assert main(["prepare", "augment", str(manifest), "--out", str(out), "--augment", "speed:1,noise:0.5,telephone:0.5",
                     "--param", "speed.factors=1.1", "--param", "noise.sources=colored", "--copies", "2", "--keep-clean",
                     "--workers", "1"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert f"{manifest}:5" in caplog.text and f"{manifest}:7" in caplog.text and "broken.wav" in caplog.text
    assert summary["clips"] == 5 and summary["skipped"] == 2 and summary["files"] == 10 and summary["lines"] == 15
    assert summary["skipped_by_reason"] == {"invalid JSON": 1, "unusable audio": 1}
    assert summary["applied"]["speed"] == 10 and summary["manifest"] == str(out / "in.jsonl")
    records = {r.key: r for r in read_manifest(out / "in.jsonl")}
    assert set(records) == {f"{k}{s}" for k in ("c0", "c1", "c2", "c3", "cropped") for s in ("", "~aug1", "~aug2")}
    assert records["c1"].source == str(tmp_path / "audio" / "c1.wav") and records["c1"].extra == {"speaker": "s1"}
    aug = records["cropped~aug2"]
    info = sf.info(aug.source)
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    assert aug.offset == 0.0 and aug.duration == pytest.approx(1.0 / 1.1, abs=1e-3) == pytest.approx(info.duration, abs=1e-3)
    assert aug.extra["augment"]["speed"] == {"factor": 1.1} and aug.target == "x"
    assert records["c2~aug1"].extra["speaker"] == "s0" and Path(aug.source).is_relative_to(out / "wav")


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_whatever_the_worker_count(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = _manifest(tmp_path, 6)
    options = ["--augment", "speed:0.5,room:0.5,noise:0.7,telephone:0.5", "--copies", "2", "--seed", "11",
               "--param", "room.pool=2", "--param", "room.rt60=0.2,0.3", "--param", "room.length=3,4",
               "--param", "room.width=3,4", "--param", "room.height=2.5,3", "--param", "noise.sources=colored,babble"]
    for name, workers in (("one", "1"), ("two", "2"), ("again", "1")):
        assert main(["prepare", "augment", str(manifest), "--out", str(tmp_path / name), "--workers", workers, *options]) == 0
    one, two = _tree(tmp_path / "one"), _tree(tmp_path / "two")
    assert len(one) > 3 and one == two == _tree(tmp_path / "again")
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(summary["applied"]) == {"speed", "room", "noise", "telephone"} and all(summary["applied"].values())
    options[options.index("11")] = "12"
    assert main(["prepare", "augment", str(manifest), "--out", str(tmp_path / "other"), "--workers", "1", *options]) == 0
    assert _tree(tmp_path / "other") != one


def test_a_copy_with_nothing_drawn_points_at_the_input(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, 2)
    assert main(["prepare", "augment", str(manifest), "--out", str(tmp_path / "out"), "--augment", "noise:0",
                 "--workers", "1", "--name", "plain"]) == 0
    records = read_manifest(tmp_path / "out" / "plain.jsonl")
    assert [r.key for r in records] == ["c0~aug1", "c1~aug1"]
    assert records[0].source == str(tmp_path / "audio" / "c0.wav") and records[0].extra["augment"] == {}
    assert not (tmp_path / "out" / "wav").exists()


def test_output_never_overwrites_the_input_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = _manifest(tmp_path, 2)
    before = manifest.read_bytes()
    assert main(["prepare", "augment", str(manifest), "--out", str(tmp_path), "--augment", "speed"]) == 2
    assert "would overwrite the input; pass --name" in capsys.readouterr().err and manifest.read_bytes() == before


def test_music_on_hold_from_the_installed_asset(tmp_path: Path) -> None:
    from slamkit.assets import AssetMissingError, asset_path

    try:
        asset_path("asterisk-moh")
    except AssetMissingError as err:
        pytest.skip(f"asset not installed (`slamkit assets install asterisk-moh`): {err}")
    wave = _tone(2.0)
    out, info = _apply("noise", wave, ("noise.sources=moh", "noise.snr_db=10"))
    assert info["kind"] == "moh" and info["file"].endswith(".wav") and info["snr_db"] == 10.0
    noise = out.astype(np.float64) - wave
    assert abs(10 * np.log10(np.mean(np.square(wave, dtype=np.float64)) / np.mean(noise**2)) - 10.0) < 1.0
    assert rms(noise) > 0
