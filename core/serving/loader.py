"""Load one served version for the gateway: its files are read once and checked against the
registered manifest (``core.artifacts``), then deserialized from those same bytes: ONNX Runtime
for an ONNX model, skops for a scikit-learn one (never pickle).

Everything a request needs (predict function, input dtype, response prefix bytes, honesty
flag, counters) is prepared here once, so the request path does no lookups.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from core.artifacts import (  # noqa: F401 - read_verified and artifact_flavors re-exported
    artifact_flavors,
    artifact_runtime,
    onnx_bytes,
    read_verified,
    sklearn_from_bytes,
)
from core.deployment import ServedVersion
from core.errors import InvalidInput
from core.honesty import ImplementationStatus

PredictFn = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]]
# Model calls at or under this cost run on the event loop; slower ones go to a thread.
INLINE_RUNTIMES = ("onnxruntime",)


@dataclass
class VersionStats:
    """Per-version counters, written only by the thread that serves the version's role."""

    requests: int = 0
    server_errors: int = 0
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
    inline: bool = field(init=False)  # answered on the event loop (µs-scale model calls)

    def __post_init__(self) -> None:
        self.inline = self.runtime in INLINE_RUNTIMES

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
        return _load_onnx(served, onnx_bytes(files, ref=ref), stats, intra_op_threads)
    if runtime == "sklearn":
        return _load_sklearn(served, files, stats)
    raise InvalidInput(
        f"{ref} has neither an ONNX nor a scikit-learn flavor "
        f"(flavors: {sorted(artifact_flavors(files))})",
        hint="The gateway serves models registered by ModelRegistry or the optimize_model tool.",
    )


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

    def predict(x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        return model.predict(x), (model.predict_proba(x) if has_proba else None)

    return LoadedVersion(served, "sklearn", int(model.n_features_in_), np.float64, predict, stats)
