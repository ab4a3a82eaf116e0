"""Deployment tools: status, rollouts (canary, blue-green, shadow), rollback, predictions and
Kubernetes manifests.

Production traffic (environment ``production``) moves to a version only with an approved promotion
request for exactly that version and artifact; rollback to an earlier deployed version and
aborting a rollout need no approval. Staging takes any registered version.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from core.deployment import PRODUCTION_ENVIRONMENTS, Environment
from core.errors import (
    ApprovalRequired,
    Conflict,
    ExternalServiceError,
    GateFailed,
    InvalidInput,
    NotFound,
)
from core.names import ModelName
from core.serving.rollout import rollout_of_revision
from policies.rbac import ActorKind
from tools.approved import require_approved, served_version
from tools.base import ToolInput, tool
from tools.context import CallContext, Services
from tools.deployment_health import live_serving
from tools.executor import complete_rollout, execute_promotion, rollback_production

APPROVAL_ID = r"^apr-[0-9a-f]{8}$"
PRODUCTION_PERMISSION = "deploy:production"


def production_needs(args: Any) -> str | None:
    """``also_requires`` of a tool whose ``environment`` may be production: moving production
    traffic needs deploy:production, which the dispatcher checks before the tool runs."""
    return PRODUCTION_PERMISSION if args.environment in PRODUCTION_ENVIRONMENTS else None


class DeploymentInput(ToolInput):
    renamed_fields = {"target": "environment"}
    name: str = Field(min_length=1, max_length=128)
    environment: Environment = "production"


class DeploymentOutput(BaseModel):
    name: str
    environment: str
    live_versions: list[str]
    weights: dict[str, float]
    shadow_versions: list[str]
    standby_versions: list[str]
    revision: int | None
    strategy: str | None
    rollout: dict[str, Any] | None
    gateway: dict[str, Any]
    health: dict[str, Any] | None
    history: list[dict[str, Any]]
    # Per live version: its traffic share, what the gateway's /health says of it, and its
    # server outcomes in the prediction log over the monitoring window (edge refusals apart).
    serving: list[dict[str, Any]] = []
    # Every rollout of this deployment, newest first (a step revision's approval is its
    # rollout's: see history[].approval_id and history[].rollout_id).
    rollouts: list[dict[str, Any]] = []


def gateway_health(url: str) -> dict[str, Any]:
    # urllib, not httpx: `agent deploy status` is a read command, and httpx alone costs
    # ~0.1 s to import (benchmarks/cli.py). A 503 still carries the gateway's JSON.
    import json
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/health", timeout=3.0) as r:  # noqa: S310 - our URL
            return json.loads(r.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return json.loads(exc.read())
    except (OSError, TimeoutError) as exc:  # URLError is an OSError
        return {"status": "unreachable", "error": str(exc)}


@tool(permission="deploy:read", side_effect="read")
def get_deployment(call: CallContext, args: DeploymentInput) -> DeploymentOutput:
    """Show a model's deployment: live versions and weights, rollout in progress, revision history and gateway health."""
    deployments = call.services.deployments
    st = deployments.status(args.name, args.environment)
    gw = st.gateway
    health = gateway_health(gw["url"]) if gw.get("running") else None
    rev = st.revision
    rollout = deployments.rollouts.active(args.name, args.environment)
    rollouts = deployments.rollouts.history(args.name, args.environment)
    approval_of = {r.id: r.approval_id for r in rollouts}
    history = []
    for r in st.history:
        rollout_id = rollout_of_revision(r.action, r.reason)
        history.append(
            {
                "revision": r.revision,
                "action": r.action,
                "strategy": r.strategy,
                "versions": r.live_versions,
                "weights": r.weights(),
                "shadow": r.shadow_versions,
                "actor": r.actor,
                "approval_id": r.approval_id or approval_of.get(rollout_id),
                "rollout_id": rollout_id,
                "reason": r.reason,
                "at": r.created_at,
            }
        )
    return DeploymentOutput(
        name=st.model_name,
        environment=args.environment,
        live_versions=rev.live_versions if rev else [],
        weights=rev.weights() if rev else {},
        shadow_versions=rev.shadow_versions if rev else [],
        standby_versions=rev.standby_versions if rev else [],
        revision=rev.revision if rev else None,
        strategy=rev.strategy if rev else None,
        rollout=_rollout_dict(rollout) if rollout else None,
        gateway=gw,
        health=health,
        history=history,
        serving=live_serving(call.services, args.name, args.environment, rev, health),
        rollouts=[_rollout_dict(r) for r in rollouts],
    )


class RollbackInput(DeploymentInput):
    to_version: str | None = Field(
        default=None,
        pattern=r"^[0-9]{1,9}$",
        description="Earlier deployed version; omit for the previous one.",
    )
    reason: str = Field(default="", max_length=2000)
    approval_id: str | None = Field(
        default=None, pattern=APPROVAL_ID, description="An approved rollback request to execute."
    )


class RollbackOutput(BaseModel):
    name: str
    environment: str
    revision: int
    live_versions: list[str]


@tool(permission="deploy:rollback", side_effect="write")
def rollback_deployment(call: CallContext, args: RollbackInput) -> RollbackOutput:
    """Roll a deployment back to an earlier approved version, atomically (people only; agents use request_rollback)."""
    services = call.services
    if call.actor.kind == ActorKind.WORKFLOW and args.approval_id is None:
        raise ApprovalRequired(f"{call.actor.describe()} rolls back only an approved request")
    if args.environment in PRODUCTION_ENVIRONMENTS:
        rev = rollback_production(
            services,
            call.actor,
            args.name,
            to_version=args.to_version,
            reason=args.reason,
            approval_id=args.approval_id,
        )
    else:
        rev = services.deployments.rollouts.rollback(
            args.name,
            actor=call.actor.describe(),
            to_version=args.to_version,
            reason=args.reason,
            environment=args.environment,
        )
    return RollbackOutput(
        name=args.name,
        environment=args.environment,
        revision=rev.revision,
        live_versions=rev.live_versions,
    )


class StagingDeployInput(ToolInput):
    name: str = Field(min_length=1, max_length=128)
    version: str = Field(pattern=r"^[0-9]{1,9}$")
    reason: str = Field(default="", max_length=2000)


class StagingDeployOutput(BaseModel):
    name: str
    environment: str
    revision: int
    live_versions: list[str]
    gateway_url: str | None


@tool(permission="deploy:staging", side_effect="write")
def deploy_to_staging(call: CallContext, args: StagingDeployInput) -> StagingDeployOutput:
    """Route all staging traffic to a registered version (no approval; production goes through promote_model)."""
    services = call.services
    info = services.registry.get(args.name, args.version)
    rev = services.deployments.deploy(
        args.name,
        served_version(services, info),
        actor=call.actor.describe(),
        reason=args.reason or "staging deploy",
        environment="staging",
    )
    gw = _ensure_gateway(services, args.name, "staging")
    return StagingDeployOutput(
        name=args.name,
        environment="staging",
        revision=rev.revision,
        live_versions=rev.live_versions,
        gateway_url=gw.get("url"),
    )


class StartRolloutInput(DeploymentInput):
    version: str = Field(pattern=r"^[0-9]{1,9}$", description="The candidate version.")
    strategy: Literal["canary", "blue-green", "shadow"] = "canary"
    traffic_percentage: float | None = Field(
        default=None, gt=0, le=100, description="Canary: the first step's share (default 10)."
    )
    steps: list[float] | None = Field(
        default=None,
        min_length=1,
        max_length=20,
        description="Canary: every step's share, ending at 100.",
    )
    approval_id: str | None = Field(
        default=None,
        pattern=APPROVAL_ID,
        description="Approved promotion of this version; required for production.",
    )
    reason: str = Field(default="", max_length=2000)


class RolloutOutput(BaseModel):
    rollout: dict[str, Any]
    revision: int
    routes: list[dict[str, Any]]
    gateway_url: str | None
    next: str


@tool(permission="deploy:staging", side_effect="write", also_requires=production_needs)
def start_rollout(call: CallContext, args: StartRolloutInput) -> RolloutOutput:
    """Start a canary, blue-green or shadow rollout of a version (production: runs the approved plan of a promotion of it)."""
    services = call.services
    info = services.registry.get(args.name, args.version)
    if args.environment in PRODUCTION_ENVIRONMENTS:
        return _start_approved_rollout(call, args, info)
    candidate = served_version(services, info, weight=0)
    rollout = services.deployments.rollouts.start(
        args.name,
        candidate,
        strategy=args.strategy,
        actor=call.actor.describe(),
        steps=args.steps,
        first_percent=args.traffic_percentage,
        reason=args.reason,
        environment=args.environment,
    )
    gw = _ensure_gateway(services, args.name, args.environment)
    return _rollout_output(services, rollout, gw)


def _start_approved_rollout(call: CallContext, args: StartRolloutInput, info: Any) -> RolloutOutput:
    """Production: the approval's plan is what runs; a different request is refused."""
    from core.serving.rollout import plan_steps

    services = call.services
    if args.approval_id is None:
        raise ApprovalRequired(
            f"production traffic moves to {args.name} v{info.version} only with an approved promotion",
            hint=f"Request one (`request_promotion` for v{info.version} with this plan), get it "
            "approved, and pass its approval_id; or roll out on environment staging.",
        )
    req = services.approvals.get(args.approval_id)
    if req.status.value not in ("approved", "executed"):
        raise ApprovalRequired(f"{req.id} is {req.status.value}, not approved")
    if req.model_name != info.name or req.version != info.version:
        raise ApprovalRequired(
            f"{req.id} approves {req.model_name} v{req.version}, not {info.name} v{info.version}"
        )
    plan = req.plan or {"strategy": "direct"}
    asked = plan_steps(args.strategy, args.steps, args.traffic_percentage)
    approved = (
        plan_steps(plan["strategy"], plan.get("steps"), None)
        if plan.get("strategy") in ("canary", "blue-green")
        else None
    )
    if args.strategy != plan.get("strategy") or asked != approved:
        raise Conflict(
            f"{req.id} approves a {plan.get('strategy', 'direct')} rollout "
            f"{plan.get('steps') or ''}, not {args.strategy} {asked}",
            hint="Run the approved plan as it is (`agent approvals show "
            f"{req.id}`), or request a promotion with the plan you want.",
        )
    execute_promotion(services, call.actor, req.id)
    rollout = services.deployments.rollouts.for_approval(req.id)
    gw = _ensure_gateway(services, args.name, args.environment)
    return _rollout_output(services, rollout, gw)


class AdvanceRolloutInput(DeploymentInput):
    max_error_rate: float = Field(
        default=0.01, ge=0, le=1, description="Highest share of failed candidate calls allowed."
    )
    min_requests: int | None = Field(
        default=None,
        ge=0,
        description="Candidate requests the current step must have served first "
        "(production: at least the policy's rollout.min_requests_per_step).",
    )
    wait_seconds: float = Field(default=10.0, ge=0, le=300)
    reason: str = Field(default="", max_length=2000)


@tool(permission="deploy:staging", side_effect="write", also_requires=production_needs)
def advance_rollout(call: CallContext, args: AdvanceRolloutInput) -> RolloutOutput:
    """Check the gateway's health on the current rollout step, then move to the next step."""
    from core.serving.rollout import check_gateway

    services = call.services
    rollouts = services.deployments.rollouts
    rollout = rollouts.active(args.name, args.environment)
    if rollout is None:
        raise NotFound(f"{args.name} has no rollout in progress on {args.environment}")
    cand = rollout.candidate
    max_error_rate, min_requests = args.max_error_rate, args.min_requests
    if args.environment in PRODUCTION_ENVIRONMENTS:
        info = services.registry.get(args.name, cand.version)
        if not rollout.approval_id:
            raise ApprovalRequired(f"production rollout #{rollout.id} carries no approval")
        req = require_approved(services, rollout.approval_id, info, executed=True)
        # The approved plan's health criteria hold; a caller may only make them stricter.
        plan = req.plan or {}
        max_error_rate = min(max_error_rate, plan.get("max_error_rate", max_error_rate))
        floor = plan.get("min_requests_per_step")
        if floor is None:
            floor = services.policy.rollout.min_requests_per_step
        min_requests = max(min_requests or 0, floor)
    elif min_requests is None:
        min_requests = 0
    gw = _ensure_gateway(services, args.name, args.environment)
    verdict = check_gateway(
        gw["url"],
        expect_revision=rollout.last_revision,
        candidate_version=cand.version,
        max_error_rate=max_error_rate,
        min_requests=min_requests,
        wait_seconds=args.wait_seconds,
    )
    if not verdict.healthy:
        raise GateFailed(
            f"rollout #{rollout.id} stays at step {rollout.step + 1}: "
            + "; ".join(verdict.reasons),
            hint=f"Wait and retry, or `agent deploy rollout abort {args.name} --environment {args.environment}` "
            f"/ `agent deploy rollback {args.name} --environment {args.environment}`.",
        )
    rollout = rollouts.advance(
        args.name, actor=call.actor.describe(), environment=args.environment, reason=args.reason
    )
    if rollout.state == "completed":
        complete_rollout(services, rollout)
    return _rollout_output(services, rollout, gw)


class AbortRolloutInput(DeploymentInput):
    reason: str = Field(default="", max_length=2000)


# People only: automatic principals act only on an approved request or a written policy's
# rule, neither of which is an abort (and no agent holds deploy:rollback): a person decides.
@tool(permission="deploy:rollback", side_effect="write", people_only=True)
def abort_rollout(call: CallContext, args: AbortRolloutInput) -> RolloutOutput:
    """Abort the rollout in progress: the routes it started from come back in one revision."""
    services = call.services
    rollout = services.deployments.rollouts.abort(
        args.name, actor=call.actor.describe(), environment=args.environment, reason=args.reason
    )
    gw = services.deployments.gateway_info(args.name, args.environment)
    return _rollout_output(services, rollout, gw)


class PredictInput(ToolInput):
    renamed_fields = {"target": "environment"}
    name: ModelName
    environment: Environment = "production"
    features: list[float] | list[list[float]] | None = Field(
        default=None, description="One row of features (signature order), or a batch of rows."
    )
    # The gateway's named-column forms (core/serving/named_input.py), passed through as given:
    # the gateway reorders the columns to the served version's signature and checks them.
    inputs: dict[str, Any] | list[dict[str, Any]] | None = Field(
        default=None, description='Named rows: {"col": value, ...} or a list of such objects.'
    )
    dataframe_records: list[dict[str, Any]] | None = Field(
        default=None, description="MLflow's name for a list of named rows."
    )
    columns: list[str] | None = Field(
        default=None, description='Column names, with "data" holding rows in this order.'
    )
    data: list[list[Any]] | None = Field(default=None, description='Rows for "columns".')
    dataframe_split: dict[str, Any] | None = Field(
        default=None, description='{"columns": [...], "data": [[...]]} (MLflow\'s name).'
    )
    routing_key: str | None = Field(
        default=None, max_length=256, description="Sticky routing: the same key, the same version."
    )

    @model_validator(mode="after")
    def _one_form(self) -> PredictInput:
        forms = [f for f in PREDICT_FORMS if getattr(self, f) is not None]
        if self.data is not None and self.columns is None:
            raise ValueError('"data" needs "columns" (the names of its values)')
        if len(forms) != 1:
            raise ValueError(
                "give one of: features (rows in signature order), inputs (named rows), "
                "dataframe_records, columns + data, dataframe_split"
                + (f"; got {', '.join(forms)}" if forms else "")
            )
        return self

    def body(self) -> dict[str, Any]:
        """The gateway's request body, in the form the caller chose."""
        fields = [f for f in (*PREDICT_FORMS, "data") if getattr(self, f) is not None]
        return {f: getattr(self, f) for f in fields}


# One request body form each ("data" goes with "columns").
PREDICT_FORMS = ("features", "inputs", "dataframe_records", "columns", "dataframe_split")


class PredictOutput(BaseModel):
    response: dict[str, Any]


def gateway_url(services: Services, name: str, environment: str = "production") -> str:
    info = services.deployments.gateway_info(name, environment)
    if not info.get("running"):
        raise NotFound(
            f"no running gateway for {name} on {environment}", hint="See `agent deploy status`."
        )
    return info["url"]


@tool(permission="serving:predict", side_effect="external")
def predict(call: CallContext, args: PredictInput) -> PredictOutput:
    """Ask the model's live gateway for a prediction; the answer carries honesty labels."""
    import os

    import httpx

    from core.serving import GATEWAY_TOKEN_ENV

    url = gateway_url(call.services, args.name, args.environment)
    headers = {"x-routing-key": args.routing_key} if args.routing_key else {}
    if os.environ.get(GATEWAY_TOKEN_ENV):
        headers["authorization"] = f"Bearer {os.environ[GATEWAY_TOKEN_ENV]}"
    try:
        r = httpx.post(f"{url}/predict", json=args.body(), headers=headers, timeout=10.0)
    except httpx.HTTPError as exc:
        raise ExternalServiceError(f"gateway {url} did not answer: {exc}") from exc
    if r.status_code in (400, 413, 422):
        raise InvalidInput(r.json().get("error", r.text))
    if r.status_code != 200:
        raise ExternalServiceError(f"gateway answered HTTP {r.status_code}: {r.text[:300]}")
    return PredictOutput(response=r.json())


class RenderInput(ToolInput):
    renamed_fields = {"target": "platform"}
    name: ModelName
    platform: Literal["kubernetes"] = "kubernetes"
    source: Environment = Field(
        default="production", description="Whose live routes to start from."
    )
    version: str | None = Field(
        default=None,
        pattern=r"^[0-9]{1,9}$",
        description="Render a rollout of this version on top of the live routes (else: as is).",
    )
    strategy: Literal["direct", "canary", "blue-green", "shadow"] = "direct"
    traffic_percentage: float | None = Field(default=None, gt=0, le=100)
    approval_id: str | None = Field(
        default=None,
        pattern=APPROVAL_ID,
        description="Approved promotion of version; needed to render it for production.",
    )
    image: str | None = Field(
        default=None, max_length=256, description="Image name (default modelops/NAME-gateway:rREV)."
    )
    namespace: str = Field(default="default", pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
    replicas: int = Field(default=2, ge=1, le=100)
    write: bool = Field(
        default=False,
        description="Also write the docker build context (files + digest-checked artifacts).",
    )
    output_dir: str | None = Field(
        default=None,
        min_length=1,
        max_length=1024,
        description="Where to write it (implies write): a new folder under the working "
        "directory or MODELOPS_HOME; default deploy/NAME-rREVISION.",
    )
    force: bool = Field(
        default=False,
        description="Re-render into a non-empty folder an earlier render wrote: only its "
        "files whose bytes are unchanged are overwritten or removed; anything else is kept.",
    )


class RenderOutput(BaseModel):
    name: str
    revision: int
    planned: bool
    routes: list[dict[str, Any]]
    files: dict[str, str]
    artifacts: dict[str, dict[str, str]]
    applied: bool
    note: str
    output_dir: str | None = None  # set when the build context was written
    # Left alone in that folder (never ours, or changed since we wrote them) / marker entries
    # that are not plain paths inside it / files of the previous render we removed.
    kept: list[str] = Field(default_factory=list)
    ignored: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)
    kept_note: str = ""


def _planned_production(args: RenderInput) -> str | None:
    """Manifests of a new version on production's routes carry production traffic once
    applied: deploy:production, as for the rollout itself (also for a version already live,
    which the arguments alone cannot tell apart: render without ``version`` for that)."""
    planned = args.version is not None and args.source in PRODUCTION_ENVIRONMENTS
    return PRODUCTION_PERMISSION if planned else None


@tool(permission="deploy:read", side_effect="write", also_requires=_planned_production)
def render_deployment(call: CallContext, args: RenderInput) -> RenderOutput:
    """Render a Dockerfile, a KServe InferenceService and a Deployment + Service for the live routes or a planned rollout (not applied); optionally write the build context."""
    from core.deployment import Revision
    from core.owned_files import kept_message
    from core.serving.k8s import render_kubernetes, write_bundle
    from core.serving.rollout import routes_at

    services = call.services
    # A folder the caller named is checked before any work (the default needs the revision).
    out_dir = (
        services.resolve_output_dir(args.output_dir, default="", force=args.force)
        if args.output_dir
        else None
    )
    rev = services.deployments.current(args.name, args.source)
    planned = args.version is not None and (rev is None or args.version not in rev.live_versions)
    if planned:
        info = services.registry.get(args.name, args.version)
        # Manifests for a new version carry production traffic once applied: same approval.
        _check_production(call, args.source, args.name, info.version, args.approval_id, info)
        candidate = served_version(services, info, weight=0)
        if args.strategy == "direct" or rev is None:
            if rev is None and args.strategy != "direct":
                raise InvalidInput(
                    f"{args.name} has no live routes on {args.source} to {args.strategy} against"
                )
            routes = [candidate.model_copy(update={"weight": 100.0})]
        else:
            baseline = [r for r in rev.routes if r.weight > 0]
            if args.strategy == "blue-green":
                baseline = [baseline[0].model_copy(update={"slot": baseline[0].slot or "blue"})]
                candidate = candidate.model_copy(
                    update={"slot": "green" if baseline[0].slot == "blue" else "blue"}
                )
            weight = (args.traffic_percentage or 10.0) if args.strategy == "canary" else 0.0
            routes = routes_at(args.strategy, baseline, candidate, weight)
        rev = Revision(
            revision=(rev.revision + 1) if rev else 1,
            strategy=args.strategy,
            action="planned",
            routes=routes,
            approval_id=args.approval_id,
            actor=call.actor.describe(),
            reason="rendered plan",
            created_at="",
        )
    elif rev is None:
        raise NotFound(f"{args.name} has no deployment on {args.source} to render")
    rendered = render_kubernetes(
        args.name,
        rev,
        image=args.image,
        namespace=args.namespace,
        replicas=args.replicas,
        **services.deployments.gateway_options,  # the gateway flags this installation runs
    )
    if args.write and out_dir is None:
        out_dir = services.resolve_output_dir(
            None, default=f"deploy/{args.name}-r{rev.revision}", force=args.force
        )
    written = write_bundle(rendered, out_dir) if out_dir is not None else None
    return RenderOutput(
        name=args.name,
        revision=rev.revision,
        planned=planned,
        routes=[r.model_dump(include={"version", "weight", "role", "slot"}) for r in rev.routes],
        files=rendered.files,
        artifacts=rendered.artifacts,
        applied=False,
        note=rendered.note,
        output_dir=str(out_dir) if out_dir else None,
        kept=written.kept if written else [],
        ignored=written.ignored if written else [],
        removed=sorted(written.removed) if written else [],
        kept_note=kept_message(written) if written else "",
    )


# Helpers ------------------------------------------------------------------------------
def _check_production(
    call: CallContext, environment: str, name: str, version: str, approval_id: str | None, info: Any
) -> str | None:
    """For production manifests, the id of an approved (or already executed) promotion of
    exactly this artifact: the files carry production traffic once someone applies them.
    (deploy:production is the tool's declared ``also_requires``, checked by the dispatcher.)"""
    if environment not in PRODUCTION_ENVIRONMENTS:
        return None
    if approval_id is None:
        raise ApprovalRequired(
            f"production traffic moves to {name} v{version} only with an approved promotion",
            hint=f"Request one (`request_promotion` for v{version}), get it approved, and pass "
            "its approval_id; or roll out on environment staging.",
        )
    executed = call.services.approvals.get(approval_id).status.value == "executed"
    return require_approved(call.services, approval_id, info, executed=executed).id


def _ensure_gateway(services: Services, name: str, environment: str) -> dict[str, Any]:
    s = services.settings
    return services.deployments.ensure_gateway(
        name, host=s.gateway_host, port=s.gateway_port, environment=environment
    )


def _rollout_dict(rollout: Any) -> dict[str, Any]:
    return {
        "id": rollout.id,
        "strategy": rollout.strategy,
        "candidate_version": rollout.candidate.version,
        "baseline_versions": [r.version for r in rollout.baseline],
        "steps": rollout.steps,
        "step": rollout.step + 1,
        "weight": rollout.weight,
        "state": rollout.state,
        "approval_id": rollout.approval_id,
        "now": rollout.describe_step(),
        "last_revision": rollout.last_revision,
    }


def _rollout_output(services: Services, rollout: Any, gw: dict[str, Any]) -> RolloutOutput:
    rev = services.deployments.current(rollout.model_name, rollout.environment)
    if rollout.state == "active":
        nxt = rollout.next_weight
        step = rollout.describe_step(nxt)
        nxt_text = (
            f"advance (after a health check) so that {step}: "
            f"`agent deploy rollout advance {rollout.model_name} --environment {rollout.environment}`; "
            f"or abort: `agent deploy rollout abort {rollout.model_name} --environment {rollout.environment}`"
        )
    elif rollout.state == "completed":
        nxt_text = (
            f"rollout completed; `agent deploy rollback {rollout.model_name} --environment "
            f"{rollout.environment}` returns to the version before it"
        )
    elif rollout.state == "aborted":
        nxt_text = "rollout aborted; the routes from before it serve again"
    else:
        nxt_text = f"rollout {rollout.state}; see `agent deploy status {rollout.model_name}`"
    return RolloutOutput(
        rollout=_rollout_dict(rollout),
        revision=rev.revision if rev else rollout.last_revision,
        routes=[
            r.model_dump(include={"version", "weight", "role", "slot"})
            for r in (rev.routes if rev else [])
        ],
        gateway_url=gw.get("url"),
        next=nxt_text,
    )


class ListDeploymentsInput(ToolInput):
    renamed_fields = {"target": "environment"}
    environment: Environment | None = Field(default=None, description="Only this environment.")


class ListDeploymentsOutput(BaseModel):
    deployments: list[str]


@tool(permission="deploy:read", side_effect="read")
def list_deployments(call: CallContext, args: ListDeploymentsInput) -> ListDeploymentsOutput:
    """Names of the models that have a deployment (optionally on one environment)."""
    return ListDeploymentsOutput(
        deployments=call.services.deployments.list_deployments(args.environment)
    )


class StopGatewayInput(ToolInput):
    renamed_fields = {"target": "environment"}
    name: str = Field(min_length=1, max_length=128)
    # The same default as start_gateway: stopping staging too is asked for by name ("all").
    environment: Environment | Literal["all"] = Field(
        default="production", description='One environment, or "all" of the model\'s gateways.'
    )


class StopGatewayOutput(BaseModel):
    name: str
    stopped: bool


@tool(permission="deploy:stop", side_effect="write")
def stop_gateway(call: CallContext, args: StopGatewayInput) -> StopGatewayOutput:
    """Stop a model's gateway process; its deployment record and routing history stay."""
    deployments = call.services.deployments
    environment = None if args.environment == "all" else args.environment
    if args.name not in deployments.list_deployments(environment):
        where = f" on {environment}" if environment else ""
        raise NotFound(f"{args.name} has no deployment{where}", hint="See `agent deploy status`.")
    return StopGatewayOutput(
        name=args.name, stopped=deployments.stop_gateway(args.name, environment)
    )


class StartGatewayInput(ToolInput):
    renamed_fields = {"target": "environment"}
    name: ModelName
    environment: Environment = "production"


class StartGatewayOutput(BaseModel):
    name: str
    environment: str
    started: bool  # False: it was running already
    url: str | None
    revision: int | None  # the revision the deployment record says is live
    serving_revision: int | None  # the revision the gateway's /health reports
    live_versions: list[str]


@tool(
    permission="deploy:staging",
    side_effect="write",
    also_requires=production_needs,
    people_only=True,
)
def start_gateway(call: CallContext, args: StartGatewayInput) -> StartGatewayOutput:
    """Start a stopped gateway on its deployment's last revision; routes do not change (people only; production needs deploy:production)."""
    services = call.services
    deployments = services.deployments
    current = (
        deployments.current(args.name, args.environment)
        if args.name in deployments.list_deployments(args.environment)
        else None
    )
    if current is None:
        raise NotFound(
            f"{args.name} has no deployment on {args.environment} to serve",
            hint="See `agent deploy status`.",
        )
    started = not deployments.gateway_info(args.name, args.environment).get("running")
    gw = _ensure_gateway(services, args.name, args.environment)
    health = gateway_health(gw["url"]) if gw.get("url") else {}
    return StartGatewayOutput(
        name=args.name,
        environment=args.environment,
        started=started,
        url=gw.get("url"),
        revision=current.revision,
        serving_revision=health.get("revision"),
        live_versions=current.live_versions,
    )
