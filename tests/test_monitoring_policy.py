"""Monitoring through the dispatcher on a temp home, with prediction-log rows written the way
the gateway writes them (no gateway process): bad input is reported and never rolled back on;
an SLO breach makes the monitoring-policy principal roll back, audited with its evidence."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import update

from core.monitoring.feedback import FeedbackError, parse_feedback
from core.serving.prediction_log import PredictionLog
from tests.helpers.policy import enable_auto_rollback

pytestmark = pytest.mark.slow  # trains and registers two models (about 10 s)


def _log(
    rt,
    name: str,
    version: str,
    rows: list[list[float]],
    *,
    status: int = 200,
    latency: float = 0.002,
    proba=True,
) -> list[str]:  # noqa: ANN001
    log = PredictionLog(rt.services.engine, name, "production", gateway_id="0000abcd")
    ids = []
    now = time.time()
    for i, row in enumerate(rows):
        seq = int(now * 1000) % 10**9 + i
        out = {"prediction": 1, "probabilities": [0.1, 0.9]} if status == 200 and proba else None
        log.record(
            (
                now - 1,
                seq,
                1,
                version,
                "primary",
                status,
                latency,
                row,
                out,
                None if status == 200 else "boom",
            )
        )
        ids.append(f"0000abcd-{seq}")
    log.flush()
    return ids


def _deploy_approved(rt, name: str, version: str) -> None:  # noqa: ANN001
    """Production serves ``version`` through an executed approval (no gateway started)."""
    from tests.test_serving_helpers import approve
    from tools.approved import served_version

    services = rt.services
    apr = approve(rt, name, version)
    info = services.registry.get(name, version)
    from sqlalchemy.orm import Session

    with Session(services.engine) as s, s.begin():
        services.deployments.deploy(
            name, served_version(services, info), actor="test", approval_id=apr, session=s
        )
        executor = services.policy.workflow("approval-executor", "alice")
        services.approvals.mark_executed(s, apr, executor, {"strategy": "direct"})


def test_bad_input_reported_and_breach_rolls_back_with_audit(registered) -> None:
    rt = registered["rt"]
    name, (v1, v2) = registered["name"], registered["versions"]
    dana = rt.services.policy.human("dana")
    call = rt.dispatcher.call_or_raise

    # Registration captured a profile (with the model's predictions on its sample).
    from core.monitoring.profile import ProfileStore

    info = rt.services.registry.get(name, v2)
    prof = ProfileStore(rt.services.engine).get(name, v2, info.artifact_sha256)
    assert prof is not None and prof.source == "registration" and prof.probabilities is not None

    # Nothing deployed: a clear not-found, no crash.
    res = rt.dispatcher.call(dana, "check_monitoring", {"model_id": name})
    assert res.error.code == "not_found"

    _deploy_approved(rt, name, v1)
    _deploy_approved(rt, name, v2)
    enable_auto_rollback(rt)  # off in the bundled policy: an admin turns it on
    # Empty window: reported, nothing judged, nothing rolled back.
    out = call(dana, "check_monitoring", {"model_id": name})
    vr = out["report"]["versions"][0]
    assert vr["data_drift"]["status"] == "empty_window"
    assert out["rollback"]["ordered"] is False and "fewer than" in out["rollback"]["message"]

    row = registered["row"]
    # Schema change (rows of the wrong width) and an all-NaN column.
    _log(rt, name, v2, [row[:-1]] * 40)
    nan_rows = [[None] + row[1:] for _ in range(40)]
    _log(rt, name, v2, nan_rows)
    out = call(dana, "monitor_report", {"model_id": f"{name}/{v2}"})
    vr = out["report"]["versions"][0]
    assert any("rows of 29 values where the reference has 30 features" in p for p in vr["problems"])
    first = vr["data_drift"]["columns"][0]
    assert first["status"] == "all_missing", first

    # A version without a reference profile: said so, no crash.
    from core.monitoring.profile import ProfileRow

    with rt.services.engine.begin() as conn:
        conn.execute(update(ProfileRow).where(ProfileRow.version == v1).values(version="gone"))

    # Labels for unknown prediction ids: counted, left out.
    from core.monitoring.feedback import FeedbackLog

    fb = FeedbackLog(rt.services.engine, name, "production")
    fb.record(parse_feedback({"prediction_id": "ffffffff-12", "label": 1}))
    fb.flush()
    out = call(dana, "monitor_report", {"model_id": f"{name}/{v2}"})
    assert out["report"]["versions"][0]["realized_performance"]["unknown_prediction_ids"] == 1
    with pytest.raises(FeedbackError):
        parse_feedback({"prediction_id": "nope", "label": 1})

    # An SLO breach on v2 over the rollback window: the policy rolls back to v1.
    _log(rt, name, v2, [row] * 60, status=500)
    _log(rt, name, v2, [row] * 60)
    out = call(dana, "check_monitoring", {"model_id": name})
    rb = out["rollback"]
    assert rb["executed"] is True and (rb["from_versions"], rb["to_version"]) == ([v2], v1), rb
    assert rt.services.deployments.current(name, "production").live_versions == [v1]
    kinds = [a["kind"] for a in call(dana, "list_monitoring_alerts", {"name": name})["alerts"]]
    assert "rollback" in kinds and "error_rate" in kinds
    ordered = rt.services.audit.entries(action="monitoring.rollback_ordered")
    assert (
        ordered
        and ordered[0]["actor"] == "monitoring-policy"
        and ordered[0]["on_behalf_of"] == "dana"
    )
    assert ordered[0]["detail"]["breaches"][0]["kind"] == "error_rate"
    rolled = rt.services.audit.entries(action="deploy.rollback")
    assert rolled and rolled[0]["actor"] == "monitoring-policy"
    assert rt.services.audit.check().ok

    # The caller's thresholds change alerts only: a lax config cannot stop the policy, a
    # strict one cannot order a rollback on v1 (no data for v1 in the window).
    out = call(
        dana,
        "check_monitoring",
        {"model_id": name, "monitoring_config": {"error_rate_threshold": 0.0}},
    )
    assert out["rollback"]["ordered"] is False


def test_people_and_agents_cannot_call_the_policy_rollback(registered) -> None:
    rt = registered["rt"]
    for actor in (
        rt.services.policy.human("alice"),
        rt.services.policy.agent("mlops-engineer", "alice"),
    ):
        res = rt.dispatcher.call(
            actor, "monitoring_rollback", {"name": registered["name"]}, internal=True
        )
        assert res.error.code == "unknown_tool"
    executor = rt.services.policy.workflow("approval-executor", "alice")
    res = rt.dispatcher.call(
        executor, "monitoring_rollback", {"name": registered["name"]}, internal=True
    )
    assert res.error.code == "approval_required"
