"""A plan that cannot run is refused when it is requested, and again when it is approved or
executed if the routes changed since, never after an approval was spent on it: a promotion
mid-rollout, an A/B split on a model mid-canary."""

from __future__ import annotations

import pytest

from core.errors import Conflict
from policies.approvals import ApprovalStatus
from tests.test_governance_paths import _approve, _promote
from tests.test_hints import COMMAND, check_command

pytestmark = pytest.mark.slow

CANARY = {"strategy": "canary", "steps": [10, 50, 100]}


def _mid_canary(reg) -> dict:
    """v1 live in production, then an approved canary of v2 at 10 % (the rollout active)."""
    rt = reg["rt"]
    assert _approve(rt, _promote(reg, "1")["approval_id"])["status"] == "deployed"
    done = _approve(rt, _promote(reg, "2", plan=CANARY)["approval_id"], who="bob")
    assert done["status"] == "rolling_out", done
    assert rt.services.deployments.rollouts.active(reg["name"]) is not None
    return done


def _pending(rt) -> list:
    return rt.services.approvals.list(ApprovalStatus.PENDING)


def _hint_commands_exist(exc: Conflict) -> None:
    commands = COMMAND.findall(exc.hint or "")
    assert commands, exc.hint
    for command in commands:
        assert check_command(command) == [], command


@pytest.mark.parametrize("plan", [None, {"strategy": "blue-green"}])
def test_a_promotion_mid_rollout_is_refused_when_requested(registered, plan):
    rt = registered["rt"]
    _mid_canary(registered)
    before = len(rt.services.approvals.list(None))
    with pytest.raises(Conflict, match=r"cannot run now: rollout #\d+ .* still in progress") as e:
        _promote(registered, "2", plan=plan)
    _hint_commands_exist(e.value)
    assert len(rt.services.approvals.list(None)) == before  # no request opened


def test_an_ab_test_on_a_model_mid_canary_is_refused_before_any_approval(registered):
    from agents.monitoring_workflow import run_ab_test

    rt = registered["rt"]
    name = registered["name"]
    _mid_canary(registered)
    before = len(rt.services.approvals.list(None))
    data = {
        "experiment_name": "exp",
        "control": {"model_id": f"{name}/1", "traffic_percent": 50},
        "treatment": {"model_id": f"{name}/2", "traffic_percent": 50},
        "dataset": registered["holdout"],
    }
    with pytest.raises(Conflict, match=r"A/B split .* cannot start now: rollout #\d+") as e:
        run_ab_test(rt.dispatcher, rt.services.policy.human("dana"), data)
    _hint_commands_exist(e.value)
    assert len(rt.services.approvals.list(None)) == before and _pending(rt) == []


def _start_rollout_behind_the_requests_back(rt, name: str, version: str) -> None:
    """Routes change after a request was made (as another process would: straight through
    the core service), so its plan can no longer run."""
    info = rt.services.registry.get(name, version)
    from tools.approved import served_version

    served = served_version(rt.services, info).model_copy(update={"weight": 0})
    rt.services.deployments.rollouts.start(
        name, served, strategy="canary", actor="test", approval_id=None
    )


def test_approving_a_plan_that_cannot_run_now_is_refused_and_the_request_stays_pending(
    registered,
):
    rt = registered["rt"]
    name = registered["name"]
    assert _approve(rt, _promote(registered, "1")["approval_id"])["status"] == "deployed"
    aid = _promote(registered, "2", plan=CANARY)["approval_id"]
    _start_rollout_behind_the_requests_back(rt, name, "2")
    req = rt.services.approvals.get(aid)
    res = rt.dispatcher.call(
        rt.services.policy.human("alice"),
        "decide_approval",
        {"approval_id": aid, "approve": True, "evidence_hash": req.evidence_hash},
    )
    assert not res.ok and res.error.code == "conflict", res
    assert "still in progress" in res.error.message
    after = rt.services.approvals.get(aid)
    assert after.status == ApprovalStatus.PENDING and after.decided_by is None
    # Once the rollout in the way is aborted, the same request is approved and runs.
    rt.services.deployments.rollouts.abort(name, actor="test")
    done = _approve(rt, aid)
    assert done["status"] == "rolling_out", done


def test_executing_an_approval_whose_plan_cannot_run_keeps_it_approved(registered):
    from tools.executor import execute_promotion

    rt = registered["rt"]
    name = registered["name"]
    assert _approve(rt, _promote(registered, "1")["approval_id"])["status"] == "deployed"
    aid = _promote(registered, "2", plan=CANARY)["approval_id"]
    req = rt.services.approvals.get(aid)
    alice = rt.services.policy.human("alice")
    rt.dispatcher.call_or_raise(
        alice,
        "decide_approval",
        {"approval_id": aid, "approve": True, "evidence_hash": req.evidence_hash},
    )
    _start_rollout_behind_the_requests_back(rt, name, "2")
    revision = rt.services.deployments.current(name).revision
    with pytest.raises(Conflict, match="still in progress"):
        execute_promotion(rt.services, alice, aid)
    assert rt.services.approvals.get(aid).status == ApprovalStatus.APPROVED
    assert rt.services.deployments.current(name).revision == revision  # nothing moved
