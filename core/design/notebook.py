"""Notebook -> training pipeline: a reviewed-by-a-person draft of a runnable script.

Code cells are kept in order (``ast``-checked); markdown/raw cells, IPython magics and shell
lines, and display-only statements (bare expressions, ``display(...)``, ``df.head()``,
``plt.show()`` ...) are dropped. Literal file paths given to readers (``read_csv``/``open``/
``load``...) and literal keyword arguments to estimator constructors and splitters
(``n_estimators=100``, ``test_size=0.2``...) are lifted into a typed pydantic ``Config`` with a
CLI (``--param value``, ``--config file.json``). The script runs the notebook's code inside an
MLflow run that carries the honesty tags, the dataset digest, the environment, the config as
params and the last fitted estimator (skops).
"""

from __future__ import annotations

import ast
import json
import keyword
import re
from dataclasses import dataclass, field
from pathlib import Path

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
RESERVED = {"cfg", "config", "experiment", "model_config", "model_fields"}
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


def _strip_magics(source: str) -> str:
    lines = source.splitlines()
    if lines and lines[0].lstrip().startswith("%%"):
        magic = lines[0].lstrip()[2:].split(maxsplit=1)
        if not magic or magic[0] not in PYTHON_CELL_MAGICS:
            return ""  # %%bash, %%writefile...: the cell is not Python
        lines = lines[1:]
    return "\n".join(
        "" if line.lstrip().startswith(("%", "!")) or line.rstrip().endswith("?") else line
        for line in lines
    )


class _Lifter(ast.NodeTransformer):
    def __init__(self) -> None:
        self.config: dict[str, object] = {}
        self.paths: list[str] = []
        self.bundled: list[str] = []
        self.model_var: str | None = None

    def _field(self, base: str, value: object) -> str:
        ok = base.isidentifier() and not keyword.iskeyword(base) and base not in RESERVED
        base = base if ok else f"p_{base}"
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
        if isinstance(node.func, ast.Attribute) and node.func.attr == "fit":
            target = node.func.value
            if isinstance(target, ast.Name):
                self.model_var = target.id
        cfg = lambda n: ast.Attribute(ast.Name("cfg", ast.Load()), n, ast.Load())  # noqa: E731
        if fname in READERS and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value:
                name = self._field("data_path", arg.value)
                self.paths.append(name)
                node.args[0] = cfg(name)
        if fname[:1].isupper() or fname in SPLITTERS:
            for kw in node.keywords:
                v = kw.value
                if kw.arg and isinstance(v, ast.Constant) and type(v.value) in (int, float, bool):
                    kw.value = cfg(self._field(kw.arg, v.value))
                elif kw.arg and isinstance(v, ast.Constant) and isinstance(v.value, str):
                    kw.value = cfg(self._field(kw.arg, v.value))
        return node


def convert(nb, source_name: str) -> Draft:  # noqa: ANN001 - nbformat.NotebookNode
    """The pipeline script for notebook ``nb`` (see the module docstring)."""
    body: list[ast.stmt] = []
    dropped, warnings, comments = 0, [], False
    for i, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "code":
            dropped += 1
            continue
        source = _strip_magics(cell.get("source", ""))
        if not source.strip() and cell.get("source", "").lstrip().startswith("%%"):
            warnings.append(f"cell {i} is a non-Python cell magic; dropped")
        try:
            tree = ast.parse(source)
        except SyntaxError as exc:
            dropped += 1
            warnings.append(f"cell {i} is not valid Python ({exc.msg}, line {exc.lineno}); dropped")
            continue
        comments = comments or _has_comment(source)
        kept = [s for s in tree.body if not _display_only(s)]
        if not kept:
            dropped += 1
            continue
        body.extend(kept)
    if not body:
        raise InvalidInput(
            f"{source_name} has no code to turn into a pipeline",
            hint="The notebook needs code cells that load data and fit a model.",
        )
    lifter = _Lifter()
    module = lifter.visit(ast.Module(body=body, type_ignores=[]))
    ast.fix_missing_locations(module)
    if lifter.model_var is None:
        warnings.append("no `.fit(` call found: the run logs no model")
    if not lifter.paths and not lifter.bundled:
        warnings.append("no data file or bundled dataset found: the run logs no dataset digest")
    if any(isinstance(n, ast.Global | ast.Return | ast.Yield) for n in ast.walk(module)):
        warnings.append("the code has top-level global/return/yield statements; review it")
    if comments:
        warnings.append(
            "comments are not carried over (the code is regenerated from its syntax tree)"
        )
    script = _render(source_name, lifter, ast.unparse(module))
    try:
        compile(script, "train.py", "exec")  # the draft is at least valid Python
    except SyntaxError as exc:  # e.g. `from x import *`, which a function body cannot hold
        raise InvalidInput(
            f"{source_name}'s code cannot run inside the pipeline's train(): {exc.msg}",
            hint="Replace star imports and top-level return/yield in the notebook, then retry.",
        ) from exc
    return Draft(
        script=script,
        config=lifter.config,
        paths=lifter.paths,
        dropped_cells=dropped,
        model_var=lifter.model_var,
        bundled=sorted(set(lifter.bundled)),
        warnings=warnings,
    )


def _render(source_name: str, lifter: _Lifter, code: str) -> str:
    fields = (
        "\n".join(f"    {k}: {type(v).__name__} = {v!r}" for k, v in lifter.config.items())
        or "    pass"
    )
    indented = "\n".join(("    " + line) if line else "" for line in code.splitlines())
    return TEMPLATE.format(
        source=repr(source_name),
        source_doc=re.sub(r"[^A-Za-z0-9._ -]", "_", source_name),
        fields=fields,
        paths=json.dumps(lifter.paths),
        bundled=json.dumps(sorted(set(lifter.bundled))),
        model_var=json.dumps(lifter.model_var),
        code=indented,
    )


TEMPLATE = '''"""Training pipeline drafted from {source_doc} (review it before use).

Run: python train.py [--PARAM VALUE ...] [--config config.json] [--experiment NAME]
Tracking: MODELOPS_TRACKING_URI, else MODELOPS_HOME/mlflow.db (MODELOPS_HOME: ./.modelops).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

PATH_FIELDS = {paths}
BUNDLED = {bundled}
MODEL_VAR = {model_var}
HONESTY = {{
    "implementation_status": "IMPLEMENTED",
    "accuracy_claim": "none: drafted from a notebook; this run measured nothing for approval",
    "validation_method": "none",
    "honesty_warning": "UNVALIDATED",
}}


class Config(BaseModel):
    """Values lifted from the notebook; override with --NAME VALUE or --config FILE.json."""

    model_config = ConfigDict(extra="forbid")
{fields}


def load_config(argv: list[str] | None = None) -> tuple[Config, str]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, help="JSON object of Config fields")
    parser.add_argument("--experiment", default="notebook-pipelines")
    for name, info in Config.model_fields.items():
        parser.add_argument(
            f"--{{name}}", dest=name, default=None,
            help=f"{{info.annotation.__name__}} (default {{info.default!r}})",
        )
    ns = parser.parse_args(argv)
    data = json.loads(ns.config.read_text()) if ns.config else {{}}
    if not isinstance(data, dict):
        parser.error("--config must hold a JSON object")
    data.update({{k: v for k, v in vars(ns).items() if k in Config.model_fields and v is not None}})
    try:
        return Config.model_validate(data), ns.experiment
    except ValidationError as exc:
        parser.error(str(exc))


def train(cfg: Config) -> dict:
{code}
    return locals()


def _tracking() -> tuple[str, str]:
    try:
        from core.settings import load_settings

        s = load_settings()
        return s.resolved_tracking_uri, s.resolved_artifact_root
    except ImportError:
        home = Path(os.environ.get("MODELOPS_HOME", ".modelops")).resolve()
        uri = os.environ.get("MODELOPS_TRACKING_URI") or f"sqlite:///{{home / 'mlflow.db'}}"
        return uri, os.environ.get("MODELOPS_ARTIFACT_ROOT") or (home / "artifacts").as_uri()


def _environment() -> dict:
    try:
        from core.experiments.environment import capture_environment

        return capture_environment()
    except ImportError:
        from importlib.metadata import PackageNotFoundError, version

        packages = {{}}
        for pkg in ("scikit-learn", "numpy", "pandas", "mlflow", "pydantic"):
            try:
                packages[pkg] = version(pkg)
            except PackageNotFoundError:
                pass
        return {{"python": sys.version.split()[0], "platform": platform.platform(),
                "packages": packages}}


def dataset_digest(cfg: Config) -> tuple[str, str] | None:
    """(sha256, what it covers): of the data files, else of the bundled datasets' arrays."""
    h = hashlib.sha256()
    if PATH_FIELDS:
        for name in PATH_FIELDS:
            h.update(Path(getattr(cfg, name)).read_bytes())
        return h.hexdigest(), "files: " + ", ".join(str(getattr(cfg, n)) for n in PATH_FIELDS)
    if BUNDLED:
        import numpy as np
        import sklearn.datasets

        for loader in BUNDLED:
            ds = getattr(sklearn.datasets, loader)()
            for arr in (ds.data, ds.target):
                h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest(), "sklearn arrays: " + ", ".join(BUNDLED)
    return None


def main(argv: list[str] | None = None) -> str:
    cfg, experiment = load_config(argv)  # bad values fail here, before anything is logged
    import mlflow

    uri, artifact_root = _tracking()
    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        mlflow.create_experiment(
            experiment, artifact_location=f"{{artifact_root.rstrip('/')}}/{{experiment}}"
        )
    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name=Path(__file__).parent.name) as run:
        mlflow.set_tags({{**HONESTY, "source_notebook": {source}}})
        mlflow.log_params(cfg.model_dump())
        env = _environment()
        mlflow.log_dict(env, "environment.json")
        mlflow.set_tag("env.python", platform.python_version())
        digest = dataset_digest(cfg)
        if digest:
            mlflow.set_tags({{"dataset_digest.training": digest[0], "dataset_source": digest[1]}})
        scope = train(cfg)
        model = scope.get(MODEL_VAR) if MODEL_VAR else None
        if model is not None and hasattr(model, "predict"):
            import skops.io

            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "model.skops"
                skops.io.dump(model, path)
                mlflow.log_artifact(str(path), "model")
            mlflow.set_tag("model_class", type(model).__name__)
        print(run.info.run_id)
        return run.info.run_id


if __name__ == "__main__":
    main()
'''
