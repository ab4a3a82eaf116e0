"""QA validation: re-run the evaluation independently and record a PASSED/FAILED verdict.

The verdict is computed here from the tool's own re-evaluation, never taken from a caller. It
is stored as a fact in the state DB (policies.validations) tied to the artifact digest, the
dataset digest and the evaluation run; MLflow tags only mirror it for the UI.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from policies.gates import limits_for_task, metric_checks
from policies.validations import ValidationRecord
from tools.base import ToolInput, tool
from tools.context import CallContext, Services
from tools.evaluation_tools import HEADLINE_METRICS, evaluate_version
from tools.registry_tools import VERSION_PATTERN  # noqa: F401  (re-exported for callers)


class RecordValidationInput(ToolInput):
    renamed_fields = {"target": "label_column"}
    name: str = Field(min_length=1, max_length=128)
    version: str = Field(pattern=r"^[0-9]{1,9}$")
    dataset: str = Field(min_length=1, max_length=1024)
    label_column: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="The label column; omit for the one recorded on the version (else target).",
    )
    notes: str = Field(default="", max_length=2000)


class RecordValidationOutput(BaseModel):
    name: str
    version: str
    verdict: str  # PASSED | FAILED
    reasons: list[str]
    metrics: dict[str, float]
    validated_by: str
    method: str
    validation_id: str
    evaluation_id: str | None
    dataset_sha256: str
    artifact_sha256: str


def validate_version(
    services: Services,
    actor: Any,
    name: str,
    version: str,
    dataset: str,
    label_column: str | None,
    *,
    approval_id: str | None = None,
) -> ValidationRecord:
    """Re-evaluate, apply the policy's minimums and the champion comparison, store the verdict."""
    info = services.registry.get(name, version)
    ev = evaluate_version(services, info.name, info.version, dataset, label_column)
    status = info.honesty.get("implementation_status", "")
    # The same bounds as the promotion gates, for the version's task (one writer: gates).
    limits = limits_for_task(services.thresholds, info.name, ev.task)
    checks = metric_checks(limits, status, ev.metrics, ev.unavailable)
    reasons = [c.message for c in checks if not c.passed]
    if not checks:
        reasons.append(f"no validation minimums for implementation_status {status or '(missing)'}")
    if ev.comparison and ev.comparison["verdict"] == "worse":
        reasons.append(f"worse than champion v{ev.champion_version}: {ev.comparison['reason']}")
    record = services.validations.record(
        actor,
        model_name=info.name,
        version=info.version,
        artifact_sha256=info.artifact_sha256 or "",
        dataset_sha256=ev.dataset["sha256"],
        dataset_path=str(ev.dataset.get("path", dataset)),
        evaluation_id=ev.evaluation_id,
        verdict="FAILED" if reasons else "PASSED",
        reasons=reasons,
        metrics=ev.metrics,
        approval_id=approval_id,
    )
    # A mirror for MLflow's UI; nothing reads these tags back as proof.
    services.registry.set_tags(
        info.name,
        info.version,
        {
            "validation_status": record.verdict,
            "validated_by": record.validator
            + (f" for {record.on_behalf_of}" if record.on_behalf_of else ""),
            "validated_at": record.created_at.isoformat(timespec="seconds"),
            "validation_id": record.id,
            "validation_dataset_sha256": record.dataset_sha256,
            "validation_evaluation_id": record.evaluation_id,
            "validation_summary": summary(record),
        },
    )
    return record


def summary(record: ValidationRecord) -> str:
    return "; ".join(record.reasons) or ", ".join(
        f"{k} {record.metrics[k]:.4f}" for k in HEADLINE_METRICS if k in record.metrics
    )


def _output(record: ValidationRecord) -> RecordValidationOutput:
    return RecordValidationOutput(
        name=record.model_name,
        version=record.version,
        verdict=record.verdict,
        reasons=record.reasons,
        metrics=record.metrics,
        validated_by=record.validator
        + (f" for {record.on_behalf_of}" if record.on_behalf_of else ""),
        method=record.method,
        validation_id=record.id,
        evaluation_id=record.evaluation_id or None,
        dataset_sha256=record.dataset_sha256,
        artifact_sha256=record.artifact_sha256,
    )


@tool(permission="validation:record", side_effect="write")
def record_validation(call: CallContext, args: RecordValidationInput) -> RecordValidationOutput:
    """Re-run the evaluation independently, verify the artifact digest and record a PASSED/FAILED verdict."""
    record = validate_version(
        call.services, call.actor, args.name, args.version, args.dataset, args.label_column
    )
    return _output(record)


@tool(permission="validation:automated", side_effect="write", internal=True)
def automated_validation(call: CallContext, args: RecordValidationInput) -> RecordValidationOutput:
    """The promotion workflow's automated QA: the same re-evaluation, under the workflow principal."""
    record = validate_version(
        call.services, call.actor, args.name, args.version, args.dataset, args.label_column
    )
    return _output(record)


class ListValidationsInput(ToolInput):
    name: str = Field(min_length=1, max_length=128)
    version: str = Field(pattern=r"^[0-9]{1,9}$")


class ListValidationsOutput(BaseModel):
    validations: list[dict[str, Any]]


@tool(permission="evaluation:read", side_effect="read")
def list_validations(call: CallContext, args: ListValidationsInput) -> ListValidationsOutput:
    """List the QA validation verdicts on record for one model version, newest first (read-only)."""
    records = call.services.validations.for_version(args.name, args.version)
    return ListValidationsOutput(
        validations=[
            {**_output(r).model_dump(), "at": r.created_at.isoformat(timespec="seconds")}
            for r in reversed(records)
        ]
    )
