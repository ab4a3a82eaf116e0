"""CBPE (core.monitoring.cbpe / performance): calibration on the reference, the model's own
decision rule, ROC AUC, regression without an estimate, and NannyML 0.13.1 on the same
predictions (in its own venv, created once under benchmarks/.venv-nannyml)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import cbpe as bench
from core.monitoring import cbpe
from core.monitoring.performance import ARGMAX, LOGGED, Reference, estimate_performance


def _fit(model):  # noqa: ANN001, ANN202
    x_tr, y_tr, x_ref, y_ref, x_cur, y_cur = bench.shifted_breast_cancer()
    model.fit(x_tr, y_tr)
    ref = (model.predict_proba(x_ref), model.predict(x_ref), y_ref)
    cur = (model.predict_proba(x_cur), model.predict(x_cur), y_cur)
    return ref, cur


def test_tie_follows_the_models_predict_not_p_ge_half() -> None:
    """A tree whose leaf is 50/50 answers class 0 (scikit-learn's argmax takes the first
    class): those rows are expected negatives, not positives."""
    from sklearn.tree import DecisionTreeClassifier

    x = np.array([[0.0]] * 20 + [[1.0]] * 10 + [[2.0]] * 10)
    y = np.array([1, 0] * 10 + [1] * 9 + [0] + [1] * 9 + [0])
    tree = DecisionTreeClassifier().fit(x, y)
    proba, pred = tree.predict_proba(x), tree.predict(x)
    assert np.allclose(proba[:20, 1], 0.5) and (pred[:20] == 0).all()  # the model's own rule
    est = estimate_performance(proba.tolist(), predictions=list(pred), min_rows=1)
    assert est["decision_rule"] == LOGGED
    # Uncalibrated (no reference): TP 18, FP 2, FN 20*0.5 = 10, TN 10.
    m = est["metrics"]
    assert m["accuracy"] == pytest.approx(28 / 40)
    assert m["precision"] == pytest.approx(0.9)
    assert m["recall"] == pytest.approx(18 / 28)  # p >= 0.5 would say 1.0
    # Without logged predictions the rule is argmax, ties to class 0: the same here.
    assert estimate_performance(proba.tolist(), min_rows=1)["decision_rule"] == ARGMAX
    assert estimate_performance(proba.tolist(), min_rows=1)["metrics"]["recall"] == pytest.approx(
        18 / 28
    )


def test_a_custom_threshold_is_followed() -> None:
    """A model predicting 1 from p > 0.3 is estimated on its own predictions, not argmax."""
    rng = np.random.default_rng(1)
    p1 = rng.uniform(0, 1, 200)
    proba = np.column_stack([1 - p1, p1])
    pred = (p1 > 0.3).astype(int)
    est = estimate_performance(proba.tolist(), predictions=pred.tolist(), min_rows=1)
    expected = np.where(pred == 1, p1, 1 - p1).mean()
    assert est["metrics"]["accuracy"] == pytest.approx(expected)
    assert est["metrics"]["accuracy"] != pytest.approx(np.maximum(p1, 1 - p1).mean(), abs=1e-3)


def test_calibration_on_the_reference_changes_the_estimate() -> None:
    """An overconfident model (true P = 0.7 where it says 0.95) is corrected by the reference."""
    rng = np.random.default_rng(0)
    n = 2000
    side = rng.random(n) < 0.5
    p1 = np.where(side, 0.95, 0.05) + rng.normal(0, 0.01, n)
    y = np.where(side, rng.random(n) < 0.7, rng.random(n) < 0.3).astype(int)
    proba = np.column_stack([1 - p1, p1])
    pred = (p1 > 0.5).astype(int)
    ref = Reference(proba, y, pred)
    est = estimate_performance(proba.tolist(), predictions=pred.tolist(), reference=ref)
    assert est["calibration"]["fitted"] is True
    assert est["metrics"]["accuracy"] == pytest.approx((pred == y).mean(), abs=0.02)
    raw = estimate_performance(proba.tolist(), predictions=pred.tolist())
    assert raw["metrics"]["accuracy"] > 0.9  # what the uncalibrated probabilities claim
    assert any("not calibrated" in w for w in raw["warnings"])


def test_string_classes_map_to_sorted_columns() -> None:
    rng = np.random.default_rng(2)
    p1 = rng.uniform(0, 1, 100)
    proba = np.column_stack([1 - p1, p1])
    labels = np.where(rng.random(100) < p1, "yes", "no")
    pred = np.where(p1 > 0.5, "yes", "no")
    ref = Reference(proba, labels, pred)
    est = estimate_performance(proba.tolist(), predictions=pred.tolist(), reference=ref)
    assert est["decision_rule"] == LOGGED and est["calibration"]["reference_rows"] == 100
    assert est["metrics"]["accuracy"] == pytest.approx(
        estimate_performance(
            proba.tolist(),
            predictions=(pred == "yes").astype(int).tolist(),
            reference=Reference(proba, (labels == "yes").astype(int), None),
        )["metrics"]["accuracy"]
    )


def test_roc_auc_estimate_equals_the_true_auc_when_labels_follow_the_scores() -> None:
    """Expected AUC with calibrated scores is the AUC of labels drawn from them (on average)."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(3)
    p = rng.uniform(0, 1, 4000)
    y = (rng.random(4000) < p).astype(int)
    assert cbpe.estimate_roc_auc(p, p) == pytest.approx(roc_auc_score(y, p), abs=0.02)


def test_regression_has_no_estimate_and_says_why() -> None:
    est = estimate_performance([None] * 50, predictions=[1.25 + i for i in range(50)])
    assert est["status"] == "no_estimate"
    assert "direct loss estimation" in est["reason"] and "not implemented" in est["reason"]
    # A classifier that logged no probabilities is another case.
    assert estimate_performance([None] * 50, predictions=[1] * 50)["status"] == "unavailable"


def test_multiclass_one_vs_rest() -> None:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(y))
    tr, ref = idx[:75], idx[75:]
    m = LogisticRegression(max_iter=500).fit(x[tr], y[tr])
    p, pred = m.predict_proba(x[ref]), m.predict(x[ref])
    est = estimate_performance(
        p.tolist(), predictions=pred.tolist(), reference=Reference(p, y[ref], pred)
    )
    assert set(est["metrics"]) == {"accuracy", "roc_auc"}
    assert len(est["calibration"]["columns_calibrated"]) == 3
    assert 0.8 < est["metrics"]["accuracy"] <= 1.0


@pytest.fixture(scope="module")
def nannyml_py():  # noqa: ANN201
    py, why = bench.nannyml_python()
    if py is None:
        pytest.skip(f"NannyML's venv could not be created (pip failed): {why}")
    return py


@pytest.mark.slow
@pytest.mark.parametrize("name", ["random_forest", "logistic_regression"])
def test_matches_nannyml_on_a_covariate_shift(name: str, nannyml_py) -> None:  # noqa: ANN001
    ref, cur = _fit(bench.models()[name])
    ours = bench.ours(ref[0], ref[2], ref[1], cur[0], cur[1])["metrics"]
    theirs = bench.nannyml(nannyml_py, [0, 1], ref, cur)
    real = bench.realized(cur[2], cur[1], cur[0])
    for metric in bench.METRICS:
        print(f"{name} {metric}: ours {ours[metric]:.4f} nannyml {theirs[metric]:.4f} "
              f"realized {real[metric]:.4f}")  # fmt: skip
        assert ours[metric] == pytest.approx(theirs[metric], abs=0.01), metric


@pytest.mark.slow
def test_matches_nannyml_with_a_custom_decision_rule(nannyml_py) -> None:  # noqa: ANN001
    """Predictions from p > 0.8 (not argmax): both estimators take them as given."""
    ref, cur = _fit(bench.models()["logistic_regression"])
    ref = (ref[0], (ref[0][:, 1] > 0.8).astype(int), ref[2])
    cur = (cur[0], (cur[0][:, 1] > 0.8).astype(int), cur[2])
    ours = bench.ours(ref[0], ref[2], ref[1], cur[0], cur[1])["metrics"]
    theirs = bench.nannyml(nannyml_py, [0, 1], ref, cur)
    for metric in ("accuracy", "recall", "roc_auc"):
        assert ours[metric] == pytest.approx(theirs[metric], abs=0.01), metric
