"""Reading and writing dataset files: JSONL (line by line, every bad line reported), CSV and
Parquet (through pandas). Non-finite numbers (NaN, Infinity) are refused in every format:
JSON has no such values and a NaN in a training row is a bug upstream, not data."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from core.errors import InvalidInput, NotFound

SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}
DEFAULT_MAX_ERRORS = 50
# A single line longer than this is refused before json.loads sees it.
MAX_LINE_BYTES = 8 * 1024 * 1024


class LineError(BaseModel):
    """One problem in one row: its 1-based line (JSONL) or data row (CSV/Parquet), the field
    path (``messages[2].content``; ``(line)`` for the row itself) and what is wrong."""

    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.message}"


def file_format(path: Path) -> str:
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise InvalidInput(
            f"unsupported dataset file type {path.suffix or '(none)'!r} for {path.name}",
            hint=f"Use one of: {', '.join(sorted(SUFFIXES))}.",
        )
    return kind


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value (write null or a finite number)")


def read_jsonl(
    path: Path, *, max_errors: int = DEFAULT_MAX_ERRORS
) -> tuple[list[tuple[int, Any]], list[LineError], int]:
    """(parsed (line, value) pairs, parse errors (at most ``max_errors``), total bad lines).
    Blank lines are skipped; line numbers count every physical line from 1."""
    if not path.is_file():
        raise NotFound(f"dataset file {path.name!r} does not exist")
    rows: list[tuple[int, Any]] = []
    errors: list[LineError] = []
    bad = 0
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, 1):
            problem = None
            if len(raw) > MAX_LINE_BYTES:
                problem = f"line is {len(raw)} bytes; the limit is {MAX_LINE_BYTES}"
            else:
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    problem = f"not UTF-8 (byte {exc.start + 1})"
                else:
                    if not text.strip():
                        continue
                    try:
                        rows.append((number, json.loads(text, parse_constant=_no_constant)))
                    except ValueError as exc:
                        problem = _json_problem(exc)
            if problem is not None:
                bad += 1
                if len(errors) < max_errors:
                    errors.append(LineError(line=number, field="(line)", message=problem))
    return rows, errors, bad


def _json_problem(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON: {exc.msg} at column {exc.colno}"
    return f"invalid JSON: {exc}"


def write_jsonl(records: list[Any], path: Path) -> Path:
    """Write one JSON value a line (UTF-8, no NaN), atomically: a temp file renamed into place."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False, allow_nan=False) + "\n")
    tmp.replace(path)
    return path


def read_table(path: Path, kind: str) -> Any:
    """A CSV or Parquet file as a DataFrame (pandas errors become InvalidInput)."""
    import pandas as pd

    if not path.is_file():
        raise NotFound(f"dataset file {path.name!r} does not exist")
    try:
        if kind == "csv":
            return pd.read_csv(path)
        return pd.read_parquet(path)
    except (ValueError, OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InvalidInput(f"cannot read {path.name} as {kind.upper()}: {exc}") from exc


def non_finite_cells(frame: Any, *, limit: int = DEFAULT_MAX_ERRORS) -> list[LineError]:
    """Infinite values in numeric columns, as row errors (data row 1 = the first row).
    Missing values (NaN read from an empty CSV cell) are reported by the profile instead."""
    import numpy as np
    import pandas as pd

    out: list[LineError] = []
    for col in frame.columns:
        values = frame[col]
        if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            continue
        bad = np.flatnonzero(np.isinf(values.to_numpy(dtype=float)))
        for i in bad[: max(0, limit - len(out))]:
            out.append(LineError(line=int(i) + 1, field=str(col), message="infinite value"))
    return out


def is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
