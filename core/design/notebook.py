"""Notebook -> training pipeline: a reviewed-by-a-person draft of a runnable script.

Code cells are kept in order (``ast``-checked); markdown/raw cells, IPython magics and shell
lines (listed in the warnings and the script's notes), and display-only statements are dropped;
an ``if __name__ == "__main__":`` block runs as the body. Literal file paths given to readers,
literal keyword arguments to estimators and splitters (``n_estimators=100``) and top-level
constants passed as such (``C = 0.5`` ... ``LogisticRegression(C=C)``) become fields of a typed
pydantic ``Config`` with a CLI (``--param value``, ``--config file.json``). The script runs the
code inside an MLflow run with the honesty tags, the dataset digest, the environment, the config
as params and the fitted model (skops), found by ``core.design.notebook_scope``. A notebook whose
draft could not run (a cell that is not Python, no model, code a function cannot hold) is
refused with the cell and the reason; the rendered script is compiled before it is returned.
"""

from __future__ import annotations

import ast
import keyword
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from core.design.notebook_scope import all_names, find_model, module_scope, store_counts
from core.design.notebook_template import render
from core.errors import InvalidInput

READERS = {
    "read_csv", "read_parquet", "read_json", "read_excel", "read_table", "read_feather",
    "open", "load", "loadtxt", "genfromtxt", "read_pickle", "read_text",
}  # fmt: skip
SPLITTERS = {"train_test_split", "cross_val_score", "cross_validate", "KFold", "StratifiedKFold"}
DISPLAY_FUNCS = {"display", "print_table"}
DISPLAY_METHODS = {
    "head", "tail", "describe", "info", "show", "plot", "hist", "sample", "value_counts",
    "corr", "boxplot", "scatter", "imshow", "heatmap", "pairplot", "savefig",
}  # fmt: skip
PLOT_MODULES = {"plt", "sns", "px"}
RESERVED = {"cfg", "config", "experiment", "help"}  # the script's own names and CLI flags


def _field_ok(name: str) -> bool:
    """A name a Config field and its ``--name`` flag can carry: pydantic makes ``_x`` private
    and refuses or warns on ``model_*`` and BaseModel's own attributes (``copy``, ``json``)."""
    from pydantic import BaseModel

    return (
        name.isidentifier()
        and not keyword.iskeyword(name)
        and name not in RESERVED
        and not name.startswith(("_", "model_"))
        and not hasattr(BaseModel, name)
    )


PYTHON_CELL_MAGICS = {"time", "timeit", "capture", "prun"}
BUNDLED = {
    "load_iris", "load_breast_cancer", "load_wine", "load_digits", "load_diabetes",
    "load_linnerud",
}  # fmt: skip


@dataclass
class Draft:
    script: str
    config: dict[str, object]
    paths: list[str]
    dropped_cells: int
    model_var: str | None
    bundled: list[str]
    warnings: list[str] = field(default_factory=list)


def read_notebook(path: Path):  # noqa: ANN201 - nbformat.NotebookNode
    import nbformat

    try:
        nb = nbformat.read(str(path), as_version=4)
        nbformat.validate(nb)
        return nb
    except (ValueError, KeyError, TypeError, AttributeError, nbformat.ValidationError) as exc:
        detail = str(getattr(exc, "message", exc)).splitlines()[0][:300] if str(exc) else ""
        raise InvalidInput(
            f"{path.name} is not a readable Jupyter notebook: {detail or type(exc).__name__}",
            hint="Pass an .ipynb file saved by Jupyter (nbformat 4).",
        ) from exc


def _name(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def _root(node: ast.expr) -> str:
    while isinstance(node, ast.Attribute | ast.Call | ast.Subscript):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else ""


def _display_only(stmt: ast.stmt) -> bool:
    if not isinstance(stmt, ast.Expr):
        return False
    value = stmt.value
    if not isinstance(value, ast.Call):
        return True  # a bare name/attribute/literal: the notebook's echo of a value
    if isinstance(value.func, ast.Name) and value.func.id in DISPLAY_FUNCS:
        return True
    if isinstance(value.func, ast.Attribute):
        return value.func.attr in DISPLAY_METHODS or _root(value.func) in PLOT_MODULES
    return False


def _has_comment(source: str) -> bool:
    import io
    import tokenize

    try:
        tokens = tokenize.generate_tokens(io.StringIO(source).readline)
        return any(t.type == tokenize.COMMENT for t in tokens)
    except (tokenize.TokenError, SyntaxError):
        return False


_SHELL_ASSIGN = re.compile(r"^\s*[A-Za-z_][\w, ]*=\s*[!%]")
_TIMED = re.compile(r"^(?P<indent>\s*)%(?:time|timeit)\s+(?P<stmt>[^-\s].*)$")


def _strip_magics(source: str) -> tuple[str, list[str]]:
    """The cell's Python and the IPython lines dropped from it (``%time stmt`` keeps stmt)."""
    lines = source.splitlines()
    dropped: list[str] = []
    if lines and lines[0].lstrip().startswith("%%"):
        magic = lines[0].lstrip()[2:].split(maxsplit=1)
        if not magic or magic[0] not in PYTHON_CELL_MAGICS:
            return "", [lines[0].strip()]  # %%bash, %%writefile...: the cell is not Python
        lines = lines[1:]
    kept = []
    for line in lines:
        timed = _TIMED.match(line)
        if timed:  # `%time model.fit(X, y)` is the fit itself: keep the statement
            kept.append(timed["indent"] + timed["stmt"])
        elif line.lstrip().startswith(("%", "!")) or _SHELL_ASSIGN.match(line):
            dropped.append(line.strip())
            kept.append("")
        elif line.rstrip().endswith("?") and not line.rstrip().endswith(("'?", '"?')):
            dropped.append(line.strip())  # `obj?` help
            kept.append("")
        else:
            kept.append(line)
    return "\n".join(kept), dropped


def _hyper_call(fname: str) -> bool:
    # a constructor (LogisticRegression, KFold) or a splitter takes hyperparameters
    return fname[:1].isupper() or fname in SPLITTERS


def _constant(node: ast.expr) -> object:
    """The literal value of ``node`` if it is one a config field can hold, else None."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        inner = _constant(node.operand)
        if type(inner) in (int, float):
            return -inner if isinstance(node.op, ast.USub) else inner  # type: ignore[operator]
        return None
    if not isinstance(node, ast.Constant):
        return None
    v = node.value
    if type(v) is float and not math.isfinite(v):
        return None  # `inf` is no literal in the script or in config.json
    return v if type(v) in (int, float, bool) or (type(v) is str and v) else None


class _Lifter(ast.NodeTransformer):
    """Lifts literal paths and hyperparameters into config fields read from ``cfg_name``."""

    def __init__(self, cfg_name: str) -> None:
        self.cfg_name = cfg_name
        self.config: dict[str, object] = {}
        self.paths: list[str] = []
        self.bundled: list[str] = []

    def cfg(self, name: str) -> ast.expr:
        return ast.Attribute(ast.Name(self.cfg_name, ast.Load()), name, ast.Load())

    def field(self, base: str, value: object) -> str:
        base = base if _field_ok(base) else f"p_{base}"
        name, n = base, 2
        while name in self.config and self.config[name] != value:
            name, n = f"{base}_{n}", n + 1
        self.config[name] = value
        return name

    def visit_Call(self, node: ast.Call) -> ast.AST:  # noqa: N802 - ast API
        self.generic_visit(node)
        fname = _name(node.func)
        if fname in BUNDLED:
            self.bundled.append(fname)
        if fname in READERS and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value:
                name = self.field("data_path", arg.value)
                self.paths.append(name)
                node.args[0] = self.cfg(name)
        if _hyper_call(fname):
            for kw in node.keywords:
                value = _constant(kw.value)
                if kw.arg and value is not None:
                    kw.value = self.cfg(self.field(kw.arg, value))
        return node


def _hyper_variables(body: list[ast.stmt]) -> tuple[set[str], set[str]]:
    """Names passed as hyperparameters (``C=C``) and as a reader's path (``read_csv(PATH)``)."""
    hyper, paths = set(), set()
    for node in ast.walk(ast.Module(body=body, type_ignores=[])):
        if not isinstance(node, ast.Call):
            continue
        fname = _name(node.func)
        if _hyper_call(fname):
            hyper |= {kw.value.id for kw in node.keywords if isinstance(kw.value, ast.Name)}
        if fname in READERS and node.args and isinstance(node.args[0], ast.Name):
            paths.add(node.args[0].id)
    return hyper, paths


def _lift_variables(body: list[ast.stmt], lifter: _Lifter) -> list[str]:
    """``C = 0.5`` bound once at the top and used as ``C=C`` becomes ``C = cfg.C``: the name
    stays defined for the code that reads it; the value comes from the config."""
    hyper, paths = _hyper_variables(body)
    counts = store_counts(body)
    lifted = []
    for stmt in body:
        if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1):
            continue
        target = stmt.targets[0]
        if not isinstance(target, ast.Name) or counts[target.id] != 1:
            continue
        value = _constant(stmt.value)
        if value is None or target.id not in hyper | paths:
            continue
        name = lifter.field(target.id, value)
        if target.id in paths and isinstance(value, str):
            lifter.paths.append(name)
        stmt.value = lifter.cfg(name)
        lifted.append(target.id)
    return lifted


def _is_main_guard(stmt: ast.stmt) -> bool:
    test = stmt.test if isinstance(stmt, ast.If) else None
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and len(test.comparators) == 1
        and isinstance(test.comparators[0], ast.Constant)
        and test.comparators[0].value == "__main__"
    )


def _refuse(source_name: str, cell: int, reason: str, hint: str) -> InvalidInput:
    return InvalidInput(f"{source_name}: cell {cell} {reason}; no pipeline drafted", hint=hint)


_FIX_HINT = "Fix the cell in Jupyter (run it top to bottom), save, and run the draft again."


def _cell_statements(source_name: str, number: int, tree: ast.Module) -> list[ast.stmt]:
    """The cell's statements as the pipeline runs them; refusals for code that cannot."""
    # before the display filter, which would drop a bare `yield`/`await` unseen
    for node in module_scope(tree.body):
        if isinstance(node, ast.Return | ast.Yield | ast.YieldFrom | ast.Await):
            word = type(node).__name__.lower().replace("yieldfrom", "yield from")
            raise _refuse(
                source_name,
                number,
                f"has a top-level `{word}` (line {node.lineno}), which a script cannot run",
                _FIX_HINT,
            )
    out: list[ast.stmt] = []
    for stmt in tree.body:
        if isinstance(stmt, ast.ImportFrom) and stmt.module == "__future__":
            continue  # the script has its own; a second one cannot sit inside train()
        if isinstance(stmt, ast.ImportFrom) and any(a.name == "*" for a in stmt.names):
            raise _refuse(
                source_name,
                number,
                f"has `from {stmt.module} import *`, which cannot run inside the pipeline's train()",
                "Import the names you use explicitly, then draft again.",
            )
        if _is_main_guard(stmt):  # the notebook's main block is the pipeline's body
            out.extend(s for s in stmt.body if not _display_only(s))  # type: ignore[attr-defined]
        elif not _display_only(stmt):
            out.append(stmt)
    return out


def _free_name(names: set[str]) -> str:
    name = "cfg"
    while name in names:  # the notebook's own `cfg` stays its own
        name += "_"
    return name


def convert(nb, source_name: str) -> Draft:  # noqa: ANN001 - nbformat.NotebookNode
    """The pipeline script for notebook ``nb`` (see the module docstring); InvalidInput,
    naming the cell and the reason, for a notebook whose draft could not run."""
    body: list[ast.stmt] = []
    dropped, warnings, comments = 0, [], False
    for i, cell in enumerate(nb.get("cells", [])):
        number = i + 1  # as a person counts the cells in Jupyter, top to bottom
        if cell.get("cell_type") != "code":
            dropped += 1
            continue
        source, magics = _strip_magics(cell.get("source", ""))
        if magics and not source.strip() and magics[0].startswith("%%"):
            warnings.append(f"cell {number} is a non-Python cell magic ({magics[0]}); dropped")
        elif magics:
            warnings.append(f"cell {number}: IPython lines dropped: {'; '.join(magics)}")
        if any(m.startswith("!") and " install" in m for m in magics):
            warnings.append(f"cell {number} installs packages: install them before running")
        try:
            tree = ast.parse(source)
        except SyntaxError as exc:
            line = (exc.text or "").strip()[:80]
            raise _refuse(
                source_name,
                number,
                f"is not valid Python ({exc.msg}, line {exc.lineno}: {line!r})",
                _FIX_HINT,
            ) from exc
        comments = comments or _has_comment(source)
        kept = _cell_statements(source_name, number, tree)
        if not kept:
            dropped += 1
            continue
        body.extend(kept)
    if not body:
        raise InvalidInput(
            f"{source_name} has no code to turn into a pipeline",
            hint="The notebook needs code cells that load data and fit a model.",
        )
    model_var = find_model(body)
    cfg_name = _free_name(all_names(body))
    lifter = _Lifter(cfg_name)
    lifted = _lift_variables(body, lifter)
    module = lifter.visit(ast.Module(body=body, type_ignores=[]))
    ast.fix_missing_locations(module)
    if lifted:
        warnings.append(f"top-level values now read from the config: {', '.join(lifted)}")
    if not lifter.paths and not lifter.bundled:
        warnings.append("no data file or bundled dataset found: the run logs no dataset digest")
    if any(isinstance(n, ast.Global) for n in module_scope(body)):
        warnings.append("the code has top-level global statements; review it")
    if comments:
        warnings.append(
            "comments are not carried over (the code is regenerated from its syntax tree)"
        )
    args = (lifter.config, lifter.paths, lifter.bundled, model_var, ast.unparse(module), cfg_name)
    script = render(source_name, *args, notes=warnings)
    try:
        compile(script, "train.py", "exec")  # the last check: never write a script that fails
    except (SyntaxError, ValueError) as exc:
        reason = getattr(exc, "msg", None) or str(exc)
        raise InvalidInput(
            f"{source_name}'s code cannot run inside the pipeline's train(): {reason}; "
            "no pipeline drafted",
            hint="Replace star imports and top-level return/yield in the notebook, then retry.",
        ) from exc
    if model_var is None:
        raise InvalidInput(
            f"{source_name} fits no model (no `model.fit(...)`, `model = Estimator().fit(...)`"
            " or `model = function_that_fits(...)` in its code); no pipeline drafted",
            hint="Add the cell that fits the model (e.g. `model.fit(X_train, y_train)`), "
            "then draft again.",
        )
    return Draft(
        script=script,
        config=lifter.config,
        paths=lifter.paths,
        dropped_cells=dropped,
        model_var=model_var,
        bundled=sorted(set(lifter.bundled)),
        warnings=warnings,
    )
