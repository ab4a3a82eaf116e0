"""Gates check the honesty values, not only their presence."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from policies.gates import check_promotion

THRESHOLDS = yaml.safe_load(
    (Path(__file__).parent.parent / "policies" / "thresholds.yaml").read_text()
)
GOOD = {"accuracy": 0.97, "f1": 0.97, "auc_roc": 0.99}


def _evidence(**honesty: str) -> dict:
    tags = {
        "implementation_status": "IMPLEMENTED",
        "accuracy_claim": "f1 0.97 on holdout",
        "validation_method": "stratified holdout",
        "honesty_warning": "VALIDATED",
        **honesty,
    }
    return {
        "candidate": {"name": "m", "version": "1", "honesty": tags, "artifact_sha256": "ab" * 32},
        "metrics": GOOD,
        "champion": None,
    }


def test_validated_implemented_model_passes() -> None:
    assert check_promotion(_evidence(), THRESHOLDS).passed


@pytest.mark.parametrize(
    ("honesty", "gate"),
    [
        ({"honesty_warning": "UNVALIDATED"}, "honesty_warning"),
        ({"validation_method": "NONE"}, "validation_method"),
        ({"validation_method": "none"}, "validation_method"),
        ({"validation_method": "n/a"}, "validation_method"),
        ({"implementation_status": "PLANNED"}, "implementation_status"),
        ({"implementation_status": "DONE"}, "implementation_status"),
        ({"accuracy_claim": " "}, "honesty_metadata"),
    ],
)
def test_dishonest_or_unvalidated_claims_are_blocked(honesty: dict, gate: str) -> None:
    report = check_promotion(_evidence(**honesty), THRESHOLDS)
    assert not report.passed
    assert gate in {c.name for c in report.failures}


def test_heuristic_passes_with_the_warning_and_its_own_minimums() -> None:
    ev = _evidence(implementation_status="HEURISTIC", honesty_warning="UNVALIDATED")
    ev["metrics"] = {"accuracy": 0.8, "f1": 0.75}
    report = check_promotion(ev, THRESHOLDS)
    assert report.passed
    warn = [c for c in report.warnings if c.name == "implementation_status"]
    assert warn and "approximation" in warn[0].message and "UNVALIDATED" in warn[0].message
    ev["metrics"] = {"accuracy": 0.8, "f1": 0.6}
    assert not check_promotion(ev, THRESHOLDS).passed
