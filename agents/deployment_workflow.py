"""The mlops-deployment workflow: deploy, roll out, advance, abort, roll back or render a
model version, as a plain function over the tool dispatcher (so RBAC and audit apply to
every step).

Production (target ``local``) moves only with an approved promotion of the exact version:
given as ``approval_id``, or found among the approved requests for that version.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.errors import ApprovalRequired, GateFailed, InvalidInput
from policies.rbac import Actor
from tools.dispatcher import Dispatcher

MAX_AUTO_WAIT = 600.0


class DeploymentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_name: str = Field(min_length=1, max_length=128)
    action: Literal["deploy", "advance", "abort", "rollback", "status"] = "deploy"
    version: str | None = Field(default=None, pattern=r"^[0-9]{1,9}$")
    deployment_target: Literal["local", "staging", "kubernetes"] = "local"
    rollout_strategy: Literal["direct", "canary", "blue-green", "shadow"] = "direct"
    traffic_percentage: float | None = Field(default=None, gt=0, le=100)
    steps: list[float] | None = None
    approval_id: str | None = Field(default=None, pattern=r"^apr-[0-9a-f]{8}$")
    target_version: str | None = Field(default=None, pattern=r"^[0-9]{1,9}$")
    auto_advance: bool = Field(
        default=False, description="Walk every rollout step, health-checked, without stopping."
    )
    step_interval_seconds: float = Field(default=30.0, ge=0, le=MAX_AUTO_WAIT)
    min_requests: int = Field(default=0, ge=0)
    max_error_rate: float = Field(default=0.01, ge=0, le=1)
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
    run = _Run(dispatcher, actor, req)
    handler = {
        "deploy": run.deploy,
        "advance": run.advance,
        "abort": run.abort,
        "rollback": run.rollback,
        "status": run.status,
    }[req.action]
    return handler()


class _Run:
    def __init__(self, dispatcher: Dispatcher, actor: Actor, req: DeploymentRequest) -> None:
        self.dispatcher = dispatcher
        self.actor = actor
        self.req = req
        self.log: list[str] = []
        self.target = "local" if req.deployment_target == "kubernetes" else req.deployment_target

    def call(self, tool: str, args: dict[str, Any]) -> dict[str, Any]:
        out = self.dispatcher.call_or_raise(self.actor, tool, args)
        self.log.append(f"{tool}: ok")
        return out

    def result(self, status: str, **extra: Any) -> dict[str, Any]:
        return {
            "workflow": "mlops-deployment",
            "status": status,
            "action": self.req.action,
            "model_name": self.req.model_name,
            "target": self.req.deployment_target,
            "steps": self.log,
            **extra,
        }

    # Actions --------------------------------------------------------------------------
    def deploy(self) -> dict[str, Any]:
        req = self.req
        if req.version is None:
            raise InvalidInput("deploying needs a version", hint='Add "version": "N".')
        if req.deployment_target == "kubernetes":
            return self.render()
        approval = self.approval() if self.target == "local" else None
        if req.rollout_strategy == "direct":
            if self.target == "staging":
                out = self.call(
                    "deploy_to_staging",
                    {"name": req.model_name, "version": req.version, "reason": req.reason},
                )
                return self.result("deployed", deployment=out, gateway_url=out["gateway_url"])
            out = self.call("promote_model", {"approval_id": approval})
            return self.result("deployed", deployment=out, gateway_url=out["gateway_url"])
        args: dict[str, Any] = {
            "name": req.model_name,
            "version": req.version,
            "strategy": req.rollout_strategy,
            "target": self.target,
            "reason": req.reason,
        }
        if approval:
            args["approval_id"] = approval
        if req.traffic_percentage is not None and req.rollout_strategy == "canary":
            args["traffic_percentage"] = req.traffic_percentage
        if req.steps is not None:
            args["steps"] = req.steps
        out = self.call("start_rollout", args)
        self.log.append(f"rollout #{out['rollout']['id']}: {out['rollout']['now']}")
        if not req.auto_advance or out["rollout"]["state"] != "active":
            return self.result(
                _state(out),
                rollout=out["rollout"],
                routes=out["routes"],
                gateway_url=out["gateway_url"],
                next=out["next"],
            )
        return self.walk(out)

    def walk(self, out: dict[str, Any]) -> dict[str, Any]:
        """Advance step by step with a health check before each; abort on a failed check."""
        req = self.req
        deadline = time.monotonic() + MAX_AUTO_WAIT * len(out["rollout"]["steps"])
        while out["rollout"]["state"] == "active" and time.monotonic() < deadline:
            time.sleep(req.step_interval_seconds)
            try:
                out = self.call("advance_rollout", self._advance_args())
            except GateFailed as exc:
                self.log.append(f"health check failed: {exc.message}")
                aborted = self.call(
                    "abort_rollout",
                    {
                        "name": req.model_name,
                        "target": self.target,
                        "reason": f"auto-abort: {exc.message}"[:2000],
                    },
                )
                return self.result(
                    "aborted",
                    rollout=aborted["rollout"],
                    routes=aborted["routes"],
                    gateway_url=aborted["gateway_url"],
                    reason=exc.message,
                )
            self.log.append(f"rollout #{out['rollout']['id']}: {out['rollout']['now']}")
        return self._progress(out)

    def _progress(self, out: dict[str, Any]) -> dict[str, Any]:
        """A rollout that started or advanced: where it is and what comes next."""
        return self.result(
            _state(out),
            rollout=out["rollout"],
            routes=out["routes"],
            gateway_url=out["gateway_url"],
            next=out["next"],
        )

    def advance(self) -> dict[str, Any]:
        out = self.call("advance_rollout", self._advance_args())
        self.log.append(f"rollout #{out['rollout']['id']}: {out['rollout']['now']}")
        return self._progress(out)

    def abort(self) -> dict[str, Any]:
        out = self.call(
            "abort_rollout",
            {"name": self.req.model_name, "target": self.target, "reason": self.req.reason},
        )
        return self.result(
            "aborted", rollout=out["rollout"], routes=out["routes"], gateway_url=out["gateway_url"]
        )

    def rollback(self) -> dict[str, Any]:
        args: dict[str, Any] = {
            "name": self.req.model_name,
            "target": self.target,
            "reason": self.req.reason,
        }
        to = self.req.target_version or self.req.version
        if to:
            args["to_version"] = to
        out = self.call("rollback_deployment", args)
        return self.result(
            "rolled_back", revision=out["revision"], live_versions=out["live_versions"]
        )

    def status(self) -> dict[str, Any]:
        out = self.call("get_deployment", {"name": self.req.model_name, "target": self.target})
        return self.result("ok", deployment=out)

    def render(self) -> dict[str, Any]:
        from core.serving.k8s import RenderedManifests, write_bundle

        req = self.req
        args: dict[str, Any] = {
            "name": req.model_name,
            "version": req.version,
            "strategy": req.rollout_strategy,
        }
        if req.traffic_percentage is not None:
            args["traffic_percentage"] = req.traffic_percentage
        if req.image:
            args["image"] = req.image
        if req.approval_id:
            args["approval_id"] = req.approval_id
        else:
            found = self._find_approval(required=False)
            if found:
                args["approval_id"] = found
        out = self.call("render_deployment", args)
        out_dir = Path(req.output_dir or f"deploy/{req.model_name}-r{out['revision']}")
        written = write_bundle(
            RenderedManifests(out["files"], out["artifacts"], out["note"]), out_dir
        )
        self.log.append(f"wrote {len(written)} files and artifacts under {out_dir}")
        return self.result(
            "rendered",
            output_dir=str(out_dir),
            files=sorted(out["files"]),
            routes=out["routes"],
            applied=False,
            note=out["note"],
        )

    # Helpers --------------------------------------------------------------------------
    def _advance_args(self) -> dict[str, Any]:
        return {
            "name": self.req.model_name,
            "target": self.target,
            "min_requests": self.req.min_requests,
            "max_error_rate": self.req.max_error_rate,
            "reason": self.req.reason,
        }

    def approval(self) -> str:
        return self.req.approval_id or self._find_approval(required=True)

    def _find_approval(self, *, required: bool) -> str | None:
        req = self.req
        out = self.call("list_approvals", {"status": "approved"})
        matches = [
            a
            for a in out["approvals"]
            if a["model_name"] == req.model_name and a["version"] == req.version
        ]
        if matches:
            chosen = max(matches, key=lambda a: a.get("decided_at") or "")
            self.log.append(
                f"using approval {chosen['id']} (approved by {chosen.get('decided_by')})"
            )
            return chosen["id"]
        if required:
            raise ApprovalRequired(
                f"production traffic moves to {req.model_name} v{req.version} only with an "
                "approved promotion, and there is none",
                hint=f"Request one: `agent tool request_promotion` for v{req.version}, have it "
                "approved, then run this again (or use deployment_target staging).",
            )
        return None


def _state(out: dict[str, Any]) -> str:
    state = out["rollout"]["state"]
    return "rolling_out" if state == "active" else state
