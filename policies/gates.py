"""Promotion gates: honesty metadata, metric minimums and the comparison with the champion.

Pure functions over evidence; they never call a service. The thresholds are data in
``thresholds.yaml`` (a per-model section overrides the default).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from core.errors import GateFailed
from core.honesty import HONESTY_FIELDS, HonestyWarning, ImplementationStatus
from policies.thresholds_schema import TASK_KEYS, TASK_SECTIONS

# validation_method values that say no validation happened.
UNVALIDATED_METHODS = frozenset(
    {"NONE", "N/A", "NA", "UNKNOWN", "UNVALIDATED", "NOT VALIDATED", "-"}
)


class GateCheck(BaseModel):
    name: str
    passed: bool
    message: str
    warning: bool = False


class GateReport(BaseModel):
    passed: bool
    checks: list[GateCheck]

    @property
    def failures(self) -> list[GateCheck]:
        return [c for c in self.checks if not c.passed]

    @property
    def warnings(self) -> list[GateCheck]:
        return [c for c in self.checks if c.warning]

    def summary(self) -> str:
        bad = self.failures
        if not bad:
            return "all gates passed"
        return "; ".join(c.message for c in bad)


@lru_cache(maxsize=8)
def load_thresholds(policies_dir: Path) -> dict[str, Any]:
    return yaml.safe_load((Path(policies_dir) / "thresholds.yaml").read_text())


def thresholds_for(thresholds: dict[str, Any], model_name: str) -> dict[str, Any]:
    """A model's section merged over the default (classification keys at the top level)."""
    merged = dict(thresholds["default"])
    merged.update((thresholds.get("models") or {}).get(model_name, {}))
    return merged


# A section's task sections (policies.thresholds_schema): classification tasks start from the
# section's top-level keys (all a policy held before tasks had sections); regression has no
# fallback, since accuracy minimums mean nothing for it.
GATED_STATUSES = (ImplementationStatus.IMPLEMENTED.value, ImplementationStatus.HEURISTIC.value)
POLICY_FIX = (
    "Add the task's section to thresholds.yaml (the bundled policies/thresholds.yaml has "
    "one for regression under default.regression), review it with `agent policy diff DIR`, "
    "then make it the policy in force with `agent policy apply DIR`."
)


def policy_gap(message: str) -> GateFailed:
    """The pinned policy lacks a threshold a gate needs: an error, never a silent pass."""
    return GateFailed(f"the policy in force {message}", hint=POLICY_FIX)


def gap_message(gap: GateFailed) -> str:
    """A gate check's message carries the fix too: it is all an approver or requester sees."""
    return f"{gap.message}. {gap.hint}"


def limits_for_task(thresholds: dict[str, Any], model_name: str, task: str) -> dict[str, Any]:
    """What one model's task is judged by: the shared comparison settings plus the task's
    ``primary_metric``, ``minimums`` and ``maximums`` (per implementation status). The
    model's section overrides the default's, key by key; a task section overrides its
    section's top level. A task the policy has no thresholds for raises ``policy_gap``."""
    default = thresholds["default"]
    model = (thresholds.get("models") or {}).get(model_name) or {}
    limits: dict[str, Any] = {}
    for level in (default, model):
        limits.update({k: v for k, v in level.items() if k not in TASK_KEYS + TASK_SECTIONS})
    found: dict[str, Any] = {}
    for level in (default, model):
        if task != "regression":
            found.update({k: level[k] for k in TASK_KEYS if k in level})
        found.update(level.get(task) or {})
    missing = [f"default.{task}.{k}" for k in ("primary_metric", "minimums") if k not in found]
    if missing:
        raise policy_gap(
            f"has no thresholds for {task} models ({' and '.join(missing)} missing; a policy "
            f"pinned before {task} thresholds existed has none)"
        )
    return {**limits, **found, "maximums": found.get("maximums") or {}, "task": task}


def comparison_params(limits: dict[str, Any]) -> dict[str, Any]:
    """Bootstrap parameters for the champion comparison (core.evaluation.ComparisonParams)."""
    return {**limits["comparison"], "primary_metric": limits["primary_metric"]}


def metric_checks(
    limits: dict[str, Any],
    status: str,
    metrics: dict[str, float],
    unavailable: dict[str, str],
) -> list[GateCheck]:
    """The task's minimums and maximums for this implementation status, one check each. A
    gated status (IMPLEMENTED, HEURISTIC) with no entry under either is a failed check that
    names the missing key: an absent threshold never passes (``{}`` says "none" explicitly)."""
    task = limits["task"]
    floors = limits["minimums"].get(status)
    ceilings = limits["maximums"].get(status)
    if status in GATED_STATUSES and floors is None and ceilings is None:
        gap = policy_gap(
            f"has no {task} thresholds for {status} models "
            f"(default.{task}.minimums.{status} missing)"
        )
        return [GateCheck(name="policy_thresholds", passed=False, message=gap_message(gap))]
    checks: list[GateCheck] = []
    for kind, bounds in (("min", floors or {}), ("max", ceilings or {})):
        word = "minimum" if kind == "min" else "maximum"
        for name, bound in bounds.items():
            value = metrics.get(name)
            if value is None:
                reason = unavailable.get(name, "not measured")
                message, ok = f"{name} unavailable ({reason}); {word} {bound}", False
            else:
                ok = value >= bound if kind == "min" else value <= bound
                sign = (">=" if ok else "<") if kind == "min" else ("<=" if ok else ">")
                message = f"{name} {value:.4f} {sign} {word} {bound}"
            checks.append(GateCheck(name=f"{kind}_{name}", passed=ok, message=message))
    return checks


def check_promotion(evidence: dict[str, Any], thresholds: dict[str, Any]) -> GateReport:
    """Gates over a promotion's evidence (see agents.promotion for its shape)."""
    cand = evidence["candidate"]
    tags: dict[str, str] = cand.get("honesty", {})
    checks: list[GateCheck] = []

    missing = [f for f in HONESTY_FIELDS if not str(tags.get(f, "")).strip()]
    checks.append(
        GateCheck(
            name="honesty_metadata",
            passed=not missing,
            message=f"missing honesty metadata: {', '.join(missing)}"
            if missing
            else "honesty metadata present",
        )
    )
    status = tags.get("implementation_status", "")
    method = str(tags.get("validation_method", "")).strip()
    warning = str(tags.get("honesty_warning", "")).strip()
    # Values, not presence: an IMPLEMENTED claim must say it was validated, and how.
    if status == ImplementationStatus.IMPLEMENTED:
        if warning and warning != HonestyWarning.VALIDATED:
            checks.append(
                GateCheck(
                    name="honesty_warning",
                    passed=False,
                    message=f"honesty_warning is {warning}: an IMPLEMENTED model must be VALIDATED "
                    "(mark it HEURISTIC, or validate it and register again)",
                )
            )
        if method and method.upper() in UNVALIDATED_METHODS:
            checks.append(
                GateCheck(
                    name="validation_method",
                    passed=False,
                    message=f"validation_method is {method!r}: an IMPLEMENTED claim needs a real "
                    "validation method",
                )
            )
    if status == ImplementationStatus.PLANNED:
        checks.append(
            GateCheck(
                name="implementation_status",
                passed=False,
                message="implementation_status is PLANNED: a planned model cannot be promoted",
            )
        )
    elif status == ImplementationStatus.HEURISTIC:
        checks.append(
            GateCheck(
                name="implementation_status",
                passed=True,
                warning=True,
                message="implementation_status is HEURISTIC: this model is an approximation, not a "
                "validated implementation; promoted against the lower HEURISTIC minimums"
                + (f" ({warning})" if warning else ""),
            )
        )
    elif status == ImplementationStatus.IMPLEMENTED:
        checks.append(GateCheck(name="implementation_status", passed=True, message="IMPLEMENTED"))
    elif status:
        checks.append(
            GateCheck(
                name="implementation_status",
                passed=False,
                message=f"implementation_status {status!r} is not one of IMPLEMENTED, HEURISTIC, PLANNED",
            )
        )

    checks.append(
        GateCheck(
            name="artifact_digest",
            passed=bool(cand.get("artifact_sha256")),
            message="artifact SHA-256 recorded"
            if cand.get("artifact_sha256")
            else "no artifact SHA-256 recorded at registration",
        )
    )

    if cand.get("servable") is False:
        checks.append(
            GateCheck(
                name="servable",
                passed=False,
                message="not servable by our gateway: "
                + (cand.get("serving_note") or "an external model with no artifact here"),
            )
        )

    metrics: dict[str, float] = evidence.get("metrics", {})
    # Evidence gathered before versions had a task was a classifier's (binary or multiclass:
    # both start from the same top-level keys).
    task = cand.get("task") or "binary"
    try:
        limits = limits_for_task(thresholds, cand["name"], task)
    except GateFailed as exc:
        checks.append(GateCheck(name="policy_thresholds", passed=False, message=gap_message(exc)))
        return GateReport(passed=False, checks=checks)
    checks += metric_checks(limits, status, metrics, evidence.get("unavailable", {}))

    champ = evidence.get("champion")
    if champ:
        comp = champ.get("comparison") or {}
        verdict = comp.get("verdict")
        primary = comp.get("primary_metric") or limits["primary_metric"]
        label = f"vs champion v{champ['version']} ({primary}, paired bootstrap)"
        if verdict is None:
            checks.append(
                GateCheck(
                    name="vs_champion", passed=False, message=f"{label}: no comparison was measured"
                )
            )
        elif verdict == "worse":
            checks.append(
                GateCheck(
                    name="vs_champion", passed=False, message=f"{label}: worse. {comp['reason']}"
                )
            )
        elif verdict == "inconclusive":
            block = bool(limits.get("block_inconclusive", False))
            checks.append(
                GateCheck(
                    name="vs_champion",
                    passed=not block,
                    warning=not block,
                    message=f"{label}: inconclusive. {comp['reason']}",
                )
            )
        else:
            checks.append(
                GateCheck(
                    name="vs_champion", passed=True, message=f"{label}: better. {comp['reason']}"
                )
            )
    return GateReport(passed=all(c.passed for c in checks), checks=checks)
