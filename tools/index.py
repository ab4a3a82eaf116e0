"""Which tool module defines each tool, read from the source (``ast``) without importing it.

Importing every tool module (``tools.base.load_catalog``) costs more than a read command
spends on its work, so the dispatcher imports only the module of the tool being called.
tests/test_tool_index.py checks this map against ``load_catalog()`` and ``INTERNAL``.
"""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

_TOOLS_DIR = Path(__file__).resolve().parent


def catalog_modules() -> list[str]:
    """The module names ``tools.base.load_catalog`` imports, read from its source."""
    tree = ast.parse((_TOOLS_DIR / "base.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == "load_catalog":
            return [
                alias.name
                for stmt in ast.walk(node)
                if isinstance(stmt, ast.ImportFrom) and stmt.module == "tools"
                for alias in stmt.names
            ]
    raise RuntimeError("tools/base.py has no load_catalog(); cannot index tools statically")


def _is_tool(func: ast.FunctionDef) -> bool:
    return any(
        isinstance(dec, ast.Call) and isinstance(dec.func, ast.Name) and dec.func.id == "tool"
        for dec in func.decorator_list
    )


@lru_cache(maxsize=1)
def tool_modules() -> dict[str, str]:
    """Tool name (catalog and internal steps alike) -> the ``tools.*`` module defining it."""
    out: dict[str, str] = {}
    for module in catalog_modules():
        tree = ast.parse((_TOOLS_DIR / f"{module}.py").read_text())
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and _is_tool(node):
                out[node.name] = f"tools.{module}"
    return out
