"""The gateway's Prometheus exposition: ``modelops_`` names, a ``model_name`` label on every
sample, no family announced without samples, one child per version."""

from __future__ import annotations

import numpy as np
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from core.deployment import ServedVersion
from core.serving.loader import LoadedVersion
from core.serving.metrics import PREFIX, GatewayCollector, new_stats, observe, render

EXTRA = {
    "prediction_log_written": ("rows written", 5),
    "prediction_log_pending": ("rows waiting", 2),
}


def loaded(version: str, role: str = "primary", status: str = "IMPLEMENTED") -> LoadedVersion:
    served = ServedVersion(
        version=version,
        weight=0 if role == "shadow" else 100,
        artifact_uri="file:///nowhere",
        artifact_sha256="0" * 64,
        implementation_status=status,
        accuracy_claim="claimed" if status else "",
        validation_status="PASSED",
        role=role,
    )
    return LoadedVersion(served, "sklearn", 3, np.float32, lambda x: x, new_stats())


def scrape(versions: list[LoadedVersion], errors: dict[str, int]) -> tuple[str, dict]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(
        GatewayCollector(lambda: versions, lambda: errors, lambda: EXTRA, model_name="bc-model")
    )
    text = render(registry).decode()
    return text, {f.name: f for f in text_string_to_metric_families(text)}


def announced(text: str) -> set[str]:
    return {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}


def test_every_family_is_prefixed_and_every_sample_names_the_model():
    primary, shadow = loaded("1"), loaded("2", role="shadow")
    observe(primary.stats, 0.002)
    primary.stats.shadow_requests = 0
    shadow.stats.shadow_requests, shadow.stats.shadow_agreements = 4, 3
    text, families = scrape([primary, shadow], {"bad_input": 2})
    assert families and all(name.startswith(PREFIX) for name in families)
    for fam in families.values():
        assert fam.samples, fam.name
        for s in fam.samples:
            assert s.labels["model_name"] == "bc-model", s
    predictions = {
        (s.labels["model_version"], s.labels["implementation_status"]): s.value
        for s in families["modelops_predictions"].samples
    }
    assert predictions == {("1", "IMPLEMENTED"): 1.0, ("2", "IMPLEMENTED"): 0.0}
    shadow_samples = {
        (s.labels["model_version"], s.labels["outcome"]): s.value
        for s in families["modelops_shadow_predictions"].samples
    }
    assert shadow_samples == {("2", "ok"): 4.0, ("2", "error"): 0.0, ("2", "agree"): 3.0}
    assert "modelops_prediction_latency_seconds_bucket" in text
    assert 'modelops_prediction_errors_total{model_name="bc-model",reason="bad_input"} 2.0' in text
    assert families["modelops_prediction_log_pending"].type == "gauge"


def test_no_type_line_without_samples():
    text, families = scrape([], {})
    assert announced(text) == {
        f"{PREFIX}honesty_compliant_responses_total",
        f"{PREFIX}missing_honesty_labels_total",
        f"{PREFIX}prediction_log_written_total",
        f"{PREFIX}prediction_log_pending",
    }
    assert all(f.samples for f in families.values())
    # A primary alone: its per-version children exist from the first scrape, at zero, and no
    # shadow or rejection family is announced.
    text, _ = scrape([loaded("1")], {})
    assert f"{PREFIX}prediction_server_errors_total" in announced(text)
    assert (
        'modelops_prediction_server_errors_total{model_name="bc-model",model_version="1"} 0.0'
        in text
    )
    assert not {
        f"{PREFIX}shadow_predictions_total",
        f"{PREFIX}prediction_errors_total",
    } & announced(text)


def test_one_child_per_version_when_labels_changed_between_revisions():
    # The same version under two honesty labellings (e.g. after a QA verdict): per-version
    # families sum them; the honesty-status family keeps them apart.
    before, after = loaded("1", status=""), loaded("1")
    observe(before.stats, 0.001)
    observe(after.stats, 0.001)
    after.stats.server_errors = 1
    _, families = scrape([before, after], {})
    errors = families["modelops_prediction_server_errors"].samples
    assert [(s.labels["model_version"], s.value) for s in errors] == [("1", 1.0)]
    counts = [
        s
        for s in families["modelops_prediction_latency_seconds"].samples
        if s.name.endswith("_count")
    ]
    assert [(s.labels["model_version"], s.value) for s in counts] == [("1", 2.0)]
    statuses = {s.labels["implementation_status"] for s in families["modelops_predictions"].samples}
    assert statuses == {"IMPLEMENTED", "MISSING"}
