"""Error analysis: the data slices where the model does worst.

Numeric features are cut at their quantiles (like ``pd.qcut(..., duplicates="drop")``),
categorical ones (and numeric ones with few distinct values) are split by value, missing
values form their own slice. Slices smaller than ``min_slice_size`` are ignored: a 100 % error
rate on three rows says nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from core.errors import InvalidInput
from core.evaluation._inputs import json_label
from core.evaluation.result import Slice, SliceAnalysis

_FEW_VALUES = 10  # numeric columns with at most this many distinct values are treated by value


def _numeric_slices(name: str, x: np.ndarray, n_bins: int) -> tuple[np.ndarray, list[dict]] | None:
    """(slice code per row, -1 for missing; slice descriptions) or None to split by value."""
    ok = ~np.isnan(x)
    values = x[ok]
    if len(values) == 0 or len(np.unique(values)) <= _FEW_VALUES:
        return None
    edges = np.unique(np.quantile(values, np.linspace(0.0, 1.0, n_bins + 1)))
    codes = np.full(len(x), -1, dtype=np.int64)
    # Right-closed bins (first one closed on both sides), as pd.qcut builds them.
    codes[ok] = np.searchsorted(edges[1:-1], values, side="left")
    info = []
    for i in range(len(edges) - 1):
        lo, hi = float(edges[i]), float(edges[i + 1])
        left = "[" if i == 0 else "("
        info.append(
            {
                "description": f"{name} in {left}{lo:.6g}, {hi:.6g}]",
                "kind": "numeric_bin",
                "lower": lo,
                "upper": hi,
            }
        )
    return codes, info


def _category_slices(name: str, series: pd.Series) -> tuple[np.ndarray, list[dict]]:
    codes, uniques = pd.factorize(series, sort=True)
    info = []
    for value in uniques:
        label = json_label(value)
        info.append({"description": f"{name} == {label!r}", "kind": "category", "value": label})
    return codes.astype(np.int64), info


def worst_slices(
    features_df: pd.DataFrame,
    errors: Any,
    *,
    error_measure: str,
    min_slice_size: int = 30,
    n_bins: int = 4,
    top_k: int = 10,
    columns: list[str] | None = None,
) -> SliceAnalysis:
    """Slices with the highest mean per-row error (``errors``: 0/1 misses or absolute errors)."""
    if not isinstance(features_df, pd.DataFrame):
        raise InvalidInput("features_df must be a pandas DataFrame of the evaluated rows")
    err = np.asarray(errors, dtype=np.float64)
    if len(features_df) != len(err):
        raise InvalidInput(
            f"features_df has {len(features_df)} rows but there are {len(err)} predictions",
            hint="Pass the feature rows the predictions were made on, in the same order.",
        )
    if min_slice_size < 1 or n_bins < 2 or top_k < 1:
        raise InvalidInput("min_slice_size and top_k must be >= 1 and n_bins >= 2")
    if columns is None:
        columns = [str(c) for c in features_df.columns]
    else:
        known = {str(c): c for c in features_df.columns}
        unknown = [c for c in columns if c not in known]
        if unknown:
            raise InvalidInput(
                f"unknown slice column(s) {unknown}",
                hint=f"Columns in features_df: {list(known)}.",
            )
    overall = float(err.mean()) if len(err) else float("nan")
    found: list[Slice] = []
    skipped = 0
    by_name = {str(c): c for c in features_df.columns}
    for name in columns:
        series = features_df[by_name[name]]
        split = None
        if series.dtype.kind in "iuf":
            split = _numeric_slices(
                name, series.to_numpy(dtype=np.float64, na_value=np.nan), n_bins
            )
        codes, info = split if split is not None else _category_slices(name, series)
        # Shift so "missing" (-1) becomes code 0 and gets its own slice.
        shifted = codes + 1
        size = len(info) + 1
        counts = np.bincount(shifted, minlength=size)
        sums = np.bincount(shifted, weights=err, minlength=size)
        info = [{"description": f"{name} is missing", "kind": "missing"}, *info]
        for code in np.flatnonzero(counts):
            if counts[code] < min_slice_size:
                skipped += 1
                continue
            error = float(sums[code] / counts[code])
            found.append(
                Slice(
                    feature=name,
                    count=int(counts[code]),
                    error=error,
                    lift=error - overall,
                    **info[code],
                )
            )
    found.sort(key=lambda s: (-s.error, -s.count))
    return SliceAnalysis(
        error_measure=error_measure,
        overall_error=overall,
        min_slice_size=min_slice_size,
        slices=found[:top_k],
        skipped_small=skipped,
        features=columns,
    )
