"""LLM client: the OpenAI chat-completions protocol, through the ``openai`` package, to any
compatible endpoint (OpenAI, vLLM, Ollama, llama.cpp server).

Configured by ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY`` / ``MODELOPS_LLM_MODEL``. Every failure
of the endpoint becomes a ``core.errors.ExternalServiceError`` that says what happened and what
to check; ``openai`` is imported only when a request is made so the CLI starts fast.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from core.errors import ExternalServiceError, InvalidInput

if TYPE_CHECKING:
    import openai

    from core.settings import Settings

OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"
# Local servers (vLLM, Ollama, llama.cpp) ignore the key, but the openai client insists on one.
LOCAL_PLACEHOLDER_API_KEY = "no-key-needed-for-local-server"
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MAX_RETRIES = 2

Message = Mapping[str, Any]
ToolChoice = str | Mapping[str, Any]

_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # OpenAI's limit for function names
_STATUS_WORDS = {
    400: "bad request",
    401: "authentication failed",
    403: "permission denied",
    404: "not found",
    408: "request timeout",
    409: "conflict",
    413: "request too large",
    422: "unprocessable request",
    429: "rate limited",
    500: "internal server error",
    502: "bad gateway",
    503: "service unavailable",
    504: "gateway timeout",
}


class LLMNotConfigured(ExternalServiceError):
    """No endpoint is configured; callers fall back to the offline planner on this error."""

    code = "llm_not_configured"
    default_hint = (
        "Set OPENAI_BASE_URL to an OpenAI-compatible server (e.g. http://127.0.0.1:11434/v1 for "
        "Ollama, http://127.0.0.1:8000/v1 for vLLM) and/or OPENAI_API_KEY for api.openai.com; "
        "pick the model with MODELOPS_LLM_MODEL."
    )


# Configuration ----------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class LLMConfig:
    """Where and how to call the model. ``base_url=None`` means api.openai.com.

    ``model`` has no default here on purpose: the one default lives in ``core.settings``.
    """

    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)  # never printed in logs or tracebacks
    model: str
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_retries: int = DEFAULT_MAX_RETRIES

    def __post_init__(self) -> None:
        if not self.timeout_s > 0:
            raise InvalidInput(f"LLM timeout must be positive, got {self.timeout_s} s")
        if self.max_retries < 0:
            raise InvalidInput(f"LLM max_retries must be 0 or more, got {self.max_retries}")
        if not self.model.strip():
            raise InvalidInput("LLM model name is empty", hint="Set MODELOPS_LLM_MODEL.")

    @classmethod
    def from_env(
        cls,
        *,
        settings: Settings | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_retries: int = DEFAULT_MAX_RETRIES,
    ) -> LLMConfig:
        """Read OPENAI_BASE_URL / OPENAI_API_KEY; the model comes from the settings resolver
        (``MODELOPS_LLM_MODEL`` -> modelops.toml -> default)."""
        if settings is None:
            from core.settings import load_settings  # deferred: pydantic-settings is not free

            settings = load_settings()
        base_url = os.environ.get("OPENAI_BASE_URL", "").strip() or None
        api_key = os.environ.get("OPENAI_API_KEY", "").strip() or None
        if base_url and not api_key:
            api_key = LOCAL_PLACEHOLDER_API_KEY
        return cls(
            base_url=base_url.rstrip("/") if base_url else None,
            api_key=api_key,
            model=settings.llm_model,
            timeout_s=timeout_s,
            max_retries=max_retries,
        )

    def is_configured(self) -> bool:
        return bool(self.base_url or self.api_key)

    @property
    def endpoint(self) -> str:
        """The URL requests go to, for messages."""
        return self.base_url or OPENAI_DEFAULT_BASE_URL


# Results ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


@dataclass(frozen=True)
class ToolCall:
    """A function call the model asked for; ``arguments`` is the raw JSON text it produced."""

    id: str
    name: str
    arguments: str

    def parse_arguments(self) -> dict[str, Any]:
        """The arguments as a dict. Bad JSON is the model's mistake, so it is ``InvalidInput``
        (the dispatcher returns it to the model as an error result)."""
        if not self.arguments.strip():
            return {}  # some servers send "" for a function without parameters
        try:
            value = json.loads(self.arguments)
        except json.JSONDecodeError as exc:
            raise InvalidInput(
                f"arguments for tool '{self.name}' are not valid JSON ({exc.msg} at "
                f"char {exc.pos}): {self.arguments[:200]}",
                hint="Send the arguments as one JSON object.",
            ) from exc
        if not isinstance(value, dict):
            raise InvalidInput(
                f"arguments for tool '{self.name}' must be a JSON object, got "
                f"{type(value).__name__}",
                hint="Send the arguments as one JSON object.",
            )
        return value


@dataclass(frozen=True)
class LLMResponse:
    content: str | None
    tool_calls: list[ToolCall]
    finish_reason: str | None
    # None when the server did not report usage: an unknown count is not reported as zero.
    usage: Usage | None

    def to_message(self) -> dict[str, Any]:
        """The assistant message to append to the conversation before sending tool results."""
        message: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in self.tool_calls
            ]
        return message


@dataclass(frozen=True)
class StreamEvent:
    """``kind="text"``: one content delta in ``text``. ``kind="done"``: the last event; ``response``
    holds the assembled reply (content, tool calls, finish reason, usage)."""

    kind: Literal["text", "done"]
    text: str = ""
    response: LLMResponse | None = None


class UsageTracker:
    """Token usage summed over the calls of one run; shareable between clients and threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls = 0
        self.calls_without_usage = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.total_tokens = 0

    def record(self, usage: Usage | None) -> None:
        with self._lock:
            self.calls += 1
            if usage is None:
                self.calls_without_usage += 1
                return
            self.prompt_tokens += usage.prompt_tokens
            self.completion_tokens += usage.completion_tokens
            self.total_tokens += usage.total_tokens

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {
                "calls": self.calls,
                "calls_without_usage": self.calls_without_usage,
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "total_tokens": self.total_tokens,
            }


def tool_spec(name: str, description: str, parameters: Mapping[str, Any]) -> dict[str, Any]:
    """An OpenAI function-tool definition from a name, a description and a JSON Schema."""
    if not _TOOL_NAME.match(name):
        raise InvalidInput(
            f"tool name {name!r} is not allowed by the OpenAI protocol",
            hint="Use 1-64 letters, digits, '_' or '-'.",
        )
    if parameters.get("type") != "object":
        raise InvalidInput(
            f"parameters of tool '{name}' must be a JSON Schema with type 'object'",
            hint="Pass the pydantic input model's model_json_schema().",
        )
    return {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": dict(parameters)},
    }


# Client ------------------------------------------------------------------------------------
class LLMClient:
    """Chat completions against one configured endpoint, with usage tracking."""

    def __init__(self, config: LLMConfig, *, usage: UsageTracker | None = None) -> None:
        if not config.is_configured():
            raise LLMNotConfigured(
                "No LLM endpoint is configured (neither OPENAI_BASE_URL nor OPENAI_API_KEY is set)."
            )
        self.config = config
        self.usage = usage if usage is not None else UsageTracker()
        self._client: openai.OpenAI | None = None

    @classmethod
    def from_env(cls, *, usage: UsageTracker | None = None) -> LLMClient:
        return cls(LLMConfig.from_env(), usage=usage)

    def __enter__(self) -> LLMClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _openai(self) -> openai.OpenAI:
        if self._client is None:
            import openai  # deferred: ~0.5 s, and most CLI commands never talk to a model

            # Retries (429, 5xx, connection errors, timeouts) are the openai client's own,
            # with exponential backoff and Retry-After support.
            self._client = openai.OpenAI(
                base_url=self.config.endpoint,
                api_key=self.config.api_key,
                timeout=self.config.timeout_s,
                max_retries=self.config.max_retries,
            )
        return self._client

    def _request(
        self,
        messages: Sequence[Message],
        tools: Sequence[Mapping[str, Any]] | None,
        tool_choice: ToolChoice | None,
    ) -> dict[str, Any]:
        if not messages:
            raise InvalidInput("a chat request needs at least one message")
        request: dict[str, Any] = {"model": self.config.model, "messages": list(messages)}
        if tools:
            request["tools"] = list(tools)
        if tool_choice is not None:
            request["tool_choice"] = tool_choice
        return request

    def chat(
        self,
        messages: Sequence[Message],
        tools: Sequence[Mapping[str, Any]] | None = None,
        tool_choice: ToolChoice | None = None,
    ) -> LLMResponse:
        """One completion. Raises ``ExternalServiceError`` if the endpoint fails."""
        import openai

        request = self._request(messages, tools, tool_choice)
        try:
            completion = self._openai().chat.completions.create(**request)
        except openai.APIError as exc:
            raise _translate(exc, self.config) from exc
        except json.JSONDecodeError as exc:  # the client parses a 200 body without wrapping
            raise _malformed(self.config, f"a body that is not JSON ({exc.msg})") from exc
        response = _parse_completion(completion, self.config)
        self.usage.record(response.usage)
        return response

    def stream(
        self,
        messages: Sequence[Message],
        tools: Sequence[Mapping[str, Any]] | None = None,
        tool_choice: ToolChoice | None = None,
    ) -> Iterator[StreamEvent]:
        """Text deltas as they arrive, then one ``done`` event with the assembled response.

        The request is sent on the first ``next()``. Retries cover only the opening of the
        stream; if it breaks midway the deltas already yielded stand and an
        ``ExternalServiceError`` follows.
        """
        import openai

        request = self._request(messages, tools, tool_choice)
        request.update(stream=True, stream_options={"include_usage": True})
        assembler = _StreamAssembler(self.config)
        try:
            with self._openai().chat.completions.create(**request) as chunks:
                for chunk in chunks:
                    yield from assembler.add(chunk)
        except openai.APIError as exc:
            raise _translate(exc, self.config) from exc
        except json.JSONDecodeError as exc:
            raise _malformed(self.config, f"a stream event that is not JSON ({exc.msg})") from exc
        response = assembler.finish()
        self.usage.record(response.usage)
        yield StreamEvent(kind="done", response=response)

    def list_models(self) -> list[str]:
        """Model ids the endpoint serves (``GET /models``): a cheap reachability check."""
        import openai

        try:
            page = self._openai().models.list()
            return [model.id for model in page.data]
        except openai.APIError as exc:
            raise _translate(exc, self.config) from exc
        except json.JSONDecodeError as exc:
            raise _malformed(self.config, f"a body that is not JSON ({exc.msg})") from exc


# Parsing ----------------------------------------------------------------------------------
def _parse_completion(completion: Any, config: LLMConfig) -> LLMResponse:
    # The openai client does not validate bodies strictly (so that lax servers work); a field
    # it could not read comes back as None or as a raw value, hence the getattr checks.
    choices = getattr(completion, "choices", None)
    if not isinstance(choices, list) or not choices:
        raise _malformed(config, "a completion without choices")
    message = getattr(choices[0], "message", None)
    if message is None:
        raise _malformed(config, "a choice without a message")
    content = getattr(message, "content", None)
    if content is not None and not isinstance(content, str):
        raise _malformed(config, "message content that is not text")
    tool_calls = []
    for index, call in enumerate(getattr(message, "tool_calls", None) or []):
        function = getattr(call, "function", None)
        name = getattr(function, "name", None)
        if not isinstance(name, str) or not name:
            raise _malformed(config, "a tool call without a function name")
        arguments = getattr(function, "arguments", None) or ""
        if not isinstance(arguments, str):
            raise _malformed(config, f"tool call '{name}' with non-text arguments")
        tool_calls.append(
            ToolCall(id=_call_id(getattr(call, "id", None), index), name=name, arguments=arguments)
        )
    return LLMResponse(
        content=content,
        tool_calls=tool_calls,
        finish_reason=getattr(choices[0], "finish_reason", None),
        usage=_usage(getattr(completion, "usage", None)),
    )


def _call_id(raw: Any, index: int) -> str:
    # Some local servers omit call ids; tool results still need one to refer to.
    return raw if isinstance(raw, str) and raw else f"call_{index}"


def _usage(raw: Any) -> Usage | None:
    if raw is None:
        return None
    prompt = getattr(raw, "prompt_tokens", None) or 0
    completion = getattr(raw, "completion_tokens", None) or 0
    total = getattr(raw, "total_tokens", None) or prompt + completion
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=total)


class _StreamAssembler:
    """Builds one response out of chat-completion chunks; tool-call deltas merge by index."""

    def __init__(self, config: LLMConfig) -> None:
        self._config = config
        self._text: list[str] = []
        self._calls: dict[int, dict[str, Any]] = {}
        self._finish_reason: str | None = None
        self._usage: Usage | None = None

    def add(self, chunk: Any) -> Iterator[StreamEvent]:
        if getattr(chunk, "usage", None) is not None:
            self._usage = _usage(chunk.usage)  # the include_usage chunk, after the last delta
        for choice in getattr(chunk, "choices", None) or []:
            if getattr(choice, "index", 0) not in (0, None):
                continue  # we never request n > 1
            if getattr(choice, "finish_reason", None):
                self._finish_reason = choice.finish_reason
            delta = getattr(choice, "delta", None)
            text = getattr(delta, "content", None)
            if isinstance(text, str) and text:
                self._text.append(text)
                yield StreamEvent(kind="text", text=text)
            for position, call in enumerate(getattr(delta, "tool_calls", None) or []):
                self._add_call_delta(call, position)

    def _add_call_delta(self, call: Any, position: int) -> None:
        index = getattr(call, "index", None)
        slot = self._calls.setdefault(
            position if index is None else index, {"id": None, "name": None, "arguments": []}
        )
        if getattr(call, "id", None):
            slot["id"] = call.id
        function = getattr(call, "function", None)
        # The name arrives whole in the first delta; later deltas append argument text only.
        if getattr(function, "name", None) and not slot["name"]:
            slot["name"] = function.name
        if getattr(function, "arguments", None):
            slot["arguments"].append(function.arguments)

    def finish(self) -> LLMResponse:
        if self._finish_reason is None:
            raise _malformed(
                self._config,
                "a stream that ended before the model finished (no finish_reason; the "
                "connection may have been cut)",
            )
        tool_calls = []
        for position, index in enumerate(sorted(self._calls)):
            slot = self._calls[index]
            if not slot["name"]:
                raise _malformed(
                    self._config, f"a streamed tool call (index {index}) without a name"
                )
            tool_calls.append(
                ToolCall(
                    id=_call_id(slot["id"], position),
                    name=slot["name"],
                    arguments="".join(slot["arguments"]),
                )
            )
        return LLMResponse(
            content="".join(self._text) if self._text else None,
            tool_calls=tool_calls,
            finish_reason=self._finish_reason,
            usage=self._usage,
        )


# Errors -------------------------------------------------------------------------------------
def _malformed(config: LLMConfig, what: str) -> ExternalServiceError:
    return ExternalServiceError(
        f"LLM endpoint {config.endpoint} returned a malformed response: {what}",
        hint="Check that OPENAI_BASE_URL points at an OpenAI-compatible chat-completions server.",
    )


def _retries_taken(exc: openai.APIError) -> int:
    # The openai client stamps each attempt with x-stainless-retry-count; the request on the
    # error is the last attempt, so this is exactly how many retries happened.
    request = getattr(exc, "request", None)
    raw = request.headers.get("x-stainless-retry-count") if request is not None else None
    return int(raw) if raw and raw.isdigit() else 0


def _after_retries(retries: int) -> str:
    if retries == 0:
        return ""
    return f" after {retries} {'retry' if retries == 1 else 'retries'}"


def _server_message(exc: openai.APIError) -> str:
    body = exc.body
    if isinstance(body, Mapping) and isinstance(body.get("message"), str):
        return body["message"]
    if isinstance(body, str) and body.strip():
        return body.strip()[:300]
    return exc.message


def _refused(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _translate(exc: openai.APIError, config: LLMConfig) -> ExternalServiceError:
    """Plain words for what went wrong, and what to check."""
    import openai

    url = config.endpoint
    retries = _after_retries(_retries_taken(exc))
    server_hint = f"Check that the LLM server is running and OPENAI_BASE_URL is right (now {url})."
    if isinstance(exc, openai.APITimeoutError):
        return ExternalServiceError(
            f"LLM endpoint {url} timed out after {config.timeout_s} s{retries}",
            hint=f"{server_hint} A slow model may need a longer timeout (LLMConfig.timeout_s).",
        )
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__
        if _refused(exc):
            what = "refused the connection"
        else:
            what = f"could not be reached ({cause or exc.message})"
        return ExternalServiceError(f"LLM endpoint {url} {what}{retries}", hint=server_hint)
    if isinstance(exc, openai.APIResponseValidationError):
        return _malformed(config, f"a body that does not fit the schema ({exc.message})")
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        words = _STATUS_WORDS.get(status, "server error" if status >= 500 else "client error")
        message = f"LLM endpoint {url} returned HTTP {status} ({words}){retries}: " + (
            _server_message(exc)
        )
        if status in (401, 403):
            hint = "Check OPENAI_API_KEY."
        elif status == 404:
            hint = (
                f"Check that OPENAI_BASE_URL ends in /v1 and that model '{config.model}' exists "
                "there (MODELOPS_LLM_MODEL)."
            )
        elif status == 429:
            hint = "The endpoint is rate limiting; wait, lower the request rate, or raise quotas."
        elif status >= 500:
            hint = f"The LLM server failed; check its logs. {server_hint}"
        else:
            hint = "The endpoint rejected the request; its message above says why."
        return ExternalServiceError(message, hint=hint)
    # A bare APIError is an error event inside an SSE stream.
    return ExternalServiceError(
        f"LLM endpoint {url} reported an error: {_server_message(exc)}", hint=server_hint
    )
