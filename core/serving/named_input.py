"""Named-column request bodies for ``POST /predict``, turned into the ``"features"`` shape.

Accepted, besides ``{"features": [...]}`` (row vectors in the signature's order):

- ``{"inputs": [{"col": v, ...}, ...]}`` (a batch of records) or ``{"inputs": {"col": v}}``
  (one row); ``{"dataframe_records": [...]}`` is the same as a batch (MLflow's name);
- ``{"columns": [...], "data": [[...], ...]}``, also as ``{"dataframe_split": {...}}``.

Columns are reordered to the served version's signature (``LoadedVersion.column_index``,
computed once at load). Missing or unknown columns are a 422 that names them. The values
are then checked by ``core.serving.app.parse_features`` like any row (numbers only, finite,
in the dtype's range). No pandas: a request is a few dict lookups per row.
"""

from __future__ import annotations

from typing import Any

NAMED_KEYS = frozenset({"inputs", "dataframe_records", "columns", "dataframe_split"})
_SHOWN = 20


def _bad(message: str, *, by_model: bool = False) -> Exception:
    from core.serving.app import BadRequest  # the error path only: app imports this module

    return BadRequest(message, by_model=by_model)


def _names(names: list[str]) -> str:
    more = f" (+{len(names) - _SHOWN} more)" if len(names) > _SHOWN else ""
    return ", ".join(names[:_SHOWN]) + more


def _mismatch(where: str, given: Any, columns: dict[str, int]) -> Exception:
    missing = [c for c in columns if c not in given]
    unknown = [str(c) for c in given if c not in columns]
    parts = [f"missing columns: {_names(missing)}"] if missing else []
    if unknown:
        parts.append(f"unknown columns: {_names(unknown)}")
    return _bad(
        f"{where}: {'; '.join(parts)} (the model takes: {_names(list(columns))})", by_model=True
    )


def named_features(body: dict, columns: dict[str, int] | None) -> list:
    """The rows of a named-column body, in signature order: one list of values for a single
    row, a list of such lists for a batch (the ``"features"`` shapes)."""
    if not columns:
        raise _bad(
            "this model version declares no input column names (its signature is a tensor); "
            'send {"features": [...]} with the values in the model\'s feature order',
            by_model=True,
        )
    if "inputs" in body or "dataframe_records" in body:
        records = body["inputs"] if "inputs" in body else body["dataframe_records"]
        if type(records) is dict:
            return _record(records, 0, columns)
        if type(records) is not list or not records:
            raise _bad('"inputs" must be an object of column values or a non-empty array of them')
        return [_record(r, i, columns) for i, r in enumerate(records)]
    split = body.get("dataframe_split", body)
    if type(split) is not dict:
        raise _bad('"dataframe_split" must be an object with "columns" and "data"')
    names, data = split.get("columns"), split.get("data")
    if type(names) is not list or not all(type(c) is str for c in names):
        raise _bad('"columns" must be an array of column names')
    position = {c: j for j, c in enumerate(names)}
    if len(position) != len(names):
        raise _bad('"columns" names a column more than once')
    if type(data) is not list or not data:
        raise _bad('"data" must be a non-empty array of rows, one value per column')
    if len(names) != len(columns) or not all(c in position for c in columns):
        raise _mismatch('"columns"', names, columns)
    order = [position[c] for c in columns]
    width = len(names)
    rows = []
    for i, row in enumerate(data):
        if type(row) is not list or len(row) != width:
            raise _bad(f"data row {i}: expected an array of {width} values, one per column")
        rows.append([row[j] for j in order])
    return rows


def _record(record: Any, i: int, columns: dict[str, int]) -> list:
    if type(record) is not dict:
        raise _bad(f"inputs row {i}: expected an object of column values")
    if len(record) != len(columns):
        raise _mismatch(f"inputs row {i}", record, columns)
    try:
        return [record[c] for c in columns]
    except KeyError:
        raise _mismatch(f"inputs row {i}", record, columns) from None
