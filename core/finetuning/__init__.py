"""LLM fine-tuning through an OpenAI-compatible fine-tuning API (``FineTuningJob``) and
registration of the result as an external, not servable, model version."""

from core.finetuning.job import (
    STATUSES,
    TERMINAL,
    Checkpoint,
    FineTuningJob,
    JobEvent,
    JobStatus,
    endpoint_configured,
    finetuning_client,
)

__all__ = [
    "STATUSES",
    "TERMINAL",
    "Checkpoint",
    "FineTuningJob",
    "JobEvent",
    "JobStatus",
    "endpoint_configured",
    "finetuning_client",
]
