"""Bring your own model: register a model trained elsewhere (a skops or ONNX file, an MLflow
model directory, or an MLflow run's model) as a new version. See core.byom."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from core.byom import SEMVER_PATTERN
from core.errors import InvalidInput, NotFound
from core.honesty import HonestyMetadata
from core.names import ModelName
from tools.base import ToolInput, tool
from tools.context import CallContext, Services

RUN_PREFIX = "runs:/"
_RUN_ID = re.compile(r"[0-9a-f]{32}")
Framework = Literal["sklearn", "xgboost", "lightgbm", "onnx"]


class RegisterOwnModelInput(ToolInput):
    name: ModelName
    source: str = Field(
        min_length=1,
        max_length=4096,
        description="The model: a .skops or .onnx file or an MLflow model directory under the "
        "working directory or MODELOPS_HOME, or runs:/RUN_ID for the model an MLflow run "
        "logged. Pickle/joblib files are refused.",
    )
    version_label: str | None = Field(
        default=None,
        max_length=64,
        pattern=SEMVER_PATTERN,
        description='Your semantic version, e.g. "2.1.0"; unique per model.',
    )
    framework: Framework | None = Field(
        default=None, description="What the model was trained with (detected when omitted)."
    )
    honesty: HonestyMetadata | None = Field(
        default=None,
        description="Omit to have the version marked HEURISTIC / UNVALIDATED until QA evaluates it.",
    )
    metrics: dict[str, float] | None = Field(
        default=None,
        max_length=32,
        description="Metrics you claim for the model: stored as claimed, never as measured.",
    )
    training_data: str | None = Field(
        default=None,
        min_length=1,
        max_length=4096,
        description="CSV or parquet of the training rows (features and label), logged as the "
        "version's training dataset.",
    )
    sample: str | None = Field(
        default=None,
        min_length=1,
        max_length=4096,
        description="CSV of a few input rows (feature columns as headers): the input schema "
        "when the model carries none (default: the training data's first rows).",
    )
    label_column: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="The training data's label column (detected when omitted).",
    )
    description: str = Field(default="", max_length=2000)


class RegisterOwnModelOutput(BaseModel):
    name: str
    version: str
    version_label: str | None
    framework: str
    model_format: str = Field(description="skops or onnx: how the model is stored and loaded.")
    artifact_sha256: str | None
    run_id: str | None
    input_columns: list[str] | None = Field(
        description="The signature's columns, in order (None: row vectors only)."
    )
    label_column: str | None
    training_dataset: str | None = Field(
        description="logged:training when the training data was logged with the version."
    )
    honesty: dict[str, str]
    claimed_metrics: dict[str, float] = Field(
        description="What the registrant claimed: not measured, not validated."
    )
    dropped_tags: list[str] = []
    reference_profile: str = Field(
        default="", description="The monitoring reference profile captured from the training data."
    )
    notes: list[str] = []


@tool(permission="registry:write", side_effect="write")
def register_own_model(call: CallContext, args: RegisterOwnModelInput) -> RegisterOwnModelOutput:
    """Register a model trained elsewhere (skops/ONNX file, MLflow model directory or run) as a new version, with its input schema and claimed metrics."""
    from core.byom import read_table
    from core.byom import register_own_model as register
    from tools.monitoring_tools import capture_at_registration

    services = call.services
    run_id, model = None, None
    if args.source.startswith(RUN_PREFIX) or _RUN_ID.fullmatch(args.source):
        run_id = args.source.removeprefix(RUN_PREFIX).strip("/")
        if not _RUN_ID.fullmatch(run_id):
            raise InvalidInput(f"invalid run id {run_id[:40]!r}", hint="runs:/ + 32 hex digits.")
    else:
        model = read_source(services, args.source)
    training = sample = None
    if args.training_data is not None:
        path = data_path(services, args.training_data, "training data")
        training = (read_table(path, what="training data"), path.name)
    if args.sample is not None:
        sample = read_table(data_path(services, args.sample, "sample"), what="sample")
    out = register(
        services.registry,
        args.name,
        model=model,
        run_id=run_id,
        version_label=args.version_label,
        honesty=args.honesty,
        claimed_metrics=args.metrics,
        training_frame=training[0] if training else None,
        training_source=training[1] if training else "",
        sample=sample,
        label_column=args.label_column,
        framework=args.framework,
        description=args.description,
    )
    info = out.info
    return RegisterOwnModelOutput(
        name=info.name,
        version=info.version,
        version_label=info.version_label,
        framework=out.framework,
        model_format=out.model_format,
        artifact_sha256=info.artifact_sha256,
        run_id=info.run_id,
        input_columns=out.input_columns,
        label_column=out.label_column,
        training_dataset="logged:training" if out.training_logged else None,
        honesty=info.honesty,
        claimed_metrics=info.claimed_metrics,
        dropped_tags=info.dropped_tags,
        # Training rows logged now, or by the tracker's run (its lineage says so).
        reference_profile=capture_at_registration(services, info)
        if out.training_logged or "dataset_name" in info.lineage
        else "",
        notes=out.notes,
    )


def read_source(services: Services, raw: str) -> Any:
    """The model at ``raw`` (file or MLflow model directory), confined to the allowed roots."""
    from core.byom_sources import read_model_path, refuse_pickle

    refuse_pickle(raw)  # before anything is read
    candidate = Path(raw).expanduser()
    if not candidate.is_absolute():
        candidate = Path.cwd() / candidate
    # A directory is checked through its MLmodel file (the same root rule as any data file).
    probe = str(candidate / "MLmodel") if candidate.is_dir() else raw
    path = data_path(services, probe, "model")
    if path.name == "MLmodel" and candidate.is_dir():
        path = path.parent
    return read_model_path(
        path, ref=f"{'MLflow model directory' if path.is_dir() else 'file'} {path.name}"
    )


def data_path(services: Services, raw: str, what: str) -> Path:
    """``Services.resolve_data_path`` (working directory or MODELOPS_HOME), in our words."""
    try:
        return services.resolve_data_path(raw)
    except InvalidInput as exc:
        raise InvalidInput(
            f"{what} path {raw[:200]!r} is outside the allowed directories",
            hint="Use a path under the working directory or MODELOPS_HOME.",
        ) from exc
    except NotFound as exc:
        raise NotFound(
            f"{what} {raw[:200]!r} does not exist"
            + (" (or is a directory without an MLmodel file)" if what == "model" else ""),
            hint="Paths are relative to the working directory.",
        ) from exc


SEED_KEYS = {
    "model_path": "source",
    "run_id": "source",
    "model_name": "name",
    "version": "version_label",
    "metrics": "metrics",
    "training_data": "training_data",
    "framework": "framework",
    "honesty": "honesty",
    "sample": "sample",
    "label_column": "label_column",
    "description": "description",
}


def from_seed_input(data: dict[str, Any]) -> dict[str, Any]:
    """The ml-model-registry seed workflow's input (model_path, model_name, version, metrics,
    training_data, framework) as register_own_model arguments."""
    unknown = sorted(k for k in data if k not in SEED_KEYS and k not in SEED_KEYS.values())
    if unknown:
        raise InvalidInput(
            f"unknown ml-model-registry input keys: {', '.join(unknown[:10])}",
            hint=f"Accepted: {', '.join(SEED_KEYS)}.",
        )
    args: dict[str, Any] = {}
    for key, value in data.items():
        target = SEED_KEYS.get(key, key)
        if key == "run_id" and isinstance(value, str):
            value = f"{RUN_PREFIX}{value}"
        if target in args:
            raise InvalidInput(f"give one of model_path or run_id, not both ({key})")
        args[target] = value
    return args
