"""Model evaluation: metrics computed with scikit-learn, reported with their reasons when not computable."""

from core.evaluation.basic import classification_metrics
from core.evaluation.classification import compute_classification
from core.evaluation.comparison import ComparisonParams, Predictions, compare_with_champion
from core.evaluation.curves import calibration
from core.evaluation.data import load_dataset
from core.evaluation.fairness import fairness_report
from core.evaluation.orchestrator import evaluate
from core.evaluation.registry import (
    MetricUnavailable,
    get_metric,
    known_metrics,
    register_metric,
    unregister_metric,
)
from core.evaluation.regression import compute_regression
from core.evaluation.report import flatten_metrics, log_evaluation, render_markdown, write_report
from core.evaluation.result import EvaluationResult
from core.evaluation.slices import worst_slices
from core.evaluation.text import compute_text
from core.evaluation.thresholds import threshold_analysis

__all__ = [
    "ComparisonParams",
    "EvaluationResult",
    "MetricUnavailable",
    "Predictions",
    "calibration",
    "classification_metrics",
    "compare_with_champion",
    "compute_classification",
    "compute_regression",
    "compute_text",
    "evaluate",
    "fairness_report",
    "flatten_metrics",
    "get_metric",
    "known_metrics",
    "load_dataset",
    "log_evaluation",
    "register_metric",
    "render_markdown",
    "threshold_analysis",
    "unregister_metric",
    "worst_slices",
    "write_report",
]
