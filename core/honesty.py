"""Honesty metadata carried by every training run, model version and prediction."""

from __future__ import annotations

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
