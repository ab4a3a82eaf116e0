"""Fine-tuning tools: start a job at an OpenAI-compatible fine-tuning API (files validated
first), follow it, cancel it, and register its model as an external (not servable) version.
Without an endpoint each says one is needed; nothing is simulated."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from core.names import ModelName
from tools.base import ToolInput, tool
from tools.context import CallContext

JobId = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9:_-]+$")


class CreateFinetuneInput(ToolInput):
    training_file: str = Field(
        min_length=1, max_length=1024, description="Chat or prompt/completion JSONL."
    )
    validation_file: str | None = Field(default=None, min_length=1, max_length=1024)
    model: str = Field(min_length=1, max_length=200, description="Base model to fine-tune.")
    n_epochs: int | None = Field(default=None, ge=1, le=50)
    batch_size: int | None = Field(default=None, ge=1, le=256)
    learning_rate_multiplier: float | None = Field(default=None, gt=0, le=100)
    suffix: str | None = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    seed: int | None = Field(default=None, ge=0)


class FinetuneJobOutput(BaseModel):
    job: dict[str, Any]
    uploaded_files: dict[str, str] = {}
    datasets: dict[str, dict[str, Any]] = {}
    events: list[dict[str, Any]] = []
    checkpoints: list[dict[str, Any]] = []


@tool(permission="finetune:run", side_effect="external")
def create_finetune_job(call: CallContext, args: CreateFinetuneInput) -> FinetuneJobOutput:
    """Validate and upload a JSONL training file (and validation file), then create a fine-tuning job at the configured OpenAI-compatible endpoint."""
    from core.finetuning import FineTuningJob, finetuning_client

    services = call.services
    train = services.resolve_data_path(args.training_file)
    valid = services.resolve_data_path(args.validation_file) if args.validation_file else None
    hp = {
        k: v
        for k, v in {
            "n_epochs": args.n_epochs,
            "batch_size": args.batch_size,
            "learning_rate_multiplier": args.learning_rate_multiplier,
        }.items()
        if v is not None
    }
    job = FineTuningJob.create(
        train,
        model=args.model,
        validation_file=valid,
        hyperparameters=hp or None,
        suffix=args.suffix,
        seed=args.seed,
        client=finetuning_client(),
    )
    return FinetuneJobOutput(
        job=job.status().model_dump(),
        uploaded_files=job.uploaded,
        datasets={
            k: {"rows": r.rows, "digest": r.digest, "length_method": r.length_method}
            for k, r in job.dataset_reports.items()
        },
    )


class FinetuneJobInput(ToolInput):
    job_id: str = JobId


@tool(permission="finetune:read", side_effect="read")
def get_finetune_job(call: CallContext, args: FinetuneJobInput) -> FinetuneJobOutput:
    """A fine-tuning job's real status, its events (oldest first) and its checkpoints with metrics."""
    from core.finetuning import FineTuningJob

    job = FineTuningJob(args.job_id)
    status = job.status()
    return FinetuneJobOutput(
        job=status.model_dump(),
        events=[e.model_dump() for e in job.events()],
        checkpoints=[c.model_dump() for c in job.checkpoints()],
    )


@tool(permission="finetune:run", side_effect="external")
def cancel_finetune_job(call: CallContext, args: FinetuneJobInput) -> FinetuneJobOutput:
    """Cancel a fine-tuning job that has not finished."""
    from core.finetuning import FineTuningJob

    return FinetuneJobOutput(job=FineTuningJob(args.job_id).cancel().model_dump())


class RegisterFinetunedInput(ToolInput):
    name: ModelName
    job_id: str = JobId
    description: str = Field(default="", max_length=2000)


class RegisterFinetunedOutput(BaseModel):
    name: str
    version: str
    external_model_id: str
    servable: bool
    serving_note: str
    honesty: dict[str, str]
    claimed_metrics: dict[str, float]


@tool(permission="registry:write", side_effect="write")
def register_finetuned_model(
    call: CallContext, args: RegisterFinetunedInput
) -> RegisterFinetunedOutput:
    """Register a succeeded fine-tuning job's model as an external LLM version (provider-reported metrics stored as claimed; not servable by our gateway)."""
    from core.finetuning import FineTuningJob
    from core.finetuning.register import register_finetuned

    info = register_finetuned(
        call.services.registry,
        FineTuningJob(args.job_id),
        args.name,
        description=args.description,
    )
    return RegisterFinetunedOutput(
        name=info.name,
        version=info.version,
        external_model_id=info.tags.get("external_model_id", ""),
        servable=info.servable,
        serving_note=info.serving_note,
        honesty=info.honesty,
        claimed_metrics=info.claimed_metrics,
    )
