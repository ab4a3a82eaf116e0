"""optimize_model: a registered scikit-learn version becomes a new ONNX version with lineage,
the report attached, honesty carried over (plus the parity check), and a recorded SHA-256."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow


@pytest.mark.filterwarnings("ignore:X does not have valid feature names")
def test_optimize_registers_an_onnx_version_with_lineage_report_and_honesty(registered):
    rt = registered["rt"]
    reg = rt.services.registry
    dana = rt.services.policy.human("dana")
    src = registered["versions"][0]
    reg.set_tags(registered["name"], src, {"validation_status": "PASSED"})
    out = rt.dispatcher.call_or_raise(
        dana,
        "optimize_model",
        {
            "model_id": f"{registered['name']}/{src}",
            "dataset": registered["holdout"],
            "goal": "latency",
            "benchmark_seconds": 0.1,
        },
    )
    assert out["registered"] and out["adopted"].startswith("onnx"), out
    assert out["parity"]["passed"] and out["parity"]["rows"] > 100
    info = reg.get(registered["name"], out["version"])
    tags = info.tags
    assert info.lineage["optimized_from"] == src and tags["optimization_goal"] == "latency"
    assert tags["optimized_from_run_id"] == reg.get(registered["name"], src).run_id
    assert tags["serving_runtime"] == "onnxruntime" and tags["parity_rows_source"] == "holdout.csv"
    source_honesty = reg.get(registered["name"], src).honesty
    assert info.honesty["implementation_status"] == source_honesty["implementation_status"]
    assert info.honesty["honesty_warning"] == source_honesty["honesty_warning"]
    assert info.honesty["validation_method"].startswith(source_honesty["validation_method"])
    assert "ONNX parity check against v" in info.honesty["validation_method"]
    assert source_honesty["accuracy_claim"] in info.honesty["accuracy_claim"]
    assert info.missing_honesty == []
    assert "validation_status" not in tags  # QA must validate the new artifact itself

    # The artifact is an MLflow ONNX model whose digest is the registered one.
    from core.deployment import ServedVersion
    from core.registry import artifact_digest, local_path
    from core.serving.loader import load_version

    path = local_path(info.artifact_uri)
    assert artifact_digest(path) == info.artifact_sha256 == out["artifact_sha256"]
    assert "onnx:" in (path / "MLmodel").read_text()
    report_file = Path(reg.client.download_artifacts(info.run_id, "optimization/report.json"))
    report = json.loads(report_file.read_text())
    assert report["adopted"] == out["adopted"] and report["parity"]["passed"]
    loaded = load_version(
        ServedVersion(
            version=info.version,
            weight=100,
            artifact_uri=info.artifact_uri,
            artifact_sha256=info.artifact_sha256,
        )
    )
    sk = reg.load_sklearn(registered["name"], src)
    x = np.asarray([registered["row"]])
    labels, proba = loaded.predict(x.astype(np.float32))
    assert loaded.runtime == "onnxruntime" and labels.tolist() == sk.predict(x).tolist()
    assert np.allclose(proba, sk.predict_proba(x), atol=1e-5)

    # An optimized version is not optimized again; the source's own QA verdict stays put.
    res = rt.dispatcher.call(
        dana, "optimize_model", {"name": registered["name"], "version": out["version"]}
    )
    assert (
        not res.ok
        and res.error.code == "invalid_input"
        and "already an optimized" in res.error.message
    )


def test_optimize_defaults_to_the_rows_logged_with_the_run(registered):
    rt = registered["rt"]
    dana = rt.services.policy.human("dana")
    out = rt.dispatcher.call_or_raise(
        dana,
        "optimize_model",
        {
            "name": registered["name"],
            "version": registered["versions"][0],
            "goal": "size",
            "max_rows": 200,
            "benchmark_seconds": 0.05,
        },
    )
    # A held-out (evaluation) set logged with the run comes first, else the training rows.
    assert out["rows_source"].endswith(".parquet") and 0 < out["parity"]["rows"] <= 200
    # Asking again for the same goal returns that child instead of registering a duplicate.
    before = len(rt.services.registry.list_versions(registered["name"]))
    again = rt.dispatcher.call_or_raise(
        dana,
        "optimize_model",
        {"name": registered["name"], "version": registered["versions"][0], "goal": "size"},
    )
    assert again["existing"] and not again["registered"] and again["version"] == out["version"]
    assert len(rt.services.registry.list_versions(registered["name"])) == before


def test_optimize_is_refused_for_other_roles_and_bad_references(registered):
    rt = registered["rt"]
    policy = rt.services.policy
    name = registered["name"]
    for who in (policy.human("bob"), policy.human("carol"), policy.agent("architect", "carol")):
        res = rt.dispatcher.call(who, "optimize_model", {"model_id": f"{name}/1"})
        assert res.error.code == "permission_denied"
    dana = policy.human("dana")
    for args in (
        {"model_id": f"{name}/1", "name": name},
        {"model_id": "no version"},
        {},
        {"name": name, "goal": "speed"},
    ):
        assert rt.dispatcher.call(dana, "optimize_model", args).error.code == "invalid_input"
    assert (
        rt.dispatcher.call(dana, "optimize_model", {"model_id": f"{name}/99"}).error.code
        == "not_found"
    )


@pytest.mark.filterwarnings("ignore:X does not have valid feature names")
def test_an_optimized_onnx_version_can_be_evaluated_like_its_source(registered):
    rt = registered["rt"]
    dana = rt.services.policy.human("dana")
    src = registered["versions"][1]
    out = rt.dispatcher.call_or_raise(
        dana,
        "optimize_model",
        {
            "model_id": f"{registered['name']}/{src}",
            "dataset": "logged:holdout",
            "goal": "latency",
            "benchmark_seconds": 0.1,
        },
    )
    assert out["registered"]
    qa = rt.services.policy.agent("qa-tester", on_behalf_of="bob")
    metrics = {}
    for version in (src, out["version"]):
        ev = rt.dispatcher.call_or_raise(
            qa,
            "evaluate_model",
            {
                "model_id": f"{registered['name']}/{version}",
                "evaluation_dataset": registered["holdout"],
                "metrics": ["accuracy", "f1", "auc_roc"],
            },
        )
        metrics[version] = ev["metrics"]
    for name in ("accuracy", "f1"):
        assert metrics[out["version"]][name] == metrics[src][name]
    assert metrics[out["version"]]["auc_roc"] == pytest.approx(metrics[src]["auc_roc"], abs=1e-6)
