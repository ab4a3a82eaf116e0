"""Run a review over changed files: the deterministic checks, then (when asked and possible)
the registry lookups and the LLM reviews, which add to the result and never change what the
deterministic checks found."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from agents.review.checks_files import check_requirements, check_secrets
from agents.review.checks_policy import check_policies
from agents.review.checks_py import check_python
from agents.review.checks_registry import (
    LookupRefused,
    Reference,
    RegistryLookup,
    check_references,
    find_references,
)
from agents.review.diff import ChangedFile, Contents
from agents.review.findings import SEVERITY_RANK, Finding, dedupe, sort_findings
from agents.review.pyast import Module, parse_modules

OFFLINE_MESSAGE = (
    "No LLM is configured (OPENAI_BASE_URL / OPENAI_API_KEY), so there is no Architect design "
    "review or QATester validation review: these are the deterministic findings alone."
)


@dataclass
class ReviewResult:
    source: dict[str, Any]
    files: list[ChangedFile]
    findings: list[Finding]
    notes: list[str] = field(default_factory=list)
    registry: dict[str, Any] = field(default_factory=dict)
    llm: dict[str, Any] = field(default_factory=dict)
    llm_findings: list[Finding] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out = {"error": 0, "warning": 0, "note": 0}
        for f in self.findings:
            out[f.level] += 1
        return out

    def fails(self, threshold: str) -> bool:
        """True when a deterministic finding is at or above ``threshold`` (never: False)."""
        if threshold == "never":
            return False
        rank = SEVERITY_RANK[threshold]
        return any(SEVERITY_RANK[f.level] >= rank for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": 1,
            "source": self.source,
            "summary": {**self.counts(), "files": len(self.files)},
            "findings": [f.to_dict() for f in self.findings],
            "registry": self.registry,
            "llm": {**self.llm, "findings": [f.to_dict() for f in self.llm_findings]},
            "notes": self.notes,
        }


def deterministic_checks(
    files: list[ChangedFile], contents: Contents | None
) -> tuple[list[Finding], list[str], dict[str, list[Module]]]:
    findings: list[Finding] = []
    notes: list[str] = [n for cf in files for n in cf.notes]
    modules: dict[str, list[Module]] = {}
    for cf in files:
        if cf.binary or cf.status == "removed":
            continue
        mods: list[Module] = []
        if cf.path.endswith(".py"):
            mods, more = parse_modules(cf)
            notes += more
            findings += check_python(cf, mods)
        modules[cf.path] = mods
        findings += check_secrets(cf, mods)
        listing = None
        if contents is not None:
            listing = contents.new_listing(str(PurePosixPath(cf.path).parent))
        findings += check_requirements(cf, listing)
    new_text_of = contents.new_text if contents is not None else (lambda path: None)
    policy_findings, policy_notes = check_policies(files, new_text_of)
    findings += policy_findings
    notes += policy_notes
    return sort_findings(dedupe(findings)), notes, modules


def run_registry_checks(
    files: list[ChangedFile], modules: dict[str, list[Module]], lookup: RegistryLookup
) -> tuple[list[Finding], dict[str, Any]]:
    try:
        registered = set(lookup.models())
        refs: list[Reference] = []
        for cf in files:
            if cf.path in modules:
                refs += find_references(cf, modules[cf.path], registered)
        found = check_references(refs, lookup)
    except LookupRefused as exc:
        return [], {"status": "refused", "message": str(exc), "actor": lookup.actor.describe()}
    return found, {
        "status": "checked",
        "actor": lookup.actor.describe(),
        "references": sorted({r.text for r in refs}),
        "tools": sorted(set(lookup.calls)),
    }


def review(
    files: list[ChangedFile],
    contents: Contents | None,
    *,
    source: dict[str, Any],
    lookup: RegistryLookup | None = None,
    registry_skipped: str = "",
    llm_runner: Any = None,
    diff_text: str = "",
) -> ReviewResult:
    """Deterministic findings first; registry findings join them (they are deterministic
    too); LLM findings are kept apart, tagged with their author."""
    findings, notes, modules = deterministic_checks(files, contents)
    result = ReviewResult(source=source, files=files, findings=findings, notes=notes)
    if lookup is not None:
        reg, info = run_registry_checks(files, modules, lookup)
        result.findings = sort_findings(dedupe(findings + reg))
        result.registry = info
    else:
        result.registry = {"status": "skipped", "message": registry_skipped or "not requested"}
    if llm_runner is None:
        result.llm = {"status": "offline", "message": OFFLINE_MESSAGE, "reviews": []}
    else:
        result.llm, result.llm_findings = llm_runner(diff_text, result)
    return result
