"""The recipes ship as package data: the wheel holds them and a non-editable install finds them by name.

The wheel is built from a copy of the sources (so no ``build/`` folder is left in, or reused from,
the checkout), installed with ``pip install --target`` and run with only that folder on
``PYTHONPATH`` and a working directory outside the checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from slamkit.config import ConfigError, load_config
from slamkit.recipe_files import RecipeNotFoundError, list_recipes, recipes_dir, resolve_recipe

REPO = Path(__file__).resolve().parents[1]
REPO_RECIPES = sorted(p.name for p in (REPO / "recipes").glob("*.yaml"))


# ---------------------------------------------------------------------------------------------
# resolve_recipe (fast)
# ---------------------------------------------------------------------------------------------


def test_repo_recipes_folder_is_the_packaged_one():
    assert (REPO / "recipes").is_symlink()
    assert (REPO / "recipes").resolve() == recipes_dir()
    assert "tiny_asr" in list_recipes()
    assert list_recipes() == [Path(n).stem for n in REPO_RECIPES]


@pytest.mark.parametrize("name", ["recipes/tiny_asr.yaml", "tiny_asr.yaml", "tiny_asr", "./recipes/tiny_asr.yaml"])
def test_name_resolves_to_packaged_recipe(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no recipes/ folder here
    assert resolve_recipe(name) == recipes_dir() / "tiny_asr.yaml"


def test_existing_path_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "recipes").mkdir()
    mine = tmp_path / "recipes" / "tiny_asr.yaml"
    mine.write_text("train:\n  max_steps: 7\n")
    assert resolve_recipe("recipes/tiny_asr.yaml") == Path("recipes/tiny_asr.yaml")
    assert resolve_recipe(mine) == mine
    assert load_config("recipes/tiny_asr.yaml").train.max_steps == 7
    (tmp_path / "tiny_asr").write_text("train:\n  max_steps: 9\n")
    assert resolve_recipe("tiny_asr") == Path("tiny_asr")


def test_unknown_name_lists_the_recipes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RecipeNotFoundError) as info:
        resolve_recipe("no_such_recipe")
    msg = str(info.value)
    assert "no_such_recipe" in msg and str(recipes_dir() / "no_such_recipe.yaml") in msg
    assert "tiny_asr" in msg and "demo_asr_tiny_en" in msg
    with pytest.raises(ConfigError, match="packaged recipes: .*tiny_asr"):
        load_config("recipes/no_such_recipe.yaml")


def test_other_folders_are_only_files(tmp_path):
    # runs/x/config.yaml that is missing is not looked up among the recipes
    with pytest.raises(RecipeNotFoundError) as info:
        resolve_recipe(tmp_path / "tiny_asr.yaml")
    assert str(recipes_dir()) not in str(info.value).split("packaged recipes")[0]


def test_load_config_by_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_config("tiny_asr") == load_config(REPO / "recipes" / "tiny_asr.yaml")


def test_demo_recipe_is_packaged():
    from slamkit.app.demo import recipe_path

    for encoder in ("tiny.en", "base"):
        assert recipe_path(encoder).parent == recipes_dir()


# ---------------------------------------------------------------------------------------------
# The wheel
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Build the wheel offline from a copy of pyproject.toml, README.md and src/."""
    root = tmp_path_factory.mktemp("wheel")
    tree = root / "tree"
    tree.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, tree / name)
    shutil.copytree(REPO / "src", tree / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    out = root / "dist"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "-w", str(out), "."],
        cwd=tree, capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    wheels = list(out.glob("slamkit-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_holds_every_recipe(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert REPO_RECIPES
    missing = [n for n in REPO_RECIPES if f"slamkit/recipes/{n}" not in names]
    assert not missing, f"recipes missing from {wheel.name}: {missing}"
    assert not any(n.startswith("recipes/") for n in names)  # inside the package, not top level


def test_installed_wheel_finds_recipes(wheel, tmp_path):
    site = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", str(site), str(wheel)],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    work = tmp_path / "elsewhere"  # no recipes/ of the checkout visible from here
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1"}
    code = (
        "import slamkit, slamkit.recipe_files as r; from pathlib import Path\n"
        f"site = Path({str(site)!r}).resolve()\n"
        "assert Path(slamkit.__file__).resolve().is_relative_to(site), slamkit.__file__\n"
        "want = site / 'slamkit' / 'recipes' / 'tiny_asr.yaml'\n"
        "for name in ('recipes/tiny_asr.yaml', 'tiny_asr', 'tiny_asr.yaml'):\n"
        "    got = r.resolve_recipe(name).resolve()\n"
        "    assert got == want, (name, got)\n"
        "from slamkit.config import load_config\n"
        "load_config('recipes/tiny_asr.yaml'); load_config('demo_asr_tiny_en')\n"
        "print(len(r.list_recipes()))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=work, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.split()[-1] == str(len(REPO_RECIPES))
    proc = subprocess.run([sys.executable, "-m", "slamkit", "demo", "--help"], cwd=work, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "demo" in proc.stdout


def test_no_build_artefacts_or_large_files_are_tracked():
    """Only the shipped reference weights (11 MB) may be large; wheels and archives are never committed."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.fail("this test reads `git ls-files`: run it in a git checkout")
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout.decode().split("\0")
    artefacts = [f for f in files if f.endswith((".whl", ".tar.gz", ".zip", ".deb", ".egg"))]
    assert not artefacts, f"build artefacts tracked by git: {artefacts}"
    large = [f for f in files if f and (REPO / f).is_file() and (REPO / f).stat().st_size > 12 * 2**20]
    assert not large, f"files over 12 MiB tracked by git: {large}"
