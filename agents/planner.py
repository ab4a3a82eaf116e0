"""Offline planner: the agents' model when no LLM endpoint is configured.

It understands structured input and a documented set of plain requests (docs/agents.md), turns
them into tool calls that go through the same graph, dispatcher and policies as an LLM's, and
summarizes the results. Anything else gets a plain answer saying an LLM endpoint is needed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from agents.llm import LLMResponse, ToolCall
from agents.role_agent import PLANNER_NAME, UNSUPPORTED
from core.errors import InvalidInput

# Structured workflows the planner runs, and the tool that starts each.
WORKFLOWS = {"promotion": "request_promotion"}
OPTIMIZER_ISSUE = "#4"

NEEDS_LLM = (
    "The offline planner cannot handle this request, and no LLM endpoint is configured. "
    "Set OPENAI_BASE_URL to an OpenAI-compatible server (e.g. http://127.0.0.1:11434/v1 for "
    "Ollama) and/or OPENAI_API_KEY for api.openai.com, and pick the model with "
    "MODELOPS_LLM_MODEL. Without one, ask in one of these forms: "
    "'list models'; 'show model NAME [vN]'; 'evaluate NAME vN on PATH [and promote it]'; "
    "'compare NAME vA and vB on PATH'; 'validate NAME vN on PATH'; "
    "'request promotion of NAME vN on PATH'; 'deployment status of NAME'; "
    "'roll back NAME [to vN]'; 'list [pending] approvals'; "
    'or give structured input {"tool": NAME, "args": {...}} or '
    '{"workflow": "promotion", "input": {...}}.'
)
OPTIMIZE_TOOL = "optimize_model"
OPTIMIZE_UNAVAILABLE = (
    "Optimization is not available yet: this build has no optimize tool, so nothing was run. "
    f"Issue {OPTIMIZER_ISSUE} (inference optimizer: ONNX export, quantization, benchmarks) adds it."
)
OPTIMIZE_NEEDS_MODEL = (
    "Which model? Offline, ask as 'optimize NAME vN [for latency|size|throughput] [on PATH]' "
    "(an LLM endpoint can work it out from a looser request). Nothing was run."
)


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


# Plans --------------------------------------------------------------------------------------
@dataclass
class Plan:
    intent: str
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    message: str = ""  # the whole answer when there is nothing to call
    # "... and promote it if it beats the champion": request_promotion arguments, used in a
    # second turn only when the evaluation's champion comparison says "better" (or there is
    # no champion yet).
    promote_if_better: dict[str, Any] | None = None


_NAME = r"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)"
_VER = r"(?:v(?:ersion)?\s*(?P<version>\d+)|(?P<alias>champion|challenger))"
_DATA = r"(?:on|using|with)\s+(?P<dataset>[^\s,;]+)"
_FLAGS = re.IGNORECASE

_RULES: list[tuple[str, re.Pattern[str]]] = [
    ("optimize", re.compile(rf"\boptimi[sz]e\s+(?:the\s+)?(?:model\s+)?{_NAME}\s+{_VER}", _FLAGS)),
    ("optimize", re.compile(r"\boptimi[sz]", _FLAGS)),
    (
        "list_approvals",
        re.compile(
            r"\b(?:list|show)\s+(?:the\s+|all\s+)?(?P<pending>pending\s+)?approvals?\b", _FLAGS
        ),
    ),
    (
        "list_models",
        re.compile(
            r"\b(?:list|show)\s+(?:all\s+|the\s+)*(?:registered\s+)?models\b|\bwhat\s+models\b",
            _FLAGS,
        ),
    ),
    (
        "compare",
        re.compile(
            rf"\bcompare\s+{_NAME}\s+v(?:ersion)?\s*(?P<a>\d+)\s+(?:and|with|vs\.?|versus|to|against)"
            rf"\s+v(?:ersion)?\s*(?P<b>\d+)\s+{_DATA}",
            _FLAGS,
        ),
    ),
    (
        "rollback",
        re.compile(
            rf"\broll\s*-?\s*back\s+(?:the\s+)?(?:deployment\s+of\s+)?{_NAME}"
            r"(?:\s+to\s+v(?:ersion)?\s*(?P<to>\d+))?",
            _FLAGS,
        ),
    ),
    (
        "deployment_status",
        re.compile(
            rf"\b(?:deployment\s+)?(?:status|deployment)\s+(?:of|for)\s+(?:the\s+)?{_NAME}",
            _FLAGS,
        ),
    ),
    ("deployment_status", re.compile(rf"\bis\s+{_NAME}\s+deployed", _FLAGS)),
    ("validate", re.compile(rf"\bvalidate\s+{_NAME}\s+{_VER}\s+{_DATA}", _FLAGS)),
    ("evaluate", re.compile(rf"\bevaluate\s+{_NAME}\s+{_VER}\s+{_DATA}", _FLAGS)),
    (
        "promote",
        re.compile(
            rf"\b(?:request\s+(?:a\s+)?promotion\s+(?:of|for)|promote)\s+{_NAME}\s+{_VER}\s+{_DATA}",
            _FLAGS,
        ),
    ),
    (
        "show_model",
        re.compile(
            rf"\b(?:show|get|describe|inspect)\s+(?:the\s+)?model\s+{_NAME}(?:\s+{_VER})?", _FLAGS
        ),
    ),
    # Without the word "model" only a whole-message request, so "show me ..." is not a name.
    (
        "show_model",
        re.compile(rf"^(?:show|get|describe|inspect)\s+{_NAME}(?:\s+{_VER})?[.?!]?$", _FLAGS),
    ),
]
_TARGET = re.compile(r"\btarget(?:\s+column)?\s+(?P<target>[A-Za-z_]\w*)", _FLAGS)


def _group(m: re.Match[str], key: str) -> str | None:
    return m.groupdict().get(key)


def _name(m: re.Match[str]) -> str:
    return m.group("name").rstrip(".")


def _dataset(m: re.Match[str]) -> str:
    return re.sub(r"[.)\]'\"]+$", "", m.group("dataset"))


def _version(m: re.Match[str]) -> str | None:
    return _group(m, "version") or (_group(m, "alias") or "").lower() or None


def plan_text(text: str, available: set[str] | None = None) -> Plan:
    """The plan for one plain request (see docs/agents.md for the accepted forms).

    ``available``: the tool names in the catalog (default: the loaded catalog).
    """
    for intent, pattern in _RULES:
        m = pattern.search(text)
        if m is None:
            continue
        target = _TARGET.search(text)
        extra = {"target": target.group("target")} if target else {}
        if intent == "optimize":
            return _plan_optimize(text, m, available)
        if intent == "list_approvals":
            return Plan(
                intent, [("list_approvals", {"status": "pending"} if m.group("pending") else {})]
            )
        if intent == "list_models":
            return Plan(intent, [("list_models", {})])
        if intent == "compare":
            base = {"name": _name(m), "dataset": _dataset(m), **extra}
            return Plan(
                intent,
                [
                    ("evaluate_model", {**base, "version": m.group("a")}),
                    ("evaluate_model", {**base, "version": m.group("b")}),
                ],
            )
        if intent == "rollback":
            args = {"name": _name(m), "reason": f"requested: {text[:500]}"}
            if m.group("to"):
                args["to_version"] = m.group("to")
            return Plan(intent, [("rollback_deployment", args)])
        if intent == "deployment_status":
            return Plan(intent, [("get_deployment", {"name": _name(m)})])
        if intent == "show_model":
            args = {"name": _name(m)}
            version = _version(m)
            if version:
                args["version"] = version
            return Plan(intent, [("get_model", args)])
        args = {"name": _name(m), "version": _version(m), "dataset": _dataset(m), **extra}
        if intent == "validate":
            return Plan(intent, [("record_validation", args)])
        if intent == "promote":
            return Plan(intent, [("request_promotion", args)])
        promote = re.search(r"\bpromot", text[m.end() :], _FLAGS) is not None
        return Plan(intent, [("evaluate_model", args)], promote_if_better=args if promote else None)
    return Plan("unsupported", message=NEEDS_LLM)


def _plan_optimize(text: str, m: re.Match[str], available: set[str] | None) -> Plan:
    if available is None:
        from tools.base import load_catalog

        available = set(load_catalog())
    if OPTIMIZE_TOOL not in available:
        return Plan("optimize", message=OPTIMIZE_UNAVAILABLE)
    if "name" not in m.groupdict():
        return Plan("optimize", message=OPTIMIZE_NEEDS_MODEL)
    args: dict[str, Any] = {"name": _name(m), "version": _version(m)}
    goal = re.search(r"\b(latency|size|throughput)\b", text, _FLAGS)
    if goal:
        args["target"] = goal.group(1).lower()
    data = re.search(_DATA, text[m.end() :], _FLAGS)
    if data:
        args["dataset"] = _dataset(data)
    return Plan("optimize", [(OPTIMIZE_TOOL, args)])


def plan_message(message: str) -> Plan:
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
    return plan_text(message)


# Plans speak of name/version/dataset/target; a tool may name a field differently (the
# evaluation tool calls its dataset "evaluation_dataset"), so the names are fitted to its schema.
_FIELD_ALIASES = {"dataset": ("dataset", "evaluation_dataset", "data"), "target": ("target",)}


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
        plan = plan_message(messages[start]["content"])
        after = messages[start + 1 :]
        turns = sum(1 for m in after if m["role"] == "assistant")
        if turns == 1 and plan.promote_if_better is not None:
            decision = _promotion_decision(after)
            if decision is None:
                args = fit_args("request_promotion", plan.promote_if_better)
                call = ToolCall(
                    id=f"plan_{start}_promote", name="request_promotion", arguments=json.dumps(args)
                )
                return LLMResponse(
                    "The candidate beats the champion: requesting promotion.",
                    [call],
                    "tool_calls",
                    None,
                )
            return self._text(summarize(plan, after) + "\n" + decision, "stop", on_text)
        if not turns:
            if plan.calls:
                calls = [
                    ToolCall(
                        id=f"plan_{start}_{i}",
                        name=name,
                        arguments=json.dumps(
                            args if plan.intent == "tool" else fit_args(name, args)
                        ),
                    )
                    for i, (name, args) in enumerate(plan.calls)
                ]
                note = "Plan: " + ", ".join(name for name, _ in plan.calls)
                return LLMResponse(note, calls, "tool_calls", None)
            return self._text(plan.message, UNSUPPORTED, on_text)
        return self._text(summarize(plan, after), "stop", on_text)

    @staticmethod
    def _text(text: str, reason: str, on_text: Callable[[str], None] | None) -> LLMResponse:
        if on_text is not None:
            on_text(text)
        return LLMResponse(text, [], reason, None)


# Summaries ----------------------------------------------------------------------------------
def _promotion_decision(after: list[dict[str, Any]]) -> str | None:
    """None when the evaluation says the candidate beats the champion (or there is none);
    otherwise why no promotion is requested."""
    result = _load(next((m["content"] for m in after if m["role"] == "tool"), ""))
    if not result.get("ok"):
        return "Not requesting promotion: the evaluation failed."
    out = result.get("output") or {}
    comparison = out.get("comparison")
    if comparison is None or comparison.get("verdict") == "better":
        return None
    return (
        f"Not requesting promotion: v{out['version']} does not beat champion "
        f"v{out['champion_version']} ({comparison['verdict']}: {comparison['reason']})."
    )


def summarize(plan: Plan, after: list[dict[str, Any]]) -> str:
    """Plain sentences over the tool results that follow the plan's tool calls."""
    calls = [tc for m in after if m["role"] == "assistant" for tc in m.get("tool_calls") or []]
    results = {m["tool_call_id"]: m["content"] for m in after if m["role"] == "tool"}
    lines, outputs = [], []
    for tc in calls:
        name = tc["function"]["name"]
        result = _load(results.get(tc["id"], ""))
        outputs.append(result)
        lines.append(_describe(name, result))
    if plan.intent == "compare" and all(r.get("ok") for r in outputs) and len(outputs) == 2:
        lines.append(_comparison(outputs[0]["output"], outputs[1]["output"]))
    return "\n".join(lines)


def _load(content: str) -> dict[str, Any]:
    try:
        value = json.loads(content)
    except json.JSONDecodeError:
        return {"ok": False, "error": {"code": "unreadable", "message": content[:300]}}
    return value if isinstance(value, dict) else {"ok": False, "error": {"message": str(value)}}


def _metrics(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.4f}" for k, v in sorted(metrics.items())) or "no metrics"


def _describe(tool: str, result: dict[str, Any]) -> str:
    if not result.get("ok"):
        err = result.get("error") or {}
        hint = f" Hint: {err['hint']}" if err.get("hint") else ""
        return f"{tool} failed ({err.get('code', 'error')}): {err.get('message', '')}{hint}"
    out = result.get("output") or {}
    try:
        return _describe_output(tool, out)
    except (KeyError, TypeError, AttributeError):
        # The tool's output changed shape: show it as it is rather than a wrong summary.
        return f"{tool}: " + json.dumps(out, default=str)[:800]


def _describe_output(tool: str, out: dict[str, Any]) -> str:
    if tool == "list_models":
        models = out.get("models", [])
        if not models:
            return "No registered models."
        return f"{len(models)} registered model(s): " + "; ".join(
            f"{m['name']} (latest v{m['latest_version']}, {m['versions']} versions"
            + (f", aliases {m['aliases']}" if m.get("aliases") else "")
            + ")"
            for m in models
        )
    if tool == "get_model":
        return "; ".join(
            f"{out['name']} v{v['version']}: aliases {v['aliases'] or 'none'}, "
            f"{v['honesty'].get('implementation_status', 'no implementation_status')}, "
            f"validation {v['tags'].get('validation_status', 'none')}"
            for v in out.get("versions", [])
        )
    if tool == "evaluate_model":
        ds = out["dataset"]
        return (
            f"{out['name']} v{out['version']} on {Path(ds['path']).name} ({out['n']} rows): "
            f"{_metrics(out['metrics'])}"
        )
    if tool == "record_validation":
        why = f" ({'; '.join(out['reasons'])})" if out["reasons"] else ""
        return f"QA verdict on {out['name']} v{out['version']}: {out['verdict']}{why}"
    if tool == "request_promotion":
        failed = [g["message"] for g in out.get("gates", []) if not g.get("passed")]
        text = f"promotion {out['status']}: {out['message']}"
        if failed:
            text += " Failed gates: " + "; ".join(failed)
        if out.get("approve_command"):
            text += f" An approver runs: {out['approve_command']}"
        return text
    if tool == "get_deployment":
        gw = out.get("gateway") or {}
        where = gw.get("url") if gw.get("running") else "gateway not running"
        return (
            f"{out['name']}: live versions {out['live_versions'] or 'none'}, revision "
            f"{out['revision']}, strategy {out['strategy']}, {where}"
        )
    if tool == "rollback_deployment":
        return (
            f"{out['name']} rolled back: revision {out['revision']}, live versions "
            f"{out['live_versions']}"
        )
    if tool == OPTIMIZE_TOOL:
        kept = f"registered as v{out['version']}" if out.get("registered") else "not registered"
        return (
            f"optimized {out['name']} v{out['source_version']}: adopted {out['adopted']} "
            f"({out['reason']}); {kept}"
        )
    if tool == "list_approvals":
        items = out.get("approvals", [])
        if not items:
            return "No approval requests."
        return f"{len(items)} approval request(s): " + "; ".join(
            f"{a['id']} {a['model_name']} v{a['version']} {a['status']}" for a in items
        )
    return f"{tool}: " + json.dumps(out, default=str)[:800]


def _comparison(a: dict[str, Any], b: dict[str, Any]) -> str:
    parts = []
    for metric in sorted(set(a["metrics"]) & set(b["metrics"])):
        x, y = a["metrics"][metric], b["metrics"][metric]
        parts.append(f"{metric} v{a['version']} {x:.4f} vs v{b['version']} {y:.4f} ({y - x:+.4f})")
    return "Comparison: " + ("; ".join(parts) or "no metric measured on both")
