"""Agents as OpenAI models: ``GET /v1/models`` lists the agent profiles the token's person may
launch, ``POST /v1/chat/completions`` runs one turn of that agent (``stream: true``: SSE chunks
in OpenAI's format). Tool calls run server-side through the dispatcher; the conversation is a
LangGraph thread keyed by the person, the profile and the ``user`` field or ``X-Thread-Id``.

A run that stops at an approval says in its text what waits for whom, and returns it as data
in a ``modelops`` object (approval id, evidence hash, console URL). With no LLM configured the
offline planner answers, and the response says so.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
import threading
import time
from typing import Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from agents.approval_view import pending_view
from agents.server.auth import Principal
from agents.server.deps import control_plane, principal
from agents.server.plane import ControlPlane
from agents.server.responses import AUTH_ERRORS, ApiError, _doc
from core.errors import ModelOpsError

log = logging.getLogger("modelops.server.chat")
router = APIRouter(prefix="/v1", tags=["openai"])
MAX_MESSAGE_CHARS = 32_000
PLANNER_NOTE = (
    "No LLM is configured on this server, so the offline planner answered: it handles "
    "structured input and a documented set of requests (docs/agents.md)."
)
CHAT_ERRORS = {
    **AUTH_ERRORS,
    404: _doc("No agent profile with that name."),
    422: _doc("Invalid request (no user message, bad JSON input, thread of another agent)."),
    429: _doc("Too many chat requests for this token."),
    502: _doc("The LLM endpoint behind the agent failed."),
}


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str = Field(max_length=32)
    content: str | list[dict[str, Any]] | None = None


class ChatRequest(BaseModel):
    # Chat UIs send more fields (temperature, tools, …): accepted and ignored.
    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1, max_length=128, description="An agent profile name.")
    messages: list[ChatMessage] = Field(min_length=1, max_length=1000)
    stream: bool = False
    user: str | None = Field(
        default=None, max_length=256, description="Conversation key (else X-Thread-Id)."
    )


class ModelCard(BaseModel):
    id: str
    object: str = "model"
    created: int = 0
    owned_by: str = "modelops"
    role: str
    description: str


class ModelList(BaseModel):
    object: str = "list"
    data: list[ModelCard]


class ChatCompletion(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    object: str
    created: int
    model: str
    choices: list[dict[str, Any]]
    modelops: dict[str, Any]


def _launchable(cp: ControlPlane, p: Principal) -> list[tuple[str, str, str]]:
    from agents.profiles import may_delegate
    from agents.supervisor import SUPERVISOR

    policy = cp.services.policy
    mine = policy.trust(p.actor)
    out = [
        (name, prof.role, prof.persona)
        for name, prof in sorted(policy.profiles.items())
        if may_delegate(mine, policy.roles[prof.role].trust)
    ]
    if SUPERVISOR not in policy.profiles:
        out.insert(0, (SUPERVISOR, "router", "Routes each request to the profile it fits."))
    return out


@router.get("/models", response_model=ModelList, responses=AUTH_ERRORS)
def list_agent_models(
    p: Principal = Depends(principal), cp: ControlPlane = Depends(control_plane)
) -> dict[str, Any]:
    """The agent profiles the token's person may launch, as OpenAI models."""
    return {
        "object": "list",
        "data": [
            {
                "id": n,
                "object": "model",
                "created": 0,
                "owned_by": "modelops",
                "role": r,
                "description": d,
            }
            for n, r, d in _launchable(cp, p)
        ],
    }


def _user_text(body: ChatRequest) -> str:
    last = next((m for m in reversed(body.messages) if m.role == "user"), None)
    if last is None:
        raise ApiError(422, "invalid_input", "the conversation has no user message")
    content = last.content
    if isinstance(content, list):
        content = "".join(
            str(part.get("text", "")) for part in content if part.get("type") == "text"
        )
    text = (content or "").strip()
    if not text:
        raise ApiError(422, "invalid_input", "the last user message is empty")
    if len(text) > MAX_MESSAGE_CHARS:
        raise ApiError(
            422,
            "invalid_input",
            f"the user message has {len(text)} characters; the limit is {MAX_MESSAGE_CHARS}",
        )
    return text


def _thread(person: str, profile: str, key: str) -> str:
    digest = hashlib.sha256(f"{person}\0{profile}\0{key}".encode()).hexdigest()[:24]
    return f"cc-{digest}"


class _Turn:
    """One chat turn: its checks happen before any response starts; ``run`` does the work."""

    def __init__(
        self, cp: ControlPlane, p: Principal, body: ChatRequest, key: str | None, base_url: str
    ) -> None:
        from agents.planner import parse_request
        from agents.supervisor import SUPERVISOR

        self.cp, self.p, self.body, self.base_url = cp, p, body, base_url
        text = _user_text(body)
        try:
            self.request = parse_request(text)
        except ModelOpsError as exc:
            raise ApiError.from_error(exc) from exc
        policy = cp.services.policy
        self.routed = body.model == SUPERVISOR and SUPERVISOR not in policy.profiles
        if not self.routed and body.model not in policy.profiles:
            raise ApiError(
                404,
                "model_not_found",
                f"no agent profile named {body.model!r}",
                "GET /v1/models lists the profiles you may launch.",
            )
        self.key = key or f"conv-{secrets.token_hex(8)}"
        self.created = int(time.time())
        self.id = f"chatcmpl-{secrets.token_hex(12)}"
        if not self.routed:
            system = cp.agents
            if body.model not in system.launchable(p.actor):
                try:  # the supervisor's launch check audits the refusal and raises
                    system.launch(body.model, p.actor, {"via": "chat-completions"})
                except ModelOpsError as exc:
                    raise ApiError.from_error(exc) from exc

    def run(self, on_event: Any = None) -> dict[str, Any]:
        from agents.supervisor import SUPERVISOR

        system = self.cp.agents
        route = system.route(self.request, self.p.actor) if self.routed else None
        profile = route.profile if route else self.body.model
        try:
            result = system.run(
                SUPERVISOR if route else profile,
                self.request,
                user=self.p.actor,
                thread_id=_thread(self.p.name, profile, self.key),
                on_event=on_event,
                stream=on_event is not None,
                route=route,
            )
        except ModelOpsError as exc:
            raise ApiError.from_error(exc) from exc
        for c in result.get("tool_calls", []):
            self.cp.metrics.tool_calls.labels(c["tool"], "ok" if c["ok"] else c["code"]).inc()
        return result

    # Response pieces --------------------------------------------------------------------
    def modelops(self, result: dict[str, Any]) -> dict[str, Any]:
        from agents.role_agent import PLANNER_NAME, citations

        planner = result.get("model") == PLANNER_NAME
        return {
            "thread_id": self.key,
            "run_thread_id": result["thread_id"],
            "profile": result["profile"],
            "role": result["role"],
            "on_behalf_of": result["on_behalf_of"],
            "status": result["status"],
            "llm": result.get("model"),
            "planner": planner,
            "note": PLANNER_NOTE if planner else None,
            "route": result.get("route"),
            "tool_calls": [
                {"tool": c["tool"], "ok": c["ok"], "code": c["code"]}
                for c in result.get("tool_calls", [])
            ],
            "citations": citations(result),
            "pending_approval": self.pending(result),
            "error": result.get("error"),
        }

    def pending(self, result: dict[str, Any]) -> dict[str, Any] | None:
        found = result.get("pending_approval") or _pending_in_transcript(result)
        if not found or not found.get("approval_id"):
            return None
        return pending_view(self.cp.services, found["approval_id"], self.base_url)

    def notes(self, mo: dict[str, Any]) -> str:
        lines = []
        pend = mo["pending_approval"]
        if pend:
            what = (
                f"promoting {pend['model']} v{pend['version']} to production"
                if pend["action"] == "promote_to_production"
                else f"rolling {pend['model']} back to v{pend['version']}"
            )
            first = "a human QATester's validation, then " if pend["needs_human_validation"] else ""
            lines.append(
                f"Approval {pend['approval_id']} is {pend['status']}: {what} waits for {first}"
                f"a decision by {' or '.join(pend['waits_for']) or 'a listed approver'} "
                f"(not the requester {pend['requested_by']}). Review the evidence and decide at "
                f"{pend['console_url']} (evidence sha256 {pend['evidence_hash'][:12]}…)."
            )
        if mo["planner"]:
            lines.append(f"({PLANNER_NOTE})")
        return "\n\n".join(lines)

    def content(self, result: dict[str, Any], mo: dict[str, Any]) -> str:
        notes = self.notes(mo)
        return result["answer"] + (f"\n\n{notes}" if notes else "")

    def finish_reason(self, result: dict[str, Any]) -> str:
        return "length" if result["status"] == "max_steps" else "stop"

    def chunk(self, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        payload = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.body.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
            **extra,
        }
        return b"data: " + json.dumps(payload, default=str).encode() + b"\n\n"


def _pending_in_transcript(result: dict[str, Any]) -> dict[str, Any] | None:
    """A request_promotion that opened a request waiting for validation first (the graph
    stops only at ``pending_approval``, so read the tool result itself)."""
    names = {
        tc["id"]: tc["function"]["name"]
        for m in result.get("transcript", [])
        if m.get("role") == "assistant"
        for tc in m.get("tool_calls") or []
    }
    for m in reversed(result.get("transcript", [])):
        if m.get("role") != "tool" or names.get(m.get("tool_call_id")) != "request_promotion":
            continue
        try:
            out = (json.loads(m["content"]) or {}).get("output") or {}
        except (json.JSONDecodeError, TypeError, AttributeError):
            continue
        if out.get("status") in ("pending_approval", "pending_validation"):
            return out
    return None


def _base_url(cp: ControlPlane, request: Request) -> str:
    return (cp.config.public_url or str(request.base_url)).rstrip("/")


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    responses={
        **CHAT_ERRORS,
        200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}},
    },
)
async def chat_completions(
    body: ChatRequest,
    request: Request,
    x_thread_id: str | None = Header(None, alias="X-Thread-Id", max_length=256),
    p: Principal = Depends(principal),
    cp: ControlPlane = Depends(control_plane),
) -> Any:
    """One turn of agent ``model`` for the token's person (OpenAI chat-completions format)."""
    try:
        cp.chat_limit.check(p.token_id)
    except ApiError:
        cp.metrics.rate_limited.inc()
        raise
    key = x_thread_id or body.user
    base = _base_url(cp, request)
    if body.stream:
        # The checks (profile, permission, input) happen before the stream starts.
        turn = await run_in_threadpool(_Turn, cp, p, body, key, base)
        return StreamingResponse(
            _stream(turn),
            media_type="text/event-stream",
            headers={
                "X-Thread-Id": turn.key,
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            },
        )

    def checked_run() -> tuple[_Turn, dict[str, Any]]:
        turn = _Turn(cp, p, body, key, base)
        return turn, turn.run()

    turn, result = await run_in_threadpool(checked_run)
    headers = {"X-Thread-Id": turn.key}
    if result["status"] == "llm_error":
        err = result.get("error") or {}
        raise ApiError(
            502,
            err.get("code", "external_service_error"),
            err.get("message", "the LLM endpoint failed"),
            err.get("hint", ""),
        )
    mo = turn.modelops(result)
    return JSONResponse(
        {
            "id": turn.id,
            "object": "chat.completion",
            "created": turn.created,
            "model": body.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": turn.content(result, mo)},
                    "finish_reason": turn.finish_reason(result),
                    "logprobs": None,
                }
            ],
            "modelops": mo,
        },
        headers=headers,
    )


async def _stream(turn: _Turn) -> Any:
    """Text deltas as the agent's model produces them; tool calls and results as chunks with
    an empty delta and a ``modelops.event``; the final chunk carries the ``modelops`` object."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    def put(kind: str, item: Any) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, (kind, item))

    def work() -> None:
        try:
            put("result", turn.run(on_event=lambda e: put("event", e)))
        except ApiError as exc:
            put("error", exc)
        except Exception as exc:  # a bug: report it in the stream, log the traceback
            log.exception("chat turn failed")
            put("error", ApiError(500, "error", f"{type(exc).__name__}: {exc}"))

    threading.Thread(target=work, name="chat-turn", daemon=True).start()
    yield turn.chunk({"role": "assistant", "content": ""})
    final_text: list[str] = []
    while True:
        kind, item = await queue.get()
        if kind == "event":
            if item["type"] == "text":
                final_text.append(item["text"])
                yield turn.chunk({"content": item["text"]})
            elif item["type"] in ("tool_call", "tool_result", "handoff", "handoff_done", "route"):
                if item["type"] == "tool_result":
                    final_text.clear()
                event = {k: v for k, v in item.items() if k in _EVENT_FIELDS}
                yield turn.chunk({}, modelops={"event": event})
            continue
        if kind == "error":
            yield turn.chunk(
                {"content": f"Error: {item.message}"},
                "stop",
                modelops={"error": item.body()["error"]},
            )
            break
        result = item
        mo = turn.modelops(result)
        streamed = "".join(final_text).strip()
        answer = result["answer"]
        rest = (
            ""
            if streamed and streamed == answer.strip()
            else (("\n\n" if final_text else "") + answer)
        )
        notes = turn.notes(mo)
        rest += f"\n\n{notes}" if notes else ""
        if rest:
            yield turn.chunk({"content": rest})
        yield turn.chunk({}, turn.finish_reason(result), modelops=mo)
        break
    yield b"data: [DONE]\n\n"


_EVENT_FIELDS = (
    "type",
    "profile",
    "tool",
    "ok",
    "code",
    "message",
    "from",
    "to",
    "status",
    "depth",
    "reason",
)
