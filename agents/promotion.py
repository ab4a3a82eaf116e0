"""The production promotion workflow (LangGraph, persisted with SqliteSaver).

gather evidence -> gates -> QATester validation -> open approval request -> await approval
(``interrupt``) -> executor -> post-deploy check. Nodes are plain ``(state) -> update``
functions that act through the dispatcher as agent profiles on behalf of the requester; the
await node has no side effect before its interrupt, and the executor is idempotent on the
approval id, so a resumed or replayed thread deploys at most once.
"""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import Annotated, Any, TypedDict

from core.errors import Conflict, NotFound
from policies.gates import GateReport, check_promotion
from policies.rbac import Actor
from tools.context import Services
from tools.dispatcher import Dispatcher

ENGINEER_PROFILE = "ml-engineer"
QA_PROFILE = "qa-tester"


def _merge_log(a: list[str] | None, b: list[str] | None) -> list[str]:
    return (a or []) + (b or [])


class PromotionState(TypedDict, total=False):
    model_name: str
    version: str
    dataset: str
    target: str
    requester: str
    thread_id: str
    evidence: dict[str, Any]
    gates: dict[str, Any]
    validation: dict[str, Any]
    approval_id: str
    evidence_hash: str
    decision: str
    execution: dict[str, Any]
    health: dict[str, Any]
    status: str  # running | blocked | pending_approval | rejected | deployed | deploy_unhealthy
    log: Annotated[list[str], _merge_log]


class PromotionWorkflow:
    def __init__(self, services: Services, dispatcher: Dispatcher, checkpoint_db: Path) -> None:
        from langgraph.checkpoint.sqlite import SqliteSaver

        self.services = services
        self.dispatcher = dispatcher
        checkpoint_db.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(checkpoint_db), check_same_thread=False)
        self.graph = self._build().compile(checkpointer=SqliteSaver(self._conn))

    # Actors ---------------------------------------------------------------------------
    def _agent(self, profile: str, state: PromotionState) -> Actor:
        return self.services.policy.agent(profile, state["requester"])

    def _call(
        self, profile: str, state: PromotionState, tool: str, args: dict[str, Any]
    ) -> dict[str, Any]:
        return self.dispatcher.call_or_raise(self._agent(profile, state), tool, args)

    def _args(self, state: PromotionState) -> dict[str, Any]:
        return {
            "name": state["model_name"],
            "version": state["version"],
            "dataset": state["dataset"],
            "target": state["target"],
        }

    # Nodes ----------------------------------------------------------------------------
    def gather_evidence(self, state: PromotionState) -> PromotionState:
        out = self._call(ENGINEER_PROFILE, state, "collect_promotion_evidence", self._args(state))
        return {"evidence": out["evidence"], "log": [f"{ENGINEER_PROFILE}: gathered evidence"]}

    def gates(self, state: PromotionState) -> PromotionState:
        report = check_promotion(state["evidence"], self.services.thresholds)
        status = "running" if report.passed else "blocked"
        return {
            "gates": report.model_dump(),
            "status": status,
            "log": [f"gates: {report.summary()}"],
        }

    def qa_validation(self, state: PromotionState) -> PromotionState:
        out = self._call(QA_PROFILE, state, "record_validation", self._args(state))
        status = "running" if out["verdict"] == "PASSED" else "blocked"
        note = out["verdict"] + (f" ({'; '.join(out['reasons'])})" if out["reasons"] else "")
        return {"validation": out, "status": status, "log": [f"{QA_PROFILE}: validation {note}"]}

    def request_approval(self, state: PromotionState) -> PromotionState:
        out = self._call(
            ENGINEER_PROFILE,
            state,
            "open_approval_request",
            {**self._args(state), "thread_id": state["thread_id"]},
        )
        return {
            "approval_id": out["approval_id"],
            "evidence_hash": out["evidence_hash"],
            "status": "pending_approval",
            "log": [f"approval {out['approval_id']} requested"],
        }

    def await_approval(self, state: PromotionState) -> PromotionState:
        from langgraph.types import interrupt

        # Nothing before this line may have a side effect: the node re-runs on resume.
        interrupt({"approval_id": state["approval_id"], "evidence_hash": state["evidence_hash"]})
        # The decision is read from the approval store, never taken from the resume value.
        req = self.services.approvals.get(state["approval_id"])
        if req.status.value == "approved":
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
            ENGINEER_PROFILE, state, "promote_model", {"approval_id": state["approval_id"]}
        )
        return {
            "execution": out,
            "log": [f"deployed v{out['version']} as revision {out['revision']}"],
        }

    def post_deploy_check(self, state: PromotionState) -> PromotionState:
        out = self._call(ENGINEER_PROFILE, state, "get_deployment", {"name": state["model_name"]})
        health = out.get("health") or {"status": "not running"}
        served = [v["version"] for v in health.get("versions", [])]
        ok = (
            health.get("status") == "ok"
            and health.get("honesty_compliant")
            and state["version"] in served
        )
        return {
            "health": health,
            "status": "deployed" if ok else "deploy_unhealthy",
            "log": [f"post-deploy check: {'healthy' if ok else health}"],
        }

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
        self, actor: Actor, name: str, version: str, dataset: str, target: str = "target"
    ) -> dict[str, Any]:
        """Run until the approval interrupt (or a block) and say what happened."""
        thread_id = f"promo-{uuid.uuid4().hex[:12]}"
        requester = actor.responsible_human
        state: PromotionState = {
            "model_name": name,
            "version": str(version),
            "dataset": dataset,
            "target": target,
            "requester": requester,
            "thread_id": thread_id,
            "status": "running",
            "log": [],
        }
        final = self.graph.invoke(state, self._cfg(thread_id))
        return self._summary(final, thread_id)

    def resume(self, approval_id: str) -> dict[str, Any]:
        """Continue a decided promotion: after the decision, or after a crash mid-execution."""
        from langgraph.types import Command

        req = self.services.approvals.get(approval_id)
        if not req.thread_id:
            raise NotFound(f"{approval_id} has no workflow thread")
        cfg = self._cfg(req.thread_id)
        snap = self.graph.get_state(cfg)
        if not snap.next:
            if not snap.values:
                raise NotFound(f"workflow thread {req.thread_id} of {approval_id} not found")
            return self._summary(snap.values, req.thread_id)
        if req.status.value == "pending":
            raise Conflict(
                f"{approval_id} is still pending",
                hint=f"Decide it first: `agent approvals approve {approval_id} --as NAME`.",
            )
        waiting = any(t.interrupts for t in snap.tasks)
        final = self.graph.invoke(
            Command(resume={"approval_id": approval_id}) if waiting else None, cfg
        )
        return self._summary(final, req.thread_id)

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
        elif status == "pending_approval":
            approvers = [a for a in self.services.policy.approvers() if a != final.get("requester")]
            who = approvers[0] if approvers else "APPROVER"
            out["approve_command"] = f"agent approvals approve {final['approval_id']} --as {who}"
            out["message"] = f"waiting for a human approval ({', '.join(approvers)} may approve)"
        elif status in ("deployed", "deploy_unhealthy"):
            out["execution"] = final.get("execution")
            out["health"] = final.get("health")
            out["message"] = (
                "deployed and healthy"
                if status == "deployed"
                else "deployed but the health check failed"
            )
        else:
            out["message"] = status
        return out


def _continue_if_running(next_node: str):  # noqa: ANN202
    from langgraph.graph import END

    def route(state: PromotionState) -> str:
        return next_node if state.get("status") == "running" else END

    return route
