"""Champion comparison: the vectorized paired bootstrap equals a per-resample scikit-learn
loop on the same resamples, and verdicts follow the CI and min_effect rules."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError
from sklearn import metrics as skm
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.dummy import DummyRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from core.errors import InvalidInput
from core.evaluation import ComparisonParams, Predictions, compare_with_champion, evaluate

TOL = 1e-9


def params(**overrides) -> ComparisonParams:  # noqa: ANN003
    values = {
        "n_boot": 200,
        "confidence": 0.95,
        "min_effect": 0.0,
        "primary_metric": "auc_roc",
        "seed": 11,
    }
    values.update(overrides)
    return ComparisonParams(**values)


@pytest.fixture(scope="module")
def cancer_models():  # noqa: ANN201
    X, y = load_breast_cancer(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.5, random_state=3, stratify=y)
    strong = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(X_tr, y_tr)
    weak = LogisticRegression(max_iter=2000).fit(X_tr[:, [9]], y_tr)  # fractal dimension only
    return (
        y_te,
        Predictions(strong.predict(X_te), strong.predict_proba(X_te)[:, 1]),
        Predictions(weak.predict(X_te[:, [9]]), weak.predict_proba(X_te[:, [9]])[:, 1]),
    )


def _replicates(n: int, n_boot: int, seed: int) -> np.ndarray:
    """The resamples compare_with_champion draws for small n (one chunk of n_boot rows)."""
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def test_bootstrap_cis_equal_sklearn_on_the_same_resamples(cancer_models) -> None:  # noqa: ANN001
    y, cand, champ = cancer_models
    p = params(n_boot=60, confidence=0.9)
    names = ["accuracy", "precision", "f1_macro", "auc_roc", "log_loss", "brier"]
    result = compare_with_champion("classification", y, cand, champ, params=p, metrics=names)
    sk = {
        "accuracy": lambda t, a, s: skm.accuracy_score(t, a),
        "precision": lambda t, a, s: skm.precision_score(t, a),
        "f1_macro": lambda t, a, s: skm.f1_score(t, a, average="macro"),
        "auc_roc": lambda t, a, s: skm.roc_auc_score(t, s),
        "log_loss": lambda t, a, s: skm.log_loss(t, s, labels=[0, 1]),
        "brier": lambda t, a, s: skm.brier_score_loss(t, s, pos_label=1),
    }
    idx = _replicates(len(y), p.n_boot, p.seed)
    for name, fn in sk.items():
        diffs = [
            fn(y[i], cand.y_pred[i], cand.y_score[i]) - fn(y[i], champ.y_pred[i], champ.y_score[i])
            for i in idx
        ]
        lo, hi = np.percentile(diffs, [5, 95])
        m = result.per_metric[name]
        assert (m.ci_low, m.ci_high) == pytest.approx((lo, hi), abs=TOL), name
        full = fn(y, cand.y_pred, cand.y_score) - fn(y, champ.y_pred, champ.y_score)
        assert m.difference == pytest.approx(full, abs=TOL), name


def test_verdicts_better_worse_inconclusive(cancer_models) -> None:  # noqa: ANN001
    y, cand, champ = cancer_models
    names = ["accuracy", "auc_roc", "log_loss"]
    better = compare_with_champion("classification", y, cand, champ, params=params(), metrics=names)
    assert better.verdict == "better"
    assert better.per_metric["auc_roc"].verdict == "better"
    # log loss is lower-is-better: a lower candidate loss is an improvement.
    assert better.per_metric["log_loss"].difference < 0
    assert better.per_metric["log_loss"].verdict == "better"

    worse = compare_with_champion("classification", y, champ, cand, params=params(), metrics=names)
    assert worse.verdict == "worse" and worse.per_metric["accuracy"].verdict == "worse"

    same = compare_with_champion("classification", y, cand, cand, params=params(), metrics=names)
    assert same.verdict == "inconclusive"
    assert all(m.ci_low == m.ci_high == 0 for m in same.per_metric.values())

    # A real but small gain is inconclusive when it is below the caller's min_effect.
    gain = better.per_metric["auc_roc"].difference
    strict = compare_with_champion(
        "classification", y, cand, champ, params=params(min_effect=gain * 2), metrics=["auc_roc"]
    )
    assert strict.verdict == "inconclusive" and "min_effect" in strict.reason


def test_seeded_resampling_is_reproducible(cancer_models) -> None:  # noqa: ANN001
    y, cand, champ = cancer_models
    a = compare_with_champion(
        "classification", y, cand, champ, params=params(seed=5), metrics=["f1"]
    )
    b = compare_with_champion(
        "classification", y, cand, champ, params=params(seed=5), metrics=["f1"]
    )
    c = compare_with_champion(
        "classification", y, cand, champ, params=params(seed=6), metrics=["f1"]
    )
    assert a.per_metric["f1"] == b.per_metric["f1"]
    assert a.per_metric["f1"].ci_low != c.per_metric["f1"].ci_low


def test_multiclass_auc_bootstrap_equals_sklearn() -> None:
    X, y = load_wine(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.5, random_state=0, stratify=y)
    a = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X_tr, y_tr)
    b = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X_tr[:, [2]], y_tr)
    cand = Predictions(a.predict(X_te), a.predict_proba(X_te))
    champ = Predictions(b.predict(X_te[:, [2]]), b.predict_proba(X_te[:, [2]]))
    p = params(n_boot=50, primary_metric="accuracy")
    result = compare_with_champion(
        "classification", y_te, cand, champ, params=p, metrics=["auc_roc"]
    )
    diffs = []
    for i in _replicates(len(y_te), p.n_boot, p.seed):
        if len(np.unique(y_te[i])) < 3:
            diffs.append(np.nan)  # a class missing from the resample: AUC undefined
            continue
        diffs.append(
            skm.roc_auc_score(y_te[i], cand.y_score[i], multi_class="ovr")
            - skm.roc_auc_score(y_te[i], champ.y_score[i], multi_class="ovr")
        )
    lo, hi = np.nanpercentile(diffs, [2.5, 97.5])
    m = result.per_metric["auc_roc"]
    assert (m.ci_low, m.ci_high) == pytest.approx((lo, hi), abs=TOL)
    assert result.per_metric["accuracy"].verdict == "better"


def test_regression_comparison_equals_sklearn() -> None:
    X, y = load_diabetes(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, random_state=0)
    cand = Predictions(LinearRegression().fit(X_tr, y_tr).predict(X_te))
    champ = Predictions(DummyRegressor().fit(X_tr, y_tr).predict(X_te))
    p = params(n_boot=80, primary_metric="rmse", min_effect=1.0)
    result = compare_with_champion(
        "regression", y_te, cand, champ, params=p, metrics=["rmse", "r2", "mae"]
    )
    idx = _replicates(len(y_te), p.n_boot, p.seed)
    for name, fn in (
        ("rmse", skm.root_mean_squared_error),
        ("r2", skm.r2_score),
        ("mae", skm.mean_absolute_error),
    ):
        diffs = [fn(y_te[i], cand.y_pred[i]) - fn(y_te[i], champ.y_pred[i]) for i in idx]
        lo, hi = np.percentile(diffs, [2.5, 97.5])
        assert (result.per_metric[name].ci_low, result.per_metric[name].ci_high) == pytest.approx(
            (lo, hi), abs=1e-7
        )
    assert result.verdict == "better" and result.per_metric["rmse"].difference < -1.0


def test_comparison_through_evaluate_and_unavailable_metrics(cancer_models) -> None:  # noqa: ANN001
    y, cand, champ = cancer_models
    result = evaluate(
        "classification",
        y,
        cand.y_pred,
        cand.y_score,
        metrics=["accuracy", "auc_roc", "ece"],
        champion={"y_pred": champ.y_pred},  # the champion has no scores
        comparison_params={
            "n_boot": 100,
            "confidence": 0.95,
            "min_effect": 0.0,
            "primary_metric": "accuracy",
        },
    )
    comp = result.comparison
    assert comp.per_metric["accuracy"].verdict == "better"
    assert "champion: no scores given" in comp.unavailable["auc_roc"]
    assert "not supported" in comp.unavailable["ece"]
    assert result.model_dump(mode="json")["comparison"]["verdict"] == "better"


def test_comparison_bad_input(cancer_models) -> None:  # noqa: ANN001
    y, cand, champ = cancer_models
    with pytest.raises(InvalidInput, match="comparison_params"):
        evaluate("classification", y, cand.y_pred, champion=champ)
    with pytest.raises(InvalidInput, match="champion y_pred has 3"):
        compare_with_champion("classification", y, cand, Predictions([0, 1, 0]), params=params())
    with pytest.raises(InvalidInput, match="unknown classification metric 'auc'"):
        compare_with_champion("classification", y, cand, champ, params=params(primary_metric="auc"))
    with pytest.raises(InvalidInput, match="must be Predictions"):
        compare_with_champion("classification", y, cand, [0, 1], params=params())
    with pytest.raises(ValidationError):
        ComparisonParams(n_boot=10, confidence=0.95, min_effect=0.0, primary_metric="f1")
    nan_champ = Predictions(champ.y_pred.astype(float))
    nan_champ.y_pred[0] = np.nan
    result = compare_with_champion(
        "classification",
        y,
        cand,
        nan_champ,
        params=params(primary_metric="accuracy"),
        metrics=["accuracy"],
    )
    assert result.verdict == "inconclusive" and "missing values" in result.unavailable["accuracy"]
