"""``/v1/chat/completions`` and ``/v1/models`` with the ``openai`` Python client itself as the
client: streaming and not, against the scripted LLM server and with no LLM at all (offline
planner); a run that stops at an approval returns it as data in ``modelops``."""

from __future__ import annotations

import json

import pytest

from tests import test_server_support as support

# Fixtures shared by the control-plane tests (see tests/test_server_support.py).
app, live, tokens = support.app, support.live, support.tokens

MODEL = "breast-cancer-classifier"


def _client(live, token: str):
    import openai

    return openai.OpenAI(base_url=f"{live.url}/v1", api_key=token, max_retries=0, timeout=60)


def _stream_text(stream) -> tuple[str, dict, list[dict]]:
    text, final, events = [], None, []
    for chunk in stream:
        extra = getattr(chunk, "model_extra", None) or {}
        mo = extra.get("modelops")
        if mo and "event" in mo:
            events.append(mo["event"])
        elif mo:
            final = mo
        for choice in chunk.choices:
            if choice.delta.content:
                text.append(choice.delta.content)
    return "".join(text), final, events


def test_models_lists_the_profiles_the_person_may_launch(live, tokens):
    ids = [m.id for m in _client(live, tokens["carol"]).models.list()]
    assert "architect" in ids and "qa-tester" in ids and "supervisor" in ids
    assert "ml-engineer" not in ids  # more trusted than an Architect


def test_chat_with_the_scripted_llm_runs_tools_server_side(live, tokens, scripted_llm):
    scripted_llm.enqueue_tool_calls([{"name": "list_models", "arguments": {}}])
    scripted_llm.enqueue_text("No models are registered yet.")
    client = _client(live, tokens["dana"])
    resp = client.chat.completions.create(
        model="ml-engineer",
        messages=[{"role": "user", "content": "Which models do we have?"}],
        user="conversation-1",
    )
    assert resp.choices[0].message.content == "No models are registered yet."
    assert resp.choices[0].finish_reason == "stop"
    mo = resp.model_extra["modelops"]
    assert mo["planner"] is False and mo["llm"].startswith("llm:")
    assert mo["on_behalf_of"] == "dana" and mo["profile"] == "ml-engineer"
    assert mo["tool_calls"] == [{"tool": "list_models", "ok": True, "code": None}]
    assert mo["pending_approval"] is None and mo["thread_id"] == "conversation-1"
    first = scripted_llm.chat_requests[0].body
    offered = {t["function"]["name"] for t in first["tools"]}
    assert "list_models" in offered and "decide_approval" not in offered  # agents never approve

    # The same `user` continues the same thread: the model sees the earlier turn.
    scripted_llm.enqueue_text("Still none.")
    again = client.chat.completions.create(
        model="ml-engineer",
        messages=[{"role": "user", "content": "And now?"}],
        user="conversation-1",
    )
    assert again.choices[0].message.content == "Still none."
    history = scripted_llm.chat_requests[-1].body["messages"]
    assert any(m.get("content") == "Which models do we have?" for m in history)
    assert again.model_extra["modelops"]["run_thread_id"] == mo["run_thread_id"]


def test_streaming_chat_with_the_scripted_llm(live, tokens, scripted_llm):
    scripted_llm.enqueue_stream_tool_calls([{"name": "list_models", "arguments": {}}])
    scripted_llm.enqueue_stream_text(["Nothing ", "is ", "registered."])
    stream = _client(live, tokens["dana"]).chat.completions.create(
        model="ml-engineer",
        messages=[{"role": "user", "content": "Which models do we have?"}],
        stream=True,
        extra_headers={"X-Thread-Id": "stream-1"},
    )
    text, final, events = _stream_text(stream)
    assert text == "Nothing is registered."
    assert final["status"] == "done" and final["thread_id"] == "stream-1"
    kinds = [(e["type"], e.get("tool")) for e in events]
    assert ("tool_call", "list_models") in kinds and ("tool_result", "list_models") in kinds
    assert all(r.body.get("stream") for r in scripted_llm.chat_requests)


def test_chat_without_an_llm_answers_through_the_offline_planner(live, tokens):
    client = _client(live, tokens["dana"])
    resp = client.chat.completions.create(
        model="ml-engineer", messages=[{"role": "user", "content": "list models"}]
    )
    mo = resp.model_extra["modelops"]
    assert mo["planner"] is True and mo["llm"] == "offline-planner"
    assert "offline planner" in resp.choices[0].message.content
    assert mo["tool_calls"][0]["tool"] == "list_models"
    stream = client.chat.completions.create(
        model="ml-engineer", messages=[{"role": "user", "content": "list models"}], stream=True
    )
    text, final, _ = _stream_text(stream)
    assert "offline planner" in text and final["planner"] is True


def test_chat_errors_reach_the_openai_client_as_its_exceptions(live, tokens):
    import openai

    with pytest.raises(openai.AuthenticationError):
        _client(live, "mot_" + "z" * 43).models.list()
    with pytest.raises(openai.NotFoundError):
        _client(live, tokens["dana"]).chat.completions.create(
            model="nobody", messages=[{"role": "user", "content": "hi"}]
        )
    with pytest.raises(openai.PermissionDeniedError):
        _client(live, tokens["carol"]).chat.completions.create(
            model="ml-engineer", messages=[{"role": "user", "content": "hi"}]
        )


@pytest.mark.slow
def test_a_run_that_stops_at_an_approval_returns_it_as_data(live, tokens, registered):
    rt = registered["rt"]
    request = {
        "workflow": "promotion",
        "input": {"name": MODEL, "version": "1", "dataset": registered["holdout"]},
    }
    resp = _client(live, tokens["dana"]).chat.completions.create(
        model="ml-engineer", messages=[{"role": "user", "content": json.dumps(request)}]
    )
    mo = resp.model_extra["modelops"]
    pending = mo["pending_approval"]
    assert mo["status"] == "pending_approval" and pending is not None
    req = rt.services.approvals.get(pending["approval_id"])
    assert pending["evidence_hash"] == req.evidence_hash and pending["status"] == "pending"
    assert pending["console_url"] == f"{live.url}/console/approvals/{req.id}"
    assert pending["waits_for"] == ["alice", "bob"] and pending["requested_by"] == "dana"
    text = resp.choices[0].message.content
    assert req.id in text and "alice or bob" in text and pending["console_url"] in text
    # Nothing moved: only a person can approve.
    assert rt.services.registry.alias_version(MODEL, "champion") is None
