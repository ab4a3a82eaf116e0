"""draft_monitoring_config: thresholds from the version's own evidence, in the exact input
format of the ml-model-monitoring workflow, which loads and runs it."""

from __future__ import annotations

import json
from pathlib import Path

import yaml


def test_draft_loads_and_runs_in_the_monitoring_workflow(registered):
    from agents.monitoring_workflow import MonitoringRequest, run_monitoring

    rt = registered["rt"]
    name, (_v1, v2) = registered["name"], registered["versions"]
    carol = rt.services.policy.human("carol")
    res = rt.dispatcher.call(carol, "draft_monitoring_config", {"model_id": f"{name}/{v2}"})
    assert res.ok, res.error
    out = res.output
    data = yaml.safe_load(Path(out["path"]).read_text())
    req = MonitoringRequest.model_validate(data)  # the workflow's own (strict) parser
    cfg = req.monitoring_config
    assert req.model_id == f"{name}/{v2}"
    # Not the policy constant: drift share comes from the bootstrap of this profile.
    assert cfg.data_drift_threshold is not None and 0 < cfg.data_drift_threshold <= 1
    assert "bootstrap self-drift" in out["sources"]["data_drift_threshold"]
    assert "policy slo" in out["sources"]["latency_p99_threshold_ms"]  # no traffic yet: said so
    floor = out["policy_proposals"]["estimated_performance.min"]
    assert 0.5 < floor <= 1 and "bootstrap CI" in out["sources"]["estimated_performance.min"]
    stored = json.loads(Path(out["sources_path"]).read_text())
    assert stored["request"] == data
    # ... and a monitoring check runs with it.
    dana = rt.services.policy.human("dana")
    result = run_monitoring(rt.dispatcher, dana, data)
    assert result["workflow"] == "ml-model-monitoring" and result["status"] in ("ok", "alerts")
    # A second draft goes to a new default folder; into the same folder it needs force.
    second = rt.dispatcher.call_or_raise(
        carol, "draft_monitoring_config", {"model_id": f"{name}/{v2}"}
    )
    assert Path(second["path"]).parent != Path(out["path"]).parent
    again = rt.dispatcher.call(
        carol,
        "draft_monitoring_config",
        {"model_id": f"{name}/{v2}", "out_dir": str(Path(out["path"]).parent)},
    )
    assert not again.ok and again.error.code == "invalid_input"
    forced = rt.dispatcher.call(
        carol, "draft_monitoring_config", {"model_id": f"{name}/{v2}", "force": True}
    )
    assert forced.ok
    bob = rt.services.policy.human("bob")
    denied = rt.dispatcher.call(bob, "draft_monitoring_config", {"model_id": name})
    assert not denied.ok and denied.error.code == "permission_denied"
    bad = rt.dispatcher.call(carol, "draft_monitoring_config", {"model_id": "../x"})
    assert not bad.ok and bad.error.code == "invalid_input"
    outside = rt.dispatcher.call(
        carol, "draft_monitoring_config", {"model_id": name, "out_dir": "../../out"}
    )
    assert not outside.ok and outside.error.code == "invalid_input"


def test_slo_thresholds_come_from_the_observed_prediction_log():
    from core.design.monitoring_draft import MIN_LOG_ROWS, propose

    rules = {"slo": {"latency_p99_ms": 250.0, "error_rate": 0.05}, "drift": {}}
    rows = [{"model_version": "2", "status": 200, "latency_ms": float(i)} for i in range(100)]
    rows += [{"model_version": "2", "status": 500, "latency_ms": 1.0}] * 5
    rows += [{"model_version": "1", "status": 500, "latency_ms": 9999.0}] * 50  # other version
    draft = propose("m/2", "2", None, rules, rows)
    cfg = draft["request"]["monitoring_config"]
    assert cfg["latency_p99_threshold_ms"] == round(1.5 * 98.01, 3)
    assert cfg["error_rate_threshold"] == round(2 * 5 / 105, 4)
    assert "observed p99" in draft["sources"]["latency_p99_threshold_ms"]
    assert "no reference profile" in draft["sources"]["data_drift_threshold"]
    few = propose("m/2", "2", None, rules, rows[: MIN_LOG_ROWS - 1])
    assert few["request"]["monitoring_config"]["latency_p99_threshold_ms"] == 250.0
