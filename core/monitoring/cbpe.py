"""Confidence-based performance estimation (CBPE) as NannyML 0.13.1 publishes it: isotonic
calibration fitted on the reference (only where cross-validation shows it lowers the calibration
error), then the expected confusion matrix of the model's own predictions, and ROC AUC.

Binary and multiclass (one-vs-rest calibrators, rows renormalised). No pandas: plain arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

ECE_BINS = 10
CV_SPLITS = 10
CV_TEST_SIZE = 0.1
CV_SEED = 42
PERFECT_AUC = 0.999


class _Isotonic:
    """Isotonic regression from score to P(label), clipped outside the reference's range."""

    def __init__(self) -> None:
        from sklearn.isotonic import IsotonicRegression

        self._reg = IsotonicRegression(out_of_bounds="clip", increasing=True)

    def fit(self, scores: np.ndarray, y: np.ndarray) -> _Isotonic:
        self._reg.fit(scores, y)
        return self

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        return np.asarray(self._reg.predict(scores), dtype=np.float64)


def identity(scores: np.ndarray) -> np.ndarray:
    return np.asarray(scores, dtype=np.float64)


def equal_count_ece(y: np.ndarray, scores: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE over bins of equal row counts of the sorted scores (CBPE's definition; the last bin
    takes the remainder)."""
    n = len(scores)
    if n <= 2 * bins:
        bins = n // 2
    if bins < 2:
        raise ValueError(f"{n} rows cannot be split into 2 calibration bins")
    width = n // bins
    edges = np.asarray(range(0, n + 1, width))
    edges[-1] = n
    order = np.argsort(scores)
    s, t = scores[order], y[order]
    return float(
        sum(
            (r - left) / n * abs(s[left:r].mean() - t[left:r].mean())
            for left, r in zip(edges[:-1], edges[1:], strict=True)
        )
    )


def needs_calibration(y: np.ndarray, scores: np.ndarray) -> bool:
    """Whether isotonic calibration lowers the ECE on held-out tenths of the reference (ten
    stratified shuffle splits, pooled). Scores that already rank perfectly are left alone: an
    isotonic fit on them collapses to 0/1 and would claim certainty."""
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedShuffleSplit

    if np.isnan(scores).any() or np.isnan(y).any():
        raise ValueError("reference scores or labels contain NaN")
    if len(np.unique(y)) == 1 or roc_auc_score(y, scores) > PERFECT_AUC:
        return False
    sss = StratifiedShuffleSplit(n_splits=CV_SPLITS, test_size=CV_TEST_SIZE, random_state=CV_SEED)
    ys, raw, cal = [], [], []
    for train, test in sss.split(scores, y):
        f = _Isotonic().fit(scores[train], y[train])
        ys.append(y[test])
        raw.append(scores[test])
        cal.append(f(scores[test]))
    y_t, raw_t, cal_t = np.concatenate(ys), np.concatenate(raw), np.concatenate(cal)
    return equal_count_ece(y_t, raw_t) > equal_count_ece(y_t, cal_t)


def estimate_roc_auc(calibrated: np.ndarray, scores: np.ndarray) -> float:
    """Expected ROC AUC: rows ranked by the model's own score, each counting as a calibrated
    share of a positive and the rest of a negative (NannyML's estimator, its rounding kept)."""
    order = np.argsort(scores)[::-1]
    c = calibrated[order]
    tps = np.r_[0.0, np.cumsum(c)]
    fps = np.r_[0.0, 1 + np.arange(len(c)) - np.cumsum(c)]
    tps, fps = np.round(tps, 5), np.round(fps, 5)
    if tps[-1] <= 0 or fps[-1] <= 0:
        return float("nan")  # no expected positives (or negatives): the AUC is undefined
    return float(np.trapezoid(tps / tps[-1], fps / fps[-1]))


@dataclass
class Calibration:
    """One calibrator per probability column (binary: the positive column only)."""

    n_classes: int
    maps: list[Any]
    calibrated: list[bool]
    perfect_ranking: list[bool]  # the reference's scores separate the classes (AUC > 0.999)

    def apply(self, proba: np.ndarray) -> np.ndarray:
        """Calibrated probabilities, same shape as ``proba``."""
        if self.n_classes == 2:
            pos = self.maps[0](proba[:, 1])
            return np.column_stack([1 - pos, pos])
        out = np.column_stack([m(proba[:, k]) for k, m in enumerate(self.maps)])
        total = out.sum(axis=1, keepdims=True)
        # A row every calibrator sends to 0 gets no information: uniform, as NannyML does.
        uniform = np.full_like(out, 1 / out.shape[1])
        return np.divide(out, total, out=uniform, where=total != 0)


def fit_calibration(ref_proba: np.ndarray, ref_y: np.ndarray) -> Calibration:
    """Calibrators fitted on the reference's probabilities against its class indices
    (``ref_y[i]`` = the column of row i's true class)."""
    k = ref_proba.shape[1]
    cols = [1] if k == 2 else list(range(k))
    from sklearn.metrics import roc_auc_score

    maps: list[Any] = []
    flags: list[bool] = []
    perfect: list[bool] = []
    for col in cols:
        y = (ref_y == col).astype(np.float64)
        s = ref_proba[:, col].astype(np.float64)
        perfect.append(len(np.unique(y)) == 2 and roc_auc_score(y, s) > PERFECT_AUC)
        if needs_calibration(y, s):
            maps.append(_Isotonic().fit(s, y))
            flags.append(True)
        else:
            maps.append(identity)
            flags.append(False)
    return Calibration(k, maps, flags, perfect)


def estimate(proba: np.ndarray, pred_idx: np.ndarray, calibration: Calibration) -> dict[str, float]:
    """Expected metrics of predictions ``pred_idx`` (column index of each row's predicted class,
    the model's own decision) given the raw probabilities and the reference's calibration."""
    cal = calibration.apply(proba)
    n = len(proba)
    if proba.shape[1] == 2:
        p, pos = cal[:, 1], pred_idx == 1
        tp, fp = float(p[pos].sum()), float((1 - p[pos]).sum())
        fn, tn = float(p[~pos].sum()), float((1 - p[~pos]).sum())
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = tp / (tp + 0.5 * (fp + fn)) if tp + fp + fn else 0.0
        out = {"accuracy": (tp + tn) / n, "precision": precision, "recall": recall, "f1": f1}
        out["roc_auc"] = estimate_roc_auc(p, proba[:, 1])
        return out
    acc = float(cal[np.arange(n), pred_idx].mean())
    aucs = [estimate_roc_auc(cal[:, k], proba[:, k]) for k in range(proba.shape[1])]
    return {"accuracy": acc, "roc_auc": float(np.mean(aucs))}
