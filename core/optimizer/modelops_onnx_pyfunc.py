"""MLflow ``python_function`` loader for ModelOps ONNX versions (no pickle, no ModelOps import).

``core.onnx_logging`` logs ONNX versions with this file as the model's code (copied into the
artifact's ``code/`` folder, covered by the registered manifest) and names it as the pyfunc
``loader_module``. ``mlflow.pyfunc.load_model("models:/NAME@champion").predict(frame)`` then
answers like the scikit-learn version the graph was exported from: MLflow first checks the
frame against the version's signature (the source's column names, in its order), and this
loader returns the predicted labels (or values, for a regressor) as one array, where
``mlflow.onnx``'s own loader returns every graph output and fails on a 2-D probability output.

It must stay standalone: a consumer of the registry loads it without ModelOps installed.
Its one companion is ``onnx_checks.py`` (``core/onnx_checks.py``, logged beside it): a graph
whose tensors live in external files is refused before ONNX Runtime opens it.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class OnnxLabelModel:
    """An ONNX Runtime session over the graph; ``predict`` returns its first output."""

    def __init__(self, path: str) -> None:
        import onnx
        import onnxruntime as ort

        try:  # logged next to this file in the model's code/ folder
            from onnx_checks import FIX_HINT, external_tensors
        except ImportError:  # imported from the ModelOps checkout itself
            from core.onnx_checks import FIX_HINT, external_tensors

        # Parsed without its external data, and ONNX Runtime gets these checked bytes, not
        # the path (next to which it would resolve external files).
        with open(path, "rb") as f:
            data = f.read()
        found = external_tensors(onnx.load_model_from_string(data))
        if found:
            raise ValueError(
                f"{path}: the ONNX graph keeps tensors in external files ({'; '.join(found[:3])});"
                f" refusing it. {FIX_HINT}"
            )
        self.session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise ValueError(f"expected an ONNX graph with one input, got {len(inputs)}")
        self.input_name = inputs[0].name
        self.input_type = inputs[0].type
        self.first_output = self.session.get_outputs()[0].name

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> np.ndarray:
        if hasattr(data, "to_numpy"):  # a DataFrame, already in the signature's column order
            x = data.to_numpy()
        elif isinstance(data, dict) and len(data) == 1:
            x = np.asarray(next(iter(data.values())))
        else:
            x = np.asarray(data)
        x = x.astype(np.float64 if self.input_type == "tensor(double)" else np.float32)
        if x.ndim == 1:
            x = x.reshape(1, -1)
        out = np.asarray(self.session.run([self.first_output], {self.input_name: x})[0])
        return out.reshape(-1) if out.ndim == 2 and out.shape[1] == 1 else out


def _load_pyfunc(path: str) -> OnnxLabelModel:
    """Called by ``mlflow.pyfunc.load_model`` with the path of the flavor's ``model.onnx``."""
    return OnnxLabelModel(path)
