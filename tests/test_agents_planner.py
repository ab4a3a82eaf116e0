"""The offline planner: input shapes, the documented plain requests, and runs without an LLM
(the requests that need registered models run in test_agents_workflows)."""

from __future__ import annotations

import json

import pytest

from agents.planner import (
    NEEDS_LLM,
    OPTIMIZE_NEEDS_MODEL,
    OPTIMIZE_UNAVAILABLE,
    fit_args,
    parse_request,
    plan_text,
)
from core.errors import InvalidInput
from tests.test_agents_support import agent_system

D = "data/holdout.csv"


@pytest.mark.parametrize(
    ("raw", "kind", "message"),
    [
        ('{"query": "list models"}', "text", "list models"),
        ("  list models ", "text", "list models"),
        ({"query": "x"}, "text", "x"),
        ('{"tool": "list_models"}', "tool", '{"tool": "list_models", "args": {}}'),
        (
            '{"workflow": "promotion", "input": {"name": "m"}}',
            "workflow",
            '{"workflow": "promotion", "input": {"name": "m"}}',
        ),
    ],
)
def test_parse_request_shapes(raw, kind: str, message: str) -> None:
    request = parse_request(raw)
    assert (request.kind, request.message) == (kind, message)


@pytest.mark.parametrize(
    "raw",
    ["", "{not json", '{"query": ""}', '{"tool": 3}', '{"tool": "x", "args": []}', "{}"],
)
def test_parse_request_refuses(raw: str) -> None:
    with pytest.raises(InvalidInput):
        parse_request(raw)


@pytest.mark.parametrize(
    ("text", "calls"),
    [
        ("list models", [("list_models", {})]),
        ("Show all registered models", [("list_models", {})]),
        ("show model churn v2", [("get_model", {"name": "churn", "version": "2"})]),
        ("describe churn-classifier", [("get_model", {"name": "churn-classifier"})]),
        (
            f"evaluate churn v2 on {D}",
            [("evaluate_model", {"name": "churn", "version": "2", "dataset": D})],
        ),
        (
            f"Evaluate churn-classifier v2 on {D} and promote it if it beats the champion",
            # The promotion is a second turn, taken only if the evaluation says "better".
            [("evaluate_model", {"name": "churn-classifier", "version": "2", "dataset": D})],
        ),
        (
            f"compare churn v1 and v2 on {D}.",
            [
                ("evaluate_model", {"name": "churn", "dataset": D, "version": "1"}),
                ("evaluate_model", {"name": "churn", "dataset": D, "version": "2"}),
            ],
        ),
        (
            f"validate churn v2 on {D} target label",
            [
                (
                    "record_validation",
                    {"name": "churn", "version": "2", "dataset": D, "target": "label"},
                )
            ],
        ),
        (
            f"request promotion of churn v2 on {D}",
            [("request_promotion", {"name": "churn", "version": "2", "dataset": D})],
        ),
        ("deployment status of churn", [("get_deployment", {"name": "churn"})]),
        ("what is the status of churn?", [("get_deployment", {"name": "churn"})]),
        ("is churn deployed", [("get_deployment", {"name": "churn"})]),
        (
            "roll back churn to v1",
            [
                (
                    "rollback_deployment",
                    {
                        "name": "churn",
                        "reason": "requested: roll back churn to v1",
                        "to_version": "1",
                    },
                )
            ],
        ),
        ("list pending approvals", [("list_approvals", {"status": "pending"})]),
    ],
)
def test_documented_plain_requests(text: str, calls: list) -> None:
    assert plan_text(text, available=set()).calls == calls


def test_optimize_is_planned_only_when_the_tool_exists() -> None:
    seed = "Optimize model inference latency to under 50ms"
    assert plan_text(seed, available=set()).message == OPTIMIZE_UNAVAILABLE
    assert "#4" in OPTIMIZE_UNAVAILABLE
    assert plan_text(seed, available={"optimize_model"}).message == OPTIMIZE_NEEDS_MODEL
    plan = plan_text(f"optimize churn v3 for size on {D}", available={"optimize_model"})
    assert plan.calls == [
        ("optimize_model", {"name": "churn", "version": "3", "target": "size", "dataset": D})
    ]


@pytest.mark.parametrize("text", ["write me a poem", "show me everything", "delete all models"])
def test_anything_else_needs_an_llm(text: str) -> None:
    plan = plan_text(text, available=set())
    assert plan.calls == [] and plan.message == NEEDS_LLM


def test_fit_args_follows_the_tool_schema() -> None:
    from tools.base import load_catalog

    props = load_catalog()["evaluate_model"].json_schema()["properties"]
    fitted = fit_args("evaluate_model", {"name": "m", "version": "1", "dataset": D})
    name = "dataset" if "dataset" in props else "evaluation_dataset"
    assert fitted[name] == D
    assert fit_args("no_such_tool", {"dataset": D}) == {"dataset": D}


# Runs (no LLM configured) --------------------------------------------------------------------
def test_structured_tool_runs_through_the_dispatcher(rt) -> None:
    result = agent_system(rt).run("qa-tester", {"tool": "list_approvals"}, user="bob")
    assert result["model"] == "offline-planner"
    assert result["status"] == "done" and result["answer"] == "No approval requests."
    (entry,) = rt.services.audit.entries(action="list_approvals")
    assert (entry["actor"], entry["on_behalf_of"]) == ("qa-tester", "bob")


def test_structured_input_never_reaches_the_llm(rt, scripted_llm) -> None:
    result = agent_system(rt).run(
        "architect",
        '{"tool": "promote_model", "args": {"approval_id": "apr-00000000"}}',
        user="carol",
    )
    assert result["tool_calls"][0]["code"] == "permission_denied"
    assert scripted_llm.chat_requests == []


def test_unsupported_request_runs_nothing(rt) -> None:
    result = agent_system(rt).run("ml-engineer", "write me a poem", user="alice")
    assert result["status"] == "unsupported"
    assert result["tool_calls"] == [] and "OPENAI_BASE_URL" in result["answer"]
    assert rt.services.audit.entries(decision="allowed")[0]["action"] == "agent_run"


def _evaluated(comparison: dict | None) -> list[dict]:
    output = {
        "name": "churn",
        "version": "2",
        "n": 10,
        "metrics": {"f1": 0.9},
        "dataset": {"path": "h.csv"},
        "champion_version": "1" if comparison else None,
        "comparison": comparison,
    }
    call = {
        "id": "c1",
        "type": "function",
        "function": {"name": "evaluate_model", "arguments": "{}"},
    }
    return [
        {
            "role": "user",
            "content": f"Evaluate churn v2 on {D} and promote it if it beats the champion",
        },
        {"role": "assistant", "content": "Plan", "tool_calls": [call]},
        {
            "role": "tool",
            "tool_call_id": "c1",
            "content": json.dumps({"ok": True, "output": output}),
        },
    ]


@pytest.mark.parametrize(
    ("comparison", "promotes"),
    [
        (None, True),  # no champion yet: nothing to beat
        ({"verdict": "better", "reason": "f1 CI above 0"}, True),
        ({"verdict": "inconclusive", "reason": "f1 CI includes 0"}, False),
        ({"verdict": "worse", "reason": "f1 CI below 0"}, False),
    ],
)
def test_promote_if_it_beats_the_champion_follows_the_comparison_verdict(comparison, promotes):
    from agents.planner import OfflinePlanner

    plan = plan_text(
        f"Evaluate churn v2 on {D} and promote it if it beats the champion", available=set()
    )
    assert plan.promote_if_better == {"name": "churn", "version": "2", "dataset": D}
    reply = OfflinePlanner().respond(_evaluated(comparison), [])
    if promotes:
        assert [c.name for c in reply.tool_calls] == ["request_promotion"]
    else:
        assert reply.tool_calls == [] and "Not requesting promotion" in reply.content
        assert comparison["verdict"] in reply.content
