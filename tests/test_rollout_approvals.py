"""Production rollouts run an approved promotion's plan for exactly the candidate artifact;
staging needs no approval; people with deploy:rollback roll back to an approved version; roles
without deploy permissions, and every agent, are refused."""

from __future__ import annotations

import pytest

from tests.test_serving_helpers import MODEL, approve, env, serving_env

__all__ = ["env", "serving_env"]
pytestmark = pytest.mark.slow


def _code(rt, actor, tool, args) -> str | None:  # noqa: ANN001
    res = rt.dispatcher.call(actor, tool, args)
    return None if res.ok else res.error.code


def test_production_canary_requires_an_approved_promotion_of_that_version(env):
    rt = env.runtime("approvals")
    alice, dana = rt.services.policy.human("alice"), rt.services.policy.human("dana")
    base, cand = env.versions["lr_onnx"], env.versions["rf_onnx"]
    promoted = rt.dispatcher.call_or_raise(
        alice, "promote_model", {"approval_id": approve(rt, MODEL, base)}
    )
    canary = {"name": MODEL, "version": cand, "strategy": "canary", "traffic_percentage": 10}
    plan = {"strategy": "canary", "steps": [10.0, 50.0, 100.0]}

    assert _code(rt, dana, "start_rollout", canary) == "approval_required"
    pending = rt.services.approvals.create(
        MODEL, cand, {"candidate": {"artifact_sha256": "x"}}, dana
    )
    assert (
        _code(rt, dana, "start_rollout", {**canary, "approval_id": pending.id})
        == "approval_required"
    )
    rejected = rt.services.approvals.create(
        MODEL, cand, {"candidate": {"artifact_sha256": "x"}}, dana
    )
    rt.dispatcher.call_or_raise(
        alice,
        "decide_approval",
        {"approval_id": rejected.id, "approve": False, "evidence_hash": rejected.evidence_hash},
    )
    assert (
        _code(rt, dana, "start_rollout", {**canary, "approval_id": rejected.id})
        == "approval_required"
    )
    other = approve(rt, MODEL, env.versions["lr"])  # approved, but for another version
    assert _code(rt, dana, "start_rollout", {**canary, "approval_id": other}) == "approval_required"
    wrong_sha = rt.services.approvals.create(
        MODEL, cand, {"candidate": {"artifact_sha256": "0" * 64}}, dana, plan=plan
    )
    rt.dispatcher.call_or_raise(
        alice,
        "decide_approval",
        {"approval_id": wrong_sha.id, "approve": True, "evidence_hash": wrong_sha.evidence_hash},
    )
    assert _code(rt, dana, "start_rollout", {**canary, "approval_id": wrong_sha.id}) == "conflict"
    qa, agent = rt.services.policy.human("bob"), rt.services.policy.agent("qa-tester", "bob")
    direct = approve(rt, MODEL, cand)  # approves a direct deploy, not this canary
    assert _code(rt, dana, "start_rollout", {**canary, "approval_id": direct}) == "conflict"
    good = approve(rt, MODEL, cand, plan=plan)
    assert _code(rt, qa, "start_rollout", {**canary, "approval_id": good}) == "permission_denied"
    assert _code(rt, agent, "start_rollout", {**canary, "approval_id": good}) == "permission_denied"
    # Nothing moved: the approved executor's revision is still the live one.
    assert rt.services.deployments.current(MODEL).revision == promoted["revision"]

    started = rt.dispatcher.call_or_raise(dana, "start_rollout", {**canary, "approval_id": good})
    assert started["rollout"]["weight"] == 10.0 and started["rollout"]["approval_id"] == good
    again = rt.dispatcher.call_or_raise(dana, "start_rollout", {**canary, "approval_id": good})
    assert again["rollout"]["id"] == started["rollout"]["id"]  # idempotent on the approval
    assert rt.services.registry.alias_version(MODEL, "champion") == base  # not before 100 %

    # A person with deploy:rollback returns to an earlier approved version directly; QA (no
    # deploy:rollback) may not, and neither may any agent.
    assert _code(rt, qa, "rollback_deployment", {"name": MODEL}) == "permission_denied"
    mlops = rt.services.policy.agent("mlops-engineer", "dana")
    assert _code(rt, mlops, "rollback_deployment", {"name": MODEL}) == "permission_denied"
    back = rt.dispatcher.call_or_raise(
        dana, "rollback_deployment", {"name": MODEL, "reason": "test"}
    )
    assert back["live_versions"] == [base]
    assert rt.services.deployments.rollouts.history(MODEL)[0].state == "rolled_back"
    assert _code(rt, dana, "advance_rollout", {"name": MODEL}) == "not_found"


def test_staging_rollouts_need_no_approval_and_abort_restores_the_baseline(env):
    rt = env.runtime("staging")
    dana = rt.services.policy.human("dana")
    base, cand = env.versions["lr_onnx"], env.versions["rf_onnx"]
    canary = {"name": MODEL, "version": cand, "environment": "staging", "traffic_percentage": 25}
    assert _code(rt, dana, "start_rollout", canary) == "conflict"  # no baseline yet
    rt.dispatcher.call_or_raise(dana, "deploy_to_staging", {"name": MODEL, "version": base})
    started = rt.dispatcher.call_or_raise(dana, "start_rollout", canary)
    assert {r["version"]: r["weight"] for r in started["routes"]} == {base: 75.0, cand: 25.0}
    assert started["rollout"]["steps"] == [25.0, 50.0, 100.0]
    assert _code(rt, dana, "start_rollout", canary) == "conflict"  # one rollout at a time
    aborted = rt.dispatcher.call_or_raise(
        dana, "abort_rollout", {"name": MODEL, "environment": "staging"}
    )
    assert aborted["rollout"]["state"] == "aborted"
    assert [(r["version"], r["weight"]) for r in aborted["routes"]] == [(base, 100.0)]
    assert rt.services.deployments.current(MODEL) is None  # production untouched
    status = rt.dispatcher.call_or_raise(
        dana, "get_deployment", {"name": MODEL, "environment": "staging"}
    )
    assert [h["action"] for h in status["history"]] == ["abort", "rollout", "deploy"]
    assert status["rollout"] is None and status["health"]["status"] == "ok"
