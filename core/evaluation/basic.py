"""Basic binary/multiclass classification metrics used by the promotion path.

A metric that cannot be computed is reported in ``unavailable`` with the reason,
never as 0.0.
"""

from __future__ import annotations

from typing import Any

from core.evaluation.classification import compute_classification

SEED_METRICS = ("accuracy", "precision", "recall", "f1", "auc_roc")


def classification_metrics(y_true: Any, y_pred: Any, y_score: Any | None = None) -> dict[str, Any]:
    """accuracy, precision, recall, f1 (binary or macro) and AUC-ROC (binary or one-vs-rest).

    ``y_score`` is the positive-class probability (binary) or an (n, k) probability matrix.
    Returns ``{"metrics": {name: float}, "unavailable": {name: reason}, "n": int}``.
    Raises ``InvalidInput`` for mismatched lengths, an empty set or missing labels.
    """
    out = compute_classification(y_true, y_pred, y_score)
    metrics = {k: out.metrics[k] for k in SEED_METRICS if k in out.metrics}
    unavailable = {k: out.unavailable[k] for k in SEED_METRICS if k in out.unavailable}
    if y_score is None:
        unavailable["auc_roc"] = "the model gives no scores (no predict_proba)"
    return {"metrics": metrics, "unavailable": unavailable, "n": len(out.enc.true_codes)}
