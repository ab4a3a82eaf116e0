"""Deterministic checks on Python files, on the ``ast`` of the new side: honesty parameters in
training runs, production aliases and stage transitions, serving responses, unsafe loads,
leakage and unseeded splits, unpinned ``pip_requirements``.

A finding is reported only where the diff touched the code it is about."""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterable

from agents.review.diff import ChangedFile
from agents.review.findings import Finding
from agents.review.pyast import (
    Module,
    arg,
    attr_name,
    calls,
    dict_keys,
    keyword,
    name_tokens,
    names_in,
    source_key,
)

HONESTY_PARAMS = ("implementation_status", "accuracy_claim", "validation_method")
_LOG_CALLS = {"log_param", "log_params", "set_tag", "set_tags", "log_dict"}
PRODUCTION_ALIASES = frozenset({"champion", "production", "prod"})
# The approved executor of a ModelOps installation is the one writer of `champion`.
APPROVAL_WORKFLOW_PATHS = ("tools/executor.py",)
_UNSAFE_LOADS = {
    "pickle.load",
    "pickle.loads",
    "pickle.Unpickler",
    "_pickle.load",
    "_pickle.loads",
    "cloudpickle.load",
    "cloudpickle.loads",
    "joblib.load",
    "sklearn.externals.joblib.load",
    "dill.load",
    "dill.loads",
    "pandas.read_pickle",
}
_FIT = {"fit", "fit_transform", "partial_fit", "fit_resample", "fit_predict"}
_STATS = {"mean", "std", "median", "var", "min", "max", "quantile", "mode", "sum"}
_TEST_TOKENS = {"test", "holdout", "testing"}
_SPLITTERS_NEED_SEED = {
    "ShuffleSplit",
    "StratifiedShuffleSplit",
    "GroupShuffleSplit",
    "RepeatedKFold",
    "RepeatedStratifiedKFold",
}
_SHUFFLING_FOLDS = {"KFold", "StratifiedKFold", "StratifiedGroupKFold"}
_PREDICTION_KEYS = {
    "prediction",
    "predictions",
    "probabilities",
    "probability",
    "score",
    "scores",
    "label",
    "labels",
    "outputs",
    "predicted",
}
_PREDICT_ROUTE = re.compile(r"predict|invocation|infer|score|classif", re.I)
_ROUTE_DECORATORS = {"get", "post", "put", "route", "api_route"}

Emit = Callable[[Finding, int, int], None]


def check_python(cf: ChangedFile, modules: Iterable[Module]) -> list[Finding]:
    found: list[Finding] = []

    def emit(finding: Finding, first: int, last: int) -> None:
        if cf.status == "added" or cf.span_touched(first, last):
            found.append(finding)

    for m in modules:
        for check in (_honesty, _aliases, _serving, _unsafe_loads, _leakage, _splits, _pip_reqs):
            check(cf, m, emit)
    return found


def _is_test_like(name: str) -> bool:
    return bool(set(name_tokens(name)) & _TEST_TOKENS)


def _finding(cf: ChangedFile, m: Module, node: ast.AST, rule: str, message: str, **kw) -> Finding:
    return Finding(rule, cf.path, m.line(node), message, key=source_key(cf, m, node), **kw)


# MO101 ---------------------------------------------------------------------------------------
def _logged_keys(m: Module, scope: ast.AST, seen: set[int]) -> set[str] | None:
    """Honesty keys logged in ``scope`` (following calls to functions of this module); None
    when something is logged that cannot be read statically (then nothing is reported)."""
    seen.add(id(scope))
    keys: set[str] = set()
    for call in calls(m, scope):
        name = attr_name(call.func)
        if keyword(call, "honesty") is not None:
            keys |= set(HONESTY_PARAMS)  # ModelOps' own logging API takes honesty=...
        if name in _LOG_CALLS:
            first = call.args[0] if call.args else keyword(call, "params") or keyword(call, "tags")
            if name in ("log_param", "set_tag"):
                key = m.const_str(first if first is not None else keyword(call, "key"))
                if key is None:
                    return None
                keys.add(key)
            else:
                found = dict_keys(m, first, m.enclosing_scope(call))
                if found is None:
                    return None
                keys |= found
        elif isinstance(call.func, ast.Name) and call.func.id in m.functions:
            fn = m.functions[call.func.id]
            if id(fn) not in seen:
                inner = _logged_keys(m, fn, seen)
                if inner is None:
                    return None
                keys |= inner
    return keys


def _honesty(cf: ChangedFile, m: Module, emit: Emit) -> None:
    for node in ast.walk(m.tree):
        run_call, scope = None, None
        if isinstance(node, ast.With | ast.AsyncWith):
            for item in node.items:
                c = item.context_expr
                if isinstance(c, ast.Call) and _is_start_run(m, c):
                    run_call, scope = c, node
        elif isinstance(node, ast.Call) and _is_autolog(m, node):
            run_call, scope = node, m.enclosing_scope(node)
        elif (
            isinstance(node, ast.Call)
            and _is_start_run(m, node)
            and not isinstance(m.parent(node), ast.withitem)
        ):
            run_call, scope = node, m.enclosing_scope(node)
        if run_call is None or scope is None:
            continue
        nested = keyword(run_call, "nested")
        if isinstance(nested, ast.Constant) and nested.value is True:
            continue  # child runs (trials) inherit the parent run's honesty
        keys = _logged_keys(m, scope, set())
        if keys is None:
            continue
        missing = [k for k in HONESTY_PARAMS if k not in keys]
        if missing:
            what = "autolog" if _is_autolog(m, run_call) else "mlflow.start_run"
            emit(
                _finding(
                    cf,
                    m,
                    run_call,
                    "MO101",
                    f"training run ({what}) does not log {', '.join(missing)}",
                    facts={"missing": missing},
                ),
                m.line(scope if scope is not m.tree else run_call),
                m.end_line(scope if scope is not m.tree else run_call),
            )


def _is_start_run(m: Module, call: ast.Call) -> bool:
    q = m.qualname(call.func)
    return q in ("mlflow.start_run", "mlflow.tracking.fluent.start_run")


def _is_autolog(m: Module, call: ast.Call) -> bool:
    q = m.qualname(call.func)
    if not (q.startswith("mlflow.") and q.endswith(".autolog")) and q != "mlflow.autolog":
        return False
    disable = keyword(call, "disable")
    return not (isinstance(disable, ast.Constant) and disable.value is True)


# MO201 / MO202 -------------------------------------------------------------------------------
def _aliases(cf: ChangedFile, m: Module, emit: Emit) -> None:
    if cf.path in APPROVAL_WORKFLOW_PATHS:
        return
    for call in calls(m):
        name = attr_name(call.func)
        if name in ("set_registered_model_alias", "set_alias"):
            alias = m.const_str(arg(call, 1, "alias"))
            if alias is not None and alias.lower() in PRODUCTION_ALIASES:
                emit(
                    _finding(
                        cf,
                        m,
                        call,
                        "MO201",
                        f"sets the production alias {alias!r} directly ({name}); only an approved "
                        "promotion may move it",
                    ),
                    m.line(call),
                    m.end_line(call),
                )
        elif name == "transition_model_version_stage":
            stage = m.const_str(arg(call, 2, "stage"))
            emit(
                _finding(
                    cf,
                    m,
                    call,
                    "MO202",
                    "calls the deprecated transition_model_version_stage"
                    + (f" to {stage!r}" if stage else "")
                    + " outside the approval workflow",
                ),
                m.line(call),
                m.end_line(call),
            )


# MO301 ---------------------------------------------------------------------------------------
def _route(m: Module, fn: ast.AST) -> str | None:
    for dec in getattr(fn, "decorator_list", []):
        if isinstance(dec, ast.Call) and attr_name(dec.func) in _ROUTE_DECORATORS:
            path = m.const_str(dec.args[0]) if dec.args else m.const_str(keyword(dec, "path"))
            return path or ""
    return None


def _response_keys(m: Module, node: ast.AST | None, fn: ast.AST) -> set[str] | None:
    if isinstance(node, ast.Call):
        callee = attr_name(node.func)
        if callee in ("JSONResponse", "ORJSONResponse", "jsonify"):
            return _response_keys(m, arg(node, 0, "content"), fn)
        if isinstance(node.func, ast.Name) and node.func.id in m.classes:
            fields = {
                s.target.id
                for s in m.classes[node.func.id].body
                if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)
            }
            return fields | {kw.arg for kw in node.keywords if kw.arg}
    return dict_keys(m, node, fn)


def _serving(cf: ChangedFile, m: Module, emit: Emit) -> None:
    for fn in ast.walk(m.tree):
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        path = _route(m, fn)
        if path is None:
            continue
        predict_route = bool(_PREDICT_ROUTE.search(path) or _PREDICT_ROUTE.search(fn.name))
        for ret in ast.walk(fn):
            if not isinstance(ret, ast.Return) or ret.value is None:
                continue
            if m.enclosing_scope(ret) is not fn:
                continue
            keys = _response_keys(m, ret.value, fn)
            if keys is None or "implementation_status" in keys:
                continue
            if not (predict_route or keys & _PREDICTION_KEYS):
                continue
            first = m.line(fn) if m.line(fn) in cf.added else m.line(ret)
            emit(
                _finding(
                    cf,
                    m,
                    ret,
                    "MO301",
                    f"the response of {fn.name} ({path or 'route'}) has no implementation_status"
                    f" (keys: {', '.join(sorted(keys)) or 'none'})",
                ),
                first,
                m.end_line(ret),
            )


# MO401 / MO402 -------------------------------------------------------------------------------
def _unsafe_loads(cf: ChangedFile, m: Module, emit: Emit) -> None:
    for call in calls(m):
        q = m.qualname(call.func)
        if q.startswith("pd."):
            q = "pandas." + q[3:]
        if q in _UNSAFE_LOADS:
            emit(
                _finding(
                    cf, m, call, "MO401", f"{q}() deserializes with pickle: loading runs code"
                ),
                m.line(call),
                m.end_line(call),
            )
        elif q.startswith("mlflow.") and q.endswith(".load_model"):
            uri_node = arg(call, 0, "model_uri")
            uri = m.const_str(uri_node)
            if uri is None and isinstance(uri_node, ast.JoinedStr) and uri_node.values:
                head = uri_node.values[0]
                uri = head.value if isinstance(head, ast.Constant) else None
            if uri is None:
                continue  # a computed URI: cannot tell statically
            if uri.startswith("models:/") and not uri.startswith("models:/m-"):
                continue
            why = (
                "a logged model id, not a registered version"
                if uri.startswith("models:/m-")
                else "outside the model registry"
            )
            emit(
                _finding(cf, m, call, "MO402", f"{q}({uri!r}) loads a model {why}"),
                m.line(call),
                m.end_line(call),
            )


# MO701 ---------------------------------------------------------------------------------------
def _leakage(cf: ChangedFile, m: Module, emit: Emit) -> None:
    for call in calls(m):
        name = attr_name(call.func)
        if isinstance(call.func, ast.Attribute) and name in _FIT:
            data = list(call.args[:2]) + [
                kw.value for kw in call.keywords if kw.arg in ("X", "y", "x")
            ]
            leaked = sorted({n for d in data for n in names_in(d) if _is_test_like(n)})
            if leaked:
                emit(
                    _finding(
                        cf,
                        m,
                        call,
                        "MO701",
                        f".{name}() on test/holdout data ({', '.join(leaked)})",
                    ),
                    m.line(call),
                    m.end_line(call),
                )
        elif (
            isinstance(call.func, ast.Attribute)
            and name in _STATS
            and any(_is_test_like(n) for n in names_in(call.func.value))
        ):
            stmt = m.statement(call)
            if any("train" in name_tokens(n) for n in names_in(stmt)):
                emit(
                    _finding(
                        cf,
                        m,
                        stmt,
                        "MO701",
                        f"a fitting-time statistic ({name}) of test/holdout data is applied to "
                        "training data",
                    ),
                    m.line(stmt),
                    m.end_line(stmt),
                )


# MO702 ---------------------------------------------------------------------------------------
def _unseeded(call: ast.Call) -> bool:
    seed = keyword(call, "random_state")
    return seed is None or (isinstance(seed, ast.Constant) and seed.value is None)


def _splits(cf: ChangedFile, m: Module, emit: Emit) -> None:
    for call in calls(m):
        q = m.qualname(call.func)
        last = q.rsplit(".", 1)[-1]
        shuffle = keyword(call, "shuffle")
        no_shuffle = isinstance(shuffle, ast.Constant) and shuffle.value is False
        what = None
        if last == "train_test_split" and not no_shuffle and _unseeded(call):
            what = "train_test_split"
        elif last in _SPLITTERS_NEED_SEED and _unseeded(call):
            what = last
        elif (
            last in _SHUFFLING_FOLDS
            and isinstance(shuffle, ast.Constant)
            and shuffle.value is True
            and _unseeded(call)
        ):
            what = f"{last}(shuffle=True)"
        elif q in ("sklearn.utils.shuffle",) and _unseeded(call):
            what = "sklearn.utils.shuffle"
        elif last == "sample" and keyword(call, "frac") is not None and _unseeded(call):
            what = ".sample(frac=...)"
        if what:
            emit(
                _finding(cf, m, call, "MO702", f"{what} without random_state"),
                m.line(call),
                m.end_line(call),
            )


# MO801 (pip_requirements of a logged model) --------------------------------------------------
def _pip_reqs(cf: ChangedFile, m: Module, emit: Emit) -> None:
    from agents.review.checks_files import unpinned

    for call in calls(m):
        if attr_name(call.func) != "log_model":
            continue
        for kw in ("pip_requirements", "extra_pip_requirements"):
            value = keyword(call, kw)
            if not isinstance(value, ast.List | ast.Tuple):
                continue
            for elt in value.elts:
                req = m.const_str(elt)
                if req is not None and unpinned(req):
                    emit(
                        Finding(
                            "MO801",
                            cf.path,
                            m.line(elt),
                            f"{kw} of log_model lists {req!r} without a version",
                            key=f"{kw}:{req}",
                        ),
                        m.line(elt),
                        m.end_line(elt),
                    )
