"""A pending approval as data for a client that cannot decide it (the chat endpoint, an MCP
client): its id, state, evidence hash, who may decide, and where a person reviews it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tools.context import Services


def pending_view(services: Services, approval_id: str, base_url: str) -> dict[str, Any]:
    """The request as stored (never as a tool result said it), with console and API links
    under ``base_url`` (the control plane people open)."""
    req = services.approvals.get(approval_id)
    policy = services.policy
    approvers = [a for a in policy.approvers() if a != req.requested_by]
    human = req.evidence.get("human_validation") or {}
    needs_qa = policy.validation.require_human and human.get("verdict") != "PASSED"
    base = base_url.rstrip("/")
    return {
        "approval_id": req.id,
        "status": req.status.value,
        "action": req.action,
        "model": req.model_name,
        "version": req.version,
        "requested_by": req.requested_by,
        "evidence_hash": req.evidence_hash,
        "expires_at": req.expires_at.isoformat(),
        "waits_for": approvers,
        "needs_human_validation": needs_qa,
        "console_url": f"{base}/console/approvals/{req.id}",
        "api_url": f"{base}/approvals/{req.id}",
    }
