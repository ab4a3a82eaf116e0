"""Offline planner: the agents' model when no LLM endpoint is configured.

It understands structured input and a documented set of plain requests (docs/agents.md), turns
them into tool calls that go through the same graph, dispatcher and policies as an LLM's, and
summarizes the results. The rule for writes (agents/planner_rules.py): a tool that writes runs
only for an explicit imperative that names an existing model (checked first with ``get_model``)
and the version where one matters; questions and requests to draft or describe never write.
Each turn that calls tools says what it will call first (the assistant message's content,
shown as the plan). Anything else gets a plain answer saying an LLM endpoint is needed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from agents.llm import LLMResponse, ToolCall
from agents.planner_rules import (  # noqa: F401  (re-exported: the planner's public names)
    NEEDS_LLM,
    OPTIMIZE_NEEDS_MODEL,
    OPTIMIZE_TOOL,
    OPTIMIZE_UNAVAILABLE,
    PHRASINGS,
    Plan,
    needs_llm,
    offline_forms,
    plan_text,
)
from agents.planner_summary import (
    DRY_RUN,
    Done,
    args_text,
    check_failed_answer,
    load_result,
    promotion_decision,
    promotion_reason,
    summarize,
    unknown_model_answer,
)
from agents.role_agent import PLANNER_NAME, UNSUPPORTED
from core.errors import InvalidInput

# Structured workflows the planner runs, and the tool that starts each.
WORKFLOWS = {"promotion": "request_promotion"}
VALIDATIONS_TOOL = "list_validations"
REVIEW_VERSIONS = 5  # a review of a whole model reads the evidence of its latest versions


# Requests -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class AgentRequest:
    """What a person asked: plain text, or a structured tool call or workflow."""

    kind: Literal["text", "tool", "workflow"]
    message: str  # what goes into the thread as the user's message

    @property
    def structured(self) -> bool:
        return self.kind != "text"


def parse_request(raw: str | dict[str, Any]) -> AgentRequest:
    """``{"query": ...}``, ``{"tool": ..., "args": ...}``, ``{"workflow": ..., "input": ...}``
    or plain text. Text that starts with ``{`` must be valid JSON."""
    if isinstance(raw, str):
        text = raw.strip()
        if not text:
            raise InvalidInput("the request is empty", hint='Pass --input \'{"query": "..."}\'.')
        if not text.startswith("{"):
            return AgentRequest("text", text)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInput(
                f"--input looks like JSON but is not valid: {exc.msg} at line {exc.lineno}, "
                f"column {exc.colno}",
                hint='Quote it for your shell, e.g. --input \'{"query": "list models"}\'.',
            ) from exc
    else:
        data = raw
    if not isinstance(data, dict):
        raise InvalidInput("--input must be a JSON object or plain text")
    keys = set(data)
    if keys == {"query"} and isinstance(data["query"], str) and data["query"].strip():
        return AgentRequest("text", data["query"].strip())
    if keys <= {"tool", "args"} and "tool" in keys:
        if not isinstance(data["tool"], str) or not data["tool"]:
            raise InvalidInput('"tool" must be a tool name')
        if not isinstance(data.get("args", {}), dict):
            raise InvalidInput('"args" must be a JSON object')
        return AgentRequest(
            "tool", json.dumps({"tool": data["tool"], "args": data.get("args", {})})
        )
    if keys <= {"workflow", "input"} and "workflow" in keys:
        if data["workflow"] not in WORKFLOWS:
            raise InvalidInput(
                f"unknown workflow {data['workflow']!r}",
                hint=f"Workflows: {', '.join(sorted(WORKFLOWS))}.",
            )
        if not isinstance(data.get("input", {}), dict):
            raise InvalidInput('"input" must be a JSON object')
        return AgentRequest(
            "workflow", json.dumps({"workflow": data["workflow"], "input": data.get("input", {})})
        )
    raise InvalidInput(
        f"unrecognized input keys: {', '.join(sorted(keys)) or '(none)'}",
        hint='Use {"query": "..."}, {"tool": NAME, "args": {...}} or '
        '{"workflow": "promotion", "input": {...}}.',
    )


def plan_message(message: str, offered: set[str] | None = None) -> Plan:
    """The plan for a user message: structured JSON (as ``parse_request`` stored it) or text."""
    if message.startswith("{"):
        data = json.loads(message)
        if "tool" in data:
            return Plan("tool", [(data["tool"], data.get("args", {}))])
        if "workflow" in data:
            return Plan(
                f"workflow:{data['workflow']}",
                [(WORKFLOWS[data["workflow"]], data.get("input", {}))],
            )
    return plan_text(message, offered=offered)


def writes(tool: str) -> bool:
    """Whether a tool changes anything (side effect write/external; unknown counts as one)."""
    from tools.base import load_catalog

    spec = load_catalog().get(tool)
    return spec is None or spec.side_effect != "read"


# Plans speak of name/version/dataset/label_column; a tool may name a field differently (the
# evaluation tool calls its dataset "evaluation_dataset"), so the names are fitted to its schema.
_FIELD_ALIASES = {
    "dataset": ("dataset", "evaluation_dataset", "data"),
    "label_column": ("label_column",),
}


def fit_args(tool: str, args: dict[str, Any]) -> dict[str, Any]:
    """``args`` with each canonical field renamed to the one ``tool``'s input schema uses."""
    from tools.base import load_catalog

    spec = load_catalog().get(tool)
    if spec is None:
        return args  # the dispatcher answers an unknown tool
    props = spec.json_schema().get("properties", {})
    fitted = dict(args)
    for canonical, names in _FIELD_ALIASES.items():
        if canonical in fitted and canonical not in props:
            name = next((n for n in names if n in props), None)
            if name is not None:
                fitted[name] = fitted.pop(canonical)
    return fitted


# The planner as a ChatModel -------------------------------------------------------------------
Phase = Literal["check", "known", "do", "more", "promote"]


@dataclass
class Step:
    """What the planner does next: call tools (one phase), or answer."""

    phase: Phase | None = None
    calls: list[tuple[str, dict[str, Any]]] | None = None
    note: str = ""
    text: str = ""
    reason: str = "stop"


def next_step(plan: Plan, done: list[Done], offered: set[str] | None = None) -> Step:
    """The next step of ``plan`` given the calls made so far for this request (``offered``:
    the tools the profile may call; a write it may not make goes straight to the dispatcher,
    which refuses and audits it).

    check (reads: the named model and versions exist, a production deployment for a rollback)
    -> do (the plan's calls) -> more (reads that follow from the results) -> promote (if the
    evaluation beats the champion) -> answer. A get_model that finds nothing adds ``known``
    (list_models) and the answer is a refusal that lists the known models.
    """
    phases = [d.phase for d in done]
    if not done:
        if not plan.calls:
            return Step(text=plan.message, reason=UNSUPPORTED)
        if _needs_check(plan, offered):
            return Step("check", _checks(plan), _note_check(plan))
        return Step("do", plan.calls, _note("Plan:", plan.calls))
    last = phases[-1]
    if last == "known":
        return Step(text=unknown_model_answer(plan, done))
    named = not plan.intent.startswith(("tool", "workflow"))  # structured: exactly that call
    if named and any(d.name == "get_model" and d.code == "not_found" for d in done):
        return Step("known", [("list_models", {})], "Plan: list the known models (read).")
    if last == "check":
        failed = [d for d in done if d.phase == "check" and not d.ok]
        if failed:
            return Step(text=check_failed_answer(plan, failed))
        return Step("do", plan.calls, _note(f"{_checked(plan)} Calling:", plan.calls))
    if last == "do":
        more = _more_calls(plan, [d for d in done if d.phase == "do"], offered)
        if more:
            return Step("more", more, _note("Plan: read what the results point to:", more))
    if plan.promote_if_better is not None and "promote" not in phases:
        work = [d for d in done if d.phase == "do"]
        if any(d.code == DRY_RUN for d in work):
            return Step(text=summarize(plan, done))
        decision = promotion_decision(work)
        if decision is None:
            call = [("request_promotion", plan.promote_if_better)]
            return Step("promote", call, _note(f"{promotion_reason(work)}: calling", call))
        return Step(text=summarize(plan, done) + "\n" + decision)
    return Step(text=summarize(plan, done))


def _needs_check(plan: Plan, offered: set[str] | None) -> bool:
    if offered is not None and any(name not in offered for name, _ in plan.calls):
        return False
    return plan.model is not None and any(writes(name) for name, _ in plan.calls)


def _checks(plan: Plan) -> list[tuple[str, dict[str, Any]]]:
    name = plan.model or ""
    calls = [("get_model", {"name": name, "version": v}) for v in plan.versions if v]
    calls = calls or [("get_model", {"name": name})]
    if plan.production:
        calls.append(("get_deployment", {"name": name}))
    return calls


def _checked(plan: Plan) -> str:
    versions = [f"v{v}" for v in plan.versions if v]
    found = f"{plan.model} {' and '.join(versions)}".strip()
    found += " exist" if len(versions) > 1 else " exists"
    return found + (" and it is deployed in production." if plan.production else ".")


def _note_check(plan: Plan) -> str:
    lines = ["Plan:"]
    for n, (name, args) in enumerate(_checks(plan), 1):
        lines.append(f"  {n}. {name} {args_text(args)} (read: check before any write)")
    lines.append("  then, if that holds:")
    offset = len(lines) - 2
    lines.extend(_lines(plan.calls, offset))
    if plan.promote_if_better is not None:
        lines.append(
            f"  {offset + len(plan.calls) + 1}. request_promotion "
            f"{args_text(plan.promote_if_better)} (write), only if the evaluation beats the "
            "champion (or there is none)"
        )
    return "\n".join(lines)


def _note(head: str, calls: list[tuple[str, dict[str, Any]]]) -> str:
    return "\n".join([head, *_lines(calls, 0)])


def _lines(calls: list[tuple[str, dict[str, Any]]], offset: int) -> list[str]:
    return [
        f"  {offset + n}. {name} {args_text(args)} ({'write' if writes(name) else 'read'})"
        for n, (name, args) in enumerate(calls, 1)
    ]


def _more_calls(
    plan: Plan, work: list[Done], offered: set[str] | None
) -> list[tuple[str, dict[str, Any]]]:
    """Reads that follow from the first results: a review's evidence (the version's latest
    promotion request, its validation records), a deployment's state."""
    if plan.intent == "deployment_status":
        listed = next((d for d in work if d.name == "list_deployments" and d.ok), None)
        model = next((d for d in work if d.name == "get_model" and d.ok), None)
        if listed and model and model.output["name"] in listed.output.get("deployments", []):
            return [("get_deployment", {"name": model.output["name"]})]
        return []
    if plan.intent != "review":
        return []
    model = next((d for d in work if d.name == "get_model" and d.ok), None)
    listed = next((d for d in work if d.name == "list_approvals" and d.ok), None)
    if model is None:
        return []
    approvals = [
        a
        for a in (listed.output.get("approvals", []) if listed else [])
        if a["model_name"] == model.output["name"] and a.get("action") != "rollback_production"
    ]
    calls: list[tuple[str, dict[str, Any]]] = []
    for version in model.output.get("versions", [])[-REVIEW_VERSIONS:]:
        ver = version["version"]
        if _may_read(VALIDATIONS_TOOL, offered):  # the state-DB verdicts, not the tag mirror
            calls.append((VALIDATIONS_TOOL, {"name": version["name"], "version": ver}))
        mine = [a for a in approvals if a["version"] == ver]
        if mine:
            latest = max(mine, key=lambda a: a.get("created_at") or "")
            calls.append(("get_approval", {"approval_id": latest["id"]}))
        elif not _may_read(VALIDATIONS_TOOL, offered):
            evaluation = version.get("tags", {}).get("validation_evaluation_id")
            if evaluation:
                calls.append(("get_evaluation", {"evaluation_id": evaluation}))
    return calls


def _may_read(tool: str, offered: set[str] | None) -> bool:
    from tools.base import load_catalog

    return tool in load_catalog() and (offered is None or tool in offered)


class OfflinePlanner:
    """Plays the model's part in the role agent graph without an LLM."""

    name = PLANNER_NAME

    def respond(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        on_text: Callable[[str], None] | None = None,
    ) -> LLMResponse:
        start = max(i for i, m in enumerate(messages) if m["role"] == "user")
        offered = {t["function"]["name"] for t in tools} if tools else None
        plan = plan_message(messages[start]["content"], offered)
        step = next_step(plan, _done(messages[start + 1 :]), offered)
        if step.calls is None:
            if on_text is not None:
                on_text(step.text)
            return LLMResponse(step.text, [], step.reason, None)
        calls = [
            ToolCall(
                id=f"plan_{start}_{step.phase}_{i}",
                name=name,
                arguments=json.dumps(args if plan.intent == "tool" else fit_args(name, args)),
            )
            for i, (name, args) in enumerate(step.calls)
        ]
        if on_text is not None:  # streaming (chat): the plan is shown as it is decided
            on_text(step.note + "\n")
        return LLMResponse(step.note, calls, "tool_calls", None)


def _done(after: list[dict[str, Any]]) -> list[Done]:
    """The calls made so far for this request, with their phase (from the call ids)."""
    results = {m["tool_call_id"]: m["content"] for m in after if m["role"] == "tool"}
    done = []
    for m in after:
        for tc in (m.get("tool_calls") or []) if m["role"] == "assistant" else []:
            parts = tc["id"].split("_")
            phase = parts[2] if len(parts) == 4 and parts[0] == "plan" else "do"
            try:
                args = json.loads(tc["function"]["arguments"] or "{}")
            except json.JSONDecodeError:
                args = {}
            result = load_result(results.get(tc["id"], ""))
            done.append(Done(phase, tc["function"]["name"], args, result))
    return done
