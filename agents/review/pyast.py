"""What the Python checks share: parsing a changed file (whole, or hunk by hunk when only the
diff is known), import aliases, dotted call names, and constant resolution."""

from __future__ import annotations

import ast
import re
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field

from agents.review.diff import ChangedFile

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


@dataclass
class Module:
    """A parsed piece of a changed file: ``offset`` is added to every node's line number."""

    tree: ast.Module
    offset: int
    imports: dict[str, str]
    constants: dict[str, object]
    functions: dict[str, ast.FunctionDef | ast.AsyncFunctionDef]
    classes: dict[str, ast.ClassDef]
    parents: dict[int, ast.AST] = field(default_factory=dict)

    def line(self, node: ast.AST) -> int:
        return getattr(node, "lineno", 1) + self.offset

    def end_line(self, node: ast.AST) -> int:
        return (getattr(node, "end_lineno", None) or getattr(node, "lineno", 1)) + self.offset

    def qualname(self, func: ast.AST) -> str:
        """``mlflow.pyfunc.load_model`` for ``pyfunc.load_model`` after ``from mlflow import
        pyfunc``; the attribute chain as written when its root is not an import."""
        parts: list[str] = []
        node = func
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if isinstance(node, ast.Name):
            parts.append(self.imports.get(node.id, node.id))
        elif isinstance(node, ast.Call):
            parts.append(self.qualname(node.func) + "()")
        else:
            parts.append("?")
        return ".".join(reversed(parts))

    def const_str(self, node: ast.AST | None) -> str | None:
        """A string constant, or a module-level name bound to one."""
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name):
            value = self.constants.get(node.id)
            return value if isinstance(value, str) else None
        return None

    def parent(self, node: ast.AST) -> ast.AST | None:
        return self.parents.get(id(node))

    def enclosing_scope(self, node: ast.AST) -> ast.AST:
        cur = self.parent(node)
        while cur is not None and not isinstance(
            cur, ast.FunctionDef | ast.AsyncFunctionDef | ast.Module
        ):
            cur = self.parent(cur)
        return cur or self.tree

    def statement(self, node: ast.AST) -> ast.AST:
        cur: ast.AST = node
        while not isinstance(cur, ast.stmt):
            up = self.parent(cur)
            if up is None:
                break
            cur = up
        return cur


def _index(tree: ast.Module, offset: int) -> Module:
    imports: dict[str, str] = {}
    constants: dict[str, object] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    imports[a.asname] = a.name
                else:
                    root = a.name.split(".")[0]
                    imports.setdefault(root, root)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                imports[a.asname or a.name] = f"{node.module}.{a.name}"
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            for t in node.targets:
                if isinstance(t, ast.Name):
                    constants[t.id] = node.value.value
    functions = {
        n.name: n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    parents = {id(child): node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    return Module(tree, offset, imports, constants, functions, classes, parents)


def parse_modules(cf: ChangedFile) -> tuple[list[Module], list[str]]:
    """The whole new file when its text is known, else each hunk's new side that parses."""
    if cf.new_text is not None:
        try:
            return [_index(ast.parse(cf.new_text), 0)], []
        except (SyntaxError, ValueError) as exc:
            return [], [
                f"{cf.path}: not valid Python at line {getattr(exc, 'lineno', '?')}: "
                f"{getattr(exc, 'msg', exc)}; Python checks skipped"
            ]
    out, skipped = [], 0
    for h in cf.hunks:
        side = h.new_side()
        if not side or not any(ln.kind == "+" for ln in side):
            continue
        text = textwrap.dedent("\n".join(ln.text for ln in side))
        first = side[0].new_no or h.new_start
        module = _try_parse(text, first - 1)
        if module is None:
            skipped += 1
        else:
            out.append(module)
    notes = []
    if skipped:
        notes.append(
            f"{cf.path}: {skipped} hunk(s) could not be parsed without the whole file; review "
            "from the repository (--git BASE..HEAD, or --diff inside the checked-out tree) for "
            "a complete check"
        )
    return out, notes


def _try_parse(text: str, offset: int) -> Module | None:
    lines = text.splitlines()
    # A hunk may start or end inside a statement: drop a few lines at either end.
    for start in range(min(4, len(lines))):
        for end in range(len(lines), max(start, len(lines) - 4), -1):
            chunk = "\n".join(lines[start:end])
            try:
                return _index(ast.parse(textwrap.dedent(chunk)), offset + start)
            except (SyntaxError, ValueError):
                continue
    return None


def calls(module: Module, root: ast.AST | None = None) -> Iterator[ast.Call]:
    for node in ast.walk(root or module.tree):
        if isinstance(node, ast.Call):
            yield node


def attr_name(func: ast.AST) -> str:
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return ""


def arg(call: ast.Call, position: int, keyword: str) -> ast.AST | None:
    for kw in call.keywords:
        if kw.arg == keyword:
            return kw.value
    if len(call.args) > position and not isinstance(call.args[position], ast.Starred):
        return call.args[position]
    return None


def keyword(call: ast.Call, name: str) -> ast.AST | None:
    return next((kw.value for kw in call.keywords if kw.arg == name), None)


def name_tokens(name: str) -> list[str]:
    """``X_test`` -> [x, test]; ``testDF`` -> [test, df]."""
    return [t.lower() for t in re.split(r"[_\W]+", _CAMEL.sub("_", name)) if t]


def names_in(node: ast.AST) -> Iterator[str]:
    """Variable names a value expression reads (``X_test``, ``df.holdout`` -> df, holdout)."""
    for n in ast.walk(node):
        if isinstance(n, ast.Name):
            yield n.id
        elif isinstance(n, ast.Attribute):
            yield n.attr
        elif isinstance(n, ast.Subscript):
            s = n.slice
            if isinstance(s, ast.Constant) and isinstance(s.value, str):
                yield s.value


def source_key(cf: ChangedFile, module: Module, node: ast.AST) -> str:
    """A finding's stable key: the node's source text with whitespace squeezed."""
    try:
        text = ast.unparse(node)
    except Exception:  # unparse of an odd node: fall back to its type
        text = type(node).__name__
    return " ".join(text.split())[:200]


def dict_keys(
    module: Module, node: ast.AST | None, scope: ast.AST | None = None
) -> set[str] | None:
    """The string keys of a dict-valued expression, or None when they cannot be known."""
    if node is None:
        return None
    if isinstance(node, ast.Dict):
        keys: set[str] = set()
        for k, v in zip(node.keys, node.values, strict=True):
            if k is None:  # {**other}
                inner = dict_keys(module, v, scope)
                if inner is None:
                    return None
                keys |= inner
            elif (s := module.const_str(k)) is not None:
                keys.add(s)
        return keys
    if isinstance(node, ast.Call) and module.qualname(node.func) == "dict":
        if node.args:
            return None
        return (
            {kw.arg for kw in node.keywords if kw.arg}
            if all(kw.arg for kw in node.keywords)
            else None
        )
    if isinstance(node, ast.Name):
        return _name_keys(module, node.id, scope or module.tree)
    return None


def _name_keys(module: Module, name: str, scope: ast.AST) -> set[str] | None:
    keys: set[str] | None = None
    for n in ast.walk(scope):
        if isinstance(n, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in n.targets
        ):
            found = dict_keys(module, n.value, None) if not isinstance(n.value, ast.Name) else None
            if found is None:
                return None
            keys = (keys or set()) | found
        elif isinstance(n, ast.Assign):
            for t in n.targets:
                if (
                    isinstance(t, ast.Subscript)
                    and isinstance(t.value, ast.Name)
                    and t.value.id == name
                    and (s := module.const_str(t.slice)) is not None
                ):
                    keys = (keys or set()) | {s}
        elif (
            isinstance(n, ast.Call)
            and isinstance(n.func, ast.Attribute)
            and n.func.attr == "update"
            and isinstance(n.func.value, ast.Name)
            and n.func.value.id == name
        ):
            found = (
                dict_keys(module, n.args[0], None)
                if n.args
                else {k.arg for k in n.keywords if k.arg}
            )
            if found is None:
                return None
            keys = (keys or set()) | found
    if keys is None and scope is not module.tree and not isinstance(scope, _TopLevel):
        # Not bound in the function: a module-level binding (statements outside any def).
        top = [
            s
            for s in module.tree.body
            if not isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        ]
        return _name_keys(module, name, _TopLevel(body=top, type_ignores=[]))
    return keys


class _TopLevel(ast.Module):
    """The module's own statements, without function and class bodies."""
