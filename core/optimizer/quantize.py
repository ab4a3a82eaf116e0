"""Dynamic int8 quantization of the MatMul/Gemm weights of an exported graph.

Only graphs with constant MatMul/Gemm weights (MLPs, linear layers) can gain: tree ensembles
and ``ai.onnx.ml`` linear operators keep their parameters as node attributes, which
``quantize_dynamic`` does not touch. ``quantization_blocker`` says so with the reason.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

import onnx
from pydantic import BaseModel

from core.optimizer.export import dedupe_opset_imports
from core.optimizer.parity import ParityReport

WEIGHT_OPS = ("MatMul", "Gemm")
# Operators quantize_dynamic emits; their presence shows the rewrite actually happened.
QUANTIZED_OPS = ("MatMulInteger", "DynamicQuantizeLinear", "QGemm", "DynamicQuantizeMatMul")
DEFAULT_QUANTIZED_SCORE_TOLERANCE = 0.05
DEFAULT_QUANTIZED_MIN_LABEL_AGREEMENT = 0.99
# (per_channel, reduce_range) settings tried; the one with the best parity is kept.
# reduce_range (7-bit weights) matters on x86 CPUs without VNNI: the u8*s8 kernel sums pairs
# into int16 and saturates with full-range weights. On this AVX2-only machine an MLP's
# probability error ranged from 0.026 to 0.34 across these four settings.
QUANTIZATION_VARIANTS: tuple[tuple[bool, bool], ...] = (
    (False, False),
    (False, True),
    (True, False),
    (True, True),
)


class QuantizationVariant(BaseModel):
    per_channel: bool
    reduce_range: bool
    size_bytes: int
    max_abs_diff: float
    label_agreement: float | None
    passed: bool


class QuantizationReport(BaseModel):
    """What dynamic int8 quantization did for one model, and whether its output was adopted.

    ``eligible`` means the quantized graph stayed within the (looser, explicit) quantized
    parity tolerance; the orchestrator still adopts it only if it wins on the target.
    """

    attempted: bool
    applicable: bool
    reason: str
    weight_nodes: list[str] = []
    per_channel: bool | None = None
    reduce_range: bool | None = None
    variants: list[QuantizationVariant] = []
    quantized_op_counts: dict[str, int] = {}
    size_before_bytes: int | None = None
    size_after_bytes: int | None = None
    size_reduction: float | None = None  # before / after
    latency_p50_before_us: float | None = None
    latency_p50_after_us: float | None = None
    parity: ParityReport | None = None
    eligible: bool = False
    adopted: bool = False
    adoption_reason: str = ""


def find_weight_nodes(model: onnx.ModelProto) -> list[str]:
    """Names (or op@index) of MatMul/Gemm nodes whose second operand is a constant weight."""
    constants = {init.name for init in model.graph.initializer}
    constants.update(
        out for node in model.graph.node if node.op_type == "Constant" for out in node.output
    )
    found = []
    for index, node in enumerate(model.graph.node):
        if node.op_type in WEIGHT_OPS and len(node.input) > 1 and node.input[1] in constants:
            found.append(node.name or f"{node.op_type}@{index}")
    return found


def quantization_blocker(model: onnx.ModelProto) -> str | None:
    """None if dynamic quantization can act on this graph, else the reason it cannot help."""
    if find_weight_nodes(model):
        return None
    ops = sorted({node.op_type for node in model.graph.node})
    reason = (
        f"the graph has no MatMul/Gemm node with constant weights (operators: {', '.join(ops)}); "
        "dynamic int8 quantization only rewrites those, so it cannot reduce size or latency"
    )
    if any(op.startswith("TreeEnsemble") for op in ops):
        reason += (
            ". A tree ensemble keeps its split thresholds and leaf values as attributes of "
            "one TreeEnsemble operator and evaluates comparisons, not matrix products"
        )
    elif any(op in ("LinearClassifier", "LinearRegressor") for op in ops):
        reason += (
            ". The linear model's coefficients are attributes of an ai.onnx.ml Linear* "
            "operator (a handful of floats), not a MatMul weight tensor"
        )
    return reason


def quantize_dynamic_int8(
    model: onnx.ModelProto, *, per_channel: bool = False, reduce_range: bool = False
) -> bytes:
    """Quantize MatMul/Gemm weights to int8 (activations quantized at run time).

    The opset imports are deduplicated first: skl2onnx's duplicate default-domain entry
    makes quantize_dynamic fail with "Failed to find proper ai.onnx domain".
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="modelops-quant-") as tmp:
        src = Path(tmp) / "model.onnx"
        dst = Path(tmp) / "model.int8.onnx"
        onnx.save_model(dedupe_opset_imports(model), src)
        quantize_dynamic(
            src,
            dst,
            weight_type=QuantType.QInt8,
            per_channel=per_channel,
            reduce_range=reduce_range,
        )
        return dst.read_bytes()


def quantized_op_counts(model_bytes: bytes) -> dict[str, int]:
    model = onnx.load_model_from_string(model_bytes)
    counts = Counter(node.op_type for node in model.graph.node if node.op_type in QUANTIZED_OPS)
    return dict(counts)
