"""Load one served version for the gateway: its files are read once and checked against the
registered manifest (``core.artifacts``), then deserialized from those same bytes: ONNX Runtime
for an ONNX model, skops for a scikit-learn one (never pickle).

Everything a request needs (predict function, input dtype, response prefix bytes, honesty
flag, counters) is prepared here once, so the request path does no lookups.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from core.artifacts import (  # noqa: F401 - read_verified and artifact_flavors re-exported
    artifact_flavors,
    artifact_runtime,
    input_columns,
    input_schema,
    onnx_bytes,
    read_verified,
    sklearn_from_bytes,
)
from core.deployment import ServedVersion
from core.errors import InvalidInput
from core.honesty import ImplementationStatus
from core.serving.mixed_input import NUMBER, STRING, build_schema, column_kind, has_strings

PredictFn = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]]
# Model calls at or under this cost run on the event loop; slower ones go to a thread.
INLINE_RUNTIMES = ("onnxruntime",)


@dataclass
class VersionStats:
    """Per-version counters, written only by the thread that serves the version's role."""

    requests: int = 0
    server_errors: int = 0
    # 4xx caused by this version's own input contract (feature count, input dtype's range):
    # another version may have accepted the request. A client's malformed JSON is not here.
    rejected: int = 0
    # Model calls that missed the gateway's deadline (answered 504).
    timeouts: int = 0
    latency_sum: float = 0.0
    latency_buckets: list[int] = field(default_factory=list)
    shadow_requests: int = 0
    shadow_errors: int = 0
    shadow_agreements: int = 0
    shadow_comparisons: int = 0


@dataclass
class LoadedVersion:
    served: ServedVersion
    runtime: str  # onnxruntime | sklearn
    n_features: int
    dtype: type
    predict: PredictFn
    stats: VersionStats
    # The signature's input column names in model order (None: row vectors only), and each
    # name's position, computed once so a named-column request is a few dict lookups.
    columns: tuple[str, ...] | None = None
    # core.serving.batching.Batcher shared by every route of this model (None: unbatched).
    batcher: Any = field(default=None, compare=False, repr=False)
    # A version whose schema has string columns (core.serving.mixed_input.MixedSchema):
    # named rows only, parsed into an object array. None: the numeric fast path.
    mixed: Any = field(default=None, compare=False, repr=False)
    inline: bool = field(init=False)  # answered on the event loop (µs-scale model calls)
    column_index: dict[str, int] | None = field(init=False)

    def __post_init__(self) -> None:
        self.inline = self.runtime in INLINE_RUNTIMES
        self.column_index = {c: i for i, c in enumerate(self.columns)} if self.columns else None

    def warmup_input(self) -> np.ndarray | None:
        """A row the model takes (None: no safe row is known, so no warm-up call)."""
        if self.mixed is not None:
            return self.mixed.warmup_row()
        return np.zeros((1, self.n_features), dtype=self.dtype)

    @property
    def honesty_compliant(self) -> bool:
        s = self.served
        return bool(
            s.implementation_status
            and s.accuracy_claim
            and s.validation_status
            and s.implementation_status != ImplementationStatus.PLANNED
        )


def load_version(served: ServedVersion, *, intra_op_threads: int = 1) -> LoadedVersion:
    """Verify and load one version; ONNX Runtime when the artifact has an ONNX graph."""
    ref = f"v{served.version}"
    files = read_verified(served.artifact_uri, served.artifact_sha256, ref=ref)
    stats = VersionStats()
    runtime = artifact_runtime(files)
    if runtime == "onnxruntime":
        loaded = _load_onnx(served, onnx_bytes(files, ref=ref), stats, intra_op_threads)
        return _with_columns(loaded, input_columns(files))
    if runtime == "sklearn":
        return _with_columns(_load_sklearn(served, files, stats), input_columns(files))
    raise InvalidInput(
        f"{ref} has neither an ONNX nor a scikit-learn flavor "
        f"(flavors: {sorted(artifact_flavors(files))})",
        hint="The gateway serves models registered by ModelRegistry or the optimize_model tool.",
    )


def _with_columns(loaded: LoadedVersion, columns: tuple[str, ...] | None) -> LoadedVersion:
    """The version with its signature's column names, when they match its feature count."""
    if not columns or len(columns) != loaded.n_features:
        return loaded
    return replace(loaded, columns=columns)


def _load_onnx(
    served: ServedVersion, data: bytes, stats: VersionStats, intra_op_threads: int
) -> LoadedVersion:
    from core.optimizer.predictor import OnnxPredictor

    predictor = OnnxPredictor(data, intra_op_threads=intra_op_threads, inter_op_threads=1)
    if predictor.n_features is None:
        raise InvalidInput(
            f"v{served.version}: the ONNX graph does not declare its feature count",
            hint="Export with core.optimizer.export_to_onnx, which fixes the input width.",
        )
    return LoadedVersion(
        served, "onnxruntime", predictor.n_features, np.float32, predictor.predict, stats
    )


def _load_sklearn(
    served: ServedVersion, files: Mapping[str, bytes], stats: VersionStats
) -> LoadedVersion:
    # skops builds the estimator from the verified bytes (load time only, never per request).
    model = sklearn_from_bytes(files, ref=f"v{served.version}")
    # Models fitted on a DataFrame warn on every numpy call; the gateway checks the feature
    # count itself, so that warning carries no information here.
    warnings.filterwarnings("ignore", message="X does not have valid feature names")
    has_proba = hasattr(model, "predict_proba")
    n_features = int(model.n_features_in_)
    schema = input_schema(files)
    if schema is not None and len(schema) != n_features:
        schema = None  # a signature that does not describe the model's input: row vectors
    mixed = None
    if schema is not None and has_strings(schema):
        mixed = build_schema(model, schema)
    frame = _frame_maker(model, schema) if schema is not None else None

    def predict(x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        if frame is not None:
            x = frame(x)
        # XGBoost returns batch probabilities in Fortran order, which orjson cannot write.
        proba = np.ascontiguousarray(model.predict_proba(x)) if has_proba else None
        return model.predict(x), proba

    dtype = object if mixed is not None else np.float64
    return LoadedVersion(served, "sklearn", n_features, dtype, predict, stats, mixed=mixed)


def _frame_maker(
    model: Any, schema: tuple[tuple[str, str], ...]
) -> Callable[[np.ndarray], Any] | None:
    """For a model that selects its columns by name (a ColumnTransformer given names, or a
    mixed-type schema): rows -> a DataFrame with the signature's names and each column's
    type (numbers float64, strings object). None: the model takes the array as it is."""
    import pandas as pd

    names = [n for n, _ in schema]
    kinds = [column_kind(t) for _, t in schema]
    if not (_selects_by_name(model) or STRING in kinds):
        return None
    numeric = all(k == NUMBER for k in kinds)

    def frame(x: np.ndarray) -> Any:
        if numeric:
            return pd.DataFrame(x, columns=names, copy=False)
        return pd.DataFrame(
            {
                n: x[:, j].astype(np.float64) if k == NUMBER else x[:, j]
                for j, (n, k) in enumerate(zip(names, kinds, strict=True))
            }
        )

    return frame


def _selects_by_name(model: Any) -> bool:
    """Whether the model's first step is a ColumnTransformer that picks columns by name
    (it then refuses a plain array: "Specifying the columns using strings is only
    supported for dataframes")."""
    first = model
    steps = getattr(model, "steps", None)
    if isinstance(steps, list) and steps:
        first = steps[0][1]
    transformers = getattr(first, "transformers_", None) or []
    return any(
        isinstance(cols, str) or (isinstance(cols, list) and any(isinstance(c, str) for c in cols))
        for _, _, cols in transformers
    )
