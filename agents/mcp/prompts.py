"""MCP prompts: the seed agents' documented requests (docs/agents.md) with their arguments.

A prompt is text for the client's own model; it grants nothing (the tools it leads to are
checked on every call). It is listed only when the profile may call the tool it leads to, and
its arguments are short single-line values, so an argument cannot smuggle a second request in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import mcp_types as types

from core.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from agents.runtime import Runtime
    from policies.rbac import Actor

MAX_ARG_CHARS = 256
_ARG = re.compile(rf"^[^\x00-\x1f\x7f]{{1,{MAX_ARG_CHARS}}}$")
_ARG_HELP = {
    "name": "Registered model name (resource modelops://models lists them).",
    "version": "Model version number, e.g. 2.",
    "dataset": "Evaluation data: a CSV path under the working directory or MODELOPS_HOME, "
    "or logged:holdout.",
    "reason": "Why, in one line.",
}


@dataclass(frozen=True)
class SeedPrompt:
    name: str
    description: str
    template: str  # str.format over the arguments
    tool: str  # the tool the request leads to: listed only if the profile may call it
    arguments: tuple[str, ...] = ()


PROMPTS = [
    SeedPrompt(
        "evaluate",
        "Evaluate a model version on a dataset (metrics, slices, champion comparison).",
        "Evaluate {name} v{version} on {dataset}",
        "evaluate_model",
        ("name", "version", "dataset"),
    ),
    SeedPrompt(
        "validate",
        "QA: re-run the evaluation yourself and record a validation verdict.",
        "Validate {name} v{version} on {dataset}",
        "record_validation",
        ("name", "version", "dataset"),
    ),
    SeedPrompt(
        "review-model",
        "Review a model: honesty, lineage, claimed vs measured metrics, validations, approvals.",
        "Review {name}",
        "get_model",
        ("name",),
    ),
    SeedPrompt(
        "request-promotion",
        "Ask for a production promotion; it stops at a human approval.",
        "Request promotion of {name} v{version} on {dataset}",
        "request_promotion",
        ("name", "version", "dataset"),
    ),
    SeedPrompt(
        "rollback-runbook",
        "Draft the rollback runbook (a Markdown file; nothing else changes).",
        "Create runbook for model rollback procedure",
        "draft_runbook",
    ),
    SeedPrompt(
        "request-rollback",
        "Ask for a rollback of production; people decide it.",
        "Roll back {name} because {reason}",
        "request_rollback",
        ("name", "reason"),
    ),
]


def _allowed(rt: Runtime, actor: Actor, tool: str) -> bool:
    found = rt.dispatcher.catalog.get(tool)
    return found is not None and rt.services.policy.authorize(actor, found.permission).allowed


def listed(rt: Runtime, actor: Actor) -> list[types.Prompt]:
    return [
        types.Prompt(
            name=p.name,
            description=p.description,
            arguments=[
                types.PromptArgument(name=a, description=_ARG_HELP[a], required=True)
                for a in p.arguments
            ],
        )
        for p in PROMPTS
        if _allowed(rt, actor, p.tool)
    ]


def get(rt: Runtime, actor: Actor, name: str, args: dict[str, str]) -> types.GetPromptResult:
    prompt = next((p for p in PROMPTS if p.name == name), None)
    if prompt is None or not _allowed(rt, actor, prompt.tool):
        offered = ", ".join(p.name for p in listed(rt, actor)) or "none"
        raise NotFound(
            f"no prompt named {name[:128]!r} for this profile", hint=f"Prompts: {offered}."
        )
    missing = [a for a in prompt.arguments if not args.get(a)]
    extra = sorted(set(args) - set(prompt.arguments))
    if missing or extra:
        raise InvalidInput(
            f"prompt {name}: "
            + "; ".join(
                ([f"missing argument(s) {', '.join(missing)}"] if missing else [])
                + ([f"unknown argument(s) {', '.join(extra)}"] if extra else [])
            ),
            hint=f"Arguments: {', '.join(prompt.arguments) or 'none'}.",
        )
    for a in prompt.arguments:
        if not _ARG.match(args[a]):
            raise InvalidInput(
                f"prompt {name}: argument {a} must be one line of at most {MAX_ARG_CHARS} "
                "characters",
                hint=_ARG_HELP[a],
            )
    text = prompt.template.format(**{a: args[a].strip() for a in prompt.arguments})
    return types.GetPromptResult(
        description=prompt.description,
        messages=[types.PromptMessage(role="user", content=types.TextContent(text=text))],
    )
