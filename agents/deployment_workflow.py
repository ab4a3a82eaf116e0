"""The mlops-deployment workflow: deploy, roll out, advance, abort, roll back or render a
model version, as a plain function over the tool dispatcher (so RBAC and audit apply to
every step).

Production (environment ``production``) runs only an approved rollout plan:

- without ``approval_id`` it looks for a promotion of exactly this version with exactly this
  plan (direct, canary steps, blue-green). None: it requests one (``request_promotion``,
  which gathers the evidence, runs the gates and QA, and stops at the human approval) and
  returns the commands that review and approve it; approving runs the plan. Pending: the same
  commands. Approved and not yet run: it runs it. Executed and live: it reports where it is.
- with ``approval_id`` it uses that request, whose plan must not contradict the input.

Staging deploys or rolls out directly. After every switch the workflow waits until the
gateway serves the new revision before it reports health, and its status says what changed:
a run that changed routes never reports a failure status, and a run that changed nothing
never reports a deployment.
"""

from __future__ import annotations

import time
import warnings
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from core.deployment import normalize_environment
from core.errors import (
    Conflict,
    GateFailed,
    InvalidInput,
    ModelOpsError,
    NotFound,
    PermissionDenied,
)
from core.names import VERSION_OR_LABEL_PATTERN
from policies.rbac import Actor
from tools.dispatcher import Dispatcher
from tools.promotion_tools import RolloutPlan

MAX_AUTO_WAIT = 600.0
# How long auto_advance keeps retrying a step that has not served enough requests yet.
TRAFFIC_WAIT = 60.0
PRODUCTION = "production"
PROMOTE = "promote_to_production"
# Statuses of an approval that this workflow can still act on (or report on).
LIVE_STATUSES = ("pending", "approved", "executed")
_FEWER_THAN = "fewer than"


class DeploymentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _old_names(cls, data: Any) -> Any:
        if isinstance(data, dict) and "target_column" in data and "label_column" not in data:
            warnings.warn(
                "mlops-deployment input 'target_column' is now 'label_column' "
                "(accepted for one release)",
                FutureWarning,
                stacklevel=2,
            )
            data = {**data, "label_column": data["target_column"]}
            del data["target_column"]
        return data

    model_name: str = Field(min_length=1, max_length=128)
    action: Literal["deploy", "advance", "abort", "rollback", "status"] = "deploy"
    version: str | None = Field(
        default=None,
        pattern=VERSION_OR_LABEL_PATTERN,
        description="Version number, or the registrant's version label (2.1.0).",
    )
    deployment_target: Annotated[
        Literal["production", "staging", "kubernetes"], BeforeValidator(normalize_environment)
    ] = "production"
    rollout_strategy: Literal["direct", "canary", "blue-green", "shadow"] = "direct"
    traffic_percentage: float | None = Field(default=None, gt=0, le=100)
    steps: list[float] | None = Field(default=None, min_length=1, max_length=20)
    approval_id: str | None = Field(default=None, pattern=r"^apr-[0-9a-f]{8}$")
    target_version: str | None = Field(default=None, pattern=VERSION_OR_LABEL_PATTERN)
    auto_advance: bool = Field(
        default=False, description="Walk every rollout step, health-checked, without stopping."
    )
    step_interval_seconds: float = Field(default=30.0, ge=0, le=MAX_AUTO_WAIT)
    min_requests: int | None = Field(
        default=None,
        ge=0,
        description="Candidate requests a step must serve before the next "
        "(production default: the policy's rollout.min_requests_per_step).",
    )
    max_error_rate: float = Field(default=0.01, ge=0, le=1)
    dataset: str | None = Field(
        default=None,
        min_length=1,
        max_length=1024,
        description="Production: the held-out data a promotion request's evidence is measured "
        "on. Default: the data file of the model's latest promotion request, else "
        "logged:holdout (the version's own logged holdout).",
    )
    label_column: str = Field(default="target", min_length=1, max_length=256)
    health_wait_seconds: float = Field(
        default=30.0, ge=0, le=300, description="How long to wait for the gateway to switch."
    )
    output_dir: str | None = Field(default=None, max_length=1024)
    image: str | None = Field(default=None, max_length=256)
    reason: str = Field(default="", max_length=2000)


def run_deployment_workflow(dispatcher: Dispatcher, actor: Actor, input: dict) -> dict:
    """Run one mlops-deployment request; returns what happened, step by step."""
    try:
        req = DeploymentRequest.model_validate(input)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '(input)'}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise InvalidInput(
            f"invalid mlops-deployment input: {problems}",
            hint='e.g. {"model_name": "m", "version": "3", "rollout_strategy": "canary", '
            '"traffic_percentage": 10} or {"model_name": "m", "action": "rollback"}',
        ) from exc
    req = _resolve_labels(dispatcher, actor, req)
    run = _Run(dispatcher, actor, req)
    handler = {
        "deploy": run.deploy,
        "advance": run.advance,
        "abort": run.abort,
        "rollback": run.rollback,
        "status": run.status,
    }[req.action]
    try:
        return handler()
    except ModelOpsError as exc:
        if run.last is None:
            raise  # nothing changed: the error is the outcome
        return run.after_error(exc)


def _resolve_labels(
    dispatcher: Dispatcher, actor: Actor, req: DeploymentRequest
) -> DeploymentRequest:
    """Version labels ("2.1.0") become the registry version they name (through the audited
    ``get_model`` tool); everything after works on numbers, as approvals and routes do."""
    update: dict[str, str] = {}
    for field in ("version", "target_version"):
        value = getattr(req, field)
        if value is not None and not value.isdigit():
            out = dispatcher.call_or_raise(
                actor, "get_model", {"name": req.model_name, "version": value}
            )
            update[field] = out["versions"][0]["version"]
    return req.model_copy(update=update) if update else req


class _Run:
    def __init__(self, dispatcher: Dispatcher, actor: Actor, req: DeploymentRequest) -> None:
        self.dispatcher = dispatcher
        self.actor = actor
        self.req = req
        self.log: list[str] = []
        self.environment = (
            PRODUCTION if req.deployment_target == "kubernetes" else req.deployment_target
        )
        # The last result after something changed; an error after it does not hide the change.
        self.last: dict[str, Any] | None = None

    @property
    def policy(self):  # noqa: ANN201
        return self.dispatcher.services.policy

    def call(self, tool: str, args: dict[str, Any], *, quiet: bool = False) -> dict[str, Any]:
        out = self.dispatcher.call_or_raise(self.actor, tool, args)
        if not quiet:
            self.log.append(f"{tool}: ok")
        return out

    def result(self, status: str, message: str, *, changed: bool, **extra: Any) -> dict[str, Any]:
        out = {
            "workflow": "mlops-deployment",
            "status": status,
            "message": message,
            "changed": changed,
            "action": self.req.action,
            "model_name": self.req.model_name,
            "environment": self.req.deployment_target,
            "steps": list(self.log),
            **extra,
        }
        if changed:
            self.last = out
        return out

    def after_error(self, exc: ModelOpsError) -> dict[str, Any]:
        """Something changed, then a later step failed: report the change and the failure."""
        assert self.last is not None
        self.log.append(f"then: {exc.code}: {exc.message}")
        return {
            **self.last,
            "steps": list(self.log),
            "message": f"{self.last['message']}; a later step failed: {exc.message}",
            "problem": exc.to_dict(),
        }

    # Actions --------------------------------------------------------------------------
    def deploy(self) -> dict[str, Any]:
        req = self.req
        if req.version is None:
            raise InvalidInput("deploying needs a version", hint='Add "version": "N".')
        if req.deployment_target == "kubernetes":
            return self.render()
        if self.environment == PRODUCTION:
            return self.production()
        return self.staging()

    def staging(self) -> dict[str, Any]:
        req = self.req
        if req.rollout_strategy == "direct":
            self._no_weights_for("direct")
            out = self.call(
                "deploy_to_staging",
                {"name": req.model_name, "version": req.version, "reason": req.reason},
            )
            gateway = self.wait_serving()
            return self.result(
                "deployed",
                f"staging serves v{', v'.join(out['live_versions'])} (revision {out['revision']})",
                changed=True,
                revision=out["revision"],
                live_versions=out["live_versions"],
                gateway_url=out["gateway_url"],
                gateway=gateway,
            )
        args: dict[str, Any] = {
            "name": req.model_name,
            "version": req.version,
            "strategy": req.rollout_strategy,
            "environment": self.environment,
            "reason": req.reason,
        }
        if req.rollout_strategy == "canary":
            if req.traffic_percentage is not None:
                args["traffic_percentage"] = req.traffic_percentage
            if req.steps is not None:
                args["steps"] = req.steps
        else:
            self._no_weights_for(req.rollout_strategy)
        out = self.call("start_rollout", args)
        self.log.append(f"rollout #{out['rollout']['id']}: {out['rollout']['now']}")
        res = self._progress(out, started=True)
        if req.auto_advance and out["rollout"]["state"] == "active":
            return self.walk(out, res)
        return res

    def production(self) -> dict[str, Any]:
        req = self.req
        plan = self._plan()
        if req.approval_id:
            approval = self.call("get_approval", {"approval_id": req.approval_id})["approval"]
            self._check_given(approval, plan)
            if approval["status"] == "pending":
                return self.awaiting(approval)
            if approval["status"] in ("approved", "executed"):
                return self.execute(approval)
            raise ApprovalState(approval)
        for approval in self._find_matching(plan):
            if approval["status"] == "pending":
                return self.awaiting(approval)
            if approval["status"] == "approved":
                return self.execute(approval)
            try:  # executed: a no-op report while it is live, refused once it is not
                return self.execute(approval)
            except Conflict as exc:
                self.log.append(f"{approval['id']} is no longer live: {exc.message}")
        return self.request_promotion(plan)

    def request_promotion(self, plan: dict[str, Any]) -> dict[str, Any]:
        req = self.req
        dataset, label_column = self._dataset()
        out = self.call(
            "request_promotion",
            {
                "name": req.model_name,
                "version": req.version,
                "dataset": dataset,
                "label_column": label_column,
                "plan": plan,
            },
        )
        self.log.extend(f"  {line}" for line in out.get("log", []))
        if out["status"] == "blocked" or not out.get("approval_id"):
            failed = [g["message"] for g in out.get("gates", []) if not g.get("passed", True)]
            raise GateFailed(
                out.get("message") or f"promotion of {req.model_name} v{req.version} blocked",
                hint=(
                    "Nothing changed in production. Failed gates: " + "; ".join(failed)
                    if failed
                    else "Nothing changed in production."
                ),
            )
        approval = self.call("get_approval", {"approval_id": out["approval_id"]})["approval"]
        return self.awaiting(approval, requested=True)

    def awaiting(self, approval: dict[str, Any], *, requested: bool = False) -> dict[str, Any]:
        """A promotion (or rollback) request that waits for people: the exact commands."""
        apr = approval["id"]
        approvers = [a for a in self.policy.approvers() if a != approval["requested_by"]]
        who = approvers[0] if approvers else "APPROVER"
        commands = {
            "show": f"agent approvals show {apr} --as {who}",
            "approve": (
                f"agent approvals approve {apr} --as {who} --evidence-hash "
                f"{approval['evidence_hash']}"
            ),
        }
        status = "pending_approval"
        evidence = approval.get("evidence") or {}
        if (
            approval.get("action", PROMOTE) == PROMOTE
            and self.policy.validation.require_human
            and not evidence.get("human_validation")
        ):
            status = "pending_validation"
            qa = [
                p.name
                for p in self.policy.people.values()
                if p.name != approval["requested_by"]
                and self.policy.authorize(self.policy.human(p.name), "validation:record").allowed
            ]
            commands = {
                "validate": f"agent approvals validate {apr} --as {qa[0] if qa else 'QATESTER'}",
                **commands,
            }
            commands["approve"] += "  (after the validation: the evidence hash changes)"
        what = _describe_request(approval, self._policy_floor())
        head = f"requested {apr}:" if requested else f"{apr} waits for a decision:"
        runs = (
            "approving it runs the plan on production"
            if approval.get("action", PROMOTE) == PROMOTE
            else "approving it rolls production back"
        )
        message = (
            f"{head} {what}; nothing changed in production yet. "
            f"Approvers: {', '.join(approvers) or 'none listed'}; {runs}."
        )
        return self.result(
            status,
            message,
            changed=False,
            approval_id=apr,
            plan=approval.get("plan"),
            approvers=approvers,
            commands=commands,
        )

    def execute(self, approval: dict[str, Any]) -> dict[str, Any]:
        """Run an approved promotion's plan (once: the executor makes a second run of an
        executed approval a no-op report while it is live, and refuses it after; the tools
        refuse a different plan)."""
        req = self.req
        plan = approval.get("plan") or {"strategy": "direct"}
        strategy = plan.get("strategy", "direct")
        again = approval["status"] == "executed"
        self.log.append(
            f"{approval['id']} was executed earlier; reading where it stands"
            if again
            else f"running {approval['id']} (approved by {approval.get('decided_by')})"
        )
        if strategy == "direct":
            out = self.call("promote_model", {"approval_id": approval["id"]})
            gateway = self.wait_serving()
            return self.result(
                "deployed",
                f"production serves v{out['version']} (revision {out['revision']}, "
                f"approval {approval['id']}); champion is "
                f"{'v' + out['champion'] if out.get('champion') else 'unset'}"
                + (" (executed earlier; nothing was run again)" if again else ""),
                changed=not out.get("already_executed"),
                approval_id=approval["id"],
                plan=plan,
                revision=out["revision"],
                gateway_url=out.get("gateway_url"),
                gateway=gateway,
            )
        args: dict[str, Any] = {
            "name": req.model_name,
            "version": req.version,
            "strategy": strategy,
            "environment": PRODUCTION,
            "approval_id": approval["id"],
            "reason": req.reason,
        }
        if strategy == "canary":
            args["steps"] = plan.get("steps")
        out = self.call("start_rollout", args)
        self.log.append(f"rollout #{out['rollout']['id']}: {out['rollout']['now']}")
        res = self._progress(
            out, started=not again, changed=not again, approval_id=approval["id"], plan=plan
        )
        if req.auto_advance and out["rollout"]["state"] == "active":
            return self.walk(out, res)
        return res

    def walk(self, out: dict[str, Any], res: dict[str, Any]) -> dict[str, Any]:
        """Advance step by step with a health check before each; abort on a failed check.
        A step that has not served enough requests yet is not a failure: it is retried for
        a while (TRAFFIC_WAIT or three intervals), then the rollout stays where it is."""
        req = self.req
        deadline = time.monotonic() + MAX_AUTO_WAIT * len(out["rollout"]["steps"])
        patience = max(TRAFFIC_WAIT, 3 * req.step_interval_seconds)
        step_since = time.monotonic()
        waiting_for_traffic = ""
        while out["rollout"]["state"] == "active":
            now = time.monotonic()
            if now >= deadline or (waiting_for_traffic and now - step_since > patience):
                break
            time.sleep(req.step_interval_seconds)
            try:
                out = self.call("advance_rollout", self._advance_args())
            except GateFailed as exc:
                reasons = exc.message.split(": ", 1)[-1].split("; ")
                if all(_FEWER_THAN in r for r in reasons):
                    waiting_for_traffic = exc.message
                    if req.step_interval_seconds == 0:
                        time.sleep(1.0)
                    continue
                return self._auto_abort(exc)
            waiting_for_traffic = ""
            step_since = time.monotonic()
            self.log.append(f"rollout #{out['rollout']['id']}: {out['rollout']['now']}")
            res = self._progress(out)
        if waiting_for_traffic:
            self.log.append(f"stopped waiting: {waiting_for_traffic}")
            res = {
                **res,
                "steps": list(self.log),
                "message": f"{res['message']}; waiting for traffic: {waiting_for_traffic}",
            }
        return res

    def _auto_abort(self, exc: GateFailed) -> dict[str, Any]:
        req = self.req
        self.log.append(f"health check failed: {exc.message}")
        try:
            aborted = self.call(
                "abort_rollout",
                {
                    "name": req.model_name,
                    "environment": self.environment,
                    "reason": f"auto-abort: {exc.message}"[:2000],
                },
            )
        except PermissionDenied as denied:
            # The rollout stays at its step; a person with deploy:rollback ends it.
            raise PermissionDenied(
                f"the health check failed ({exc.message}) and {denied.message}",
                hint=f"A person aborts it: `agent deploy rollout abort {req.model_name} "
                f"--environment {self.environment}`.",
            ) from denied
        gateway = self.wait_serving()
        return self.result(
            "aborted",
            f"health check failed, rollout aborted: the routes from before it serve again "
            f"(revision {aborted['revision']})",
            changed=True,
            rollout=aborted["rollout"],
            routes=aborted["routes"],
            revision=aborted["revision"],
            gateway_url=aborted["gateway_url"],
            gateway=gateway,
            reason=exc.message,
        )

    def advance(self) -> dict[str, Any]:
        out = self.call("advance_rollout", self._advance_args())
        self.log.append(f"rollout #{out['rollout']['id']}: {out['rollout']['now']}")
        return self._progress(out)

    def abort(self) -> dict[str, Any]:
        out = self.call(
            "abort_rollout",
            {
                "name": self.req.model_name,
                "environment": self.environment,
                "reason": self.req.reason,
            },
        )
        gateway = self.wait_serving()
        return self.result(
            "aborted",
            f"rollout #{out['rollout']['id']} aborted: the routes from before it serve again "
            f"(revision {out['revision']})",
            changed=True,
            rollout=out["rollout"],
            routes=out["routes"],
            revision=out["revision"],
            gateway_url=out["gateway_url"],
            gateway=gateway,
        )

    def rollback(self) -> dict[str, Any]:
        req = self.req
        to = req.target_version or req.version
        policy = self.policy
        if (
            self.environment == PRODUCTION
            and not policy.authorize(self.actor, "deploy:rollback").allowed
            and policy.authorize(self.actor, "rollback:request").allowed
        ):
            # Agents (and people without deploy:rollback) ask; a listed human decides.
            args: dict[str, Any] = {
                "name": req.model_name,
                "reason": req.reason or "requested through the mlops-deployment workflow",
            }
            if to:
                args["to_version"] = to
            out = self.call("request_rollback", args)
            approval = self.call("get_approval", {"approval_id": out["approval_id"]})["approval"]
            return self.awaiting(approval, requested=True)
        args = {"name": req.model_name, "environment": self.environment, "reason": req.reason}
        if to:
            args["to_version"] = to
        out = self.call("rollback_deployment", args)
        gateway = self.wait_serving()
        return self.result(
            "rolled_back",
            f"{self.environment} serves v{', v'.join(out['live_versions'])} again "
            f"(revision {out['revision']})",
            changed=True,
            revision=out["revision"],
            live_versions=out["live_versions"],
            gateway=gateway,
        )

    def status(self) -> dict[str, Any]:
        out = self.call(
            "get_deployment", {"name": self.req.model_name, "environment": self.environment}
        )
        weights = ", ".join(f"v{v} {w:g}%" for v, w in out["weights"].items()) or "nothing"
        return self.result(
            "ok",
            f"{self.environment} serves {weights} (revision {out['revision']})",
            changed=False,
            deployment=out,
        )

    def render(self) -> dict[str, Any]:
        req = self.req
        args: dict[str, Any] = {
            "name": req.model_name,
            "version": req.version,
            "strategy": req.rollout_strategy,
            "write": True,
        }
        if req.output_dir:
            args["output_dir"] = req.output_dir
        if req.traffic_percentage is not None:
            args["traffic_percentage"] = req.traffic_percentage
        if req.image:
            args["image"] = req.image
        source = PRODUCTION
        if req.approval_id:
            args["approval_id"] = req.approval_id
        else:
            found = self._find_approved()
            if found:
                args["approval_id"] = found
            elif not self._live_on(PRODUCTION):
                # Manifests that would carry production traffic need an approved promotion
                # (render_deployment refuses them); without one the same version is rendered
                # as a staging deployment, and the result says how to get production's.
                source = "staging"
                args["source"] = source
                self.log.append(
                    f"no approved promotion of {req.model_name} v{req.version}: rendering it "
                    "as a staging deployment; for production manifests request one with "
                    f"`agent workflow run mlops-deployment --input "
                    f'\'{{"model_name": "{req.model_name}", "version": "{req.version}"}}\'`'
                )
        out = self.call("render_deployment", args)
        out_dir = out["output_dir"]
        self.log.append(f"wrote {len(out['files'])} files and the artifacts under {out_dir}")
        if out.get("kept_note"):
            self.log.append(out["kept_note"])
        return self.result(
            "rendered",
            f"wrote the {source} manifests to {out_dir} (not applied: applying them needs a "
            "Kubernetes cluster, `kubectl apply -f k8s/` after building the image)",
            changed=False,
            output_dir=out_dir,
            files=sorted(out["files"]),
            routes=out["routes"],
            applied=False,
            source_environment=source,
            note=out["note"],
            kept=out.get("kept", []),
        )

    # Helpers --------------------------------------------------------------------------
    def _live_on(self, environment: str) -> bool:
        """Whether ``environment`` already serves this version (its manifests need nothing new)."""
        try:
            out = self.call(
                "get_deployment",
                {"name": self.req.model_name, "environment": environment},
                quiet=True,
            )
        except NotFound:
            return False
        return self.req.version in (out.get("live_versions") or [])

    def _progress(
        self,
        out: dict[str, Any],
        *,
        started: bool = False,
        changed: bool = True,
        **extra: Any,
    ) -> dict[str, Any]:
        """A rollout that started or advanced (or, ``changed=False``, that an earlier run
        started): where it is, whether the gateway serves it, and what comes next."""
        rollout = out["rollout"]
        gateway = self.wait_serving()
        verb = "started" if started else "advanced" if changed else "in progress"
        status = _state(out)
        if status == "completed":
            message = f"rollout #{rollout['id']} completed: {rollout['now']}"
        else:
            message = (
                f"rollout #{rollout['id']} ({rollout['strategy']}) {verb}, step "
                f"{rollout['step']}/{len(rollout['steps'])}: {rollout['now']}"
            )
        if not changed:
            message += "; nothing was run again"
        return self.result(
            status,
            message,
            changed=changed,
            rollout=rollout,
            routes=out["routes"],
            revision=out["revision"],
            gateway_url=out["gateway_url"],
            gateway=gateway,
            next=out["next"],
            **extra,
        )

    def wait_serving(self) -> dict[str, Any]:
        """Wait (up to health_wait_seconds) until the gateway serves the deployment's current
        revision, then report its health. The gateway picks a revision up by polling and
        loads every version of it before it switches, so right after a change it still
        serves the old one for a moment: that is not a failure."""
        deadline = time.monotonic() + self.req.health_wait_seconds
        delay = 0.2
        polls = 0
        while True:
            d = self.call(
                "get_deployment",
                {"name": self.req.model_name, "environment": self.environment},
                quiet=True,
            )
            polls += 1
            view = _gateway_view(d)
            failed_to_load = str(view.get("last_reload_error") or "").startswith(
                f"revision {d['revision']}:"
            )
            if view["healthy"] or failed_to_load or time.monotonic() >= deadline:
                break
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
        if view["healthy"]:
            self.log.append(f"gateway serves revision {view['serving_revision']}: healthy")
        else:
            self.log.append("gateway check: " + "; ".join(view["problems"]))
        return view

    def _policy_floor(self) -> int | None:
        rollout = getattr(self.policy, "rollout", None)
        return getattr(rollout, "min_requests_per_step", None)

    def _advance_args(self) -> dict[str, Any]:
        args: dict[str, Any] = {
            "name": self.req.model_name,
            "environment": self.environment,
            "max_error_rate": self.req.max_error_rate,
            "reason": self.req.reason,
        }
        if self.req.min_requests is not None:
            args["min_requests"] = self.req.min_requests
        return args

    def _no_weights_for(self, strategy: str) -> None:
        if self.req.steps is not None or self.req.traffic_percentage is not None:
            raise InvalidInput(
                f"steps and traffic_percentage are for canary rollouts, not {strategy}",
                hint='Drop them, or use "rollout_strategy": "canary".',
            )

    def _plan(self) -> dict[str, Any]:
        """The production rollout plan this input asks for (what an approver approves)."""
        req = self.req
        if req.rollout_strategy == "shadow":
            raise InvalidInput(
                "production runs an approved plan (direct, canary or blue-green); shadow "
                "rollouts are for staging",
                hint='Use "deployment_target": "staging" for a shadow rollout.',
            )
        steps = None
        if req.rollout_strategy == "canary":
            steps = req.steps or _canary_steps(req.traffic_percentage)
        else:
            self._no_weights_for(req.rollout_strategy)
        try:
            plan = RolloutPlan(
                strategy=req.rollout_strategy,
                steps=steps,
                max_error_rate=req.max_error_rate,
                min_requests_per_step=req.min_requests,
            )
        except (ValidationError, ModelOpsError) as exc:
            message = exc.message if isinstance(exc, ModelOpsError) else str(exc)
            raise InvalidInput(f"invalid rollout plan: {message}") from exc
        return plan.model_dump()

    def _check_given(self, approval: dict[str, Any], plan: dict[str, Any]) -> None:
        """A given approval must be a promotion of this version whose plan the input does
        not contradict (what the input leaves out, the approval decides)."""
        req = self.req
        apr = approval["id"]
        if approval.get("action", PROMOTE) != PROMOTE:
            raise InvalidInput(
                f"{apr} is a {approval['action']} request, not a promotion",
                hint=f"Approving it runs it: `agent approvals show {apr}`.",
            )
        if approval["model_name"] != req.model_name or approval["version"] != req.version:
            raise InvalidInput(
                f"{apr} approves {approval['model_name']} v{approval['version']}, "
                f"not {req.model_name} v{req.version}",
                hint=f"See `agent approvals show {apr}`.",
            )
        approved = _normal(approval.get("plan") or {})
        given = self.req.model_fields_set
        clashes = []
        if "rollout_strategy" in given and plan["strategy"] != approved["strategy"]:
            clashes.append(f"strategy {plan['strategy']}")
        if given & {"steps", "traffic_percentage"} and plan["steps"] != approved["steps"]:
            clashes.append(f"steps {plan['steps']}")
        if "max_error_rate" in given and plan["max_error_rate"] != approved["max_error_rate"]:
            clashes.append(f"max_error_rate {plan['max_error_rate']}")
        if (
            "min_requests" in given
            and plan["min_requests_per_step"] != approved["min_requests_per_step"]
        ):
            clashes.append(f"min_requests {plan['min_requests_per_step']}")
        if clashes:
            raise PlanMismatch(
                f"{apr} approves {_describe_plan(approved, self._policy_floor())}, not {', '.join(clashes)}",
                hint=f"Run it as approved (leave those out, or see `agent approvals show "
                f"{apr}`), or run without approval_id to request a promotion with this plan.",
            )

    def _find_matching(self, plan: dict[str, Any]) -> list[dict[str, Any]]:
        """Promotions of this version with exactly this plan that are still in play:
        executed first (what production may be running), then approved, then pending;
        newest first within each."""
        req = self.req
        out = self.call("list_approvals", {})
        wanted = _normal(plan)
        matches = [
            a
            for a in out["approvals"]
            if a["model_name"] == req.model_name
            and a["version"] == req.version
            and a.get("action", PROMOTE) == PROMOTE
            and a["status"] in LIVE_STATUSES
            and _normal(a.get("plan") or {}) == wanted
        ]
        rank = {"executed": 0, "approved": 1, "pending": 2}
        matches.sort(key=lambda a: (rank[a["status"]], _neg_time(a.get("created_at"))))
        found = []
        for a in matches:
            self.log.append(f"found {a['id']} ({a['status']}) with this plan")
            found.append(self.call("get_approval", {"approval_id": a["id"]})["approval"])
        return found

    def _dataset(self) -> tuple[str, str]:
        """The evidence data for a new promotion request: as given; else the data file the
        model's latest promotion request was measured on (the champion's yardstick); else
        the version's own logged holdout."""
        req = self.req
        if req.dataset:
            return req.dataset, req.label_column
        earlier = [
            a
            for a in self.call("list_approvals", {})["approvals"]
            if a["model_name"] == req.model_name and a.get("action", PROMOTE) == PROMOTE
        ]
        for a in sorted(earlier, key=lambda a: _neg_time(a.get("created_at")))[:1]:
            full = self.call("get_approval", {"approval_id": a["id"]})["approval"]
            ds = (full.get("evidence") or {}).get("dataset") or {}
            path = ds.get("path")
            if path and not str(path).startswith("logged:"):
                self.log.append(f"evidence data: {path} (as in {a['id']})")
                return str(path), str(
                    ds.get("label_column") or ds.get("target") or req.label_column
                )
        self.log.append("evidence data: logged:holdout (the version's logged holdout)")
        return "logged:holdout", req.label_column

    def _find_approved(self) -> str | None:
        req = self.req
        out = self.call("list_approvals", {"status": "approved"})
        matches = [
            a
            for a in out["approvals"]
            if a["model_name"] == req.model_name
            and a["version"] == req.version
            and a.get("action", PROMOTE) == PROMOTE
        ]
        if not matches:
            return None
        chosen = max(matches, key=lambda a: a.get("decided_at") or "")
        self.log.append(f"using approval {chosen['id']} (approved by {chosen.get('decided_by')})")
        return chosen["id"]


class PlanMismatch(Conflict):
    """A given approval approves another plan than the input asks for."""


class ApprovalState(Conflict):
    """The approval can no longer be acted on (rejected, expired, superseded)."""

    def __init__(self, approval: dict[str, Any], *, note: str = "") -> None:
        apr = approval["id"]
        super().__init__(
            f"{apr} is {approval['status']}"
            + (f" ({note})" if note else "")
            + "; it runs nothing any more",
            hint=f"See `agent approvals show {apr}`; run without approval_id to request "
            "a new promotion with this plan.",
        )


# Plans ------------------------------------------------------------------------------------
def _canary_steps(first: float | None) -> list[float]:
    defaults = list(RolloutPlan(strategy="canary").steps or [])
    if first is None:
        return defaults
    return [float(first)] + [s for s in defaults if s > first]


def _normal(plan: dict[str, Any]) -> dict[str, Any]:
    strategy = plan.get("strategy", "direct")
    steps = plan.get("steps")
    return {
        "strategy": strategy,
        "steps": [float(s) for s in steps] if steps else None,
        "max_error_rate": float(plan.get("max_error_rate", 0.01)),
        "min_requests_per_step": plan.get("min_requests_per_step"),
    }


def _describe_plan(plan: dict[str, Any], policy_floor: int | None = None) -> str:
    p = _normal(plan)
    if p["strategy"] == "canary":
        text = "a canary " + " → ".join(f"{s:g}%" for s in p["steps"] or [])
    elif p["strategy"] == "blue-green":
        text = "a blue-green switch"
    else:
        return "a direct deploy"
    floor = p["min_requests_per_step"]
    if floor is None:
        floor_text = (
            f"{policy_floor} (the policy's)" if policy_floor is not None else "the policy's"
        )
    else:
        floor_text = str(floor)
    return (
        f"{text} (each step: at most {p['max_error_rate']:.1%} errors over at least "
        f"{floor_text} requests)"
    )


def _describe_request(approval: dict[str, Any], policy_floor: int | None = None) -> str:
    if approval.get("action", PROMOTE) != PROMOTE:
        return f"roll {approval['model_name']} back to v{approval['version']}"
    plan = approval.get("plan") or {}
    subject = f"{approval['model_name']} v{approval['version']}"
    return f"{_describe_plan(plan, policy_floor)} of {subject} to production"


def _neg_time(stamp: Any) -> float:
    from datetime import datetime

    try:
        return -datetime.fromisoformat(str(stamp)).timestamp()
    except ValueError:
        return 0.0


# Gateway and rollout views ---------------------------------------------------------------
def _gateway_view(d: dict[str, Any]) -> dict[str, Any]:
    gw = d.get("gateway") or {}
    health = d.get("health") or {}
    expected = d.get("revision")
    problems = []
    if not gw.get("running"):
        problems.append("the gateway is not running")
    elif not health:
        problems.append("the gateway did not answer /health")
    else:
        if health.get("status") not in ("ok",):
            problems.append(f"gateway status is {health.get('status')!r}")
        if health.get("revision") != expected:
            problems.append(f"gateway serves revision {health.get('revision')}, not {expected}")
        if health.get("last_reload_error"):
            problems.append(f"last reload failed: {health['last_reload_error']}")
    return {
        "url": gw.get("url"),
        "expected_revision": expected,
        "serving_revision": health.get("revision"),
        "healthy": not problems,
        "honesty_compliant": health.get("honesty_compliant"),
        "last_reload_error": health.get("last_reload_error"),
        "problems": problems,
    }


def _routes_of(d: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"version": v, "weight": w} for v, w in (d.get("weights") or {}).items()]


def _state(out: dict[str, Any]) -> str:
    state = out["rollout"]["state"]
    return "rolling_out" if state == "active" else state


# CLI rendering ----------------------------------------------------------------------------
def render(out: dict[str, Any]) -> None:
    """Print a workflow result for people (``agent workflow run mlops-deployment``)."""
    from agents.cli.common import console

    c = console()
    for line in out.get("steps", []):
        c.print(f"  · {line}")
    c.print(f"[bold]{out.get('status')}[/bold]: {out.get('message', '')}")
    routes = out.get("routes")
    if routes:
        c.print(
            "  routes: "
            + ", ".join(
                f"v{r['version']} {r['weight']:g}%" + (f" {r['role']}" if r.get("role") else "")
                for r in routes
            )
        )
    gw = out.get("gateway")
    if gw:
        if gw.get("healthy"):
            c.print(
                f"  gateway: {gw.get('url')} serves revision {gw.get('serving_revision')} "
                f"(honesty compliant: {gw.get('honesty_compliant')})"
            )
        else:
            c.print(
                f"  [yellow]gateway: {gw.get('url') or 'not running'}: "
                f"{'; '.join(gw.get('problems') or [])}[/yellow]"
            )
    if out.get("next"):
        c.print(f"  next: {out['next']}")
    commands = out.get("commands") or {}
    if commands:
        c.print("  Next, a person runs:")
        for cmd in commands.values():
            c.print(f"    {cmd}")
    if out.get("problem"):
        p = out["problem"]
        c.print(f"  [red]{p.get('code')}: {p.get('message')}[/red]")
        if p.get("hint"):
            c.print(f"  hint: {p['hint']}")
    if out.get("status") == "rendered":
        for f in out.get("files", []):
            c.print(f"  {f}")
        if out.get("note"):
            c.print(out["note"])
