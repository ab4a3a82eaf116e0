"""XGBoost / LightGBM export through the optional onnxmltools converter."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from core.errors import InvalidInput
from core.optimizer import OnnxPredictor, check_parity, export_to_onnx, quantization_blocker


@pytest.fixture(scope="module")
def cancer() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    X, y = load_breast_cancer(return_X_y=True)
    return X[:400], y[:400], X[400:]


@pytest.fixture(scope="module")
def diabetes() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    X, y = load_diabetes(return_X_y=True)
    return X[:350], y[:350], X[350:]


class _BoosterStandIn(ClassifierMixin, BaseEstimator):
    """Routes like an XGBoost model (by its module name) so the missing-converter path is
    tested even where xgboost itself is not installed."""

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])


_BoosterStandIn.__module__ = "xgboost.sklearn"


def test_missing_onnxmltools_names_the_package_to_install(monkeypatch, cancer):
    X, y, _ = cancer
    # A None entry makes `import onnxmltools` raise ImportError, as on a machine without it.
    monkeypatch.setitem(sys.modules, "onnxmltools", None)
    with pytest.raises(InvalidInput) as info:
        export_to_onnx(_BoosterStandIn().fit(X, y), X[:5])
    assert "needs the 'onnxmltools' package" in info.value.message
    assert info.value.hint.startswith("pip install 'onnxmltools")


def test_missing_onnxmltools_with_a_real_lightgbm_model(monkeypatch, cancer):
    lightgbm = pytest.importorskip("lightgbm")
    X, y, _ = cancer
    model = lightgbm.LGBMClassifier(n_estimators=20, verbose=-1).fit(X, y)
    monkeypatch.setitem(sys.modules, "onnxmltools", None)
    with pytest.raises(InvalidInput, match="LGBMClassifier to ONNX needs the 'onnxmltools'"):
        export_to_onnx(model, X[:5])


def _classifier(library: str):
    if library == "lightgbm":
        return pytest.importorskip("lightgbm").LGBMClassifier(n_estimators=50, verbose=-1)
    return pytest.importorskip("xgboost").XGBClassifier(n_estimators=50, n_jobs=1)


def _regressor(library: str):
    if library == "lightgbm":
        return pytest.importorskip("lightgbm").LGBMRegressor(n_estimators=50, verbose=-1)
    return pytest.importorskip("xgboost").XGBRegressor(n_estimators=50, n_jobs=1)


@pytest.mark.parametrize("library", ["lightgbm", "xgboost"])
def test_boosted_classifier_converts_with_parity(capfd, cancer, library):
    pytest.importorskip("onnxmltools")
    X, y, X_hold = cancer
    model = _classifier(library).fit(X, y)
    exported = export_to_onnx(model, X[:5])
    predictor = OnnxPredictor(exported.to_bytes())
    report = check_parity(model, predictor, X_hold)

    assert exported.converter.startswith("onnxmltools ")
    assert predictor.input_name == "input" and predictor.task == "classification"
    assert report.passed, report.failures
    assert report.label_agreement == 1.0 and report.max_abs_diff <= 1e-5
    # No output declares a fixed batch size (LightGBM's converter says [1] for labels, and
    # onnxruntime then logs a shape warning on every batched call).
    for output in exported.model.graph.output:
        assert not output.type.tensor_type.shape.dim[0].HasField("dim_value")
    capfd.readouterr()
    predictor.predict(X_hold)
    assert "VerifyOutputSizes" not in capfd.readouterr().err
    assert "TreeEnsemble" in (quantization_blocker(exported.model) or "")


@pytest.mark.parametrize("library", ["lightgbm", "xgboost"])
def test_boosted_regressor_converts_with_parity(diabetes, library):
    pytest.importorskip("onnxmltools")
    X, y, X_hold = diabetes
    model = _regressor(library).fit(X, y)
    predictor = OnnxPredictor(export_to_onnx(model, X[:5]).to_bytes())
    report = check_parity(model, predictor, X_hold)

    assert predictor.task == "regression"
    assert report.passed, report.failures
    assert report.max_scaled_diff <= 1e-5


def test_boosted_model_inside_a_pipeline_is_refused_clearly(cancer):
    lightgbm = pytest.importorskip("lightgbm")
    X, y, _ = cancer
    pipe = make_pipeline(StandardScaler(), lightgbm.LGBMClassifier(n_estimators=5, verbose=-1))
    pipe.fit(X, y)
    with pytest.raises(InvalidInput, match="skl2onnx has no converter for .*Pipeline"):
        export_to_onnx(pipe, X[:5])
