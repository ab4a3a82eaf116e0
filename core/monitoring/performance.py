"""Performance without labels (confidence-based performance estimation, NannyML's CBPE) and
with them. The estimate is HEURISTIC: it is what the model's probabilities, calibrated on the
reference sample, imply about the model's own predictions; its assumptions travel with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.monitoring import cbpe

ASSUMPTIONS = [
    "the model's probabilities, after isotonic calibration on the labelled reference sample, "
    "are calibrated on the current data: among rows given probability p, a share p is positive",
    "no concept drift: P(label | features) is the same as in the reference; covariate "
    "shift alone is allowed",
    "the probability columns follow the model's classes in sorted order (scikit-learn's "
    "classes_); multiclass models get estimated accuracy and one-vs-rest ROC AUC only",
]
MIN_ROWS = 30
LOGGED = "the model's logged predictions"
ARGMAX = "argmax of the probabilities, ties to the first class (scikit-learn's predict)"
REGRESSION_REASON = (
    "a regression model: CBPE needs class probabilities, and direct loss estimation (a model "
    "of the error trained on the reference) is not implemented; without labels no estimate of "
    "its error exists here (labels sent through POST /feedback give the realized one)"
)


def _proba_matrix(probas: list[Any]) -> np.ndarray | None:
    rows = [p for p in probas if isinstance(p, list) and p]
    if not rows or len(rows) != len(probas):
        return None
    widths = {len(r) for r in rows}
    if len(widths) != 1:
        return None
    try:
        m = np.asarray(rows, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return m if np.isfinite(m).all() else None


def _is_regression(predictions: list[Any] | None) -> bool:
    vals = [_plain(v) for v in predictions or []]
    return (
        bool(vals)
        and all(isinstance(v, float) and not isinstance(v, bool) for v in vals)
        and any(not float(v).is_integer() for v in vals)
    )


def class_order(
    classes: list[Any] | None, *arrays: np.ndarray | list[Any] | None
) -> list[Any] | None:
    """The classes behind the probability columns: the model's, else the sorted union of the
    reference labels and predictions (what ``np.unique`` gives scikit-learn's ``classes_``)."""
    if classes:
        return [_plain(c) for c in classes]
    seen = {_plain(v) for a in arrays if a is not None for v in a}
    if not seen:
        return None
    try:
        return sorted(seen)
    except TypeError:
        return sorted(seen, key=str)


def _indices(values: Any, classes: list[Any]) -> np.ndarray | None:
    """Each value's column index, or None when one of them is not a known class."""
    pos = {c: i for i, c in enumerate(classes)}
    try:
        return np.array([pos[_plain(v)] for v in values], dtype=np.int64)
    except (KeyError, TypeError):
        return None


def estimate_performance(
    probas: list[Any],
    *,
    predictions: list[Any] | None = None,
    reference: Reference | None = None,
    min_rows: int = MIN_ROWS,
) -> dict[str, Any]:
    """CBPE: expected accuracy, precision, recall, F1 and ROC AUC (binary), accuracy and ROC
    AUC (multiclass) of the model's own predictions, from probabilities calibrated on the
    labelled reference sample (fitted once per ``reference``)."""
    ref = reference or Reference()
    out: dict[str, Any] = {
        "implementation_status": "HEURISTIC",
        "method": "confidence-based performance estimation (CBPE, isotonic calibration)",
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
        if _is_regression(predictions) or (
            ref.probabilities is None and _is_regression(_listed(ref.predictions))
        ):
            out.update(status="no_estimate", reason=REGRESSION_REASON)
        else:
            out.update(
                status="unavailable", reason="the served model logged no class probabilities"
            )
        return out
    if len(p) < min_rows:
        out.update(
            status="insufficient_data",
            reason=f"{len(p)} predictions with probabilities; at least {min_rows} are needed",
            rows=len(p),
        )
        return out
    if p.shape[1] < 2:
        out.update(status="unavailable", reason="the model logged a single probability column")
        return out
    order, calibration, cal_info, warnings = ref.fit(p.shape[1])
    out["warnings"] += warnings
    if order is None and ref.labels is None and ref.predictions is None and not ref.classes:
        # No reference names the classes: the logged answers do, when they show them all.
        seen = class_order(None, predictions)
        order = seen if seen is not None and len(seen) == p.shape[1] else None
    # The model's own decision rule is its logged answer; argmax only when it is missing.
    pred_idx = _indices(predictions, order) if order and predictions is not None else None
    if pred_idx is None or len(pred_idx) != len(p):
        pred_idx, rule = np.argmax(p, axis=1), ARGMAX
    else:
        rule = LOGGED
    metrics = cbpe.estimate(p, pred_idx, calibration)
    out.update(
        status="estimated",
        rows=len(p),
        metrics={k: v for k, v in metrics.items() if np.isfinite(v)},
        decision_rule=rule,
        calibration=cal_info,
    )
    return out


def _listed(a: np.ndarray | None) -> list[Any] | None:
    return None if a is None else list(a)


@dataclass
class Reference:
    """The labelled reference sample CBPE calibrates on, fitted once per probability width."""

    probabilities: np.ndarray | None = None
    labels: np.ndarray | None = None
    predictions: np.ndarray | None = None
    classes: list[Any] | None = None
    _fits: dict[int, tuple[Any, ...]] = field(default_factory=dict, repr=False)

    def fit(
        self, width: int
    ) -> tuple[list[Any] | None, cbpe.Calibration, dict[str, Any], list[str]]:
        """(class order, calibration, what was fitted, warnings) for ``width`` columns."""
        if width not in self._fits:
            warnings: list[str] = []
            order = class_order(self.classes, self.labels, self.predictions)
            if order is not None and len(order) != width:
                warnings.append(
                    f"{len(order)} classes known but {width} probability columns: the logged "
                    "predictions cannot be matched to columns"
                )
                order = None
            cal, info = _reference_calibration(
                self.probabilities, self.labels, order, width, warnings
            )
            self._fits[width] = (order, cal, info, warnings)
        order, cal, info, warnings = self._fits[width]
        return order, cal, dict(info), list(warnings)


def _reference_calibration(
    ref_p: np.ndarray | None,
    ref_y: np.ndarray | None,
    order: list[Any] | None,
    width: int,
    warnings: list[str],
) -> tuple[cbpe.Calibration, dict[str, Any]]:
    """CBPE's calibrators from the labelled reference; none (raw probabilities) without one."""
    none = cbpe.Calibration(width, [cbpe.identity] * (1 if width == 2 else width), [], [])
    usable = (
        ref_p is not None
        and ref_y is not None
        and order is not None
        and ref_p.ndim == 2
        and ref_p.shape[1] == width
        and len(ref_y) == len(ref_p)
        and np.isfinite(ref_p).all()
    )
    y_idx = _indices(ref_y, order) if usable else None
    if y_idx is None:
        warnings.append(
            "not calibrated: the reference has no labelled probabilities of these classes; "
            "the raw probabilities are taken as calibrated"
        )
        return none, {"fitted": False, "reference_rows": 0}
    try:
        cal = cbpe.fit_calibration(ref_p, y_idx)
    except ValueError as exc:
        warnings.append(f"not calibrated: {exc}")
        return none, {"fitted": False, "reference_rows": len(ref_p)}
    if any(cal.perfect_ranking):
        warnings.append(
            "the reference's probabilities separate its classes perfectly (ROC AUC > 0.999), "
            "so no calibration is fitted: a reference of training rows makes a fitted model "
            "look certain, and the estimate is then optimistic"
        )
    y_pos = (y_idx == 1).astype(float) if width == 2 else None
    info: dict[str, Any] = {
        "fitted": any(cal.calibrated),
        "columns_calibrated": cal.calibrated,
        "reference_rows": len(ref_p),
    }
    if y_pos is not None and len(y_pos) >= 4:
        info["reference_ece_before"] = cbpe.equal_count_ece(y_pos, ref_p[:, 1])
        info["reference_ece_after"] = cbpe.equal_count_ece(y_pos, cal.apply(ref_p)[:, 1])
    return cal, info


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
