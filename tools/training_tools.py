"""Training tools: reference models on bundled data, logged as MLflow runs (experiment tracking)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from tools.base import ToolInput, tool
from tools.context import CallContext


class TrainReferenceInput(ToolInput):
    dataset: Literal["breast_cancer"] = Field(
        default="breast_cancer", description="A dataset bundled with scikit-learn (no download)."
    )
    run_prefix: str = Field(
        default="reference", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$"
    )


class TrainReferenceOutput(BaseModel):
    train_rows: int
    holdout_rows: int
    holdout_path: str
    runs: list[dict[str, Any]]


@tool(permission="experiments:write", side_effect="write")
def train_reference_models(call: CallContext, args: TrainReferenceInput) -> TrainReferenceOutput:
    """Train a baseline (logistic regression) and a candidate (random forest) on scikit-learn's breast cancer data and log both MLflow runs with honesty metadata."""
    from core.training import load_breast_cancer_split, train_quickstart_models, write_holdout_csv

    services = call.services
    data = load_breast_cancer_split()
    holdout = write_holdout_csv(
        data, services.settings.home_dir / "data" / "breast_cancer_holdout.csv"
    )
    runs = []
    for t in train_quickstart_models(data):
        run_id = services.registry.log_sklearn_run(
            t.model,
            X_sample=data.train[data.feature_names].head(5),
            honesty=t.honesty,
            run_name=f"{args.run_prefix}-{t.kind}",
            params=t.params,
            metrics={f"holdout_{k}": v for k, v in t.holdout_metrics.items()},
            dataset=data.train,
            dataset_name="breast_cancer_train",
            eval_datasets={"holdout": data.holdout},
        )
        runs.append(
            {
                "kind": t.kind,
                "run_id": run_id,
                "holdout_metrics": t.holdout_metrics,
                "honesty": t.honesty.model_dump(mode="json"),
            }
        )
    return TrainReferenceOutput(
        train_rows=len(data.train),
        holdout_rows=len(data.holdout),
        holdout_path=str(holdout),
        runs=runs,
    )
