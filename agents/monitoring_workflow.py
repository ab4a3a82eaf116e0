"""The ml-model-monitoring and ml-ab-testing workflows: plain functions over the dispatcher,
so every step is authorized and audited like any tool call.

ml-model-monitoring: report (drift, estimated/realized performance, SLOs) → check (alerts
stored; the pinned policy rolls production back under the monitoring-policy principal only
when a person holding deploy:rollback runs it, else the run says what the policy would do).

ml-ab-testing: plan (power, sample size) → the split must be live through an approved canary
of the arm that is not yet in production: none requested → it requests one (the promotion
workflow stops at the human approval) and says how to approve; pending → the same; live →
the experiment starts (or, when it runs already, is analyzed and its decision reported).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.deployment import Environment
from core.errors import ApprovalRequired, Conflict, InvalidInput
from policies.rbac import Actor
from tools.dispatcher import Dispatcher


def _validate(model: type[BaseModel], data: dict, example: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '(input)'}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise InvalidInput(f"invalid input: {problems}", hint=f"e.g. {example}") from exc


# ml-model-monitoring ---------------------------------------------------------------------
class MonitoringConfigIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    data_drift_threshold: float | None = Field(default=None, gt=0, le=1)
    prediction_drift_threshold: float | None = Field(default=None, gt=0, le=10)
    latency_p99_threshold_ms: float | None = Field(default=None, gt=0)
    error_rate_threshold: float | None = Field(default=None, ge=0, le=1)


class MonitoringRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model_id: str = Field(
        min_length=1,
        max_length=256,
        description="NAME@champion, NAME/3, NAME@2.1.0 or NAME (live versions).",
    )
    monitoring_config: MonitoringConfigIn = Field(default_factory=MonitoringConfigIn)
    window_minutes: float | None = Field(default=None, gt=0, le=7 * 24 * 60)
    environment: Environment = "production"


def run_monitoring(dispatcher: Dispatcher, actor: Actor, data: dict) -> dict[str, Any]:
    req = _validate(
        MonitoringRequest,
        data,
        '{"model_id": "NAME@champion", "monitoring_config": {"latency_p99_threshold_ms": 100}}',
    )
    args: dict[str, Any] = {
        "model_id": req.model_id,
        "environment": req.environment,
        "monitoring_config": req.monitoring_config.model_dump(exclude_none=True),
    }
    if req.window_minutes:
        args["window_minutes"] = req.window_minutes
    out = dispatcher.call_or_raise(actor, "check_monitoring", args)
    rb = out["rollback"]
    if rb.get("executed"):
        status = "rolled_back"
    elif rb.get("ordered"):
        # The policy orders a rollback the caller may not run (or that has no safe target).
        status = "rollback_ordered"
    elif out["alerts"]:
        status = "alerts"
    else:
        status = "ok"
    return {
        "workflow": "ml-model-monitoring",
        "status": status,
        **out,
        "steps": ["check_monitoring: ok"],
    }


# ml-ab-testing ---------------------------------------------------------------------------
class Arm(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}/[0-9]{1,9}$")
    traffic_percent: float = Field(gt=0, lt=100)


class ABTestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    experiment_name: str = Field(min_length=1, max_length=128)
    control: Arm
    treatment: Arm
    primary_metric: str = Field(
        default="conversion_rate", pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$"
    )
    duration_days: float = Field(default=14, gt=0, le=365)
    min_sample_size: int = Field(default=1000, ge=2, le=100_000_000, description="Units per arm.")
    baseline_rate: float | None = Field(default=None, gt=0, lt=1)
    minimum_detectable_effect: float | None = Field(default=None, gt=0, lt=1)
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    power: float = Field(default=0.8, gt=0.5, lt=1)
    dataset: str = Field(
        default="logged:holdout",
        min_length=1,
        max_length=1024,
        description="Evidence data for a promotion request.",
    )
    stop: bool = Field(default=False, description="Stop the running test and record its decision.")

    @model_validator(mode="after")
    def _arms(self) -> ABTestRequest:
        c, t = self.control.model_id.split("/"), self.treatment.model_id.split("/")
        if c[0] != t[0]:
            raise ValueError("control and treatment must be versions of the same model")
        if c[1] == t[1]:
            raise ValueError("control and treatment must be different versions")
        if abs(self.control.traffic_percent + self.treatment.traffic_percent - 100) > 1e-6:
            raise ValueError("traffic_percent of control and treatment must add up to 100")
        return self


def run_ab_test(dispatcher: Dispatcher, actor: Actor, data: dict) -> dict[str, Any]:
    req = _validate(
        ABTestRequest, data,
        '{"experiment_name": "x", "control": {"model_id": "m/1", "traffic_percent": 50}, '
        '"treatment": {"model_id": "m/2", "traffic_percent": 50}, "primary_metric": "conversion_rate"}',
    )  # fmt: skip
    name, control = req.control.model_id.split("/")
    treatment = req.treatment.model_id.split("/")[1]
    steps: list[str] = []
    plan = dispatcher.call_or_raise(actor, "plan_ab_test", {
        "control_percent": req.control.traffic_percent, "min_sample_size": req.min_sample_size,
        "baseline_rate": req.baseline_rate, "minimum_detectable_effect": req.minimum_detectable_effect,
        "alpha": req.alpha, "power": req.power,
    })["plan"]  # fmt: skip
    steps.append("plan_ab_test: ok")
    base = {
        "workflow": "ml-ab-testing",
        "experiment_name": req.experiment_name,
        "model_name": name,
        "control": control,
        "treatment": treatment,
        "plan": plan,
    }
    from core.abtest.experiment import RUNNING, ExperimentStore

    existing = ExperimentStore(dispatcher.services.engine).find(name, req.experiment_name)
    if existing and existing["state"] == RUNNING:
        tool = "stop_ab_test" if req.stop else "analyze_ab_test"
        out = dispatcher.call_or_raise(actor, tool, {"experiment_id": existing["id"]})
        steps.append(f"{tool}: ok")
        a = out["analysis"]
        return {
            **base,
            "status": "stopped" if req.stop else "running",
            "experiment": out["experiment"],
            "analysis": a,
            "message": a.get("message", a.get("decision")),
            "steps": steps,
        }
    if existing and not req.stop:
        base["previous_experiment"] = {
            "id": existing["id"],
            "state": existing["state"],
            "decision": (existing.get("decision") or {}).get("decision"),
        }
    start = {
        "experiment_name": req.experiment_name, "name": name, "control_version": control,
        "treatment_version": treatment, "control_percent": req.control.traffic_percent,
        "primary_metric": req.primary_metric, "duration_days": req.duration_days,
        "min_sample_size": req.min_sample_size, "alpha": req.alpha, "power": req.power,
    }  # fmt: skip
    result = dispatcher.call(actor, "start_ab_test", start)
    if result.ok:
        steps.append("start_ab_test: ok")
        exp = result.output["experiment"]
        return {**base, "status": "started", "experiment": exp, "steps": steps, "message": (
            f"A/B test {exp['id']} runs on revision {exp['revision']} (approval {exp['approval_id']}); "
            "clients send x-routing-key: <user id> with each /predict and POST /feedback "
            f'{{"prediction_id": ..., "metrics": {{"{req.primary_metric}": 1}}}}; re-run this workflow to analyze'
        )}  # fmt: skip
    if result.error.code != ApprovalRequired.code:
        raise _error(result)
    steps.append(f"start_ab_test: {result.error.message}")
    return _request_split(dispatcher, actor, req, name, control, treatment, base, steps)


def _request_split(
    dispatcher: Dispatcher,
    actor: Actor,
    req: ABTestRequest,
    name: str,
    control: str,
    treatment: str,
    base: dict,
    steps: list[str],
) -> dict[str, Any]:
    """The arm not yet in production needs an approved canary at its share: find or ask."""
    services = dispatcher.services
    current = services.deployments.current(name, "production")
    live = current.live_versions if current else []
    if control not in live and treatment not in live:
        raise InvalidInput(
            f"neither v{control} nor v{treatment} serves {name} in production ({', '.join('v' + v for v in live) or 'nothing'})",
            hint="An A/B split adds one arm to what production serves; promote one arm first.",
        )
    newcomer = treatment if control in live else control
    share = req.treatment.traffic_percent if newcomer == treatment else req.control.traffic_percent
    plan = {"strategy": "canary", "steps": [share, 100.0]}
    # The split is a canary of the newcomer: refused now, with the reason, when it could not
    # start (a canary in progress, the newcomer already in a split), before anyone approves.
    conflict = services.deployments.rollouts.preflight(name, newcomer, "canary", "production")
    if conflict is not None:
        raise Conflict(
            f"the A/B split of {name} (v{newcomer} at {share:g}%) cannot start now: "
            f"{conflict.message}",
            hint=conflict.hint,
        )
    for a in services.approvals.list(None):
        if (
            a.model_name == name
            and a.version == newcomer
            and a.action == "promote_to_production"
            and (a.plan or {}).get("strategy") == "canary"
            and list((a.plan or {}).get("steps") or [])[:1] == [share]
        ):
            if a.status.value in ("pending", "approved"):
                return {**base, "status": "pending_approval", "approval_id": a.id, "steps": steps, "message": (
                    f"the A/B split needs v{newcomer} live at {share:g}% through approval {a.id} ({a.status.value}); "
                    f"review with `agent approvals show {a.id}` and approve with `agent approvals approve {a.id} --as APPROVER`, "
                    "then re-run this workflow"
                )}  # fmt: skip
    out = dispatcher.call_or_raise(
        actor,
        "request_promotion",
        {"name": name, "version": newcomer, "dataset": req.dataset, "plan": plan},
    )
    steps.append(f"request_promotion v{newcomer} canary {share:g}%: {out['status']}")
    return {**base, "status": out["status"], "approval_id": out.get("approval_id"), "promotion": out, "steps": steps, "message": (
        f"requested promotion of v{newcomer} as a canary at {share:g}% (the A/B split): {out['message']}"
        + (f"; approve with `{out['approve_command']}`, then re-run this workflow" if out.get("approve_command") else "")
    )}  # fmt: skip


def _error(result: Any) -> Exception:
    from core.errors import error_from_code

    return error_from_code(result.error.code, result.error.message, result.error.hint)


def render(out: dict[str, Any]) -> None:
    import click

    if out["workflow"] == "ml-model-monitoring":
        from agents.cli.monitor import render_report

        click.echo(f"ml-model-monitoring: {out['status']}")
        render_report(out)
        return
    click.echo(f"ml-ab-testing {out['experiment_name']}: {out['status']}")
    click.echo(f"  {out['model_name']}: control v{out['control']} vs treatment v{out['treatment']}")
    plan = out["plan"]
    if plan.get("note"):
        click.echo(f"  plan: {plan['note']}")
    if plan.get("required_per_arm"):
        click.echo(f"  required per arm: {plan['required_per_arm']}")
    click.echo(f"  {out.get('message', '')}")
    a = out.get("analysis")
    if a:
        click.echo(f"  decision: {a.get('decision')}  units {a.get('units')}")
        srm = a.get("srm", {})
        if srm.get("p_value") is not None:
            click.echo(
                f"  SRM: p = {srm['p_value']:.3g}{' MISMATCH' if srm.get('mismatch') else ''}"
            )
        for w in a.get("warnings", []):
            click.echo(f"  warning: {w}")
        for m, s in (a.get("secondary") or {}).items():
            click.echo(
                f"  secondary {m}: p {s['p_value']:.3g}, Holm-adjusted {s['p_adjusted']:.3g}"
            )
    for s in out.get("steps", []):
        click.echo(f"  step: {s}")
