"""The approved executor: the one place that changes production routes on an approval, and
the one writer of the ``champion`` alias.

- ``execute_promotion`` runs exactly the plan a listed human approved (direct, canary,
  blue-green) for exactly the approved artifact, marks the approval ``executed`` in the same
  transaction that writes the routing revision (with its audit row), and supersedes every
  other live approval of the model. Re-running it is a no-op while it is still the live
  promotion and refused once something superseded it.
- ``rollback_production`` returns production to a version that an earlier executed approval
  put there; a person with ``deploy:rollback`` calls it directly, or the executor runs an
  approved rollback request.
- ``move_champion`` mirrors production into MLflow's ``champion`` alias, only after the
  gateway serves the new revision. MLflow aliases are a mirror for MLflow's tools; the routes
  and approvals in the state DB are the record.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from core.deployment import PRODUCTION, PRODUCTION_ENVIRONMENTS
from core.errors import ApprovalRequired, Conflict, InvalidInput
from core.progress import report
from policies.approvals import PROMOTE, ROLLBACK, ApprovalRequest, ApprovalStatus
from policies.rbac import Actor
from tools.approved import require_approved, served_version
from tools.context import Services

CHAMPION = "champion"


def move_champion(services: Services, name: str, version: str, *, cause: str) -> None:
    """Point the champion alias at what production serves (the only writer of the alias)."""
    reg = services.registry
    if reg.alias_version(name, CHAMPION) != str(version):
        reg.set_alias(name, CHAMPION, str(version))
    reg.set_tags(name, str(version), {"champion_cause": cause[:500]})


def _plan(req: ApprovalRequest) -> dict[str, Any]:
    plan = dict(req.plan or {})
    plan.setdefault("strategy", "direct")
    return plan


def _live_promotion(services: Services, req: ApprovalRequest) -> bool:
    """Is this executed approval what production serves now (its revision or its rollout)?"""
    deployments = services.deployments
    current = deployments.current(req.model_name, PRODUCTION)
    if current is None:
        return False
    if current.approval_id == req.id:
        return True
    rollout = deployments.rollouts.for_approval(req.id)
    return (
        rollout is not None
        and rollout.last_revision == current.revision
        and rollout.state in ("active", "completed")
    )


def plan_conflict(
    services: Services, name: str, version: str, plan: dict[str, Any] | None
) -> Conflict | None:
    """Why this promotion plan cannot run on production now (a rollout in progress, no
    baseline for a canary, the version already live in a split), or None. Asked when the
    promotion is requested, when it is approved and when it is executed, so no approval is
    spent on a plan the executor would refuse."""
    strategy = (plan or {}).get("strategy", "direct")
    problem = services.deployments.rollouts.preflight(name, version, strategy, PRODUCTION)
    if problem is None:
        return None
    return Conflict(
        f"the {strategy} promotion of {name} v{version} cannot run now: {problem.message}",
        hint=problem.hint,
    )


def execute_promotion(services: Services, actor: Actor, approval_id: str) -> dict[str, Any]:
    """Run an approved promotion's plan once; safe to call again (see the module doc)."""
    approvals = services.approvals
    req = approvals.get(approval_id)
    if req.action != PROMOTE:
        raise InvalidInput(
            f"{approval_id} is a {req.action} request, not a promotion",
            hint=f"Approving it runs it: `agent approvals show {approval_id}`.",
        )
    info = services.registry.get(req.model_name, req.version)
    if req.status in (ApprovalStatus.EXECUTED, ApprovalStatus.SUPERSEDED):
        if req.status == ApprovalStatus.EXECUTED and _live_promotion(services, req):
            report("routes already written", revision=(req.execution or {}).get("revision"))
            return _finish(services, req, already=True)
        raise Conflict(
            f"{approval_id} was executed and has since been superseded "
            f"(production no longer serves what it approved)",
            hint=f"Request a new promotion of {req.model_name} v{req.version}.",
        )
    req = approvals.check_executable(approval_id)
    require_approved(services, req.id, info)
    served = served_version(services, info)
    plan = _plan(req)
    # Refused before anything moves, and the approval stays approved: once the rollout in
    # the way is finished or aborted, `agent approvals resume` runs it.
    if (conflict := plan_conflict(services, info.name, info.version, plan)) is not None:
        raise conflict
    deployments = services.deployments
    with Session(services.engine) as s, s.begin():
        if plan["strategy"] == "direct":
            rev = deployments.deploy(
                info.name,
                served,
                actor=actor.describe(),
                approval_id=req.id,
                reason=f"approved by {req.decided_by} ({req.id})",
                environment=PRODUCTION,
                session=s,
            )
            execution = {"strategy": "direct", "revision": rev.revision}
        else:
            rollout = deployments.rollouts.start(
                info.name,
                served.model_copy(update={"weight": 0}),
                strategy=plan["strategy"],
                actor=actor.describe(),
                steps=plan.get("steps"),
                approval_id=req.id,
                reason=f"approved by {req.decided_by} ({req.id})",
                environment=PRODUCTION,
                session=s,
            )
            execution = {
                "strategy": plan["strategy"],
                "rollout_id": rollout.id,
                "revision": rollout.last_revision,
                "steps": rollout.steps,
            }
        approvals.mark_executed(s, req.id, actor, execution)
        superseded = approvals.supersede(s, info.name, keep=(req.id,), cause=f"{req.id} executed")
        services.audit.append(
            actor,
            "approvals.execute",
            "deploy:production",
            decision="allowed",
            outcome="ok",
            detail={
                "approval_id": req.id,
                "model": info.name,
                "version": info.version,
                "artifact_sha256": info.artifact_sha256,
                "plan": plan,
                "execution": execution,
                "approved_by": req.decided_by,
                "superseded": superseded,
                "policy_digest": req.policy_digest,
            },
            conn=s.connection(),
        )
    report("routes written", revision=execution["revision"], strategy=plan["strategy"])
    return _finish(services, approvals.get(req.id), already=False)


def _finish(services: Services, req: ApprovalRequest, *, already: bool) -> dict[str, Any]:
    """After the routes changed: the gateway serves them, then the alias follows (direct)."""
    from core.serving.rollout import check_gateway

    s = services.settings
    deployments = services.deployments
    # A running gateway picks the new revision up by its own poll: no new process.
    reused = bool(deployments.gateway_info(req.model_name, PRODUCTION).get("running"))
    if not reused:
        report("gateway starting", port=s.gateway_port)
    gw = deployments.ensure_gateway(
        req.model_name, host=s.gateway_host, port=s.gateway_port, environment=PRODUCTION
    )
    report("gateway reused" if reused else "gateway started", url=gw.get("url"))
    current = deployments.current(req.model_name, PRODUCTION)
    verdict = check_gateway(
        gw["url"],
        expect_revision=current.revision,
        candidate_version=req.version,
        max_error_rate=1.0,
        wait_seconds=15.0,
    )
    if verdict.healthy:
        report("health ok", revision=current.revision, version=req.version)
    else:
        report("health failed", revision=current.revision, reasons=verdict.reasons)
    strategy = _plan(req)["strategy"]
    rollout = deployments.rollouts.for_approval(req.id) if strategy != "direct" else None
    completed = strategy == "direct" or (rollout is not None and rollout.state == "completed")
    if verdict.healthy and completed and req.version in current.live_versions:
        move_champion(services, req.model_name, req.version, cause=f"approval {req.id}")
        _mirror_approval(services, req, current.revision)
        report("champion moved", version=req.version)
    return {
        "approval_id": req.id,
        "name": req.model_name,
        "version": req.version,
        "revision": current.revision,
        "strategy": strategy,
        "rollout_id": rollout.id if rollout is not None else None,
        "already_executed": already,
        "gateway_url": gw.get("url"),
        "serving": verdict.healthy,
        "serving_problems": verdict.reasons,
        "champion": services.registry.alias_version(req.model_name, CHAMPION),
    }


def _mirror_approval(services: Services, req: ApprovalRequest, revision: int) -> None:
    services.registry.set_tags(
        req.model_name,
        req.version,
        {
            "approval_id": req.id,
            "approved_by": req.decided_by or "",
            "approval_status": req.status.value,
            "approved_at": req.decided_at.isoformat() if req.decided_at else "",
            "evidence_hash": req.evidence_hash,
            "deployed_revision": str(revision),
        },
    )


def complete_rollout(services: Services, rollout: Any) -> None:
    """A production rollout that reached 100 %: the champion follows, with its approval."""
    if rollout.environment not in PRODUCTION_ENVIRONMENTS or rollout.state != "completed":
        return
    if not rollout.approval_id:
        raise ApprovalRequired(f"production rollout #{rollout.id} carries no approval")
    req = services.approvals.get(rollout.approval_id)
    if req.status != ApprovalStatus.EXECUTED:
        raise Conflict(f"rollout #{rollout.id}'s approval {req.id} is {req.status.value}")
    move_champion(
        services, rollout.model_name, rollout.candidate.version, cause=f"approval {req.id}"
    )
    _mirror_approval(services, req, rollout.last_revision)


def rollback_production(
    services: Services,
    actor: Actor,
    name: str,
    *,
    to_version: str | None = None,
    reason: str = "",
    approval_id: str | None = None,
) -> Any:
    """Route production back to a version an earlier executed approval put there."""
    approvals = services.approvals
    deployments = services.deployments
    req = None
    if approval_id is not None:
        req = approvals.check_executable(approval_id)
        if req.action != ROLLBACK or req.model_name != name:
            raise Conflict(f"{approval_id} does not approve a rollback of {name}")
        to_version = req.version
    version = deployments.rollback_choice(name, to_version=to_version, environment=PRODUCTION)
    earlier = approvals.executed_for(name, version)
    if not earlier:
        raise Conflict(
            f"{name} v{version} never went to production through an executed approval; "
            "rollback only returns to an approved version",
            hint=f"Promote it instead: `agent tool call request_promotion` for v{version}.",
        )
    with Session(services.engine) as s, s.begin():
        rev = deployments.rollouts.rollback(
            name,
            actor=actor.describe(),
            to_version=version,
            reason=reason or (f"approved rollback {req.id}" if req else "rollback"),
            environment=PRODUCTION,
            session=s,
        )
        if req is not None:
            approvals.mark_executed(s, req.id, actor, {"revision": rev.revision})
        kept = (earlier[0].id, req.id) if req is not None else (earlier[0].id,)
        superseded = approvals.supersede(s, name, keep=kept, cause=f"rollback to v{version}")
        services.audit.append(
            actor,
            "deploy.rollback",
            "deploy:rollback",
            decision="allowed",
            outcome="ok",
            detail={
                "model": name,
                "version": version,
                "revision": rev.revision,
                "returns_to_approval": earlier[0].id,
                "rollback_approval": req.id if req else None,
                "superseded": superseded,
            },
            reason=reason,
            conn=s.connection(),
        )
    move_champion(services, name, version, cause=f"rollback to approval {earlier[0].id}")
    return rev
