"""Basic binary/multiclass classification metrics used by the promotion path.

A metric that cannot be computed is reported in ``unavailable`` with the reason,
never as 0.0.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core.errors import InvalidInput


def classification_metrics(y_true: Any, y_pred: Any, y_score: Any | None = None) -> dict[str, Any]:
    """accuracy, precision, recall, f1 (binary or macro) and AUC-ROC via scikit-learn.

    ``y_score`` is the positive-class probability (binary) or an (n, k) probability matrix.
    Returns ``{"metrics": {name: float}, "unavailable": {name: reason}, "n": int}``.
    """
    from sklearn import metrics as skm

    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.shape[0] != y_pred.shape[0]:
        raise InvalidInput(
            f"labels have {y_true.shape[0]} rows but predictions have {y_pred.shape[0]}",
            hint="Evaluate predictions made on exactly the rows of the evaluation set.",
        )
    if y_true.shape[0] == 0:
        raise InvalidInput("the evaluation set is empty")
    classes = np.unique(y_true)
    binary = len(np.union1d(classes, np.unique(y_pred))) <= 2
    average = "binary" if binary else "macro"
    pos_label = classes.max() if binary else None
    kwargs: dict[str, Any] = {"average": average, "zero_division": np.nan}
    if binary:
        kwargs["pos_label"] = pos_label
    out: dict[str, float] = {"accuracy": float(skm.accuracy_score(y_true, y_pred))}
    unavailable: dict[str, str] = {}
    for name, fn in (
        ("precision", skm.precision_score),
        ("recall", skm.recall_score),
        ("f1", skm.f1_score),
    ):
        value = float(fn(y_true, y_pred, **kwargs))
        if np.isnan(value):
            unavailable[name] = "undefined: no positive predictions or no positive labels"
        else:
            out[name] = value
    if y_score is None:
        unavailable["auc_roc"] = "the model gives no scores (no predict_proba)"
    elif len(classes) < 2:
        unavailable["auc_roc"] = "only one class present in the labels"
    else:
        score = np.asarray(y_score, dtype=float)
        if not np.all(np.isfinite(score)):
            unavailable["auc_roc"] = "scores contain NaN or infinite values"
        elif binary:
            out["auc_roc"] = float(skm.roc_auc_score(y_true == pos_label, score))
        else:
            out["auc_roc"] = float(skm.roc_auc_score(y_true, score, multi_class="ovr"))
    return {"metrics": out, "unavailable": unavailable, "n": int(y_true.shape[0])}
