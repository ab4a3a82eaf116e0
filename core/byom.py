"""Bring your own model: register a model trained elsewhere as a version of a registered model.

What gets stored (``core.byom_sources`` reads the model; this module registers it):

- scikit-learn, XGBoost and LightGBM scikit-learn-API estimators: re-logged with
  ``mlflow.sklearn`` as skops (only the ``core.artifacts.SKOPS_TRUSTED_TYPES`` they need);
- ONNX graphs: logged with ``core.onnx_logging`` (``onnx`` flavor plus a pyfunc that takes
  the signature's columns);
- a run whose logged model is already skops or ONNX is registered as it is (its own datasets
  and metrics stay with it); any other run model is re-logged like a file.

Every version gets an input schema (the source's MLflow signature, else one inferred from a
sample: ``sample`` rows or the training data's first rows minus the label), honesty metadata
(supplied, else HEURISTIC / UNVALIDATED), the registrant's numbers as *claimed* metrics (one
JSON tag and the description; never MLflow run metrics), an optional semantic version label
(unique per model) and the training data as the run's ``training`` dataset (digest + rows), so
``logged:training`` works for evaluation.
"""

from __future__ import annotations

import json
import math
import re
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.artifacts import SKOPS_TRUSTED_TYPES, local_path, read_model_files
from core.byom_sources import OwnModel, read_model_files_of
from core.errors import Conflict, InvalidInput, NotFound
from core.honesty import (
    CLAIMED_METRICS_TAG,
    VERSION_LABEL_TAG,
    HonestyMetadata,
    HonestyWarning,
    ImplementationStatus,
)
from core.names import SEMVER_PATTERN, validate_name
from core.tasks import LABEL_COLUMN_TAG
from core.tracking import DEFAULT_EXPERIMENT, ensure_experiment

if TYPE_CHECKING:
    from core.registry import ModelRegistry, ModelVersionInfo

_SEMVER = re.compile(SEMVER_PATTERN)
_METRIC_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")
MAX_CLAIMED_METRICS = 32
SAMPLE_ROWS = 5
TRAINING = "training"
NO_SCHEMA_HINT = (
    "Give a sample of input rows (--sample rows.csv: a CSV with the feature columns as headers) "
    "or the training data (--training-data, its first rows minus the label column), or log the "
    "model with an MLflow signature."
)
_BASE_REQUIREMENTS = ["scikit-learn", "numpy", "pandas", "skops"]


@dataclass
class TrainingData:
    frame: Any  # pandas DataFrame: features and label (and any other columns)
    label: str
    source: str  # the file's name, for tags


@dataclass
class OwnRegistration:
    info: ModelVersionInfo
    framework: str
    model_format: str  # skops | onnx
    input_columns: list[str] | None
    label_column: str | None
    training_logged: bool
    notes: list[str] = field(default_factory=list)


def check_version_label(label: str) -> str:
    if len(label) > 64 or not _SEMVER.fullmatch(label):
        raise InvalidInput(
            f"version label {label[:70]!r} is not a semantic version",
            hint='Use MAJOR.MINOR.PATCH, e.g. "2.1.0" or "2.1.0-rc.1".',
        )
    return label


def check_claimed_metrics(metrics: dict[str, Any] | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in (metrics or {}).items():
        if not isinstance(key, str) or not _METRIC_NAME.fullmatch(key):
            raise InvalidInput(
                f"invalid metric name {str(key)[:70]!r}",
                hint="Letters, digits, '_', '.', '-', starting with a letter (at most 64).",
            )
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise InvalidInput(f"claimed metric {key} must be a finite number, got {value!r}")
        out[key] = float(value)
    if len(out) > MAX_CLAIMED_METRICS:
        raise InvalidInput(f"at most {MAX_CLAIMED_METRICS} claimed metrics, got {len(out)}")
    return dict(sorted(out.items()))


def claim_text(claimed: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in claimed.items())


def default_honesty(claimed: dict[str, float]) -> HonestyMetadata:
    """What a version registered without honesty metadata is marked: not validated by us."""
    return HonestyMetadata(
        implementation_status=ImplementationStatus.HEURISTIC,
        accuracy_claim=f"claimed by the registrant: {claim_text(claimed)}"
        if claimed
        else "no claim",
        validation_method="none yet: awaiting QA re-evaluation",
        honesty_warning=HonestyWarning.UNVALIDATED,
    )


def read_table(path: Path, *, what: str) -> Any:
    import pandas as pd

    try:
        if path.suffix.lower() == ".parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except (ValueError, OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read the {what} {path.name}: {exc}") from exc


def training_data(
    frame: Any, label_column: str | None, features: list[str] | None, *, source: str
) -> TrainingData:
    """The training table and its label column: the one given, else the single column that is
    not a model feature, else ``target``."""
    cols = [str(c) for c in frame.columns]
    frame.columns = cols
    if label_column is not None:
        if label_column not in cols:
            raise InvalidInput(
                f"the training data has no label column {label_column!r}",
                hint=f"Columns: {', '.join(cols[:30])}.",
            )
        return TrainingData(frame, label_column, source)
    rest = [c for c in cols if c not in (features or [])]
    if features and len(rest) == 1:
        return TrainingData(frame, rest[0], source)
    if "target" in rest:
        return TrainingData(frame, "target", source)
    raise InvalidInput(
        "cannot tell which column of the training data is the label",
        hint=f"Name it with label_column (--label-column); candidates: {', '.join(rest[:20])}.",
    )


def input_sample(
    model: OwnModel, sample: Any | None, training: TrainingData | None, label_column: str | None
) -> Any | None:
    """The sample rows in the model's column order (None without a sample or training data).

    The order is the estimator's own feature names, else the source signature's columns, else
    the sample's. Missing or extra columns, non-numeric columns and NaN are refused here, where
    the registrant can fix them, rather than at the first prediction."""
    declared = model.feature_names or _signature_columns(model.signature)
    if sample is not None:
        frame, what = sample.copy(), "the sample"
        frame.columns = [str(c) for c in frame.columns]
        if label_column and label_column in frame.columns:
            frame = frame.drop(columns=[label_column])
    elif training is not None:
        frame, what = training.frame.drop(columns=[training.label]), "the training data"
    else:
        return None
    cols = list(frame.columns)
    if declared is not None:
        missing = [c for c in declared if c not in cols]
        extra = [c for c in cols if c not in declared]
        if missing or (extra and sample is not None):
            raise InvalidInput(
                f"{what} does not match the model's input columns"
                + (f"; missing: {', '.join(missing[:20])}" if missing else "")
                + (
                    f"; not model inputs: {', '.join(extra[:20])}"
                    if extra and sample is not None
                    else ""
                ),
                hint=f"The model takes: {', '.join(declared[:40])}.",
            )
        cols = declared
    n = model.n_features
    if n is not None and len(cols) != n:
        raise InvalidInput(
            f"{what} has {len(cols)} feature columns but the model takes {n}",
            hint=f"Columns given: {', '.join(cols[:40])}.",
        )
    rows = frame[cols].head(SAMPLE_ROWS)
    if rows.empty:
        raise InvalidInput(f"{what} has no rows", hint=NO_SCHEMA_HINT)
    # A scikit-learn model may take string columns (a pipeline that encodes them; predicting
    # on the rows in build_signature checks it does); an ONNX graph takes one float tensor.
    strings = _string_columns(rows, what) if model.kind != "onnx" else []
    numbers = [c for c in cols if c not in strings]
    _check_numeric(rows[numbers], what)
    return rows.astype({c: "float64" for c in numbers})


def _string_columns(rows: Any, what: str) -> list[str]:
    """The columns holding text only (object / string dtype, every value a str)."""
    import pandas as pd

    out = []
    for c in rows.columns:
        s = rows[c]
        if pd.api.types.is_numeric_dtype(s) or not (
            pd.api.types.is_object_dtype(s) or pd.api.types.is_string_dtype(s)
        ):
            continue
        if s.isna().any():
            raise InvalidInput(
                f"{what} has missing values in the string column {c!r}",
                hint="Give rows without missing values: they define the input schema.",
            )
        if all(isinstance(v, str) for v in s):
            out.append(c)
    return out


def _check_numeric(rows: Any, what: str) -> None:
    import pandas as pd

    non_numeric = [
        c
        for c in rows.columns
        if not pd.api.types.is_numeric_dtype(rows[c]) or pd.api.types.is_bool_dtype(rows[c])
    ]
    if non_numeric:
        raise InvalidInput(
            f"{what} has non-numeric feature columns: {', '.join(map(str, non_numeric[:10]))}",
            hint="The gateway serves numbers, and strings to a scikit-learn pipeline that "
            "encodes them; encode other types (booleans, dates) before the model.",
        )
    import numpy as np

    finite = np.isfinite(rows.to_numpy(dtype="float64"))
    if not finite.all():
        cols = [c for c, ok in zip(rows.columns, finite.all(axis=0), strict=True) if not ok]
        raise InvalidInput(
            f"{what} has missing or infinite values in {', '.join(map(str, cols[:10]))} "
            f"(first at data row {int((~finite.all(axis=1)).nonzero()[0][0]) + 1})",
            hint="Give rows without NaN: they define the input schema and are checked by "
            "predicting on them.",
        )


def _signature_columns(signature: Any) -> list[str] | None:
    if signature is None or signature.inputs is None or signature.inputs.is_tensor_spec():
        return None
    return list(signature.inputs.input_names())


def build_signature(model: OwnModel, rows: Any | None, *, ref: str, keep: bool) -> Any:
    """The version's signature. Predicting on ``rows`` checks the model takes them. A
    column-based signature the source carried is kept (so is any signature when ``keep``:
    a run's logged model is registered as it is); else one is inferred from ``rows``."""
    from mlflow.models import infer_signature

    predictions = None
    if rows is not None:
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="X does not have valid feature names")
                predictions = model.predict(rows)
        except InvalidInput:
            raise
        except Exception as exc:  # the registrant's model failed on their own rows
            import pandas as pd

            text = [str(c) for c in rows.columns if not pd.api.types.is_numeric_dtype(rows[c])]
            which = f" (non-numeric columns: {', '.join(text[:10])})" if text else ""
            raise InvalidInput(
                f"{ref} failed to predict on the sample rows{which}: {exc}",
                hint="String columns are served to a scikit-learn pipeline that encodes them "
                "(e.g. a ColumnTransformer with a OneHotEncoder); encode them otherwise.",
            ) from exc
    own = model.signature if model.signature is not None and model.signature.inputs else None
    if own is not None and (keep or rows is None or _signature_columns(own) is not None):
        return own
    if rows is None:
        raise InvalidInput(f"{ref} has no input schema (MLflow signature)", hint=NO_SCHEMA_HINT)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Inferred schema contains integer.*")
        return infer_signature(rows, predictions)


def versions_with_label(registry: ModelRegistry, name: str, label: str) -> list[int]:
    return registry.versions_with_label(name, label)


def _label_conflict(name: str, label: str, versions: list[int]) -> Conflict:
    return Conflict(
        f"{name} already has version label {label} (v{versions[0]})",
        hint=f"Labels are unique per model: give a new one, or see `agent models show {name}`.",
    )


def register_own_model(
    registry: ModelRegistry,
    name: str,
    *,
    model: OwnModel | None = None,
    run_id: str | None = None,
    version_label: str | None = None,
    honesty: HonestyMetadata | None = None,
    claimed_metrics: dict[str, Any] | None = None,
    training_frame: Any | None = None,
    training_source: str = "",
    sample: Any | None = None,
    label_column: str | None = None,
    framework: str | None = None,
    description: str = "",
) -> OwnRegistration:
    """Register ``model`` (read from a file or folder) or the model run ``run_id`` logged."""
    validate_name("model", name)
    label = check_version_label(version_label) if version_label else None
    claimed = check_claimed_metrics(claimed_metrics)
    if label and (taken := versions_with_label(registry, name, label)):
        raise _label_conflict(name, label, taken)
    as_is = None  # the run's LoggedModel when it is registered as it is
    if run_id is not None:
        model, as_is = _run_model(registry, run_id)
    if model is None:
        raise InvalidInput("give a model (a file or folder) or a run id")
    if framework and model.kind != "onnx" and framework != model.framework:
        raise InvalidInput(
            f"{model.source} holds a {model.framework} model, not {framework}",
            hint="Leave framework out, or give the one the model was trained with.",
        )
    framework = framework or model.framework
    declared = model.feature_names or _signature_columns(model.signature)
    training = None
    if training_frame is not None:
        training = training_data(training_frame, label_column, declared, source=training_source)
    if as_is is not None and training is not None:
        _no_training_yet(registry, run_id)  # before anything is written
    rows = input_sample(model, sample, training, label_column)
    signature = build_signature(model, rows, ref=model.source, keep=as_is is not None)
    from_tracker = False
    if honesty is None and run_id is not None:  # what the tracker recorded, if it did
        from core.experiments.tracker import tracker_honesty

        honesty = tracker_honesty(registry.client.get_run(run_id).data.params)
        from_tracker = honesty is not None
    honesty_given = honesty is not None
    honesty = honesty or default_honesty(claimed)
    tags = {
        "framework": framework,
        "model_format": "onnx" if model.kind == "onnx" else "skops",
        "serving_runtime": "onnxruntime" if model.kind == "onnx" else "sklearn",
        "registered_from": model.source[:500],
        "source_sha256": model.source_sha256,
    }
    if label:
        tags[VERSION_LABEL_TAG] = label
    if claimed:
        tags[CLAIMED_METRICS_TAG] = json.dumps(claimed, sort_keys=True)
    text = description.strip()
    if claimed:
        text += (
            f"{' ' if text else ''}Claimed by the registrant, not measured: {claim_text(claimed)}."
        )
    if as_is is not None:
        target_run = run_id
        if model.signature is None:  # not registered yet, so no manifest covers MLmodel
            _set_run_signature(registry, run_id, as_is, signature)
    else:
        target_run = _log_own_run(registry, name, model, signature, honesty, tags, run_id)
    notes = []
    if training is not None:
        tags.update(_log_training(registry, target_run, training))
        tags[LABEL_COLUMN_TAG] = training.label
    else:
        notes.append("no training data given: logged:training is not available for evaluation")
    if from_tracker:
        notes.append("honesty metadata as the tracker recorded it for the run (claimed until QA)")
    if not honesty_given:
        notes.append("honesty metadata defaulted to HEURISTIC / UNVALIDATED until QA evaluates it")
    info = registry.register_from_run(
        name, target_run, honesty=honesty, description=text[:5000], extra_tags=tags
    )
    if label:
        taken = [v for v in versions_with_label(registry, name, label) if v != int(info.version)]
        if taken and min(taken) < int(info.version):  # registered at the same time: first wins
            registry.client.delete_model_version(name, info.version)  # the one we just created
            raise _label_conflict(name, label, taken)
    return OwnRegistration(
        info=info,
        framework=framework,
        model_format=tags["model_format"],
        input_columns=_signature_columns(signature),
        label_column=training.label if training else None,
        training_logged=training is not None,
        notes=notes,
    )


def _run_model(registry: ModelRegistry, run_id: str) -> tuple[OwnModel, Any | None]:
    """The run's logged model: (it, the LoggedModel) when it can be registered as it is
    (skops or ONNX), else (it, None) to be re-logged in a new run."""
    from mlflow.exceptions import MlflowException

    try:
        run = registry.client.get_run(run_id)
    except MlflowException as exc:
        raise NotFound(f"no MLflow run {run_id}") from exc
    logged = registry.client.search_logged_models(
        experiment_ids=[run.info.experiment_id], filter_string=f"source_run_id = '{run_id}'"
    )
    if not logged:
        raise NotFound(
            f"run {run_id} logged no model", hint="Log one with mlflow.<flavor>.log_model."
        )
    ref = f"run {run_id}'s model"
    files = read_model_files(local_path(logged[0].artifact_location), ref=ref)
    model = read_model_files_of(files, ref=ref)
    from core.artifacts import artifact_flavors

    flavors = artifact_flavors(files)
    as_is = "onnx" in flavors or "sklearn" in flavors  # read_model_files_of refused pickle
    return model, (logged[0] if as_is else None)


def _set_run_signature(registry: ModelRegistry, run_id: str, logged: Any, signature: Any) -> None:
    from mlflow.models import set_signature

    if registry.client.search_model_versions(f"run_id='{run_id}'", max_results=1):
        raise Conflict(
            f"run {run_id}'s model is already registered without a signature; its files "
            "cannot change now",
            hint="Log the model again with signature=..., or register its folder with a sample.",
        )
    set_signature(f"models:/{logged.model_id}", signature)


def _log_own_run(
    registry: ModelRegistry,
    name: str,
    model: OwnModel,
    signature: Any,
    honesty: HonestyMetadata,
    tags: dict[str, str],
    source_run: str | None,
) -> str:
    """A new run holding the model (skops or ONNX) and its tags; no metrics."""
    import mlflow

    exp_id = ensure_experiment(registry.client, DEFAULT_EXPERIMENT, registry.artifact_root)
    # The label and the claims are version facts (reserved: registration would drop them).
    run_tags = {k: v for k, v in tags.items() if k not in (VERSION_LABEL_TAG, CLAIMED_METRICS_TAG)}
    run_tags.update(honesty.as_tags())
    if source_run:
        run_tags["source_run_id"] = source_run
    with mlflow.start_run(experiment_id=exp_id, run_name=f"{name}-registered") as run:
        mlflow.set_tags(run_tags)
        if model.kind == "onnx":
            import onnx

            from core.onnx_logging import log_onnx_model

            log_onnx_model(onnx.load_from_string(model.onnx), signature=signature)
        else:
            import mlflow.sklearn
            import skops.io

            needed = skops.io.get_untrusted_types(data=skops.io.dumps(model.estimator))
            extra = [model.framework] if model.framework in ("xgboost", "lightgbm") else []
            mlflow.sklearn.log_model(
                model.estimator,
                name="model",
                pip_requirements=[*_BASE_REQUIREMENTS, *extra],
                serialization_format="skops",
                skops_trusted_types=[t for t in needed if t in SKOPS_TRUSTED_TYPES],
                signature=signature,
            )
    return run.info.run_id


def _no_training_yet(registry: ModelRegistry, run_id: str) -> None:
    run = registry.client.get_run(run_id)
    if any(d.dataset.name == TRAINING for d in run.inputs.dataset_inputs):
        raise Conflict(
            f"run {run_id} already logged a {TRAINING!r} dataset",
            hint="Leave the training data out: the run's own dataset is used.",
        )


def _log_training(registry: ModelRegistry, run_id: str, training: TrainingData) -> dict[str, str]:
    """The training rows as the run's ``training`` dataset (digest + parquet); its tags."""
    import mlflow
    from mlflow.entities import DatasetInput, InputTag

    client = registry.client
    _no_training_yet(registry, run_id)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Inferred schema contains integer.*")
        ds = mlflow.data.from_pandas(training.frame, name=TRAINING, targets=training.label)
        entity = ds._to_mlflow_entity()
    client.log_inputs(
        run_id,
        datasets=[DatasetInput(entity, tags=[InputTag("mlflow.data.context", "training")])],
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{TRAINING}.parquet"
        training.frame.to_parquet(path, index=False)
        client.log_artifact(run_id, str(path), artifact_path="datasets")
    tags = {"dataset_digest": ds.digest, "dataset_name": TRAINING}
    for key, value in tags.items():
        client.set_tag(run_id, key, value)
    return tags
