"""Score-sorted binary curves (ROC, precision-recall), calibration bins and grouped AUC.

One sort of the scores gives the cumulative true/false positives at every distinct threshold;
AUC, average precision, threshold analysis and the plotted curves all read that one curve.
Ties are grouped exactly like scikit-learn's ``roc_curve`` (one point per distinct score).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.evaluation.result import Calibration, Curve


@dataclass
class BinaryCurve:
    """Cumulative counts at each distinct score, highest score first (predict positive if >=)."""

    thresholds: np.ndarray
    tps: np.ndarray  # float64 counts of positives scoring >= thresholds[i]
    fps: np.ndarray

    @property
    def n_pos(self) -> float:
        return float(self.tps[-1]) if len(self.tps) else 0.0

    @property
    def n_neg(self) -> float:
        return float(self.fps[-1]) if len(self.fps) else 0.0

    def roc_auc(self) -> float | None:
        """Trapezoidal ROC area; None when only one class is present."""
        p, n = self.n_pos, self.n_neg
        if p == 0 or n == 0:
            return None
        fps = np.concatenate(([0.0], self.fps))
        tps = np.concatenate(([0.0], self.tps))
        # The trapezoid sum on raw counts is a sum of integers (exact in float64 below 2**53),
        # so the only rounding is the final division.
        twice_area = np.dot(np.diff(fps), tps[1:] + tps[:-1])
        return float(twice_area / (2.0 * p * n))

    def average_precision(self) -> float | None:
        """sum_i (R_i - R_{i-1}) P_i over thresholds (scikit-learn's definition, no interpolation)."""
        p = self.n_pos
        if p == 0:
            return None
        precision = self.tps / (self.tps + self.fps)
        recall_steps = np.diff(np.concatenate(([0.0], self.tps))) / p
        return float(np.dot(recall_steps, precision))

    def counts_at(self, threshold: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """(tp, fp) when predicting positive for score >= threshold."""
        k = np.searchsorted(-self.thresholds, -np.asarray(threshold, dtype=np.float64), "right")
        tps = np.concatenate(([0.0], self.tps))
        fps = np.concatenate(([0.0], self.fps))
        return tps[k], fps[k]

    def roc_points(self) -> tuple[np.ndarray, np.ndarray]:
        fpr = np.concatenate(([0.0], self.fps)) / self.n_neg
        tpr = np.concatenate(([0.0], self.tps)) / self.n_pos
        return fpr, tpr

    def pr_points(self) -> tuple[np.ndarray, np.ndarray]:
        """Recall and precision, ending at recall 0 / precision 1 like scikit-learn's curve."""
        precision = self.tps / (self.tps + self.fps)
        recall = self.tps / self.n_pos
        return np.concatenate((recall[::-1], [0.0])), np.concatenate((precision[::-1], [1.0]))


def binary_curve(
    is_positive: np.ndarray, score: np.ndarray, ascending_order: np.ndarray | None = None
) -> BinaryCurve:
    """Build the curve; pass ``ascending_order = np.argsort(score)`` to reuse a sort."""
    order = (np.argsort(score) if ascending_order is None else ascending_order)[::-1]
    s = score[order]
    y = is_positive[order]
    # Within a run of tied scores only the run's end matters, so an unstable sort is fine.
    last_of_run = np.flatnonzero(s[1:] != s[:-1])
    idx = np.append(last_of_run, len(s) - 1)
    tps = np.cumsum(y, dtype=np.float64)[idx]
    fps = (idx + 1).astype(np.float64) - tps
    return BinaryCurve(thresholds=s[idx], tps=tps, fps=fps)


def downsample(x: np.ndarray, y: np.ndarray, max_points: int = 1000) -> tuple[list, list]:
    """Evenly spaced points of a curve (endpoints kept) so reports stay small on big data."""
    if len(x) > max_points:
        keep = np.unique(np.linspace(0, len(x) - 1, max_points).round().astype(np.int64))
        x, y = x[keep], y[keep]
    return x.tolist(), y.tolist()


def curves_for(curve: BinaryCurve, label: str, max_points: int = 1000) -> list[Curve]:
    """ROC and PR curves for plotting (needs both classes present)."""
    fpr, tpr = curve.roc_points()
    recall, precision = curve.pr_points()
    rx, ry = downsample(fpr, tpr, max_points)
    px, py = downsample(recall, precision, max_points)
    return [
        Curve(kind="roc", label=label, x=rx, y=ry, area=curve.roc_auc()),
        Curve(kind="pr", label=label, x=px, y=py, area=curve.average_precision()),
    ]


def calibration_bin_ids(prob: np.ndarray, n_bins: int) -> np.ndarray:
    """Uniform bin of each probability, assigned exactly like ``sklearn.calibration_curve``."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return np.searchsorted(edges[1:-1], prob)


def calibration_from_bins(
    kind: str,
    n_bins: int,
    counts: np.ndarray,
    prob_sums: np.ndarray,
    true_sums: np.ndarray,
) -> Calibration | None:
    """Reliability table + ECE from per-bin totals (None when there are no rows)."""
    total = counts.sum()
    if total == 0:
        return None
    nonzero = np.flatnonzero(counts)
    frac = true_sums[nonzero] / counts[nonzero]
    conf = prob_sums[nonzero] / counts[nonzero]
    ece = float(np.dot(counts[nonzero] / total, np.abs(frac - conf)))
    return Calibration(
        kind=kind,  # type: ignore[arg-type]
        n_bins=n_bins,
        bin_edges=np.linspace(0.0, 1.0, n_bins + 1).tolist(),
        bin_index=nonzero.tolist(),
        mean_predicted=conf.tolist(),
        fraction_positive=frac.tolist(),
        counts=counts[nonzero].astype(np.int64).tolist(),
        ece=ece,
    )


def calibration(
    truth: np.ndarray, prob: np.ndarray, n_bins: int = 10, kind: str = "positive_class"
) -> Calibration | None:
    """Calibration curve (uniform bins) and expected calibration error."""
    ids = calibration_bin_ids(prob, n_bins)
    counts = np.bincount(ids, minlength=n_bins).astype(np.float64)
    prob_sums = np.bincount(ids, weights=prob, minlength=n_bins)
    true_sums = np.bincount(ids, weights=truth.astype(np.float64), minlength=n_bins)
    return calibration_from_bins(kind, n_bins, counts, prob_sums, true_sums)


def grouped_auc(
    is_positive: np.ndarray,
    score: np.ndarray,
    groups: np.ndarray,
    n_groups: int,
    ascending_order: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC AUC per group (NaN where a group lacks a class) with mid-rank tie handling.

    Rows are ordered by (group, score) with one stable integer sort on top of the score sort;
    then AUC_g = sum over tie runs of P_run * (negatives below + N_run / 2) / (P_g * N_g), which
    equals the trapezoidal ROC area scikit-learn computes. Returns (auc, n_pos, n_neg).
    """
    order = np.argsort(score) if ascending_order is None else ascending_order
    g_sorted = groups[order]
    by_group = np.argsort(g_sorted, kind="stable")
    order = order[by_group]
    g = g_sorted[by_group]
    s = score[order]
    pos = is_positive[order]
    n = len(s)
    if n == 0:
        empty = np.zeros(n_groups)
        return np.full(n_groups, np.nan), empty, empty
    new_run = np.empty(n, dtype=bool)
    new_run[0] = True
    new_run[1:] = (g[1:] != g[:-1]) | (s[1:] != s[:-1])
    run_id = np.cumsum(new_run) - 1
    run_group = g[new_run]
    run_pos = np.bincount(run_id, weights=pos.astype(np.float64))
    run_size = np.bincount(run_id).astype(np.float64)
    run_neg = run_size - run_pos
    # Negatives strictly below each run within its group: cumulative over runs minus the
    # cumulative count at the group's start.
    cum_neg = np.cumsum(run_neg) - run_neg
    group_first_run = np.flatnonzero(np.r_[True, run_group[1:] != run_group[:-1]])
    offsets = np.repeat(cum_neg[group_first_run], np.diff(np.r_[group_first_run, len(run_group)]))
    below = cum_neg - offsets
    contrib = run_pos * (below + 0.5 * run_neg)
    u = np.bincount(run_group, weights=contrib, minlength=n_groups)
    n_pos = np.bincount(run_group, weights=run_pos, minlength=n_groups)
    n_neg = np.bincount(run_group, weights=run_neg, minlength=n_groups)
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = np.where((n_pos > 0) & (n_neg > 0), u / (n_pos * n_neg), np.nan)
    return auc, n_pos, n_neg
