"""Threshold analysis vs scikit-learn curves, and worst-slice error analysis vs pandas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from core.errors import InvalidInput
from core.evaluation import evaluate, threshold_analysis, worst_slices

TOL = 1e-9


@pytest.fixture(scope="module")
def cancer():  # noqa: ANN201
    data = load_breast_cancer(as_frame=True)
    X_tr, X_te, y_tr, y_te = train_test_split(
        data.data, data.target.to_numpy(), test_size=0.5, random_state=2
    )
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.05)).fit(
        X_tr, y_tr
    )
    return y_te, model.predict(X_te), model.predict_proba(X_te)[:, 1], X_te.reset_index(drop=True)


def test_best_thresholds_match_sklearn_curves(cancer) -> None:  # noqa: ANN001
    y, _, score, _ = cancer
    analysis = threshold_analysis(y, score)
    fpr, tpr, thr = skm.roc_curve(y, score, drop_intermediate=False)
    j = tpr - fpr
    best_j = analysis.best["youden_j"]
    assert best_j.value == pytest.approx(j.max(), abs=TOL)
    assert best_j.threshold == thr[np.argmax(j)]
    precision, recall, pr_thr = skm.precision_recall_curve(y, score)
    with np.errstate(invalid="ignore"):
        f1 = 2 * precision * recall / (precision + recall)
    best_f1 = analysis.best["f1"]
    assert best_f1.value == pytest.approx(np.nanmax(f1[:-1]), abs=TOL)
    # The chosen threshold really gives that F1 and confusion counts.
    chosen = (score >= best_f1.threshold).astype(int)
    assert skm.f1_score(y, chosen) == pytest.approx(best_f1.value, abs=TOL)
    tn, fp, fn, tp = skm.confusion_matrix(y, chosen).ravel()
    assert (best_f1.tp, best_f1.fp, best_f1.fn, best_f1.tn) == (tp, fp, fn, tn)
    assert "cost" in analysis.unavailable


def test_cost_optimal_threshold_is_exact(cancer) -> None:  # noqa: ANN001
    y, _, score, _ = cancer
    analysis = threshold_analysis(y, score, cost_fp=1.0, cost_fn=5.0)
    best = analysis.best["cost"]
    # Brute force over every distinct score plus "predict nothing".
    candidates = np.append(np.unique(score), np.inf)
    costs = [
        1.0 * ((score >= t) & (y == 0)).sum() + 5.0 * ((score < t) & (y == 1)).sum()
        for t in candidates
    ]
    assert best.value == pytest.approx(min(costs))
    chosen = score >= best.threshold
    assert 1.0 * (chosen & (y == 0)).sum() + 5.0 * (~chosen & (y == 1)).sum() == pytest.approx(
        best.value
    )
    # A higher false-negative cost never raises the threshold.
    cheap = threshold_analysis(y, score, cost_fp=1.0, cost_fn=0.2).best["cost"]
    assert cheap.threshold >= best.threshold


def test_threshold_table_rows_equal_confusion_matrices(cancer) -> None:  # noqa: ANN001
    y, _, score, _ = cancer
    grid = [0.1, 0.3, 0.5, 0.7, 0.9, 0.999999]
    analysis = threshold_analysis(y, score, grid=grid, cost_fp=2.0, cost_fn=1.0)
    for row in analysis.table:
        chosen = (score >= row.threshold).astype(int)
        tn, fp, fn, tp = skm.confusion_matrix(y, chosen, labels=[0, 1]).ravel()
        assert (row.tp, row.fp, row.fn, row.tn) == (tp, fp, fn, tn)
        assert row.recall == pytest.approx(skm.recall_score(y, chosen), abs=TOL)
        assert row.cost == pytest.approx(2.0 * fp + 1.0 * fn)
        if tp + fp == 0:
            assert row.precision is None  # undefined, not 0.0
        else:
            assert row.precision == pytest.approx(skm.precision_score(y, chosen), abs=TOL)


def test_threshold_bad_input(cancer) -> None:  # noqa: ANN001
    y, _, score, _ = cancer
    with pytest.raises(InvalidInput, match="both cost_fp and cost_fn"):
        threshold_analysis(y, score, cost_fp=1.0)
    with pytest.raises(InvalidInput, match="non-negative"):
        threshold_analysis(y, score, cost_fp=-1.0, cost_fn=1.0)
    with pytest.raises(InvalidInput, match="binary"):
        threshold_analysis([0, 1, 2], [0.1, 0.5, 0.9])
    bad = score.copy()
    bad[0] = np.nan
    with pytest.raises(InvalidInput, match="NaN"):
        threshold_analysis(y, bad)


def test_one_class_threshold_analysis_reports_reasons() -> None:
    result = threshold_analysis([0, 0, 0], [0.1, 0.2, 0.3], cost_fp=1, cost_fn=1)
    assert "f1" not in result.best and "positive" in result.unavailable["f1"]
    assert "youden_j" in result.unavailable
    assert result.best["cost"].value == 0.0  # predicting nothing costs nothing: a real optimum


# --- slices --------------------------------------------------------------------------------------


def test_worst_slices_match_pandas_groupby(cancer) -> None:  # noqa: ANN001
    y, pred, _, X = cancer
    frame = X[["mean radius", "mean texture"]].assign(
        site=np.random.default_rng(0).choice(["clinic_a", "clinic_b", "clinic_c"], len(y))
    )
    errors = (pred != y).astype(float)
    analysis = worst_slices(
        frame, errors, error_measure="error rate", min_slice_size=20, n_bins=4, top_k=50
    )
    expected = {}
    for col in ("mean radius", "mean texture"):
        bins = pd.qcut(frame[col], 4, duplicates="drop")
        for interval, grp in pd.Series(errors).groupby(bins.to_numpy(), observed=True):
            expected[(col, round(interval.right, 9))] = (len(grp), grp.mean())
    for site, grp in pd.Series(errors).groupby(frame["site"].to_numpy()):
        expected[("site", site)] = (len(grp), grp.mean())
    assert len(analysis.slices) == len(expected)
    for s in analysis.slices:
        key = (s.feature, s.value) if s.kind == "category" else (s.feature, round(s.upper, 9))
        assert (s.count, s.error) == pytest.approx(expected[key], abs=TOL), key
        assert s.lift == pytest.approx(s.error - errors.mean(), abs=TOL)
    assert [s.error for s in analysis.slices] == sorted(
        (s.error for s in analysis.slices), reverse=True
    )
    assert analysis.overall_error == pytest.approx(1 - skm.accuracy_score(y, pred))


def test_small_slices_are_ignored_and_missing_is_a_slice() -> None:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "color": ["red"] * 50 + ["blue"] * 45 + ["green"] * 5,
            "age": np.r_[rng.normal(40, 5, 60), [np.nan] * 40],
        }
    )
    errors = np.r_[np.ones(50) * 0.0, np.ones(45), np.ones(5)]
    analysis = worst_slices(frame, errors, error_measure="error rate", min_slice_size=10, top_k=20)
    described = {s.description: s for s in analysis.slices}
    assert "color == 'green'" not in described  # 5 rows < 10: ignored even with 100 % error
    assert analysis.skipped_small >= 1
    assert described["color == 'blue'"].error == 1.0
    assert described["age is missing"].count == 40
    with pytest.raises(InvalidInput, match="unknown slice column"):
        worst_slices(frame, errors, error_measure="e", columns=["colour"])
    with pytest.raises(InvalidInput, match="100 rows but there are 3"):
        worst_slices(frame, [0, 1, 0], error_measure="e")


def test_evaluate_regression_slices_rank_by_absolute_error() -> None:
    data = load_diabetes(as_frame=True)
    X, y = data.data, data.target
    pred = LinearRegression().fit(X, y).predict(X)
    result = evaluate("regression", y, pred, features_df=X, min_slice_size=40)
    assert result.slices.error_measure == "mean absolute error"
    worst = result.slices.slices[0]
    if worst.kind == "numeric_bin":
        col = X[worst.feature]
        mask = (
            (col > worst.lower) & (col <= worst.upper)
            if worst.lower != col.min()
            else col <= worst.upper
        )
    else:
        mask = X[worst.feature] == worst.value
    assert worst.count == int(mask.sum())
    assert worst.error == pytest.approx(float(np.abs(pred - y)[mask.to_numpy()].mean()), abs=TOL)
    assert all(s.count >= 40 for s in result.slices.slices)
