"""Experiment tools: the ``ml-experiment-tracker`` workflow (train and track a run on your own
table), list runs, show a run's stepped metrics, compare runs with uncertainty."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from core.experiments.train import TrackedTraining
from core.names import NAME_PATTERN, is_reserved_tag
from tools.base import ToolInput, tool
from tools.context import CallContext

RunRef = Field(
    min_length=1, max_length=128, pattern=f"^{NAME_PATTERN}$", description="Run name or id."
)
Experiment = Field(default=None, max_length=128, pattern=f"^{NAME_PATTERN}$")
_TAG_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")


def _tracker(call: CallContext, experiment: str | None = None) -> Any:
    from core.experiments import ExperimentTracker

    kwargs = {"experiment": experiment} if experiment else {}
    return ExperimentTracker.from_settings(call.services.settings, **kwargs)


class TrackExperimentInput(ToolInput):
    renamed_fields = {"target": "label_column"}
    experiment_name: str = Field(min_length=1, max_length=128, pattern=f"^{NAME_PATTERN}$")
    dataset: str = Field(min_length=1, max_length=1024, description="CSV, Parquet or JSONL table.")
    label_column: str = Field(default="target", min_length=1, max_length=256)
    model_type: Literal[
        "random_forest",
        "logistic_regression",
        "linear_regression",
        "gradient_boosting",
        "xgboost",
        "lightgbm",
    ] = "random_forest"
    hyperparameters: dict[str, float | int | str | bool | None] = Field(default={}, max_length=50)
    run_name: str | None = Field(default=None, max_length=128, pattern=f"^{NAME_PATTERN}$")
    metrics: list[str] = Field(default=[], max_length=30, description="Metrics to report first.")
    test_fraction: float = Field(default=0.2, gt=0.05, lt=0.9)
    seed: int = Field(default=42, ge=0)
    description: str | None = Field(
        default=None, max_length=5000, description="Kept on the run (MLflow's run description)."
    )
    tags: dict[str, str] = Field(
        default={}, max_length=50, description="Kept on the run as MLflow tags."
    )

    @field_validator("tags")
    @classmethod
    def _tag_names(cls, tags: dict[str, str]) -> dict[str, str]:
        for key, value in tags.items():
            # MLflow's own ``mlflow.*`` tags and our reserved names are not the caller's.
            if not _TAG_KEY.fullmatch(key) or key.lower().startswith("mlflow."):
                raise ValueError(
                    f"tag name {key[:70]!r}: letters, digits, '_', '.', '-' (at most 64), "
                    "not mlflow.*"
                )
            if is_reserved_tag(key):
                raise ValueError(f"tag name {key!r} is reserved: only the system writes it")
            if len(value) > 5000:
                raise ValueError(f"tag {key}: at most 5000 characters")
        return tags


class TrackExperimentOutput(TrackedTraining):
    """What the tool returns: the tracked training run itself (core.experiments.train)."""


@tool(permission="experiments:write", side_effect="write")
def track_experiment(call: CallContext, args: TrackExperimentInput) -> TrackExperimentOutput:
    """Train a scikit-learn model on a table and track it as an MLflow run: params, held-out metrics, datasets, per-row predictions, environment, model and honesty metadata."""
    from core.datasets import Dataset
    from core.experiments.train import train_tracked

    path = call.services.resolve_data_path(args.dataset)
    ds = Dataset.load(path)
    out = train_tracked(
        _tracker(call, args.experiment_name),
        ds,
        args.label_column,
        model_type=args.model_type,
        hyperparameters=dict(args.hyperparameters),
        run_name=args.run_name or f"{args.experiment_name}-{args.model_type}",
        experiment=args.experiment_name,
        test_fraction=args.test_fraction,
        seed=args.seed,
        description=args.description,
        tags=dict(args.tags),
    )
    data = out.model_dump()
    if args.metrics:  # the asked-for metrics first, the rest after
        first = {m: data["metrics"][m] for m in args.metrics if m in data["metrics"]}
        data["metrics"] = {**first, **data["metrics"]}
    return TrackExperimentOutput(**data)


class ListRunsInput(ToolInput):
    experiment: str | None = Experiment
    limit: int = Field(default=20, ge=1, le=500)


class ListRunsOutput(BaseModel):
    runs: list[dict[str, Any]]


@tool(permission="experiments:read", side_effect="read")
def list_experiment_runs(call: CallContext, args: ListRunsInput) -> ListRunsOutput:
    """List tracked runs (newest first) with their params, latest metrics and tags."""
    runs = _tracker(call).list_runs(args.experiment, limit=args.limit)
    return ListRunsOutput(runs=[r.model_dump() for r in runs])


class GetRunInput(ToolInput):
    run: str = RunRef


class GetRunOutput(BaseModel):
    run: dict[str, Any]
    metric_history: dict[str, list[dict[str, float]]]


@tool(permission="experiments:read", side_effect="read")
def get_experiment_run(call: CallContext, args: GetRunInput) -> GetRunOutput:
    """One run (by name or id): params, tags, and every logged value of every metric by step."""
    tracker = _tracker(call)
    return GetRunOutput(
        run=tracker.get_run(args.run).model_dump(), metric_history=tracker.get_metrics(args.run)
    )


class CompareRunsInput(ToolInput):
    runs: list[str] = Field(min_length=2, max_length=10, description="Run names or ids.")
    metrics: list[str] = Field(default=[], max_length=30)


class CompareRunsOutput(BaseModel):
    comparison: dict[str, Any]


@tool(permission="experiments:read", side_effect="read")
def compare_runs(call: CallContext, args: CompareRunsInput) -> CompareRunsOutput:
    """Compare runs: metric table, which is better per metric, and paired bootstrap intervals when the runs logged per-row predictions on the same rows."""
    params = call.services.thresholds.get("default", {}).get("comparison", {})
    result = _tracker(call).compare(
        args.runs,
        args.metrics or None,
        n_boot=int(params.get("n_boot", 1000)),
        confidence=float(params.get("confidence", 0.95)),
        min_effect=float(params.get("min_effect", 0.0)),
    )
    return CompareRunsOutput(comparison=result.model_dump())
