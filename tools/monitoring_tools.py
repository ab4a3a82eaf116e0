"""Monitoring tools: reports (drift, estimated/realized performance, SLOs), checks that store
alerts, and the monitoring policy's automatic rollback.

The rollback is an internal step that only the ``monitoring-policy`` workflow principal
reaches, and only from a check by a person who holds deploy:rollback (``agent monitor watch``
is that loop); anyone else's check reports what the policy would do. It measures the breach
itself from server outcomes in the prediction log under the pinned policy (edge refusals are
the client's and never count; no caller supplies a number), goes only to the newest version a
human approved for production that is not breaching, or nowhere, and audits the evidence.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from core.deployment import Environment
from core.errors import ApprovalRequired, InvalidInput, ModelOpsError, NotFound
from core.names import ModelName
from policies.rbac import ActorKind
from tools.base import ToolInput, tool
from tools.context import CallContext, Services

POLICY_PRINCIPAL = "monitoring-policy"
ROLLBACK_PERMISSION = "deploy:rollback"


class MonitoringConfig(ToolInput):
    """Report-only thresholds (alerts); the automatic rollback uses the pinned policy only."""

    data_drift_threshold: float | None = Field(
        default=None, gt=0, le=1, description="Share of drifted features that is dataset drift."
    )
    prediction_drift_threshold: float | None = Field(
        default=None,
        gt=0,
        le=10,
        description="Threshold of the prediction column's test (p-value or distance).",
    )
    latency_p99_threshold_ms: float | None = Field(default=None, gt=0, le=600_000)
    error_rate_threshold: float | None = Field(default=None, ge=0, le=1)


class ReportInput(ToolInput):
    renamed_fields = {"target": "environment"}
    model_id: str = Field(
        min_length=1,
        max_length=256,
        description="NAME (its live versions), NAME/3, NAME@champion or NAME@2.1.0.",
    )
    environment: Environment = "production"
    window_minutes: float | None = Field(
        default=None,
        gt=0,
        le=7 * 24 * 60,
        description="Default: the policy's monitoring.window_minutes.",
    )
    monitoring_config: MonitoringConfig = Field(default_factory=MonitoringConfig)
    html_path: str | None = Field(
        default=None,
        min_length=1,
        max_length=1024,
        description="Also write an HTML report here (a new file under the working directory or MODELOPS_HOME).",
    )


class ReportOutput(BaseModel):
    name: str
    report: dict[str, Any]
    # What this report's numbers would raise now (check_monitoring stores them).
    alerts: list[dict[str, Any]]
    # Alerts stored (by checks and the policy) inside the report's window, newest first,
    # with what was done (action) and how they were delivered.
    stored_alerts: list[dict[str, Any]] = []
    html_path: str | None = None


def stored_alerts(services: Services, name: str, report: dict[str, Any]) -> list[dict[str, Any]]:
    from datetime import datetime, timedelta

    from core.monitoring.alerts import AlertStore

    w = report["window"]
    return AlertStore(services.engine).list(
        name,
        limit=200,
        environment=report["environment"],
        since=datetime.fromisoformat(w["from"]),
        # The window's ends are printed to the second; its last second is inside it.
        until=datetime.fromisoformat(w["to"]) + timedelta(seconds=1),
    )


def rules_for(services: Services, name: str) -> dict[str, Any]:
    from policies.monitoring_rules import monitoring_rules

    return monitoring_rules(services.thresholds, name)


def monitoring_service(services: Services) -> Any:
    from core.monitoring.service import MonitoringService

    return MonitoringService(services.engine, lambda: services.registry, services.registry_reader)


def resolve_versions(
    services: Services, model_id: str, environment: str
) -> tuple[str, list[str], list[str]]:
    """(name, versions, notes): an explicit version, an alias, or what the environment serves."""
    from core.names import parse_model_ref, seed_style_error, seed_style_ref

    notes: list[str] = []
    ref = parse_model_ref(model_id, bare=True)
    name = ref.name
    if ref.version:
        return name, [ref.version], notes
    if ref.label:
        return name, [services.registry_reader.get(name, ref.label).version], notes
    if ref.alias is None and seed_style_ref(name):
        try:  # a model may really be named ``x-v1``; only when it is not is the form wrong
            services.registry_reader.list_versions(name)
        except NotFound:
            raise seed_style_error(model_id) from None
    current = services.deployments.current(name, environment)
    live = current.live_versions if current else []
    if ref.alias:
        alias = ref.alias
        version = services.registry_reader.get(name, alias).version
        if live and version not in live:
            notes.append(
                f"{name}@{alias} is v{version}, but {environment} serves {', '.join('v' + v for v in live)}"
            )
        return name, [version], notes
    if not live:
        raise NotFound(f"{name} serves nothing on {environment}", hint=f"Name a version: {name}/N.")
    return name, live, notes


REPORT_HINT = (
    "Write the report under the working directory or MODELOPS_HOME, "
    "e.g. `agent monitor report NAME --html reports/NAME.html`."
)


def confined_file(services: Services, raw: str) -> Path:
    """An output file inside a folder ``resolve_output_dir`` accepts (a new file only)."""
    path = Path(raw).expanduser()
    if not path.is_absolute():
        path = Path.cwd() / path
    if path.suffix.lower() not in (".html", ".htm"):
        raise InvalidInput(f"{raw!r}: the report is HTML; name a .html file")
    parent = path.parent
    resolved_parent = parent.resolve()
    roots = services.allowed_roots()
    if resolved_parent not in roots:
        resolved_parent = services.resolve_output_dir(
            str(parent), default="", force=True, hint=REPORT_HINT
        )
    out = resolved_parent / path.name
    if out.exists() or out.is_symlink():
        raise InvalidInput(
            f"{raw!r} exists; the report never overwrites a file", hint="Choose a new file name."
        )
    return out


def build(
    services: Services, args: ReportInput
) -> tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]:
    from core.monitoring.evaluate import report_alerts

    name, versions, notes = resolve_versions(services, args.model_id, args.environment)
    rules = rules_for(services, name)
    minutes = args.window_minutes or float(rules.get("window_minutes", 60))
    overrides = args.monitoring_config.model_dump(exclude_none=True)
    report, plots = monitoring_service(services).report(
        name,
        versions,
        rules=rules,
        environment=args.environment,
        window_seconds=minutes * 60,
        overrides=overrides,
        # A bare NAME asks what the environment saw: the live versions and any other that
        # served in the window (marked served_earlier; it raises no new alert).
        served_earlier="/" not in args.model_id and "@" not in args.model_id,
    )
    report["notes"] = notes + report["notes"]
    report["policy"] = {
        "digest": services.policy_digest,
        "declared": rules.get("declared"),
        "auto_rollback": rules.get("auto_rollback"),
        "slo": rules.get("slo"),
        "overrides": overrides,
    }
    report["alerts"] = [
        a
        for vr in report["versions"]
        if not vr.get("served_earlier")
        for a in report_alerts(vr, rules, overrides)
    ]
    return name, report, plots, rules


@tool(permission="deploy:read", side_effect="write")
def monitor_report(call: CallContext, args: ReportInput) -> ReportOutput:
    """Monitoring report of a model over a window: data and prediction drift, estimated (HEURISTIC) and realized performance, latency/error SLOs; optional HTML with plots."""
    services = call.services
    out_path = confined_file(services, args.html_path) if args.html_path else None
    name, report, plots, _ = build(services, args)
    if out_path is not None:
        from core.monitoring.html import render_html

        out_path.write_text(render_html(report, plots))
    return ReportOutput(
        name=name,
        report=report,
        alerts=report["alerts"],
        stored_alerts=stored_alerts(services, name, report),
        html_path=str(out_path) if out_path else None,
    )


class CheckInput(ReportInput):
    pass


class CheckOutput(BaseModel):
    name: str
    alerts: list[dict[str, Any]]
    # What the pinned policy orders and whether it ran: ``acted`` is True only when the
    # caller is a person holding deploy:rollback (the policy then acts as monitoring-policy
    # on their behalf); for anyone else it is the action the policy *would* take.
    rollback: dict[str, Any]
    report: dict[str, Any]


def acts_for(services: Services, actor: Any) -> tuple[bool, str]:
    """Whether a check by ``actor`` may let the policy act: only a person who holds
    deploy:rollback. Agents never hold it (policies.rights.AGENT_NEVER)."""
    if actor.kind != ActorKind.HUMAN:
        return (
            False,
            f"{actor.describe()} is not a person: the policy's action is reported, not run",
        )
    decision = services.policy.authorize(actor, ROLLBACK_PERMISSION)
    if not decision.allowed:
        return False, (
            f"{actor.name} does not hold {ROLLBACK_PERMISSION}: the policy's action is reported, "
            "not run"
        )
    return True, f"{actor.name} holds {ROLLBACK_PERMISSION}"


@tool(permission="monitoring:run", side_effect="write")
def check_monitoring(call: CallContext, args: CheckInput) -> CheckOutput:
    """Run the monitoring checks, store (and optionally send) alerts, and say what the pinned policy orders; it rolls production back only for a person holding deploy:rollback."""
    from core.monitoring.alerts import AlertStore, deliver

    services = call.services
    if args.html_path:
        raise InvalidInput("check_monitoring writes no HTML", hint="Use monitor_report --html.")
    name, report, _, rules = build(services, args)
    store = AlertStore(services.engine)
    hook = rules.get("webhook", {})
    secret = os.environ.get(hook.get("secret_env") or "", "").encode() or None
    stored = []
    for a in report["alerts"]:
        row = store.add(
            {
                **a,
                "model_name": name,
                "environment": args.environment,
                "window_seconds": report["window"]["seconds"],
                "evidence": {"policy_digest": services.policy_digest},
            }
        )
        if hook.get("url"):
            store.set_delivery(row["id"], deliver(hook["url"], secret, row))
        stored.append(row)
    if args.environment != "production":
        rollback: dict[str, Any] = {
            "ordered": False,
            "acted": False,
            "message": "staging is never rolled back by policy",
        }
        return CheckOutput(name=name, alerts=stored, rollback=rollback, report=report)
    if services.deployments.current(name, "production") is None:
        rollback = {
            "ordered": False,
            "acted": False,
            "message": f"{name} has no production deployment: nothing for the policy to judge",
        }
        return CheckOutput(name=name, alerts=stored, rollback=rollback, report=report)
    acting, why = acts_for(services, call.actor)
    if not acting:
        verdict = policy_verdict(services, name)
        rollback = {**verdict, "acted": False, "executed": False, "acts_for": why}
        if verdict["ordered"]:
            rollback["message"] = f"the policy would roll {name} back: {verdict['message']}"
        return CheckOutput(name=name, alerts=stored, rollback=rollback, report=report)
    principal = services.policy.workflow(POLICY_PRINCIPAL, call.actor)
    result = call.dispatcher.call(principal, "monitoring_rollback", {"name": name}, internal=True)
    rollback = (
        {**result.output, "acted": True, "acts_for": why}
        if result.ok
        else {"ordered": True, "executed": False, "acted": True, "acts_for": why,
              "message": result.error.message, "error": result.error.model_dump()}
    )  # fmt: skip
    if rollback.get("ordered"):
        store.add({
            "model_name": name, "environment": "production",
            "version": ",".join(rollback.get("from_versions") or []) or None,
            "kind": "rollback", "severity": "critical",
            "action": "rollback" if rollback.get("executed") else "rollback_refused",
            "message": rollback.get("message", ""),
            "window_seconds": rollback.get("window_seconds", 0.0),
            "evidence": rollback,
        })  # fmt: skip
    return CheckOutput(name=name, alerts=stored, rollback=rollback, report=report)


class PolicyRollbackInput(ToolInput):
    name: ModelName


class PolicyRollbackOutput(BaseModel):
    name: str
    ordered: bool
    executed: bool = False
    message: str
    from_versions: list[str] = []
    to_version: str | None = None
    revision: int | None = None
    window_seconds: float = 0.0
    evidence: list[dict[str, Any]] = []
    target: dict[str, Any] | None = None


def rollback_candidates(services: Services, name: str, rules: dict[str, Any]) -> list[dict]:
    """Versions a human approved for production whose approved plan ran to completion
    (a direct deploy, or a rollout that reached 100 %), newest execution first, each with what
    its own recent server outcomes breached (over the report window)."""
    from core.monitoring.evaluate import slo_breaches
    from core.monitoring.slo import version_slo
    from core.monitoring.window import read_window
    from policies.approvals import PROMOTE

    rollouts = services.deployments.rollouts
    seen: set[str] = set()
    out = []
    executed = [
        r
        for r in services.approvals.list(model_name=name)
        if r.action == PROMOTE and r.executed_at is not None
    ]
    executed.sort(key=lambda r: r.executed_at, reverse=True)
    window = None
    for req in executed:
        if req.version in seen:
            continue
        strategy = (req.plan or {}).get("strategy", "direct")
        if strategy != "direct":
            rollout = rollouts.for_approval(req.id)
            if rollout is None or rollout.state != "completed":
                continue
        seen.add(req.version)
        if window is None:
            window = read_window(
                services.engine,
                name,
                environment="production",
                seconds=float(rules.get("window_minutes", 60)) * 60,
            )
        slo = version_slo(window, req.version)
        need = int(rules.get("auto_rollback", {}).get("min_requests", 100))
        breaches = [b["kind"] for b in slo_breaches(slo, rules.get("slo", {}), need)]
        out.append({"version": req.version, "approval_id": req.id, "recent_breaches": breaches})
    return out


def policy_verdict(services: Services, name: str) -> dict[str, Any]:
    """What the pinned monitoring policy orders for production right now, from server
    outcomes only; changes nothing. {ordered, message, from_versions, target, evidence, ...}"""
    from core.monitoring.evaluate import choose_rollback_target, rollback_order
    from core.monitoring.slo import version_slo
    from core.monitoring.window import read_window

    current = services.deployments.current(name, "production")
    if current is None:
        raise NotFound(f"{name} has no production deployment")
    rules = rules_for(services, name)
    seconds = float(rules.get("auto_rollback", {}).get("window_minutes", 5)) * 60
    window = read_window(services.engine, name, environment="production", seconds=seconds)
    orders = []
    for v in current.live_versions:
        slo = version_slo(window, v)
        orders.append({"version": v, "slo": slo, **rollback_order(slo, None, rules)})
    notes = sorted({n for o in orders for n in o.get("notes", [])})
    breaching = {o["version"]: [b["kind"] for b in o["breaches"]] for o in orders if o["ordered"]}
    base = {
        "name": name, "revision_now": current.revision, "live_versions": current.live_versions,
        "window_seconds": seconds, "evidence": orders, "notes": notes,
        "policy_digest": services.policy_digest, "rules": rules.get("auto_rollback"),
    }  # fmt: skip
    if not breaching:
        reasons = "; ".join(f"v{o['version']}: {o['reason']}" for o in orders)
        return {**base, "ordered": False, "message": reasons, "from_versions": [], "target": None}
    choice = choose_rollback_target(
        current.live_versions, breaching, rollback_candidates(services, name, rules)
    )
    bad = "; ".join(o["reason"] for o in orders if o["ordered"])
    return {
        **base,
        "ordered": True,
        "from_versions": sorted(breaching),
        "breaching": breaching,
        "target": choice,
        "to_version": choice["target"],
        "message": (
            f"{bad}; rollback target {choice['reason']}"
            if choice["target"]
            else f"{bad}; nothing moves: {choice['reason']}"
        ),
    }


@tool(permission="deploy:rollback", side_effect="write", internal=True)
def monitoring_rollback(call: CallContext, args: PolicyRollbackInput) -> PolicyRollbackOutput:
    """Roll production back when the pinned monitoring policy finds a live version breaching an SLO on server outcomes, to the newest approved non-breaching version (monitoring-policy principal only)."""
    from tools.executor import rollback_production

    services, actor = call.services, call.actor
    if actor.kind != ActorKind.WORKFLOW or actor.name != POLICY_PRINCIPAL:
        raise ApprovalRequired(f"{actor.describe()} is not the monitoring policy")
    v = policy_verdict(services, args.name)
    out = {
        "name": args.name, "ordered": v["ordered"], "message": v["message"],
        "from_versions": v["from_versions"], "window_seconds": v["window_seconds"],
        "evidence": v["evidence"], "target": v["target"],
    }  # fmt: skip
    if not v["ordered"]:
        return PolicyRollbackOutput(**out)
    services.audit.append(
        actor,
        "monitoring.rollback_ordered",
        ROLLBACK_PERMISSION,
        decision="allowed",
        outcome="ok" if v["to_version"] else "no_target",
        detail={
            "model": args.name,
            "versions": v["from_versions"],
            "breaching": v["breaching"],
            "revision": v["revision_now"],
            "window_seconds": v["window_seconds"],
            "breaches": [b for o in v["evidence"] for b in o["breaches"]],
            "slo": {o["version"]: o["slo"] for o in v["evidence"]},
            "target": v["target"],
            "evidence_source": "server outcomes of the version that served each request",
            "policy_digest": v["policy_digest"],
            "rules": v["rules"],
        },
        reason=v["message"][:2000],
    )
    if not v["to_version"]:
        return PolicyRollbackOutput(**out)
    reason = f"monitoring policy: {v['message']}"[:2000]
    try:
        rev = rollback_production(
            services, actor, args.name, to_version=v["to_version"], reason=reason
        )
    except ModelOpsError as exc:
        raise type(exc)(
            f"the monitoring policy ordered a rollback of {args.name} to v{v['to_version']} but "
            f"it could not run: {exc.message}",
            hint=exc.hint,
        ) from exc
    froms = ", ".join("v" + x for x in v["from_versions"])
    out["message"] = f"rolled {args.name} back from {froms} to v{v['to_version']}: {v['message']}"
    return PolicyRollbackOutput(
        **out, executed=True, to_version=rev.live_versions[0], revision=rev.revision
    )


class AlertsInput(ToolInput):
    name: str | None = Field(default=None, min_length=1, max_length=128)
    kind: str | None = Field(default=None, min_length=1, max_length=64)
    limit: int = Field(default=50, ge=1, le=1000)


class AlertsOutput(BaseModel):
    alerts: list[dict[str, Any]]


@tool(permission="deploy:read", side_effect="read")
def list_monitoring_alerts(call: CallContext, args: AlertsInput) -> AlertsOutput:
    """Stored monitoring alerts (drift, SLO breaches, policy rollbacks), newest first."""
    from core.monitoring.alerts import AlertStore

    return AlertsOutput(
        alerts=AlertStore(call.services.engine).list(args.name, limit=args.limit, kind=args.kind)
    )


def capture_at_registration(services: Services, info: Any) -> str:
    """Called by register_model: store the new version's reference profile (never fails the
    registration; a version without one gets it on first use)."""
    try:
        profile = monitoring_service(services).capture(info)
    except (ModelOpsError, OSError, ValueError, ImportError) as exc:
        return f"not captured ({exc}); built on first use instead"
    return f"captured: {profile.sample_rows}-row sample of {profile.dataset.get('name')!r}"
