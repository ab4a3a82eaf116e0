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

from core.honesty import HONESTY_FIELDS, HonestyWarning, ImplementationStatus

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
    merged = dict(thresholds["default"])
    merged.update((thresholds.get("models") or {}).get(model_name, {}))
    return merged


def comparison_params(limits: dict[str, Any]) -> dict[str, Any]:
    """Bootstrap parameters for the champion comparison (core.evaluation.ComparisonParams)."""
    return {**limits["comparison"], "primary_metric": limits["primary_metric"]}


def check_promotion(evidence: dict[str, Any], thresholds: dict[str, Any]) -> GateReport:
    """Gates over a promotion's evidence (see agents.promotion for its shape)."""
    cand = evidence["candidate"]
    tags: dict[str, str] = cand.get("honesty", {})
    limits = thresholds_for(thresholds, cand["name"])
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
    minimums = limits["minimums"].get(status, {}) if status in limits["minimums"] else {}
    for name, floor in minimums.items():
        value = metrics.get(name)
        if value is None:
            reason = evidence.get("unavailable", {}).get(name, "not measured")
            checks.append(
                GateCheck(
                    name=f"min_{name}",
                    passed=False,
                    message=f"{name} unavailable ({reason}); minimum {floor}",
                )
            )
        else:
            ok = value >= floor
            checks.append(
                GateCheck(
                    name=f"min_{name}",
                    passed=ok,
                    message=f"{name} {value:.4f} {'>=' if ok else '<'} minimum {floor}",
                )
            )

    champ = evidence.get("champion")
    if champ:
        comp = champ.get("comparison") or {}
        verdict = comp.get("verdict")
        label = f"vs champion v{champ['version']} ({limits['primary_metric']}, paired bootstrap)"
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
