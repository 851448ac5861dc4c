"""The package layers: every import of the gateway points down (or within its own layer).

``cli → serve → stages/spool → oauth/forward/state/observe → config/errors``. Imports under
``if TYPE_CHECKING:`` are annotations only and not counted; ``keys.py`` holds nothing else.
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


def _part(module: str) -> str:
    """``gateway.spool.store`` → ``spool``; ``gateway.errors`` → ``errors``."""
    return module.split(".")[1] if module.count(".") else module


def _runtime_imports(tree: ast.AST) -> list[str]:
    found: list[str] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                if child.module == "gateway":
                    found.extend(f"gateway.{a.name}" for a in child.names)
                elif child.module.startswith("gateway."):
                    found.append(child.module)
            elif isinstance(child, ast.Import):
                found.extend(a.name for a in child.names if a.name.startswith("gateway."))
            visit(child)

    visit(tree)
    return found


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path: Path) -> None:
    rel = path.relative_to(PACKAGE)
    own = rel.parts[0].removesuffix(".py")
    assert own in LAYERS, f"{rel}: a package the layer table does not know"
    for module in _runtime_imports(ast.parse(path.read_text(encoding="utf-8"))):
        other = _part(module)
        assert other in LAYERS, f"{rel} imports {module}: not in the layer table"
        assert LAYERS[other] <= LAYERS[own], (
            f"{rel} ({own}, layer {LAYERS[own]}) imports {module} "
            f"({other}, layer {LAYERS[other]}): imports must point down")


def test_top_level_is_thin() -> None:
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 8, top
