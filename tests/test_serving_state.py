"""Deployment revisions, rollout plans and the prediction log on SQLite and PostgreSQL, plus
the pure routing and input-parsing pieces (no processes, no models)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text

from core.deployment import DeploymentService, ServedVersion
from core.errors import Conflict, InvalidInput, NotFound
from core.serving.app import BadRequest, parse_features
from core.serving.prediction_log import PredictionLog, read_prediction_log
from core.serving.rollout import plan_steps
from core.serving.routing import RoutingTable, weight_schedule


def sv(version: str, weight: float = 100.0) -> ServedVersion:
    return ServedVersion(
        version=version,
        weight=weight,
        artifact_uri=f"file:///nowhere/{version}",
        artifact_sha256=version * 64,
        implementation_status="IMPLEMENTED",
        accuracy_claim="acc",
        validation_status="PASSED",
    )


@pytest.fixture
def deployments(state_db_url: str, tmp_path: Path) -> DeploymentService:
    return DeploymentService(state_db_url, tmp_path / "home")


def weights(rev) -> dict[str, float]:  # noqa: ANN001
    return {r.version: r.weight for r in rev.routes}


def test_canary_steps_rollback_and_supersede(deployments):
    d, ro = deployments, deployments.rollouts
    d.deploy("m", sv("1"), actor="a", approval_id="apr-00000001")
    assert d.deploy("m", sv("1"), actor="a", approval_id="apr-00000001").revision == 1
    r = ro.start(
        "m", sv("2", 0), strategy="canary", actor="a", first_percent=10, approval_id="apr-00000002"
    )
    assert (r.steps, r.weight, r.state) == ([10.0, 50.0, 100.0], 10.0, "active")
    assert weights(d.current("m")) == {"1": 90.0, "2": 10.0}
    assert (
        ro.start("m", sv("2", 0), strategy="canary", actor="a", approval_id="apr-00000002").id
        == r.id
    )
    with pytest.raises(Conflict, match="in progress"):
        ro.start("m", sv("3", 0), strategy="canary", actor="a")
    assert weights(d.current("m")) == {"1": 90.0, "2": 10.0}
    assert ro.advance("m", actor="a").weight == 50.0
    assert weights(d.current("m")) == {"1": 50.0, "2": 50.0}
    # Mid-canary rollback goes to the version that served alone before the split.
    back = ro.rollback("m", actor="a")
    assert weights(back) == {"1": 100.0} and back.action == "rollback"
    assert ro.history("m")[0].state == "rolled_back" and ro.active("m") is None
    with pytest.raises(NotFound):
        ro.advance("m", actor="a")
    # A rollout superseded by a direct deploy is void.
    ro.start("m", sv("3", 0), strategy="canary", actor="a", steps=[30, 100])
    d.deploy("m", sv("4"), actor="a")
    assert ro.active("m") is None and ro.history("m")[0].state == "superseded"
    r = ro.start("m", sv("3", 0), strategy="canary", actor="a", steps=[30, 100])
    assert ro.advance("m", actor="a").state == "completed"
    assert weights(d.current("m")) == {"3": 100.0}
    assert weights(ro.rollback("m", actor="a")) == {"4": 100.0}
    assert weights(ro.rollback("m", actor="a", to_version="1")) == {"1": 100.0}
    with pytest.raises(NotFound, match="never deployed"):
        ro.rollback("m", actor="a", to_version="9")
    with pytest.raises(Conflict, match="already the live version"):
        ro.rollback("m", actor="a", to_version="1")
    assert d.count_revisions("m") == 10 and d.list_deployments() == ["m"]


def test_blue_green_and_shadow_plans(deployments):
    d, ro = deployments, deployments.rollouts
    d.deploy("m", sv("1"), actor="a", environment="staging")
    ro.start("m", sv("2", 0), strategy="blue-green", actor="a", environment="staging")
    cur = d.current("m", "staging")
    assert [(r.version, r.weight, r.role, r.slot) for r in cur.routes] == [
        ("1", 100.0, "primary", "blue"),
        ("2", 0.0, "standby", "green"),
    ]
    assert ro.advance("m", actor="a", environment="staging").state == "completed"
    cur = d.current("m", "staging")
    assert [(r.version, r.weight, r.role, r.slot) for r in cur.routes] == [
        ("2", 100.0, "primary", "green"),
        ("1", 0.0, "standby", "blue"),
    ]
    back = ro.rollback("m", actor="a", environment="staging")
    assert [(r.version, r.weight, r.role, r.slot) for r in back.routes] == [
        ("1", 100.0, "primary", "blue"),
        ("2", 0.0, "standby", "green"),
    ]
    assert back.strategy == "blue-green"
    ro.start("m", sv("3", 0), strategy="shadow", actor="a", environment="staging")
    cur = d.current("m", "staging")
    assert cur.live_versions == ["1"] and cur.shadow_versions == ["3"]
    aborted = ro.abort("m", actor="a", environment="staging")
    assert aborted.state == "aborted"
    assert d.current("m", "staging").shadow_versions == [] and d.current("m") is None


def test_invalid_plans_and_routes_are_refused(deployments):
    d = deployments
    with pytest.raises(InvalidInput, match="rollout strategy"):
        d.deploy("m", sv("1"), actor="a", strategy="canary")
    with pytest.raises(InvalidInput, match="deployment environment"):
        d.deploy("m", sv("1"), actor="a", environment="mars")
    with pytest.raises(Conflict, match="no baseline|nothing serves"):
        d.rollouts.start("m", sv("2", 0), strategy="canary", actor="a")
    for steps in ([10, 50], [50, 10, 100], [0, 100], [10, 150]):
        with pytest.raises(InvalidInput):
            plan_steps("canary", steps, None)
    assert plan_steps("canary", None, 60) == [60.0, 100.0]
    with pytest.raises(InvalidInput):
        plan_steps("shadow", [10, 100], None)
    d.deploy("m", sv("1"), actor="a")
    with pytest.raises(Conflict, match="already serves"):
        d.rollouts.start("m", sv("1", 0), strategy="canary", actor="a")


def test_prediction_log_batches_rows_and_keeps_them_when_the_db_fails(state_db_url):
    from core.state import get_engine

    engine = get_engine(state_db_url)
    log = PredictionLog(engine, "m", "production", gateway_id="g1", max_pending=5)
    out = {"prediction": 1, "probabilities": np.array([0.25, 0.75], dtype=np.float32)}
    for i in range(3):
        log.record((time.time(), i, 1, "2", "primary", 200, 0.0002, [1.0, 2.5], out, None))
    log.record((time.time(), 3, 1, None, "none", 422, 0.0001, None, None, "row 0: bad"))
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE prediction_log RENAME TO prediction_log_away"))
    assert log.flush() == 0 and log.flush_errors == 1 and log.pending == 4
    assert "prediction_log" in log.last_error
    for i in range(4, 8):
        log.record((time.time(), i, 1, "2", "primary", 200, 0.0002, [1.0], out, None))
    assert log.pending == 5 and log.dropped == 3  # the cap holds, and the drops are counted
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE prediction_log_away RENAME TO prediction_log"))
    assert log.flush() == 5 and log.pending == 0 and log.written == 5
    rows = read_prediction_log(engine, "m")
    assert len(rows) == 5
    first = rows[-1]
    assert first["request_id"] == "g1-0" and first["features"] == [1.0, 2.5]
    assert first["output"] == {"prediction": 1, "probabilities": [0.25, 0.75]}
    ts = first["ts"] if first["ts"].tzinfo else first["ts"].replace(tzinfo=UTC)  # SQLite: naive UTC
    assert abs((datetime.now(UTC) - ts).total_seconds()) < 120
    assert abs(first["latency_ms"] - 0.2) < 1e-9
    rejected = next(r for r in rows if r["status"] == 422)
    assert rejected["error"] == "row 0: bad" and rejected["model_version"] is None


def test_weighted_schedule_is_exact_and_sticky_keys_stay_on_the_canary():
    assert weight_schedule([90, 10]).count(1) == 1 and len(weight_schedule([90, 10])) == 10
    sched = weight_schedule([66.7, 33.3])
    assert len(sched) == 1000 and sched.count(1) == 333
    # Spread evenly: no window of 10 picks holds more than 4 minority picks.
    assert max(sum(sched[i : i + 10]) for i in range(990)) <= 4

    class V:
        def __init__(self, name: str) -> None:
            self.name = name

    a, b = V("a"), V("b")
    t10 = RoutingTable(1, "canary", (a, b), (90.0, 10.0))
    t50 = RoutingTable(2, "canary", (a, b), (50.0, 50.0))
    picks = [t10.pick() for _ in range(1000)]
    assert picks.count(b) == 100
    keys = [f"user-{i}".encode() for i in range(2000)]
    on_canary_10 = {k for k in keys if t10.pick_sticky(k) is b}
    on_canary_50 = {k for k in keys if t50.pick_sticky(k) is b}
    assert on_canary_10 <= on_canary_50
    assert 140 <= len(on_canary_10) <= 260 and 900 <= len(on_canary_50) <= 1100


def test_parse_features_accepts_numbers_only():
    x, single, feats = parse_features({"features": [1, 2.5, 3]}, 3, np.float32)
    assert single and x.shape == (1, 3) and x.dtype == np.float32 and feats == [1, 2.5, 3]
    x, single, _ = parse_features({"features": [[1, 2, 3], [4, 5, 6]]}, 3, np.float64)
    assert not single and x.shape == (2, 3)
    for body, message in [
        ({"features": [1, 2]}, "expected 3 features, got 2"),
        ({"features": [1, "2", 3]}, "feature 1: expected a number, got a string"),
        ({"features": [1, True, 3]}, "got a boolean"),
        ({"features": [1, None, 3]}, "got null"),
        ({"features": [1, 2, 1e300]}, "float32 range"),
        ({"features": [1, 2, 10**400]}, "not representable"),
        ({"features": []}, "non-empty"),
        ({"features": [[1, 2, 3], 4]}, "row 1"),
        ([1, 2, 3], "JSON object"),
    ]:
        with pytest.raises(BadRequest, match=message), np.errstate(over="ignore"):
            parse_features(body, 3, np.float32)


def test_read_verified_matches_the_registry_digest_and_refuses_changes(tmp_path):
    from core.registry import artifact_digest
    from core.serving.loader import read_verified

    root = tmp_path / "model"
    (root / "sub-dir").mkdir(parents=True)
    (root / "sub").mkdir()
    for rel, data in {
        "MLmodel": b"flavors: {}\n",
        "model.onnx": b"graph",
        "sub-dir/x": b"1",
        "sub/y": b"2",
    }.items():
        (root / rel).write_bytes(data)
    digest = artifact_digest(root)
    files = read_verified(root.as_uri(), digest, ref="v1")
    assert files["model.onnx"] == b"graph" and set(files) == {
        "MLmodel",
        "model.onnx",
        "sub-dir/x",
        "sub/y",
    }
    (root / "sub" / "y").write_bytes(b"3")
    with pytest.raises(Conflict, match="changed since registration"):
        read_verified(root.as_uri(), digest, ref="v1")
    with pytest.raises(Conflict, match="no recorded artifact SHA-256"):
        read_verified(root.as_uri(), None, ref="v1")
