"""How the offline planner reads a plain request: which requests it acts on, and with what.

The rule (docs/agents.md, "Offline planner"): a tool that writes (side effect ``write`` or
``external`` in the catalog) is planned only for an explicit imperative that *starts* the
request ("evaluate ...", "roll back ..."), names a model, and names the version where one
matters. The planner then checks through ``get_model`` (the dispatcher, never ``core``) that
the model and version exist before any write. Questions ("how do I ...", "what is ...", a
trailing "?") and requests to draft, write, describe or explain never plan a write tool; a
read may still answer them. Drafting a document (runbook, design doc, plan ...) plans nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

OPTIMIZER_ISSUE = "#4"
OPTIMIZE_TOOL = "optimize_model"
DESIGN_PERMISSION = "design:write"
HOLDOUT = "logged:holdout"

# What the planner understands, with the tool each form needs (the list shown to a person is
# filtered to the tools their profile may call).
PHRASINGS: list[tuple[str, str]] = [
    ("list models", "list_models"),
    ("show model NAME [vN]", "get_model"),
    ("review NAME [vN]", "get_model"),
    ("deployment status of NAME", "get_deployment"),
    ("list [pending] approvals", "list_approvals"),
    (
        "evaluate NAME vN on PATH|the holdout [and promote it if it beats the champion]",
        "evaluate_model",
    ),
    ("compare NAME vA and vB on PATH|the holdout", "evaluate_model"),
    ("validate NAME vN on PATH|logged:holdout", "record_validation"),
    ("promote NAME vN on PATH [canary 10 50 100|blue-green]", "request_promotion"),
    ("roll back NAME [to vN] because REASON", "request_rollback"),
    ("optimize NAME vN [for latency|size|throughput] [on PATH]", OPTIMIZE_TOOL),
    ("create a rollback|promotion|incident runbook", "draft_runbook"),
    ("set up model monitoring for NAME[@champion|/N]", "draft_monitoring_config"),
    ("scaffold a serving API for NAME@champion|NAME/N", "scaffold_serving_api"),
    ("draft a training pipeline from PATH.ipynb", "draft_training_pipeline"),
]
LLM_SETUP = (
    "Set OPENAI_BASE_URL to an OpenAI-compatible server (e.g. http://127.0.0.1:11434/v1 for "
    "Ollama) and/or OPENAI_API_KEY, and pick the model with MODELOPS_LLM_MODEL (docs/llm.md)."
)


def offline_forms(offered: set[str] | None = None) -> str:
    """The phrasings that work offline, for a profile offered these tools (None: all)."""
    forms = [f"'{text}'" for text, tool in PHRASINGS if offered is None or tool in offered]
    forms.append('or structured input {"tool": NAME, "args": {...}}')
    return "; ".join(forms)


def needs_llm(offered: set[str] | None = None) -> str:
    return (
        "This request needs an LLM, and no LLM endpoint is configured: the offline planner "
        f"does not act on it, and nothing was run. {LLM_SETUP} "
        f"Offline you can ask: {offline_forms(offered)}."
    )


NEEDS_LLM = needs_llm()
OPTIMIZE_UNAVAILABLE = (
    "Optimization is not available yet: this build has no optimize tool, so nothing was run. "
    f"Issue {OPTIMIZER_ISSUE} (inference optimizer: ONNX export, quantization, benchmarks) adds it."
)
OPTIMIZE_NEEDS_MODEL = (
    "Which model? Offline, ask as 'optimize NAME vN [for latency|size|throughput] [on PATH]' "
    "(an LLM endpoint can work it out from a looser request). Nothing was run."
)


@dataclass
class Plan:
    intent: str
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    message: str = ""  # the whole answer when there is nothing to call
    # "... and promote it if it beats the champion": request_promotion arguments, used in a
    # later turn only when the evaluation's champion comparison says "better" (or there is
    # no champion yet).
    promote_if_better: dict[str, Any] | None = None
    # What must exist before any write: the model, these versions, a production deployment.
    model: str | None = None
    versions: tuple[str, ...] = ()
    production: bool = False


# Patterns ------------------------------------------------------------------------------------
_NAME = r"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)"
_VER = r"(?:v(?:ersion)?\s*(?P<version>\d+)|(?P<alias>champion|challenger))"
_DATA = r"(?:on|using|with|against)\s+(?:the\s+)?(?P<dataset>[^\s,;]+)"
_MODEL = r"(?:the\s+)?(?:model\s+)?"
# An imperative starts the request (after "please", "ok", ...): a verb in the middle of a
# sentence ("a runbook on how to roll back X") is never an order.
_LEAD = r"^\s*(?:(?:please|kindly|now|ok(?:ay)?|so|then)[\s,]+)*"
_FLAGS = re.IGNORECASE

# Rules whose tool writes: anchored at the start of the request.
_WRITE_RULES: list[tuple[str, re.Pattern[str]]] = [
    (
        "optimize",
        re.compile(rf"{_LEAD}optimi[sz]e\s+{_MODEL}{_NAME}\s+{_VER}", _FLAGS),
    ),
    (
        "compare",
        re.compile(
            rf"{_LEAD}compare\s+{_MODEL}{_NAME}\s+v(?:ersion)?\s*(?P<a>\d+)\s+"
            rf"(?:and|with|vs\.?|versus|to|against)\s+v(?:ersion)?\s*(?P<b>\d+)(?:\s+{_DATA})?",
            _FLAGS,
        ),
    ),
    (
        "rollback",
        re.compile(
            rf"{_LEAD}roll\s*-?\s*back\s+(?:the\s+)?(?:production\s+)?(?:deployment\s+of\s+)?"
            rf"(?:model\s+)?{_NAME}(?:\s+(?:in\s+)?production)?"
            r"(?:\s+to\s+(?:v(?:ersion)?\s*(?P<to>\d+)|the\s+previous\s+version))?",
            _FLAGS,
        ),
    ),
    (
        "validate",
        re.compile(rf"{_LEAD}validate\s+{_MODEL}{_NAME}(?:\s+{_VER})?(?:\s+{_DATA})?", _FLAGS),
    ),
    (
        "evaluate",
        re.compile(rf"{_LEAD}evaluate\s+{_MODEL}{_NAME}(?:\s+{_VER})?(?:\s+{_DATA})?", _FLAGS),
    ),
    (
        "promote",
        re.compile(
            rf"{_LEAD}(?:request\s+(?:a\s+)?promotion\s+(?:of|for)|promote)\s+{_MODEL}{_NAME}"
            rf"(?:\s+{_VER})?(?:\s+{_DATA})?",
            _FLAGS,
        ),
    ),
]
# Rules that only read: found anywhere in the request.
_READ_RULES: list[tuple[str, re.Pattern[str]]] = [
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
        "deployment_status",
        re.compile(
            rf"\b(?:deployment\s+)?(?:status|deployment)\s+(?:of|for)\s+(?:the\s+)?{_NAME}",
            _FLAGS,
        ),
    ),
    ("deployment_status", re.compile(rf"\bis\s+{_NAME}\s+deployed", _FLAGS)),
    ("review", re.compile(rf"^review\s+{_MODEL}{_NAME}(?:\s+{_VER})?[.?!]?$", _FLAGS)),
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
_LABEL = re.compile(
    r"\b(?:label(?:[\s_]+column)?|target(?:\s+column)?)\s+(?P<label>[A-Za-z_]\w*)", _FLAGS
)
_REASON = re.compile(r"\b(?:because|since|due\s+to|reason:?)\s+(?P<reason>.+)$", _FLAGS | re.S)
_STRATEGY = re.compile(
    r"\b(?P<strategy>canary|blue[-/ ]?green|direct)\b"
    r"(?:\s+(?:steps?|at|of|with))*\s*(?P<steps>\d+(?:\.\d+)?%?(?:\s*(?:,|/|->|→|and|then)?\s*"
    r"\d+(?:\.\d+)?%?)*)?",
    _FLAGS,
)

# Questions and descriptions: never a write.
_QUESTION = re.compile(
    r"^\s*(?:how|what|why|when|where|which|who|whose|can|could|should|would|will|shall|may|"
    r"might|must|is|are|was|were|do|does|did|have|has)\b|\?\s*$",
    _FLAGS,
)
_DESCRIBE = re.compile(
    r"\b(?:how\s+to|how\s+(?:do|does|did|can|could|should|would|is|are|i|we|you)|draft|write|"
    r"describe|explain|document|outline|summari[sz]e|walk\s+(?:me|us)\s+through|tell\s+(?:me|us)"
    r"\s+about|what\s+(?:is|are|happens|would))\b",
    _FLAGS,
)
_DOCUMENT = (
    r"(?P<doc>runbooks?|playbooks?|docs?|documents?|documentation|design(?:\s+docs?)?|plans?|"
    r"guides?|procedures?|checklists?|reports?|notes?|proposals?|adrs?|post-?mortems?|readme)"
)
_DRAFT = re.compile(
    r"\b(?:draft|write|create|make|prepare|produce|generate|compose|author)\b"
    rf"(?:\s+[\w-]+){{0,4}}?\s+{_DOCUMENT}\b|\b(?P<book>runbook|playbook)s?\b",
    _FLAGS,
)
# Paths and dataset references are data, not words of the request.
_PATHLIKE = re.compile(r"\S*(?:[/\\]|:(?=\S)|\.[A-Za-z]{2,5}\b)\S*")


def _group(m: re.Match[str], key: str) -> str | None:
    return m.groupdict().get(key)


def _name(m: re.Match[str]) -> str:
    return m.group("name").rstrip(".")


def _dataset(m: re.Match[str]) -> str | None:
    raw = _group(m, "dataset")
    if raw is None:
        return None
    value = re.sub(r"[.)\]'\"]+$", "", raw)
    # "on the holdout": the holdout logged with the version's training run.
    return HOLDOUT if value.lower() in ("holdout", "held-out", "heldout") else value


def _version(m: re.Match[str]) -> str | None:
    return _group(m, "version") or (_group(m, "alias") or "").lower() or None


def _words(text: str) -> str:
    return _PATHLIKE.sub(" ", text)


def descriptive(text: str) -> str | None:
    """Why ``text`` reads as a question or a request for prose (None: it does not)."""
    words = _words(text)
    m = _QUESTION.search(words) or _DESCRIBE.search(words)
    if m is None:
        return None
    return "it asks a question" if m.group(0).strip() == "?" else f"it says {m.group(0).strip()!r}"


def drafting(text: str) -> str | None:
    """The kind of document ``text`` asks to draft (None: it asks for none)."""
    m = _DRAFT.search(_words(text))
    if m is None:
        return None
    return (m.group("doc") or m.group("book") or "document").lower()


# Plans ------------------------------------------------------------------------------------
def plan_text(
    text: str,
    available: set[str] | None = None,
    offered: set[str] | None = None,
    design_tools: list[str] | None = None,
) -> Plan:
    """The plan for one plain request (see docs/agents.md for the accepted forms).

    ``available``: the tool names in the catalog (default: the loaded catalog); ``offered``:
    the tools the profile may call (for the phrasings an answer suggests; None: all);
    ``design_tools``: catalog tools holding the design permission (default: looked up).
    """
    # A rollback's reason ("because ...") is data, not part of the request's wording.
    wording = _REASON.sub("", text)
    from agents.planner_design import plan_design  # the drafting tools' own rules

    design = plan_design(wording, available)
    if design is not None:
        return design
    doc = drafting(wording)
    if doc is not None:
        return Plan("draft", message=_drafting_message(doc, offered, design_tools))
    why = descriptive(wording)
    for intent, pattern in _WRITE_RULES:
        m = pattern.search(text)
        if m is None:
            continue
        if why is not None:
            return Plan("describe", message=_descriptive_message(why, offered))
        return _plan_write(intent, m, text, available)
    for intent, pattern in _READ_RULES:
        m = pattern.search(text)
        if m is not None:
            return _plan_read(intent, m, text, available)
    if why is not None:
        return Plan("describe", message=_descriptive_message(why, offered))
    return Plan("unsupported", message=needs_llm(offered))


def _plan_read(intent: str, m: re.Match[str], text: str, available: set[str] | None) -> Plan:
    if intent == "optimize":
        return _plan_optimize(text, m, available)
    if intent == "list_approvals":
        return Plan(
            intent, [("list_approvals", {"status": "pending"} if m.group("pending") else {})]
        )
    if intent == "list_models":
        return Plan(intent, [("list_models", {})])
    name = _name(m)
    if intent == "deployment_status":
        calls = [("get_model", {"name": name}), ("list_deployments", {})]
        return Plan(intent, [*calls, ("list_approvals", {"status": "pending"})])
    args = {"name": name}
    version = _version(m)
    if version:
        args["version"] = version
    if intent == "review":
        return Plan(intent, [("get_model", args), ("list_approvals", {})])
    return Plan(intent, [("get_model", args)])


def _plan_write(intent: str, m: re.Match[str], text: str, available: set[str] | None) -> Plan:
    if intent == "optimize":
        return _plan_optimize(text, m, available)
    name = _name(m)
    label = _LABEL.search(text)
    extra = {"label_column": label.group("label")} if label else {}
    if intent == "rollback":
        reason = _REASON.search(text)
        args = {
            "name": name,
            "reason": reason.group("reason").strip()[:2000]
            if reason
            else f"requested: {text[:500]}",
        }
        if m.group("to"):
            args["to_version"] = m.group("to")
        versions = (m.group("to"),) if m.group("to") else ()
        return Plan(
            intent, [("request_rollback", args)], model=name, versions=versions, production=True
        )
    dataset = _dataset(m)
    verb = {"compare": "compare", "validate": "validate", "evaluate": "evaluate"}.get(
        intent, "promote"
    )
    if intent == "compare":
        a, b = m.group("a"), m.group("b")
        if dataset is None:
            return Plan(intent, message=_which_dataset(f"compare {name} v{a} and v{b}"))
        base = {"name": name, "dataset": dataset, **extra}
        calls = [
            ("evaluate_model", {**base, "version": a}),
            ("evaluate_model", {**base, "version": b}),
        ]
        return Plan(intent, calls, model=name, versions=(a, b))
    version = _version(m)
    if version is None:
        return Plan(intent, message=_which_version(verb, name, dataset))
    if dataset is None:
        return Plan(intent, message=_which_dataset(f"{verb} {name} v{version}"))
    args = {"name": name, "version": version, "dataset": dataset, **extra}
    if intent == "validate":
        return Plan(intent, [("record_validation", args)], model=name, versions=(version,))
    if intent == "promote":
        args.update(_rollout_plan(text[m.end() :]))
        return Plan(intent, [("request_promotion", args)], model=name, versions=(version,))
    rest = text[m.end() :]
    promote = None
    if re.search(r"\bpromot", rest, _FLAGS):
        promote = {**args, **_rollout_plan(rest)}
    return Plan(
        intent,
        [("evaluate_model", args)],
        promote_if_better=promote,
        model=name,
        versions=(version,),
    )


def _rollout_plan(text: str) -> dict[str, Any]:
    """``{"plan": {...}}`` when the request names a rollout strategy (else the tool's default)."""
    m = _STRATEGY.search(text)
    if m is None:
        return {}
    strategy = m.group("strategy").lower()
    if strategy != "canary" and strategy != "direct":
        strategy = "blue-green"
    plan: dict[str, Any] = {"strategy": strategy}
    if strategy == "canary" and m.group("steps"):
        plan["steps"] = [float(s) for s in re.findall(r"\d+(?:\.\d+)?", m.group("steps"))]
    return {"plan": plan}


def _plan_optimize(text: str, m: re.Match[str], available: set[str] | None) -> Plan:
    if available is None:
        from tools.base import load_catalog

        available = set(load_catalog())
    if OPTIMIZE_TOOL not in available:
        return Plan("optimize", message=OPTIMIZE_UNAVAILABLE)
    if "name" not in m.groupdict():
        return Plan("optimize", message=OPTIMIZE_NEEDS_MODEL)
    name = _name(m)
    args: dict[str, Any] = {"name": name, "version": _version(m)}
    goal = re.search(r"\b(latency|size|throughput)\b", text, _FLAGS)
    if goal:
        args["goal"] = goal.group(1).lower()
    data = re.search(_DATA, text[m.end() :], _FLAGS)
    if data:
        args["dataset"] = _dataset(data)
    return Plan("optimize", [(OPTIMIZE_TOOL, args)], model=name, versions=(args["version"],))


# Answers when nothing is called ---------------------------------------------------------------
def _which_version(verb: str, name: str, dataset: str | None) -> str:
    on = f" on {dataset}" if dataset else " on PATH"
    return (
        f"Which version of {name}? Offline the planner acts only on a named version, e.g. "
        f"'{verb} {name} vN{on}' (see 'show model {name}' for its versions). Nothing was run."
    )


def _which_dataset(request: str) -> str:
    return (
        f"On which data? Offline, say '{request} on PATH' (a CSV/Parquet/JSONL file under the "
        f"working directory or MODELOPS_HOME) or '{request} on the holdout' (the holdout logged "
        "with the model's run). Nothing was run."
    )


def _descriptive_message(why: str, offered: set[str] | None) -> str:
    return (
        f"This reads as a question or a request for a description ({why}), so the offline "
        "planner calls no tool that changes anything, and nothing was run. Answering it in "
        f"words needs an LLM, and no LLM endpoint is configured. {LLM_SETUP} "
        f"Offline you can ask: {offline_forms(offered)}."
    )


def _drafting_message(doc: str, offered: set[str] | None, design_tools: list[str] | None) -> str:
    if design_tools is None:
        from tools.base import load_catalog

        design_tools = sorted(
            t.name for t in load_catalog().values() if t.permission == DESIGN_PERMISSION
        )
    if design_tools:
        tools = (
            f"the Architect's design tools ({', '.join(design_tools)}: call one with structured "
            'input {"tool": NAME, "args": {...}})'
        )
    else:
        tools = (
            f"the Architect's design tools (permission {DESIGN_PERMISSION}; this build has none)"
        )
    return (
        f"Drafting a {doc} needs {tools} or an LLM, and no LLM endpoint is configured. The "
        "offline planner drafts no documents and called no tool: nothing was run or written. "
        f"{LLM_SETUP} Offline you can ask: {offline_forms(offered)}."
    )
