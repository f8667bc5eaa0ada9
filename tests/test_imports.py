"""The package's import graph: arrows point one way and nothing imports in a circle.

Every ``import``/``from … import`` of a slamkit module anywhere in a file counts (also those inside
functions), so a lazy import cannot hide a wrong-way arrow or a cycle. Failures name the files.
"""

from __future__ import annotations

import ast
from pathlib import Path

import slamkit

SRC = Path(slamkit.__file__).resolve().parent

# Each room of the house and the rooms it may import from (besides itself). Top-level modules
# (config.py, registry.py, batch.py, …) are rooms of their own.
ALLOWED: dict[str, set[str]] = {
    "registry": set(),
    "fingerprint": set(),
    "recipe_files": set(),
    "config": {"registry", "recipe_files"},
    "batch": set(),
    "assets": {"registry"},
    "eval": {"registry"},
    "data": {"config", "registry", "batch", "fingerprint", "eval", "assets"},
    "models": {"config", "registry", "batch", "fingerprint", "assets"},
    "prepare": {"config", "registry", "data", "eval", "assets"},
    "train": {"config", "registry", "batch", "data", "models", "eval"},
    "infer": {"config", "registry", "batch", "data", "models", "eval", "train", "assets"},
    "app": {"config", "registry", "batch", "data", "models", "eval", "train", "infer", "prepare", "assets", "recipe_files"},
    "serve": {"config", "registry", "batch", "data", "models", "eval", "train", "infer", "assets"},
    "cli": {"config", "registry", "batch", "data", "models", "eval", "train", "infer", "prepare", "assets", "app", "serve", "recipe_files"},
    "__main__": {"cli"},
}


def module_name(path: Path) -> str:
    """``slamkit/models/encoders/base.py`` -> ``slamkit.models.encoders.base`` (packages: their __init__)."""
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """slamkit modules ``path`` imports (``from pkg import mod`` counts as ``pkg.mod`` when that is a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("slamkit"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("slamkit"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in MODULES else node.module)
    return found


FILES = {module_name(p): p for p in sorted(SRC.rglob("*.py"))}
MODULES = set(FILES)
GRAPH = {name: imports_of(path) - {name} for name, path in FILES.items()}


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_room_is_known() -> None:
    unknown = sorted({room(m) for m in MODULES} - set(ALLOWED) - {"__init__"})
    assert not unknown, f"add these packages to ALLOWED with the rooms they may import: {unknown}"


def test_arrows_point_one_way() -> None:
    wrong = [f"{FILES[src].relative_to(SRC.parent)} imports {dst} ({room(src)} -> {room(dst)})"
             for src, dsts in GRAPH.items() for dst in sorted(dsts)
             if room(dst) != room(src) and room(src) != "__init__" and room(dst) not in ALLOWED.get(room(src), set())]
    assert not wrong, "wrong-way imports:\n" + "\n".join(wrong)


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of nodes (first == last), or None."""
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_cycle_between_files() -> None:
    cycle = _cycle({m: {d for d in deps if d in MODULES} for m, deps in GRAPH.items()})
    assert cycle is None, "import cycle: " + " -> ".join(str(FILES[m].relative_to(SRC.parent)) for m in cycle)


def test_no_cycle_between_rooms() -> None:
    rooms: dict[str, set[str]] = {}
    for src, dsts in GRAPH.items():
        if room(src) != "__init__":
            rooms.setdefault(room(src), set()).update(room(d) for d in dsts if room(d) not in (room(src), "__init__"))
    cycle = _cycle(rooms)
    assert cycle is None, "packages import each other in a circle: " + " -> ".join(cycle)


def test_the_checker_sees_wrong_arrows_and_cycles() -> None:
    """The checks can fail: a made-up graph with a cycle and a models -> data arrow is caught."""
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
    assert "data" not in ALLOWED["models"] and "models" not in ALLOWED["data"]


def test_layout_doc_names_every_room() -> None:
    """docs/layout.md describes every room the import rules know (so the map cannot lose one)."""
    text = (SRC.parents[1] / "docs" / "layout.md").read_text()
    missing = [r for r in ALLOWED if r != "__main__" and f"`{r}/`" not in text and f"`{r}.py`" not in text]
    assert not missing, f"docs/layout.md does not describe: {missing}"
