"""The paths around the approval gate, tried as an attacker would, end to end on real models
and a real gateway: effective rights, facts vs tags, the internal workflow step, executed-once
approvals, approved plans, rollback requests and resume rights."""

from __future__ import annotations

import pytest

from core.errors import ApprovalRequired, Conflict, GateFailed, PermissionDenied
from policies.approvals import ApprovalStatus

pytestmark = pytest.mark.slow


def _people(rt):
    p = rt.services.policy
    return {n: p.human(n) for n in ("alice", "bob", "carol", "dana")}


def _promote(reg, version, plan=None, who="dana"):
    rt = reg["rt"]
    args = {"name": reg["name"], "version": version, "dataset": reg["holdout"]}
    if plan:
        args["plan"] = plan
    return rt.dispatcher.call_or_raise(rt.services.policy.human(who), "request_promotion", args)


def _approve(rt, approval_id, who="alice"):
    req = rt.services.approvals.get(approval_id)
    person = rt.services.policy.human(who)
    rt.dispatcher.call_or_raise(
        person,
        "decide_approval",
        {"approval_id": approval_id, "approve": True, "evidence_hash": req.evidence_hash},
    )
    return rt.run_decided(approval_id, person)


def test_an_agent_holds_only_what_its_person_holds(registered):
    rt = registered["rt"]
    policy = rt.services.policy
    args = {"name": registered["name"], "version": "2", "dataset": registered["holdout"]}
    for actor in (policy.human("carol"), policy.agent("qa-tester", "carol")):
        res = rt.dispatcher.call(actor, "record_validation", args)
        assert not res.ok and res.error.code == "permission_denied", actor
    assert rt.services.validations.for_version(registered["name"], "2") == []
    # bob is a QATester: his qa-tester agent may validate, and the record says who it was.
    out = rt.dispatcher.call_or_raise(policy.agent("qa-tester", "bob"), "record_validation", args)
    rec = rt.services.validations.get(out["validation_id"])
    assert rec.validator == "qa-tester" and rec.on_behalf_of == "bob"
    assert rec.validator_kind == "agent"


def test_a_passed_tag_is_not_a_validation(registered):
    """Tags are data: a PASSED validation_status set through MLflow opens no approval."""
    rt = registered["rt"]
    reg = rt.services.registry
    for key, value in {
        "validation_status": "PASSED",
        "validation_dataset_sha256": "0" * 64,
        "validated_by": "bob",
    }.items():
        reg.client.set_model_version_tag(registered["name"], "2", key, value)
    wf = rt.services.policy.workflow("promotion-workflow", "dana")
    res = rt.dispatcher.call(
        wf,
        "open_approval_request",
        {
            "name": registered["name"],
            "version": "2",
            "dataset": registered["holdout"],
            "thread_id": "t",
            "requester": "dana",
        },
        internal=True,
    )
    assert (
        not res.ok
        and res.error.code == "gate_failed"
        and "no PASSED validation" in res.error.message
    )
    assert rt.services.approvals.list() == []
    # Not in any catalog a person or an agent can call.
    for actor in (
        rt.services.policy.human("alice"),
        rt.services.policy.agent("ml-engineer", "alice"),
    ):
        res = rt.dispatcher.call(actor, "open_approval_request", {"name": "x"}, internal=True)
        assert not res.ok and res.error.code == "unknown_tool"
    assert "open_approval_request" not in {t.name for t in rt.dispatcher.tools_for(wf)}


def test_automated_qa_runs_as_the_workflow_principal_and_says_so(registered):
    rt = registered["rt"]
    out = _promote(registered, "1")
    assert out["status"] == "pending_approval", out
    req = rt.services.approvals.get(out["approval_id"])
    val = req.evidence["validation"]
    assert val["validator"] == "promotion-workflow" and val["validator_kind"] == "workflow"
    assert val["on_behalf_of"] == "dana"
    assert "automated QA re-evaluation" in val["statement"]
    assert req.evidence["dataset"]["sha256"][:12] in val["statement"]
    assert req.evidence["policy_digest"] == rt.services.policy_digest == req.policy_digest
    assert req.plan == {
        "strategy": "direct",
        "steps": None,
        "max_error_rate": 0.01,
        "min_requests_per_step": None,
    }


def test_promotion_is_executed_once_then_superseded(registered):
    rt = registered["rt"]
    name = registered["name"]
    first = _promote(registered, "1")["approval_id"]
    assert _approve(rt, first)["status"] == "deployed"
    alice = rt.services.policy.human("alice")
    # Replaying while it is live: a no-op.
    again = rt.dispatcher.call_or_raise(alice, "promote_model", {"approval_id": first})
    assert again["already_executed"] and rt.services.deployments.count_revisions(name) == 1
    second = _promote(registered, "2")["approval_id"]
    assert _approve(rt, second, who="bob")["status"] == "deployed"
    assert rt.services.registry.alias_version(name, "champion") == "2"
    assert rt.services.approvals.get(first).status == ApprovalStatus.SUPERSEDED
    res = rt.dispatcher.call(alice, "promote_model", {"approval_id": first})
    assert not res.ok and res.error.code == "conflict" and "superseded" in res.error.message
    assert rt.services.registry.alias_version(name, "champion") == "2"
    assert rt.services.deployments.current(name).live_versions == ["2"]
    # Agents never execute promotions, whatever their person may do.
    res = rt.dispatcher.call(
        rt.services.policy.agent("ml-engineer", "alice"), "promote_model", {"approval_id": second}
    )
    assert not res.ok and res.error.code == "permission_denied"

    # Rollback: an agent may only request it; a person decides; the champion follows.
    agent = rt.services.policy.agent("mlops-engineer", "alice")
    res = rt.dispatcher.call(agent, "rollback_deployment", {"name": name, "to_version": "1"})
    assert not res.ok and res.error.code == "permission_denied"
    asked = rt.dispatcher.call_or_raise(
        agent, "request_rollback", {"name": name, "to_version": "1", "reason": "latency"}
    )
    assert rt.services.deployments.current(name).live_versions == ["2"]
    twice = rt.dispatcher.call_or_raise(
        agent, "request_rollback", {"name": name, "to_version": "1", "reason": "latency"}
    )
    assert twice["already_requested"] and twice["approval_id"] == asked["approval_id"]
    rb = rt.services.approvals.get(asked["approval_id"])
    assert rb.action == "rollback_production" and rb.requested_by == "alice"
    with pytest.raises(PermissionDenied):  # the person it acted for cannot approve it
        rt.services.approvals.decide(
            rb.id,
            rt.services.policy.human("alice"),
            approve=True,
            seen_evidence_hash=rb.evidence_hash,
        )
    done = _approve(rt, rb.id, who="bob")
    assert done["status"] == "rolled_back"
    assert rt.services.deployments.current(name).live_versions == ["1"]
    assert rt.services.registry.alias_version(name, "champion") == "1"
    assert rt.services.approvals.get(rb.id).status == ApprovalStatus.EXECUTED
    assert rt.services.approvals.get(second).status == ApprovalStatus.SUPERSEDED
    rows = rt.services.audit.entries(action="deploy.rollback")
    assert rows and rows[0]["actor"] == "approval-executor" and rows[0]["on_behalf_of"] == "bob"
    assert rt.services.audit.check().ok


def test_rollback_only_returns_to_an_approved_version(registered):
    rt = registered["rt"]
    name = registered["name"]
    alice = rt.services.policy.human("alice")
    assert _approve(rt, _promote(registered, "2")["approval_id"])["status"] == "deployed"
    res = rt.dispatcher.call(alice, "rollback_deployment", {"name": name, "to_version": "1"})
    assert not res.ok and res.error.code in ("not_found", "conflict")
    assert rt.services.deployments.current(name).live_versions == ["2"]


def test_the_approved_plan_is_what_runs(registered):
    rt = registered["rt"]
    name = registered["name"]
    alice = rt.services.policy.human("alice")
    assert _approve(rt, _promote(registered, "1")["approval_id"])["status"] == "deployed"
    out = _promote(registered, "2", plan={"strategy": "canary", "steps": [10, 50, 100]})
    aid = out["approval_id"]
    assert rt.services.approvals.get(aid).plan["steps"] == [10.0, 50.0, 100.0]
    # A different plan with this approval is refused before anything moves.
    res = rt.dispatcher.call(
        alice,
        "start_rollout",
        {
            "name": name,
            "version": "2",
            "strategy": "canary",
            "steps": [50, 100],
            "approval_id": aid,
        },
    )
    assert not res.ok  # not approved yet, or not the approved plan
    done = _approve(rt, aid, who="bob")
    assert done["status"] == "rolling_out", done
    current = rt.services.deployments.current(name)
    assert current.weights() == {"1": 90.0, "2": 10.0}
    assert rt.services.registry.alias_version(name, "champion") == "1"
    # The same approval never starts a second rollout: while its rollout runs, asking again
    # is a no-op; once that rollout is aborted, the approval is spent.
    again = {
        "name": name,
        "version": "2",
        "strategy": "canary",
        "steps": [10, 50, 100],
        "approval_id": aid,
    }
    res = rt.dispatcher.call(alice, "start_rollout", again)
    assert res.ok and res.output["rollout"]["id"] == done["execution"]["rollout_id"]
    assert rt.services.deployments.current(name).revision == current.revision
    # Agents cannot advance or abort production.
    agent = rt.services.policy.agent("mlops-engineer", "alice")
    for tool in ("advance_rollout", "abort_rollout"):
        res = rt.dispatcher.call(agent, tool, {"name": name})
        assert not res.ok and res.error.code == "permission_denied", tool
    # The policy's minimum requests per step holds: no traffic yet, no advance.
    res = rt.dispatcher.call(alice, "advance_rollout", {"name": name, "wait_seconds": 0})
    assert not res.ok and res.error.code == "gate_failed" and "fewer than 100" in res.error.message
    rt.dispatcher.call_or_raise(alice, "abort_rollout", {"name": name, "reason": "test"})
    assert rt.services.deployments.current(name).live_versions == ["1"]
    res = rt.dispatcher.call(alice, "start_rollout", again)
    assert not res.ok and "superseded" in res.error.message
    assert rt.services.deployments.current(name).live_versions == ["1"]


def test_resume_needs_deploy_production_and_is_audited(registered):
    rt = registered["rt"]
    aid = _promote(registered, "1")["approval_id"]
    req = rt.services.approvals.get(aid)
    bob = rt.services.policy.human("bob")
    rt.dispatcher.call_or_raise(
        bob,
        "decide_approval",
        {"approval_id": aid, "approve": True, "evidence_hash": req.evidence_hash},
    )
    with pytest.raises(PermissionDenied):
        rt.promotion.resume(aid, bob)
    assert rt.services.deployments.count_revisions(registered["name"]) == 0
    carol_agent = rt.services.policy.agent("architect", "carol")
    with pytest.raises(PermissionDenied):
        rt.promotion.resume(aid, carol_agent)
    done = rt.promotion.resume(aid, rt.services.policy.human("alice"))
    assert done["status"] == "deployed"
    rows = rt.services.audit.entries(action="approvals.resume")
    assert [(r["actor"], r["decision"]) for r in reversed(rows)] == [
        ("bob", "denied"),
        ("architect", "denied"),
        ("alice", "allowed"),
    ]
    executed = rt.services.approvals.get(aid)
    assert executed.status == ApprovalStatus.EXECUTED and "for alice" in executed.executed_by
    # After it finished, resume reports what is true now.
    later = rt.promotion.resume(aid, rt.services.policy.human("alice"))
    assert later["current"]["live_versions"] == ["1"] and later["current"]["champion"] == "1"


def test_require_human_validation_end_to_end(registered, monkeypatch):
    rt = registered["rt"]
    policy = rt.services.policy
    strict = policy.model_copy(
        update={"validation": policy.validation.model_copy(update={"require_human": True})}
    )
    monkeypatch.setattr(rt.services, "policy", strict)
    monkeypatch.setattr(rt.services.approvals, "policy", strict)
    out = _promote(registered, "1")
    assert out["status"] == "pending_validation" and "validate_command" in out
    aid = out["approval_id"]
    req = rt.services.approvals.get(aid)
    alice = policy.human("alice")
    with pytest.raises(Conflict, match="human QATester"):
        rt.services.approvals.decide(aid, alice, approve=True, seen_evidence_hash=req.evidence_hash)
    res = rt.dispatcher.call(policy.human("dana"), "validate_approval", {"approval_id": aid})
    assert not res.ok  # dana requested it (and holds no validation:record)
    res = rt.dispatcher.call(
        policy.agent("qa-tester", "bob"), "validate_approval", {"approval_id": aid}
    )
    assert not res.ok  # agents are not the human QATester the policy asks for
    val = rt.dispatcher.call_or_raise(
        policy.human("bob"), "validate_approval", {"approval_id": aid}
    )
    assert val["verdict"] == "PASSED"
    req = rt.services.approvals.get(aid)
    assert req.evidence["human_validation"]["validator"] == "bob"
    assert _approve(rt, aid)["status"] == "deployed"


def test_gates_and_approval_checks_raise_typed_errors():
    # Keep the error classes in the contract used above.
    assert issubclass(ApprovalRequired, Exception) and issubclass(GateFailed, Exception)


def test_an_alias_moved_through_mlflow_changes_neither_traffic_nor_the_comparison(registered):
    rt = registered["rt"]
    name = registered["name"]
    aid = _promote(registered, "2")["approval_id"]
    assert _approve(rt, aid)["status"] == "deployed"
    # Someone with MLflow access points the alias at the weaker v1 directly.
    rt.services.registry.client.set_registered_model_alias(name, "champion", "1")
    from tools.evaluation_tools import production_champion

    assert production_champion(rt.services, name) == "2"
    assert rt.services.deployments.current(name).live_versions == ["2"]
    evidence = rt.dispatcher.call_or_raise(
        rt.services.policy.human("dana"),
        "collect_promotion_evidence",
        {"name": name, "version": "1", "dataset": registered["holdout"]},
    )["evidence"]
    assert evidence["champion"]["version"] == "2"
