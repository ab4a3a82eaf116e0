"""ONNX Runtime session settings and the low-overhead predictor used on the serving hot path.

``OnnxPredictor`` does all lookups (input/output names, task, n_features) once at load time so a
call is one dtype conversion, one shape check and one native ``run``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import onnxruntime as ort
from pydantic import BaseModel, ConfigDict, Field

from core.errors import InvalidInput
from core.onnx_checks import check_self_contained

GraphOptimizationLevel = Literal["disable", "basic", "extended", "all"]
ExecutionMode = Literal["sequential", "parallel"]

_ORT_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
_ORT_MODES = {
    "sequential": ort.ExecutionMode.ORT_SEQUENTIAL,
    "parallel": ort.ExecutionMode.ORT_PARALLEL,
}
_LABEL_TYPES = {"tensor(int64)", "tensor(int32)", "tensor(string)", "tensor(bool)"}


class SessionConfig(BaseModel):
    """How an ONNX Runtime session is built. Recorded in every optimization report.

    One intra-op thread is the default because the gateway serves single rows from several
    worker threads: a per-call thread pool only adds wake-up latency for one row.
    0 means "let onnxruntime choose" (one thread per physical core).
    """

    model_config = ConfigDict(extra="forbid")

    graph_optimization_level: GraphOptimizationLevel = "all"
    intra_op_threads: int = Field(default=1, ge=0)
    inter_op_threads: int = Field(default=1, ge=0)
    execution_mode: ExecutionMode = "sequential"


def session_options(config: SessionConfig) -> ort.SessionOptions:
    """Translate a SessionConfig into onnxruntime.SessionOptions."""
    options = ort.SessionOptions()
    options.graph_optimization_level = _ORT_LEVELS[config.graph_optimization_level]
    options.intra_op_num_threads = config.intra_op_threads
    options.inter_op_num_threads = config.inter_op_threads
    options.execution_mode = _ORT_MODES[config.execution_mode]
    return options


class OnnxPredictor:
    """Runs an exported classifier/regressor graph (one float32 input, as built by export.py).

    ``predict(X)`` returns ``(labels, probabilities)`` for classifiers and
    ``(predictions, None)`` for regressors. Safe to call from several threads at once
    (onnxruntime sessions are thread-safe for ``run``).
    """

    def __init__(
        self,
        source: str | Path | bytes,
        *,
        intra_op_threads: int = 1,
        inter_op_threads: int = 1,
        graph_optimization_level: GraphOptimizationLevel = "all",
        execution_mode: ExecutionMode = "sequential",
    ) -> None:
        self.config = SessionConfig(
            graph_optimization_level=graph_optimization_level,
            intra_op_threads=intra_op_threads,
            inter_op_threads=inter_op_threads,
            execution_mode=execution_mode,
        )
        # The bytes, never a path: ONNX Runtime resolves external data next to a path (or
        # in the cwd for bytes); refused here too, before the session, whoever called us.
        model = Path(source).read_bytes() if isinstance(source, (str, Path)) else bytes(source)
        check_self_contained(model, ref="the ONNX graph")
        self.session = ort.InferenceSession(
            model, session_options(self.config), providers=["CPUExecutionProvider"]
        )
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or inputs[0].type != "tensor(float)":
            raise InvalidInput(
                "the ONNX graph must have exactly one float32 input, got "
                f"{[(i.name, i.type) for i in inputs]}",
                hint="Export the model with core.optimizer.export_to_onnx.",
            )
        self.input_name: str = inputs[0].name
        width = inputs[0].shape[1] if len(inputs[0].shape) == 2 else None
        self.n_features: int | None = width if isinstance(width, int) else None
        outputs = self.session.get_outputs()
        self.output_names: list[str] = [o.name for o in outputs]
        self.task = _task_from_outputs([o.type for o in outputs])
        # InferenceSession.run re-validates the feed's names and ownership on every call
        # (several µs on a ~10 µs call). Our feed is always the one input checked above, so
        # call the native session directly; fall back to the public API if it ever moves.
        native = getattr(self.session, "_sess", None)
        self._run = native.run if native is not None else self.session.run

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Predict for a 2-D batch (or one 1-D row). Input is converted to float32."""
        x = np.asarray(X, dtype=np.float32)
        if x.ndim == 1:
            x = x.reshape(1, -1)
        if x.ndim != 2 or (self.n_features is not None and x.shape[1] != self.n_features):
            raise InvalidInput(
                f"expected rows of {self.n_features} features, got an array of shape {x.shape}",
                hint="Send one row (a list of numbers) or a list of rows.",
            )
        outputs = self._run(self.output_names, {self.input_name: x}, None)
        if self.task == "classification":
            return outputs[0], outputs[1]
        return outputs[0].reshape(-1), None


def _task_from_outputs(types: list[str]) -> Literal["classification", "regression"]:
    # Classifier graphs: (label tensor, probability tensor); regressors: one float tensor.
    if len(types) == 2 and types[0] in _LABEL_TYPES and types[1] == "tensor(float)":
        return "classification"
    if len(types) == 1 and types[0] == "tensor(float)":
        return "regression"
    raise InvalidInput(
        f"unsupported ONNX output signature {types}",
        hint="Classifiers must be exported with zipmap disabled (labels, probabilities "
        "tensors); use core.optimizer.export_to_onnx.",
    )
