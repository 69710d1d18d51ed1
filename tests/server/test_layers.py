"""The layers import downwards only: policy imports nothing else of pushq, the SDK
nothing of the server, and the server's core (dispatcher, settle, maintenance,
scheduler, store) nothing of its HTTP API."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PUSHQ = Path(__file__).resolve().parents[2] / "pushq"


def imported_modules(path: Path) -> set[str]:
    """Absolute names of the pushq modules `path` imports."""
    package = ".".join(path.relative_to(PUSHQ.parent).with_suffix("").parts[:-1])
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                found.add(".".join(base + ([node.module] if node.module else [])))
            elif node.module:
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.split(".")[0] == "pushq"}


def modules(folder: str, *names: str) -> list[Path]:
    if names:
        return [PUSHQ / folder / name for name in names]
    return sorted((PUSHQ / folder).rglob("*.py")) if folder else []


SDK = [PUSHQ / name for name in ("client.py", "worker.py", "signing.py", "errors.py")]
CORE = modules(
    "server", "dispatcher.py", "settle.py", "maintenance.py", "scheduler.py", "delivery.py"
) + modules("server/store")


@pytest.mark.parametrize("path", modules("policy"), ids=lambda p: p.name)
def test_policy_imports_nothing_else_of_pushq(path: Path) -> None:
    assert {m for m in imported_modules(path) if not m.startswith("pushq.policy")} == set()


@pytest.mark.parametrize("path", SDK, ids=lambda p: p.name)
def test_the_sdk_imports_nothing_of_the_server(path: Path) -> None:
    assert {m for m in imported_modules(path) if m.startswith("pushq.server")} == set()


@pytest.mark.parametrize("path", CORE, ids=lambda p: str(p.relative_to(PUSHQ)))
def test_the_server_core_imports_nothing_of_the_http_api(path: Path) -> None:
    upward = {"pushq.server.api", "pushq.server.app", "pushq.server.serve"}
    assert {
        m
        for m in imported_modules(path)
        if m.split(".")[:3] and ".".join(m.split(".")[:3]) in upward
    } == set()
