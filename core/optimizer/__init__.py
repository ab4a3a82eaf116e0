"""Inference optimizer: ONNX export, parity gate, int8 quantization, benchmarks, adoption.

``optimize()`` is the entry point; ``OnnxPredictor`` is what the serving gateway loads.
Heavy converters (skl2onnx, onnxmltools) are imported only when a model is exported.
"""

from core.optimizer.bench import (
    ArtifactBenchmark,
    BenchmarkSettings,
    LatencyStats,
    ThroughputStats,
    measure_single_row,
    measure_throughput,
)
from core.optimizer.export import INPUT_NAME, ExportedModel, dedupe_opset_imports, export_to_onnx
from core.optimizer.optimize import VALID_GOALS, OptimizationReport, choose_artifact, optimize
from core.optimizer.parity import ParityReport, check_parity, require_parity
from core.optimizer.predictor import OnnxPredictor, SessionConfig, session_options
from core.optimizer.quantize import (
    QuantizationReport,
    find_weight_nodes,
    quantization_blocker,
    quantize_dynamic_int8,
)

__all__ = [
    "INPUT_NAME",
    "VALID_GOALS",
    "ArtifactBenchmark",
    "BenchmarkSettings",
    "ExportedModel",
    "LatencyStats",
    "OnnxPredictor",
    "OptimizationReport",
    "ParityReport",
    "QuantizationReport",
    "SessionConfig",
    "ThroughputStats",
    "check_parity",
    "choose_artifact",
    "dedupe_opset_imports",
    "export_to_onnx",
    "find_weight_nodes",
    "measure_single_row",
    "measure_throughput",
    "optimize",
    "quantization_blocker",
    "quantize_dynamic_int8",
    "require_parity",
    "session_options",
]
