"""ONNX export, the hot-path predictor, parity checks and the benchmark loops."""

from __future__ import annotations

import time

import numpy as np
import onnx
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.cluster import KMeans
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.ensemble import GradientBoostingRegressor, RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from core.errors import GateFailed, InvalidInput
from core.optimizer import (
    INPUT_NAME,
    BenchmarkSettings,
    OnnxPredictor,
    check_parity,
    dedupe_opset_imports,
    export_to_onnx,
    measure_single_row,
    measure_throughput,
    quantize_dynamic_int8,
    require_parity,
)


@pytest.fixture(scope="module")
def cancer() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    X, y = load_breast_cancer(return_X_y=True)
    return X[:400], y[:400], X[400:], y[400:]


@pytest.fixture(scope="module")
def diabetes() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    X, y = load_diabetes(return_X_y=True)
    return X[:350], y[:350], X[350:], y[350:]


@pytest.fixture(scope="module")
def forest(cancer):
    X, y, _, _ = cancer
    return RandomForestClassifier(n_estimators=100, random_state=0).fit(X, y)


@pytest.fixture(scope="module")
def forest_onnx(cancer, forest) -> bytes:
    return export_to_onnx(forest, cancer[0][:5]).to_bytes()


# liblinear converges in milliseconds on the unscaled features; lbfgs needs seconds.
CLASSIFIERS = {
    "logistic_regression": lambda: LogisticRegression(solver="liblinear"),
    "scaled_logistic_pipeline": lambda: make_pipeline(StandardScaler(), LogisticRegression()),
}


@pytest.mark.parametrize("name", sorted(CLASSIFIERS))
def test_classifier_parity_on_held_out_rows(cancer, name):
    X, y, X_hold, _ = cancer
    model = CLASSIFIERS[name]().fit(X, y)
    exported = export_to_onnx(model, X[:5])
    report = check_parity(model, OnnxPredictor(exported.to_bytes()), X_hold)

    assert report.passed, report.failures
    assert report.rows == len(X_hold)
    assert report.label_agreement == 1.0
    assert 0.0 < report.max_abs_diff <= 1e-5  # float32 graph: close but not bit-identical


def test_random_forest_parity_and_graph_shape(cancer, forest):
    X, _, X_hold, _ = cancer
    exported = export_to_onnx(forest, X[:5])
    graph = exported.model.graph

    assert exported.task == "classification" and exported.n_features == X.shape[1]
    assert [i.name for i in graph.input] == [INPUT_NAME]
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    # zipmap disabled: labels and probabilities come back as plain tensors.
    assert [o.name for o in graph.output] == ["label", "probabilities"]
    domains = [entry.domain for entry in exported.model.opset_import]
    assert len(domains) == len(set(domains))

    report = require_parity(check_parity(forest, OnnxPredictor(exported.to_bytes()), X_hold))
    assert report.label_agreement == 1.0 and report.max_abs_diff <= 1e-5


@pytest.mark.parametrize("factory", [LinearRegression, GradientBoostingRegressor])
def test_regressor_parity_is_scaled_to_the_prediction_range(diabetes, factory):
    X, y, X_hold, _ = diabetes
    model = factory().fit(X, y)
    predictor = OnnxPredictor(export_to_onnx(model, X[:5]).to_bytes())
    predictions, probabilities = predictor.predict(X_hold)
    report = check_parity(model, predictor, X_hold)

    assert probabilities is None and predictions.shape == (len(X_hold),)
    assert report.passed, report.failures
    assert report.label_agreement is None
    # Predictions reach ~300, so the score scale is the largest |prediction| and the
    # float32 rounding (~1e-5 absolute) is well inside the relative tolerance.
    assert report.score_scale > 100
    assert report.max_scaled_diff == pytest.approx(report.max_abs_diff / report.score_scale)
    assert report.max_scaled_diff <= 1e-5


def test_predictor_single_row_matches_sklearn_and_applies_session_options(
    cancer, forest, forest_onnx
):
    X, _, X_hold, _ = cancer
    predictor = OnnxPredictor(
        forest_onnx, intra_op_threads=2, inter_op_threads=1, graph_optimization_level="basic"
    )
    labels, probabilities = predictor.predict(X_hold[0])  # a 1-D row is accepted

    assert labels.tolist() == forest.predict(X_hold[:1]).tolist()
    np.testing.assert_allclose(probabilities, forest.predict_proba(X_hold[:1]), atol=1e-5)
    options = predictor.session.get_session_options()
    assert options.intra_op_num_threads == 2
    assert options.graph_optimization_level.name == "ORT_ENABLE_BASIC"
    assert predictor.config.intra_op_threads == 2
    assert predictor.input_name == INPUT_NAME and predictor.n_features == X.shape[1]


def test_predictor_loads_from_a_path_and_rejects_wrong_width(tmp_path, cancer, forest_onnx):
    _, _, X_hold, _ = cancer
    path = tmp_path / "model.onnx"
    path.write_bytes(forest_onnx)
    predictor = OnnxPredictor(path)

    assert predictor.predict(X_hold[:3])[1].shape == (3, 2)
    with pytest.raises(InvalidInput, match="expected rows of 30 features"):
        predictor.predict(X_hold[:3, :10])


def test_parity_failure_is_refused_with_numbers(cancer, forest):
    X, y, X_hold, _ = cancer
    # A deliberately different model (2 shallow trees) stands in for a broken export.
    other = RandomForestClassifier(n_estimators=2, max_depth=2, random_state=1).fit(X, y)
    wrong = OnnxPredictor(export_to_onnx(other, X[:5]).to_bytes())
    report = check_parity(forest, wrong, X_hold)

    assert not report.passed
    assert report.max_abs_diff > 0.1
    with pytest.raises(GateFailed, match=r"max score difference 0\.\d+ .* exceeds tolerance 1e-05"):
        require_parity(report)


def test_tampered_graph_is_refused(cancer):
    X, y, X_hold, _ = cancer
    model = LogisticRegression(solver="liblinear").fit(X, y)
    proto = export_to_onnx(model, X[:5]).model
    # Flip the sign of the intercepts stored in the LinearClassifier node.
    node = next(n for n in proto.graph.node if n.op_type == "LinearClassifier")
    intercepts = next(a for a in node.attribute if a.name == "intercepts")
    intercepts.floats[:] = [-v for v in intercepts.floats]
    report = check_parity(model, OnnxPredictor(proto.SerializeToString()), X_hold)

    assert not report.passed
    assert report.label_agreement is not None and report.label_agreement < 1.0
    with pytest.raises(GateFailed, match="label agreement"):
        require_parity(report)


def test_tiny_tolerance_fails_even_a_correct_export(cancer):
    X, y, X_hold, _ = cancer
    model = LogisticRegression(solver="liblinear").fit(X, y)
    predictor = OnnxPredictor(export_to_onnx(model, X[:5]).to_bytes())
    report = check_parity(model, predictor, X_hold, score_tolerance=1e-12)

    assert not report.passed and report.label_agreement == 1.0
    assert "exceeds tolerance 1e-12" in report.failures[0]


def test_invalid_tolerances_are_rejected(cancer, forest, forest_onnx):
    _, _, X_hold, _ = cancer
    predictor = OnnxPredictor(forest_onnx)
    with pytest.raises(InvalidInput, match="score tolerance"):
        check_parity(forest, predictor, X_hold, score_tolerance=-1.0)
    with pytest.raises(InvalidInput, match="label agreement"):
        check_parity(forest, predictor, X_hold, min_label_agreement=1.5)


def test_skl2onnx_duplicate_opset_breaks_quantize_dynamic_until_deduped(tmp_path, cancer):
    from onnxruntime.quantization import quantize_dynamic
    from skl2onnx import to_onnx

    X, y, _, _ = cancer
    model = LogisticRegression(solver="liblinear").fit(X, y)
    raw = to_onnx(model, X[:1].astype(np.float32), options={"zipmap": False})
    domains = [entry.domain for entry in raw.opset_import]
    assert len(domains) > len(set(domains)), "skl2onnx no longer duplicates the opset entry"
    with pytest.raises(ValueError, match="Failed to find proper ai.onnx domain"):
        quantize_dynamic(raw, tmp_path / "q.onnx")

    fixed = dedupe_opset_imports(raw)
    assert sorted(e.domain for e in fixed.opset_import) == sorted(set(domains))
    assert len(raw.opset_import) == len(domains)  # the input model is left untouched
    assert len(quantize_dynamic_int8(fixed)) > 0


class _HandRolledClassifier(ClassifierMixin, BaseEstimator):
    """A fitted estimator skl2onnx has no converter for."""

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])


def test_unsupported_models_get_clear_errors(cancer):
    X, y, _, _ = cancer
    with pytest.raises(InvalidInput, match="skl2onnx has no converter for .*_HandRolledClassifier"):
        export_to_onnx(_HandRolledClassifier().fit(X, y), X[:5])
    with pytest.raises(InvalidInput, match="neither a classifier nor a regressor"):
        export_to_onnx(KMeans(n_clusters=2, n_init=1, random_state=0).fit(X), X[:5])
    with pytest.raises(InvalidInput, match="not fitted"):
        export_to_onnx(LogisticRegression(), X[:5])
    with pytest.raises(InvalidInput, match="no predict method"):
        export_to_onnx({"weights": [1, 2]}, X[:5])


def test_bad_samples_are_rejected(cancer, forest):
    X, _, _, _ = cancer
    with_nan = X[:5].copy()
    with_nan[0, 0] = np.nan
    with pytest.raises(InvalidInput, match="NaN"):
        export_to_onnx(forest, with_nan)
    with pytest.raises(InvalidInput, match="2-D"):
        export_to_onnx(forest, X[0])
    with pytest.raises(InvalidInput, match="not a numeric matrix"):
        export_to_onnx(forest, [["a", "b"]])


def test_single_row_loop_reports_percentiles_and_respects_its_time_budget():
    X = np.zeros((4, 3))
    settings = BenchmarkSettings(
        single_row_iterations=10_000, max_seconds_per_measurement=0.05, min_iterations=3
    )

    def slow(_row):
        time.sleep(0.005)

    stats = measure_single_row(slow, X, settings)
    assert 3 <= stats.iterations < 100  # stopped by the 50 ms budget, not the 10k cap
    assert stats.p99_us >= stats.p50_us >= 4_000  # µs; each call sleeps ≥ 5 ms

    throughput = measure_throughput(lambda b: b.sum(axis=1), X, settings)
    assert throughput.repeats >= 3 and throughput.batch_rows == settings.batch_rows
    assert throughput.rows_per_second == pytest.approx(
        settings.batch_rows / (throughput.median_batch_ms / 1e3)
    )
