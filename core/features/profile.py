"""Column profiles for feature engineering: kind (numeric, boolean, categorical, datetime,
identifier, text), missingness, cardinality and distribution."""

from __future__ import annotations

import warnings
from typing import Any

from pydantic import BaseModel

NUMERIC, BOOLEAN, CATEGORICAL, DATETIME, IDENTIFIER, TEXT = (
    "numeric",
    "boolean",
    "categorical",
    "datetime",
    "identifier",
    "text",
)
MAX_CATEGORIES = 50


class ColumnProfile(BaseModel):
    name: str
    kind: str
    dtype: str
    missing_fraction: float
    cardinality: int
    distribution: dict[str, Any]


def as_datetime(values: Any) -> Any | None:
    """The column as datetimes when at least 90% of its non-missing values parse, else None."""
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(values):
        return values
    if not (pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values)):
        return None
    present = values.dropna()
    if present.empty:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = pd.to_datetime(values, errors="coerce", utc=True, format="mixed")
    if parsed.notna().sum() < 0.9 * len(present):
        return None
    return parsed


def column_kind(values: Any) -> str:
    import pandas as pd

    n = max(1, int(values.notna().sum()))
    unique = int(values.nunique(dropna=True))
    if pd.api.types.is_bool_dtype(values) or (
        unique <= 2 and set(values.dropna().unique()) <= {0, 1}
    ):
        return BOOLEAN
    if pd.api.types.is_numeric_dtype(values):
        return NUMERIC
    if as_datetime(values) is not None:
        return DATETIME
    if unique <= MAX_CATEGORIES or unique < 0.05 * n:
        return CATEGORICAL
    if unique > 0.9 * n:
        lengths = values.dropna().astype(str).str.len()
        return TEXT if lengths.mean() > 40 else IDENTIFIER
    return CATEGORICAL


def profile_column(name: str, values: Any) -> ColumnProfile:
    kind = column_kind(values)
    dist: dict[str, Any] = {}
    if kind == NUMERIC:
        present = values.dropna().astype(float)
        if len(present):
            q = present.quantile([0.0, 0.25, 0.5, 0.75, 1.0]).tolist()
            dist = {
                "mean": float(present.mean()),
                "std": float(present.std(ddof=0)),
                "min": q[0],
                "p25": q[1],
                "median": q[2],
                "p75": q[3],
                "max": q[4],
                "skew": float(present.skew()) if len(present) > 2 else 0.0,
            }
    elif kind in (CATEGORICAL, BOOLEAN):
        shares = values.value_counts(normalize=True, dropna=True).head(5)
        dist = {"top": {str(k): round(float(v), 4) for k, v in shares.items()}}
    elif kind == DATETIME:
        parsed = as_datetime(values).dropna()
        if len(parsed):
            dist = {"min": parsed.min().isoformat(), "max": parsed.max().isoformat()}
    return ColumnProfile(
        name=str(name),
        kind=kind,
        dtype=str(values.dtype),
        missing_fraction=round(float(values.isna().mean()), 4),
        cardinality=int(values.nunique(dropna=True)),
        distribution=dist,
    )


def profile_frame(frame: Any) -> list[ColumnProfile]:
    return [profile_column(c, frame[c]) for c in frame.columns]
