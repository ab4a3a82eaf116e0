"""Monitoring tools: reports (drift, estimated/realized performance, SLOs), checks that store
alerts, and the monitoring policy's automatic rollback.

The rollback is an internal step that only the ``monitoring-policy`` workflow principal
reaches: it measures the breach itself from the prediction log under the pinned policy (no
caller supplies a number), returns production only to a version an earlier executed approval
put there (``tools.executor.rollback_production``), and audits the evidence that ordered it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from core.deployment import Environment
from core.errors import ApprovalRequired, Conflict, InvalidInput, ModelOpsError, NotFound
from core.names import ModelName
from policies.rbac import ActorKind
from tools.base import ToolInput, tool
from tools.context import CallContext, Services

MODEL_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}(@(champion|challenger)|/[0-9]{1,9})?$"
POLICY_PRINCIPAL = "monitoring-policy"


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
        pattern=MODEL_ID, description="NAME (its live versions), NAME/3 or NAME@champion."
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
    alerts: list[dict[str, Any]]
    html_path: str | None = None


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
    notes: list[str] = []
    if "/" in model_id:
        name, version = model_id.split("/", 1)
        return name, [version], notes
    name, _, alias = model_id.partition("@")
    current = services.deployments.current(name, environment)
    live = current.live_versions if current else []
    if alias:
        version = services.registry_reader.get(name, alias).version
        if live and version not in live:
            notes.append(
                f"{name}@{alias} is v{version}, but {environment} serves {', '.join('v' + v for v in live)}"
            )
        return name, [version], notes
    if not live:
        raise NotFound(f"{name} serves nothing on {environment}", hint=f"Name a version: {name}/N.")
    return name, live, notes


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
        resolved_parent = services.resolve_output_dir(str(parent), default="", force=True)
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
    )
    report["notes"] = notes + report["notes"]
    report["policy"] = {
        "digest": services.policy_digest,
        "declared": rules.get("declared"),
        "auto_rollback": rules.get("auto_rollback"),
        "overrides": overrides,
    }
    report["alerts"] = [a for vr in report["versions"] for a in report_alerts(vr, rules, overrides)]
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
        html_path=str(out_path) if out_path else None,
    )


class CheckInput(ReportInput):
    pass


class CheckOutput(BaseModel):
    name: str
    alerts: list[dict[str, Any]]
    rollback: dict[str, Any]
    report: dict[str, Any]


@tool(permission="monitoring:run", side_effect="write")
def check_monitoring(call: CallContext, args: CheckInput) -> CheckOutput:
    """Run the monitoring checks, store (and optionally send) alerts, and apply the pinned policy: it may roll production back on an SLO breach."""
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
    rollback: dict[str, Any] = {
        "ordered": False,
        "reason": "staging is never rolled back by policy",
    }
    if args.environment == "production":
        policy = services.policy
        principal = policy.workflow(POLICY_PRINCIPAL, call.actor.responsible_human)
        result = call.dispatcher.call(
            principal, "monitoring_rollback", {"name": name}, internal=True
        )
        rollback = (
            result.output
            if result.ok
            else {"ordered": True, "executed": False, "error": result.error.model_dump()}
        )
        if rollback.get("ordered"):
            store.add({
                "model_name": name, "environment": "production", "version": rollback.get("from_version"),
                "kind": "rollback", "severity": "critical",
                "action": "rollback" if rollback.get("executed") else "rollback_refused",
                "message": rollback.get("message") or (result.error.message if result.error else ""),
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
    from_version: str | None = None
    to_version: str | None = None
    revision: int | None = None
    window_seconds: float = 0.0
    evidence: list[dict[str, Any]] = []


@tool(permission="deploy:rollback", side_effect="write", internal=True)
def monitoring_rollback(call: CallContext, args: PolicyRollbackInput) -> PolicyRollbackOutput:
    """Roll production back when the pinned monitoring policy finds the live version breaching an SLO over its rollback window (monitoring-policy principal only)."""
    from core.monitoring.evaluate import rollback_order
    from core.monitoring.slo import version_slo
    from core.monitoring.window import read_window
    from tools.executor import rollback_production

    services, actor = call.services, call.actor
    if actor.kind != ActorKind.WORKFLOW or actor.name != POLICY_PRINCIPAL:
        raise ApprovalRequired(f"{actor.describe()} is not the monitoring policy")
    current = services.deployments.current(args.name, "production")
    if current is None:
        raise NotFound(f"{args.name} has no production deployment")
    rules = rules_for(services, args.name)
    seconds = float(rules.get("auto_rollback", {}).get("window_minutes", 5)) * 60
    window = read_window(services.engine, args.name, environment="production", seconds=seconds)
    orders = []
    for v in current.live_versions:
        order = rollback_order(version_slo(window, v), None, rules)
        orders.append({"version": v, **order})
    breaching = [o for o in orders if o["ordered"]]
    if not breaching:
        reasons = "; ".join(f"v{o['version']}: {o['reason']}" for o in orders)
        return PolicyRollbackOutput(
            name=args.name, ordered=False, message=reasons, window_seconds=seconds, evidence=orders
        )
    bad = breaching[0]
    evidence = {
        "model": args.name, "version": bad["version"], "revision": current.revision,
        "window_seconds": seconds, "breaches": bad["breaches"],
        "slo": version_slo(window, bad["version"]), "policy_digest": services.policy_digest,
        "rules": rules.get("auto_rollback"),
    }  # fmt: skip
    services.audit.append(
        actor,
        "monitoring.rollback_ordered",
        "deploy:rollback",
        decision="allowed",
        outcome="ok",
        detail=evidence,
        reason=bad["reason"],
    )
    reason = f"monitoring policy: {bad['reason']}"[:2000]
    try:
        to = services.deployments.rollback_choice(args.name, environment="production")
        if to in current.live_versions and len(current.live_versions) == 1:
            raise Conflict(f"the rollback would return to v{to}, which is what serves now")
        rev = rollback_production(services, actor, args.name, reason=reason)
    except ModelOpsError as exc:
        raise type(exc)(
            f"the monitoring policy ordered a rollback of {args.name} ({bad['reason']}) but it could not run: {exc.message}",
            hint=exc.hint,
        ) from exc
    return PolicyRollbackOutput(
        name=args.name, ordered=True, executed=True, from_version=bad["version"],
        to_version=rev.live_versions[0], revision=rev.revision, window_seconds=seconds,
        message=f"rolled {args.name} back from v{bad['version']} to v{rev.live_versions[0]}: {bad['reason']}",
        evidence=[evidence],
    )  # fmt: skip


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
