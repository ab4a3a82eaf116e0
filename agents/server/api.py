"""REST: who am I, models, evaluations and approvals. Each route calls the same tool the CLI
command does, as the token's person, and returns the tool's output unchanged (so the CLI in
server mode renders exactly what it renders embedded)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from agents.server.auth import Principal
from agents.server.deps import IDEMPOTENCY_HEADER, control_plane, principal
from agents.server.plane import ControlPlane
from agents.server.responses import READ_ERRORS, WRITE_ERRORS, ErrorDetail
from core.names import NAME_PATTERN
from tools.evaluation_tools import GetEvaluationOutput
from tools.promotion_tools import (
    APPROVAL_ID,
    ApprovalOutput,
    ListApprovalsOutput,
    ValidateApprovalOutput,
)
from tools.registry_tools import VERSION_PATTERN, GetModelOutput, ListModelsOutput

router = APIRouter()
# A body field never names the acting person: unknown fields are refused, not ignored.
_STRICT = ConfigDict(extra="forbid")
NAME = f"^{NAME_PATTERN}$"
ApprovalStatusName = Literal["pending", "approved", "rejected", "expired", "executed", "superseded"]


class WhoAmI(BaseModel):
    name: str
    kind: str
    role: str
    identity: str
    authenticated: bool
    approver: bool
    admin: bool
    token_id: str
    token_expires_at: str
    permissions: list[str]
    policy_digest: str


@router.get("/whoami", response_model=WhoAmI, responses=READ_ERRORS, tags=["identity"])
async def whoami(
    p: Principal = Depends(principal), cp: ControlPlane = Depends(control_plane)
) -> dict[str, Any]:
    """The token's person, role and effective permissions under the policy in force."""
    policy = cp.services.policy
    return {
        "name": p.actor.name,
        "kind": p.actor.kind.value,
        "role": p.actor.role,
        "identity": p.actor.identity,
        "authenticated": p.actor.authenticated,
        "approver": p.actor.name in policy.approvers(),
        "admin": policy.is_admin(p.actor.name),
        "token_id": p.token_id,
        "token_expires_at": p.token_expires_at,
        "permissions": sorted(policy.permissions(p.actor)),
        "policy_digest": cp.services.policy_digest,
    }


# Models ----------------------------------------------------------------------------------
class AliasMove(BaseModel):
    alias: str
    version: str
    at: str
    by: str
    approval_id: str | None
    cause: str


class ModelShow(GetModelOutput):
    alias_history: list[AliasMove] = Field(
        description="Where the aliases pointed over time, oldest first (champion mirrors "
        "production revisions; challenger moves are read from the audit log)."
    )


@router.get("/models", response_model=ListModelsOutput, responses=READ_ERRORS, tags=["models"])
async def list_models(
    p: Principal = Depends(principal), cp: ControlPlane = Depends(control_plane)
) -> dict[str, Any]:
    """Registered models with their latest version and aliases (the list_models tool)."""
    return await cp.lookup(cp.tool, p, "list_models")


@router.get("/models/{name}", response_model=ModelShow, responses=READ_ERRORS, tags=["models"])
async def show_model(
    name: str = Path(pattern=NAME, max_length=128),
    version: str | None = Query(None, pattern=VERSION_PATTERN),
    p: Principal = Depends(principal),
    cp: ControlPlane = Depends(control_plane),
) -> dict[str, Any]:
    """A model's versions (or one version or alias) with honesty, lineage, aliases and the
    alias history."""

    def show() -> dict[str, Any]:
        args = {"name": name, **({"version": version} if version else {})}
        return {**cp.tool(p, "get_model", args), "alias_history": cp.alias_history(p, name)}

    return await cp.read(show)


# Evaluations -----------------------------------------------------------------------------
@router.get(
    "/evaluations/{evaluation_id}",
    response_model=GetEvaluationOutput,
    responses=READ_ERRORS,
    tags=["evaluations"],
)
async def show_evaluation(
    evaluation_id: str = Path(pattern=r"^[0-9a-f]{32}$"),
    p: Principal = Depends(principal),
    cp: ControlPlane = Depends(control_plane),
) -> dict[str, Any]:
    """A stored evaluation report: JSON, Markdown and the names of its plots."""
    return await cp.read(cp.tool, p, "get_evaluation", {"evaluation_id": evaluation_id})


# Approvals -------------------------------------------------------------------------------
APPROVAL_PATH = Path(pattern=APPROVAL_ID, description="An approval request id (apr-…).")


class DecisionBody(BaseModel):
    model_config = _STRICT
    evidence_hash: str = Field(
        pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 of the evidence you reviewed (GET /approvals/{id}).",
    )
    reason: str = Field(default="", max_length=2000, description="Kept in the audit log.")


class AuditHeadOut(BaseModel):
    seq: int
    hash: str


class ExecutionRef(BaseModel):
    approval_id: str
    state: str
    status_url: str


class DecisionOutput(BaseModel):
    approval: dict[str, Any] = Field(description="The decided request (without its evidence).")
    audit_head: AuditHeadOut | None = Field(
        default=None,
        description="The audit head right after the decision was recorded: keep it to check "
        "the log later with `agent audit verify --anchor SEQ:HASH`.",
    )
    execution: ExecutionRef | None = Field(
        default=None,
        description="The job that runs what follows the decision (the promotion's executor, "
        "an approved rollback): poll `status_url` for its steps and outcome.",
    )
    outcome: dict[str, Any] | None = Field(
        default=None,
        description="Always null here: the outcome is the job's (see `execution`).",
    )
    outcome_error: ErrorDetail | None = Field(
        default=None, description="Always null here: a failure is the job's (see `execution`)."
    )


class ExecutionStep(BaseModel):
    at: str
    step: str
    detail: dict[str, Any]


class ExecutionOutput(BaseModel):
    approval_id: str
    state: Literal["queued", "running", "done", "failed"]
    steps: list[ExecutionStep]
    outcome: dict[str, Any] | None = Field(description="What `agent approvals approve` prints.")
    error: dict[str, Any] | None
    decided_by: str
    created_at: str | None
    updated_at: str | None
    started_at: str | None
    finished_at: str | None
    resumed: bool = Field(description="This read resumed a job a crashed process left.")
    status_url: str


@router.get(
    "/approvals", response_model=ListApprovalsOutput, responses=READ_ERRORS, tags=["approvals"]
)
async def list_approvals(
    status: ApprovalStatusName | None = None,
    p: Principal = Depends(principal),
    cp: ControlPlane = Depends(control_plane),
) -> dict[str, Any]:
    """Approval requests, newest first (optionally with one status)."""
    return await cp.read(cp.tool, p, "list_approvals", {"status": status} if status else {})


@router.get(
    "/approvals/{approval_id}",
    response_model=ApprovalOutput,
    responses=READ_ERRORS,
    tags=["approvals"],
)
async def show_approval(
    approval_id: str = APPROVAL_PATH,
    p: Principal = Depends(principal),
    cp: ControlPlane = Depends(control_plane),
) -> dict[str, Any]:
    """One request with the full evidence and its evidence hash."""
    return await cp.lookup(cp.tool, p, "get_approval", {"approval_id": approval_id})


@router.post(
    "/approvals/{approval_id}/validate",
    response_model=ValidateApprovalOutput,
    responses=WRITE_ERRORS,
    tags=["approvals"],
)
async def validate_approval(
    approval_id: str = APPROVAL_PATH,
    idempotency_key: str | None = IDEMPOTENCY_HEADER,
    p: Principal = Depends(principal),
    cp: ControlPlane = Depends(control_plane),
) -> Any:
    """As a human QATester (not the requester): re-evaluate a pending promotion; the
    verdict joins its evidence (new evidence hash)."""
    args = {"approval_id": approval_id}
    return await run_in_threadpool(
        cp.idempotent,
        p,
        idempotency_key,
        "validate",
        args,
        lambda: cp.tool(p, "validate_approval", args),
    )


def _decide(
    cp: ControlPlane,
    p: Principal,
    approval_id: str,
    approve: bool,
    body: DecisionBody,
    key: str | None,
) -> Any:
    payload = {"approval_id": approval_id, "approve": approve, **body.model_dump()}
    return run_in_threadpool(
        cp.idempotent,
        p,
        key,
        "decide",
        payload,
        lambda: cp.decide(
            p, approval_id, approve=approve, evidence_hash=body.evidence_hash, reason=body.reason
        ),
        accepted=True,
    )


@router.post(
    "/approvals/{approval_id}/approve",
    response_model=DecisionOutput,
    status_code=202,
    responses=WRITE_ERRORS,
    tags=["approvals"],
)
async def approve(
    body: DecisionBody,
    approval_id: str = APPROVAL_PATH,
    idempotency_key: str | None = IDEMPOTENCY_HEADER,
    p: Principal = Depends(principal),
    cp: ControlPlane = Depends(control_plane),
) -> Any:
    """Approve a pending request on exactly the evidence you reviewed (listed approvers,
    never the requester). Answered once the decision is recorded (202); the promotion then
    runs its approved plan, once, as a job: follow it at `execution.status_url`."""
    return await _decide(cp, p, approval_id, True, body, idempotency_key)


@router.post(
    "/approvals/{approval_id}/reject",
    response_model=DecisionOutput,
    status_code=202,
    responses=WRITE_ERRORS,
    tags=["approvals"],
)
async def reject(
    body: DecisionBody,
    approval_id: str = APPROVAL_PATH,
    idempotency_key: str | None = IDEMPOTENCY_HEADER,
    p: Principal = Depends(principal),
    cp: ControlPlane = Depends(control_plane),
) -> Any:
    """Reject a pending request, with a reason for the audit log."""
    return await _decide(cp, p, approval_id, False, body, idempotency_key)


@router.get(
    "/approvals/{approval_id}/execution",
    response_model=ExecutionOutput,
    responses=READ_ERRORS,
    tags=["approvals"],
)
async def execution(
    approval_id: str = APPROVAL_PATH,
    p: Principal = Depends(principal),
    cp: ControlPlane = Depends(control_plane),
) -> dict[str, Any]:
    """The execution that follows a decision: its state, its steps so far (in order) and,
    once done, its outcome. A job a crashed server left unfinished is resumed here."""
    return await cp.lookup(cp.execution, p, approval_id)


@router.post(
    "/approvals/{approval_id}/resume",
    response_model=dict[str, Any],
    responses=WRITE_ERRORS,
    tags=["approvals"],
)
async def resume(
    approval_id: str = APPROVAL_PATH,
    idempotency_key: str | None = IDEMPOTENCY_HEADER,
    p: Principal = Depends(principal),
    cp: ControlPlane = Depends(control_plane),
) -> Any:
    """Finish a decided promotion whose run was interrupted (needs deploy:production;
    deploys at most once)."""
    return await run_in_threadpool(
        cp.idempotent,
        p,
        idempotency_key,
        "resume",
        {"approval_id": approval_id},
        lambda: cp.resume(p, approval_id),
    )
