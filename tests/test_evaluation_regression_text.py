"""Regression metrics vs scikit-learn on diabetes, text metrics vs hand-computed values, and the
metric registry (custom metrics, unknown names, MetricUnavailable)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sklearn.datasets import load_diabetes
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.model_selection import train_test_split

from core.errors import InvalidInput
from core.evaluation import (
    MetricUnavailable,
    compute_regression,
    compute_text,
    evaluate,
    get_metric,
    known_metrics,
    register_metric,
    unregister_metric,
)

TOL = 1e-9


@pytest.fixture(scope="module", params=[LinearRegression, Ridge], ids=["ols", "ridge"])
def diabetes(request):  # noqa: ANN001, ANN201
    X, y = load_diabetes(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, random_state=0)
    return y_te, request.param().fit(X_tr, y_tr).predict(X_te)


def test_regression_metrics_equal_sklearn_on_diabetes(diabetes) -> None:  # noqa: ANN001
    y, pred = diabetes
    out = compute_regression(y, pred)
    expected = {
        "mse": skm.mean_squared_error(y, pred),
        "mae": skm.mean_absolute_error(y, pred),
        "rmse": skm.root_mean_squared_error(y, pred),
        "r2": skm.r2_score(y, pred),
        "mape": skm.mean_absolute_percentage_error(y, pred),
    }
    assert out.metrics == pytest.approx(expected, abs=TOL)
    assert out.unavailable == {}
    result = evaluate("regression", pd.Series(y), list(pred), metrics=["rmse", "r2"])
    assert set(result.metrics) == {"rmse", "r2"}
    assert result.metrics["r2"] == pytest.approx(expected["r2"], abs=TOL)


def test_constant_target_and_zero_target_are_unavailable() -> None:
    out = compute_regression([3.0, 3.0, 3.0], [2.0, 3.0, 4.0])
    assert "r2" not in out.metrics and "constant" in out.unavailable["r2"]
    assert out.metrics["mae"] == pytest.approx(2 / 3)
    out = compute_regression([0.0, 1.0, 2.0], [0.5, 1.0, 2.0])
    assert "mape" not in out.metrics and "0-based positions 0" in out.unavailable["mape"]
    assert out.metrics["r2"] == pytest.approx(skm.r2_score([0.0, 1.0, 2.0], [0.5, 1.0, 2.0]))


def test_nan_regression_predictions_are_reported(diabetes) -> None:  # noqa: ANN001
    y, pred = diabetes
    bad = pred.copy()
    bad[[2, 9]] = np.nan
    out = compute_regression(y, bad)
    assert out.metrics == {}
    for name in ("mse", "mae", "rmse", "r2", "mape"):
        assert "2, 9" in out.unavailable[name]


def test_regression_bad_input() -> None:
    with pytest.raises(InvalidInput, match="y_true must be numeric") as exc:
        compute_regression(np.array(["1.5", "high", 2.0], dtype=object), [1.0, 2.0, 3.0])
    assert "1" in exc.value.message and "'high'" in exc.value.message
    with pytest.raises(InvalidInput, match="must be numeric"):
        compute_regression(np.array(["a", "b"]), [1.0, 2.0])
    with pytest.raises(InvalidInput, match="NaN"):
        compute_regression([1.0, np.nan], [1.0, 2.0])
    with pytest.raises(InvalidInput, match="2 rows but y_pred has 3"):
        compute_regression([1.0, 2.0], [1.0, 2.0, 3.0])
    # Numeric strings are accepted as numbers.
    assert compute_regression(np.array(["1", "2"], dtype=object), [1.0, 2.0]).metrics["mse"] == 0.0


# --- text ------------------------------------------------------------------------------------------


def test_text_metrics_hand_computed() -> None:
    refs = ["The cat sat.", "  hello world ", "a b c d", ""]
    preds = ["the cat sat", "hello world", "a b x", ""]
    out = compute_text(refs, preds)
    # exact match: only rows 1 and 3 match after stripping.
    assert out.metrics["exact_match"] == pytest.approx(
        skm.accuracy_score([r.strip() for r in refs], [p.strip() for p in preds])
    )
    assert out.metrics["exact_match"] == 0.5
    # token F1: row 0 matches after lower-casing and punctuation removal (1.0); row 1 1.0;
    # row 2: 2 common tokens (a, b) of 4 ref / 3 pred -> 2*2/7; row 3 both empty -> 1.0.
    assert out.metrics["token_f1"] == pytest.approx((1 + 1 + 4 / 7 + 1) / 4)
    # length ratio: (3 + 2 + 3 + 0) / (3 + 2 + 4 + 0)
    assert out.metrics["length_ratio"] == pytest.approx(8 / 9)


def test_text_honesty_and_bad_input() -> None:
    out = compute_text(["", ""], ["x", ""])
    assert "length_ratio" not in out.metrics and "empty" in out.unavailable["length_ratio"]
    out = compute_text(["a", "b"], ["a", None])
    assert out.metrics == {} and "0-based positions 1" in out.unavailable["exact_match"]
    with pytest.raises(InvalidInput, match="references"):
        compute_text(["a", None], ["a", "b"])
    with pytest.raises(InvalidInput, match="must hold strings"):
        compute_text(["a", 3], ["a", "b"])
    with pytest.raises(InvalidInput, match="2 rows but y_pred has 1"):
        compute_text(["a", "b"], ["a"])


# --- registry ----------------------------------------------------------------------------------


def test_custom_metric_registered_by_name(diabetes) -> None:  # noqa: ANN001
    y, pred = diabetes

    @register_metric("max_abs_error", "regression", higher_is_better=False)
    def max_abs_error(y_true, y_pred, y_score=None):  # noqa: ANN001, ANN202
        """Largest absolute error."""
        return float(np.max(np.abs(y_true - y_pred)))

    @register_metric("within_10", "regression")
    def within_10(y_true, y_pred, y_score=None):  # noqa: ANN001, ANN202
        if len(y_true) < 1000:
            raise MetricUnavailable("needs at least 1000 rows to be meaningful")
        return float(np.mean(np.abs(y_true - y_pred) < 10))

    try:
        assert "max_abs_error" in known_metrics("regression")
        assert get_metric("max_abs_error", "regression").higher_is_better is False
        result = evaluate("regression", y, pred, metrics=["mae", "max_abs_error", "within_10"])
        assert result.metrics["max_abs_error"] == pytest.approx(skm.max_error(y, pred))
        assert result.unavailable["within_10"] == "needs at least 1000 rows to be meaningful"
        with pytest.raises(InvalidInput, match="already registered"):
            register_metric("max_abs_error", "regression")(max_abs_error)
        with pytest.raises(InvalidInput, match="already registered"):
            register_metric("mse", "regression", replace=True)(max_abs_error)
    finally:
        unregister_metric("max_abs_error", "regression")
        unregister_metric("within_10", "regression")
    assert "max_abs_error" not in known_metrics("regression")


def test_unknown_metric_and_kind() -> None:
    with pytest.raises(InvalidInput, match="unknown text metric 'bleu'") as exc:
        get_metric("bleu", "text")
    assert "exact_match" in exc.value.hint and "token_f1" in exc.value.hint
    with pytest.raises(InvalidInput, match="unknown metric kind"):
        known_metrics("vision")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="built-in"):
        unregister_metric("mse", "regression")
    with pytest.raises(InvalidInput, match="invalid metric name"):
        register_metric("bad name!", "text")


def test_custom_metric_returning_nan_is_unavailable() -> None:
    @register_metric("always_nan", "text")
    def always_nan(y_true, y_pred, y_score=None):  # noqa: ANN001, ANN202
        return float("nan")

    try:
        result = evaluate("text", ["a"], ["a"], metrics=["exact_match", "always_nan"])
        assert result.metrics == {"exact_match": 1.0}
        assert "nan" in result.unavailable["always_nan"]
    finally:
        unregister_metric("always_nan", "text")


def test_text_evaluate_with_groups_slices_and_custom_metric_comparison() -> None:
    refs = ["yes", "no", "maybe so", "the answer is 4", "paris"] * 12
    cand = ["yes", "no", "maybe", "the answer is 4", "Paris"] * 12
    champ = ["yes", "yes", "no", "answer 5", "paris"] * 12
    lang = (["en", "fr"] * 30)[:60]
    features = pd.DataFrame({"lang": lang, "length": [len(r) for r in refs]})

    @register_metric("starts_right", "text")
    def starts_right(y_true, y_pred, y_score=None):  # noqa: ANN001, ANN202
        """First character matches (case-insensitive)."""
        return float(
            np.mean([t[:1].lower() == p[:1].lower() for t, p in zip(y_true, y_pred, strict=True)])
        )

    try:
        result = evaluate(
            "text",
            refs,
            cand,
            metrics=["exact_match", "token_f1", "starts_right"],
            sensitive_features="lang",
            features_df=features,
            min_slice_size=5,
            champion={"y_pred": champ},
            comparison_params={
                "n_boot": 60,
                "confidence": 0.9,
                "min_effect": 0.05,
                "primary_metric": "token_f1",
            },
        )
    finally:
        unregister_metric("starts_right", "text")
    assert result.metrics["exact_match"] == pytest.approx(0.6)
    assert result.metrics["starts_right"] == pytest.approx(1.0)
    by_group = {g.group: g for g in result.fairness.groups}
    assert by_group["en"].count == 30 and "exact_match" in by_group["en"].metrics
    assert "binary" in result.fairness.unavailable["demographic_parity_difference"]
    assert result.slices.error_measure == "1 - exact match"
    comp = result.comparison
    assert comp.per_metric["starts_right"].candidate == pytest.approx(1.0)
    assert comp.per_metric["starts_right"].champion == pytest.approx(0.4)  # rows 1 and 5
    assert comp.per_metric["token_f1"].verdict == "better" and comp.verdict == "better"
