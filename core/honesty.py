"""Honesty metadata carried by every training run, model version and prediction."""

from __future__ import annotations

import re
from enum import StrEnum

from pydantic import BaseModel, Field


class ImplementationStatus(StrEnum):
    IMPLEMENTED = "IMPLEMENTED"
    HEURISTIC = "HEURISTIC"
    PLANNED = "PLANNED"


class HonestyWarning(StrEnum):
    VALIDATED = "VALIDATED"
    UNVALIDATED = "UNVALIDATED"


HONESTY_FIELDS = ("implementation_status", "accuracy_claim", "validation_method", "honesty_warning")


class HonestyMetadata(BaseModel):
    implementation_status: ImplementationStatus
    accuracy_claim: str = Field(min_length=1, description="e.g. 'accuracy 0.96 on 143-row holdout'")
    validation_method: str = Field(min_length=1, description="How the claim was measured.")
    honesty_warning: HonestyWarning

    def as_tags(self) -> dict[str, str]:
        return {
            k: str(
                getattr(self, k).value if hasattr(getattr(self, k), "value") else getattr(self, k)
            )
            for k in HONESTY_FIELDS
        }


def missing_honesty_fields(tags: dict[str, str]) -> list[str]:
    """Names of honesty fields absent or empty in a tag mapping."""
    return [f for f in HONESTY_FIELDS if not str(tags.get(f, "")).strip()]


# Numbers a registrant supplies are claims, never measurements: one JSON tag, read back only
# for display (labelled "claimed, not measured"); evaluations write their own, measured numbers.
CLAIMED_METRICS_TAG = "claimed_metrics"
# The registrant's semantic version ("2.1.0"), beside MLflow's integer version; unique per model.
VERSION_LABEL_TAG = "version_label"


def claimed_metrics_of(tags: dict[str, str]) -> dict[str, float]:
    """The claimed metrics a version's tags carry ({} when none or unreadable)."""
    import json

    try:
        data = json.loads(tags.get(CLAIMED_METRICS_TAG) or "{}")
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {
        str(k): float(v)
        for k, v in data.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


# What the gateway serves ------------------------------------------------------------------
# Metrics where a smaller number is better: a claim is contradicted when QA measured more.
LOWER_IS_BETTER = frozenset({"rmse", "mae", "mse", "mape", "log_loss", "brier", "ece"})
# How far QA may land from a claim before the claim is called contradicted: absolute for
# scores in [0, 1] (accuracy, f1, auc_roc, r2 ...), relative for errors (rmse, mae ...).
CLAIM_TOLERANCE = 0.05
ERROR_TOLERANCE = 0.25
_CLAIM_NUMBER = re.compile(r"\b([A-Za-z][A-Za-z0-9_]*)\s*[=:]?\s*(-?[0-9]*\.?[0-9]+)")


def claimed_numbers(claim: str, claimed: dict[str, float]) -> dict[str, float]:
    """The numbers a registrant claimed: the claimed-metrics tag, else ``name value`` /
    ``name=value`` pairs in the claim text ("accuracy 0.96 on ..." -> {"accuracy": 0.96})."""
    if claimed:
        return dict(claimed)
    out: dict[str, float] = {}
    for key, value in _CLAIM_NUMBER.findall(claim or ""):
        out.setdefault(key.lower(), float(value))
    return out


def contradicted(claimed: dict[str, float], measured: dict[str, float]) -> list[str]:
    """Claimed metrics QA measured clearly worse than claimed, as 'name measured vs claimed'."""
    out = []
    for key, want in sorted(claimed.items()):
        if key not in measured:
            continue
        got = measured[key]
        if key in LOWER_IS_BETTER:
            worse = got > want * (1 + ERROR_TOLERANCE) + 1e-12
        else:
            worse = got < want - CLAIM_TOLERANCE
        if worse:
            out.append(f"{key} {got:.4f} vs claimed {want:g}")
    return out


class ServedHonesty(BaseModel):
    """The two labels a prediction carries that QA decides: ``validation_status`` and the
    ``accuracy_claim`` text, which keeps the registrant's claim beside QA's measurement."""

    accuracy_claim: str
    validation_status: str  # UNVALIDATED | PASSED | FAILED (the latest QA verdict)


def served_honesty(
    claim: str,
    claimed: dict[str, float],
    *,
    verdict: str | None = None,
    measured: dict[str, float] | None = None,
    headline: tuple[str, ...] = (),
    dataset: str = "",
    date: str = "",
    reasons: list[str] | None = None,
) -> ServedHonesty:
    """Labels from the latest QA verdict on the artifact (``verdict`` None: no verdict yet).

    The registrant's words are always shown as *claimed*; QA's numbers as *measured*, with
    the dataset and date they came from; a verdict that failed or a measurement clearly
    below the claim is said in so many words."""
    said = (claim or "").strip() or "no claim"
    if verdict is None:
        return ServedHonesty(
            accuracy_claim=f"claimed: {said}; not yet measured by QA",
            validation_status=HonestyWarning.UNVALIDATED.value,
        )
    measured = measured or {}
    numbers = claimed_numbers(claim, claimed)
    shown = [k for k in numbers if k in measured] or [k for k in headline if k in measured][:3]
    measure = ", ".join(f"{k} {measured[k]:.4f}" for k in shown) or "no headline metric"
    text = f"claimed: {said}; measured by QA: {measure} on {dataset or 'its dataset'} ({date})"
    if verdict != "PASSED":
        first = (reasons or ["no reason recorded"])[0]
        text += f"; QA {verdict}: {first}"
    against = contradicted(numbers, measured)
    if against:
        text += f"; QA contradicts the claim: {', '.join(against)}"
    return ServedHonesty(accuracy_claim=text, validation_status=verdict)
