"""Read a model someone trained elsewhere into what ModelOps stores: a scikit-learn-API
estimator (scikit-learn, XGBoost, LightGBM; kept as skops) or an ONNX graph.

Accepted: a ``.skops`` file, a ``.onnx`` file, an MLflow model directory (``sklearn`` or
``lightgbm`` flavor saved with skops, ``xgboost`` flavor in XGBoost's own JSON/UBJ format,
``onnx`` flavor), or the model an MLflow run logged. Nothing is ever unpickled: pickle, joblib
and cloudpickle files are refused with how to save the model instead; skops files are read
only with ``core.artifacts.SKOPS_TRUSTED_TYPES``.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from core.artifacts import (
    artifact_flavors,
    check_safe_flavors,
    check_skops_types,
    manifest_digest,
    manifest_of,
    onnx_bytes,
    read_model_files,
    skops_estimator,
)
from core.errors import InvalidInput
from core.onnx_checks import check_self_contained

FRAMEWORKS = ("sklearn", "xgboost", "lightgbm", "onnx")
Framework = Literal["sklearn", "xgboost", "lightgbm", "onnx"]
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".jbl", ".cloudpickle", ".dill", ".sav")
SAVE_HINT = (
    "Save the model with skops instead: `import skops.io; skops.io.dump(model, "
    "'model.skops')` (scikit-learn, and XGBoost/LightGBM scikit-learn API models), or export "
    "it to ONNX (skl2onnx for scikit-learn, onnxmltools for XGBoost/LightGBM, "
    "torch.onnx.export for PyTorch) and register the .onnx file."
)
ONNX_HINT = (
    "The gateway serves ONNX graphs with one float32 input of shape [N, n_features] (a fixed "
    "width) and either two outputs (labels, probabilities: export classifiers with zipmap "
    "disabled) or one float output (regressors)."
)
_XGB_CLASSES = ("xgboost.sklearn.XGBClassifier", "xgboost.sklearn.XGBRegressor")


@dataclass
class OwnModel:
    """A model read from its source, not yet registered."""

    kind: Literal["sklearn", "onnx"]  # how it is stored: skops or ONNX
    framework: str  # sklearn | xgboost | lightgbm | onnx (or what an ONNX file came from)
    estimator: Any = None  # kind == "sklearn"
    onnx: bytes | None = None  # kind == "onnx"
    signature: Any = None  # an MLflow ModelSignature the source carried, if any
    source: str = ""  # for descriptions: "file churn.skops", "MLflow model directory m"
    source_sha256: str = ""

    @property
    def n_features(self) -> int | None:
        if self.kind == "onnx":
            from core.optimizer.predictor import OnnxPredictor

            return OnnxPredictor(self.onnx).n_features
        n = getattr(self.estimator, "n_features_in_", None)
        return int(n) if n is not None else None

    @property
    def feature_names(self) -> list[str] | None:
        names = getattr(self.estimator, "feature_names_in_", None)
        return [str(c) for c in names] if names is not None else None

    def predict(self, frame: Any) -> Any:
        """Labels (or values) for a DataFrame already in the model's column order."""
        if self.kind == "onnx":
            from core.optimizer.predictor import OnnxPredictor

            return OnnxPredictor(self.onnx).predict(frame.to_numpy(dtype="float32"))[0]
        return self.estimator.predict(frame)


def refuse_pickle(raw: str) -> None:
    """InvalidInput for a pickle-family file name, before anything is read."""
    suffix = Path(raw).suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        raise InvalidInput(
            f"{Path(raw).name}: {suffix} files are pickles, which run code when loaded; "
            "ModelOps never loads pickle, joblib or cloudpickle models",
            hint=SAVE_HINT,
        )


def framework_of(estimator: Any) -> str:
    """sklearn | xgboost | lightgbm, from the final estimator's top-level module."""
    final = estimator
    while hasattr(final, "steps"):  # a Pipeline: its last step decides
        final = final.steps[-1][1]
    top = type(final).__module__.split(".")[0]
    return top if top in ("xgboost", "lightgbm") else "sklearn"


def read_model_path(path: Path, *, ref: str) -> OwnModel:
    """A resolved ``.skops`` / ``.onnx`` file or an MLflow model directory."""
    if path.is_dir():
        return _read_mlflow_dir(path, ref=ref)
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    suffix = path.suffix.lower()
    if suffix == ".skops":
        est = estimator_from_skops(data, ref=ref)
        return OwnModel(
            "sklearn", framework_of(est), estimator=est, source=ref, source_sha256=digest
        )
    if suffix == ".onnx":
        check_onnx(data, ref=ref)
        return OwnModel("onnx", "onnx", onnx=data, source=ref, source_sha256=digest)
    if data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        raise InvalidInput(f"{ref} is a pickle; ModelOps never loads pickle models", hint=SAVE_HINT)
    raise InvalidInput(
        f"{ref}: unsupported model file type {suffix or '(no suffix)'!r}",
        hint="Register a .skops file, a .onnx file or an MLflow model directory. " + SAVE_HINT,
    )


def read_model_files_of(files: dict[str, bytes], *, ref: str) -> OwnModel:
    """An MLflow model folder's files (relative path -> bytes) as an ``OwnModel``."""
    from core.onnx_logging import signature_of

    flavors = artifact_flavors(files)
    digest = manifest_digest(manifest_of(files))
    signature = signature_of(files)
    if "onnx" in flavors or "sklearn" in flavors:
        if check_safe_flavors(flavors, ref=ref) == "onnxruntime":
            data = onnx_bytes(files, ref=ref)
            check_onnx(data, ref=ref)
            return OwnModel(
                "onnx", "onnx", onnx=data, signature=signature, source=ref, source_sha256=digest
            )
        name = flavors["sklearn"].get("pickled_model") or "model.skops"
        est = estimator_from_skops(_file(files, name, ref), ref=ref)
        return OwnModel(
            "sklearn",
            framework_of(est),
            estimator=est,
            signature=signature,
            source=ref,
            source_sha256=digest,
        )
    if "lightgbm" in flavors:
        conf = flavors["lightgbm"] or {}
        if conf.get("serialization_format") != "skops":
            raise InvalidInput(
                f"{ref} is a LightGBM model saved as {conf.get('serialization_format') or 'a raw Booster'}"
                "; only LightGBM scikit-learn API models saved with skops are registered",
                hint="mlflow.lightgbm.log_model(model, name='model', serialization_format='skops', "
                "skops_trusted_types=[...]) with an LGBMClassifier/LGBMRegressor. " + SAVE_HINT,
            )
        est = estimator_from_skops(_file(files, conf.get("data") or "model.skops", ref), ref=ref)
        return OwnModel(
            "sklearn",
            "lightgbm",
            estimator=est,
            signature=signature,
            source=ref,
            source_sha256=digest,
        )
    if "xgboost" in flavors:
        est = _xgboost_native(flavors["xgboost"] or {}, files, ref=ref)
        return OwnModel(
            "sklearn",
            "xgboost",
            estimator=est,
            signature=signature,
            source=ref,
            source_sha256=digest,
        )
    kinds = ", ".join(sorted(flavors)) or "none"
    raise InvalidInput(
        f"{ref} has no flavor ModelOps loads without pickle (flavors: {kinds})",
        hint="Supported MLflow flavors: sklearn or lightgbm saved with skops, xgboost (its own "
        "JSON/UBJ format), onnx. " + SAVE_HINT,
    )


def _read_mlflow_dir(path: Path, *, ref: str) -> OwnModel:
    files = read_model_files(path, ref=ref)  # refuses symlinks
    if "MLmodel" not in files:
        raise InvalidInput(
            f"{ref} is a directory without an MLmodel file",
            hint="Give a .skops or .onnx file, or a folder written by mlflow.<flavor>.save_model.",
        )
    return read_model_files_of(files, ref=ref)


def _file(files: dict[str, bytes], name: str, ref: str) -> bytes:
    if name not in files:
        raise InvalidInput(f"{ref}: the flavor's model file {name!r} is not in the folder")
    return files[name]


def estimator_from_skops(data: bytes, *, ref: str) -> Any:
    """The estimator in a skops file (``skops_estimator``: trusted list, tree checks); must
    predict."""
    check_skops_types(data, ref=ref)  # names the types outside the list, if any
    est = skops_estimator(data, ref=ref)
    if not hasattr(est, "predict"):
        raise InvalidInput(
            f"{ref} holds a {type(est).__name__}, which has no predict method",
            hint="Register a fitted classifier or regressor (or a pipeline ending in one).",
        )
    return est


def _xgboost_native(conf: dict[str, Any], files: dict[str, bytes], *, ref: str) -> Any:
    """An XGBoost scikit-learn API model from MLflow's xgboost flavor (XGBoost's own format)."""
    cls_name = conf.get("model_class", "xgboost.core.Booster")
    fmt = conf.get("model_format", "xgb")
    if cls_name not in _XGB_CLASSES or fmt not in ("json", "ubj"):
        raise InvalidInput(
            f"{ref}: an xgboost flavor with model_class {cls_name} / format {fmt} is not supported",
            hint="Log an XGBClassifier or XGBRegressor (mlflow.xgboost.log_model saves UBJ by "
            "default). " + SAVE_HINT,
        )
    try:
        import xgboost
    except ImportError as exc:
        raise InvalidInput(
            f"{ref} is an XGBoost model and xgboost is not installed",
            hint="pip install -e '.[boosting]'",
        ) from exc
    data = _file(files, conf.get("data") or f"model.{fmt}", ref)
    est = getattr(xgboost, cls_name.rsplit(".", 1)[1])()
    with tempfile.TemporaryDirectory() as tmp:
        model_file = Path(tmp) / f"model.{fmt}"
        model_file.write_bytes(data)
        try:
            est.load_model(str(model_file))  # XGBoost's own parser, no pickle
        except Exception as exc:  # xgboost.core.XGBoostError and friends
            raise InvalidInput(f"{ref}: XGBoost could not read the model ({exc})") from exc
    return est


def check_onnx(data: bytes, *, ref: str) -> None:
    """Refuse an ONNX graph the gateway cannot serve (see ``ONNX_HINT``)."""
    from core.optimizer.predictor import OnnxPredictor

    check_self_contained(data, ref=ref)  # its own hint (how to save the weights inside)
    try:
        predictor = OnnxPredictor(data)
    except InvalidInput as exc:
        raise InvalidInput(f"{ref}: {exc.message}", hint=ONNX_HINT) from exc
    except Exception as exc:  # onnxruntime's own errors for a file that is not a valid graph
        raise InvalidInput(f"{ref}: ONNX Runtime cannot load the graph ({exc})") from exc
    if predictor.n_features is None:
        raise InvalidInput(
            f"{ref}: the ONNX graph does not declare its input width",
            hint="Export with a fixed feature count, e.g. "
            "initial_types=[('input', FloatTensorType([None, n_features]))]. " + ONNX_HINT,
        )
