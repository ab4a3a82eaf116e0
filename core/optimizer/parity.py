"""Parity between the original estimator and an ONNX graph on held-out rows.

Scores are probabilities for classifiers (decision scores if the model has no
``predict_proba``) and predictions for regressors.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel

from core.errors import GateFailed, InvalidInput
from core.optimizer.export import as_feature_matrix, task_of
from core.optimizer.predictor import OnnxPredictor

DEFAULT_SCORE_TOLERANCE = 1e-5
DEFAULT_MIN_LABEL_AGREEMENT = 1.0


class ParityReport(BaseModel):
    """How closely an ONNX artifact reproduces the original model.

    ``max_scaled_diff`` = max |reference - onnx| / max(1, max |reference|): identical to the
    absolute difference for probabilities, and relative to the output's magnitude for
    regressors, because a float32 graph cannot reproduce a prediction of ~300 more finely
    than ~2e-5 in absolute terms. ``passed`` compares it with ``score_tolerance``.
    """

    artifact: str
    task: str
    rows: int
    max_abs_diff: float
    max_scaled_diff: float
    score_scale: float
    score_tolerance: float
    label_agreement: float | None  # None for regressors
    min_label_agreement: float | None
    passed: bool
    failures: list[str]

    def summary(self) -> str:
        labels = (
            ""
            if self.label_agreement is None
            else f", label agreement {self.label_agreement:.4f} (min {self.min_label_agreement})"
        )
        return (
            f"{self.artifact} parity on {self.rows} rows: max |diff| {self.max_abs_diff:.3g}, "
            f"scaled {self.max_scaled_diff:.3g} (tolerance {self.score_tolerance:g}){labels}"
        )


def validate_tolerances(score_tolerance: float, min_label_agreement: float) -> None:
    if not (score_tolerance >= 0.0 and np.isfinite(score_tolerance)):
        raise InvalidInput(f"score tolerance must be a finite number >= 0, got {score_tolerance}")
    if not 0.0 <= min_label_agreement <= 1.0:
        raise InvalidInput(
            f"minimum label agreement must be within [0, 1], got {min_label_agreement}"
        )


def reference_outputs(model: Any, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(labels, scores) from the original model; for regressors both are the predictions."""
    if task_of(model) == "regression":
        pred = np.asarray(model.predict(X), dtype=np.float64).reshape(-1)
        return pred, pred
    labels = np.asarray(model.predict(X))
    if hasattr(model, "predict_proba"):
        scores = np.asarray(model.predict_proba(X), dtype=np.float64)
    else:
        scores = np.asarray(model.decision_function(X), dtype=np.float64)
    return labels, scores


def check_parity(
    model: Any,
    predictor: OnnxPredictor,
    X_holdout: Any,
    *,
    score_tolerance: float = DEFAULT_SCORE_TOLERANCE,
    min_label_agreement: float = DEFAULT_MIN_LABEL_AGREEMENT,
    artifact: str = "onnx",
) -> ParityReport:
    """Compare the model and the ONNX predictor on ``X_holdout``; never raises on a mismatch.

    Use :func:`require_parity` to turn a failed report into a refusal.
    """
    validate_tolerances(score_tolerance, min_label_agreement)
    X = as_feature_matrix(X_holdout, name="X_holdout", n_features=predictor.n_features)
    ref_labels, ref_scores = reference_outputs(model, X)
    onnx_labels, onnx_scores = predictor.predict(X)
    task = task_of(model)
    if task != predictor.task:
        raise GateFailed(
            f"{artifact} artifact refused: the model is a {task} model but the ONNX graph "
            f"is a {predictor.task} graph",
            hint="Check the ONNX artifact against the model it was exported from.",
        )
    got = _align_scores(onnx_labels if onnx_scores is None else onnx_scores, ref_scores, artifact)
    diff = np.abs(got - ref_scores)
    max_abs = float(diff.max())
    scale = float(max(1.0, np.abs(ref_scores).max()))
    max_scaled = max_abs / scale
    failures: list[str] = []
    if not max_scaled <= score_tolerance:  # also catches NaN
        failures.append(
            f"max score difference {max_abs:.3g} (scaled {max_scaled:.3g}) exceeds "
            f"tolerance {score_tolerance:g}"
        )
    agreement: float | None = None
    if task == "classification":
        agreement = float(np.mean(np.asarray(onnx_labels) == ref_labels))
        if agreement < min_label_agreement:
            failures.append(
                f"label agreement {agreement:.4f} is below the required {min_label_agreement:g} "
                f"({int(round((1 - agreement) * len(ref_labels)))} of {len(ref_labels)} rows differ)"
            )
    return ParityReport(
        artifact=artifact,
        task=task,
        rows=int(X.shape[0]),
        max_abs_diff=max_abs,
        max_scaled_diff=max_scaled,
        score_scale=scale,
        score_tolerance=score_tolerance,
        label_agreement=agreement,
        min_label_agreement=min_label_agreement if task == "classification" else None,
        passed=not failures,
        failures=failures,
    )


def require_parity(report: ParityReport) -> ParityReport:
    """Raise GateFailed (with the numbers) unless the report passed."""
    if not report.passed:
        raise GateFailed(
            f"{report.artifact} artifact refused: " + "; ".join(report.failures),
            hint="The exported graph does not reproduce the model. Check for unsupported "
            "options or custom steps in the pipeline; do not loosen the tolerance to hide it.",
        )
    return report


def _align_scores(onnx_scores: np.ndarray, ref_scores: np.ndarray, artifact: str) -> np.ndarray:
    got = np.asarray(onnx_scores, dtype=np.float64)
    if ref_scores.ndim == 1:
        # Regressors give (n, 1); binary decision_function gives (n,) while skl2onnx
        # emits (n, 2) as [-score, score].
        got = got[:, -1] if got.ndim == 2 else got.reshape(-1)
    if got.shape != ref_scores.shape:
        raise GateFailed(
            f"{artifact} artifact refused: its scores have shape {got.shape} but the "
            f"model's have {ref_scores.shape}",
            hint="Check the ONNX artifact against the model it was exported from.",
        )
    return got
