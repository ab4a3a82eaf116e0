"""Registry-aware checks: every ``models:/NAME@ALIAS`` / ``models:/NAME/VERSION`` reference (and
bare ``NAME/VERSION`` / ``NAME@ALIAS`` of a registered model) on an added line is looked up in
the registry through the dispatcher, with read-only tools only, as the ``architect`` agent
acting for the configured person: authorized and audited like any other call, never a write.
"""

from __future__ import annotations

import ast
import importlib
import re
from dataclasses import dataclass
from typing import Any

from agents.review.diff import ChangedFile
from agents.review.findings import Finding
from agents.review.pyast import Module
from core.names import NAME_PATTERN

# The only tools a review may call; each is checked to be side-effect free before the call.
READ_TOOLS = frozenset({"list_models", "get_model", "list_approvals", "list_validations"})
REVIEW_PROFILE = "architect"
_URI = re.compile(rf"models:/({NAME_PATTERN})(?:@([A-Za-z0-9_-]{{1,64}})|/([0-9]{{1,9}}))")
_BARE = re.compile(
    rf"(?<![\w./:@-])({NAME_PATTERN})(?:@([A-Za-z0-9_-]{{1,64}})|/([0-9]{{1,9}}))(?![\w/@-])"
)


@dataclass(frozen=True)
class Reference:
    path: str
    line: int
    text: str
    name: str
    alias: str | None
    version: str | None
    explicit: bool  # written as a models:/ URI


def _scan(text: str, path: str, line: int, names: set[str]) -> list[Reference]:
    out = []
    spans = []
    for m in _URI.finditer(text):
        spans.append(m.span())
        out.append(Reference(path, line, m.group(0), m.group(1), m.group(2), m.group(3), True))
    for m in _BARE.finditer(text):
        if m.group(1) in names and not any(a <= m.start() < b for a, b in spans):
            out.append(Reference(path, line, m.group(0), m.group(1), m.group(2), m.group(3), False))
    return out


def find_references(
    cf: ChangedFile, modules: list[Module], registered: set[str]
) -> list[Reference]:
    """References on added lines: from string constants in Python, from the text elsewhere."""
    added = cf.added
    if cf.path.endswith(".py") and modules:
        refs = []
        for module in modules:
            for node in ast.walk(module.tree):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    line = module.line(node)
                    if line in added:
                        refs += _scan(node.value, cf.path, line, registered)
        return refs
    return [
        r
        for h in cf.hunks
        for ln in h.lines
        if ln.kind == "+" and ln.new_no
        for r in _scan(ln.text, cf.path, ln.new_no, registered)
    ]


class RegistryLookup:
    """Read-only registry facts for a review, through the dispatcher."""

    def __init__(self, dispatcher: Any, actor: Any) -> None:
        self.dispatcher = dispatcher
        self.actor = actor
        self.calls: list[str] = []
        self._models: dict[str, dict[str, Any]] | None = None
        self._approvals: list[dict[str, Any]] | None = None

    def _call(self, tool: str, args: dict[str, Any]) -> Any:
        from tools.base import CATALOG
        from tools.index import tool_modules

        if tool not in READ_TOOLS:
            raise RuntimeError(f"the review may not call {tool}")
        module = tool_modules().get(tool)
        if module is None:
            return None  # this installation has no such tool
        importlib.import_module(module)
        if CATALOG[tool].side_effect != "read":
            raise RuntimeError(f"{tool} is not a read-only tool; the review never writes")
        self.calls.append(tool)
        return self.dispatcher.call(self.actor, tool, args)

    def models(self) -> dict[str, dict[str, Any]]:
        if self._models is None:
            res = self._call("list_models", {})
            if res is None or not res.ok:
                raise LookupRefused(_error(res, "list_models"))
            self._models = {m["name"]: m for m in res.output["models"]}
        return self._models

    def version(self, name: str, version: str) -> dict[str, Any] | None:
        res = self._call("get_model", {"name": name, "version": version})
        if res is None:
            return None
        if not res.ok:
            if res.error.code == "not_found":
                return None
            raise LookupRefused(_error(res, "get_model"))
        return res.output["versions"][0]

    def validations(self, name: str, version: str) -> list[dict[str, Any]] | None:
        res = self._call("list_validations", {"name": name, "version": version})
        if res is None or not res.ok:
            return None
        return res.output["validations"]

    def approvals(self) -> list[dict[str, Any]] | None:
        if self._approvals is None:
            res = self._call("list_approvals", {})
            if res is None or not res.ok:
                return None
            self._approvals = res.output["approvals"]
        return self._approvals


class LookupRefused(Exception):
    pass


def _error(res: Any, tool: str) -> str:
    if res is None:
        return f"{tool} is not available in this installation"
    return f"{tool}: {res.error.message}"


def honesty_facts(v: dict[str, Any]) -> str:
    h = v.get("honesty") or {}
    keys = ("implementation_status", "accuracy_claim", "validation_method", "honesty_warning")
    return ", ".join(f"{k}={h[k]!r}" for k in keys if k in h) or "no honesty metadata"


def check_references(refs: list[Reference], lookup: RegistryLookup) -> list[Finding]:
    out: list[Finding] = []
    models = lookup.models()
    cache: dict[tuple[str, str], dict[str, Any] | None] = {}
    for ref in refs:
        out += _check_one(ref, models, lookup, cache)
    return out


def _check_one(
    ref: Reference,
    models: dict[str, dict[str, Any]],
    lookup: RegistryLookup,
    cache: dict[tuple[str, str], dict[str, Any] | None],
) -> list[Finding]:
    def finding(rule: str, message: str, severity: Any = None, facts: Any = None) -> Finding:
        return Finding(
            rule,
            ref.path,
            ref.line,
            message,
            severity=severity,
            key=f"{ref.text}",
            facts=facts or {},
        )

    model = models.get(ref.name)
    if model is None:
        return [finding("MO901", f"{ref.text}: no registered model named {ref.name!r}")]
    aliases = {a: str(v) for a, v in (model.get("aliases") or {}).items()}
    if ref.alias is not None:
        number = aliases.get(ref.alias)
        if number is None:
            shown = ", ".join(f"{a}=v{v}" for a, v in sorted(aliases.items())) or "none"
            return [
                finding(
                    "MO901", f"{ref.text}: {ref.name} has no alias {ref.alias!r} (aliases: {shown})"
                )
            ]
    else:
        number = str(ref.version)
    key = (ref.name, number)
    if key not in cache:
        cache[key] = lookup.version(ref.name, number)
    v = cache[key]
    if v is None:
        return [
            finding(
                "MO901",
                f"{ref.text}: {ref.name} has no version {number} "
                f"(latest is v{model.get('latest_version')})",
            )
        ]
    label = f"{ref.text} is {ref.name} v{number}"
    facts = {"version": number, "honesty": v.get("honesty") or {}}
    out = []
    status = (v.get("honesty") or {}).get("implementation_status")
    if v.get("missing_honesty"):
        out.append(
            finding(
                "MO902",
                f"{label}, which lacks honesty metadata "
                f"({', '.join(v['missing_honesty'])}); {honesty_facts(v)}",
                facts=facts,
            )
        )
    elif status == "PLANNED":
        out.append(finding("MO902", f"{label}, status PLANNED: {honesty_facts(v)}", facts=facts))
    elif status == "HEURISTIC":
        out.append(
            finding(
                "MO902",
                f"{label}, status HEURISTIC: {honesty_facts(v)}",
                severity="warning",
                facts=facts,
            )
        )
    records = lookup.validations(ref.name, number)
    current = [r for r in records or [] if r.get("artifact_sha256") == v.get("artifact_sha256")]
    if current and current[0]["verdict"] == "FAILED":
        r = current[0]
        out.append(
            finding(
                "MO903",
                f"{label}, whose latest validation FAILED ({r['validation_id']} by {r['validated_by']}"
                f" at {r.get('at', '?')}: {'; '.join(r['reasons']) or 'no reasons recorded'})",
                facts={**facts, "validation": r},
            )
        )
    if aliases.get("champion") == number:
        out += _champion(ref, number, lookup, finding, label)
    return out


def _champion(ref: Reference, number: str, lookup: RegistryLookup, finding: Any, label: str):
    from policies.approvals import PROMOTE

    approvals = lookup.approvals()
    if approvals is None:
        return []
    promotions = [a for a in approvals if a["model_name"] == ref.name and a["action"] == PROMOTE]
    mine = sorted(
        (a for a in promotions if a["version"] == number and a.get("executed_at")),
        key=lambda a: a["executed_at"],
        reverse=True,
    )
    if not mine:
        return [
            finding(
                "MO904",
                f"{label}, the champion, but no approved promotion of v{number}"
                " was ever executed: the alias was set outside the approval "
                "workflow",
                facts={"version": number},
            )
        ]
    live = [a for a in promotions if a["status"] == "executed" and a["version"] != number]
    if mine[0]["status"] == "superseded" and live:
        newer = live[0]
        return [
            finding(
                "MO904",
                f"{label}, the champion, but its approval {mine[0]['id']} (decided by "
                f"{mine[0].get('decided_by')}) was superseded by {newer['id']} (v{newer['version']}, "
                f"executed {newer.get('executed_at')})",
                facts={"version": number, "approval": mine[0]["id"], "superseded_by": newer["id"]},
            )
        ]
    return []
