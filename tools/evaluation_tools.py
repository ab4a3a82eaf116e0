"""Evaluation tools: measure a registered version on a dataset; record QA validation verdicts."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from core.errors import InvalidInput
from policies.gates import thresholds_for
from tools.base import ToolInput, tool
from tools.context import CallContext, Services
from tools.registry_tools import VERSION_PATTERN


class EvaluateModelInput(ToolInput):
    name: str = Field(min_length=1, max_length=128)
    version: str = Field(pattern=VERSION_PATTERN)
    dataset: str = Field(
        min_length=1, max_length=1024, description="CSV with feature columns and the target."
    )
    target: str = Field(default="target", min_length=1, max_length=256)


class EvaluateModelOutput(BaseModel):
    name: str
    version: str
    dataset: dict[str, Any]
    n: int
    metrics: dict[str, float]
    unavailable: dict[str, str]
    evaluation_run_id: str | None


def evaluate_version(
    services: Services,
    name: str,
    version: str,
    dataset: str,
    target: str = "target",
    *,
    log_run: bool = True,
) -> EvaluateModelOutput:
    """Load the version (digest-checked), predict on the dataset, compute metrics."""
    import pandas as pd

    from core.evaluation.basic import classification_metrics

    reg = services.registry
    info = reg.get(name, version)
    path = services.resolve_data_path(dataset)
    frame = _read_table(path)
    if target not in frame.columns:
        raise InvalidInput(
            f"target column {target!r} not in {path.name}",
            hint=f"Columns: {', '.join(map(str, frame.columns[:20]))}.",
        )
    model = reg.load_sklearn(info.name, info.version)
    features = list(getattr(model, "feature_names_in_", [c for c in frame.columns if c != target]))
    unknown = [c for c in features if c not in frame.columns]
    if unknown:
        raise InvalidInput(
            f"{path.name} lacks feature columns the model needs: {', '.join(unknown[:10])}"
        )
    X = frame[features]
    bad = X.columns[X.isna().any()].tolist() + ([target] if frame[target].isna().any() else [])
    if bad:
        row = int(frame[bad].isna().any(axis=1).to_numpy().argmax())
        raise InvalidInput(
            f"{path.name} has missing values in {', '.join(map(str, bad[:10]))} (first at row {row + 2})"
        )
    if not all(pd.api.types.is_numeric_dtype(X[c]) for c in features):
        cols = [c for c in features if not pd.api.types.is_numeric_dtype(X[c])]
        raise InvalidInput(f"non-numeric feature columns: {', '.join(cols[:10])}")
    y = frame[target].to_numpy()
    score = (
        model.predict_proba(X)[:, 1]
        if hasattr(model, "predict_proba") and len(set(y)) <= 2
        else None
    )
    res = classification_metrics(y, model.predict(X), score)
    ds = {
        "path": str(path),
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "rows": len(frame),
    }
    run_id = (
        _log_evaluation(services, info.name, info.version, ds, res["metrics"]) if log_run else None
    )
    return EvaluateModelOutput(
        name=info.name,
        version=info.version,
        dataset=ds,
        n=res["n"],
        metrics=res["metrics"],
        unavailable=res["unavailable"],
        evaluation_run_id=run_id,
    )


def _read_table(path: Path) -> Any:
    import pandas as pd

    try:
        return pd.read_csv(path)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot parse {path.name} as CSV: {exc}") from exc


def _log_evaluation(
    services: Services, name: str, version: str, ds: dict[str, Any], metrics: dict[str, float]
) -> str:
    import mlflow

    from core.tracking import ensure_experiment

    exp = ensure_experiment(
        services.registry.client, "modelops-evaluations", services.settings.resolved_artifact_root
    )
    with mlflow.start_run(experiment_id=exp, run_name=f"eval-{name}-v{version}") as run:
        mlflow.set_tags(
            {
                "model_name": name,
                "model_version": version,
                "dataset_sha256": ds["sha256"],
                "dataset_path": Path(ds["path"]).name,
            }
        )
        mlflow.log_metrics(metrics)
    return run.info.run_id


@tool(permission="evaluation:run", side_effect="write")
def evaluate_model(call: CallContext, args: EvaluateModelInput) -> EvaluateModelOutput:
    """Evaluate a registered model version on a CSV dataset (accuracy, precision, recall, F1, AUC-ROC)."""
    return evaluate_version(call.services, args.name, args.version, args.dataset, args.target)


class RecordValidationInput(ToolInput):
    name: str = Field(min_length=1, max_length=128)
    version: str = Field(pattern=r"^[0-9]{1,9}$")
    dataset: str = Field(min_length=1, max_length=1024)
    target: str = Field(default="target", min_length=1, max_length=256)
    notes: str = Field(default="", max_length=2000)


class RecordValidationOutput(BaseModel):
    name: str
    version: str
    verdict: str  # PASSED | FAILED
    reasons: list[str]
    metrics: dict[str, float]
    validated_by: str


@tool(permission="validation:record", side_effect="write")
def record_validation(call: CallContext, args: RecordValidationInput) -> RecordValidationOutput:
    """Re-run the evaluation independently, verify the artifact digest and record a PASSED/FAILED verdict."""
    services = call.services
    ev = evaluate_version(services, args.name, args.version, args.dataset, args.target)
    info = services.registry.get(args.name, args.version)
    status = info.honesty.get("implementation_status", "")
    limits = thresholds_for(services.thresholds, args.name)["minimums"].get(status, {})
    reasons = []
    for metric, floor in limits.items():
        value = ev.metrics.get(metric)
        if value is None:
            reasons.append(f"{metric} unavailable: {ev.unavailable.get(metric, 'not measured')}")
        elif value < floor:
            reasons.append(f"{metric} {value:.4f} below minimum {floor}")
    if not limits:
        reasons.append(f"no validation minimums for implementation_status {status or '(missing)'}")
    verdict = "FAILED" if reasons else "PASSED"
    who = (
        call.actor.name
        if call.actor.on_behalf_of is None
        else f"{call.actor.name} for {call.actor.on_behalf_of}"
    )
    services.registry.set_tags(
        args.name,
        args.version,
        {
            "validation_status": verdict,
            "validated_by": who,
            "validated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "validation_dataset_sha256": ev.dataset["sha256"],
            "validation_summary": "; ".join(reasons)
            or ", ".join(f"{k} {v:.4f}" for k, v in sorted(ev.metrics.items())),
        },
    )
    return RecordValidationOutput(
        name=args.name,
        version=info.version,
        verdict=verdict,
        reasons=reasons,
        metrics=ev.metrics,
        validated_by=who,
    )
