"""Offline plans for the drafting requests the design tools answer (issue [architect]).

A drafting tool writes files for a person to review under ``MODELOPS_HOME/drafts`` and never
changes a model, a route or an approval, so a drafting request may call it. Only the drafting
tools are reachable from here: "Create runbook for model rollback procedure" drafts a runbook
and can never reach ``rollback_deployment`` (the rules below name no other tool).
"""

from __future__ import annotations

import re

from agents.planner_rules import Plan

_FLAGS = re.IGNORECASE
_NAME = r"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9]|[A-Za-z0-9])"
_REF = rf"{_NAME}(?P<ref>@(?:champion|challenger)|/\d+)?"

_RUNBOOK = re.compile(r"\b(?:run|play)books?\b", _FLAGS)
_RUNBOOK_KIND = re.compile(
    r"\b(?P<kind>roll(?:ing)?[\s-]*backs?|promot(?:e|ion|ions|ing)|incidents?|outages?)\b",
    _FLAGS,
)
_PIPELINE = re.compile(
    r"^\s*(?:please\s+)?(?:draft|create|generate|write|build|make)\s+(?:an?\s+)?(?:training\s+)?"
    r"pipeline\s+(?:from|for|out\s+of)\s+(?:the\s+)?(?:notebook\s+)?"
    r"(?P<notebook>[^\s'\"]+\.ipynb)\b",
    _FLAGS,
)
_SCAFFOLD = re.compile(
    rf"^\s*(?:please\s+)?(?:scaffold|generate|create|draft)\s+(?:an?\s+)?(?:serving|inference)"
    rf"\s+(?:api|app|service)\b[^?]*?\bfor\s+(?:the\s+)?(?:model\s+)?{_REF}\s*\.?\s*$",
    _FLAGS,
)
_MONITORING = re.compile(
    rf"^\s*(?:please\s+)?(?:set\s*up|configure|create|draft|add)\s+(?:model\s+)?monitoring\b"
    rf"[^?]*?\bfor\s+(?:the\s+)?(?:model\s+)?{_REF}\s*\.?\s*$",
    _FLAGS,
)


def plan_design(text: str, available: set[str] | None = None) -> Plan | None:
    """The drafting plan for ``text`` (None: not a request a design tool answers offline)."""

    def offered(tool: str) -> bool:
        return available is None or tool in available

    m = _PIPELINE.search(text)
    if m is not None and offered("draft_training_pipeline"):
        notebook = m.group("notebook")
        return Plan("draft_pipeline", [("draft_training_pipeline", {"notebook": notebook})])
    m = _SCAFFOLD.search(text)
    if m is not None and offered("scaffold_serving_api"):
        name = m.group("name")
        model_id = name + (m.group("ref") or "")
        return Plan("scaffold", [("scaffold_serving_api", {"model_id": model_id})], model=name)
    m = _MONITORING.search(text)
    if m is not None and offered("draft_monitoring_config"):
        name = m.group("name")
        model_id = name + (m.group("ref") or "")
        return Plan(
            "draft_monitoring", [("draft_monitoring_config", {"model_id": model_id})], model=name
        )
    if _RUNBOOK.search(text) and offered("draft_runbook"):
        kind = _RUNBOOK_KIND.search(text)
        if kind is None:
            return None
        word = kind.group("kind").lower()
        value = (
            "rollback"
            if word.startswith("roll")
            else "promotion"
            if word.startswith("promot")
            else "incident"
        )
        return Plan("draft_runbook", [("draft_runbook", {"kind": value})])
    return None
