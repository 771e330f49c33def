"""The import direction of the architecture, checked by walking the source with ``ast``.

``bot -> handlers -> {routing, storage}``; ``routing`` is pure (no I/O, no async, no sibling imports).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ALLOWED = {
    "routing": set(),
    "storage": {"routing"},
    "handlers": {"routing", "storage"},
    "bot": {"handlers", "routing", "storage"},
}
IO_MODULES = {"aiohttp", "asyncio", "sqlalchemy", "socket", "requests", "subprocess", "os", "logging", "urllib"}


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_point_one_way(package: str) -> None:
    forbidden = set(ALLOWED) - ALLOWED[package] - {package}
    offenders = {
        str(path.relative_to(REPO)): sorted(imports(path) & forbidden)
        for path in (REPO / package).rglob("*.py")
        if imports(path) & forbidden
    }
    assert offenders == {}


def test_routing_is_pure() -> None:
    for path in (REPO / "routing").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        assert not imports(path) & IO_MODULES, f"{path.name} imports I/O modules"
        assert not any(isinstance(n, (ast.AsyncFunctionDef, ast.Await)) for n in ast.walk(tree)), f"{path.name} is async"
