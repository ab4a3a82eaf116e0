"""Register a succeeded fine-tuning job's model as an *external* LLM model version.

The version records what it was trained on (file ids, dataset digests), the provider's
reported metrics (as claimed, not measured) and honesty metadata; it carries
``model_kind=external_llm``, so the registry, the gates and deployments refuse to load,
evaluate or serve it and say why (``core.registry.external_serving_note``).
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import urlparse

from core.errors import Conflict
from core.finetuning.job import FineTuningJob
from core.honesty import (
    CLAIMED_METRICS_TAG,
    HonestyMetadata,
    HonestyWarning,
    ImplementationStatus,
)
from core.names import validate_name
from core.registry import EXTERNAL_LLM, MODEL_KIND_TAG, ModelRegistry, ModelVersionInfo
from core.tracking import ensure_experiment

EXPERIMENT = "finetuning"


def provider_name(client: Any) -> str:
    """The endpoint's host (``api.openai.com`` by default), never its credentials."""
    base = str(getattr(client, "base_url", "") or os.environ.get("OPENAI_BASE_URL", ""))
    return urlparse(base).netloc or "the OpenAI API"


def default_honesty(metrics: dict[str, float], job_id: str, rows: int | None) -> HonestyMetadata:
    shown = ", ".join(f"{k} {v:.4g}" for k, v in sorted(metrics.items())) or "no metrics"
    return HonestyMetadata(
        implementation_status=ImplementationStatus.IMPLEMENTED,
        accuracy_claim=f"provider-reported at the last checkpoint: {shown}"
        + (f" ({rows} training examples)" if rows else ""),
        validation_method=f"reported by the fine-tuning provider for job {job_id}; not "
        "re-measured by our evaluator (it cannot score an external model)",
        honesty_warning=HonestyWarning.UNVALIDATED,
    )


def register_finetuned(
    registry: ModelRegistry,
    job: FineTuningJob,
    name: str,
    *,
    honesty: HonestyMetadata | None = None,
    description: str = "",
) -> ModelVersionInfo:
    """A new version of ``name`` for the job's fine-tuned model (the job must have succeeded)."""
    from mlflow.exceptions import MlflowException

    validate_name("model", name)
    status = job.status()
    if status.status != "succeeded" or not status.fine_tuned_model:
        raise Conflict(
            f"fine-tuning job {job.id} is {status.status}: only a succeeded job has a model "
            "to register",
            hint=f"Follow it with `agent finetune status {job.id} --wait`.",
        )
    checkpoints = job.checkpoints()
    metrics = checkpoints[-1].metrics if checkpoints else {}
    meta = status.metadata
    rows = (
        int(meta["modelops_dataset_rows"])
        if meta.get("modelops_dataset_rows", "").isdigit()
        else None
    )
    honesty = honesty or default_honesty(metrics, job.id, rows)
    provider = provider_name(job.client)
    tags = {
        MODEL_KIND_TAG: EXTERNAL_LLM,
        "external_provider": provider,
        "external_model_id": status.fine_tuned_model,
        "base_model": status.model,
        "finetune_job_id": job.id,
        "training_file_id": status.training_file,
        **({"validation_file_id": status.validation_file} if status.validation_file else {}),
        **honesty.as_tags(),
    }
    if meta.get("modelops_dataset_digest"):
        tags["dataset_digest"] = meta["modelops_dataset_digest"]
        tags["dataset_name"] = meta.get("modelops_dataset_name", "training")
    client = registry.client
    exp_id = ensure_experiment(client, EXPERIMENT, registry.artifact_root)
    run = client.create_run(exp_id, run_name=f"finetune-{name}")
    run_id = run.info.run_id
    params = {
        "base_model": status.model,
        "job_id": job.id,
        **{f"hp.{k}": str(v) for k, v in status.hyperparameters.items()},
    }
    for key, value in params.items():
        client.log_param(run_id, key, str(value)[:6000])
    for key, value in metrics.items():
        client.log_metric(run_id, f"reported_{key}", float(value), step=checkpoints[-1].step)
    for key, value in tags.items():
        client.set_tag(run_id, key, value)
    client.set_terminated(run_id, "FINISHED")
    logged = client.create_logged_model(
        exp_id,
        name="model",
        source_run_id=run_id,
        model_type=EXTERNAL_LLM,
        tags={MODEL_KIND_TAG: EXTERNAL_LLM},
    )
    client.finalize_logged_model(logged.model_id, "READY")
    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    # The provider's numbers are claims (core.honesty): our evaluator cannot reproduce them.
    tags[CLAIMED_METRICS_TAG] = json.dumps(metrics, sort_keys=True)
    tags["run_id"] = run_id
    mv = client.create_model_version(
        name,
        source=f"models:/{logged.model_id}",
        run_id=run_id,
        tags=tags,
        description=description or f"{status.fine_tuned_model}, fine-tuned from {status.model}",
        model_id=logged.model_id,
    )
    return registry.get(name, mv.version)
