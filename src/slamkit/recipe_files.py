"""The YAML recipes shipped inside the package, and how a recipe named on the command line is found.

The recipes live in ``slamkit/recipes/`` (package data, so a non-editable install has them too);
the repository's top-level ``recipes`` is a symlink to that folder. :func:`resolve_recipe` takes
what a user typed: an existing file wins; otherwise ``recipes/NAME.yaml``, ``NAME.yaml`` or
``NAME`` is looked up among the packaged recipes.
"""

from __future__ import annotations

from pathlib import Path

SUFFIX = ".yaml"


class RecipeNotFoundError(FileNotFoundError):
    """Neither a file nor the name of a packaged recipe."""


def recipes_dir() -> Path:
    """The folder of packaged recipes (``slamkit/recipes``)."""
    return Path(__file__).resolve().parent / "recipes"


def list_recipes() -> list[str]:
    """Names (without ``.yaml``) of the packaged recipes, sorted."""
    return sorted(p.stem for p in recipes_dir().glob(f"*{SUFFIX}") if p.is_file())


def resolve_recipe(path: str | Path) -> Path:
    """The config file ``path`` means: the file itself if it exists, else the packaged recipe it names.

    ``recipes/NAME.yaml``, ``NAME.yaml`` and ``NAME`` name the packaged ``recipes/NAME.yaml``; a path
    in any other folder is only ever taken as a file. Raises :class:`RecipeNotFoundError`, naming what
    was tried and the packaged recipes, when nothing matches.
    """
    given = Path(path)
    if given.is_file():
        return given
    tried = [str(given)]
    if given.parent in (Path("."), Path("recipes")) and given.name not in ("", ".", ".."):
        name = given.name if given.name.endswith(SUFFIX) else given.name + SUFFIX
        candidate = recipes_dir() / name
        if candidate.is_file():
            return candidate
        tried.append(str(candidate))
    names = ", ".join(list_recipes()) or "(none)"
    raise RecipeNotFoundError(
        f"config file not found: {path} (tried {', '.join(tried)}); packaged recipes: {names}"
    )
