"""Regression metrics: MSE, MAE, RMSE, R² and MAPE, equal to scikit-learn's where defined.

R² on a constant target and MAPE on a target containing zeros are undefined (scikit-learn
returns 0.0/1.0 or an astronomically large number there); both go to ``unavailable``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.errors import InvalidInput
from core.evaluation._inputs import as_1d, check_lengths, describe_rows, numeric_array
from core.evaluation.registry import register_builtin

_KIND = "regression"
register_builtin("mse", _KIND, higher_is_better=False, description="mean squared error")
register_builtin("mae", _KIND, higher_is_better=False, description="mean absolute error")
register_builtin("rmse", _KIND, higher_is_better=False, description="root mean squared error")
register_builtin("r2", _KIND, higher_is_better=True, description="coefficient of determination")
register_builtin(
    "mape", _KIND, higher_is_better=False, description="mean absolute percentage error (ratio)"
)
METRICS = ("mse", "mae", "rmse", "r2", "mape")
_EPS = float(np.finfo(np.float64).eps)


@dataclass
class RegressionOutcome:
    y_true: np.ndarray
    y_pred: np.ndarray | None  # None when predictions are unusable (see pred_problem)
    pred_problem: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)


def prepare_regression(
    y_true: Any, y_pred: Any
) -> tuple[np.ndarray, np.ndarray | None, str | None]:
    """Float arrays; bad targets raise, non-finite predictions become a stated problem."""
    t = numeric_array("y_true", as_1d("y_true", y_true))
    p = numeric_array("y_pred", as_1d("y_pred", y_pred))
    check_lengths(len(t), y_pred=p)
    if len(t) == 0:
        raise InvalidInput("the evaluation set is empty", hint="Evaluate on at least one row.")
    bad = np.flatnonzero(~np.isfinite(t))
    if len(bad):
        raise InvalidInput(
            f"y_true contains NaN or infinite values in {describe_rows(bad)}",
            hint="Drop unlabeled rows before evaluating.",
        )
    bad = np.flatnonzero(~np.isfinite(p))
    if len(bad):
        return t, None, f"predictions contain NaN or infinite values in {describe_rows(bad)}"
    return t, p, None


def r2_reason(t: np.ndarray) -> str | None:
    if len(t) < 2:
        return "R² needs at least two rows"
    if np.all(t == t[0]):
        return "y_true is constant, so R² is undefined (no variance to explain)"
    return None


def mape_reason(t: np.ndarray) -> str | None:
    zeros = np.flatnonzero(np.abs(t) < _EPS)
    if len(zeros):
        return f"y_true is 0 in {describe_rows(zeros)}; MAPE divides by the target"
    return None


def compute_regression(y_true: Any, y_pred: Any) -> RegressionOutcome:
    """All built-in regression metrics; MAPE is a ratio (0.1 = 10 %), as in scikit-learn."""
    t, p, problem = prepare_regression(y_true, y_pred)
    out = RegressionOutcome(t, p, problem)
    if p is None:
        for name in METRICS:
            out.unavailable[name] = problem or "no predictions"
        return out
    err = p - t
    mse = float(np.mean(err**2))
    out.metrics.update(mse=mse, mae=float(np.mean(np.abs(err))), rmse=float(np.sqrt(mse)))
    reason = r2_reason(t)
    if reason:
        out.unavailable["r2"] = reason
    else:
        ss_tot = float(np.sum((t - t.mean()) ** 2))
        out.metrics["r2"] = 1.0 - float(np.sum(err**2)) / ss_tot
    reason = mape_reason(t)
    if reason:
        out.unavailable["mape"] = reason
    else:
        out.metrics["mape"] = float(np.mean(np.abs(err) / np.abs(t)))
    return out
