"""Agents on real registered models: the offline planner's requests, and the issue's example
(evaluate, hand QA the validation, request promotion, stop at the human approval) with the
scripted LLM and offline through `agent run`.

The cases share one MODELOPS_HOME (registering models costs seconds); none depends on another's
outcome, and each checks the approval it created by id.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from agents.cli.main import main
from agents.role_agent import exit_code
from tests.fakes.openai_server import ScriptedOpenAIServer
from tests.test_agents_support import agent_system, module_home, register_models


@pytest.fixture(scope="module")
def reg(tmp_path_factory, bc_data, trained) -> Iterator[dict[str, Any]]:
    with module_home(tmp_path_factory.mktemp("agents-workflows")) as rt:
        yield register_models(rt, bc_data, trained)


def offline(reg: dict[str, Any], profile: str, user: str, text: str) -> dict[str, Any]:
    return agent_system(reg["rt"]).run(profile, text, user=user)


def test_list_and_show_models(reg) -> None:
    out = offline(reg, "architect", "carol", "list models")
    assert out["status"] == "done"
    assert "breast-cancer-classifier (latest v2, 2 versions" in out["answer"]
    out = offline(reg, "architect", "carol", f"show model {reg['name']} v2")
    assert out["answer"].startswith(f"{reg['name']} v2: aliases")
    assert "IMPLEMENTED" in out["answer"] or "HEURISTIC" in out["answer"]


def test_evaluate_and_compare(reg) -> None:
    name, holdout = reg["name"], reg["holdout"]
    out = offline(reg, "data-scientist", "alice", f"evaluate {name} v1 on {holdout}")
    assert out["status"] == "done" and exit_code(out) == 0
    assert f"{name} v1 on holdout.csv" in out["answer"] and "accuracy" in out["answer"]
    out = offline(reg, "data-scientist", "alice", f"compare {name} v1 and v2 on {holdout}")
    lines = out["answer"].splitlines()
    assert len(lines) == 3 and lines[2].startswith("Comparison: ")
    assert "accuracy v1" in lines[2] and "vs v2" in lines[2]


def test_validate_as_qa(reg) -> None:
    out = offline(reg, "qa-tester", "bob", f"validate {reg['name']} v2 on {reg['holdout']}")
    assert out["status"] == "done"
    assert "QA verdict on breast-cancer-classifier v2:" in out["answer"]
    entry = reg["rt"].services.audit.entries(action="record_validation")[0]
    assert (entry["actor"], entry["on_behalf_of"], entry["outcome"]) == ("qa-tester", "bob", "ok")


def test_deployment_status_and_rollback_without_a_deployment(reg) -> None:
    out = offline(reg, "mlops-engineer", "dana", f"deployment status of {reg['name']}")
    assert out["status"] == "done" and exit_code(out) == 0
    assert "Deployment: none" in out["answer"]
    out = offline(reg, "mlops-engineer", "dana", f"roll back {reg['name']} to v1")
    # Checked first (reads); with nothing in production no rollback is requested.
    assert [c["tool"] for c in out["tool_calls"]] == ["get_model", "get_deployment"]
    assert "Nothing to roll back" in out["answer"] and exit_code(out) == 4
    out = offline(reg, "architect", "carol", f"roll back {reg['name']}")
    assert out["tool_calls"][0]["tool"] == "request_rollback"
    assert out["tool_calls"][0]["code"] == "permission_denied" and exit_code(out) == 3


def test_optimize_request_without_a_model_named(reg) -> None:
    out = offline(reg, "ml-engineer", "alice", "Optimize model inference latency to under 50ms")
    assert out["status"] == "unsupported" and out["tool_calls"] == []
    assert "Nothing was run" in out["answer"] or "nothing was run" in out["answer"]


def test_workflow_input_stops_at_the_approval(reg) -> None:
    rt = reg["rt"]
    workflow = {
        "workflow": "promotion",
        "input": {"name": reg["name"], "version": "1", "dataset": reg["holdout"]},
    }
    out = agent_system(rt).run("ml-engineer", json.dumps(workflow), user="dana")
    (call,) = out["tool_calls"]
    assert call["ok"], call
    if out["status"] == "pending_approval":
        approval = rt.services.approvals.get(out["pending_approval"]["approval_id"])
        assert approval.status.value == "pending" and approval.requested_by == "dana"
    else:  # the gates may block v1; the answer then says why
        assert "promotion blocked" in out["answer"]


def test_issue_example_offline_through_the_cli(reg, capsys) -> None:
    rt = reg["rt"]
    query = f"Evaluate {reg['name']} v2 on {reg['holdout']} and promote it if it beats the champion"
    with pytest.raises(SystemExit) as exc:
        main(
            [
                "run",
                "ml-engineer",
                "--as",
                "alice",
                "--json",
                "--input",
                json.dumps({"query": query}),
            ]
        )
    result = json.loads(capsys.readouterr().out)
    assert exc.value.code == 0
    assert [c["tool"] for c in result["tool_calls"]] == [
        "get_model",  # the offline planner checks the model exists before any write
        "evaluate_model",
        "request_promotion",
    ]
    assert result["status"] == "pending_approval"
    approval_id = result["pending_approval"]["approval_id"]
    assert "agent approvals approve" in result["answer"]
    assert rt.services.approvals.get(approval_id).status.value == "pending"
    assert rt.services.registry.alias_version(reg["name"], "champion") is None


def test_llm_engineer_hands_validation_to_qa_and_stops_at_the_approval(
    reg, scripted_llm: ScriptedOpenAIServer
) -> None:
    rt, name, holdout = reg["rt"], reg["name"], reg["holdout"]
    args = {"name": name, "version": "2", "dataset": holdout}
    evaluate_args = {"name": name, "version": "2", "dataset": holdout}
    from agents.planner import fit_args

    scripted_llm.enqueue_tool_calls(
        [{"name": "evaluate_model", "arguments": fit_args("evaluate_model", evaluate_args)}]
    )
    scripted_llm.enqueue_tool_calls(
        [
            {
                "name": "handoff",
                "arguments": {"profile": "qa-tester", "task": f"Validate {name} v2 on {holdout}"},
            }
        ]
    )
    scripted_llm.enqueue_tool_calls([{"name": "record_validation", "arguments": args}])
    scripted_llm.enqueue_text("Validation recorded.")
    scripted_llm.enqueue_tool_calls([{"name": "request_promotion", "arguments": args}])
    before = rt.services.audit.entries(limit=1)[0]["seq"]

    result = agent_system(rt).run(
        "ml-engineer",
        f"Evaluate {name} v2 on {holdout} and promote it if it beats the champion",
        user="alice",
    )

    assert result["status"] == "pending_approval", result
    assert [c["tool"] for c in result["tool_calls"]] == [
        "evaluate_model",
        "handoff",
        "request_promotion",
    ]
    assert all(c["ok"] for c in result["tool_calls"])
    qa = result["hops"][0]["result"]
    assert qa["profile"] == "qa-tester" and qa["tool_calls"][0]["tool"] == "record_validation"
    # The model saw the evaluation's metrics before deciding; nothing was asked after the stop.
    evaluated = json.loads(scripted_llm.chat_requests[1].body["messages"][-1]["content"])
    assert evaluated["ok"] and "accuracy" in evaluated["output"]["metrics"]
    assert len(scripted_llm.chat_requests) == 5
    approval = rt.services.approvals.get(result["pending_approval"]["approval_id"])
    assert approval.status.value == "pending"
    assert (
        approval.requested_by == "alice"
        and approval.requested_via == "agent ml-engineer (Engineer) for alice"
    )
    assert rt.services.registry.alias_version(name, "champion") is None
    entries = [e for e in reversed(rt.services.audit.entries()) if e["seq"] > before]
    by_agents = [
        (e["actor"], e["action"])
        for e in entries
        if e["actor_kind"] == "agent" and e["outcome"] != "intent"
    ]
    assert by_agents[:3] == [
        ("ml-engineer", "evaluate_model"),
        ("ml-engineer", "handoff"),
        ("qa-tester", "record_validation"),
    ]
    # request_promotion is logged when it returns, after the workflow's own steps.
    assert by_agents[-1] == ("ml-engineer", "request_promotion")
    # The request itself is opened by the workflow principal, never by the agent.
    assert ("ml-engineer", "open_approval_request") not in by_agents
    opened = [e for e in entries if e["action"] == "open_approval_request" and e["outcome"] == "ok"]
    assert [(e["actor"], e["on_behalf_of"]) for e in opened] == [("promotion-workflow", "alice")]
    assert all(e["on_behalf_of"] == "alice" for e in entries if e["actor_kind"] == "agent")
    assert not [e for e in entries if e["action"] in ("decide_approval", "promote_model")]
