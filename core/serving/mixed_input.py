"""Requests for versions whose input schema has string columns (mixed-type tabular models).

Such a version takes named rows only (``{"inputs": [{"plan": "pro", "tenure": 12}]}`` and the
other shapes of ``core.serving.named_input``); each value is checked against its column's type
and, where the fitted encoder refuses unknown categories (``handle_unknown='error'``), against
the categories it knows, so the 422 names the column. Rows reach the model as an object array
(strings stay strings); numeric-only versions never come here (their fast path is unchanged).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.serving.named_input import named_features

STRING, NUMBER, BOOLEAN = "string", "number", "boolean"
_SHOWN = 10


def column_kind(mlflow_type: str) -> str:
    """The JSON kind a signature column takes: MLflow ``string`` -> string, ``boolean`` ->
    boolean, every numeric type (``double``, ``long``, ...) -> number."""
    return {"string": STRING, "boolean": BOOLEAN}.get(mlflow_type, NUMBER)


@dataclass(frozen=True)
class MixedSchema:
    """The columns of a mixed-type version, computed once at load."""

    columns: tuple[str, ...]
    kinds: tuple[str, ...]
    # position -> the categories the fitted encoder accepts (only where it refuses others)
    strict: dict[int, frozenset[str]] = field(default_factory=dict)
    # position -> every category the fitted encoder knows (a warm-up row is built from them)
    known: dict[int, tuple[str, ...]] = field(default_factory=dict)

    def warmup_row(self) -> np.ndarray | None:
        """One valid row (first known category, 0 for numbers), or None when a string column
        has no known categories (a made-up string could be refused by the model)."""
        row: list[Any] = []
        for j, kind in enumerate(self.kinds):
            if kind == STRING:
                if not self.known.get(j):
                    return None
                row.append(self.known[j][0])
            else:
                row.append(False if kind == BOOLEAN else 0.0)
        return np.array([row], dtype=object)


def has_strings(schema: tuple[tuple[str, str], ...] | None) -> bool:
    return bool(schema) and any(column_kind(t) == STRING for _, t in schema)


def encoder_categories(model: Any, columns: tuple[str, ...]) -> dict[str, tuple[list, bool]]:
    """column -> (categories, refuses unknown ones) for every input column a fitted
    OneHotEncoder / OrdinalEncoder reads directly (first step of the model, or inside its
    first ColumnTransformer, behind at most imputers)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

    def encoder(step: Any) -> Any:
        if isinstance(step, Pipeline):
            for _, inner in step.steps:
                if not isinstance(inner, SimpleImputer):
                    return encoder(inner)
            return None
        return step if isinstance(step, (OneHotEncoder, OrdinalEncoder)) else None

    first = model.steps[0][1] if isinstance(model, Pipeline) and model.steps else model
    parts: list[tuple[Any, Any]] = []
    if isinstance(first, ColumnTransformer) and hasattr(first, "transformers_"):
        parts = [(t, cols) for _, t, cols in first.transformers_]
    elif encoder(first) is not None:
        parts = [(first, list(columns))]
    out: dict[str, tuple[list, bool]] = {}
    for trans, cols in parts:
        enc = encoder(trans) if not isinstance(trans, str) else None
        if enc is None or not hasattr(enc, "categories_"):
            continue
        names = [columns[c] if isinstance(c, (int, np.integer)) else c for c in _as_list(cols)]
        if len(names) != len(enc.categories_):
            continue
        strict = getattr(enc, "handle_unknown", "error") == "error"
        for name, cats in zip(names, enc.categories_, strict=True):
            out[str(name)] = ([c for c in cats.tolist() if isinstance(c, str)], strict)
    return out


def _as_list(cols: Any) -> list:
    if isinstance(cols, (str, int, np.integer)):
        return [cols]
    try:
        return list(cols)
    except TypeError:  # a callable or slice selector: not resolved here
        return []


def build_schema(model: Any, schema: tuple[tuple[str, str], ...]) -> MixedSchema:
    columns = tuple(name for name, _ in schema)
    kinds = tuple(column_kind(t) for _, t in schema)
    cats = encoder_categories(model, columns)
    strict, known = {}, {}
    for j, name in enumerate(columns):
        if kinds[j] == STRING and name in cats:
            values, refuses = cats[name]
            known[j] = tuple(values)
            if refuses:
                strict[j] = frozenset(values)
    return MixedSchema(columns, kinds, strict, known)


def _bad(message: str, *, by_model: bool = True) -> Exception:
    from core.serving.app import BadRequest  # the error path only: app imports this module

    return BadRequest(message, by_model=by_model)


def _type_name(v: Any) -> str:
    return {str: "a string", bool: "a boolean", type(None): "null"}.get(type(v), type(v).__name__)


def _check(value: Any, i: int, j: int, schema: MixedSchema) -> None:
    kind, name = schema.kinds[j], schema.columns[j]
    t = type(value)
    if kind == STRING:
        if t is not str:
            raise _bad(f"row {i}, column {name!r}: expected a string, got {_type_name(value)}")
        allowed = schema.strict.get(j)
        if allowed is not None and value not in allowed:
            shown = ", ".join(sorted(allowed)[:_SHOWN])
            raise _bad(
                f"row {i}, column {name!r}: unknown category {value[:100]!r} "
                f"(the model knows: {shown}{' ...' if len(allowed) > _SHOWN else ''})"
            )
    elif kind == BOOLEAN:
        if t is not bool:
            raise _bad(f"row {i}, column {name!r}: expected a boolean, got {_type_name(value)}")
    elif (t is not float and t is not int) or not math.isfinite(value):
        raise _bad(f"row {i}, column {name!r}: expected a finite number, got {_type_name(value)}")


def parse_mixed(body: dict, schema: MixedSchema, max_rows: int) -> tuple[np.ndarray, bool, list]:
    """The model input (an object array in signature order), whether it was one row, and the
    rows as ``{column: value}`` (what the prediction log keeps: monitoring reads names)."""
    if "features" in body:
        strings = [c for c, k in zip(schema.columns, schema.kinds, strict=True) if k == STRING]
        raise _bad(
            f"this model takes string columns ({', '.join(strings[:_SHOWN])}): name every "
            'column, e.g. {"inputs": [{"' + schema.columns[0] + '": ...}]}'
        )
    index = {c: j for j, c in enumerate(schema.columns)}
    feats = named_features(body, index)
    single = type(feats[0]) is not list
    rows = [feats] if single else feats
    if len(rows) > max_rows:
        raise _bad(f"at most {max_rows} rows per request, got {len(rows)}", by_model=False)
    for i, row in enumerate(rows):
        for j, value in enumerate(row):
            _check(value, i, j, schema)
    x = np.empty((len(rows), len(schema.columns)), dtype=object)
    x[:] = rows
    logged = [dict(zip(schema.columns, row, strict=True)) for row in rows]
    return x, single, logged[0] if single else logged
