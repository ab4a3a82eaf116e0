"""``evaluate``: one call that runs every applicable analysis and returns an EvaluationResult.

Metrics, per-class values, calibration, thresholds, fairness, worst slices and the champion
comparison are each computed once from shared intermediates (label codes, one score sort).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from core.errors import InvalidInput
from core.evaluation._inputs import as_1d, json_label
from core.evaluation.classification import ClassificationOutcome, compute_classification
from core.evaluation.comparison import ComparisonParams, Predictions, compare_with_champion
from core.evaluation.fairness import (
    fairness_from_classification,
    fairness_from_regression,
    fairness_from_text,
    group_codes,
)
from core.evaluation.registry import MetricUnavailable, get_metric, resolve_metric_names
from core.evaluation.regression import RegressionOutcome, compute_regression
from core.evaluation.result import EvaluationResult
from core.evaluation.slices import worst_slices
from core.evaluation.text import TextOutcome, compute_text, exact_match_rows
from core.evaluation.thresholds import analyze_thresholds

TASKS = ("classification", "regression", "text")


def _custom_value(
    name: str, task: str, y_true: Any, y_pred: Any, y_score: Any
) -> tuple[float | None, str | None]:
    spec = get_metric(name, task)  # type: ignore[arg-type]
    if spec.needs_score and y_score is None:
        return None, "no scores given (the metric needs y_score)"
    t, p = as_1d("y_true", y_true), as_1d("y_pred", y_pred)
    s = None if y_score is None else np.asarray(y_score)
    try:
        value = float(spec.fn(t, p, s))  # type: ignore[misc]
    except MetricUnavailable as exc:
        return None, exc.reason
    if not np.isfinite(value):
        return None, f"metric function returned {value}"
    return value, None


def _row_errors(outcome: Any) -> tuple[np.ndarray | None, str]:
    """Per-row error used to rank slices, and its name."""
    if isinstance(outcome, ClassificationOutcome):
        enc = outcome.enc
        if enc.pred_codes is None:
            return None, "error rate"
        return (enc.pred_codes != enc.true_codes).astype(np.float64), "error rate (1 - accuracy)"
    if isinstance(outcome, RegressionOutcome):
        if outcome.y_pred is None:
            return None, "mean absolute error"
        return np.abs(outcome.y_pred - outcome.y_true), "mean absolute error"
    if outcome.predictions is None:
        return None, "1 - exact match"
    return 1.0 - exact_match_rows(outcome.references, outcome.predictions), "1 - exact match"


def evaluate(
    task: str,
    y_true: Any,
    y_pred: Any,
    y_score: Any = None,
    *,
    metrics: list[str] | None = None,
    labels: Any = None,
    pos_label: Any = None,
    sensitive_features: Any = None,
    features_df: pd.DataFrame | None = None,
    champion: Predictions | Mapping[str, Any] | None = None,
    comparison_params: ComparisonParams | Mapping[str, Any] | None = None,
    thresholds: bool = True,
    threshold_grid: Any = None,
    cost_fp: float | None = None,
    cost_fn: float | None = None,
    calibration_bins: int = 10,
    min_slice_size: int = 30,
    slice_bins: int = 4,
    slice_columns: list[str] | None = None,
    top_slices: int = 10,
    curve_points: int = 1000,
) -> EvaluationResult:
    """Evaluate predictions like a careful reviewer; see docs/evaluation.md.

    ``metrics``: names such as ``["accuracy", "precision", "recall", "f1", "auc_roc"]``
    (default: every built-in metric of the task). ``sensitive_features``: values or column
    name(s) of ``features_df``. ``champion`` + ``comparison_params``: paired bootstrap against
    the current champion's predictions on the same rows.
    """
    if task not in TASKS:
        raise InvalidInput(f"unknown task {task!r}", hint=f"Use one of: {', '.join(TASKS)}.")
    names = resolve_metric_names(metrics, task)  # type: ignore[arg-type]
    if calibration_bins < 2:
        raise InvalidInput("calibration_bins must be at least 2")
    outcome: ClassificationOutcome | RegressionOutcome | TextOutcome
    if task == "classification":
        outcome = compute_classification(
            y_true,
            y_pred,
            y_score,
            labels=labels,
            pos_label=pos_label,
            calibration_bins=calibration_bins,
            curve_points=curve_points,
        )
        n = len(outcome.enc.true_codes)
    elif task == "regression":
        outcome = compute_regression(y_true, y_pred)
        n = len(outcome.y_true)
    else:
        outcome = compute_text(y_true, y_pred)
        n = len(outcome.references)
    result = EvaluationResult(task=task, n=n)  # type: ignore[arg-type]

    for name in names:
        if name in outcome.metrics:
            result.metrics[name] = outcome.metrics[name]
        elif name in outcome.unavailable:
            result.unavailable[name] = outcome.unavailable[name]
        elif get_metric(name, task).builtin:  # type: ignore[arg-type]
            result.unavailable[name] = f"not defined for this {task} data"
        else:
            value, reason = _custom_value(name, task, y_true, y_pred, y_score)
            if value is None:
                result.unavailable[name] = reason or "undefined"
            else:
                result.metrics[name] = value

    if isinstance(outcome, ClassificationOutcome):
        _classification_details(result, outcome, thresholds, threshold_grid, cost_fp, cost_fn)

    if sensitive_features is not None:
        groups = group_codes(sensitive_features, n, features_df)
        if isinstance(outcome, ClassificationOutcome):
            result.fairness = fairness_from_classification(outcome, groups, calibration_bins)
        elif isinstance(outcome, RegressionOutcome):
            result.fairness = fairness_from_regression(outcome, groups)
        else:
            result.fairness = fairness_from_text(outcome, groups)

    if features_df is not None:
        errors, measure = _row_errors(outcome)
        if errors is None:
            result.notes.append("slice analysis skipped: predictions are unusable")
        else:
            result.slices = worst_slices(
                features_df,
                errors,
                error_measure=measure,
                min_slice_size=min_slice_size,
                n_bins=slice_bins,
                top_k=top_slices,
                columns=slice_columns,
            )

    if champion is not None:
        if comparison_params is None:
            raise InvalidInput(
                "a champion was given without comparison_params",
                hint="Pass n_boot, confidence, min_effect and primary_metric (policy thresholds).",
            )
        params = (
            comparison_params
            if isinstance(comparison_params, ComparisonParams)
            else ComparisonParams.model_validate(dict(comparison_params))
        )
        result.comparison = compare_with_champion(
            task,
            y_true,
            Predictions(y_pred, y_score),
            champion,
            params=params,
            metrics=names,
            labels=labels,
            pos_label=pos_label,
        )
    return result


def _classification_details(
    result: EvaluationResult,
    out: ClassificationOutcome,
    thresholds: bool,
    grid: Any,
    cost_fp: float | None,
    cost_fn: float | None,
) -> None:
    enc = out.enc
    result.labels = [json_label(c) for c in enc.classes]
    result.pos_label = None if enc.pos_label is None else json_label(enc.pos_label)
    result.per_class = out.per_class
    result.per_class_unavailable = out.per_class_unavailable
    result.confusion_matrix = out.confusion
    result.calibration = out.calibration
    result.curves = out.curves
    if not thresholds:
        return
    if out.curve is not None and enc.pos_index is not None:
        result.thresholds = analyze_thresholds(
            out.curve, grid=grid, cost_fp=cost_fp, cost_fn=cost_fn
        )
    elif enc.binary:
        why = out.unavailable.get("auc_roc", "no usable scores")
        result.notes.append(f"threshold analysis skipped: {why}")
