"""Threshold analysis for binary scores: metrics across thresholds and the best threshold by
F1, by Youden's J, and by a cost of false positives / false negatives.

Every distinct score is a candidate threshold (read off the one sorted curve), so the best
threshold is exact, not the best point of a coarse grid. Predict positive when score >= t.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core.errors import InvalidInput
from core.evaluation._inputs import as_1d
from core.evaluation.classification import encode_labels, prepare_scores
from core.evaluation.curves import BinaryCurve, binary_curve
from core.evaluation.result import ThresholdAnalysis, ThresholdChoice, ThresholdRow


def _ratio(num: float, den: float) -> float | None:
    return None if den == 0 else float(num / den)


def default_grid(curve: BinaryCurve, points: int = 19) -> np.ndarray:
    """0.05..0.95 for probabilities; otherwise quantiles of the distinct score values."""
    lo, hi = float(curve.thresholds.min()), float(curve.thresholds.max())
    if lo >= 0.0 and hi <= 1.0:
        return np.round(np.linspace(0.05, 0.95, points), 10)
    return np.unique(np.quantile(curve.thresholds, np.linspace(0.05, 0.95, points)))


def _check_costs(cost_fp: float | None, cost_fn: float | None) -> None:
    if (cost_fp is None) != (cost_fn is None):
        raise InvalidInput(
            "give both cost_fp and cost_fn, or neither",
            hint="The cost-optimal threshold trades false positives against false negatives.",
        )
    for name, value in (("cost_fp", cost_fp), ("cost_fn", cost_fn)):
        if value is not None and (not np.isfinite(value) or value < 0):
            raise InvalidInput(f"{name} must be a finite non-negative number, got {value!r}")


def analyze_thresholds(
    curve: BinaryCurve,
    *,
    grid: Any = None,
    cost_fp: float | None = None,
    cost_fn: float | None = None,
) -> ThresholdAnalysis:
    """Table over ``grid`` plus exact best thresholds, from a precomputed curve."""
    _check_costs(cost_fp, cost_fn)
    p, n = curve.n_pos, curve.n_neg
    grid_arr = default_grid(curve) if grid is None else np.asarray(grid, dtype=np.float64)
    if grid_arr.ndim != 1 or not np.all(np.isfinite(grid_arr)):
        raise InvalidInput("threshold grid must be a 1-D list of finite numbers")
    tp, fp = curve.counts_at(grid_arr)
    rows = []
    for t, a, b in zip(grid_arr, tp, fp, strict=True):
        precision, recall, fpr = _ratio(a, a + b), _ratio(a, p), _ratio(b, n)
        rows.append(
            ThresholdRow(
                threshold=float(t),
                tp=int(a),
                fp=int(b),
                fn=int(p - a),
                tn=int(n - b),
                precision=precision,
                recall=recall,
                f1=_ratio(2 * a, a + b + p),
                fpr=fpr,
                youden_j=None if recall is None or fpr is None else recall - fpr,
                cost=None if cost_fp is None else float(cost_fp * b + cost_fn * (p - a)),
            )
        )
    result = ThresholdAnalysis(table=rows, cost_fp=cost_fp, cost_fn=cost_fn)

    # Candidate points: "predict nothing" (a threshold just above the top score) + each score.
    top = np.nextafter(curve.thresholds[0], np.inf)
    thr = np.concatenate(([top], curve.thresholds))
    tps = np.concatenate(([0.0], curve.tps))
    fps = np.concatenate(([0.0], curve.fps))

    def choose(criterion: str, values: np.ndarray, best_index: int) -> ThresholdChoice:
        a, b = tps[best_index], fps[best_index]
        return ThresholdChoice(
            criterion=criterion,  # type: ignore[arg-type]
            threshold=float(thr[best_index]),
            value=float(values[best_index]),
            tp=int(a),
            fp=int(b),
            fn=int(p - a),
            tn=int(n - b),
        )

    if p == 0:
        result.unavailable["f1"] = "no positive labels: F1 is 0 or undefined at every threshold"
    else:
        f1 = 2 * tps / (tps + fps + p)
        result.best["f1"] = choose("f1", f1, int(np.argmax(f1)))
    if p == 0 or n == 0:
        result.unavailable["youden_j"] = "Youden's J needs both positive and negative labels"
    else:
        j = tps / p - fps / n
        result.best["youden_j"] = choose("youden_j", j, int(np.argmax(j)))
    if cost_fp is None:
        result.unavailable["cost"] = "no cost_fp / cost_fn given"
    else:
        cost = cost_fp * fps + cost_fn * (p - tps)
        result.best["cost"] = choose("cost", cost, int(np.argmin(cost)))
    return result


def threshold_analysis(
    y_true: Any,
    y_score: Any,
    *,
    pos_label: Any = None,
    grid: Any = None,
    cost_fp: float | None = None,
    cost_fn: float | None = None,
) -> ThresholdAnalysis:
    """Threshold analysis from labels and positive-class scores (binary only)."""
    t = as_1d("y_true", y_true)
    if len(t) == 0:
        raise InvalidInput("the evaluation set is empty")
    enc = encode_labels(t, None, None, pos_label)
    if not enc.binary or enc.pos_index is None:
        raise InvalidInput(
            "threshold analysis needs binary labels with a known positive class",
            hint=enc.pos_problem or f"y_true has {enc.k} classes.",
        )
    scores = prepare_scores(y_score, len(t), enc)
    if scores.problem:
        raise InvalidInput(scores.problem, hint="Drop or fix rows whose score is not finite.")
    curve = binary_curve(enc.true_codes == enc.pos_index, scores.values)
    return analyze_thresholds(curve, grid=grid, cost_fp=cost_fp, cost_fn=cost_fn)
