"""Side-by-side latency, throughput and size measurements of a model and its ONNX artifacts.

Latency is per single-row call (time.perf_counter_ns around each call, cycling through
held-out rows); throughput is rows/s on fixed-size batches. Both loops have an iteration
cap and a time budget, and the report records how many iterations actually ran.
"""

from __future__ import annotations

import gc
import pickle
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from core.optimizer.export import task_of


class BenchmarkSettings(BaseModel):
    """Iteration caps and time budgets. Defaults give stable p99s for µs-scale calls."""

    single_row_iterations: int = Field(default=5000, ge=1)
    batch_rows: int = Field(default=1000, ge=1)
    batch_repeats: int = Field(default=20, ge=1)
    # A slow model (scikit-learn forests take ms per row) stops at the budget instead.
    max_seconds_per_measurement: float = Field(default=2.0, gt=0)
    min_iterations: int = Field(default=30, ge=1)
    warmup_calls: int = Field(default=20, ge=0)


class LatencyStats(BaseModel):
    iterations: int
    p50_us: float
    p99_us: float
    mean_us: float


class ThroughputStats(BaseModel):
    batch_rows: int
    repeats: int
    median_batch_ms: float
    rows_per_second: float


class ArtifactBenchmark(BaseModel):
    """One artifact's measurements; ratios are relative to the scikit-learn model."""

    artifact: str  # "sklearn" | "onnx" | "onnx_int8"
    size_bytes: int
    size_note: str
    single_row: LatencyStats
    batch: ThroughputStats
    p50_speedup_vs_sklearn: float | None = None
    throughput_ratio_vs_sklearn: float | None = None
    size_ratio_vs_sklearn: float | None = None


def sklearn_size_bytes(model: Any) -> int:
    """Size of the pickled model: what MLflow's pickle/cloudpickle flavours store."""
    return len(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))


def sklearn_predict_fn(model: Any) -> Callable[[np.ndarray], Any]:
    """What a scikit-learn server calls per request: predict_proba for classifiers.

    The ONNX graph returns labels and probabilities in one call; for scikit-learn the
    probabilities are the costly part (labels are their argmax), so this is the fair match.
    """
    if task_of(model) == "classification" and hasattr(model, "predict_proba"):
        return model.predict_proba
    return model.predict


@contextmanager
def _gc_paused() -> Iterator[None]:
    # A collection landing inside a timed call would show up as a spurious p99 spike
    # (timeit pauses GC for the same reason).
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def measure_single_row(
    predict: Callable[[np.ndarray], Any], X: np.ndarray, settings: BenchmarkSettings
) -> LatencyStats:
    """p50/p99/mean latency of ``predict`` on one row at a time, cycling through X's rows."""
    rows = [np.ascontiguousarray(X[i : i + 1]) for i in range(X.shape[0])]
    for i in range(settings.warmup_calls):
        predict(rows[i % len(rows)])
    budget_ns = int(settings.max_seconds_per_measurement * 1e9)
    timings = np.empty(settings.single_row_iterations, dtype=np.int64)
    count = 0
    with _gc_paused():
        started = time.perf_counter_ns()
        for i in range(settings.single_row_iterations):
            row = rows[i % len(rows)]
            t0 = time.perf_counter_ns()
            predict(row)
            t1 = time.perf_counter_ns()
            timings[i] = t1 - t0
            count = i + 1
            if count >= settings.min_iterations and t1 - started > budget_ns:
                break
    done = timings[:count] / 1e3
    return LatencyStats(
        iterations=count,
        p50_us=float(np.percentile(done, 50)),
        p99_us=float(np.percentile(done, 99)),
        mean_us=float(done.mean()),
    )


def measure_throughput(
    predict: Callable[[np.ndarray], Any], X: np.ndarray, settings: BenchmarkSettings
) -> ThroughputStats:
    """Rows/s from the median time of ``batch_rows``-row calls (X's rows repeated to fill)."""
    batch = np.ascontiguousarray(np.resize(X, (settings.batch_rows, X.shape[1])))
    predict(batch)  # warm-up: first call allocates buffers
    budget_ns = int(settings.max_seconds_per_measurement * 1e9)
    times: list[int] = []
    with _gc_paused():
        started = time.perf_counter_ns()
        for _ in range(settings.batch_repeats):
            t0 = time.perf_counter_ns()
            predict(batch)
            t1 = time.perf_counter_ns()
            times.append(t1 - t0)
            # At least 3 repeats so the median means something, even past the budget.
            if len(times) >= 3 and t1 - started > budget_ns:
                break
    median_ns = float(np.median(times))
    return ThroughputStats(
        batch_rows=settings.batch_rows,
        repeats=len(times),
        median_batch_ms=median_ns / 1e6,
        rows_per_second=settings.batch_rows / (median_ns / 1e9),
    )


def benchmark_artifact(
    artifact: str,
    predict: Callable[[np.ndarray], Any],
    X: np.ndarray,
    *,
    size_bytes: int,
    size_note: str,
    settings: BenchmarkSettings,
) -> ArtifactBenchmark:
    return ArtifactBenchmark(
        artifact=artifact,
        size_bytes=size_bytes,
        size_note=size_note,
        single_row=measure_single_row(predict, X, settings),
        batch=measure_throughput(predict, X, settings),
    )


def with_ratios(result: ArtifactBenchmark, baseline: ArtifactBenchmark) -> ArtifactBenchmark:
    """Copy of ``result`` with speed/size ratios against the scikit-learn baseline."""
    return result.model_copy(
        update={
            "p50_speedup_vs_sklearn": baseline.single_row.p50_us / result.single_row.p50_us,
            "throughput_ratio_vs_sklearn": result.batch.rows_per_second
            / baseline.batch.rows_per_second,
            "size_ratio_vs_sklearn": result.size_bytes / baseline.size_bytes,
        }
    )
