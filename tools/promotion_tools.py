"""Promotion tools: evidence, approval requests (promotions and rollbacks), human decisions,
human QA on a request, and the approved executor.

No tool here sets the champion alias or routes traffic unless an approval request for that
exact model version has been approved by a listed human (tools.executor does the moving).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from core.errors import Conflict, GateFailed, ModelOpsError
from core.names import VERSION_OR_LABEL_PATTERN, ModelName, is_version_label
from policies.approvals import PROMOTE, ROLLBACK, ApprovalStatus
from policies.gates import check_promotion
from tools.base import ToolInput, tool
from tools.context import CallContext, Services
from tools.evaluation_tools import evaluate_version
from tools.executor import PRODUCTION, execute_promotion, plan_conflict
from tools.validation_tools import summary, validate_version

APPROVAL_ID = r"^apr-[0-9a-f]{8}$"


class RolloutPlan(BaseModel):
    """What an approver approves and the executor runs: all at once, or canary steps with
    their health criteria, or a blue-green switch."""

    strategy: Literal["direct", "canary", "blue-green"] = "direct"
    steps: list[float] | None = Field(
        default=None, min_length=1, max_length=20, description="Canary: every step's share."
    )
    max_error_rate: float = Field(default=0.01, ge=0, le=1)
    min_requests_per_step: int | None = Field(
        default=None, ge=0, description="Default: the policy's rollout.min_requests_per_step."
    )

    @model_validator(mode="after")
    def _steps(self) -> RolloutPlan:
        from core.serving.rollout import plan_steps

        if self.strategy == "canary":
            self.steps = plan_steps("canary", self.steps, None)
        elif self.steps is not None:
            raise ValueError(f"{self.strategy} takes no steps")
        return self

    def describe(self) -> str:
        if self.strategy == "canary":
            return "canary " + " → ".join(f"{s:g}%" for s in self.steps or [])
        return self.strategy


def validation_evidence(record: Any) -> dict[str, Any]:
    return {
        "id": record.id,
        "verdict": record.verdict,
        "method": record.method,
        "validator": record.validator,
        "validator_kind": record.validator_kind,
        "on_behalf_of": record.on_behalf_of,
        "identity": "token" if record.authenticated else "claimed",
        "dataset_sha256": record.dataset_sha256,
        "artifact_sha256": record.artifact_sha256,
        "evaluation_id": record.evaluation_id,
        "summary": summary(record),
        "statement": record.describe(),
        "at": record.created_at.isoformat(timespec="seconds"),
    }


def _design_reviews(
    services: Services, name: str, version: str, requester: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The candidate's design reviews (tools.design_tools) shown to the approver, and apart
    from them the self-reviews: by the requester or by whoever registered the version."""
    from tools.authorship import registered_by, split_reviews
    from tools.design_tools import design_reviews

    authors = {requester, *registered_by(services, name, version)} - {""}
    return split_reviews(design_reviews(services, name, version), authors)


def build_evidence(
    services: Services,
    name: str,
    version: str,
    dataset: str,
    label_column: str | None,
    *,
    requester: str,
) -> dict[str, Any]:
    """What an approver reviews: the candidate, its metrics, the champion's on the same data,
    the QA verdict on record for this artifact and dataset, the design reviews (a review by
    ``requester`` or the version's registrant is a self-review, kept apart) and the gates."""
    reg = services.registry
    info = reg.get(name, version)
    ev = evaluate_version(services, info.name, info.version, dataset, label_column, log_run=False)
    champion = None
    if ev.champion_version:
        champion = {"version": ev.champion_version, "comparison": ev.comparison}
    record = services.validations.latest(
        info.name,
        info.version,
        artifact_sha256=info.artifact_sha256 or "",
        dataset_sha256=ev.dataset["sha256"],
    )
    reviews, self_reviews = _design_reviews(services, info.name, info.version, requester)
    evidence = {
        "candidate": {
            "name": info.name,
            "version": info.version,
            "task": ev.task,  # picks the gates' thresholds (policies.gates.limits_for_task)
            "honesty": info.honesty,
            "artifact_sha256": info.artifact_sha256,
            "lineage": info.lineage,
            "servable": info.servable,
            "serving_note": info.serving_note,
        },
        "dataset": ev.dataset,  # with the label column the evaluation used
        "metrics": ev.metrics,
        "unavailable": ev.unavailable,
        "champion": champion,
        "validation": validation_evidence(record) if record else None,
        "design_reviews": reviews,
        "self_reviews": self_reviews,
        "policy_digest": services.policy_digest,
    }
    evidence["gates"] = check_promotion(evidence, services.thresholds).model_dump()
    return evidence


class PromotionInput(ToolInput):
    renamed_fields = {"target": "label_column"}
    name: ModelName
    version: str = Field(
        pattern=VERSION_OR_LABEL_PATTERN,
        description="The registry version (3) or the semantic label it was registered with (2.1.0).",
    )
    dataset: str = Field(
        min_length=1, max_length=1024, description="Held-out CSV the evidence is measured on."
    )
    label_column: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="The label column; omit for the one recorded on the version (else target).",
    )


def registry_version(services: Services, args: Any) -> Any:
    """``args`` with a semantic version label (2.1.0) replaced by its registry version, so
    the evidence, the request and the approval all name the one version number."""
    label = args.version[1:] if args.version.startswith("v") else args.version
    if not is_version_label(label):
        return args
    info = services.registry_reader.get(args.name, label)
    return args.model_copy(update={"version": str(info.version)})


class RequestPromotionInput(PromotionInput):
    plan: RolloutPlan = Field(
        default_factory=RolloutPlan, description="The rollout the approver approves."
    )


class EvidenceOutput(BaseModel):
    evidence: dict[str, Any]


@tool(permission="evaluation:run", side_effect="read")
def collect_promotion_evidence(call: CallContext, args: PromotionInput) -> EvidenceOutput:
    """Gather a promotion's evidence (metrics, champion comparison, honesty, QA verdict, gates) without changing anything."""
    args = registry_version(call.services, args)
    return EvidenceOutput(
        evidence=build_evidence(
            call.services,
            args.name,
            args.version,
            args.dataset,
            args.label_column,
            requester=call.actor.responsible_human,
        )
    )


class RequestPromotionOutput(BaseModel):
    status: str  # pending_approval | pending_validation | blocked
    thread_id: str
    approval_id: str | None = None
    message: str
    gates: list[dict[str, Any]] = []
    approve_command: str | None = None
    show_command: str | None = None
    validate_command: str | None = None
    log: list[str] = []


@tool(permission="promotion:request", side_effect="write")
def request_promotion(call: CallContext, args: RequestPromotionInput) -> RequestPromotionOutput:
    """Start the production promotion workflow for a version with a rollout plan; it stops at a human approval."""
    args = registry_version(call.services, args)
    runner = call.services.promotion_runner
    if runner is None:
        raise ModelOpsError(
            "the promotion workflow is not wired into this context",
            hint="Run promotions through the `agent` CLI or agents.runtime.",
        )
    # A plan the executor could not run now is refused here, before a person approves it.
    conflict = plan_conflict(call.services, args.name, args.version, args.plan.model_dump())
    if conflict is not None:
        raise conflict
    return RequestPromotionOutput(
        **runner(
            call.actor,
            args.name,
            args.version,
            args.dataset,
            args.label_column,
            args.plan.model_dump(),
        )
    )


class OpenApprovalInput(RequestPromotionInput):
    thread_id: str = Field(min_length=1, max_length=128)
    requester: str = Field(min_length=1, max_length=128)
    requested_via: str | None = Field(default=None, max_length=128)


class OpenApprovalOutput(BaseModel):
    approval_id: str
    evidence_hash: str
    expires_at: str
    approvers: list[str]
    awaiting_human_validation: bool


@tool(permission="promotion:open", side_effect="write", internal=True)
def open_approval_request(call: CallContext, args: OpenApprovalInput) -> OpenApprovalOutput:
    """Open a pending approval request once the gates pass and a PASSED validation is on record for this artifact and dataset."""
    services = call.services
    evidence = build_evidence(
        services,
        args.name,
        args.version,
        args.dataset,
        args.label_column,
        requester=args.requester,
    )
    gates = evidence["gates"]
    if not gates["passed"]:
        failed = "; ".join(c["message"] for c in gates["checks"] if not c["passed"])
        raise GateFailed(f"promotion of {args.name} v{args.version} blocked: {failed}")
    val = evidence["validation"]
    if not val or val["verdict"] != "PASSED":
        raise GateFailed(
            f"{args.name} v{args.version} has no PASSED validation on record for this artifact "
            f"and dataset (latest: {val['verdict'] if val else 'none'})",
            hint="The promotion workflow's QA step records one; see `agent approvals list`.",
        )
    requester = services.policy.human(args.requester, authenticated=call.actor.authenticated)
    req = services.approvals.create(
        args.name,
        args.version,
        evidence,
        requester,
        action=PROMOTE,
        plan=args.plan.model_dump(),
        policy_digest=services.policy_digest,
        thread_id=args.thread_id,
        via=args.requested_via,
    )
    approvers = [a for a in services.policy.approvers() if a != req.requested_by]
    return OpenApprovalOutput(
        approval_id=req.id,
        evidence_hash=req.evidence_hash,
        expires_at=req.expires_at.isoformat(),
        approvers=approvers,
        awaiting_human_validation=services.policy.validation.require_human,
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


class AuditHeadView(BaseModel):
    seq: int
    hash: str


class DecisionToolOutput(ApprovalOutput):
    # The audit head right after the decision's row committed (it includes that row): the
    # decider keeps it to check the log later with `agent audit verify --anchor SEQ:HASH`.
    audit_head: AuditHeadView | None = None


@tool(permission="approvals:decide", side_effect="write")
def decide_approval(call: CallContext, args: DecideApprovalInput) -> DecisionToolOutput:
    """Approve or reject a pending request (listed human approvers only, never the requester)."""
    services = call.services

    def can_run(req: Any) -> None:
        # Routes may have changed since the request (a rollout started): approving a plan
        # that cannot run would spend the approval on a certain failure. It stays pending.
        if req.action == PROMOTE:
            conflict = plan_conflict(services, req.model_name, req.version, req.plan)
            if conflict is not None:
                raise conflict

    req = services.approvals.decide(
        args.approval_id,
        call.actor,
        approve=args.approve,
        seen_evidence_hash=args.evidence_hash,
        reason=args.reason,
        can_run=can_run,
    )
    head = call.services.audit.head()
    return DecisionToolOutput(
        approval=req.model_dump(mode="json", exclude={"evidence"}),
        audit_head=None if head is None else AuditHeadView(**head),
    )


class ValidateApprovalOutput(BaseModel):
    approval_id: str
    verdict: str
    validation_id: str
    evidence_hash: str
    statement: str


@tool(permission="validation:record", side_effect="write")
def validate_approval(call: CallContext, args: ApprovalIdInput) -> ValidateApprovalOutput:
    """A human QATester (not the requester) re-evaluates a pending promotion on its dataset; the verdict joins its evidence."""
    services = call.services
    req = services.approvals.get(args.approval_id)
    if req.action != PROMOTE:
        raise Conflict(f"{req.id} is a {req.action} request; only promotions are validated")
    if req.status != ApprovalStatus.PENDING:
        raise Conflict(f"{req.id} is {req.status.value}; only pending requests take a validation")
    if call.actor.name == req.requested_by:
        raise Conflict(f"{call.actor.name} requested {req.id} and cannot validate it")
    ds = req.evidence["dataset"]
    record = validate_version(
        services,
        call.actor,
        req.model_name,
        req.version,
        ds["path"],
        ds.get("label_column") or ds.get("target", "target"),  # older evidence: "target"
        approval_id=req.id,
    )
    if record.dataset_sha256 != ds["sha256"]:
        raise Conflict(f"the dataset of {req.id} changed since it was requested")
    updated = services.approvals.attach_human_validation(
        req.id, call.actor, validation_evidence(record)
    )
    return ValidateApprovalOutput(
        approval_id=req.id,
        verdict=record.verdict,
        validation_id=record.id,
        evidence_hash=updated.evidence_hash,
        statement=record.describe(),
    )


class PromoteOutput(BaseModel):
    approval_id: str
    name: str
    version: str
    revision: int
    strategy: str
    rollout_id: int | None = None
    already_executed: bool
    gateway_url: str | None
    serving: bool
    serving_problems: list[str]
    champion: str | None


@tool(permission="deploy:production", side_effect="write")
def promote_model(call: CallContext, args: ApprovalIdInput) -> PromoteOutput:
    """Execute an approved promotion's plan exactly once (a re-run is a no-op while it is live)."""
    return PromoteOutput(**execute_promotion(call.services, call.actor, args.approval_id))


class RequestRollbackInput(ToolInput):
    name: ModelName
    to_version: str | None = Field(
        default=None, pattern=r"^[0-9]{1,9}$", description="Default: the previous version."
    )
    reason: str = Field(min_length=1, max_length=2000)


class RequestRollbackOutput(BaseModel):
    approval_id: str
    name: str
    to_version: str
    evidence_hash: str
    expires_at: str
    approvers: list[str]
    show_command: str
    already_requested: bool = False


@tool(permission="rollback:request", side_effect="write")
def request_rollback(call: CallContext, args: RequestRollbackInput) -> RequestRollbackOutput:
    """Ask a listed human to approve rolling production back (agents request; people decide)."""
    services = call.services
    deployments = services.deployments
    current = deployments.current(args.name, PRODUCTION)
    if current is None:
        raise Conflict(f"{args.name} has no production deployment to roll back")
    version = deployments.rollback_choice(
        args.name, to_version=args.to_version, environment=PRODUCTION
    )
    approvers = services.policy.approvers()
    for open_req in services.approvals.list(ApprovalStatus.PENDING, model_name=args.name):
        # The same rollback already waits for a person: point at it rather than ask twice.
        if open_req.action == ROLLBACK and open_req.version == version:
            return RequestRollbackOutput(
                approval_id=open_req.id,
                name=args.name,
                to_version=version,
                evidence_hash=open_req.evidence_hash,
                expires_at=open_req.expires_at.isoformat(),
                approvers=[a for a in approvers if a != open_req.requested_by],
                show_command=f"agent approvals show {open_req.id}",
                already_requested=True,
            )
    earlier = services.approvals.executed_for(args.name, version)
    evidence = {
        "rollback": {
            "name": args.name,
            "from_versions": current.live_versions,
            "from_revision": current.revision,
            "to_version": version,
            "returns_to_approval": earlier[0].id if earlier else None,
            "reason": args.reason,
        },
        "policy_digest": services.policy_digest,
    }
    req = services.approvals.create(
        args.name,
        version,
        evidence,
        call.actor,
        action=ROLLBACK,
        plan={"strategy": "rollback", "to_version": version},
        policy_digest=services.policy_digest,
    )
    return RequestRollbackOutput(
        approval_id=req.id,
        name=args.name,
        to_version=version,
        evidence_hash=req.evidence_hash,
        expires_at=req.expires_at.isoformat(),
        approvers=[a for a in services.policy.approvers() if a != req.requested_by],
        show_command=f"agent approvals show {req.id}",
    )
