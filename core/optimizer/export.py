"""Export a fitted estimator to an ONNX graph with one float32 input named ``input``.

scikit-learn estimators and pipelines go through skl2onnx; XGBoost and LightGBM models
through onnxmltools, which is optional and imported only when such a model is exported.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import onnx

from core.errors import InvalidInput

INPUT_NAME = "input"
# Converters we know how to call, keyed by the top-level module of the model's class.
_BOOSTING_LIBRARIES = ("xgboost", "lightgbm")
ONNXMLTOOLS_REQUIREMENT = "onnxmltools>=1.16"

Task = Literal["classification", "regression"]


class ExportUnsupported(InvalidInput):
    """No converter turns this model into the one-float32-input graph the gateway serves:
    the version keeps serving through skops, and the optimizer's report says why."""


def positional_copy(model: Any) -> Any:
    """``model`` with its first ColumnTransformer's column names replaced by positions (in
    ``feature_names_in_`` order), so skl2onnx can read the columns from one input tensor and
    parity can run on an array; the model itself when it selects no columns by name. Only
    the copy changes (the registered model is never modified); on an array in that order it
    computes what the model computes on the named frame."""
    import copy

    steps = getattr(model, "steps", None)
    first = steps[0][1] if isinstance(steps, list) and steps else None
    names = getattr(first, "feature_names_in_", None)
    fitted = getattr(first, "transformers_", None)
    if names is None or not fitted:
        return model
    index = {str(n): j for j, n in enumerate(names)}

    def positions(cols: Any) -> Any:
        if isinstance(cols, str) and cols in index:
            return [index[cols]]
        if isinstance(cols, list) and cols and all(isinstance(c, str) for c in cols):
            return [index[c] for c in cols]
        return cols

    if not any(positions(cols) is not cols for _, _, cols in fitted):
        return model
    out = copy.deepcopy(model)
    head = out.steps[0][1]
    head.transformers_ = [(n, t, positions(cols)) for n, t, cols in head.transformers_]
    return out


@dataclass(frozen=True)
class ExportedModel:
    """An ONNX graph plus what the rest of the optimizer needs to know about it."""

    model: onnx.ModelProto
    task: Task
    n_features: int
    converter: str  # e.g. "skl2onnx 1.20.0", recorded in the report

    def to_bytes(self) -> bytes:
        return self.model.SerializeToString()


def model_type_name(model: Any) -> str:
    cls = type(model)
    return f"{cls.__module__}.{cls.__qualname__}"


def as_feature_matrix(X: Any, *, name: str, n_features: int | None = None) -> np.ndarray:
    """Validate a 2-D numeric, finite, non-empty feature matrix (caller's data, so InvalidInput)."""
    try:
        arr = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            f"{name} is not a numeric matrix: {exc}",
            hint="Pass a 2-D array of numbers (rows x features).",
        ) from exc
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InvalidInput(
            f"{name} must be a non-empty 2-D array, got shape {arr.shape}",
            hint="Pass rows x features, e.g. X[:100].",
        )
    if n_features is not None and arr.shape[1] != n_features:
        raise InvalidInput(
            f"{name} has {arr.shape[1]} features but the model expects {n_features}",
            hint="Use rows from the same feature space the model was trained on.",
        )
    if not np.all(np.isfinite(arr)):
        raise InvalidInput(
            f"{name} contains NaN or infinite values",
            hint="Impute or drop non-finite values before optimizing.",
        )
    return arr


def task_of(model: Any) -> Task:
    """classification or regression; anything else (clusterers, transformers) is refused."""
    from sklearn.base import is_classifier, is_regressor

    if is_classifier(model):
        return "classification"
    if is_regressor(model):
        return "regression"
    raise InvalidInput(
        f"cannot optimize a {model_type_name(model)}: it is neither a classifier nor a regressor",
        hint="The optimizer exports fitted classifiers and regressors (or pipelines ending in one).",
    )


def export_to_onnx(model: Any, X_sample: Any, *, target_opset: int | None = None) -> ExportedModel:
    """Convert a fitted classifier/regressor to ONNX; n_features is taken from ``X_sample``.

    Classifiers are exported without ZipMap so the graph returns two tensors
    (labels, probabilities) instead of a list of dicts, which is far cheaper to read back.
    """
    sample = as_feature_matrix(X_sample, name="X_sample")
    n_features = int(sample.shape[1])
    _require_fitted(model)
    task = task_of(model)
    library = type(model).__module__.split(".")[0]
    if library in _BOOSTING_LIBRARIES:
        proto, converter = _export_boosting(model, library, n_features, task, target_opset)
    else:
        proto, converter = _export_sklearn(model, n_features, task, target_opset)
    proto = dedupe_opset_imports(proto)
    _make_batch_dim_dynamic(proto)
    onnx.checker.check_model(proto)
    return ExportedModel(model=proto, task=task, n_features=n_features, converter=converter)


def dedupe_opset_imports(model: onnx.ModelProto) -> onnx.ModelProto:
    """Keep one opset_import entry per domain (the highest version).

    skl2onnx can emit the default domain twice (e.g. ``("", 22), ("", 22)``); onnxruntime
    runs such a graph, but ``quantize_dynamic`` then fails with "Failed to find proper
    ai.onnx domain". Returns a copy; the input model is not modified.
    """
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    versions: dict[str, int] = {}
    for entry in model.opset_import:
        versions[entry.domain] = max(versions.get(entry.domain, 0), entry.version)
    del fixed.opset_import[:]
    for domain, version in versions.items():
        fixed.opset_import.append(onnx.helper.make_opsetid(domain, version))
    return fixed


def _require_fitted(model: Any) -> None:
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    if not hasattr(model, "predict"):
        raise InvalidInput(
            f"cannot optimize a {model_type_name(model)}: it has no predict method",
            hint="Pass a fitted scikit-learn, XGBoost or LightGBM classifier or regressor.",
        )
    try:
        check_is_fitted(model)
    except NotFittedError as exc:
        raise InvalidInput(
            f"the {model_type_name(model)} is not fitted",
            hint="Fit the model (or load the registered, trained version) before optimizing.",
        ) from exc
    except TypeError as exc:
        # check_is_fitted raises TypeError for objects that are not estimators at all.
        raise InvalidInput(
            f"cannot optimize a {model_type_name(model)}: {exc}",
            hint="Pass a fitted scikit-learn, XGBoost or LightGBM classifier or regressor.",
        ) from exc


def _export_sklearn(
    model: Any, n_features: int, task: Task, target_opset: int | None
) -> tuple[onnx.ModelProto, str]:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from skl2onnx.common.exceptions import MissingConverter, MissingShapeCalculator

    options = {"zipmap": False} if task == "classification" else None
    try:
        proto = convert_sklearn(
            model,
            initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
            options=options,
            target_opset=target_opset,
        )
    except (MissingShapeCalculator, MissingConverter, RuntimeError, ValueError) as exc:
        # skl2onnx reports a step it cannot convert (or convert into one float32 input) as
        # a missing converter, a RuntimeError (column names) or a ValueError (node build).
        raise ExportUnsupported(
            f"skl2onnx has no converter for {model_type_name(model)} (or a step inside it): "
            f"{str(exc).splitlines()[0]}",
            hint="Supported: scikit-learn estimators/pipelines skl2onnx can convert, and "
            "top-level XGBoost/LightGBM models. Register a custom converter for others.",
        ) from exc
    return proto, f"skl2onnx {importlib.metadata.version('skl2onnx')}"


def _export_boosting(
    model: Any, library: str, n_features: int, task: Task, target_opset: int | None
) -> tuple[onnx.ModelProto, str]:
    try:
        import onnxmltools
        from onnxmltools.convert.common.data_types import FloatTensorType
    except ImportError as exc:
        raise InvalidInput(
            f"exporting a {model_type_name(model)} to ONNX needs the 'onnxmltools' package, "
            "which is not installed",
            hint=f"pip install '{ONNXMLTOOLS_REQUIREMENT}'",
        ) from exc
    initial_types = [(INPUT_NAME, FloatTensorType([None, n_features]))]
    if library == "lightgbm":
        # zipmap is only a parameter of the LightGBM converter; XGBoost emits tensors already.
        extra = {"zipmap": False} if task == "classification" else {}
        proto = onnxmltools.convert_lightgbm(
            model, initial_types=initial_types, target_opset=target_opset, **extra
        )
    else:
        proto = onnxmltools.convert_xgboost(
            model, initial_types=initial_types, target_opset=target_opset
        )
    return proto, f"onnxmltools {importlib.metadata.version('onnxmltools')}"


def _make_batch_dim_dynamic(model: onnx.ModelProto) -> None:
    """Declare the first dimension of every output as symbolic.

    onnxmltools' LightGBM converter declares the label output with a fixed shape [1];
    onnxruntime then logs a shape-mismatch warning on every batched call, which costs time
    on the hot path. All outputs of these converters are per-row, so dim 0 is the batch.
    """
    for output in model.graph.output:
        if not output.type.HasField("tensor_type"):
            continue
        dims = output.type.tensor_type.shape.dim
        if len(dims) > 0 and dims[0].HasField("dim_value"):
            dims[0].ClearField("dim_value")
            dims[0].dim_param = "N"
