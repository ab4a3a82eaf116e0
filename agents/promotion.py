"""The production promotion workflow (LangGraph, persisted with SqliteSaver).

gather evidence -> gates -> automated QA re-evaluation -> open approval request -> await
approval (``interrupt``) -> executor -> post-deploy check. Nodes are plain ``(state) -> update``
functions that act through the dispatcher as the ``promotion-workflow`` principal, on behalf of
the requester until the decision and of the person who decided (or resumed) after it. The
await node has no side effect before its interrupt, and the executor is idempotent on the
approval id, so a resumed or replayed thread deploys at most once.
"""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import Annotated, Any, TypedDict

from core.errors import Conflict, NotFound, PermissionDenied
from policies.gates import GateReport, check_promotion
from policies.rbac import Actor
from tools.context import Services
from tools.dispatcher import Dispatcher

PRINCIPAL = "promotion-workflow"
EXECUTOR = "approval-executor"


def _merge_log(a: list[str] | None, b: list[str] | None) -> list[str]:
    return (a or []) + (b or [])


class PromotionState(TypedDict, total=False):
    model_name: str
    version: str
    dataset: str
    label_column: str | None
    plan: dict[str, Any]
    requester: str
    requested_via: str
    requester_authenticated: bool
    acting_for: str
    thread_id: str
    evidence: dict[str, Any]
    gates: dict[str, Any]
    validation: dict[str, Any]
    approval_id: str
    evidence_hash: str
    decision: str
    execution: dict[str, Any]
    health: dict[str, Any]
    # running | blocked | pending_approval | pending_validation | rejected | deployed |
    # rolling_out | deploy_unhealthy
    status: str
    log: Annotated[list[str], _merge_log]


class PromotionWorkflow:
    def __init__(self, services: Services, dispatcher: Dispatcher, checkpoint_db: Path) -> None:
        from langgraph.checkpoint.sqlite import SqliteSaver

        self.services = services
        self.dispatcher = dispatcher
        checkpoint_db.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(checkpoint_db), check_same_thread=False)
        self.graph = self._build().compile(checkpointer=SqliteSaver(self._conn))

    # Actors ----------------------------------------------------------------------------
    def _principal(self, state: PromotionState, principal: str = PRINCIPAL) -> Actor:
        person = self.services.policy.human(
            state.get("acting_for") or state["requester"],
            authenticated=bool(state.get("requester_authenticated")),
        )
        return self.services.policy.workflow(principal, person)

    def _call(
        self,
        state: PromotionState,
        tool: str,
        args: dict[str, Any],
        *,
        internal: bool = False,
        principal: str = PRINCIPAL,
    ) -> dict[str, Any]:
        return self.dispatcher.call_or_raise(
            self._principal(state, principal), tool, args, internal=internal
        )

    def _args(self, state: PromotionState) -> dict[str, Any]:
        return {
            "name": state["model_name"],
            "version": state["version"],
            "dataset": state["dataset"],
            # threads checkpointed before the rename say "target"
            # None: the version's recorded label column (threads from before the rename
            # say "target")
            "label_column": state.get("label_column") or state.get("target"),
        }

    # Nodes ----------------------------------------------------------------------------
    def gather_evidence(self, state: PromotionState) -> PromotionState:
        out = self._call(state, "collect_promotion_evidence", self._args(state))
        return {"evidence": out["evidence"], "log": [f"{PRINCIPAL}: gathered evidence"]}

    def gates(self, state: PromotionState) -> PromotionState:
        report = check_promotion(state["evidence"], self.services.thresholds)
        status = "running" if report.passed else "blocked"
        return {
            "gates": report.model_dump(),
            "status": status,
            "log": [f"gates: {report.summary()}"],
        }

    def qa_validation(self, state: PromotionState) -> PromotionState:
        out = self._call(state, "automated_validation", self._args(state), internal=True)
        status = "running" if out["verdict"] == "PASSED" else "blocked"
        note = out["verdict"] + (f" ({'; '.join(out['reasons'])})" if out["reasons"] else "")
        return {
            "validation": out,
            "status": status,
            "log": [
                f"automated QA ({PRINCIPAL}): {note}, re-evaluated on dataset sha256 "
                f"{out['dataset_sha256'][:12]}… (validation {out['validation_id']})"
            ],
        }

    def request_approval(self, state: PromotionState) -> PromotionState:
        out = self._call(
            state,
            "open_approval_request",
            {
                **self._args(state),
                "plan": state.get("plan") or {},
                "thread_id": state["thread_id"],
                "requester": state["requester"],
                "requested_via": state.get("requested_via"),
            },
            internal=True,
        )
        waiting = out["awaiting_human_validation"]
        return {
            "approval_id": out["approval_id"],
            "evidence_hash": out["evidence_hash"],
            "status": "pending_validation" if waiting else "pending_approval",
            "log": [
                f"approval {out['approval_id']} requested"
                + (" (waits for a human QATester first)" if waiting else "")
            ],
        }

    def await_approval(self, state: PromotionState) -> PromotionState:
        from langgraph.types import interrupt

        # Nothing before this line may have a side effect: the node re-runs on resume.
        interrupt({"approval_id": state["approval_id"], "evidence_hash": state["evidence_hash"]})
        # The decision is read from the approval store, never taken from the resume value.
        req = self.services.approvals.get(state["approval_id"])
        if req.status.value in ("approved", "executed"):
            return {
                "decision": "approved",
                "status": "running",
                "log": [f"approved by {req.decided_by}"],
            }
        if req.status.value == "pending":
            raise Conflict(f"{req.id} has no decision yet; resume only after a decision")
        return {
            "decision": req.status.value,
            "status": "rejected",
            "log": [f"{req.status.value} by {req.decided_by or 'expiry'}: {req.reason}"],
        }

    def executor(self, state: PromotionState) -> PromotionState:
        out = self._call(
            state, "promote_model", {"approval_id": state["approval_id"]}, principal=EXECUTOR
        )
        what = (
            f"deployed v{out['version']} as revision {out['revision']}"
            if out["strategy"] == "direct"
            else f"started the approved {out['strategy']} rollout of v{out['version']} "
            f"(revision {out['revision']})"
        )
        return {"execution": out, "log": [what]}

    def post_deploy_check(self, state: PromotionState) -> PromotionState:
        out = state["execution"]
        health = self._call(state, "get_deployment", {"name": state["model_name"]}).get(
            "health"
        ) or {"status": "not running"}
        if not out["serving"]:
            status, note = "deploy_unhealthy", "; ".join(out["serving_problems"])
        elif out["strategy"] != "direct":
            status, note = "rolling_out", f"the gateway serves revision {out['revision']}"
        elif out["champion"] == state["version"] and health.get("honesty_compliant"):
            status, note = "deployed", f"healthy; champion is v{out['champion']}"
        else:
            status, note = "deploy_unhealthy", f"health {health}"
        return {"health": health, "status": status, "log": [f"post-deploy check: {note}"]}

    def _build(self):  # noqa: ANN202
        from langgraph.graph import END, START, StateGraph

        g = StateGraph(PromotionState)
        for name in (
            "gather_evidence",
            "gates",
            "qa_validation",
            "request_approval",
            "await_approval",
            "executor",
            "post_deploy_check",
        ):
            g.add_node(name, getattr(self, name))
        g.add_edge(START, "gather_evidence")
        g.add_edge("gather_evidence", "gates")
        g.add_conditional_edges("gates", _continue_if_running("qa_validation"))
        g.add_conditional_edges("qa_validation", _continue_if_running("request_approval"))
        g.add_edge("request_approval", "await_approval")
        g.add_conditional_edges("await_approval", _continue_if_running("executor"))
        g.add_edge("executor", "post_deploy_check")
        g.add_edge("post_deploy_check", END)
        return g

    # Entry points ---------------------------------------------------------------------
    def start(
        self,
        actor: Actor,
        name: str,
        version: str,
        dataset: str,
        label_column: str | None = None,
        plan: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Run until the approval interrupt (or a block) and say what happened."""
        thread_id = f"promo-{uuid.uuid4().hex[:12]}"
        requester = actor.responsible_human
        state: PromotionState = {
            "model_name": name,
            "version": str(version),
            "dataset": dataset,
            "label_column": label_column,
            "plan": plan or {"strategy": "direct"},
            "requester": requester,
            "requested_via": actor.describe(),
            "requester_authenticated": actor.authenticated,
            "acting_for": requester,
            "thread_id": thread_id,
            "status": "running",
            "log": [],
        }
        final = self.graph.invoke(state, self._cfg(thread_id))
        return self._summary(final, thread_id)

    def resume(
        self, approval_id: str, actor: Actor, *, after_decision: bool = False
    ) -> dict[str, Any]:
        """Continue a decided promotion: right after the decision (``after_decision``: the
        approval is the authority), or later after a crash, which needs ``deploy:production``
        and is audited with the person who resumed."""
        from langgraph.types import Command

        services = self.services
        req = services.approvals.get(approval_id)
        if not req.thread_id:
            raise NotFound(f"{approval_id} has no workflow thread")
        if not after_decision:
            try:
                services.policy.require(actor, "deploy:production")
            except PermissionDenied as exc:
                services.audit.append(
                    actor,
                    "approvals.resume",
                    "deploy:production",
                    decision="denied",
                    outcome=exc.code,
                    detail={"approval_id": approval_id},
                    reason=exc.message,
                )
                raise
            services.audit.append(
                actor,
                "approvals.resume",
                "deploy:production",
                decision="allowed",
                outcome="ok",
                detail={
                    "approval_id": approval_id,
                    "model": req.model_name,
                    "version": req.version,
                },
            )
        cfg = self._cfg(req.thread_id)
        snap = self.graph.get_state(cfg)
        if not snap.next:
            if not snap.values:
                raise NotFound(f"workflow thread {req.thread_id} of {approval_id} not found")
            return self._current(req, snap.values)
        if req.status.value == "pending":
            raise Conflict(
                f"{approval_id} is still pending",
                hint=f"Decide it first: `agent approvals approve {approval_id} --as NAME`.",
            )
        # The person whose decision (or resume) the executor acts on.
        self.graph.update_state(cfg, {"acting_for": actor.responsible_human})
        waiting = any(t.interrupts for t in snap.tasks)
        final = self.graph.invoke(
            Command(resume={"approval_id": approval_id}) if waiting else None, cfg
        )
        return self._summary(final, req.thread_id)

    def _current(self, req: Any, values: dict[str, Any]) -> dict[str, Any]:
        """A finished thread: what is true now (the approval and production), not the old result."""
        out = self._summary(values, req.thread_id)
        current = self.services.deployments.current(req.model_name, "production")
        live = current.live_versions if current else []
        champion = self.services.registry.alias_version(req.model_name, "champion")
        out["status"] = f"finished ({values.get('status', 'unknown')})"
        out["message"] = (
            f"this workflow already finished; now {req.id} is {req.status.value}, production "
            f"serves {', '.join('v' + v for v in live) or 'nothing'}, champion is "
            f"{'v' + champion if champion else 'unset'}"
        )
        out["current"] = {
            "approval_status": req.status.value,
            "live_versions": live,
            "revision": current.revision if current else None,
            "champion": champion,
        }
        return out

    def state(self, thread_id: str) -> dict[str, Any]:
        snap = self.graph.get_state(self._cfg(thread_id))
        return {"values": snap.values, "next": list(snap.next)}

    @staticmethod
    def _cfg(thread_id: str) -> dict[str, Any]:
        return {"configurable": {"thread_id": thread_id}}

    def _summary(self, final: dict[str, Any], thread_id: str) -> dict[str, Any]:
        gates = GateReport(**final["gates"]) if final.get("gates") else None
        status = final.get("status", "running")
        out: dict[str, Any] = {
            "status": status,
            "thread_id": thread_id,
            "approval_id": final.get("approval_id"),
            "gates": [c.model_dump() for c in gates.checks] if gates else [],
            "log": final.get("log", []),
        }
        if status == "blocked":
            reasons = (
                gates.summary()
                if gates and not gates.passed
                else "; ".join(final.get("validation", {}).get("reasons", []))
            )
            out["message"] = f"promotion blocked: {reasons}"
        elif status in ("pending_approval", "pending_validation"):
            policy = self.services.policy
            apr = final["approval_id"]
            approvers = [a for a in policy.approvers() if a != final.get("requester")]
            who = approvers[0] if approvers else "APPROVER"
            out["show_command"] = f"agent approvals show {apr} --as {who}"
            out["approve_command"] = (
                f"agent approvals approve {apr} --as {who} --evidence-hash "
                f"{self.services.approvals.get(apr).evidence_hash}"
            )
            if status == "pending_validation":
                qa = [
                    p.name
                    for p in policy.people.values()
                    if p.name != final.get("requester")
                    and "validation:record" in policy.permissions(policy.human(p.name))
                ]
                out["validate_command"] = (
                    f"agent approvals validate {apr} --as {qa[0] if qa else 'QATESTER'}"
                )
                out["message"] = (
                    f"waiting for a human QATester's validation ({', '.join(qa) or 'none listed'}), "
                    f"then an approver ({', '.join(approvers)})"
                )
            else:
                out["message"] = (
                    f"waiting for a human approval ({', '.join(approvers)} may approve)"
                )
        elif status in ("deployed", "deploy_unhealthy", "rolling_out"):
            out["execution"] = final.get("execution")
            out["health"] = final.get("health")
            out["message"] = {
                "deployed": "deployed and healthy",
                "rolling_out": "the approved rollout started; advance it step by step with "
                f"`agent deploy rollout advance {final.get('model_name')}`",
                "deploy_unhealthy": "deployed but the health check failed",
            }[status]
        else:
            out["message"] = status
        return out


def _continue_if_running(next_node: str):  # noqa: ANN202
    from langgraph.graph import END

    def route(state: PromotionState) -> str:
        return next_node if state.get("status") == "running" else END

    return route
