"""Load an evaluation set (CSV, Parquet or JSONL) from inside allowed directories only.

Paths are resolved (symlinks and ``..``) before the check, so neither ``../../etc/passwd``
nor a symlink inside a root that points outside it gets read.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from core.errors import InvalidInput, NotFound
from core.evaluation._inputs import describe_rows

SUFFIXES = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}


def resolve_inside(path: str | Path, allowed_roots: Sequence[str | Path]) -> Path:
    """The fully resolved path, if it lies inside one of the (resolved) allowed roots."""
    if not allowed_roots:
        raise InvalidInput(
            "no allowed_roots given", hint="Pass the directories evaluation data may be read from."
        )
    roots = [Path(r).expanduser().resolve() for r in allowed_roots]
    resolved = Path(path).expanduser().resolve()
    if not any(resolved.is_relative_to(root) for root in roots):
        raise InvalidInput(
            f"path {str(path)!r} resolves to {resolved}, outside the allowed directories",
            hint=f"Put the data under one of: {', '.join(str(r) for r in roots)}.",
        )
    return resolved


def _read_jsonl(path: Path) -> pd.DataFrame:
    records = []
    with path.open(encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidInput(
                    f"{path.name}: line {line_no} is not valid JSON ({exc.msg} at column {exc.colno})",
                    hint="Each line of a JSONL file must be one JSON object.",
                ) from exc
            if not isinstance(record, dict):
                raise InvalidInput(
                    f"{path.name}: line {line_no} is a JSON {type(record).__name__}, not an object",
                    hint='Each line of a JSONL file must be one JSON object ({"col": value, ...}).',
                )
            records.append(record)
    return pd.DataFrame.from_records(records)


def read_table(path: Path) -> pd.DataFrame:
    fmt = SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise InvalidInput(
            f"unsupported file type {path.suffix!r} for {path.name}",
            hint=f"Use one of: {', '.join(sorted(SUFFIXES))}.",
        )
    if fmt == "jsonl":
        return _read_jsonl(path)
    try:
        if fmt == "csv":
            return pd.read_csv(path)
        return pd.read_parquet(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InvalidInput(
            f"cannot parse {path.name} as CSV: {exc}", hint="Check the delimiter and quoting."
        ) from exc
    except (OSError, ValueError) as exc:
        # pyarrow raises ArrowInvalid (a ValueError) or OSError for a corrupt Parquet file.
        raise InvalidInput(
            f"cannot read {path.name} as {fmt}: {exc}", hint="Is the file complete?"
        ) from exc


def load_dataset(
    path: str | Path,
    *,
    label_column: str,
    allowed_roots: Sequence[str | Path],
    columns: Sequence[str] | None = None,
) -> tuple[pd.DataFrame, pd.Series]:
    """(features, labels) from a file under ``allowed_roots``.

    ``columns`` restricts the features (default: every column except the label column). Rows whose
    label is missing are refused: a label cannot be guessed.
    """
    resolved = resolve_inside(path, allowed_roots)
    if not resolved.is_file():
        raise NotFound(
            f"dataset {str(path)!r} not found ({resolved})",
            hint="Check the path; it is resolved relative to the current directory.",
        )
    frame = read_table(resolved)
    names = [str(c) for c in frame.columns]
    if label_column not in frame.columns:
        raise InvalidInput(
            f"label column {label_column!r} is not in {resolved.name}",
            hint=f"Columns: {names}.",
        )
    if columns is None:
        features = [c for c in frame.columns if c != label_column]
    else:
        unknown = [c for c in columns if c not in frame.columns]
        if unknown:
            raise InvalidInput(
                f"unknown feature column(s) {unknown} in {resolved.name}", hint=f"Columns: {names}."
            )
        features = list(columns)
    y = frame[label_column]
    missing = y.isna().to_numpy().nonzero()[0]
    if len(missing):
        raise InvalidInput(
            f"label column {label_column!r} has missing values in {describe_rows(missing)}",
            hint="Drop or label those rows before evaluating.",
        )
    return frame[features], y
