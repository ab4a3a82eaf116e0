"""optimize(): parity gate, quantization decisions, benchmarks, adoption and files written."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import onnx
import pytest
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier

from core.errors import GateFailed, InvalidInput
from core.optimizer import (
    VALID_GOALS,
    ArtifactBenchmark,
    BenchmarkSettings,
    LatencyStats,
    OnnxPredictor,
    OptimizationReport,
    ThroughputStats,
    choose_artifact,
    optimize,
)

# Small budgets keep each optimize() call to about a second; the benchmark script uses
# the defaults.
FAST = BenchmarkSettings(
    single_row_iterations=300,
    batch_rows=256,
    batch_repeats=3,
    max_seconds_per_measurement=0.2,
    min_iterations=10,
    warmup_calls=5,
)


@pytest.fixture(scope="module")
def cancer() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    X, y = load_breast_cancer(return_X_y=True)
    return X[:400], y[:400], X[400:]


@pytest.fixture(scope="module")
def forest(cancer):
    X, y, _ = cancer
    return RandomForestClassifier(n_estimators=100, random_state=0).fit(X, y)


@pytest.fixture(scope="module")
def digits_mlp() -> tuple[MLPClassifier, np.ndarray, np.ndarray]:
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    mlp = MLPClassifier(hidden_layer_sizes=(128,), max_iter=60, random_state=0)
    with pytest.warns(Warning):  # ConvergenceWarning: 60 epochs is enough for the test
        mlp.fit(X[:1400], y[:1400])
    return mlp, X[:1400], X[1400:]


def test_random_forest_latency_adopts_onnx_and_writes_artifacts(tmp_path, cancer, forest):
    X, _, X_hold = cancer
    report = optimize(forest, X[:20], X_hold, goal="latency", out_dir=tmp_path, benchmark=FAST)

    assert report.parity.passed and report.parity.label_agreement == 1.0
    assert report.parity.max_abs_diff <= 1e-5
    assert report.adopted == "onnx"
    assert report.reason.startswith("onnx: lowest single-row p50 latency")
    # The adopted file is the one reported, byte for byte.
    data = (tmp_path / "model.onnx").read_bytes()
    assert report.artifact_sha256 == hashlib.sha256(data).hexdigest()
    predictor = OnnxPredictor(data)
    np.testing.assert_allclose(
        predictor.predict(X_hold)[1], forest.predict_proba(X_hold), atol=1e-5
    )
    # report.json round-trips to the same report.
    saved = OptimizationReport.model_validate_json((tmp_path / "report.json").read_text())
    assert saved == report
    assert json.loads((tmp_path / "report.json").read_text())["adopted"] == "onnx"

    sk, ox = report.benchmark("sklearn"), report.benchmark("onnx")
    assert sk.single_row.iterations >= FAST.min_iterations
    assert ox.single_row.p99_us >= ox.single_row.p50_us > 0
    assert ox.size_bytes == len(data) and sk.size_bytes > 0
    assert ox.p50_speedup_vs_sklearn == pytest.approx(sk.single_row.p50_us / ox.single_row.p50_us)
    assert ox.batch.batch_rows == FAST.batch_rows and ox.batch.rows_per_second > 0


def test_tree_ensemble_quantization_is_reported_as_not_helping(tmp_path, cancer, forest):
    X, _, X_hold = cancer
    report = optimize(forest, X[:20], X_hold, goal="size", out_dir=tmp_path, benchmark=FAST)
    quant = report.quantization

    assert not quant.attempted and not quant.applicable and not quant.adopted
    assert "TreeEnsembleClassifier" in quant.reason
    assert "cannot reduce size or latency" in quant.reason
    assert [b.artifact for b in report.benchmarks] == ["sklearn", "onnx"]


def test_mlp_quantization_shrinks_the_graph_and_is_adopted_for_size(tmp_path, digits_mlp):
    mlp, X, X_hold = digits_mlp
    report = optimize(
        mlp,
        X[:20],
        X_hold,
        goal="size",
        out_dir=tmp_path,
        benchmark=FAST,
        quantized_score_tolerance=0.2,
        quantized_min_label_agreement=0.98,
    )
    quant = report.quantization

    assert quant.attempted and quant.applicable and quant.eligible and quant.adopted
    assert len(quant.weight_nodes) == 2  # one MatMul per layer: hidden and output
    assert quant.quantized_op_counts.get("MatMulInteger") == 2
    assert quant.size_reduction is not None and quant.size_reduction > 2.5
    assert quant.size_after_bytes == report.benchmark("onnx_int8").size_bytes
    assert quant.latency_p50_before_us == report.benchmark("onnx").single_row.p50_us
    assert quant.latency_p50_after_us == report.benchmark("onnx_int8").single_row.p50_us
    assert quant.parity is not None and quant.parity.max_abs_diff <= 0.2
    assert quant.parity.max_abs_diff > 1e-5  # int8 really changes the outputs
    assert len(quant.variants) == 4
    chosen = min(quant.variants, key=lambda v: v.max_abs_diff)
    assert (quant.per_channel, quant.reduce_range) == (chosen.per_channel, chosen.reduce_range)

    assert report.adopted == "onnx_int8"
    written = onnx.load_model(tmp_path / "model.onnx")
    assert any(node.op_type == "MatMulInteger" for node in written.graph.node)


def test_mlp_quantization_outside_tolerance_is_not_adopted(tmp_path, digits_mlp):
    mlp, X, X_hold = digits_mlp
    report = optimize(
        mlp,
        X[:20],
        X_hold,
        goal="size",
        out_dir=tmp_path,
        benchmark=FAST,
        quantized_score_tolerance=1e-9,
    )
    quant = report.quantization

    assert quant.attempted and not quant.eligible and not quant.adopted
    assert quant.adoption_reason.startswith(
        "not adopted: parity after quantization is outside the quantized tolerance"
    )
    assert "exceeds tolerance 1e-09" in quant.adoption_reason
    # Still measured, so the report shows what was given up.
    assert quant.size_reduction is not None and quant.size_reduction > 2.5
    assert report.benchmark("onnx_int8").size_bytes < report.benchmark("onnx").size_bytes
    assert report.adopted == "onnx"
    written = onnx.load_model(tmp_path / "model.onnx")
    assert not any(node.op_type == "MatMulInteger" for node in written.graph.node)


def test_latency_target_adopts_the_fastest_eligible_artifact(tmp_path, digits_mlp):
    mlp, X, X_hold = digits_mlp
    report = optimize(
        mlp,
        X[:20],
        X_hold,
        goal="latency",
        out_dir=tmp_path,
        benchmark=FAST,
        quantized_score_tolerance=0.2,
        quantized_min_label_agreement=0.98,
    )
    assert report.quantization.eligible
    fastest = min(report.benchmarks, key=lambda b: b.single_row.p50_us)
    assert report.adopted == fastest.artifact
    assert report.quantization.adopted == (fastest.artifact == "onnx_int8")


def test_throughput_target_does_not_try_quantization(tmp_path, digits_mlp):
    mlp, X, X_hold = digits_mlp
    report = optimize(mlp, X[:20], X_hold, goal="throughput", out_dir=tmp_path, benchmark=FAST)

    assert not report.quantization.attempted and report.quantization.applicable
    assert "goal is 'throughput'" in report.quantization.reason
    best = max(report.benchmarks, key=lambda b: b.batch.rows_per_second)
    assert report.adopted == best.artifact


def test_unknown_target_lists_the_valid_ones_and_writes_nothing(tmp_path, cancer, forest):
    X, _, X_hold = cancer
    with pytest.raises(InvalidInput) as info:
        optimize(forest, X[:20], X_hold, goal="speed", out_dir=tmp_path / "out")
    assert "unknown optimization goal 'speed'" in info.value.message
    assert all(t in info.value.hint for t in VALID_GOALS)
    assert not (tmp_path / "out").exists()


def test_failed_parity_is_refused_before_anything_is_written(tmp_path, cancer):
    X, y, X_hold = cancer
    model = LogisticRegression(solver="liblinear").fit(X, y)
    with pytest.raises(GateFailed) as info:
        optimize(model, X[:20], X_hold, out_dir=tmp_path / "out", score_tolerance=1e-12)
    assert "onnx artifact refused: max score difference" in info.value.message
    assert "exceeds tolerance 1e-12" in info.value.message
    assert info.value.exit_code == 3
    assert not (tmp_path / "out").exists()


def test_holdout_with_other_features_is_rejected(tmp_path, cancer, forest):
    X, _, X_hold = cancer
    with pytest.raises(InvalidInput, match="X_holdout has 5 features but the model expects 30"):
        optimize(forest, X[:20], X_hold[:, :5], out_dir=tmp_path)


def _bench(artifact: str, p50: float, rows_per_s: float, size: int) -> ArtifactBenchmark:
    return ArtifactBenchmark(
        artifact=artifact,
        size_bytes=size,
        size_note="test",
        single_row=LatencyStats(iterations=100, p50_us=p50, p99_us=p50 * 2, mean_us=p50),
        batch=ThroughputStats(
            batch_rows=1000, repeats=5, median_batch_ms=1e6 / rows_per_s, rows_per_second=rows_per_s
        ),
    )


def test_choice_keeps_sklearn_when_no_onnx_artifact_wins():
    candidates = [_bench("sklearn", 500.0, 90_000, 300_000), _bench("onnx", 20.0, 60_000, 120_000)]

    adopted, reason = choose_artifact("throughput", candidates)
    assert adopted == "sklearn"
    assert "sklearn 90,000 rows/s, onnx 60,000 rows/s" in reason
    assert "no model.onnx is written" in reason
    assert choose_artifact("latency", candidates)[0] == "onnx"
    assert choose_artifact("size", candidates)[0] == "onnx"
