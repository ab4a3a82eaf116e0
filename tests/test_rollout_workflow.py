"""The mlops-deployment workflow and `agent deploy start`.

Production: the workflow requests a promotion with exactly the asked plan and stops at the
approval with the commands that review and approve it; an approved request is run once; an
executed one is reported, never run again; a given approval with another plan is refused.
Staging deploys and rolls out directly. After each switch the workflow waits until the gateway
serves the new revision, and its status says what changed (never "failed" after a change,
never a deployment when nothing changed). ``start_gateway`` brings a stopped gateway back on
its last revision, for people only.

The fast tests drive the workflow with a scripted dispatcher; the slow ones run real gateways.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from agents.deployment_workflow import render, run_deployment_workflow
from core.errors import Conflict, GateFailed, InvalidInput, NotFound, error_from_code
from tests.test_serving_helpers import MODEL, approve, env, serving_env

__all__ = ["env", "serving_env"]


# A scripted dispatcher (fast) -------------------------------------------------------------
class _Policy:
    class validation:  # noqa: N801
        require_human = False

    class rollout:  # noqa: N801
        min_requests_per_step = 100

    people: dict[str, Any] = {}

    def approvers(self) -> list[str]:
        return ["alice", "bob"]

    def authorize(self, actor: Any, permission: str) -> Any:
        class D:
            allowed = True

        return D()


class _Services:
    policy = _Policy()


class ScriptedDispatcher:
    """Answers tool calls from a script: ``tool -> list of outputs or exceptions`` (the last
    one repeats)."""

    def __init__(self, script: dict[str, list[Any]]) -> None:
        self.script = script
        self.services = _Services()
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def call_or_raise(self, actor: Any, tool: str, args: dict[str, Any] | None = None) -> dict:
        self.calls.append((tool, dict(args or {})))
        answers = self.script[tool]
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def _deployment(revision: int, serving: int | None, *, running: bool = True) -> dict[str, Any]:
    return {
        "revision": revision,
        "weights": {"1": 90.0, "2": 10.0},
        "gateway": {"running": running, "url": "http://127.0.0.1:1"},
        "health": {"status": "ok", "revision": serving, "honesty_compliant": True}
        if running
        else None,
        "history": [],
        "rollout": None,
    }


def _rollout_out(revision: int, state: str = "active") -> dict[str, Any]:
    return {
        "rollout": {
            "id": 1,
            "strategy": "canary",
            "state": state,
            "step": 1,
            "steps": [10.0, 50.0, 100.0],
            "now": "v2 takes 10% of traffic",
            "approval_id": None,
        },
        "revision": revision,
        "routes": [
            {"version": "1", "weight": 90.0, "role": "primary", "slot": None},
            {"version": "2", "weight": 10.0, "role": "canary", "slot": None},
        ],
        "gateway_url": "http://127.0.0.1:1",
        "next": "advance: `agent deploy rollout advance m --environment staging`",
    }


STAGING_CANARY = {
    "model_name": "m",
    "version": "2",
    "deployment_target": "staging",
    "rollout_strategy": "canary",
    "traffic_percentage": 10,
}


def test_health_check_waits_for_the_new_revision():
    """Right after a switch the gateway still serves the old revision for a moment: the
    workflow waits for the new one instead of reporting it unhealthy."""
    d = ScriptedDispatcher(
        {
            "start_rollout": [_rollout_out(5)],
            "get_deployment": [_deployment(5, 4), _deployment(5, 4), _deployment(5, 5)],
        }
    )
    out = run_deployment_workflow(d, object(), STAGING_CANARY)
    assert out["status"] == "rolling_out" and out["changed"] is True
    assert out["gateway"]["healthy"] is True and out["gateway"]["serving_revision"] == 5
    assert [t for t, _ in d.calls].count("get_deployment") == 3
    assert "gateway serves revision 5: healthy" in out["steps"]


def test_a_gateway_that_never_switches_is_reported_not_hidden():
    d = ScriptedDispatcher(
        {"start_rollout": [_rollout_out(5)], "get_deployment": [_deployment(5, 4)]}
    )
    out = run_deployment_workflow(d, object(), {**STAGING_CANARY, "health_wait_seconds": 0.3})
    # The routes changed: the status says so, and the gateway problem is reported beside it.
    assert out["status"] == "rolling_out" and out["changed"] is True
    assert out["gateway"]["healthy"] is False
    assert out["gateway"]["problems"] == ["gateway serves revision 4, not 5"]


def test_an_error_after_a_change_does_not_turn_into_a_failure():
    d = ScriptedDispatcher(
        {
            "start_rollout": [_rollout_out(5)],
            "get_deployment": [_deployment(5, 5)],
            "advance_rollout": [
                error_from_code("gate_failed", "rollout #1 stays: v2 failed 9 of 10")
            ],
            "abort_rollout": [
                error_from_code("permission_denied", "no agent holds deploy:rollback")
            ],
        }
    )
    out = run_deployment_workflow(
        d, object(), {**STAGING_CANARY, "auto_advance": True, "step_interval_seconds": 0}
    )
    assert out["status"] == "rolling_out" and out["changed"] is True
    assert out["problem"]["code"] == "permission_denied"
    assert "agent deploy rollout abort m --environment staging" in out["problem"]["hint"]
    assert "a later step failed" in out["message"]


def test_nothing_changed_is_an_error_not_a_status():
    d = ScriptedDispatcher(
        {"start_rollout": [error_from_code("not_found", "m has no deployment on staging")]}
    )
    with pytest.raises(NotFound):
        run_deployment_workflow(d, object(), STAGING_CANARY)
    d = ScriptedDispatcher(
        {"advance_rollout": [error_from_code("gate_failed", "rollout #1 stays at step 1")]}
    )
    with pytest.raises(GateFailed):
        run_deployment_workflow(d, object(), {"model_name": "m", "action": "advance"})


def test_auto_advance_waits_for_traffic_instead_of_aborting(monkeypatch):
    import agents.deployment_workflow as wf

    monkeypatch.setattr(wf, "TRAFFIC_WAIT", 0.0)
    monkeypatch.setattr(wf.time, "sleep", lambda s: None)
    d = ScriptedDispatcher(
        {
            "start_rollout": [_rollout_out(5)],
            "get_deployment": [_deployment(5, 5)],
            "advance_rollout": [
                error_from_code(
                    "gate_failed",
                    "rollout #1 stays at step 1: v2 answered 3 requests, fewer than 100",
                )
            ],
        }
    )
    out = run_deployment_workflow(
        d, object(), {**STAGING_CANARY, "auto_advance": True, "step_interval_seconds": 0}
    )
    assert out["status"] == "rolling_out" and "waiting for traffic" in out["message"]
    assert "abort_rollout" not in [t for t, _ in d.calls]


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ({"rollout_strategy": "shadow"}, "shadow rollouts are for staging"),
        ({"rollout_strategy": "blue-green", "traffic_percentage": 10}, "for canary"),
        ({"rollout_strategy": "canary", "steps": [10, 50]}, "end at 100"),
    ],
)
def test_production_plans_are_checked_before_anything_runs(extra, match):
    d = ScriptedDispatcher({})
    with pytest.raises(InvalidInput, match=match):
        run_deployment_workflow(d, object(), {"model_name": "m", "version": "2", **extra})
    assert d.calls == []


def test_render_prints_the_status_line_and_the_commands(capsys):
    render(
        {
            "status": "pending_approval",
            "message": "requested apr-00000000: a canary; nothing changed in production yet.",
            "steps": ["request_promotion: ok"],
            "commands": {
                "show": "agent approvals show apr-00000000 --as bob",
                "approve": "agent approvals approve apr-00000000 --as bob --evidence-hash ab",
            },
        }
    )
    text = capsys.readouterr().out
    assert "pending_approval: requested apr-00000000" in text
    assert "agent approvals approve apr-00000000 --as bob --evidence-hash ab" in text


# Real gateways (slow) -----------------------------------------------------------------------
def _cli(capsys, *args: str) -> tuple[int, str, str]:
    from agents.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(list(args))
    captured = capsys.readouterr()
    return int(exc.value.code or 0), captured.out, captured.err


@pytest.mark.slow
def test_production_seed_requests_runs_once_and_reports(env, tmp_path):
    rt = env.runtime("workflow")
    policy = rt.services.policy
    alice, bob = policy.human("alice"), policy.human("bob")
    base, cand = env.versions["lr_onnx"], env.versions["rf_onnx"]
    deployments = rt.services.deployments
    first = {
        "model_name": MODEL,
        "version": base,
        "deployment_target": "production",
        "dataset": str(env.holdout_csv),
    }
    # No approval: the workflow requests one with the asked plan and stops there.
    out = run_deployment_workflow(rt.dispatcher, alice, first)
    assert out["status"] == "pending_approval" and out["changed"] is False, out
    apr = out["approval_id"]
    req = rt.services.approvals.get(apr)
    assert req.plan["strategy"] == "direct" and req.requested_by == "alice"
    assert out["commands"] == {
        "show": f"agent approvals show {apr} --as bob",
        "approve": f"agent approvals approve {apr} --as bob --evidence-hash {req.evidence_hash}",
    }
    assert deployments.current(MODEL) is None  # nothing moved
    # Asking again finds the same pending request instead of opening another.
    again = run_deployment_workflow(rt.dispatcher, alice, first)
    assert again["status"] == "pending_approval" and again["approval_id"] == apr
    # A listed human approves: the promotion workflow's executor runs the plan.
    rt.dispatcher.call_or_raise(
        bob,
        "decide_approval",
        {"approval_id": apr, "approve": True, "evidence_hash": req.evidence_hash},
    )
    assert rt.run_decided(apr, bob)["status"] == "deployed"
    revision = deployments.current(MODEL).revision
    done = run_deployment_workflow(rt.dispatcher, alice, first)
    assert done["status"] == "deployed" and done["changed"] is False, done
    assert "nothing was run again" in done["message"]
    assert deployments.current(MODEL).revision == revision

    # The seed canary: its own request, measured on the same data as the last one.
    seed = {
        "model_name": MODEL,
        "version": cand,
        "deployment_target": "production",
        "rollout_strategy": "canary",
        "traffic_percentage": 10,
    }
    out = run_deployment_workflow(rt.dispatcher, alice, seed)
    assert out["status"] == "pending_approval", out
    canary_apr = out["approval_id"]
    creq = rt.services.approvals.get(canary_apr)
    assert creq.plan["strategy"] == "canary" and creq.plan["steps"] == [10.0, 50.0, 100.0]
    assert f"evidence data: {env.holdout_csv} (as in {apr})" in out["steps"]
    # A different plan with this approval is refused, before anything moves.
    with pytest.raises(Conflict, match="approves a canary 10%"):
        run_deployment_workflow(
            rt.dispatcher, alice, {**seed, "approval_id": canary_apr, "steps": [50, 100]}
        )
    # Approved (and not run yet, e.g. decided through the API): the workflow runs it.
    rt.dispatcher.call_or_raise(
        bob,
        "decide_approval",
        {"approval_id": canary_apr, "approve": True, "evidence_hash": creq.evidence_hash},
    )
    out = run_deployment_workflow(rt.dispatcher, alice, seed)
    assert out["status"] == "rolling_out" and out["changed"] is True, out
    assert out["rollout"]["approval_id"] == canary_apr
    assert {r["version"]: r["weight"] for r in out["routes"]} == {base: 90.0, cand: 10.0}
    assert out["gateway"]["healthy"] and out["gateway"]["serving_revision"] == out["revision"]
    assert f"agent deploy rollout advance {MODEL}" in out["next"]
    assert rt.services.approvals.get(canary_apr).status.value == "executed"
    # Once executed, the same input reports the rollout and starts nothing.
    again = run_deployment_workflow(rt.dispatcher, alice, seed)
    assert again["status"] == "rolling_out" and again["changed"] is False
    assert again["rollout"]["id"] == out["rollout"]["id"]
    assert deployments.current(MODEL).revision == out["revision"]

    # An agent asks for a rollback; it does not roll back.
    agent = policy.agent("mlops-engineer", "dana")
    asked = run_deployment_workflow(
        rt.dispatcher,
        agent,
        {"model_name": MODEL, "action": "rollback", "target_version": base, "reason": "test"},
    )
    assert asked["status"] == "pending_approval" and asked["changed"] is False, asked
    assert rt.services.approvals.get(asked["approval_id"]).action == "rollback_production"
    assert deployments.current(MODEL).revision == out["revision"]

    # Manifests of the live canary (rendered, not applied), into a new folder under the home.
    out_dir = env.home / f"k8s-{tmp_path.name}"
    rendered = run_deployment_workflow(
        rt.dispatcher,
        alice,
        {**seed, "deployment_target": "kubernetes", "output_dir": str(out_dir)},
    )
    assert rendered["status"] == "rendered" and rendered["applied"] is False
    isvc = yaml.safe_load((out_dir / "k8s" / "inferenceservice.yaml").read_text())
    assert isvc["spec"]["predictor"]["canaryTrafficPercent"] == 10

    # A person rolls back; the approval can never start a second rollout.
    back = run_deployment_workflow(
        rt.dispatcher, alice, {"model_name": MODEL, "action": "rollback", "target_version": base}
    )
    assert back["status"] == "rolled_back" and back["live_versions"] == [base]
    assert back["gateway"]["serving_revision"] == back["revision"]
    with pytest.raises(Conflict, match=f"{canary_apr} is superseded"):
        run_deployment_workflow(rt.dispatcher, alice, {**seed, "approval_id": canary_apr})
    code = rt.dispatcher.call(
        alice,
        "start_rollout",
        {
            "name": MODEL,
            "version": cand,
            "strategy": "canary",
            "traffic_percentage": 10,
            "approval_id": canary_apr,
        },
    ).error
    assert code.code == "approval_required" and "superseded" in code.message
    assert deployments.current(MODEL).revision == back["revision"]


@pytest.mark.slow
def test_cli_seed_reports_the_pending_approval_and_staging_deploys(env, capsys, monkeypatch):
    """The seed command through `agent workflow run` ends in a status line, not a traceback."""
    rt = env.runtime("workflow-cli")
    monkeypatch.setenv("MODELOPS_STATE_DB_URL", rt.settings.state_db_url)
    base, cand = env.versions["lr_onnx"], env.versions["rf_onnx"]
    code, out, err = _cli(
        capsys,
        "workflow", "run", "mlops-deployment", "--as", "alice", "--input",
        json.dumps({"model_name": MODEL, "version": base, "deployment_target": "staging"}),
    )  # fmt: skip
    assert code == 0, err
    assert "deployed: staging serves" in out and "Traceback" not in out + err, out
    seed = {
        "model_name": MODEL,
        "version": cand,
        "deployment_target": "production",
        "rollout_strategy": "canary",
        "traffic_percentage": 10,
        "dataset": str(env.holdout_csv),
    }
    # A canary with nothing in production to start from could never run: refused when it is
    # requested, with the reason, before any approval is asked for.
    code, out, err = _cli(
        capsys, "workflow", "run", "mlops-deployment", "--as", "alice", "--input", json.dumps(seed)
    )
    assert code == 1 and "nothing serves" in err and "Traceback" not in out + err, err
    assert rt.services.approvals.list(None) == []
    direct = {k: v for k, v in seed.items() if k != "traffic_percentage"}
    direct["rollout_strategy"] = "direct"
    code, out, err = _cli(
        capsys,
        "workflow", "run", "mlops-deployment", "--as", "alice", "--input", json.dumps(direct),
    )  # fmt: skip
    assert code == 0, err
    assert "pending_approval: requested apr-" in out and "Traceback" not in out + err
    assert "agent approvals approve apr-" in out and "--as bob --evidence-hash" in out
    code, out, err = _cli(
        capsys,
        "workflow", "run", "mlops-deployment", "--as", "alice", "--json", "--input",
        json.dumps({**seed, "deployment_target": "staging", "dataset": None}),
    )  # fmt: skip
    assert code == 0, err
    data = json.loads(out)
    assert data["status"] == "rolling_out" and data["changed"] is True
    assert data["gateway"]["healthy"] is True


@pytest.mark.slow
def test_auto_advance_walks_every_step_on_staging(env):
    rt = env.runtime("workflow-auto")
    dana = rt.services.policy.human("dana")
    base, cand = env.versions["lr_onnx"], env.versions["rf_onnx"]
    first = run_deployment_workflow(
        rt.dispatcher, dana, {"model_name": MODEL, "version": base, "deployment_target": "staging"}
    )
    assert first["status"] == "deployed" and first["gateway"]["healthy"], first
    out = run_deployment_workflow(
        rt.dispatcher,
        dana,
        {
            "model_name": MODEL,
            "version": cand,
            "deployment_target": "staging",
            "rollout_strategy": "canary",
            "steps": [20, 60, 100],
            "auto_advance": True,
            "step_interval_seconds": 0,
        },
    )
    assert out["status"] == "completed", out
    assert [s for s in out["steps"] if s.startswith("rollout #")] == [
        f"rollout #1: v{cand} takes 20% of traffic",
        f"rollout #1: v{cand} takes 60% of traffic",
        f"rollout #1: v{cand} takes 100% of traffic",
    ]
    assert out["routes"] == [{"version": cand, "weight": 100.0, "role": "primary", "slot": None}]
    assert out["gateway"]["serving_revision"] == out["revision"]


@pytest.mark.slow
def test_start_gateway_restarts_the_last_revision_for_people_only(env, capsys, monkeypatch):
    rt = env.runtime("start-gateway")
    policy = rt.services.policy
    alice, dana, carol = policy.human("alice"), policy.human("dana"), policy.human("carol")
    agent = policy.agent("mlops-engineer", "alice")
    deployments = rt.services.deployments
    base = env.versions["lr_onnx"]

    def code(actor, args):  # noqa: ANN001, ANN202
        res = rt.dispatcher.call(actor, "start_gateway", args)
        return None if res.ok else res.error.code

    assert code(alice, {"name": MODEL}) == "not_found"
    # Staging.
    rt.dispatcher.call_or_raise(dana, "deploy_to_staging", {"name": MODEL, "version": base})
    staging = {"name": MODEL, "environment": "staging"}
    history = [r.revision for r in deployments.status(MODEL, "staging").history]
    assert rt.dispatcher.call_or_raise(alice, "stop_gateway", staging)["stopped"] is True
    assert code(agent, staging) == "permission_denied"  # people only
    assert code(carol, staging) == "permission_denied"
    out = rt.dispatcher.call_or_raise(dana, "start_gateway", staging)
    assert out["started"] is True and out["serving_revision"] == out["revision"] == history[0]
    assert rt.dispatcher.call_or_raise(dana, "start_gateway", staging)["started"] is False
    assert [r.revision for r in deployments.status(MODEL, "staging").history] == history

    # Production: deploy:production, and still no routing change.
    rt.dispatcher.call_or_raise(alice, "promote_model", {"approval_id": approve(rt, MODEL, base)})
    revision = deployments.current(MODEL).revision
    rt.dispatcher.call_or_raise(alice, "stop_gateway", {"name": MODEL, "environment": "production"})
    assert code(agent, {"name": MODEL}) == "permission_denied"
    assert code(carol, {"name": MODEL}) == "permission_denied"
    monkeypatch.setenv("MODELOPS_STATE_DB_URL", rt.settings.state_db_url)
    rc, text, err = _cli(capsys, "deploy", "start", MODEL, "--as", "alice")
    assert rc == 0, err
    assert "gateway started at http://" in text and f"serving revision {revision}" in text
    assert deployments.current(MODEL).revision == revision
    assert deployments.gateway_info(MODEL)["running"]
    entries = rt.services.audit.entries(action="start_gateway", actor="alice", limit=5)
    assert entries and entries[0]["decision"] == "allowed" and entries[0]["outcome"] == "ok"
    rc, _, err = _cli(capsys, "deploy", "start", MODEL, "--as", "carol")
    assert rc == 3 and "deploy:staging" in err
