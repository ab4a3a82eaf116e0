"""The LLM client against the scripted OpenAI-compatible server, through the real openai client."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import pytest

from agents.llm import (
    LOCAL_PLACEHOLDER_API_KEY,
    LLMClient,
    LLMConfig,
    LLMNotConfigured,
    StreamEvent,
    ToolCall,
    UsageTracker,
    tool_spec,
)
from core.errors import ExternalServiceError, InvalidInput
from core.settings import Settings
from tests.fakes import openai_server as fake
from tests.fakes.openai_server import ScriptedOpenAIServer, count_tokens, unused_local_port

# Until a conftest registers it, the fixture is made visible to this module by assignment.
scripted_llm = fake.scripted_llm

USER = [{"role": "user", "content": "Which model version is in production?"}]
MODEL_VERSION_TOOL = tool_spec(
    "get_model_version",
    "Look up a registered model version.",
    {
        "type": "object",
        "properties": {"name": {"type": "string"}, "version": {"type": "integer"}},
        "required": ["name"],
    },
)


def make_client(base_url: str, *, timeout_s: float = 5.0, max_retries: int = 0) -> LLMClient:
    config = LLMConfig(
        base_url=base_url,
        api_key="sk-test",
        model="test-model",
        timeout_s=timeout_s,
        max_retries=max_retries,
    )
    return LLMClient(config)


@pytest.fixture
def client(scripted_llm: ScriptedOpenAIServer) -> Iterator[LLMClient]:
    with make_client(scripted_llm.base_url) as llm:
        yield llm


# Plain completions ----------------------------------------------------------------------------
def test_chat_returns_text_and_usage(scripted_llm: ScriptedOpenAIServer, client: LLMClient) -> None:
    scripted_llm.enqueue_text("Version 3 of churn-model is in production.")

    response = client.chat(USER)

    assert response.content == "Version 3 of churn-model is in production."
    assert response.tool_calls == []
    assert response.finish_reason == "stop"
    assert response.usage is not None
    assert response.usage.prompt_tokens == count_tokens(json.dumps(USER))
    assert response.usage.completion_tokens == count_tokens(response.content)
    assert response.usage.total_tokens == (
        response.usage.prompt_tokens + response.usage.completion_tokens
    )


def test_request_body_carries_model_messages_and_tools(
    scripted_llm: ScriptedOpenAIServer,
    client: LLMClient,
) -> None:
    scripted_llm.enqueue_text("ok")

    client.chat(USER, tools=[MODEL_VERSION_TOOL], tool_choice="required")

    (request,) = scripted_llm.requests
    assert request.method == "POST"
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.body["model"] == "test-model"
    assert request.body["messages"] == USER
    assert request.body["tools"] == [MODEL_VERSION_TOOL]
    assert request.body["tool_choice"] == "required"
    assert "stream" not in request.body


def test_tool_calls_are_parsed_with_id_name_and_raw_arguments(
    scripted_llm: ScriptedOpenAIServer,
    client: LLMClient,
) -> None:
    scripted_llm.enqueue_tool_calls(
        [
            {
                "id": "call_a",
                "name": "get_model_version",
                "arguments": {"name": "churn", "version": 3},
            },
            {"id": "call_b", "name": "get_model_version", "arguments": '{"name": "fraud"'},
        ]
    )

    response = client.chat(USER, tools=[MODEL_VERSION_TOOL])

    assert response.finish_reason == "tool_calls"
    assert response.tool_calls == [
        ToolCall(
            id="call_a", name="get_model_version", arguments='{"name": "churn", "version": 3}'
        ),
        ToolCall(id="call_b", name="get_model_version", arguments='{"name": "fraud"'),
    ]
    assert response.tool_calls[0].parse_arguments() == {"name": "churn", "version": 3}
    # The model's broken JSON is kept verbatim and reported as the model's input error.
    with pytest.raises(InvalidInput, match="not valid JSON"):
        response.tool_calls[1].parse_arguments()
    assert response.to_message()["tool_calls"][0] == {
        "id": "call_a",
        "type": "function",
        "function": {"name": "get_model_version", "arguments": '{"name": "churn", "version": 3}'},
    }


def test_list_models(scripted_llm: ScriptedOpenAIServer, client: LLMClient) -> None:
    assert client.list_models() == ["scripted-model"]
    assert scripted_llm.requests[0].path == "/v1/models"


# Streaming ----------------------------------------------------------------------------------
def test_stream_yields_deltas_in_order_before_the_reply_is_complete(
    scripted_llm: ScriptedOpenAIServer,
    client: LLMClient,
) -> None:
    release = threading.Event()
    chunks = ["Champion ", "is ", "version ", "3."]
    scripted_llm.enqueue_stream_text(chunks, release=release)

    events: list[StreamEvent] = []
    released_before_first_delta = None
    for event in client.stream(USER):
        if not events:
            # The server holds the rest of the reply until we release it, so getting here
            # proves deltas are delivered as they arrive rather than buffered.
            released_before_first_delta = release.is_set()
            release.set()
        events.append(event)

    assert released_before_first_delta is False
    assert [e.text for e in events if e.kind == "text"] == chunks
    assert [e.kind for e in events][-1] == "done"
    final = events[-1].response
    assert final is not None
    assert final.content == "Champion is version 3."
    assert final.finish_reason == "stop"
    assert final.usage is not None and final.usage.completion_tokens == count_tokens(final.content)
    body = scripted_llm.requests[0].body
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


def test_streamed_tool_calls_are_assembled_by_index(
    scripted_llm: ScriptedOpenAIServer,
    client: LLMClient,
) -> None:
    scripted_llm.enqueue_stream_tool_calls(
        [
            {"id": "call_1", "name": "get_model_version", "arguments": {"name": "churn"}},
            {"id": "call_2", "name": "list_deployments", "arguments": {"env": "production"}},
        ]
    )

    events = list(client.stream(USER, tools=[MODEL_VERSION_TOOL]))

    assert [e.kind for e in events] == ["done"]  # no text deltas in a pure tool-call reply
    final = events[0].response
    assert final is not None
    assert final.finish_reason == "tool_calls"
    assert [(c.id, c.name) for c in final.tool_calls] == [
        ("call_1", "get_model_version"),
        ("call_2", "list_deployments"),
    ]
    assert [c.parse_arguments() for c in final.tool_calls] == [
        {"name": "churn"},
        {"env": "production"},
    ]
    assert final.usage is not None and final.usage.total_tokens > 0


def test_stream_cut_before_finish_is_an_error(scripted_llm: ScriptedOpenAIServer) -> None:
    release = threading.Event()  # never set: the server gives up and drops the connection
    scripted_llm.enqueue_stream_text(["partial ", "answer"], release=release)
    original = fake.RELEASE_TIMEOUT_S
    fake.RELEASE_TIMEOUT_S = 0.2
    try:
        with make_client(scripted_llm.base_url) as llm:
            seen: list[str] = []
            with pytest.raises(ExternalServiceError, match="ended before the model finished"):
                for event in llm.stream(USER):
                    seen.append(event.text)
    finally:
        fake.RELEASE_TIMEOUT_S = original
    assert seen == ["partial "]
    assert llm.usage.calls == 0  # a broken call is not counted as a completed one


# Usage ----------------------------------------------------------------------------------------
def test_usage_is_accumulated_across_calls_and_clients(
    scripted_llm: ScriptedOpenAIServer,
) -> None:
    tracker = UsageTracker()
    scripted_llm.enqueue_text("first answer")
    scripted_llm.enqueue_tool_calls([{"name": "get_model_version", "arguments": {"name": "x"}}])
    scripted_llm.enqueue_stream_text(["streamed ", "answer"])
    config = LLMConfig(base_url=scripted_llm.base_url, model="m", max_retries=0, timeout_s=5)

    with LLMClient(config, usage=tracker) as one, LLMClient(config, usage=tracker) as two:
        r1 = one.chat(USER)
        r2 = two.chat(USER, tools=[MODEL_VERSION_TOOL])
        r3 = [e for e in one.stream(USER) if e.kind == "done"][0].response

    usages = [r.usage for r in (r1, r2, r3) if r is not None and r.usage is not None]
    assert len(usages) == 3
    assert tracker.snapshot() == {
        "calls": 3,
        "calls_without_usage": 0,
        "prompt_tokens": sum(u.prompt_tokens for u in usages),
        "completion_tokens": sum(u.completion_tokens for u in usages),
        "total_tokens": sum(u.total_tokens for u in usages),
    }
    assert tracker.total_tokens > tracker.prompt_tokens > 0


# Failures ---------------------------------------------------------------------------------------
def test_endpoint_down_is_reported_in_plain_words() -> None:
    url = f"http://127.0.0.1:{unused_local_port()}/v1"
    with make_client(url, max_retries=0) as llm:
        with pytest.raises(ExternalServiceError) as info:
            llm.chat(USER)
    assert str(info.value) == f"LLM endpoint {url} refused the connection"
    assert "OPENAI_BASE_URL" in info.value.hint
    assert info.value.code == "external_service_error"


def test_slow_endpoint_times_out(scripted_llm: ScriptedOpenAIServer) -> None:
    scripted_llm.enqueue_delay(3.0, "too late")
    started = time.monotonic()
    with make_client(scripted_llm.base_url, timeout_s=0.3, max_retries=0) as llm:
        with pytest.raises(ExternalServiceError) as info:
            llm.chat(USER)
    assert time.monotonic() - started < 2.0
    assert "timed out after 0.3 s" in str(info.value)
    assert "timeout" in info.value.hint
    assert len(scripted_llm.chat_requests) == 1


@pytest.mark.parametrize(
    ("status", "words"), [(500, "internal server error"), (429, "rate limited")]
)
def test_http_errors_fail_after_bounded_retries(
    scripted_llm: ScriptedOpenAIServer,
    status: int,
    words: str,
) -> None:
    retries = 2
    for _ in range(retries + 1):
        scripted_llm.enqueue_error(status, f"scripted {status}")

    with make_client(scripted_llm.base_url, max_retries=retries) as llm:
        with pytest.raises(ExternalServiceError) as info:
            llm.chat(USER)

    assert len(scripted_llm.chat_requests) == retries + 1
    assert [r.headers["x-stainless-retry-count"] for r in scripted_llm.chat_requests] == [
        "0",
        "1",
        "2",
    ]
    assert str(info.value) == (
        f"LLM endpoint {scripted_llm.base_url} returned HTTP {status} ({words}) "
        f"after {retries} retries: scripted {status}"
    )
    assert scripted_llm.pending == 0


def test_retry_recovers_when_the_server_does(scripted_llm: ScriptedOpenAIServer) -> None:
    scripted_llm.enqueue_error(503, "warming up")
    scripted_llm.enqueue_text("ready now")
    with make_client(scripted_llm.base_url, max_retries=1) as llm:
        assert llm.chat(USER).content == "ready now"
        assert llm.usage.calls == 1
    assert len(scripted_llm.chat_requests) == 2


@pytest.mark.parametrize(
    ("body", "what"),
    [
        ("this is not json", "not JSON"),
        ('{"id": "x", "choices": []}', "without choices"),
        ('{"choices": [{"index": 0, "finish_reason": "stop"}]}', "without a message"),
    ],
)
def test_malformed_response_is_an_external_error(
    scripted_llm: ScriptedOpenAIServer,
    client: LLMClient,
    body: str,
    what: str,
) -> None:
    scripted_llm.enqueue_raw(200, body)
    with pytest.raises(ExternalServiceError, match="malformed response") as info:
        client.chat(USER)
    assert what in str(info.value)
    assert client.usage.calls == 0


def test_unscripted_request_fails_loudly(
    scripted_llm: ScriptedOpenAIServer,
    client: LLMClient,
) -> None:
    with pytest.raises(ExternalServiceError, match="script ran out of replies"):
        client.chat(USER)


# Configuration --------------------------------------------------------------------------------
def test_not_configured_says_how_to_configure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    config = LLMConfig.from_env(settings=Settings())

    assert not config.is_configured()
    with pytest.raises(LLMNotConfigured) as info:
        LLMClient(config)
    assert isinstance(info.value, ExternalServiceError)
    assert info.value.code == "llm_not_configured"
    assert "No LLM endpoint is configured" in str(info.value)
    assert "OPENAI_BASE_URL" in info.value.hint and "MODELOPS_LLM_MODEL" in info.value.hint


def test_from_env_with_only_a_base_url_uses_a_placeholder_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1/")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("MODELOPS_LLM_MODEL", "llama3.2:3b")
    monkeypatch.setenv("MODELOPS_CONFIG", "/nonexistent/modelops.toml")

    config = LLMConfig.from_env(timeout_s=7, max_retries=1)

    assert config.is_configured()
    assert config.base_url == "http://127.0.0.1:11434/v1"
    assert config.api_key == LOCAL_PLACEHOLDER_API_KEY
    assert config.model == "llama3.2:3b"
    assert (config.timeout_s, config.max_retries) == (7, 1)
    assert "api_key" not in repr(config)  # keys stay out of logs


def test_fixture_points_the_environment_at_the_fake(scripted_llm: ScriptedOpenAIServer) -> None:
    scripted_llm.enqueue_text("hello from the fake")
    with LLMClient.from_env() as llm:
        assert llm.config.endpoint == scripted_llm.base_url
        assert llm.chat(USER).content == "hello from the fake"


def test_tool_spec_format_and_validation() -> None:
    assert MODEL_VERSION_TOOL["type"] == "function"
    assert MODEL_VERSION_TOOL["function"]["name"] == "get_model_version"
    assert MODEL_VERSION_TOOL["function"]["parameters"]["required"] == ["name"]
    with pytest.raises(InvalidInput, match="not allowed"):
        tool_spec("get model", "spaces are not allowed", {"type": "object"})
    with pytest.raises(InvalidInput, match="type 'object'"):
        tool_spec("ok_name", "needs an object schema", {"type": "string"})
