"""Module-scope analysis of a notebook's code for the pipeline drafter: which variable holds
the fitted model at the end (``m.fit(...)``, ``m = X().fit(...)``, ``m = make_model(...)``
where the function returns what it fitted), and which top-level constants feed hyperparameters.
"""

from __future__ import annotations

import ast
from collections import Counter
from collections.abc import Iterator

SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)


def module_scope(nodes: list[ast.stmt]) -> Iterator[ast.AST]:
    """Every node that runs in the notebook's own scope, in source order; function, class and
    lambda bodies are skipped (their names are theirs), the def nodes themselves are kept."""
    stack: list[ast.AST] = list(reversed(nodes))
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, SCOPES):
            continue
        stack.extend(reversed(list(ast.iter_child_nodes(node))))


def function_scope(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> Iterator[ast.AST]:
    """The nodes of ``fn``'s own body (nested defs skipped, as for the module)."""
    return module_scope(fn.body)


def _fit_call(node: ast.AST) -> ast.Call | None:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        if node.func.attr == "fit":
            return node
    return None


def _supervised(call: ast.Call) -> bool:
    # fit(X, y) over fit(X): a scaler or vectorizer fitted after the model must not win
    return len(call.args) >= 2 or any(kw.arg == "y" for kw in call.keywords)


def _names(target: ast.expr) -> list[str | None]:
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, ast.Tuple | ast.List):
        return [t.id if isinstance(t, ast.Name) else None for t in target.elts]
    return [None]


def _fitted(nodes: Iterator[ast.AST], returns: dict[str, int]) -> list[tuple[str, bool, int]]:
    """(name, supervised, line) for each fit seen in ``nodes``: ``name.fit(...)``,
    ``name = <...>.fit(...)`` and ``name = f(...)`` where f returns a fitted model."""
    out: list[tuple[str, bool, int]] = []
    for node in nodes:
        call = _fit_call(node)
        if call is not None and isinstance(call.func.value, ast.Name):  # type: ignore[attr-defined]
            out.append((call.func.value.id, _supervised(call), node.lineno))  # type: ignore[attr-defined]
        if not isinstance(node, ast.Assign) or len(node.targets) != 1:
            continue
        names = _names(node.targets[0])
        value = node.value
        call = _fit_call(value)
        if call is not None and len(names) == 1 and names[0]:
            out.append((names[0], _supervised(call), node.lineno))
        elif isinstance(value, ast.Call) and isinstance(value.func, ast.Name):
            index = returns.get(value.func.id)
            if index is None:
                continue
            pick = names[0] if index < 0 and len(names) == 1 else None
            if index >= 0 and index < len(names):
                pick = names[index]
            if pick:
                out.append((pick, True, node.lineno))
    return out


def _returns_model(
    fn: ast.FunctionDef | ast.AsyncFunctionDef, returns: dict[str, int]
) -> int | None:
    """-1: ``fn`` returns a model it fitted; i: it returns a tuple whose item i is one; None."""
    nodes = list(function_scope(fn))
    fitted = {name for name, _, _ in _fitted(iter(nodes), returns)}
    for node in nodes:
        if not isinstance(node, ast.Return) or node.value is None:
            continue
        value = node.value
        if _fit_call(value) is not None or (isinstance(value, ast.Name) and value.id in fitted):
            return -1
        if isinstance(value, ast.Tuple):
            for i, item in enumerate(value.elts):
                if isinstance(item, ast.Name) and item.id in fitted:
                    return i
    return None


def find_model(body: list[ast.stmt]) -> str | None:
    """The module-scope variable that holds the last fitted model (supervised fits first)."""
    returns: dict[str, int] = {}
    for node in module_scope(body):  # in order: a function may call one defined before it
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            index = _returns_model(node, returns)
            if index is not None:
                returns[node.name] = index
            else:
                returns.pop(node.name, None)
    fits = _fitted(module_scope(body), returns)
    supervised = [f for f in fits if f[1]]
    chosen = (supervised or fits)[-1:] if fits else []
    return chosen[0][0] if chosen else None


def store_counts(body: list[ast.stmt]) -> Counter[str]:
    """How often each name is bound in the notebook's scope (a constant bound once can become a
    config field without changing what the code does; one rebound later cannot)."""
    counts: Counter[str] = Counter()
    for node in module_scope(body):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            counts[node.id] += 1
        elif isinstance(node, SCOPES[:3]):
            counts[node.name] += 1  # type: ignore[union-attr]
        elif isinstance(node, ast.alias):
            counts[(node.asname or node.name).split(".")[0]] += 1
        elif isinstance(node, ast.Global | ast.Nonlocal):
            counts.update({n: 2 for n in node.names})  # shared with functions: not a constant
    return counts


def all_names(body: list[ast.stmt]) -> set[str]:
    """Every identifier the code uses anywhere (names, arguments, attributes' roots)."""
    names: set[str] = set()
    for node in ast.walk(ast.Module(body=body, type_ignores=[])):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, SCOPES[:3]):
            names.add(node.name)  # type: ignore[union-attr]
        elif isinstance(node, ast.alias):
            names.add((node.asname or node.name).split(".")[0])
    return names
