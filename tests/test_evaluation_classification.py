"""Classification metrics cross-checked against scikit-learn on bundled datasets, plus the
honesty cases (undefined metrics carry a reason, never 0.0) and bad-input cases."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve
from sklearn.datasets import load_breast_cancer, load_digits, load_iris, load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from core.errors import InvalidInput
from core.evaluation import classification_metrics, compute_classification, evaluate

TOL = 1e-9


def _fit(loader, seed: int = 0):  # noqa: ANN001, ANN202
    X, y = loader(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.4, random_state=seed, stratify=y)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    model.fit(X_tr, y_tr)
    return y_te, model.predict(X_te), model.predict_proba(X_te), model


@pytest.fixture(scope="module")
def cancer():  # noqa: ANN201
    return _fit(load_breast_cancer)


@pytest.fixture(
    scope="module", params=[load_iris, load_wine, load_digits], ids=["iris", "wine", "digits"]
)
def multiclass(request):  # noqa: ANN001, ANN201
    return _fit(request.param)


def _ece_by_loop(truth: np.ndarray, prob: np.ndarray, n_bins: int = 10) -> float:
    """Independent ECE: explicit right-closed bins (first closed on both sides)."""
    edges = np.linspace(0, 1, n_bins + 1)
    total = 0.0
    for i in range(n_bins):
        lo, hi = edges[i], edges[i + 1]
        mask = (prob >= lo) & (prob <= hi) if i == 0 else (prob > lo) & (prob <= hi)
        if mask.any():
            total += mask.sum() / len(prob) * abs(truth[mask].mean() - prob[mask].mean())
    return total


def test_binary_metrics_equal_sklearn_on_breast_cancer(cancer) -> None:  # noqa: ANN001
    y, pred, proba, _ = cancer
    p1 = proba[:, 1]
    out = compute_classification(y, pred, proba)
    expected = {
        "accuracy": skm.accuracy_score(y, pred),
        "precision": skm.precision_score(y, pred),
        "recall": skm.recall_score(y, pred),
        "f1": skm.f1_score(y, pred),
        "auc_roc": skm.roc_auc_score(y, p1),
        "average_precision": skm.average_precision_score(y, p1),
        "log_loss": skm.log_loss(y, p1),
        "brier": skm.brier_score_loss(y, p1),
    }
    for avg in ("macro", "micro", "weighted"):
        expected[f"precision_{avg}"] = skm.precision_score(y, pred, average=avg)
        expected[f"recall_{avg}"] = skm.recall_score(y, pred, average=avg)
        expected[f"f1_{avg}"] = skm.f1_score(y, pred, average=avg)
    for name, value in expected.items():
        assert out.metrics[name] == pytest.approx(value, abs=TOL), name
    assert out.confusion is not None
    assert np.array_equal(out.confusion.matrix, skm.confusion_matrix(y, pred))
    assert out.unavailable == {}
    # 1-D positive-class scores give the same numbers as the (n, 2) matrix.
    assert compute_classification(y, pred, p1).metrics == out.metrics


def test_binary_calibration_and_ece(cancer) -> None:  # noqa: ANN001
    y, pred, proba, _ = cancer
    p1 = proba[:, 1]
    cal = compute_classification(y, pred, p1, calibration_bins=10).calibration
    prob_true, prob_pred = calibration_curve(y, p1, n_bins=10)
    assert cal is not None and cal.kind == "positive_class"
    np.testing.assert_allclose(cal.fraction_positive, prob_true, atol=TOL)
    np.testing.assert_allclose(cal.mean_predicted, prob_pred, atol=TOL)
    assert sum(cal.counts) == len(y)
    assert cal.ece == pytest.approx(_ece_by_loop(y, p1), abs=TOL)


def test_multiclass_metrics_equal_sklearn(multiclass) -> None:  # noqa: ANN001
    y, pred, proba, model = multiclass
    out = compute_classification(y, pred, proba)
    assert not out.enc.binary
    for avg in ("macro", "micro", "weighted"):
        for fn, base in (
            (skm.precision_score, "precision"),
            (skm.recall_score, "recall"),
            (skm.f1_score, "f1"),
        ):
            assert out.metrics[f"{base}_{avg}"] == pytest.approx(fn(y, pred, average=avg), abs=TOL)
    assert out.metrics["precision"] == out.metrics["precision_macro"]
    assert out.metrics["accuracy"] == pytest.approx(skm.accuracy_score(y, pred), abs=TOL)
    assert out.metrics["auc_roc"] == pytest.approx(
        skm.roc_auc_score(y, proba, multi_class="ovr"), abs=TOL
    )
    assert out.metrics["log_loss"] == pytest.approx(skm.log_loss(y, proba), abs=TOL)
    assert out.metrics["brier"] == pytest.approx(skm.brier_score_loss(y, proba), abs=TOL)
    onehot = (y[:, None] == model.classes_[None, :]).astype(int)
    assert out.metrics["average_precision"] == pytest.approx(
        skm.average_precision_score(onehot, proba, average="macro"), abs=TOL
    )
    assert np.array_equal(out.confusion.matrix, skm.confusion_matrix(y, pred))
    p, r, f, s = skm.precision_recall_fscore_support(y, pred)
    for i, c in enumerate(model.classes_):
        row = out.per_class[str(c)]
        assert (row["precision"], row["recall"], row["f1"], row["support"]) == pytest.approx(
            (p[i], r[i], f[i], s[i]), abs=TOL
        )
        assert row["auc_roc"] == pytest.approx(skm.roc_auc_score(y == c, proba[:, i]), abs=TOL)
    # Multiclass calibration is top-label: confidence of the argmax class vs. its accuracy.
    conf, correct = proba.max(axis=1), proba.argmax(axis=1) == y
    prob_true, prob_pred = calibration_curve(correct, conf, n_bins=10)
    assert out.calibration.kind == "top_label"
    np.testing.assert_allclose(out.calibration.fraction_positive, prob_true, atol=TOL)
    assert out.metrics["ece"] == pytest.approx(_ece_by_loop(correct, conf), abs=TOL)


def test_string_labels_and_explicit_pos_label(cancer) -> None:  # noqa: ANN001
    y, pred, proba, _ = cancer
    names = np.array(["malignant", "benign"])
    ys, ps = names[y], names[pred]
    out = compute_classification(ys, ps, proba[:, 1], pos_label="benign")
    assert out.metrics["precision"] == pytest.approx(
        skm.precision_score(ys, ps, pos_label="benign"), abs=TOL
    )
    assert out.metrics["auc_roc"] == pytest.approx(skm.roc_auc_score(y, proba[:, 1]), abs=TOL)
    other = compute_classification(ys, ps, proba[:, 0], pos_label="malignant")
    assert other.metrics["recall"] == pytest.approx(
        skm.recall_score(ys, ps, pos_label="malignant"), abs=TOL
    )
    assert other.metrics["auc_roc"] == pytest.approx(out.metrics["auc_roc"], abs=TOL)


def test_auc_with_heavy_ties_matches_sklearn() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 5000)
    score = np.round(rng.random(5000) * 0.6 + 0.4 * y, 1)  # only ~11 distinct values
    out = compute_classification(y, (score >= 0.5).astype(int), score)
    assert out.metrics["auc_roc"] == pytest.approx(skm.roc_auc_score(y, score), abs=TOL)
    assert out.metrics["average_precision"] == pytest.approx(
        skm.average_precision_score(y, score), abs=TOL
    )


def test_evaluate_requested_metrics_and_json(cancer) -> None:  # noqa: ANN001
    y, pred, proba, _ = cancer
    names = ["accuracy", "precision", "recall", "f1", "auc_roc"]
    result = evaluate("classification", y, pred, proba[:, 1], metrics=names)
    assert set(result.metrics) == set(names)
    assert result.pos_label == 1 and result.labels == [0, 1]
    dumped = result.model_dump(mode="json")
    assert dumped["metrics"]["auc_roc"] == pytest.approx(skm.roc_auc_score(y, proba[:, 1]))
    assert dumped["confusion_matrix"]["matrix"] == skm.confusion_matrix(y, pred).tolist()
    roc = [c for c in result.curves if c.kind == "roc"][0]
    fpr, tpr, _ = skm.roc_curve(y, proba[:, 1], drop_intermediate=False)
    assert roc.area == pytest.approx(skm.auc(fpr, tpr), abs=TOL)
    assert roc.x[0] == 0.0 and roc.x[-1] == 1.0 and roc.y[-1] == 1.0


def test_basic_classification_metrics_keeps_its_contract(cancer) -> None:  # noqa: ANN001
    y, pred, proba, _ = cancer
    out = classification_metrics(y, pred, proba[:, 1])
    assert set(out) == {"metrics", "unavailable", "n"} and out["n"] == len(y)
    assert out["metrics"]["f1"] == pytest.approx(skm.f1_score(y, pred), abs=TOL)
    assert out["metrics"]["auc_roc"] == pytest.approx(skm.roc_auc_score(y, proba[:, 1]), abs=TOL)
    no_score = classification_metrics(y, pred)
    assert "auc_roc" not in no_score["metrics"]
    assert "predict_proba" in no_score["unavailable"]["auc_roc"]


# --- honesty: undefined metrics carry a reason, never a number -----------------------------------


def test_one_class_present_reports_reasons_not_zero() -> None:
    y = np.zeros(20, dtype=int)
    pred = np.zeros(20, dtype=int)
    score = np.linspace(0.0, 0.4, 20)
    out = compute_classification(y, pred, score)
    assert out.metrics["accuracy"] == 1.0
    for name in ("precision", "recall", "f1", "auc_roc", "average_precision"):
        assert name not in out.metrics, name
        assert out.unavailable[name]
    assert "one class" in out.unavailable["auc_roc"]
    assert "no positive" in out.unavailable["recall"]
    # Log loss and Brier are defined with one class once the positive class is known.
    assert out.metrics["log_loss"] == pytest.approx(skm.log_loss(y, score, labels=[0, 1]), abs=TOL)
    assert out.metrics["brier"] == pytest.approx(
        skm.brier_score_loss(y, score, pos_label=1), abs=TOL
    )


def test_single_unknown_class_needs_pos_label() -> None:
    out = compute_classification(["spam"] * 5, ["spam"] * 5, [0.9] * 5)
    assert "pos_label" in out.unavailable["precision"]
    assert "auc_roc" in out.unavailable
    with_pos = compute_classification(["spam"] * 5, ["spam"] * 5, [0.9] * 5, pos_label="spam")
    assert with_pos.metrics["precision"] == 1.0
    assert "one class" in with_pos.unavailable["auc_roc"]


def test_nan_predictions_and_scores_are_reported(cancer) -> None:  # noqa: ANN001
    y, pred, proba, _ = cancer
    bad_pred = pred.astype(float)
    bad_pred[[3, 7]] = np.nan
    out = compute_classification(y, bad_pred, proba[:, 1])
    for name in ("accuracy", "precision", "f1_macro"):
        assert "missing values" in out.unavailable[name] and "3, 7" in out.unavailable[name]
    assert out.metrics["auc_roc"] == pytest.approx(skm.roc_auc_score(y, proba[:, 1]), abs=TOL)

    bad_score = proba[:, 1].copy()
    bad_score[5] = np.nan
    out = compute_classification(y, pred, bad_score)
    for name in ("auc_roc", "log_loss", "brier", "ece"):
        assert "NaN" in out.unavailable[name] and "5" in out.unavailable[name]
    assert out.metrics["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))


def test_decision_scores_give_auc_but_no_probability_metrics(cancer) -> None:  # noqa: ANN001
    y, pred, _, model = cancer
    X, _ = load_breast_cancer(return_X_y=True)
    _, X_te = train_test_split(
        X, test_size=0.4, random_state=0, stratify=load_breast_cancer().target
    )
    decision = model.decision_function(X_te)
    out = compute_classification(y, pred, decision)
    assert out.metrics["auc_roc"] == pytest.approx(skm.roc_auc_score(y, decision), abs=TOL)
    assert "outside [0, 1]" in out.unavailable["log_loss"]
    assert out.calibration is None


def test_never_predicted_class_makes_macro_precision_unavailable() -> None:
    y = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([0, 0, 1, 1, 1, 1])  # class 2 never predicted
    out = compute_classification(y, pred)
    assert "precision_macro" not in out.metrics
    assert "[2]" in out.unavailable["precision_macro"]
    assert out.per_class_unavailable["2"]["precision"].startswith("no positive predictions")
    # Recall is defined for every class, so its averages are real numbers.
    assert out.metrics["recall_macro"] == pytest.approx(skm.recall_score(y, pred, average="macro"))
    assert out.metrics["f1_macro"] == pytest.approx(skm.f1_score(y, pred, average="macro"))


# --- bad input ------------------------------------------------------------------------------------


def test_length_mismatch_raises() -> None:
    with pytest.raises(InvalidInput, match="3 rows but y_pred has 2"):
        compute_classification([0, 1, 1], [0, 1])
    with pytest.raises(InvalidInput, match="y_score has 2"):
        compute_classification([0, 1, 1], [0, 1, 1], [0.2, 0.8])


def test_nan_labels_raise_with_rows() -> None:
    with pytest.raises(InvalidInput, match="y_true contains missing values") as exc:
        compute_classification([0.0, np.nan, 1.0], [0, 1, 1])
    assert "1" in exc.value.message and exc.value.hint


def test_unknown_label_and_bad_score_shape() -> None:
    with pytest.raises(InvalidInput, match="label 7"):
        compute_classification([0, 1, 7], [0, 1, 1], labels=[0, 1])
    with pytest.raises(InvalidInput, match="3 classes") as exc:
        compute_classification([0, 1, 2, 1], [0, 1, 2, 1], np.full((4, 4), 0.25))
    assert "labels" in exc.value.hint
    with pytest.raises(InvalidInput, match="mix types"):
        compute_classification(np.array([0, "a"], dtype=object), np.array([0, "a"], dtype=object))
    with pytest.raises(InvalidInput, match="empty"):
        compute_classification([], [])


def test_missing_class_in_data_needs_labels() -> None:
    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=1000).fit(X, y)
    keep = y < 2
    proba = model.predict_proba(X[keep])
    pred = proba[:, :2].argmax(axis=1)  # only classes 0 and 1 appear: 3 score columns, 2 labels
    with pytest.raises(InvalidInput):
        compute_classification(y[keep], pred, proba)
    out = compute_classification(y[keep], pred, proba, labels=model.classes_)
    assert "2" in out.unavailable["auc_roc"]
    assert out.metrics["accuracy"] == pytest.approx(skm.accuracy_score(y[keep], pred))


def test_unknown_metric_name_lists_known_names(cancer) -> None:  # noqa: ANN001
    y, pred, _, _ = cancer
    with pytest.raises(InvalidInput, match="unknown classification metric 'acuracy'") as exc:
        evaluate("classification", y, pred, metrics=["acuracy"])
    assert "accuracy" in exc.value.hint and "auc_roc" in exc.value.hint
    with pytest.raises(InvalidInput, match="unknown task"):
        evaluate("ranking", y, pred)
