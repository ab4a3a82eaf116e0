"""Pydantic result types of an evaluation; ``model_dump(mode="json")`` gives the report JSON.

Metric mappings only hold computed values. Anything undefined is in an ``unavailable`` mapping
with the reason, so no NaN (and no fake 0.0) ever reaches JSON, MLflow or a promotion gate.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Label = bool | int | float | str
Verdict = Literal["better", "worse", "inconclusive"]


class ConfusionMatrix(BaseModel):
    labels: list[Label] = Field(description="Row/column order: rows are true, columns predicted.")
    matrix: list[list[int]]


class Curve(BaseModel):
    """A plotted curve, downsampled to at most a few thousand points."""

    kind: Literal["roc", "pr"]
    label: str = Field(description="'positive' for binary, else the class (one-vs-rest).")
    x: list[float] = Field(description="FPR for ROC, recall for PR.")
    y: list[float] = Field(description="TPR for ROC, precision for PR.")
    area: float | None = None


class Calibration(BaseModel):
    kind: Literal["positive_class", "top_label"] = Field(
        description="Binary: P(positive). Multiclass: confidence of the predicted class."
    )
    n_bins: int
    bin_edges: list[float]
    bin_index: list[int] = Field(description="Index of each non-empty bin reported below.")
    mean_predicted: list[float]
    fraction_positive: list[float]
    counts: list[int]
    ece: float = Field(description="Expected calibration error: sum_b n_b/n |acc_b - conf_b|.")


class GroupMetrics(BaseModel):
    group: str
    count: int
    metrics: dict[str, float] = Field(default_factory=dict)
    unavailable: dict[str, str] = Field(default_factory=dict)
    calibration: Calibration | None = None


class FairnessResult(BaseModel):
    sensitive_columns: list[str]
    groups: list[GroupMetrics]
    metrics: dict[str, float] = Field(
        default_factory=dict,
        description="demographic_parity_difference/ratio, equalized_odds_difference, ...",
    )
    unavailable: dict[str, str] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)


class ThresholdRow(BaseModel):
    threshold: float
    tp: int
    fp: int
    fn: int
    tn: int
    precision: float | None = Field(description="None when undefined (no positive predictions).")
    recall: float | None
    f1: float | None
    fpr: float | None
    youden_j: float | None
    cost: float | None = None


class ThresholdChoice(BaseModel):
    criterion: Literal["f1", "youden_j", "cost"]
    threshold: float = Field(description="Predict positive when score >= threshold.")
    value: float = Field(description="F1, Youden's J, or total cost at the threshold.")
    tp: int
    fp: int
    fn: int
    tn: int


class ThresholdAnalysis(BaseModel):
    table: list[ThresholdRow]
    best: dict[str, ThresholdChoice] = Field(default_factory=dict)
    unavailable: dict[str, str] = Field(default_factory=dict)
    cost_fp: float | None = None
    cost_fn: float | None = None


class Slice(BaseModel):
    feature: str
    description: str
    kind: Literal["numeric_bin", "category", "missing"]
    count: int
    error: float
    lift: float = Field(description="Slice error minus overall error.")
    lower: float | None = None
    upper: float | None = None
    value: Label | None = None


class SliceAnalysis(BaseModel):
    error_measure: str
    overall_error: float
    min_slice_size: int
    slices: list[Slice] = Field(description="Worst first.")
    skipped_small: int = Field(
        description="Slices ignored for having fewer than min_slice_size rows."
    )
    features: list[str]


class MetricComparison(BaseModel):
    metric: str
    candidate: float
    champion: float
    difference: float = Field(description="candidate minus champion")
    ci_low: float
    ci_high: float
    higher_is_better: bool
    verdict: Verdict
    reason: str
    n_undefined_resamples: int = 0


class ComparisonResult(BaseModel):
    n_boot: int
    confidence: float
    min_effect: float
    primary_metric: str
    seed: int
    per_metric: dict[str, MetricComparison]
    unavailable: dict[str, str] = Field(default_factory=dict)
    verdict: Verdict
    reason: str


class EvaluationResult(BaseModel):
    task: Literal["classification", "regression", "text"]
    n: int
    metrics: dict[str, float] = Field(default_factory=dict)
    unavailable: dict[str, str] = Field(default_factory=dict)
    labels: list[Label] | None = None
    pos_label: Label | None = None
    per_class: dict[str, dict[str, float]] = Field(default_factory=dict)
    per_class_unavailable: dict[str, dict[str, str]] = Field(default_factory=dict)
    confusion_matrix: ConfusionMatrix | None = None
    calibration: Calibration | None = None
    curves: list[Curve] = Field(default_factory=list)
    fairness: FairnessResult | None = None
    thresholds: ThresholdAnalysis | None = None
    slices: SliceAnalysis | None = None
    comparison: ComparisonResult | None = None
    notes: list[str] = Field(default_factory=list)
