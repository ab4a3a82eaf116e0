"""What every production traffic change checks: an approved request for exactly this artifact,
and what the gateway is told about a version (its honesty labels and its recorded verdict)."""

from __future__ import annotations

from pathlib import PurePath
from typing import TYPE_CHECKING

from core.errors import ApprovalRequired, Conflict, InvalidInput
from policies.approvals import PROMOTE, ApprovalRequest, ApprovalStatus

if TYPE_CHECKING:
    from core.deployment import ServedVersion
    from core.honesty import ServedHonesty
    from core.registry import ModelVersionInfo
    from tools.context import Services


def require_approved(
    services: Services, approval_id: str, info: ModelVersionInfo, *, executed: bool = False
) -> ApprovalRequest:
    """The promotion request, if it approves this model, version and artifact digest.

    ``executed=False``: approved and awaiting execution. ``executed=True``: the executed
    approval a rollout in progress is running (advancing its steps)."""
    req = services.approvals.get(approval_id)
    wanted = ApprovalStatus.EXECUTED if executed else ApprovalStatus.APPROVED
    if req.action != PROMOTE:
        raise ApprovalRequired(f"{req.id} is a {req.action} request, not a promotion")
    if req.status != wanted:
        raise ApprovalRequired(f"{req.id} is {req.status.value}, not {wanted.value}")
    if req.model_name != info.name or req.version != str(info.version):
        raise ApprovalRequired(
            f"{req.id} approves {req.model_name} v{req.version}, not {info.name} v{info.version}"
        )
    if info.artifact_sha256 != req.evidence.get("candidate", {}).get("artifact_sha256"):
        raise Conflict(f"{info.ref} artifact differs from the one approved in {req.id}")
    return req


def served_version(
    services: Services, info: ModelVersionInfo, weight: float = 100.0
) -> ServedVersion:
    """What the gateway needs to load and label a version, from its registry record and
    its latest validation record (never from a tag)."""
    from core.deployment import ServedVersion

    if not info.servable:
        raise InvalidInput(
            f"{info.ref} cannot be deployed: {info.serving_note}",
            hint="External models are served by their provider, not by the gateway.",
        )
    if not info.artifact_sha256:
        raise Conflict(
            f"{info.ref} has no recorded artifact SHA-256; it cannot be served",
            hint="Register models through ModelRegistry or optimize_model so the digest is recorded.",
        )
    labels = served_labels(services, info)
    return ServedVersion(
        version=info.version,
        weight=weight,
        artifact_uri=info.artifact_uri,
        artifact_sha256=info.artifact_sha256,
        implementation_status=info.honesty.get("implementation_status", ""),
        accuracy_claim=labels.accuracy_claim,
        validation_status=labels.validation_status,
    )


def served_labels(services: Services, info: ModelVersionInfo) -> ServedHonesty:
    """``validation_status`` and ``accuracy_claim`` from the latest QA verdict recorded for
    this artifact digest (measured value, dataset, date), the registrant's claim kept beside
    it as claimed. A digest-less version has no verdict to read."""
    from core.honesty import served_honesty
    from tools.evaluation_tools import HEADLINE_METRICS

    claim = info.honesty.get("accuracy_claim", "")
    record = (
        services.validations.latest(info.name, info.version, artifact_sha256=info.artifact_sha256)
        if info.artifact_sha256
        else None
    )
    if record is None:
        return served_honesty(claim, info.claimed_metrics)
    path = record.dataset_path
    # A file's name only: a prediction response never shows a path of the server's disk.
    dataset = path if path.startswith("logged:") else PurePath(path).name
    return served_honesty(
        claim,
        info.claimed_metrics,
        verdict=record.verdict,
        measured=record.metrics,
        headline=HEADLINE_METRICS,
        dataset=dataset,
        date=record.created_at.date().isoformat(),
        reasons=record.reasons,
    )
