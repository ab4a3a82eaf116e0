"""Input checks shared by the evaluation modules: shapes, lengths, missing values, JSON labels."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from core.errors import InvalidInput


def as_1d(name: str, values: Any, dtype: Any = None) -> np.ndarray:
    """A 1-D numpy array, accepting lists, Series and single-column 2-D arrays.

    ``dtype=object`` keeps a list's values as they are (numpy would turn ["a", 3] into strings).
    """
    if values is None:
        raise InvalidInput(f"{name} is required")
    if isinstance(values, pd.DataFrame):
        if values.shape[1] != 1:
            raise InvalidInput(
                f"{name} has {values.shape[1]} columns; expected one",
                hint="Pass a single column (a Series or 1-D array).",
            )
        values = values.iloc[:, 0]
    if isinstance(values, pd.Series):
        # pandas extension arrays (Int64, string) become object arrays with pd.NA;
        # to_numpy keeps plain numeric dtypes as they are.
        arr = values.to_numpy(dtype=dtype)
    else:
        arr = np.asarray(values, dtype=dtype)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise InvalidInput(
            f"{name} must be one-dimensional, got shape {arr.shape}",
            hint="Pass one value per row.",
        )
    return arr


def check_lengths(n: int, **arrays: Any) -> None:
    """Every given array has exactly ``n`` rows."""
    for name, arr in arrays.items():
        if arr is None:
            continue
        m = len(arr)
        if m != n:
            raise InvalidInput(
                f"y_true has {n} rows but {name} has {m}",
                hint="Evaluate predictions made on exactly the rows of the evaluation set.",
            )


def missing_rows(arr: np.ndarray) -> np.ndarray:
    """Positions holding NaN / None / pd.NA / NaT."""
    kind = arr.dtype.kind
    if kind in "fc":
        return np.flatnonzero(np.isnan(arr))
    if kind in "OMm":
        return np.flatnonzero(pd.isna(arr))
    return np.empty(0, dtype=np.int64)


def describe_rows(rows: np.ndarray, limit: int = 5) -> str:
    """'3 rows (positions 4, 9, 17)' - row positions are 0-based offsets into the input."""
    shown = ", ".join(str(int(r)) for r in rows[:limit])
    more = ", ..." if len(rows) > limit else ""
    noun = "row" if len(rows) == 1 else "rows"
    return f"{len(rows)} {noun} (0-based positions {shown}{more})"


def reject_missing_labels(name: str, arr: np.ndarray) -> None:
    rows = missing_rows(arr)
    if len(rows):
        raise InvalidInput(
            f"{name} contains missing values (NaN/None) in {describe_rows(rows)}",
            hint="Drop unlabeled rows before evaluating; a label cannot be guessed.",
        )


def numeric_array(name: str, arr: np.ndarray) -> np.ndarray:
    """``arr`` as float64, or InvalidInput naming the first non-numeric rows."""
    if arr.dtype.kind in "biuf":
        return arr.astype(np.float64, copy=False)
    if arr.dtype.kind == "O":
        coerced = pd.to_numeric(pd.Series(arr), errors="coerce").to_numpy(dtype=np.float64)
        bad = np.flatnonzero(np.isnan(coerced) & ~pd.isna(arr))
        if len(bad) == 0:
            return coerced
        example = arr[bad[0]]
    else:
        bad = np.arange(min(len(arr), 5))
        example = arr[0] if len(arr) else None
    raise InvalidInput(
        f"{name} must be numeric, but {describe_rows(bad)} are not (e.g. {json_label(example)!r})",
        hint="Regression needs numeric targets and predictions; encode or drop text values.",
    )


def json_label(value: Any) -> Any:
    """A class label as a JSON-friendly scalar (numpy scalars unwrapped, others as str)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)
