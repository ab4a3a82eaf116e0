"""Review findings and the rule catalog: every deterministic check has a stable rule id, a
default severity and a fix hint; LLM-written findings carry their author and never a rule id
of this catalog."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["error", "warning", "note"]
SEVERITY_RANK: dict[str, int] = {"note": 0, "warning": 1, "error": 2}
DETERMINISTIC = "deterministic"


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    severity: Severity
    summary: str
    hint: str


def _rules(*rules: Rule) -> dict[str, Rule]:
    return {r.id: r for r in rules}


# The ids are part of the contract (SARIF ruleIds, inline-comment markers, suppressions):
# never renumber a rule; retire it and add a new one.
RULES: dict[str, Rule] = _rules(
    Rule(
        "MO101",
        "training-run-without-honesty",
        "error",
        "An MLflow training run (start_run or autolog) does not log the honesty parameters.",
        "Log implementation_status, accuracy_claim and validation_method in the run, e.g. "
        "mlflow.log_params({'implementation_status': 'IMPLEMENTED', 'accuracy_claim': ..., "
        "'validation_method': ...}).",
    ),
    Rule(
        "MO201",
        "production-alias-outside-approval",
        "error",
        "Code sets a production alias (champion) directly instead of through an approved "
        "promotion.",
        "Request a promotion (`agent run ml-engineer ...` or the request_promotion tool); only "
        "the approved executor moves the champion alias.",
    ),
    Rule(
        "MO202",
        "deprecated-stage-transition",
        "error",
        "Code calls MLflow's deprecated stage transitions outside the approval workflow.",
        "Stages are deprecated: use aliases, and let an approved promotion move `champion`.",
    ),
    Rule(
        "MO301",
        "serving-response-without-honesty",
        "error",
        "A prediction response of a serving endpoint lacks implementation_status.",
        "Return model_version, implementation_status, accuracy_claim and validation_status with "
        "every prediction.",
    ),
    Rule(
        "MO401",
        "unsafe-deserialization",
        "error",
        "pickle, joblib, cloudpickle or dill load: unpickling runs arbitrary code.",
        "Load models with skops or ONNX from bytes whose SHA-256 matches the registered digest "
        "(e.g. `agent predict`, core.registry.ModelRegistry.load).",
    ),
    Rule(
        "MO402",
        "model-load-outside-registry",
        "warning",
        "A model is loaded from a URI outside the model registry.",
        "Load `models:/NAME@champion` (or `models:/NAME/VERSION`) so the version is registered, "
        "digest-checked and carries honesty metadata.",
    ),
    Rule(
        "MO501",
        "hardcoded-secret",
        "error",
        "A secret (API key, token, password, private key) is added in code or config.",
        "Remove it, rotate it, and read it from the environment or a secret store at run time.",
    ),
    Rule(
        "MO601",
        "policy-loosened",
        "error",
        "A policy change loosens the policy (permission, approver, admin, threshold, "
        "human validation, identity).",
        "Keep the change only if it is intended: an admin reviews it with `agent policy diff` "
        "and applies it with `agent policy apply` (audited).",
    ),
    Rule(
        "MO602",
        "policy-invalid",
        "error",
        "A changed policy file does not parse under the strict policy schema.",
        "Fix the file; `agent policy diff FILE` shows the same error.",
    ),
    Rule(
        "MO701",
        "fit-on-test-data",
        "error",
        "A model or transformer is fitted (or fitting-time statistics computed) on "
        "test/holdout data: leakage.",
        "Fit only on training data; transform the test/holdout split with the fitted object.",
    ),
    Rule(
        "MO702",
        "unseeded-split",
        "warning",
        "A random data split or shuffle has no seed: results cannot be reproduced.",
        "Pass random_state=<fixed int> (and keep it in the run's params).",
    ),
    Rule(
        "MO801",
        "unpinned-model-requirement",
        "warning",
        "A model dependency has no version: the model may not load or behave the same later.",
        "Pin it (`scikit-learn==1.5.2`, or at least a compatible range `>=1.5,<1.6`).",
    ),
    Rule(
        "MO901",
        "registry-reference-missing",
        "error",
        "The diff references a registered model, version or alias that does not exist.",
        "Check the name with `agent models list` and the version with `agent models show NAME`.",
    ),
    Rule(
        "MO902",
        "registry-version-not-implemented",
        "error",
        "The diff references a model version whose honesty status is PLANNED or HEURISTIC, "
        "or whose honesty metadata is missing.",
        "Reference an IMPLEMENTED, validated version (usually `models:/NAME@champion`).",
    ),
    Rule(
        "MO903",
        "registry-validation-failed",
        "error",
        "The diff references a model version whose latest validation FAILED.",
        "Reference a version that passed QA validation, or fix and re-validate this one.",
    ),
    Rule(
        "MO904",
        "registry-champion-without-approval",
        "error",
        "The diff references a champion whose promotion approval was superseded or never executed.",
        "Ask an approver about the champion's state (`agent approvals list`); roll back or "
        "re-promote through an approved request.",
    ),
)


@dataclass(frozen=True)
class Finding:
    """One problem on one line of the new side of the diff (``line`` 0: the whole file)."""

    rule: str
    path: str
    line: int
    message: str
    severity: Severity | None = None  # None: the rule's default
    # What identifies this finding across runs (never a secret value): with the rule and the
    # path it makes the fingerprint, so a moved line keeps its alert and its comment.
    key: str = ""
    facts: dict[str, Any] = field(default_factory=dict)
    source: str = DETERMINISTIC
    title: str = ""
    hint_override: str = ""

    @property
    def level(self) -> Severity:
        if self.severity is not None:
            return self.severity
        rule = RULES.get(self.rule)
        return rule.severity if rule else "warning"

    @property
    def deterministic(self) -> bool:
        return self.source == DETERMINISTIC

    @property
    def rule_name(self) -> str:
        rule = RULES.get(self.rule)
        return rule.name if rule else (self.title or "llm-review")

    @property
    def hint(self) -> str:
        if self.hint_override:
            return self.hint_override
        rule = RULES.get(self.rule)
        return rule.hint if rule else ""

    def fingerprint(self, occurrence: int = 0) -> str:
        text = f"{self.rule}\0{self.path}\0{self.key or self.message}\0{occurrence}"
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rule": self.rule,
            "name": self.rule_name,
            "severity": self.level,
            "path": self.path,
            "line": self.line,
            "message": self.message,
            "hint": self.hint,
            "source": self.source,
        }
        if self.facts:
            out["facts"] = self.facts
        return out


def fingerprints(findings: list[Finding]) -> list[str]:
    """A fingerprint per finding; identical (rule, path, key) get 0, 1, 2… in line order."""
    seen: dict[tuple[str, str, str], int] = {}
    out = []
    for f in findings:
        k = (f.rule, f.path, f.key or f.message)
        n = seen.get(k, 0)
        seen[k] = n + 1
        out.append(f.fingerprint(n))
    return out


def sort_findings(findings: list[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (f.path, f.line, f.rule, f.message))


def dedupe(findings: list[Finding]) -> list[Finding]:
    seen: set[tuple[str, str, int, str]] = set()
    out = []
    for f in findings:
        k = (f.rule, f.path, f.line, f.message)
        if k not in seen:
            seen.add(k)
            out.append(f)
    return out
