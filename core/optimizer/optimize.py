"""The optimize() orchestrator: export, parity gate, quantization, benchmarks, adoption.

It writes the adopted ``model.onnx`` and a JSON ``report.json`` into ``out_dir``. A failed
fp32 parity check raises GateFailed before anything is written.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel

from core.errors import InvalidInput
from core.optimizer.bench import (
    ArtifactBenchmark,
    BenchmarkSettings,
    benchmark_artifact,
    sklearn_predict_fn,
    sklearn_size_bytes,
    with_ratios,
)
from core.optimizer.export import as_feature_matrix, export_to_onnx, model_type_name
from core.optimizer.parity import (
    DEFAULT_MIN_LABEL_AGREEMENT,
    DEFAULT_SCORE_TOLERANCE,
    ParityReport,
    check_parity,
    require_parity,
    validate_tolerances,
)
from core.optimizer.predictor import OnnxPredictor, SessionConfig
from core.optimizer.quantize import (
    DEFAULT_QUANTIZED_MIN_LABEL_AGREEMENT,
    DEFAULT_QUANTIZED_SCORE_TOLERANCE,
    QUANTIZATION_VARIANTS,
    QuantizationReport,
    QuantizationVariant,
    find_weight_nodes,
    quantization_blocker,
    quantize_dynamic_int8,
    quantized_op_counts,
)

Goal = Literal["latency", "size", "throughput"]
VALID_GOALS: tuple[str, ...] = get_args(Goal)
MODEL_FILE = "model.onnx"
REPORT_FILE = "report.json"


class OptimizationReport(BaseModel):
    """Everything measured while optimizing one model; serialisable with model_dump_json()."""

    model_type: str
    task: str
    goal: str
    n_features: int
    holdout_rows: int
    converter: str
    opset: dict[str, int]
    session: SessionConfig
    benchmark_settings: BenchmarkSettings
    parity: ParityReport
    quantization: QuantizationReport
    benchmarks: list[ArtifactBenchmark]
    adopted: str  # "onnx" | "onnx_int8" | "sklearn"
    reason: str
    artifact_path: str | None
    artifact_sha256: str | None
    report_path: str
    environment: dict[str, str]
    created_at: str

    def benchmark(self, artifact: str) -> ArtifactBenchmark:
        for result in self.benchmarks:
            if result.artifact == artifact:
                return result
        raise KeyError(artifact)


def optimize(
    model: Any,
    X_sample: Any,
    X_holdout: Any,
    *,
    goal: str = "latency",
    out_dir: str | Path,
    session: SessionConfig | None = None,
    score_tolerance: float = DEFAULT_SCORE_TOLERANCE,
    min_label_agreement: float = DEFAULT_MIN_LABEL_AGREEMENT,
    quantized_score_tolerance: float = DEFAULT_QUANTIZED_SCORE_TOLERANCE,
    quantized_min_label_agreement: float = DEFAULT_QUANTIZED_MIN_LABEL_AGREEMENT,
    benchmark: BenchmarkSettings | None = None,
    target_opset: int | None = None,
) -> OptimizationReport:
    """Turn a fitted model into a measured ONNX artifact chosen for ``goal``.

    Raises InvalidInput for a bad goal/tolerance/data or an unsupported model, and
    GateFailed when the fp32 ONNX graph does not reproduce the model within tolerance.
    """
    if goal not in VALID_GOALS:
        raise InvalidInput(
            f"unknown optimization goal {goal!r}",
            hint=f"Valid goals: {', '.join(VALID_GOALS)}.",
        )
    validate_tolerances(score_tolerance, min_label_agreement)
    validate_tolerances(quantized_score_tolerance, quantized_min_label_agreement)
    session = session or SessionConfig()
    settings = benchmark or BenchmarkSettings()
    out = Path(out_dir)

    exported = export_to_onnx(model, X_sample, target_opset=target_opset)
    holdout = as_feature_matrix(X_holdout, name="X_holdout", n_features=exported.n_features)
    onnx_bytes = exported.to_bytes()
    predictor = OnnxPredictor(onnx_bytes, **session.model_dump())
    parity = require_parity(
        check_parity(
            model,
            predictor,
            holdout,
            score_tolerance=score_tolerance,
            min_label_agreement=min_label_agreement,
        )
    )

    baseline = benchmark_artifact(
        "sklearn",
        sklearn_predict_fn(model),
        holdout,
        size_bytes=sklearn_size_bytes(model),
        size_note="pickled estimator",
        settings=settings,
    )
    fp32 = benchmark_artifact(
        "onnx",
        predictor.predict,
        holdout,
        size_bytes=len(onnx_bytes),
        size_note="serialized ONNX graph (float32)",
        settings=settings,
    )
    artifacts = {"onnx": onnx_bytes}
    results = [baseline, with_ratios(fp32, baseline)]

    quant = _try_quantization(
        model,
        exported.model,
        holdout,
        goal=goal,
        session=session,
        settings=settings,
        score_tolerance=quantized_score_tolerance,
        min_label_agreement=quantized_min_label_agreement,
    )
    if quant.report.attempted and quant.benchmark is not None and quant.model_bytes is not None:
        results.append(with_ratios(quant.benchmark, baseline))
        if quant.report.eligible:
            artifacts["onnx_int8"] = quant.model_bytes
    quant_report = quant.report
    if quant.benchmark is not None:
        quant_report.latency_p50_before_us = fp32.single_row.p50_us
        quant_report.latency_p50_after_us = quant.benchmark.single_row.p50_us

    candidates = [r for r in results if r.artifact == "sklearn" or r.artifact in artifacts]
    adopted, reason = choose_artifact(goal, candidates)
    if quant_report.attempted and quant_report.eligible:
        quant_report.adopted = adopted == "onnx_int8"
        quant_report.adoption_reason = (
            f"adopted: {reason}" if quant_report.adopted else f"not adopted: {reason}"
        )

    out.mkdir(parents=True, exist_ok=True)
    model_path = out / MODEL_FILE
    artifact_path: str | None = None
    sha256: str | None = None
    if adopted in artifacts:
        data = artifacts[adopted]
        model_path.write_bytes(data)
        artifact_path, sha256 = str(model_path), hashlib.sha256(data).hexdigest()
    elif model_path.exists():
        # report.json says no ONNX artifact was adopted; a model.onnx left from an earlier
        # run in the same directory would contradict it and could be registered by mistake.
        model_path.unlink()

    report = OptimizationReport(
        model_type=model_type_name(model),
        task=exported.task,
        goal=goal,
        n_features=exported.n_features,
        holdout_rows=int(holdout.shape[0]),
        converter=exported.converter,
        opset={entry.domain or "ai.onnx": entry.version for entry in exported.model.opset_import},
        session=session,
        benchmark_settings=settings,
        parity=parity,
        quantization=quant_report,
        benchmarks=results,
        adopted=adopted,
        reason=reason,
        artifact_path=artifact_path,
        artifact_sha256=sha256,
        report_path=str(out / REPORT_FILE),
        environment=_environment(),
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    (out / REPORT_FILE).write_text(report.model_dump_json(indent=2), encoding="utf-8")
    return report


@dataclass
class _QuantOutcome:
    report: QuantizationReport
    benchmark: ArtifactBenchmark | None = None
    model_bytes: bytes | None = None


def _try_quantization(
    model: Any,
    onnx_model: Any,
    holdout: Any,
    *,
    goal: str,
    session: SessionConfig,
    settings: BenchmarkSettings,
    score_tolerance: float,
    min_label_agreement: float,
) -> _QuantOutcome:
    blocker = quantization_blocker(onnx_model)
    if goal == "throughput":
        return _QuantOutcome(
            report=QuantizationReport(
                attempted=False,
                applicable=blocker is None,
                reason="not attempted: the goal is 'throughput'; int8 dynamic quantization "
                "is tried for the 'size' and 'latency' goals"
                + ("" if blocker is None else f" (and it could not help here: {blocker})"),
            )
        )
    if blocker is not None:
        return _QuantOutcome(
            report=QuantizationReport(attempted=False, applicable=False, reason=blocker)
        )
    size_before = len(onnx_model.SerializeToString())
    tried: list[tuple[QuantizationVariant, bytes, OnnxPredictor, ParityReport]] = []
    for per_channel, reduce_range in QUANTIZATION_VARIANTS:
        q_bytes = quantize_dynamic_int8(
            onnx_model, per_channel=per_channel, reduce_range=reduce_range
        )
        if not quantized_op_counts(q_bytes):
            # Nothing was rewritten: adopting an identical graph under another name would
            # claim an optimization that did not happen.
            return _QuantOutcome(
                report=QuantizationReport(
                    attempted=True,
                    applicable=False,
                    reason="quantize_dynamic left every MatMul/Gemm in float32; nothing to adopt",
                    weight_nodes=find_weight_nodes(onnx_model),
                    adoption_reason="not adopted: the graph was not quantized",
                )
            )
        q_predictor = OnnxPredictor(q_bytes, **session.model_dump())
        parity = check_parity(
            model,
            q_predictor,
            holdout,
            score_tolerance=score_tolerance,
            min_label_agreement=min_label_agreement,
            artifact="onnx_int8",
        )
        variant = QuantizationVariant(
            per_channel=per_channel,
            reduce_range=reduce_range,
            size_bytes=len(q_bytes),
            max_abs_diff=parity.max_abs_diff,
            label_agreement=parity.label_agreement,
            passed=parity.passed,
        )
        tried.append((variant, q_bytes, q_predictor, parity))
    # Keep the most faithful variant: passing first, then the smallest score error,
    # then the highest label agreement, then the smallest file.
    variant, q_bytes, q_predictor, parity = min(
        tried,
        key=lambda t: (
            not t[3].passed,
            t[3].max_scaled_diff,
            -(t[3].label_agreement or 0.0),
            t[0].size_bytes,
        ),
    )
    report = QuantizationReport(
        attempted=True,
        applicable=True,
        reason=f"dynamic int8 quantization of MatMul/Gemm weights; tried {len(tried)} "
        f"settings, kept per_channel={variant.per_channel}, "
        f"reduce_range={variant.reduce_range} (best parity)",
        weight_nodes=find_weight_nodes(onnx_model),
        per_channel=variant.per_channel,
        reduce_range=variant.reduce_range,
        variants=[t[0] for t in tried],
        quantized_op_counts=quantized_op_counts(q_bytes),
        size_before_bytes=size_before,
        size_after_bytes=len(q_bytes),
        size_reduction=size_before / len(q_bytes),
        parity=parity,
        eligible=parity.passed,
    )
    if not report.eligible:
        report.adoption_reason = (
            "not adopted: parity after quantization is outside the quantized tolerance: "
            + "; ".join(parity.failures)
        )
    bench = benchmark_artifact(
        "onnx_int8",
        q_predictor.predict,
        holdout,
        size_bytes=len(q_bytes),
        size_note="serialized ONNX graph (int8 MatMul weights)",
        settings=settings,
    )
    return _QuantOutcome(report=report, benchmark=bench, model_bytes=q_bytes)


def choose_artifact(goal: str, candidates: list[ArtifactBenchmark]) -> tuple[str, str]:
    """(artifact, reason): the best candidate on the goal's metric, quoting the numbers."""
    if goal == "latency":
        best = min(candidates, key=lambda r: r.single_row.p50_us)
        detail = ", ".join(f"{r.artifact} {r.single_row.p50_us:.1f} µs" for r in candidates)
        reason = f"lowest single-row p50 latency ({detail})"
    elif goal == "throughput":
        best = max(candidates, key=lambda r: r.batch.rows_per_second)
        detail = ", ".join(
            f"{r.artifact} {r.batch.rows_per_second:,.0f} rows/s" for r in candidates
        )
        reason = f"highest batch throughput on {best.batch.batch_rows}-row batches ({detail})"
    else:
        # Ties on size (rare) go to the faster artifact.
        best = min(candidates, key=lambda r: (r.size_bytes, r.single_row.p50_us))
        detail = ", ".join(f"{r.artifact} {r.size_bytes:,} B" for r in candidates)
        reason = f"smallest artifact ({detail})"
    if best.artifact == "sklearn":
        reason += (
            "; no ONNX artifact beats the scikit-learn model for this goal, so it is kept "
            "and no model.onnx is written"
        )
    return best.artifact, f"{best.artifact}: {reason}"


def _environment() -> dict[str, str]:
    env = {"cpu_count": str(os.cpu_count())}
    for dist in ("onnxruntime", "onnx", "skl2onnx", "scikit-learn", "numpy"):
        env[dist] = importlib.metadata.version(dist)
    return env
