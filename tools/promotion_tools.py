"""Promotion tools: evidence, approval requests, human decisions and the approved executor.

No tool here sets the champion alias or routes traffic unless an approval request for that
exact model version has been approved by a listed human.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from core.errors import GateFailed, ModelOpsError
from policies.approvals import ApprovalStatus
from policies.gates import check_promotion
from tools.approved import require_approved, served_version
from tools.base import ToolInput, tool
from tools.context import CallContext, Services
from tools.evaluation_tools import evaluate_version

APPROVAL_ID = r"^apr-[0-9a-f]{8}$"


def build_evidence(
    services: Services, name: str, version: str, dataset: str, target: str
) -> dict[str, Any]:
    """What an approver reviews: the candidate, its metrics, the champion's on the same data, QA's verdict."""
    reg = services.registry
    info = reg.get(name, version)
    ev = evaluate_version(services, info.name, info.version, dataset, target, log_run=False)
    champion = None
    if ev.champion_version:
        champion = {"version": ev.champion_version, "comparison": ev.comparison}
    tags = info.tags
    evidence = {
        "candidate": {
            "name": info.name,
            "version": info.version,
            "honesty": info.honesty,
            "artifact_sha256": info.artifact_sha256,
            "lineage": info.lineage,
        },
        "dataset": {**ev.dataset, "target": target},
        "metrics": ev.metrics,
        "unavailable": ev.unavailable,
        "champion": champion,
        "validation": {
            k: tags.get(k, "")
            for k in (
                "validation_status",
                "validated_by",
                "validated_at",
                "validation_dataset_sha256",
                "validation_summary",
            )
        },
    }
    evidence["gates"] = check_promotion(evidence, services.thresholds).model_dump()
    return evidence


class PromotionInput(ToolInput):
    name: str = Field(min_length=1, max_length=128)
    version: str = Field(pattern=r"^[0-9]{1,9}$")
    dataset: str = Field(
        min_length=1, max_length=1024, description="Held-out CSV the evidence is measured on."
    )
    target: str = Field(default="target", min_length=1, max_length=256)


class EvidenceOutput(BaseModel):
    evidence: dict[str, Any]


@tool(permission="evaluation:run", side_effect="read")
def collect_promotion_evidence(call: CallContext, args: PromotionInput) -> EvidenceOutput:
    """Gather a promotion's evidence (metrics, champion comparison, honesty, QA verdict, gates) without changing anything."""
    return EvidenceOutput(
        evidence=build_evidence(call.services, args.name, args.version, args.dataset, args.target)
    )


class RequestPromotionOutput(BaseModel):
    status: str  # pending_approval | blocked
    thread_id: str
    approval_id: str | None = None
    message: str
    gates: list[dict[str, Any]] = []
    approve_command: str | None = None
    log: list[str] = []


@tool(permission="promotion:request", side_effect="write")
def request_promotion(call: CallContext, args: PromotionInput) -> RequestPromotionOutput:
    """Start the production promotion workflow for a version; it stops at a human approval."""
    runner = call.services.promotion_runner
    if runner is None:
        raise ModelOpsError(
            "the promotion workflow is not wired into this context",
            hint="Run promotions through the `agent` CLI or agents.runtime.",
        )
    return RequestPromotionOutput(
        **runner(call.actor, args.name, args.version, args.dataset, args.target)
    )


class OpenApprovalInput(PromotionInput):
    thread_id: str = Field(min_length=1, max_length=128)


class OpenApprovalOutput(BaseModel):
    approval_id: str
    evidence_hash: str
    expires_at: str
    approvers: list[str]


@tool(permission="promotion:request", side_effect="write")
def open_approval_request(call: CallContext, args: OpenApprovalInput) -> OpenApprovalOutput:
    """Open a pending approval request once the gates pass and QA's verdict on this dataset is PASSED."""
    services = call.services
    evidence = build_evidence(services, args.name, args.version, args.dataset, args.target)
    gates = evidence["gates"]
    if not gates["passed"]:
        failed = "; ".join(c["message"] for c in gates["checks"] if not c["passed"])
        raise GateFailed(f"promotion of {args.name} v{args.version} blocked: {failed}")
    val = evidence["validation"]
    if (
        val["validation_status"] != "PASSED"
        or val["validation_dataset_sha256"] != evidence["dataset"]["sha256"]
    ):
        raise GateFailed(
            f"{args.name} v{args.version} has no PASSED QATester validation on this dataset "
            f"(status: {val['validation_status'] or 'none'})",
            hint="A qa-tester must run record_validation on the same dataset first.",
        )
    req = services.approvals.create(
        args.name, args.version, evidence, call.actor, thread_id=args.thread_id
    )
    approvers = [a for a in services.policy.approvers() if a != req.requested_by]
    return OpenApprovalOutput(
        approval_id=req.id,
        evidence_hash=req.evidence_hash,
        expires_at=req.expires_at.isoformat(),
        approvers=approvers,
    )


class ListApprovalsInput(ToolInput):
    status: ApprovalStatus | None = None


class ListApprovalsOutput(BaseModel):
    approvals: list[dict[str, Any]]


@tool(permission="approvals:read", side_effect="read")
def list_approvals(call: CallContext, args: ListApprovalsInput) -> ListApprovalsOutput:
    """List approval requests, optionally only those with a given status."""
    reqs = call.services.approvals.list(args.status)
    return ListApprovalsOutput(
        approvals=[r.model_dump(mode="json", exclude={"evidence"}) for r in reqs]
    )


class ApprovalIdInput(ToolInput):
    approval_id: str = Field(pattern=APPROVAL_ID)


class ApprovalOutput(BaseModel):
    approval: dict[str, Any]


@tool(permission="approvals:read", side_effect="read")
def get_approval(call: CallContext, args: ApprovalIdInput) -> ApprovalOutput:
    """Show one approval request with its full evidence and evidence hash."""
    return ApprovalOutput(
        approval=call.services.approvals.get(args.approval_id).model_dump(mode="json")
    )


class DecideApprovalInput(ApprovalIdInput):
    approve: bool
    evidence_hash: str = Field(
        pattern=r"^[0-9a-f]{64}$", description="Hash of the evidence the decider reviewed."
    )
    reason: str = Field(default="", max_length=2000)


@tool(permission="approvals:decide", side_effect="write")
def decide_approval(call: CallContext, args: DecideApprovalInput) -> ApprovalOutput:
    """Approve or reject a pending promotion (listed human approvers only, never the requester)."""
    req = call.services.approvals.decide(
        args.approval_id,
        call.actor,
        approve=args.approve,
        seen_evidence_hash=args.evidence_hash,
        reason=args.reason,
    )
    return ApprovalOutput(approval=req.model_dump(mode="json", exclude={"evidence"}))


class PromoteOutput(BaseModel):
    approval_id: str
    name: str
    version: str
    revision: int
    gateway_url: str | None


@tool(permission="deploy:production", side_effect="write")
def promote_model(call: CallContext, args: ApprovalIdInput) -> PromoteOutput:
    """Execute an approved promotion: champion alias, deployment, decision tags. Safe to re-run."""
    services = call.services
    reg = services.registry
    req = services.approvals.get(args.approval_id)
    info = reg.get(req.model_name, req.version)
    require_approved(services, req.id, info)
    served = served_version(info)
    # Each step is idempotent on the approval id, so a crashed run can simply run again.
    reg.set_alias(info.name, "champion", info.version)
    rev = services.deployments.deploy(
        info.name,
        served,
        actor=call.actor.describe(),
        approval_id=req.id,
        reason=f"approved by {req.decided_by}",
    )
    reg.set_tags(
        info.name,
        info.version,
        {
            "approval_id": req.id,
            "approved_by": req.decided_by or "",
            "approval_status": req.status.value,
            "approved_at": req.decided_at.isoformat() if req.decided_at else "",
            "evidence_hash": req.evidence_hash,
            "deployed_revision": str(rev.revision),
            "promoted_at": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    )
    s = services.settings
    gw = services.deployments.ensure_gateway(info.name, host=s.gateway_host, port=s.gateway_port)
    return PromoteOutput(
        approval_id=req.id,
        name=info.name,
        version=info.version,
        revision=rev.revision,
        gateway_url=gw.get("url"),
    )
