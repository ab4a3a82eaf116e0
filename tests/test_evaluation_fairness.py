"""Fairness values cross-checked against fairlearn (MetricFrame, demographic parity, equalized
odds) and scikit-learn (per-group AUC, calibration), plus empty-group and bad-input cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from core.errors import InvalidInput
from core.evaluation import evaluate, fairness_report

TOL = 1e-9


@pytest.fixture(scope="module")
def cancer():  # noqa: ANN201
    data = load_breast_cancer(as_frame=True)
    X, y = data.data, data.target.to_numpy()
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.5, random_state=1, stratify=y)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(X_tr, y_tr)
    # Synthetic sensitive attributes: tertiles of a feature, and a seeded random "site".
    size = pd.qcut(X_te["mean texture"], 3, labels=["low", "mid", "high"]).astype(str).to_numpy()
    site = np.random.default_rng(0).choice(["north", "south"], len(y_te))
    frame = X_te.assign(size=size, site=site).reset_index(drop=True)
    return y_te, model.predict(X_te), model.predict_proba(X_te)[:, 1], frame


def _by_group(frame: MetricFrame, group: str, metric: str) -> float:
    return float(frame.by_group.loc[group, metric])


def test_per_group_metrics_equal_fairlearn(cancer) -> None:  # noqa: ANN001
    y, pred, score, frame = cancer
    fair = fairness_report(y, pred, frame["size"], y_score=score)
    mf = MetricFrame(
        metrics={
            "accuracy": skm.accuracy_score,
            "precision": skm.precision_score,
            "recall": skm.recall_score,
            "f1": skm.f1_score,
            "selection_rate": selection_rate,
            "fpr": false_positive_rate,
            "tpr": true_positive_rate,
        },
        y_true=y,
        y_pred=pred,
        sensitive_features=frame["size"],
    )
    assert {g.group for g in fair.groups} == {"low", "mid", "high"}
    for g in fair.groups:
        assert g.count == int((frame["size"] == g.group).sum())
        for name in ("accuracy", "precision", "recall", "f1", "selection_rate", "fpr"):
            assert g.metrics[name] == pytest.approx(_by_group(mf, g.group, name), abs=TOL), (
                g.group,
                name,
            )
    sf = frame["size"]
    assert fair.metrics["demographic_parity_difference"] == pytest.approx(
        demographic_parity_difference(y, pred, sensitive_features=sf), abs=TOL
    )
    assert fair.metrics["demographic_parity_ratio"] == pytest.approx(
        demographic_parity_ratio(y, pred, sensitive_features=sf), abs=TOL
    )
    assert fair.metrics["equalized_odds_difference"] == pytest.approx(
        equalized_odds_difference(y, pred, sensitive_features=sf), abs=TOL
    )


def test_per_group_auc_and_calibration_match_sklearn(cancer) -> None:  # noqa: ANN001
    y, pred, score, frame = cancer
    result = evaluate(
        "classification", y, pred, score, sensitive_features="size", features_df=frame
    )
    auc_frame = MetricFrame(
        metrics=skm.roc_auc_score, y_true=y, y_pred=score, sensitive_features=frame["size"]
    )
    for g in result.fairness.groups:
        mask = frame["size"].to_numpy() == g.group
        assert g.metrics["auc_roc"] == pytest.approx(
            float(auc_frame.by_group.loc[g.group]), abs=TOL
        )
        prob_true, prob_pred = calibration_curve(y[mask], score[mask], n_bins=10)
        np.testing.assert_allclose(g.calibration.fraction_positive, prob_true, atol=TOL)
        np.testing.assert_allclose(g.calibration.mean_predicted, prob_pred, atol=TOL)
        assert sum(g.calibration.counts) == mask.sum() == g.count


def test_intersectional_groups_equal_fairlearn(cancer) -> None:  # noqa: ANN001
    y, pred, score, frame = cancer
    fair = fairness_report(y, pred, ["size", "site"], features_df=frame)
    mf = MetricFrame(
        metrics={"accuracy": skm.accuracy_score, "selection_rate": selection_rate},
        y_true=y,
        y_pred=pred,
        sensitive_features=frame[["size", "site"]],
    )
    expected = {f"size={a}, site={b}": row for (a, b), row in mf.by_group.iterrows()}
    assert {g.group for g in fair.groups} == set(expected)
    for g in fair.groups:
        assert g.metrics["accuracy"] == pytest.approx(expected[g.group]["accuracy"], abs=TOL)
        assert g.metrics["selection_rate"] == pytest.approx(
            expected[g.group]["selection_rate"], abs=TOL
        )
    assert fair.metrics["demographic_parity_difference"] == pytest.approx(
        demographic_parity_difference(y, pred, sensitive_features=frame[["size", "site"]]), abs=TOL
    )


def test_vectorized_path_on_larger_synthetic_data() -> None:
    rng = np.random.default_rng(7)
    n = 20_000
    groups = rng.choice(np.array(["a", "b", "c", "d"], dtype=object), n, p=[0.4, 0.3, 0.2, 0.1])
    y = rng.integers(0, 2, n)
    score = np.clip(0.35 * y + rng.random(n) * 0.65 + (groups == "d") * 0.1, 0, 1).round(3)
    pred = (score >= 0.5).astype(int)
    fair = fairness_report(y, pred, groups, y_score=score)
    assert fair.metrics["equalized_odds_difference"] == pytest.approx(
        equalized_odds_difference(y, pred, sensitive_features=groups), abs=TOL
    )
    assert fair.metrics["demographic_parity_ratio"] == pytest.approx(
        demographic_parity_ratio(y, pred, sensitive_features=groups), abs=TOL
    )
    for g in fair.groups:
        mask = groups == g.group
        assert g.metrics["auc_roc"] == pytest.approx(
            skm.roc_auc_score(y[mask], score[mask]), abs=TOL
        )
        assert g.metrics["precision"] == pytest.approx(
            skm.precision_score(y[mask], pred[mask]), abs=TOL
        )


def test_empty_declared_group_and_group_without_positives_have_reasons() -> None:
    y = np.array([0, 1, 0, 1, 0, 0, 0, 0])
    pred = np.array([0, 1, 1, 1, 0, 1, 0, 0])
    groups = pd.Categorical(["a", "a", "a", "a", "b", "b", "b", "b"], categories=["a", "b", "c"])
    fair = fairness_report(y, pred, pd.Series(groups, name="region"))
    by_name = {g.group: g for g in fair.groups}
    assert by_name["c"].count == 0 and by_name["c"].metrics == {}
    assert by_name["c"].unavailable["all"] == "no rows in this group"
    assert any("'c' has no rows" in note for note in fair.notes)
    # Group b has no positive labels: its recall is undefined, so equalized odds is too.
    assert "recall" not in by_name["b"].metrics
    assert "no positive labels" in by_name["b"].unavailable["recall"]
    assert "equalized_odds_difference" not in fair.metrics
    assert "'b'" in fair.unavailable["equalized_odds_difference"]
    # Selection rates are defined for both non-empty groups: 3/4 and 1/4.
    assert fair.metrics["demographic_parity_difference"] == pytest.approx(0.5)
    assert fair.metrics["demographic_parity_ratio"] == pytest.approx(1 / 3)


def test_multiclass_and_regression_fairness() -> None:
    X, y = load_wine(return_X_y=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(X, y)
    groups = np.where(X[:, 0] > np.median(X[:, 0]), "high_alcohol", "low_alcohol")
    fair = fairness_report(y, model.predict(X), groups)
    mf = MetricFrame(
        metrics=skm.accuracy_score, y_true=y, y_pred=model.predict(X), sensitive_features=groups
    )
    for g in fair.groups:
        assert g.metrics["accuracy"] == pytest.approx(float(mf.by_group.loc[g.group]), abs=TOL)
    assert "binary" in fair.unavailable["demographic_parity_difference"]

    Xd, yd = load_diabetes(return_X_y=True)
    pred = LinearRegression().fit(Xd, yd).predict(Xd)
    sex = np.where(Xd[:, 1] > 0, "s1", "s2")
    fair = fairness_report(yd, pred, sex, task="regression")
    mf = MetricFrame(
        metrics=skm.mean_absolute_error, y_true=yd, y_pred=pred, sensitive_features=sex
    )
    for g in fair.groups:
        assert g.metrics["mae"] == pytest.approx(float(mf.by_group.loc[g.group]), abs=TOL)
    gap = mf.by_group.max() - mf.by_group.min()
    assert fair.metrics["mae_difference"] == pytest.approx(gap, abs=TOL)


def test_fairness_bad_input(cancer) -> None:  # noqa: ANN001
    y, pred, _, frame = cancer
    with pytest.raises(InvalidInput, match="unknown sensitive feature column") as exc:
        fairness_report(y, pred, "gender", features_df=frame)
    assert "mean radius" in exc.value.hint
    with pytest.raises(InvalidInput, match="features_df"):
        fairness_report(y, pred, "size")
    with pytest.raises(InvalidInput, match=f"{len(y)} rows but sensitive_features has 3"):
        fairness_report(y, pred, ["a", "b", "c"])
    groups = frame["size"].copy()
    groups.iloc[4] = None
    with pytest.raises(InvalidInput, match="missing values") as exc:
        fairness_report(y, pred, groups)
    assert "4" in exc.value.message
