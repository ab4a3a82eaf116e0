"""Per-column drift chosen by type and size as Evidently chooses it, and dataset drift.

Method choice (Evidently 0.7's default, ``_get_default_stattest``):

- reference of at most ``small_reference_rows`` (1,000) rows: numeric columns with more than 5
  distinct values get the two-sample Kolmogorov–Smirnov test; categorical columns (and numeric
  ones with at most 5 values) chi-square, or a two-proportion z-test when there are only two;
- larger references: numeric columns the Wasserstein distance normalized by the reference's
  standard deviation, categorical ones (and numeric with at most 5 values) Jensen–Shannon.

PSI is reported beside Wasserstein as a second score. p-value tests drift below their
threshold, distances at or above it. KS, chi-square and the z-test come from scipy; the
Wasserstein distance and the binned histograms use vectorized forms on sorted arrays (one
sort per column serves every statistic) that tests/test_monitoring_drift.py checks against
``scipy.stats.wasserstein_distance`` and ``numpy.histogram``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

NUMERIC, CATEGORICAL = "numeric", "categorical"
P_VALUE_METHODS = ("ks", "chisquare", "z")
DEFAULT_THRESHOLDS = {
    "ks": 0.05,
    "chisquare": 0.05,
    "z": 0.05,
    "wasserstein": 0.1,
    "jensenshannon": 0.1,
    "psi": 0.1,
}


@dataclass
class DriftConfig:
    """Defaults are Evidently's; every one is configurable (thresholds per method)."""

    drift_share: float = 0.5  # dataset drift when at least this share of columns drifted
    small_reference_rows: int = 1000
    min_rows: int = 30  # fewer current (or reference) values: no verdict for the column
    thresholds: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    # Replace the chosen method's threshold for one column (e.g. the prediction column).
    column_thresholds: dict[str, float] = field(default_factory=dict)

    def threshold(self, method: str, column: str) -> float:
        return self.column_thresholds.get(column, self.thresholds.get(method, 0.05))


@dataclass
class ColumnDrift:
    column: str
    kind: str
    status: str  # ok | drift | insufficient_data | all_missing | missing_in_current | ...
    method: str | None = None
    score: float | None = None
    threshold: float | None = None
    drifted: bool | None = None
    psi: float | None = None
    n_reference: int = 0
    n_current: int = 0
    missing_reference: int = 0
    missing_current: int = 0
    new_categories: list[Any] = field(default_factory=list)
    missing_categories: list[Any] = field(default_factory=list)
    message: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DriftResult:
    columns: list[ColumnDrift]
    evaluated: int
    drifted: int
    share: float | None
    drift_share: float
    dataset_drift: bool | None
    schema: dict[str, list[str]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "columns": [c.as_dict() for c in self.columns],
            "evaluated": self.evaluated,
            "drifted": self.drifted,
            "share": self.share,
            "drift_share": self.drift_share,
            "dataset_drift": self.dataset_drift,
            "schema": self.schema,
        }


# Vectorized statistics on sorted arrays --------------------------------------------------
def finite_sorted(values: np.ndarray) -> tuple[np.ndarray, int]:
    """The finite values sorted (a view into one sorted copy) and how many were not finite."""
    s = np.sort(np.asarray(values, dtype=np.float64))
    lo = int(np.searchsorted(s, -np.inf, side="right"))
    hi = int(np.searchsorted(s, np.inf, side="left"))
    return s[lo:hi], len(s) - (hi - lo)


def wasserstein_sorted(a: np.ndarray, b: np.ndarray) -> float:
    """The first Wasserstein distance of two sorted samples, equal to
    ``scipy.stats.wasserstein_distance`` (which sorts and searches 1.1 M values per call).

    It integrates the distance between the two quantile functions, walking the larger
    sample's quantile steps ``(j/m, (j+1)/m]`` in cache-sized chunks: each step holds at most
    one step boundary ``(i+1)/n`` of the smaller sample, found by integer arithmetic, so
    there is no merge and no search (and ties need no special case).
    """
    n, m = len(a), len(b)
    if n > m:
        a, b, n, m = b, a, m, n
    total = 0.0
    for start in range(0, m, _CHUNK):
        j = np.arange(start, min(start + _CHUNK, m), dtype=np.int64)
        jn = j * n  # interval bounds in units of 1 / (n m): [j n, (j + 1) n]
        i_lo = jn // m
        hi = jn + n
        cut = np.minimum((i_lo + 1) * m, hi)
        bj = b[start : start + len(j)]
        below = (cut - jn) * np.abs(a[i_lo] - bj)
        above = (hi - cut) * np.abs(a[np.minimum(i_lo + 1, n - 1)] - bj)
        total += float(below.sum() + above.sum())
    return total / (n * m)


_CHUNK = 1 << 16


def sorted_histogram(s: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """``numpy.histogram(s, edges)[0]`` for a sorted ``s`` (last bin closed)."""
    idx = np.searchsorted(s, edges, side="left")
    idx[-1] = np.searchsorted(s, edges[-1], side="right")
    return np.diff(idx)


def sturges_edges(lo: float, hi: float, n: int) -> np.ndarray:
    """``numpy.histogram_bin_edges(x, "sturges")`` from x's range and size only."""
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    width = (hi - lo) / (math.log2(n) + 1.0)
    bins = int(math.ceil((hi - lo) / width))
    return np.linspace(lo, hi, bins + 1)


def _fill_zeroes(p: np.ndarray) -> np.ndarray:
    """Evidently's ``feel_zeroes``: empty buckets get a tiny share so logs stay finite."""
    nonzero = p[p != 0]
    if len(nonzero) == 0:
        return p
    small = nonzero.min()
    return np.where(p == 0, small / 10**6 if small <= 0.0001 else 0.0001, p)


def psi(ref_share: np.ndarray, cur_share: np.ndarray) -> float:
    r, c = _fill_zeroes(ref_share), _fill_zeroes(cur_share)
    return float(np.sum((r - c) * np.log(r / c)))


def jensenshannon(ref_share: np.ndarray, cur_share: np.ndarray) -> float:
    from scipy.spatial import distance

    return float(distance.jensenshannon(ref_share, cur_share))


def chisquare_p(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """Evidently's chi-square: expected = reference counts scaled to the current size."""
    from scipy.stats import chisquare

    expected = ref_counts * (cur_counts.sum() / ref_counts.sum())
    if np.any((expected == 0) & (cur_counts > 0)):
        return 0.0  # a value the reference never had: infinitely unlikely under it
    keep = expected > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(chisquare(cur_counts[keep], expected[keep])[1])


def z_p(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """Two-proportion z-test (pooled) on the share of the second of two values."""
    from scipy.stats import norm

    n1, n2 = ref_counts.sum(), cur_counts.sum()
    p1, p2 = ref_counts[1:].sum() / n1, cur_counts[1:].sum() / n2
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    if pooled in (0.0, 1.0):
        return 1.0
    z = (p1 - p2) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    return float(2 * (1 - norm.cdf(abs(z))))


# One column ----------------------------------------------------------------------------
def _distinct_head(s: np.ndarray, k: int) -> np.ndarray:
    """The first ``k + 1`` distinct values of a sorted array (all if fewer): O(k log n)."""
    out, i = [], 0
    while i < len(s) and len(out) <= k:
        out.append(s[i])
        i = int(np.searchsorted(s, s[i], side="right"))
    return np.array(out, dtype=s.dtype)


def _distinct(s: np.ndarray) -> np.ndarray:
    """Every distinct value of a sorted array, in O(n)."""
    return s[np.r_[True, s[1:] != s[:-1]]] if len(s) else s


def _sorted_counts(s: np.ndarray, keys: np.ndarray) -> np.ndarray:
    return (np.searchsorted(s, keys, side="right") - np.searchsorted(s, keys, side="left")).astype(
        float
    )


def numeric_drift(
    column: str, reference: np.ndarray, current: np.ndarray, cfg: DriftConfig
) -> ColumnDrift:
    ref, miss_r = finite_sorted(reference)
    cur, miss_c = finite_sorted(current)
    out = ColumnDrift(
        column, NUMERIC, "ok", n_reference=len(ref), n_current=len(cur),
        missing_reference=miss_r, missing_current=miss_c,
    )  # fmt: skip
    if bad := _too_small(out, cfg):
        return bad
    small = len(ref) <= cfg.small_reference_rows
    keys = np.union1d(_distinct_head(ref, 5), _distinct_head(cur, 5))
    if len(keys) <= 5:  # as Evidently: a numeric column with at most 5 values is categorical
        return _categorical_verdict(
            out, _sorted_counts(ref, keys), _sorted_counts(cur, keys), small, cfg
        )
    if small:
        from scipy.stats import ks_2samp

        out.method, out.score = "ks", float(ks_2samp(ref, cur)[1])
    else:
        std = max(float(np.std(ref)), 0.001)
        out.method, out.score = "wasserstein", wasserstein_sorted(ref, cur) / std
    out.psi = binned_psi(ref, cur)
    return _verdict(out, cfg)


def binned_psi(ref: np.ndarray, cur: np.ndarray) -> float:
    """Evidently's PSI buckets on sorted finite samples: Sturges bins over both samples, or
    the distinct values when the reference has at most 20."""
    head = _distinct_head(ref, 20)
    if len(head) <= 20:
        keys = np.union1d(head, _distinct(cur))
        return psi(_sorted_counts(ref, keys) / len(ref), _sorted_counts(cur, keys) / len(cur))
    edges = sturges_edges(min(ref[0], cur[0]), max(ref[-1], cur[-1]), len(ref) + len(cur))
    return psi(sorted_histogram(ref, edges) / len(ref), sorted_histogram(cur, edges) / len(cur))


def categorical_drift(
    column: str,
    ref_counts: Mapping[Any, int],
    cur_counts: Mapping[Any, int],
    cfg: DriftConfig,
    *,
    missing_reference: int = 0,
    missing_current: int = 0,
) -> ColumnDrift:
    """Drift of a categorical column from its value counts (missing values excluded)."""
    keys = sorted(set(ref_counts) | set(cur_counts), key=str)
    r = np.array([ref_counts.get(k, 0) for k in keys], dtype=float)
    c = np.array([cur_counts.get(k, 0) for k in keys], dtype=float)
    out = ColumnDrift(
        column, CATEGORICAL, "ok", n_reference=int(r.sum()), n_current=int(c.sum()),
        missing_reference=missing_reference, missing_current=missing_current,
        new_categories=[_plain(k) for k in keys if not ref_counts.get(k)][:50],
        missing_categories=[_plain(k) for k in keys if not cur_counts.get(k)][:50],
    )  # fmt: skip
    if bad := _too_small(out, cfg):
        return bad
    return _categorical_verdict(out, r, c, out.n_reference <= cfg.small_reference_rows, cfg)


def _categorical_verdict(
    out: ColumnDrift, r: np.ndarray, c: np.ndarray, small: bool, cfg: DriftConfig
) -> ColumnDrift:
    if small:
        out.method = "chisquare" if len(r) > 2 else "z"
        if len(r) == 1:
            out.score = 1.0
        else:
            out.score = chisquare_p(r, c) if len(r) > 2 else z_p(r, c)
    else:
        out.method, out.score = "jensenshannon", jensenshannon(r / r.sum(), c / c.sum())
    out.psi = psi(r / r.sum(), c / c.sum())
    return _verdict(out, cfg)


def _too_small(out: ColumnDrift, cfg: DriftConfig) -> ColumnDrift | None:
    if out.n_current == 0 and out.missing_current:
        out.status, out.message = "all_missing", "every current value is missing (NaN or null)"
    elif out.n_reference == 0:
        out.status, out.message = "all_missing", "the reference has no values for this column"
    elif min(out.n_reference, out.n_current) < cfg.min_rows:
        out.status = "insufficient_data"
        out.message = (
            f"{out.n_current} current and {out.n_reference} reference values; at least "
            f"{cfg.min_rows} of each are needed for a verdict"
        )
    else:
        return None
    return out


def _verdict(out: ColumnDrift, cfg: DriftConfig) -> ColumnDrift:
    out.threshold = cfg.threshold(out.method, out.column)
    if out.score is None or not math.isfinite(out.score):
        out.status, out.message = "error", f"{out.method} gave no finite score"
        return out
    if out.method == "ks":
        out.drifted = out.score <= out.threshold
    elif out.method in P_VALUE_METHODS:
        out.drifted = out.score < out.threshold
    else:
        out.drifted = out.score >= out.threshold
    out.status = "drift" if out.drifted else "ok"
    return out


def threshold_ratio(method: str, score: float, threshold: float) -> float:
    """A score relative to its threshold such that above 1 is always drift: p-values drift
    below their threshold (threshold / score), distances above it (score / threshold)."""
    if method in P_VALUE_METHODS:
        return threshold / max(score, 1e-12)
    return score / threshold if threshold else 0.0


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


# Dataset ---------------------------------------------------------------------------------
def value_counts(values: Any) -> tuple[dict[Any, int], int]:
    """Counts of the non-missing values of an array-like, and how many were missing."""
    import pandas as pd

    s = values if isinstance(values, pd.Series) else pd.Series(values)
    counts = s.value_counts(dropna=True)
    return {_plain(k): int(v) for k, v in counts.items()}, int(len(s) - counts.sum())


def dataset_drift(
    reference: Mapping[str, Any],
    current: Mapping[str, Any],
    kinds: Mapping[str, str],
    cfg: DriftConfig | None = None,
    *,
    workers: int = 2,
) -> DriftResult:
    """Drift of every column in ``kinds``. Columns are numpy arrays (numeric) or array-likes
    / precomputed ``(counts, missing)`` pairs (categorical); a column absent on either side
    is reported as a schema change, never compared."""
    cfg = cfg or DriftConfig()
    schema = {
        "missing_in_current": sorted(c for c in kinds if c not in current),
        "new_in_current": sorted(c for c in current if c not in kinds),
        "missing_in_reference": sorted(c for c in kinds if c not in reference),
    }

    def one(col: str) -> ColumnDrift:
        kind = kinds[col]
        if col not in current:
            return ColumnDrift(col, kind, "missing_in_current", message="not in the current data")
        if col not in reference:
            return ColumnDrift(col, kind, "missing_in_reference", message="not in the reference")
        if kind == NUMERIC:
            return numeric_drift(col, reference[col], current[col], cfg)
        ref, cur = (_counts(reference[col]), _counts(current[col]))
        return categorical_drift(
            col, ref[0], cur[0], cfg, missing_reference=ref[1], missing_current=cur[1]
        )

    cols = list(kinds)
    if workers > 1 and len(cols) > 1:
        # numpy's sorts and ufuncs release the GIL: columns run in parallel on the cores.
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(one, cols))
    else:
        results = [one(c) for c in cols]
    judged = [r for r in results if r.drifted is not None]
    drifted = sum(1 for r in judged if r.drifted)
    share = drifted / len(judged) if judged else None
    return DriftResult(
        results,
        len(judged),
        drifted,
        share,
        cfg.drift_share,
        None if share is None else share >= cfg.drift_share,
        schema,
    )


def _counts(values: Any) -> tuple[dict[Any, int], int]:
    if isinstance(values, tuple) and len(values) == 2 and isinstance(values[0], dict):
        return values
    return value_counts(values)
