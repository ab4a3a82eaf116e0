"""``FineTuningJob``: an LLM fine-tuning job at an OpenAI-compatible fine-tuning API, through
the ``openai`` client: validate and upload the JSONL files, create the job, poll its real
status, stream its events, list checkpoints, cancel, and register the result.

There is no simulation: without an endpoint (``OPENAI_BASE_URL`` and/or ``OPENAI_API_KEY``)
every call says one is needed and nothing is sent anywhere.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from core.errors import ExternalServiceError, InvalidInput, NotFound

STATUSES = ("validating_files", "queued", "running", "succeeded", "failed", "cancelled")
TERMINAL = ("succeeded", "failed", "cancelled")
ENDPOINT_HINT = (
    "Set OPENAI_BASE_URL to an OpenAI-compatible fine-tuning API and/or OPENAI_API_KEY "
    "(for api.openai.com). Nothing was uploaded or started."
)


class JobStatus(BaseModel):
    id: str
    status: str
    model: str
    fine_tuned_model: str | None
    training_file: str
    validation_file: str | None
    hyperparameters: dict[str, Any]
    trained_tokens: int | None
    error: dict[str, Any] | None
    created_at: int | None
    finished_at: int | None
    result_files: list[str]
    metadata: dict[str, str] = {}

    @property
    def done(self) -> bool:
        return self.status in TERMINAL


class JobEvent(BaseModel):
    id: str
    created_at: int
    level: str
    message: str
    type: str | None = None
    data: dict[str, Any] | None = None


class Checkpoint(BaseModel):
    id: str
    step: int
    fine_tuned_model_checkpoint: str
    metrics: dict[str, float]
    created_at: int | None


def endpoint_configured() -> bool:
    return bool(
        os.environ.get("OPENAI_BASE_URL", "").strip()
        or os.environ.get("OPENAI_API_KEY", "").strip()
    )


def finetuning_client(
    base_url: str | None = None, api_key: str | None = None, *, timeout_s: float = 30.0
) -> Any:
    """An ``openai.OpenAI`` client for the configured endpoint, or ExternalServiceError that
    says an endpoint is needed."""
    base_url = (base_url or os.environ.get("OPENAI_BASE_URL", "")).strip() or None
    api_key = (api_key or os.environ.get("OPENAI_API_KEY", "")).strip() or None
    if base_url is None and api_key is None:
        raise ExternalServiceError(
            "fine-tuning needs an OpenAI-compatible endpoint", hint=ENDPOINT_HINT
        )
    import openai

    # A local server without auth still needs a non-empty key for the client.
    return openai.OpenAI(
        base_url=base_url, api_key=api_key or "not-needed", timeout=timeout_s, max_retries=1
    )


def _check_spec(model: str, suffix: str | None, hyperparameters: dict[str, Any] | None) -> None:
    if not model or len(model) > 200:
        raise InvalidInput("model must name the base model to fine-tune")
    if suffix is not None and (
        len(suffix) > 64 or not suffix.replace("-", "").replace("_", "").isalnum()
    ):
        raise InvalidInput("suffix: at most 64 letters, digits, '-' or '_'")
    allowed_hp = {"n_epochs", "batch_size", "learning_rate_multiplier"}
    extra = set(hyperparameters or {}) - allowed_hp
    if extra:
        raise InvalidInput(
            f"unknown hyperparameters {sorted(extra)}", hint=f"Use {sorted(allowed_hp)}."
        )


def _api_error(exc: Exception, what: str) -> Exception:
    import openai

    if isinstance(exc, openai.NotFoundError):
        return NotFound(f"{what}: not found at the fine-tuning endpoint ({_message(exc)})")
    if isinstance(exc, openai.BadRequestError):
        return InvalidInput(f"{what}: the endpoint refused the request: {_message(exc)}")
    if isinstance(exc, openai.AuthenticationError):
        return ExternalServiceError(f"{what}: authentication failed", hint="Check OPENAI_API_KEY.")
    if isinstance(exc, openai.APIConnectionError):
        return ExternalServiceError(
            f"{what}: cannot reach the fine-tuning endpoint ({exc})",
            hint="Check that OPENAI_BASE_URL is right and the server is running.",
        )
    if isinstance(exc, openai.APIError):
        return ExternalServiceError(f"{what}: {_message(exc)}")
    return exc


def _message(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        return str(body.get("message") or body.get("error", {}).get("message") or exc)
    return str(exc)


def _status(job: Any) -> JobStatus:
    hp = job.hyperparameters.model_dump(exclude_none=True) if job.hyperparameters else {}
    return JobStatus(
        id=job.id,
        status=job.status,
        model=job.model,
        fine_tuned_model=job.fine_tuned_model,
        training_file=job.training_file,
        validation_file=job.validation_file,
        hyperparameters=hp,
        trained_tokens=job.trained_tokens,
        error=job.error.model_dump(exclude_none=True) if job.error else None,
        created_at=job.created_at,
        finished_at=job.finished_at,
        result_files=list(job.result_files or []),
        metadata=dict(getattr(job, "metadata", None) or {}),
    )


class FineTuningJob:
    """One job. ``FineTuningJob.create(path, model=...)`` starts one; ``FineTuningJob(id)``
    attaches to an existing one; ``FineTuningJob(model=..., training_file=...)`` builds a job
    spec here (no network) that ``submit()`` sends, which needs an endpoint."""

    def __init__(
        self,
        job_id: str | None = None,
        *,
        model: str | None = None,
        training_file: str | Path | None = None,
        validation_file: str | Path | None = None,
        hyperparameters: dict[str, Any] | None = None,
        suffix: str | None = None,
        seed: int | None = None,
        client: Any = None,
    ) -> None:
        self.uploaded: dict[str, str] = {}
        self.dataset_reports: dict[str, Any] = {}
        self.spec: dict[str, Any] | None = None
        if job_id is None:
            if model is None:
                raise InvalidInput(
                    "give a job id to attach to, or model=... to build a new job",
                    hint='e.g. FineTuningJob(model="gpt-4o-mini-2024-07-18", '
                    'training_file="train.jsonl")',
                )
            _check_spec(model, suffix, hyperparameters)
            self.id: str | None = None
            self.client = client  # created at submit(): building a spec needs no endpoint
            self.spec = {
                "model": model,
                "training_file": None if training_file is None else str(training_file),
                "validation_file": None if validation_file is None else str(validation_file),
                "hyperparameters": dict(hyperparameters or {}),
                "suffix": suffix,
                "seed": seed,
            }
            return
        if (
            not job_id
            or len(job_id) > 200
            or not job_id.replace("-", "").replace("_", "").replace(":", "").isalnum()
        ):
            raise InvalidInput(f"invalid fine-tuning job id {job_id[:60]!r}")
        self.id = job_id
        self.client = client or finetuning_client()

    def submit(self) -> FineTuningJob:
        """Validate, upload and create the job this spec describes (an endpoint is needed:
        without one, ExternalServiceError says so and nothing is sent)."""
        if self.spec is None or self.id is not None:
            raise InvalidInput(f"fine-tuning job {self.id} was already submitted")
        spec = dict(self.spec)
        if spec["training_file"] is None:
            raise InvalidInput(
                "this job spec has no training_file", hint="Build it with training_file=PATH."
            )
        job = FineTuningJob.create(spec.pop("training_file"), client=self.client, **spec)
        self.id, self.client = job.id, job.client
        self.uploaded, self.dataset_reports = job.uploaded, job.dataset_reports
        return self

    def _submitted(self) -> str:
        if self.id is None:
            raise InvalidInput(
                "this fine-tuning job is a spec that was not submitted yet",
                hint="Call job.submit() (it needs OPENAI_BASE_URL and/or OPENAI_API_KEY).",
            )
        return self.id

    @classmethod
    def create(
        cls,
        training_file: str | Path,
        *,
        model: str,
        validation_file: str | Path | None = None,
        hyperparameters: dict[str, Any] | None = None,
        suffix: str | None = None,
        seed: int | None = None,
        client: Any = None,
    ) -> FineTuningJob:
        """Validate both files (every bad line is reported and nothing is uploaded), upload
        them (purpose ``fine-tune``) and create the job."""
        from core.datasets import Dataset

        client = client or finetuning_client()
        _check_spec(model, suffix, hyperparameters)
        files = {"training": Path(training_file)}
        if validation_file is not None:
            files["validation"] = Path(validation_file)
        reports = {}
        for role, path in files.items():
            ds = Dataset.from_jsonl(path)
            reports[role] = ds.require_valid()
        uploaded = {}
        for role, path in files.items():
            try:
                with path.open("rb") as fh:
                    uploaded[role] = client.files.create(
                        file=(path.name, fh), purpose="fine-tune"
                    ).id
            except Exception as exc:
                raise _api_error(exc, f"uploading {path.name}") from exc
        kwargs: dict[str, Any] = {"model": model, "training_file": uploaded["training"]}
        if "validation" in uploaded:
            kwargs["validation_file"] = uploaded["validation"]
        if hyperparameters:
            kwargs["hyperparameters"] = hyperparameters
        if suffix:
            kwargs["suffix"] = suffix
        if seed is not None:
            kwargs["seed"] = seed
        # What it is trained on travels with the job, so registration can record it later.
        train = reports["training"]
        kwargs["metadata"] = {
            "modelops_dataset_digest": train.digest,
            "modelops_dataset_name": train.name,
            "modelops_dataset_rows": str(train.rows),
        }
        try:
            job = client.fine_tuning.jobs.create(**kwargs)
        except Exception as exc:
            raise _api_error(exc, "creating the fine-tuning job") from exc
        out = cls(job.id, client=client)
        out.uploaded = uploaded
        out.dataset_reports = reports
        return out

    def status(self) -> JobStatus:
        job_id = self._submitted()
        try:
            return _status(self.client.fine_tuning.jobs.retrieve(job_id))
        except Exception as exc:
            raise _api_error(exc, f"fine-tuning job {self.id}") from exc

    def events(self, *, limit: int = 100) -> list[JobEvent]:
        """The job's events, oldest first (the API lists newest first)."""
        job_id = self._submitted()
        try:
            page = self.client.fine_tuning.jobs.list_events(job_id, limit=limit)
        except Exception as exc:
            raise _api_error(exc, f"events of {self.id}") from exc
        events = [
            JobEvent(
                id=e.id,
                created_at=e.created_at,
                level=e.level,
                message=e.message,
                type=getattr(e, "type", None),
                data=getattr(e, "data", None)
                if isinstance(getattr(e, "data", None), dict)
                else None,
            )
            for e in page.data
        ]
        return sorted(events, key=lambda e: (e.created_at, e.id))

    def checkpoints(self) -> list[Checkpoint]:
        job_id = self._submitted()
        try:
            page = self.client.fine_tuning.jobs.checkpoints.list(job_id)
        except Exception as exc:
            raise _api_error(exc, f"checkpoints of {self.id}") from exc
        return sorted(
            (
                Checkpoint(
                    id=c.id,
                    step=c.step_number,
                    fine_tuned_model_checkpoint=c.fine_tuned_model_checkpoint,
                    metrics={
                        k: float(v) for k, v in c.metrics.model_dump(exclude_none=True).items()
                    },
                    created_at=c.created_at,
                )
                for c in page.data
            ),
            key=lambda c: c.step,
        )

    def cancel(self) -> JobStatus:
        job_id = self._submitted()
        try:
            return _status(self.client.fine_tuning.jobs.cancel(job_id))
        except Exception as exc:
            raise _api_error(exc, f"cancelling {self.id}") from exc

    def wait(
        self,
        *,
        on_event: Callable[[JobEvent], None] | None = None,
        on_status: Callable[[JobStatus], None] | None = None,
        poll_s: float = 5.0,
        timeout_s: float = 3600.0,
    ) -> JobStatus:
        """Poll until the job ends (succeeded, failed or cancelled), passing each new event
        and each status change to the callbacks; ExternalServiceError after ``timeout_s``."""
        seen: set[str] = set()
        last = None
        deadline = time.monotonic() + timeout_s
        while True:
            st = self.status()
            if on_event is not None:
                for ev in self.events():
                    if ev.id not in seen:
                        seen.add(ev.id)
                        on_event(ev)
            if on_status is not None and st.status != last:
                on_status(st)
            last = st.status
            if st.done:
                return st
            if time.monotonic() >= deadline:
                raise ExternalServiceError(
                    f"fine-tuning job {self.id} is still {st.status} after {timeout_s:g} s",
                    hint=f"It keeps running; check it later with `agent finetune status {self.id}`.",
                )
            time.sleep(poll_s)
