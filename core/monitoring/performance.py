"""Performance without labels (confidence-based estimation, as NannyML's CBPE) and with them.

The estimate is HEURISTIC: it is what the model's own probabilities imply about its accuracy,
correct only while they stay calibrated. Its assumptions travel with every number.
"""

from __future__ import annotations

from typing import Any

import numpy as np

ASSUMPTIONS = [
    "the model's probabilities are calibrated: among predictions made with probability p, "
    "a share p is correct (checked on the reference sample when it has labels)",
    "no concept drift: P(label | features) is the same as in the reference; covariate "
    "shift alone is allowed",
    "a binary classifier's positive class is the second probability column; multiclass "
    "models get estimated accuracy only",
]
CALIBRATION_WARN_ECE = 0.05
MIN_ROWS = 30


def _proba_matrix(probas: list[Any]) -> np.ndarray | None:
    rows = [p for p in probas if isinstance(p, list) and p]
    if not rows or len(rows) != len(probas):
        return None
    widths = {len(r) for r in rows}
    if len(widths) != 1:
        return None
    try:
        return np.asarray(rows, dtype=np.float64)
    except (TypeError, ValueError):
        return None


def expected_calibration_error(p_pos: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """ECE of the positive-class probability against 0/1 labels (equal-width bins)."""
    idx = np.clip((p_pos * bins).astype(int), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        sel = idx == b
        if sel.any():
            total += sel.sum() * abs(p_pos[sel].mean() - y[sel].mean())
    return float(total / len(p_pos))


def estimate_performance(
    probas: list[Any],
    *,
    reference_probabilities: np.ndarray | None = None,
    reference_labels: np.ndarray | None = None,
    classes: list[Any] | None = None,
    min_rows: int = MIN_ROWS,
) -> dict[str, Any]:
    """CBPE-style expected accuracy (and precision, recall, F1 for binary models)."""
    out: dict[str, Any] = {
        "implementation_status": "HEURISTIC",
        "method": "confidence-based performance estimation (CBPE-style)",
        "assumptions": ASSUMPTIONS,
        "warnings": [],
    }
    p = _proba_matrix(probas)
    if not probas:
        out.update(
            status="insufficient_data", reason="no answered predictions in the window", rows=0
        )
        return out
    if p is None:
        out.update(status="unavailable", reason="the served model logged no class probabilities")
        return out
    if len(p) < min_rows:
        out.update(
            status="insufficient_data",
            reason=f"{len(p)} predictions with probabilities; at least {min_rows} are needed",
            rows=len(p),
        )
        return out
    conf = p.max(axis=1)
    metrics: dict[str, float] = {"accuracy": float(conf.mean())}
    if p.shape[1] == 2:
        pos = p[:, 1]
        pred_pos = pos >= 0.5
        tp = float(pos[pred_pos].sum())
        fp = float((1 - pos[pred_pos]).sum())
        fn = float(pos[~pred_pos].sum())
        metrics["precision"] = tp / (tp + fp) if tp + fp else 0.0
        metrics["recall"] = tp / (tp + fn) if tp + fn else 0.0
        pr, rc = metrics["precision"], metrics["recall"]
        metrics["f1"] = 2 * pr * rc / (pr + rc) if pr + rc else 0.0
    out.update(status="estimated", rows=len(p), metrics=metrics)
    if (
        reference_probabilities is not None
        and reference_labels is not None
        and reference_probabilities.ndim == 2
        and reference_probabilities.shape[1] == 2
        and len(reference_labels) == len(reference_probabilities)
    ):
        y = _binary(reference_labels, classes)
        if y is not None:
            ece = expected_calibration_error(reference_probabilities[:, 1], y)
            out["reference_calibration_ece"] = ece
            if ece > CALIBRATION_WARN_ECE:
                out["warnings"].append(
                    f"the probabilities are not well calibrated on the reference sample "
                    f"(ECE {ece:.3f} > {CALIBRATION_WARN_ECE}); the estimate is unreliable "
                    "(a reference of training rows makes a fitted model look overconfident)"
                )
    else:
        out["warnings"].append(
            "calibration not checked: the reference has no labelled probabilities"
        )
    return out


def _binary(labels: np.ndarray, classes: list[Any] | None) -> np.ndarray | None:
    values = list(classes) if classes else sorted({_plain(v) for v in labels}, key=str)
    if len(values) != 2:
        return None
    positive = values[1]
    return np.array([_plain(v) == positive for v in labels], dtype=float)


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def realized_performance(
    predictions: list[Any], labels: list[Any], *, unknown_ids: int = 0, min_rows: int = 1
) -> dict[str, Any]:
    """Accuracy (and F1 for two classes) from labels that arrived through ``POST /feedback``."""
    out: dict[str, Any] = {
        "implementation_status": "IMPLEMENTED",
        "unknown_prediction_ids": unknown_ids,
    }
    if unknown_ids:
        out["note"] = (
            f"{unknown_ids} label(s) name prediction ids that are not in this window's log "
            "(unknown, or outside the window): left out"
        )
    if len(labels) < min_rows:
        out.update(status="no_labels", rows=len(labels))
        return out
    from sklearn.metrics import accuracy_score, f1_score

    y_true = [_plain(v) for v in labels]
    y_pred = [_plain(v) for v in predictions]
    try:
        metrics = {"accuracy": float(accuracy_score(y_true, y_pred))}
        classes = sorted({*y_true, *y_pred}, key=str)
        if len(classes) == 2:
            metrics["f1"] = float(f1_score(y_true, y_pred, pos_label=classes[1]))
    except (TypeError, ValueError) as exc:
        out.update(status="error", reason=f"labels do not compare with predictions: {exc}")
        return out
    out.update(status="measured", rows=len(labels), metrics=metrics)
    return out
