"""What every production traffic change checks: an approved request for exactly this artifact."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.errors import ApprovalRequired, Conflict
from policies.approvals import ApprovalRequest, ApprovalStatus

if TYPE_CHECKING:
    from core.deployment import ServedVersion
    from core.registry import ModelVersionInfo
    from tools.context import Services


def require_approved(
    services: Services, approval_id: str, info: ModelVersionInfo
) -> ApprovalRequest:
    """The approval request, if it is approved for this model, version and artifact digest."""
    req = services.approvals.get(approval_id)
    if req.status != ApprovalStatus.APPROVED:
        raise ApprovalRequired(f"{req.id} is {req.status.value}, not approved")
    if req.model_name != info.name or req.version != str(info.version):
        raise ApprovalRequired(
            f"{req.id} approves {req.model_name} v{req.version}, not {info.name} v{info.version}"
        )
    if info.artifact_sha256 != req.evidence.get("candidate", {}).get("artifact_sha256"):
        raise Conflict(f"{info.ref} artifact differs from the one approved in {req.id}")
    return req


def served_version(info: ModelVersionInfo, weight: float = 100.0) -> ServedVersion:
    """What the gateway needs to load and label a version, from its registry record."""
    from core.deployment import ServedVersion

    if not info.artifact_sha256:
        raise Conflict(
            f"{info.ref} has no recorded artifact SHA-256; it cannot be served",
            hint="Register models through ModelRegistry or optimize_model so the digest is recorded.",
        )
    tags = info.tags
    return ServedVersion(
        version=info.version,
        weight=weight,
        artifact_uri=info.artifact_uri,
        artifact_sha256=info.artifact_sha256,
        implementation_status=tags.get("implementation_status", ""),
        accuracy_claim=tags.get("accuracy_claim", ""),
        validation_status=tags.get("validation_status", ""),
    )
