"""Supervisor: who may launch which agent, hand-offs between roles (audited, bounded, never
gaining trust), and routing a request to a profile. No registry needed: approvals tools only."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agents.planner import AgentRequest
from agents.supervisor import SUPERVISOR
from core.errors import PermissionDenied
from tests.fakes.openai_server import ScriptedOpenAIServer
from tests.test_agents_support import agent_system


def handoff(profile: str, task: str = "list the pending approvals") -> dict[str, Any]:
    return {"name": "handoff", "arguments": {"profile": profile, "task": task}}


def new_entries(rt, before: int) -> list[dict[str, Any]]:
    return [e for e in reversed(rt.services.audit.entries()) if e["seq"] > before]


def last_seq(rt) -> int:
    entries = rt.services.audit.entries(limit=1)
    return entries[0]["seq"] if entries else 0


def test_engineer_hands_work_to_qa_on_behalf_of_the_same_person(
    rt, scripted_llm: ScriptedOpenAIServer
):
    scripted_llm.enqueue_tool_calls([handoff("qa-tester", "Validate: list pending approvals")])
    scripted_llm.enqueue_tool_calls(
        [{"name": "list_approvals", "arguments": {"status": "pending"}}]
    )
    scripted_llm.enqueue_text("QA: nothing pending.")
    scripted_llm.enqueue_text("QA confirmed nothing is pending [handoff].")
    before = last_seq(rt)
    events: list[dict[str, Any]] = []
    result = agent_system(rt).run(
        "ml-engineer", "check with QA", user="alice", thread_id="main", on_event=events.append
    )

    assert result["status"] == "done"
    (hop,) = result["hops"]
    assert (hop["from"], hop["to"], hop["depth"], hop["status"]) == (
        "ml-engineer",
        "qa-tester",
        1,
        "done",
    )
    assert hop["thread_id"].startswith("main/qa-tester-")
    # The sub-agent saw QA's tools and the task; the parent saw the sub-agent's answer.
    qa_request = scripted_llm.chat_requests[1]
    qa_tools = {t["function"]["name"] for t in qa_request.body["tools"]}
    # qa-tester acting for alice (an Engineer) holds QATester ∩ Engineer rights: it reads and
    # evaluates, but records no verdict alice herself could not record.
    assert "evaluate_model" in qa_tools and "request_promotion" not in qa_tools
    assert "record_validation" not in qa_tools
    assert "Validate: list pending approvals" in qa_request.body["messages"][-1]["content"]
    parent_result = json.loads(scripted_llm.chat_requests[3].body["messages"][-1]["content"])
    assert parent_result["output"]["answer"] == "QA: nothing pending."
    assert parent_result["output"]["tool_calls"] == [
        {"tool": "list_approvals", "ok": True, "code": None}
    ]
    # Each hop is in the audit log: the hand-off by the engineer, the call by QA, both for alice.
    entries = new_entries(rt, before)
    assert [(e["action"], e["actor"], e["on_behalf_of"], e["outcome"]) for e in entries] == [
        ("agent_run", "alice", None, "started"),
        ("handoff", "ml-engineer", "alice", "delegated"),
        ("list_approvals", "qa-tester", "alice", "ok"),
    ]
    assert entries[1]["detail"]["to"] == "qa-tester"
    assert entries[1]["detail"]["sub_thread_id"] == hop["thread_id"]
    # The sub-agent's thread is persisted on its own.
    system = agent_system(rt)
    assert system.graph.state(hop["thread_id"])["profile"] == "qa-tester"
    assert [e["type"] for e in events if e["type"].startswith("handoff")] == [
        "handoff",
        "handoff_done",
    ]


@pytest.mark.parametrize(
    ("profile", "user", "target"),
    [
        ("architect", "carol", "ml-engineer"),
        ("architect", "carol", "mlops-engineer"),
        ("qa-tester", "bob", "data-scientist"),
    ],
)
def test_hand_off_to_a_more_trusted_role_is_refused_and_audited(
    rt, scripted_llm: ScriptedOpenAIServer, profile: str, user: str, target: str
):
    scripted_llm.enqueue_tool_calls([handoff(target, "roll back production")])
    scripted_llm.enqueue_text("I could not.")
    before = last_seq(rt)
    result = agent_system(rt).run(profile, "escalate", user=user)
    assert result["status"] == "done" and result["hops"] == []
    (call,) = result["tool_calls"]
    assert call["code"] == "permission_denied"
    assert "more trusted" in call["message"]
    assert len(scripted_llm.chat_requests) == 2  # no sub-agent ever ran
    (entry,) = [e for e in new_entries(rt, before) if e["action"] == "handoff"]
    assert (entry["actor"], entry["on_behalf_of"], entry["decision"]) == (profile, user, "denied")


def test_hop_depth_and_cycles_are_bounded(rt, scripted_llm: ScriptedOpenAIServer):
    # ml-engineer -> data-scientist -> qa-tester (depth 2: no handoff tool offered), whose
    # model tries anyway; data-scientist also tries to hand back to ml-engineer (a cycle).
    scripted_llm.enqueue_tool_calls([handoff("data-scientist")])
    scripted_llm.enqueue_tool_calls([handoff("ml-engineer"), handoff("qa-tester")])
    scripted_llm.enqueue_tool_calls([handoff("architect")])
    scripted_llm.enqueue_text("qa done")
    scripted_llm.enqueue_text("ds done")
    scripted_llm.enqueue_text("all done")
    result = agent_system(rt).run("ml-engineer", "go deep", user="alice")

    assert result["status"] == "done"
    ds = result["hops"][0]["result"]
    assert [c["code"] for c in ds["tool_calls"]] == ["permission_denied", None]
    assert "already in this hand-off chain" in ds["tool_calls"][0]["message"]
    qa = ds["hops"][0]["result"]
    assert qa["depth"] == 2
    assert qa["tool_calls"][0]["code"] == "permission_denied"
    assert "depth limit" in qa["tool_calls"][0]["message"]
    qa_request = scripted_llm.chat_requests[2]
    assert "handoff" not in {t["function"]["name"] for t in qa_request.body["tools"]}
    denied = rt.services.audit.entries(action="handoff", decision="denied")
    assert {(e["actor"], e["reason"].split(" ")[0]) for e in denied} >= {
        ("data-scientist", "ml-engineer"),
        ("qa-tester", "hand-off"),
    }


def test_malformed_hand_offs_are_error_results(rt, scripted_llm: ScriptedOpenAIServer):
    scripted_llm.enqueue_tool_calls(
        [
            {"name": "handoff", "arguments": {"profile": "qa-tester"}},
            {"name": "handoff", "arguments": {"profile": "nobody", "task": "x"}},
            {"name": "handoff", "arguments": {"profile": "qa-tester", "task": "x" * 70_000}},
            {"name": "handoff", "arguments": "not json"},
        ]
    )
    scripted_llm.enqueue_text("gave up")
    result = agent_system(rt).run("ml-engineer", "hand off badly", user="alice")
    assert [c["code"] for c in result["tool_calls"]] == [
        "invalid_input",
        "not_found",
        "invalid_input",
        "invalid_input",
    ]
    assert len(rt.services.audit.entries(action="handoff", decision="denied")) == 4


def test_pending_approval_in_a_sub_agent_stops_the_whole_run(
    rt, scripted_llm: ScriptedOpenAIServer
):
    rt.services.promotion_runner = lambda actor, *a: {
        "status": "pending_approval",
        "thread_id": "promo-x",
        "approval_id": "apr-0000abcd",
        "message": "waiting for a human approval",
        "approve_command": "agent approvals approve apr-0000abcd --as bob",
    }
    scripted_llm.enqueue_tool_calls([handoff("mlops-engineer", "promote m v2 on d.csv")])
    scripted_llm.enqueue_tool_calls(
        [
            {
                "name": "request_promotion",
                "arguments": {"name": "m", "version": "2", "dataset": "d.csv"},
            }
        ]
    )
    result = agent_system(rt).run("ml-engineer", "ship it", user="alice")
    assert result["status"] == "pending_approval"
    assert result["pending_approval"]["approval_id"] == "apr-0000abcd"
    assert result["hops"][0]["status"] == "pending_approval"
    assert len(scripted_llm.chat_requests) == 2  # nobody asked the model anything after


# Launching --------------------------------------------------------------------------------
def test_people_launch_only_profiles_no_more_trusted_than_themselves(rt):
    system = agent_system(rt)
    with pytest.raises(PermissionDenied, match="more trusted profile ml-engineer"):
        system.run("ml-engineer", {"tool": "list_approvals"}, user="carol")
    with pytest.raises(PermissionDenied, match="unknown agent profile"):
        system.run("intern", {"tool": "list_approvals"}, user="alice")
    with pytest.raises(PermissionDenied, match="no identity"):
        system.run("architect", {"tool": "list_approvals"}, user=None)
    with pytest.raises(PermissionDenied, match="not a person"):
        system.run("architect", {"tool": "list_approvals"}, user="mallory")
    denied = rt.services.audit.entries(action="agent_run", decision="denied")
    assert [(e["actor"], e["detail"]["profile"]) for e in reversed(denied)] == [
        ("carol", "ml-engineer"),
        ("alice", "intern"),
    ]
    ok = system.run("qa-tester", {"tool": "list_approvals"}, user="carol")
    assert ok["status"] == "done" and ok["on_behalf_of"] == "carol"


# Routing ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "user", "profile"),
    [
        ("validate churn v2 on d.csv", "alice", "qa-tester"),
        ("roll back churn to v1", "alice", "mlops-engineer"),
        ("review the design of the serving layer", "alice", "architect"),
        ("compare churn v1 and v2 on d.csv", "alice", "data-scientist"),
        ("evaluate churn v2 on d.csv", "alice", "ml-engineer"),
        ("roll back churn to v1", "carol", "architect"),  # may not launch mlops-engineer
    ],
)
def test_offline_routing_by_keywords(rt, text: str, user: str, profile: str):
    decision = agent_system(rt).route(AgentRequest("text", text), user)
    assert decision.profile == profile and decision.by == "keywords"


def test_structured_input_routes_to_a_profile_that_may_call_the_tool(rt):
    system = agent_system(rt)
    request = AgentRequest("tool", json.dumps({"tool": "record_validation", "args": {}}))
    assert system.route(request, "bob").profile == "qa-tester"
    request = AgentRequest("tool", json.dumps({"tool": "list_approvals", "args": {}}))
    assert system.route(request, "carol").profile == "architect"


def test_llm_routing_and_supervisor_run(rt, scripted_llm: ScriptedOpenAIServer):
    scripted_llm.enqueue_tool_calls(
        [{"name": "route", "arguments": {"profile": "qa-tester", "reason": "validation work"}}]
    )
    scripted_llm.enqueue_tool_calls([{"name": "list_approvals", "arguments": {}}])
    scripted_llm.enqueue_text("Nothing to validate yet.")
    events: list[dict[str, Any]] = []
    result = agent_system(rt).run(
        SUPERVISOR, "is there anything to validate?", user="bob", on_event=events.append
    )
    assert result["profile"] == "qa-tester"
    assert result["route"] == {"profile": "qa-tester", "reason": "validation work", "by": "llm"}
    route_request = scripted_llm.chat_requests[0]
    enum = route_request.body["tools"][0]["function"]["parameters"]["properties"]["profile"]
    assert enum["enum"] == ["architect", "qa-tester"]  # what bob may launch
    assert events[0]["type"] == "route"
    (entry,) = rt.services.audit.entries(action="agent_run")
    assert "supervisor (llm)" in entry["detail"]["routed_by"]


def test_llm_choice_outside_the_allowed_profiles_falls_back(rt, scripted_llm: ScriptedOpenAIServer):
    scripted_llm.enqueue_tool_calls([{"name": "route", "arguments": {"profile": "ml-engineer"}}])
    decision = agent_system(rt).route(AgentRequest("text", "review the rollout plan"), "carol")
    assert decision.profile == "architect" and decision.by == "keywords"
