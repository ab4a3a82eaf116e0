"""A simulated incident end to end on 127.0.0.1: two approved versions in production, drifted
traffic and errors sent to the real gateway, then the alerts, the monitoring policy's
automatic rollback, its audit rows and the gateway serving the earlier version."""

from __future__ import annotations

import httpx
import pytest

from core.serving.prediction_log import wait_for_rows
from tests.test_serving_helpers import approve, wait_for_revision

pytestmark = pytest.mark.slow


def test_drift_and_errors_alert_and_the_policy_rolls_back(registered) -> None:
    rt = registered["rt"]
    name, (v1, v2) = registered["name"], registered["versions"]
    alice, dana = rt.services.policy.human("alice"), rt.services.policy.human("dana")
    call = rt.dispatcher.call_or_raise
    for v in (v1, v2):
        out = call(alice, "promote_model", {"approval_id": approve(rt, name, v, decider="bob")})
        assert out["serving"], out
    url = out["gateway_url"]
    row = registered["row"]
    with httpx.Client(timeout=10) as client:
        ids = []
        for i in range(150):  # drifted traffic: every feature scaled by 1.5
            r = client.post(
                f"{url}/predict",
                json={"features": [x * 1.5 for x in row]},
                headers={"x-routing-key": f"u{i % 30}"},
            )
            assert r.status_code == 200 and r.json()["model_version"] == v2
            ids.append(r.json()["prediction_id"])
        for _ in range(30):  # a client whose rows lost a feature: v2 refuses them
            assert client.post(f"{url}/predict", json={"features": row[:-1]}).status_code == 422
        ok = client.post(f"{url}/feedback", json={"prediction_id": ids[0], "label": 1})
        assert ok.status_code == 202 and ok.json()["accepted"] == 1
        gw = ids[0].split("-")[0]
        unknown = client.post(f"{url}/feedback", json={"prediction_id": f"{gw}-999999", "label": 1})
        assert unknown.status_code == 404
    assert wait_for_rows(rt.services.engine, name, 180, environment="production", timeout=20) >= 180

    out = call(dana, "check_monitoring", {"model_id": name})
    kinds = {a["kind"] for a in out["alerts"]}
    assert {"data_drift", "error_rate"} <= kinds, out["alerts"]
    vr = out["report"]["versions"][0]
    assert vr["slo"]["errors"] == 30 and vr["data_drift"]["dataset_drift"] is True
    rb = out["rollback"]
    assert rb["executed"] and (rb["from_version"], rb["to_version"]) == (v2, v1), rb
    health = wait_for_revision(url, rb["revision"])
    assert [v["version"] for v in health["versions"] if v["weight"] > 0] == [v1]

    trail = rt.services.audit.entries(model=name, model_level=True, limit=200)
    actions = [(e["action"], e["actor"]) for e in trail]
    assert ("monitoring.rollback_ordered", "monitoring-policy") in actions
    assert ("deploy.rollback", "monitoring-policy") in actions
    assert rt.services.audit.check().ok
    stored = call(dana, "list_monitoring_alerts", {"name": name, "kind": "rollback"})["alerts"]
    assert stored and stored[0]["action"] == "rollback"
