"""REST: deployments (status, rollout advance/abort, rollback), audit (verify, trail) and the
named workflows (list, run). Same tools, same person-from-token rule as api.py."""

from __future__ import annotations

import re
from typing import Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from agents.server.auth import Principal
from agents.server.deps import IDEMPOTENCY_HEADER, control_plane, principal
from agents.server.plane import WORKFLOWS, ControlPlane
from agents.server.responses import READ_ERRORS, WRITE_ERRORS, ApiError
from core.deployment import Environment
from core.names import NAME_PATTERN
from policies.audit_check import AuditCheck
from tools.deployment_tools import (
    DeploymentOutput,
    ListDeploymentsOutput,
    RollbackOutput,
    RolloutOutput,
)
from tools.monitoring_tools import ReportOutput

router = APIRouter()
# A body field never names the acting person: unknown fields are refused, not ignored.
_STRICT = ConfigDict(extra="forbid")
NAME = f"^{NAME_PATTERN}$"
_ANCHOR = re.compile(r"^([0-9]{1,12}):([0-9a-f]{64})$")
MODEL_PATH = Path(pattern=NAME, max_length=128, description="A model name.")


# Deployments -----------------------------------------------------------------------------
@router.get(
    "/deployments",
    response_model=ListDeploymentsOutput,
    responses=READ_ERRORS,
    tags=["deployments"],
)
async def list_deployments(
    environment: Environment | None = None,
    p: Principal = Depends(principal),
    cp: ControlPlane = Depends(control_plane),
) -> dict[str, Any]:
    """Names of the models that have a deployment (optionally on one environment)."""
    return await cp.lookup(
        cp.tool, p, "list_deployments", {"environment": environment} if environment else {}
    )


@router.get(
    "/deployments/{name}",
    response_model=DeploymentOutput,
    responses=READ_ERRORS,
    tags=["deployments"],
)
async def deployment_status(
    name: str = MODEL_PATH,
    environment: Environment = "production",
    p: Principal = Depends(principal),
    cp: ControlPlane = Depends(control_plane),
) -> dict[str, Any]:
    """Live versions and weights, rollout in progress, revision history, gateway health."""
    return await cp.read(cp.tool, p, "get_deployment", {"name": name, "environment": environment})


class AdvanceBody(BaseModel):
    model_config = _STRICT
    environment: Environment = "production"
    max_error_rate: float = Field(default=0.01, ge=0, le=1)
    min_requests: int | None = Field(default=None, ge=0, le=10_000_000)
    wait_seconds: float = Field(default=10.0, ge=0, le=300)
    reason: str = Field(default="", max_length=2000)


class AbortBody(BaseModel):
    model_config = _STRICT
    environment: Environment = "production"
    reason: str = Field(default="", max_length=2000)


class RollbackBody(BaseModel):
    model_config = _STRICT
    environment: Environment = "production"
    to_version: str | None = Field(default=None, pattern=r"^[0-9]{1,9}$")
    reason: str = Field(default="", max_length=2000)


def _act(cp: ControlPlane, p: Principal, key: str | None, tool: str, args: dict[str, Any]) -> Any:
    return run_in_threadpool(cp.idempotent, p, key, tool, args, lambda: cp.tool(p, tool, args))


@router.post(
    "/deployments/{name}/rollout/advance",
    response_model=RolloutOutput,
    responses=WRITE_ERRORS,
    tags=["deployments"],
)
async def advance_rollout(
    body: AdvanceBody,
    name: str = MODEL_PATH,
    idempotency_key: str | None = IDEMPOTENCY_HEADER,
    p: Principal = Depends(principal),
    cp: ControlPlane = Depends(control_plane),
) -> Any:
    """Health-check the current rollout step on the gateway, then take the next step."""
    args = {"name": name, **body.model_dump(exclude_none=True)}
    return await _act(cp, p, idempotency_key, "advance_rollout", args)


@router.post(
    "/deployments/{name}/rollout/abort",
    response_model=RolloutOutput,
    responses=WRITE_ERRORS,
    tags=["deployments"],
)
async def abort_rollout(
    body: AbortBody,
    name: str = MODEL_PATH,
    idempotency_key: str | None = IDEMPOTENCY_HEADER,
    p: Principal = Depends(principal),
    cp: ControlPlane = Depends(control_plane),
) -> Any:
    """Put back the routes the rollout started from, in one revision."""
    return await _act(cp, p, idempotency_key, "abort_rollout", {"name": name, **body.model_dump()})


@router.post(
    "/deployments/{name}/rollback",
    response_model=RollbackOutput,
    responses=WRITE_ERRORS,
    tags=["deployments"],
)
async def rollback(
    body: RollbackBody,
    name: str = MODEL_PATH,
    idempotency_key: str | None = IDEMPOTENCY_HEADER,
    p: Principal = Depends(principal),
    cp: ControlPlane = Depends(control_plane),
) -> Any:
    """Route all traffic back to an earlier deployed version (people with deploy:rollback;
    agents request a rollback instead)."""
    args = {"name": name, **body.model_dump(exclude_none=True)}
    return await _act(cp, p, idempotency_key, "rollback_deployment", args)


# Audit -----------------------------------------------------------------------------------
# Monitoring ------------------------------------------------------------------------------
@router.get(
    "/models/{name}/monitoring",
    response_model=ReportOutput,
    responses=READ_ERRORS,
    tags=["monitoring"],
)
async def monitoring_report(
    name: str = MODEL_PATH,
    version: str | None = Query(
        None, pattern=r"^(?:[0-9]{1,9}|champion|challenger)$", description="Default: live."
    ),
    environment: Environment = "production",
    window_minutes: float | None = Query(None, gt=0, le=7 * 24 * 60),
    p: Principal = Depends(principal),
    cp: ControlPlane = Depends(control_plane),
) -> dict[str, Any]:
    """The monitoring report `agent monitor report NAME --json` prints: drift, estimated
    (HEURISTIC) and realized performance, SLOs and alerts, over the window."""
    return await cp.read(
        cp.tool, p, "monitor_report", monitoring_args(name, version, environment, window_minutes)
    )


def monitoring_args(
    name: str, version: str | None, environment: str, window_minutes: float | None
) -> dict[str, Any]:
    ref = (
        name
        if version is None
        else f"{name}/{version}"
        if version.isdigit()
        else f"{name}@{version}"
    )
    args: dict[str, Any] = {"model_id": ref, "environment": environment}
    if window_minutes is not None:
        args["window_minutes"] = window_minutes
    return args


@router.get("/audit/verify", response_model=AuditCheck, responses=READ_ERRORS, tags=["audit"])
async def audit_verify(
    anchor: str | None = Query(
        None,
        max_length=80,
        description="SEQ:HASH of a head recorded earlier; it must still be in the chain.",
    ),
    p: Principal = Depends(principal),
    cp: ControlPlane = Depends(control_plane),
) -> dict[str, Any]:
    """Check every entry's hash and link, their order from seq 1, and the head."""
    parsed = None
    if anchor is not None:
        m = _ANCHOR.match(anchor.strip())
        if not m:
            raise ApiError(
                422, "invalid_input", f"anchor {anchor!r} is not SEQ:HASH", "e.g. 42:3f2a…(64 hex)"
            )
        parsed = (int(m[1]), m[2])
    return await cp.read(cp.audit_verify, p, parsed)


class Trail(BaseModel):
    model: str
    version: str
    chain: dict[str, Any]
    approvals: list[dict[str, Any]]
    events: list[dict[str, Any]]


@router.get(
    "/audit/trail/{name}/{version}", response_model=Trail, responses=READ_ERRORS, tags=["audit"]
)
async def audit_trail(
    name: str = MODEL_PATH,
    version: str = Path(pattern=r"^[0-9]{1,9}$"),
    include_reads: bool = Query(False, alias="all", description="Also list reads."),
    p: Principal = Depends(principal),
    cp: ControlPlane = Depends(control_plane),
) -> dict[str, Any]:
    """Who registered, evaluated, validated, approved and deployed NAME VERSION, in order."""
    return await cp.read(cp.audit_trail, p, name, version, include_reads)


# Workflows -------------------------------------------------------------------------------
class WorkflowInfo(BaseModel):
    name: str
    description: str


class WorkflowList(BaseModel):
    workflows: list[WorkflowInfo]


class WorkflowRun(BaseModel):
    model_config = _STRICT
    input: dict[str, Any] = Field(description="The workflow's input, as `agent workflow run`.")


@router.get("/workflows", response_model=WorkflowList, responses=READ_ERRORS, tags=["workflows"])
async def list_workflows(p: Principal = Depends(principal)) -> dict[str, Any]:
    """The named workflows and what they do."""
    return {"workflows": [{"name": n, "description": d} for n, d in WORKFLOWS.items()]}


@router.post(
    "/workflows/{name}/run",
    response_model=dict[str, Any],
    responses=WRITE_ERRORS,
    tags=["workflows"],
)
async def run_workflow(
    body: WorkflowRun,
    name: Literal["ml-model-evaluation", "promotion", "mlops-deployment"] = Path(),
    idempotency_key: str | None = IDEMPOTENCY_HEADER,
    p: Principal = Depends(principal),
    cp: ControlPlane = Depends(control_plane),
) -> Any:
    """Run a named workflow as you (through the same dispatcher and policies as agents);
    a promotion stops at its human approval."""
    return await run_in_threadpool(
        cp.idempotent,
        p,
        idempotency_key,
        f"workflow:{name}",
        body.input,
        lambda: cp.run_workflow(p, name, body.input),
    )
