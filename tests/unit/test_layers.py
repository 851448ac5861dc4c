"""The package layers: every import of the gateway points down (or within its own layer),
and no two modules import each other, however indirectly.

``cli → serve → stages/spool → oauth/forward/state/observe → config/errors``. Imports inside
functions count like the others. Imports under ``if TYPE_CHECKING:`` never run, so they may
close a loop, but they still point down: an annotation naming a higher layer is a real
dependency hidden. ``keys.py`` is the one exception: it holds the application keys and the
types they carry, and nothing else.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import gateway

PACKAGE = Path(gateway.__file__).parent

LAYERS: dict[str, int] = {
    "config": 0, "errors": 0, "mediatype": 0, "peer": 0, "keys": 0,
    "oauth": 1, "forward": 1, "state": 1, "observe": 1,
    "stages": 2, "spool": 2,
    "serve": 3,
    "cli": 4, "tools": 4, "__main__": 4, "__init__": 4,
}
# Annotation-only imports allowed to point up: the app keys name the types they carry.
TYPES_ONLY_UPWARD = {"keys.py"}


def _part(module: str) -> str:
    """``gateway.spool.sqlite.store`` → ``spool``; ``gateway.errors`` → ``errors``."""
    return module.split(".")[1] if module.count(".") else module


def _name(path: Path) -> str:
    """``…/gateway/spool/sqlite/store.py`` → ``gateway.spool.sqlite.store``."""
    parts = ("gateway", *path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


KNOWN = {_name(p) for p in _modules()}


def _imports(path: Path, *, type_checking: bool) -> list[str]:
    """The gateway modules ``path`` imports: at run time (function level included), or
    with ``type_checking`` only those under ``if TYPE_CHECKING:``. ``from a import b``
    names the module ``a.b`` when there is one."""
    found: list[str] = []
    package = _name(path) if path.name == "__init__.py" else _name(path).rpartition(".")[0]

    def add(base: str, names: list[str]) -> None:
        subs = [f"{base}.{n}" for n in names if f"{base}.{n}" in KNOWN]
        found.extend(subs or [base])

    def visit(node: ast.AST, guarded: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = guarded
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                inside = True
            if isinstance(child, ast.ImportFrom) and inside == type_checking:
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[:len(package.split(".")) - child.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                if base == "gateway" or base.startswith("gateway."):
                    add(base, [a.name for a in child.names])
            elif isinstance(child, ast.Import) and inside == type_checking:
                found.extend(a.name for a in child.names if a.name.startswith("gateway."))
            visit(child, inside)

    visit(ast.parse(path.read_text(encoding="utf-8")), False)
    return found


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path: Path) -> None:
    rel = path.relative_to(PACKAGE)
    own = rel.parts[0].removesuffix(".py")
    assert own in LAYERS, f"{rel}: a package the layer table does not know"
    checked = [(m, "") for m in _imports(path, type_checking=False)]
    if str(rel) not in TYPES_ONLY_UPWARD:
        checked += [(m, " under TYPE_CHECKING") for m in _imports(path, type_checking=True)]
    for module, how in checked:
        other = _part(module)
        assert other in LAYERS, f"{rel} imports {module}: not in the layer table"
        assert LAYERS[other] <= LAYERS[own], (
            f"{rel} ({own}, layer {LAYERS[own]}) imports {module}{how} "
            f"({other}, layer {LAYERS[other]}): imports must point down")


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph``, as the modules along it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def walk(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for other in sorted(graph.get(module, ())):
            if state.get(other) == 1:
                return [*path[path.index(other):], other]
            if other not in state and (found := walk(other)) is not None:
                return found
        path.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state and (found := walk(module)) is not None:
            return found
    return None


def test_no_import_cycle() -> None:
    graph = {_name(p): {m for m in _imports(p, type_checking=False) if m in KNOWN}
             for p in _modules()}
    cycle = _cycle(graph)
    assert cycle is None, "an import cycle at run time: " + " → ".join(cycle or [])


def test_the_cycle_check_finds_cycles() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_top_level_is_thin() -> None:
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 8, top
