"""Load one served version for the gateway: SHA-256 check first, then ONNX Runtime when the
artifact is an ONNX model, else the scikit-learn model.

Everything a request needs (predict function, input dtype, response prefix bytes, honesty
flag, counters) is prepared here once, so the request path does no lookups.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from core.deployment import ServedVersion
from core.errors import Conflict, InvalidInput
from core.honesty import ImplementationStatus
from core.registry import local_path

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


def read_verified(artifact_uri: str, expected_sha256: str | None, *, ref: str) -> dict[str, bytes]:
    """Every file of a model directory, read once, after its digest matched the registered one.

    The digest is ``core.registry.artifact_digest``'s (relative path + SHA-256 of each file,
    in sorted order), computed over the very bytes that are then loaded, so a file swapped
    between the check and the load cannot slip through.
    """
    if not expected_sha256:
        raise Conflict(
            f"{ref} has no recorded artifact SHA-256; refusing to load it",
            hint="Register models through ModelRegistry so their digest is recorded.",
        )
    root = local_path(artifact_uri)
    if root.is_file():
        files = {root.name: root.read_bytes()}
        actual = hashlib.sha256(files[root.name]).hexdigest()
    else:
        if not root.is_dir():
            raise Conflict(f"artifact of {ref} is missing at {root}")
        h = hashlib.sha256()
        files = {}
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            rel = path.relative_to(root).as_posix()
            data = path.read_bytes()
            files[rel] = data
            h.update(rel.encode() + b"\0")
            h.update(hashlib.sha256(data).digest())
        actual = h.hexdigest()
    if actual != expected_sha256:
        raise Conflict(
            f"artifact of {ref} changed since registration "
            f"(sha256 {actual[:12]}… != {expected_sha256[:12]}…); refusing to load it",
            hint="The artifact store was modified; re-register the model from its training run.",
        )
    return files


def artifact_flavors(files: dict[str, bytes]) -> dict[str, Any]:
    mlmodel = files.get("MLmodel")
    if mlmodel is None:
        return {}
    return (yaml.safe_load(mlmodel) or {}).get("flavors") or {}


def artifact_runtime(files: dict[str, bytes]) -> str | None:
    """``onnxruntime`` for an ONNX model, ``sklearn`` for a scikit-learn one, else None."""
    flavors = artifact_flavors(files)
    if "onnx" in flavors or (not flavors and any(n.endswith(".onnx") for n in files)):
        return "onnxruntime"
    return "sklearn" if "sklearn" in flavors else None


def load_version(served: ServedVersion, *, intra_op_threads: int = 1) -> LoadedVersion:
    """Verify and load one version; ONNX Runtime when the artifact has an ONNX graph."""
    ref = f"v{served.version}"
    files = read_verified(served.artifact_uri, served.artifact_sha256, ref=ref)
    flavors = artifact_flavors(files)
    stats = VersionStats()
    runtime = artifact_runtime(files)
    if runtime == "onnxruntime":
        name = (flavors.get("onnx") or {}).get("data") or next(
            n for n in sorted(files) if n.endswith(".onnx")
        )
        return _load_onnx(served, files[name], stats, intra_op_threads)
    if runtime == "sklearn":
        return _load_sklearn(served, local_path(served.artifact_uri), stats)
    raise InvalidInput(
        f"{ref} has neither an ONNX nor a scikit-learn flavor (flavors: {sorted(flavors)})",
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


def _load_sklearn(served: ServedVersion, path: Path, stats: VersionStats) -> LoadedVersion:
    import mlflow.sklearn  # load time only, never per request

    model = mlflow.sklearn.load_model(str(path))
    # Models fitted on a DataFrame warn on every numpy call; the gateway checks the feature
    # count itself, so that warning carries no information here.
    warnings.filterwarnings("ignore", message="X does not have valid feature names")
    has_proba = hasattr(model, "predict_proba")

    def predict(x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        return model.predict(x), (model.predict_proba(x) if has_proba else None)

    return LoadedVersion(served, "sklearn", int(model.n_features_in_), np.float64, predict, stats)
