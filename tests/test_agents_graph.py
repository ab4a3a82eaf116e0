"""The role agent graph against the scripted OpenAI-compatible server: what the model is shown,
tool errors as results, max steps, threads, streaming, the approval stop and endpoint failures.

These tests touch no registry (no MLflow start): they use the approvals tools and denials."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agents.llm import LLMConfig
from agents.role_agent import MAX_TOOL_RESULT_CHARS, citations
from core.errors import InvalidInput, PermissionDenied
from tests.fakes.openai_server import ScriptedOpenAIServer
from tests.test_agents_support import agent_system

FAKE_APPROVAL = "apr-00000000"


def tool_names(request: Any) -> list[str]:
    return sorted(t["function"]["name"] for t in request.body.get("tools", []))


def tool_results(request: Any) -> list[dict[str, Any]]:
    return [json.loads(m["content"]) for m in request.body["messages"] if m["role"] == "tool"]


def test_model_sees_persona_and_only_its_roles_tools(rt, scripted_llm: ScriptedOpenAIServer):
    scripted_llm.enqueue_text("I can read models and approvals.")
    system = agent_system(rt)
    result = system.run("architect", "What can you do?", user="carol")
    assert result["status"] == "done"
    assert result["answer"] == "I can read models and approvals."
    (request,) = scripted_llm.chat_requests
    actor = rt.services.policy.agent("architect", "carol")
    allowed = sorted(t.name for t in rt.dispatcher.tools_for(actor))
    # The architect (OBSERVED) may hand off only to the other OBSERVED profile.
    assert tool_names(request) == sorted([*allowed, "handoff"])
    assert not {"decide_approval", "promote_model", "rollback_deployment"} & set(allowed)
    handoff = next(t for t in request.body["tools"] if t["function"]["name"] == "handoff")
    assert handoff["function"]["parameters"]["properties"]["profile"]["enum"] == ["qa-tester"]
    system_msg = request.body["messages"][0]
    assert system_msg["role"] == "system"
    assert rt.services.policy.profiles["architect"].persona in system_msg["content"]
    assert "on behalf of carol" in system_msg["content"]


def test_tool_errors_go_back_to_the_model_and_the_run_ends_cleanly(
    rt, scripted_llm: ScriptedOpenAIServer
):
    huge = "x" * 70_000
    scripted_llm.enqueue_tool_calls(
        [
            {"name": "approve_everything", "arguments": {}},  # hallucinated tool
            {"name": "get_approval", "arguments": {"approval_id": 12345}},  # wrong type
            {"name": "get_approval", "arguments": {}},  # missing field
            {"name": "get_approval", "arguments": {"approval_id": huge}},  # > 64 KB
            {"name": "get_approval", "arguments": '{"approval_id": '},  # broken JSON
            {"name": "get_approval", "arguments": {"approval_id": FAKE_APPROVAL, "x": 1}},
            {"name": "get_approval", "arguments": {"approval_id": FAKE_APPROVAL}},  # not found
            {"name": "decide_approval", "arguments": {"approval_id": FAKE_APPROVAL}},
        ]
    )
    scripted_llm.enqueue_text("Nothing I tried worked.")
    before = len(rt.services.audit.entries())
    result = agent_system(rt).run("ml-engineer", "approve everything", user="alice")

    assert result["status"] == "done"
    codes = [c["code"] for c in result["tool_calls"]]
    assert codes == [
        "unknown_tool",
        "invalid_input",
        "invalid_input",
        "invalid_input",
        "invalid_input",
        "invalid_input",
        "not_found",
        "permission_denied",  # agents may never decide: denied before its arguments are read
    ]
    # Each error reached the model as a tool result, with message and hint.
    results = tool_results(scripted_llm.chat_requests[1])
    assert [r["error"]["code"] for r in results] == codes
    assert all(not r["ok"] and r["error"]["message"] for r in results)
    assert "limit is 64000" in results[3]["error"]["message"]
    assert all(len(json.dumps(r)) < MAX_TOOL_RESULT_CHARS for r in results)
    # Nothing changed, and every attempt is in the audit log for this agent and person.
    assert rt.services.approvals.list() == []
    entries = rt.services.audit.entries()[: len(rt.services.audit.entries()) - before]
    mine = [e for e in entries if e["actor"] == "ml-engineer"]
    assert len(mine) == 8 and all(e["on_behalf_of"] == "alice" for e in mine)
    assert [e["outcome"] for e in reversed(mine)] == codes
    assert any("unknown_tool" in line for line in citations(result))


def test_max_steps_ends_with_a_message(rt, scripted_llm: ScriptedOpenAIServer):
    for _ in range(3):
        scripted_llm.enqueue_tool_calls([{"name": "list_approvals", "arguments": {}}])
    result = agent_system(rt, max_steps=3).run("qa-tester", "loop", user="bob")
    assert result["status"] == "max_steps"
    assert "max steps reached" in result["answer"]
    assert len(result["tool_calls"]) == 3 and all(c["ok"] for c in result["tool_calls"])
    assert scripted_llm.pending == 0


def test_thread_keeps_history_and_belongs_to_one_person_and_profile(
    rt, scripted_llm: ScriptedOpenAIServer
):
    system = agent_system(rt)
    scripted_llm.enqueue_tool_calls([{"name": "list_approvals", "arguments": {}}])
    scripted_llm.enqueue_text("No approvals.")
    first = system.run("qa-tester", "any approvals?", user="bob", thread_id="t-1")
    scripted_llm.enqueue_text("You asked about approvals.")
    second = system.run("qa-tester", "what did I ask?", user="bob", thread_id="t-1")
    assert (first["status"], second["status"]) == ("done", "done")
    sent = [m for m in scripted_llm.chat_requests[-1].body["messages"] if m["role"] != "system"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "assistant", "user"]
    assert sent[0]["content"] == "any approvals?"
    assert second["transcript"][0] == {"role": "user", "content": "what did I ask?"}
    stored = system.graph.state("t-1")
    assert len(stored["messages"]) == 6
    with pytest.raises(PermissionDenied):
        system.run("qa-tester", "show me bob's thread", user="carol", thread_id="t-1")
    with pytest.raises(InvalidInput):
        system.run("architect", "continue", user="bob", thread_id="t-1")


def test_streaming_delivers_tokens_as_events(rt, scripted_llm: ScriptedOpenAIServer):
    scripted_llm.enqueue_stream_text(["No ", "pending ", "approvals."])
    events: list[dict[str, Any]] = []
    result = agent_system(rt).run(
        "architect", "anything pending?", user="carol", on_event=events.append, stream=True
    )
    assert result["answer"] == "No pending approvals."
    assert [e["text"] for e in events if e["type"] == "text"] == ["No ", "pending ", "approvals."]
    assert scripted_llm.chat_requests[0].body["stream"] is True


def test_pending_promotion_stops_the_run(rt, scripted_llm: ScriptedOpenAIServer):
    """The agent surfaces the workflow's approval stop and makes no further call (the real
    workflow runs in test_agents_workflows; here the runner is a recording fake)."""
    started: list[tuple[str, str]] = []

    def runner(actor, name, version, dataset, target, plan=None):  # noqa: ANN001, ANN202
        started.append((actor.name, actor.on_behalf_of))
        return {
            "status": "pending_approval",
            "thread_id": "promo-1",
            "approval_id": "apr-12345678",
            "message": "waiting for a human approval (bob may approve)",
            "approve_command": "agent approvals approve apr-12345678 --as bob",
        }

    rt.services.promotion_runner = runner
    args = {"name": "m", "version": "2", "dataset": "data.csv"}
    scripted_llm.enqueue_tool_calls(
        [
            {"name": "request_promotion", "arguments": args},
            {"name": "decide_approval", "arguments": {"approval_id": "apr-12345678"}},
        ]
    )
    result = agent_system(rt).run("ml-engineer", "promote m v2", user="alice")
    assert result["status"] == "pending_approval"
    assert result["pending_approval"]["approval_id"] == "apr-12345678"
    assert "agent approvals approve apr-12345678 --as bob" in result["answer"]
    assert started == [("ml-engineer", "alice")]
    # The second call was not made: answered as not run, and never reached the dispatcher.
    assert [c["tool"] for c in result["tool_calls"]] == ["request_promotion"]
    assert result["transcript"][-1]["role"] == "tool"
    assert "not run" in result["transcript"][-1]["content"]
    assert rt.services.audit.entries(action="decide_approval") == []
    assert len(scripted_llm.chat_requests) == 1


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        ("down", "refused the connection"),
        ("slow", "timed out"),
        ("http500", "HTTP 500"),
        ("http429", "HTTP 429"),
    ],
)
def test_endpoint_failures_end_the_run_with_the_transcript_kept(
    rt,
    scripted_llm: ScriptedOpenAIServer,
    request: pytest.FixtureRequest,
    failure: str,
    expected: str,
):
    from agents.supervisor import AgentSystem

    server = scripted_llm
    on_event = None
    if failure == "down":
        # A server of its own, stopped once the first tool has run: the second model call
        # finds nothing listening.
        server = ScriptedOpenAIServer().start()
        request.addfinalizer(server.stop)

        def on_event(event: dict[str, Any]) -> None:
            if event["type"] == "tool_result":
                server.stop()

    server.enqueue_tool_calls([{"name": "list_approvals", "arguments": {}}])
    if failure == "slow":
        server.enqueue_delay(1.5, "too late")
    elif failure == "http500":
        server.enqueue_error(500, "model crashed")
    elif failure == "http429":
        server.enqueue_error(429, "slow down")
    config = LLMConfig(
        base_url=server.base_url, api_key="k", model="m", timeout_s=0.5, max_retries=0
    )
    system = AgentSystem(rt, llm_config=config)
    result = system.run(
        "qa-tester", "list approvals", user="bob", thread_id=f"t-{failure}", on_event=on_event
    )
    assert result["status"] == "llm_error"
    assert expected in result["error"]["message"]
    assert result["error"]["hint"]
    # What happened before the failure is kept in the thread.
    kept = system.graph.state(f"t-{failure}")
    assert [m["role"] for m in kept["messages"]] == ["user", "assistant", "tool"]
    assert kept["status"] == "llm_error"
    assert [c["tool"] for c in result["tool_calls"]] == ["list_approvals"]


def test_a_bug_in_a_tool_propagates_and_the_thread_keeps_the_transcript(
    rt, scripted_llm: ScriptedOpenAIServer, monkeypatch: pytest.MonkeyPatch
):
    import dataclasses

    def broken(call, args):  # noqa: ANN001, ANN202
        raise RuntimeError("boom")

    catalog = rt.dispatcher.catalog
    monkeypatch.setitem(
        catalog, "list_approvals", dataclasses.replace(catalog["list_approvals"], func=broken)
    )
    scripted_llm.enqueue_tool_calls([{"name": "list_approvals", "arguments": {}}])
    system = agent_system(rt)
    with pytest.raises(RuntimeError, match="boom"):
        system.run("qa-tester", "list approvals", user="bob", thread_id="t-bug")
    kept = system.graph.state("t-bug")
    assert [m["role"] for m in kept["messages"]] == ["user", "assistant"]
    (entry,) = rt.services.audit.entries(action="list_approvals")
    assert entry["outcome"] == "bug"

    # The next run answers the call the crash left open, as the protocol requires.
    monkeypatch.undo()
    scripted_llm.enqueue_text("It failed earlier; try again later.")
    result = system.run("qa-tester", "what happened?", user="bob", thread_id="t-bug")
    assert result["status"] == "done"
    sent = scripted_llm.chat_requests[-1].body["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool", "user"]
    assert json.loads(sent[3]["content"])["error"]["code"] == "not_run"
