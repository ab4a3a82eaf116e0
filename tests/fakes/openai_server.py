"""A scripted OpenAI-compatible chat-completions server on 127.0.0.1 for tests.

The real ``openai`` client talks to it over HTTP (openai 3.x bypasses respx-style mocks), so
tests exercise the same transport, retry and SSE code paths as production. Replies come from a
FIFO script; an unscripted request gets HTTP 500 so a surprise call fails loudly.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

import pytest

# How long a scripted pause (``release`` event) waits before the server gives up on the test.
RELEASE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server received: method, path, lower-cased headers, parsed JSON body."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class TextReply:
    """An assistant text message; ``chunks`` are the SSE deltas when the request streams."""

    chunks: list[str]
    finish_reason: str = "stop"
    delay_s: float = 0.0
    expect_stream: bool | None = None
    # Streaming only: after the first chunk the server waits for this event, so a test can prove
    # deltas reach the caller before the reply is complete.
    release: threading.Event | None = None


@dataclass
class ToolCallsReply:
    """An assistant message that calls tools; arguments may be a dict or a raw (even bad) string."""

    calls: list[dict[str, Any]]
    content: str | None = None
    delay_s: float = 0.0
    expect_stream: bool | None = None


@dataclass
class ErrorReply:
    """An HTTP error in the OpenAI error envelope."""

    status: int
    message: str
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass
class RawReply:
    """Bytes sent verbatim, for malformed-response tests."""

    status: int
    body: bytes
    content_type: str = "application/json"
    delay_s: float = 0.0


Reply = TextReply | ToolCallsReply | ErrorReply | RawReply

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    429: "rate_limit_exceeded",
}


def count_tokens(text: str) -> int:
    """Rough token count (about four characters a token), so usage numbers track content size."""
    return max(1, math.ceil(len(text) / 4)) if text else 0


def _split_words(text: str) -> list[str]:
    return re.findall(r"\S+\s*|\s+", text) or [text]


def _split_in_three(text: str) -> list[str]:
    # Real servers fragment tool arguments at arbitrary points, so the client must concatenate.
    if len(text) < 3:
        return [text]
    step = math.ceil(len(text) / 3)
    return [text[i : i + step] for i in range(0, len(text), step)]


class ScriptedOpenAIServer:
    """Real HTTP server answering ``POST /v1/chat/completions`` and ``GET /v1/models``."""

    def __init__(self, *, model_ids: tuple[str, ...] = ("scripted-model",)) -> None:
        self.model_ids = model_ids
        self.requests: list[RecordedRequest] = []
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._ids = itertools.count(1)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # Lifecycle ------------------------------------------------------------------------
    def start(self) -> Self:
        if self._httpd is not None:
            raise RuntimeError("ScriptedOpenAIServer is already running")
        self._httpd = _Server(("127.0.0.1", 0), _Handler, self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="scripted-openai-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        # Wakes handlers sleeping in a scripted delay so shutdown never waits for them.
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        assert self._thread is not None
        self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("ScriptedOpenAIServer is not running")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def pending(self) -> int:
        """Scripted replies not consumed yet."""
        with self._lock:
            return len(self._script)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    # Script ---------------------------------------------------------------------------
    def enqueue(self, reply: Reply) -> None:
        with self._lock:
            self._script.append(reply)

    def enqueue_text(self, content: str, *, finish_reason: str = "stop") -> None:
        self.enqueue(TextReply(chunks=_split_words(content), finish_reason=finish_reason))

    def enqueue_stream_text(
        self, chunks: list[str], *, release: threading.Event | None = None
    ) -> None:
        """A reply the client must request with ``stream=true``; each chunk is one SSE delta."""
        self.enqueue(TextReply(chunks=list(chunks), expect_stream=True, release=release))

    def enqueue_tool_calls(
        self, calls: list[dict[str, Any]], *, content: str | None = None
    ) -> None:
        """``calls``: ``{"name": ..., "arguments": dict | raw str, "id": optional}``."""
        self.enqueue(ToolCallsReply(calls=list(calls), content=content))

    def enqueue_stream_tool_calls(
        self, calls: list[dict[str, Any]], *, content: str | None = None
    ) -> None:
        self.enqueue(ToolCallsReply(calls=list(calls), content=content, expect_stream=True))

    def enqueue_error(
        self, status: int, message: str, *, retry_after_s: float | None = 0.01
    ) -> None:
        """An error reply. ``retry_after_s`` sets ``Retry-After`` (whole seconds, so ``0``) and
        OpenAI's ``retry-after-ms``, which the client honours, keeping retry tests fast."""
        headers: dict[str, str] = {}
        if retry_after_s is not None:
            headers["Retry-After"] = str(int(retry_after_s))
            headers["retry-after-ms"] = str(int(retry_after_s * 1000))
        self.enqueue(ErrorReply(status=status, message=message, headers=headers))

    def enqueue_delay(self, seconds: float, then_reply: Reply | str) -> None:
        """Wait ``seconds`` before answering with ``then_reply`` (a string means a text reply)."""
        reply: Reply = (
            TextReply(chunks=_split_words(then_reply))
            if isinstance(then_reply, str)
            else then_reply
        )
        self.enqueue(replace(reply, delay_s=seconds))

    def enqueue_raw(
        self, status: int, body: str | bytes, *, content_type: str = "application/json"
    ) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.enqueue(RawReply(status=status, body=data, content_type=content_type))

    # Used by the handler ----------------------------------------------------------------
    def _record(self, request: RecordedRequest) -> int:
        with self._lock:
            self.requests.append(request)
            return len(self.requests)

    def _next_reply(self) -> Reply | None:
        with self._lock:
            return self._script.popleft() if self._script else None

    def _next_id(self) -> int:
        return next(self._ids)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        fake: ScriptedOpenAIServer,
    ) -> None:
        self.fake = fake
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out and hung up is an expected event in these tests; anything else
        # is a bug in the fake and should be seen.
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    # HTTP/1.0: one response per connection and the close marks the end of an SSE body.
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        # Tests assert on ``.requests``; access logs would only clutter pytest output.
        return

    @property
    def fake(self) -> ScriptedOpenAIServer:
        return self.server.fake

    # Routing ----------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._record(body=None)
        if self.path.rstrip("/") == "/v1/models":
            created = int(time.time())
            data = [
                {"id": m, "object": "model", "created": created, "owned_by": "scripted"}
                for m in self.fake.model_ids
            ]
            self._send_json(200, {"object": "list", "data": data})
        else:
            self._send_error(404, f"no route GET {self.path}")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except json.JSONDecodeError as exc:
            self._record(body=raw.decode(errors="replace"))
            self._send_error(400, f"request body is not JSON: {exc}")
            return
        number = self._record(body=body)
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send_error(404, f"no route POST {self.path}")
            return
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            self._send_error(400, "body must be a JSON object with a 'messages' list")
            return
        reply = self.fake._next_reply()
        if reply is None:
            self._send_error(
                500,
                f"ScriptedOpenAIServer: the script ran out of replies (request #{number} to "
                f"{self.path} was not expected)",
            )
            return
        if reply.delay_s and self.fake._stopping.wait(reply.delay_s):
            return  # server shutting down: nobody is waiting for this answer
        self._answer(body, reply)

    def _record(self, *, body: Any) -> int:
        headers = {k.lower(): v for k, v in self.headers.items()}
        return self.fake._record(RecordedRequest(self.command, self.path, headers, body))

    # Replies ----------------------------------------------------------------------------
    def _answer(self, request: dict[str, Any], reply: Reply) -> None:
        if isinstance(reply, ErrorReply):
            self._send_error(reply.status, reply.message, reply.headers)
            return
        if isinstance(reply, RawReply):
            self._send_bytes(reply.status, reply.body, reply.content_type)
            return
        streaming = bool(request.get("stream"))
        if reply.expect_stream is not None and reply.expect_stream != streaming:
            wanted = "a streaming" if reply.expect_stream else "a non-streaming"
            self._send_error(500, f"ScriptedOpenAIServer: the script expected {wanted} request")
            return
        model = str(request.get("model") or self.fake.model_ids[0])
        prompt_tokens = count_tokens(json.dumps(request["messages"]))
        if isinstance(reply, TextReply):
            if streaming:
                self._stream_text(request, reply, model, prompt_tokens)
            else:
                content = "".join(reply.chunks)
                message = {"role": "assistant", "content": content}
                usage = _usage(prompt_tokens, count_tokens(content))
                self._send_json(200, self._completion(model, message, reply.finish_reason, usage))
            return
        calls = self._normalise_calls(reply.calls)
        if streaming:
            self._stream_tool_calls(request, reply, calls, model, prompt_tokens)
            return
        completion_text = (reply.content or "") + "".join(
            c["function"]["name"] + c["function"]["arguments"] for c in calls
        )
        message = {"role": "assistant", "content": reply.content, "tool_calls": calls}
        usage = _usage(prompt_tokens, count_tokens(completion_text))
        self._send_json(200, self._completion(model, message, "tool_calls", usage))

    def _normalise_calls(self, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
        normalised = []
        for call in calls:
            arguments = call.get("arguments", {})
            raw = arguments if isinstance(arguments, str) else json.dumps(arguments)
            call_id = call.get("id") or f"call_{self.fake._next_id():04d}"
            normalised.append(
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": call["name"], "arguments": raw},
                }
            )
        return normalised

    def _completion(
        self, model: str, message: dict[str, Any], finish_reason: str, usage: dict[str, int]
    ) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-scripted-{self.fake._next_id()}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": None}
            ],
            "usage": usage,
        }

    # SSE --------------------------------------------------------------------------------
    def _stream_text(
        self, request: dict[str, Any], reply: TextReply, model: str, prompt_tokens: int
    ) -> None:
        chunk = self._chunk_factory(model)
        self._start_sse()
        self._sse(chunk({"role": "assistant", "content": ""}))
        for i, piece in enumerate(reply.chunks):
            self._sse(chunk({"content": piece}))
            if i == 0 and reply.release is not None:
                if not self._wait_for_release(reply.release):
                    return  # test never released: cut the stream so the client sees an error
        self._sse(chunk({}, finish_reason=reply.finish_reason))
        content = "".join(reply.chunks)
        self._finish_sse(request, chunk, _usage(prompt_tokens, count_tokens(content)))

    def _stream_tool_calls(
        self,
        request: dict[str, Any],
        reply: ToolCallsReply,
        calls: list[dict[str, Any]],
        model: str,
        prompt_tokens: int,
    ) -> None:
        chunk = self._chunk_factory(model)
        self._start_sse()
        self._sse(chunk({"role": "assistant", "content": reply.content or None}))
        completion_text = reply.content or ""
        for index, call in enumerate(calls):
            name, arguments = call["function"]["name"], call["function"]["arguments"]
            completion_text += name + arguments
            # Like OpenAI: the first delta names the call, later ones carry only argument text.
            head = {
                "index": index,
                "id": call["id"],
                "type": "function",
                "function": {"name": name, "arguments": ""},
            }
            self._sse(chunk({"tool_calls": [head]}))
            for part in _split_in_three(arguments):
                self._sse(
                    chunk({"tool_calls": [{"index": index, "function": {"arguments": part}}]})
                )
        self._sse(chunk({}, finish_reason="tool_calls"))
        self._finish_sse(request, chunk, _usage(prompt_tokens, count_tokens(completion_text)))

    def _chunk_factory(self, model: str) -> Any:
        completion_id = f"chatcmpl-scripted-{self.fake._next_id()}"
        created = int(time.time())

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            return {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [
                    {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
                ],
            }

        return chunk

    def _finish_sse(self, request: dict[str, Any], chunk: Any, usage: dict[str, int]) -> None:
        options = request.get("stream_options") or {}
        if options.get("include_usage"):
            final = chunk({})
            final["choices"] = []
            final["usage"] = usage
            self._sse(final)
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def _wait_for_release(self, release: threading.Event) -> bool:
        deadline = time.monotonic() + RELEASE_TIMEOUT_S
        while time.monotonic() < deadline:
            if release.wait(0.05):
                return True
            if self.fake._stopping.is_set():
                return False
        return False

    def _start_sse(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        self.wfile.flush()

    def _sse(self, payload: dict[str, Any]) -> None:
        self.wfile.write(b"data: " + json.dumps(payload).encode() + b"\n\n")
        # Flush per event: the point of streaming is that each delta leaves immediately.
        self.wfile.flush()

    # Plain responses ---------------------------------------------------------------------
    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send_bytes(status, json.dumps(payload).encode(), "application/json", headers)

    def _send_error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        error_type = _ERROR_TYPES.get(status, "server_error" if status >= 500 else "api_error")
        envelope = {"error": {"message": message, "type": error_type, "param": None, "code": None}}
        self._send_json(status, envelope, headers)

    def _send_bytes(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def unused_local_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (for endpoint-down tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def scripted_llm(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedOpenAIServer]:
    """A started scripted server with OPENAI_BASE_URL / OPENAI_API_KEY pointing at it."""
    with ScriptedOpenAIServer() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-scripted-test")
        yield server
