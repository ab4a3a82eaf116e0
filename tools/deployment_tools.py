"""Deployment tools: status, rollback and predictions through the running gateway."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from core.errors import ExternalServiceError, InvalidInput, NotFound
from tools.base import ToolInput, tool
from tools.context import CallContext, Services


class DeploymentInput(ToolInput):
    name: str = Field(min_length=1, max_length=128)


class DeploymentOutput(BaseModel):
    name: str
    live_versions: list[str]
    revision: int | None
    strategy: str | None
    gateway: dict[str, Any]
    health: dict[str, Any] | None
    history: list[dict[str, Any]]


def gateway_health(url: str) -> dict[str, Any]:
    import httpx

    try:
        r = httpx.get(f"{url}/health", timeout=3.0)
    except httpx.HTTPError as exc:
        return {"status": "unreachable", "error": str(exc)}
    return r.json()


@tool(permission="deploy:read", side_effect="read")
def get_deployment(call: CallContext, args: DeploymentInput) -> DeploymentOutput:
    """Show a model's deployment: live versions, routing revision history and gateway health."""
    st = call.services.deployments.status(args.name)
    gw = st.gateway
    health = gateway_health(gw["url"]) if gw.get("running") else None
    return DeploymentOutput(
        name=st.model_name,
        live_versions=st.revision.live_versions if st.revision else [],
        revision=st.revision.revision if st.revision else None,
        strategy=st.revision.strategy if st.revision else None,
        gateway=gw,
        health=health,
        history=[
            {
                "revision": r.revision,
                "action": r.action,
                "versions": r.live_versions,
                "actor": r.actor,
                "approval_id": r.approval_id,
                "reason": r.reason,
                "at": r.created_at,
            }
            for r in st.history
        ],
    )


class RollbackInput(DeploymentInput):
    to_version: str | None = Field(
        default=None,
        pattern=r"^[0-9]{1,9}$",
        description="Earlier deployed version; omit for the previous one.",
    )
    reason: str = Field(default="", max_length=2000)


class RollbackOutput(BaseModel):
    name: str
    revision: int
    live_versions: list[str]


@tool(permission="deploy:rollback", side_effect="write")
def rollback_deployment(call: CallContext, args: RollbackInput) -> RollbackOutput:
    """Roll a deployment back to an earlier deployed (hence approved) version, atomically."""
    services = call.services
    rev = services.deployments.rollback(
        args.name, actor=call.actor.describe(), to_version=args.to_version, reason=args.reason
    )
    # Keep the champion alias on what production serves.
    services.registry.set_alias(args.name, "champion", rev.live_versions[0])
    return RollbackOutput(name=args.name, revision=rev.revision, live_versions=rev.live_versions)


class PredictInput(ToolInput):
    name: str = Field(min_length=1, max_length=128)
    features: list[float] | list[list[float]] = Field(
        description="One row of features, or a batch of rows."
    )


class PredictOutput(BaseModel):
    response: dict[str, Any]


def gateway_url(services: Services, name: str) -> str:
    info = services.deployments.gateway_info(name)
    if not info.get("running"):
        raise NotFound(f"no running gateway for {name}", hint="See `agent deploy status`.")
    return info["url"]


@tool(permission="serving:predict", side_effect="external")
def predict(call: CallContext, args: PredictInput) -> PredictOutput:
    """Ask the model's live gateway for a prediction; the answer carries honesty labels."""
    import httpx

    url = gateway_url(call.services, args.name)
    try:
        r = httpx.post(f"{url}/predict", json={"features": args.features}, timeout=10.0)
    except httpx.HTTPError as exc:
        raise ExternalServiceError(f"gateway {url} did not answer: {exc}") from exc
    if r.status_code in (400, 413, 422):
        raise InvalidInput(r.json().get("error", r.text))
    if r.status_code != 200:
        raise ExternalServiceError(f"gateway answered HTTP {r.status_code}: {r.text[:300]}")
    return PredictOutput(response=r.json())
