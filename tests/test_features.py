"""Feature store on embedded Chroma: point-in-time reads, versions, reuse before compute,
nearest neighbours, metadata; one process per store; feature engineering with a planted leak."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.errors import Conflict, InvalidInput, NotFound
from core.features import FeatureStore

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def store(tmp_path: Path) -> FeatureStore:
    fs = FeatureStore(tmp_path / "chroma")
    yield fs
    fs.close()


def churn_frame(n: int = 800, seed: int = 0) -> pd.DataFrame:
    """Generated customers whose churn depends on tenure, charges and plan, plus a planted
    leak: ``refund_amount`` is only non-zero after a customer has churned."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(1, 72, n)
    monthly = rng.normal(70, 20, n).round(2)
    plan = rng.choice(["basic", "plus", "pro"], n, p=[0.5, 0.3, 0.2])
    signup = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365, n), unit="D")
    logit = -1.0 - 0.04 * tenure + 0.03 * (monthly - 70) + np.where(plan == "basic", 0.8, 0.0)
    churned = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame(
        {
            "customer_id": [f"c{i:05d}" for i in range(n)],
            "tenure_months": tenure,
            "monthly_charges": monthly,
            "plan": plan,
            "region": rng.choice(["north", "south", "east", "west"], n),
            "signup_date": signup.strftime("%Y-%m-%d"),
            "refund_amount": np.where(churned == 1, rng.normal(40, 5, n).round(2), 0.0),
            "is_churned": churned,
        }
    )


def test_point_in_time_reads_never_see_the_future(store: FeatureStore) -> None:
    store.push_features("a", {"spend": 10.0}, "cust", "1", "2024-01-01T00:00:00Z")
    store.push_features("a", {"spend": 20.0}, "cust", "1", "2024-03-01T00:00:00Z")
    store.push_features("a", {"spend": 99.0}, "cust", "2", "2024-02-01T00:00:00Z")
    store.push_features("b", {"spend": 5.0}, "cust", "1", "2024-06-01T00:00:00Z")
    feb = store.get_features(["a", "b"], "cust", as_of="2024-02-15", version="1")
    assert feb["a"].features == {"spend": 10.0} and feb["b"] is None
    assert store.get_features(["a"], "cust", as_of="2024-02-15")["a"].features == {"spend": 99.0}
    assert store.get_features(["a"], "cust", version="1")["a"].features == {"spend": 20.0}
    # The same entity, version and time overwrite instead of adding history.
    store.push_features("a", {"spend": 21.0}, "cust", "1", "2024-03-01T00:00:00Z")
    assert store.get_features(["a"], "cust", version="1")["a"].features == {"spend": 21.0}


def test_get_or_compute_reuses_before_regenerating(store: FeatureStore) -> None:
    calls = []

    def compute(entity: str) -> dict:
        calls.append(entity)
        return {"score": 0.5}

    first, reused = store.get_or_compute("e1", compute, "scores")
    again, reused_again = store.get_or_compute("e1", compute, "scores")
    assert (reused, reused_again, calls) == (False, True, ["e1"])
    assert again.features == first.features


def test_nearest_neighbours_and_metadata(store: FeatureStore) -> None:
    store.push_many(
        [
            {"entity_id": "a", "features": {"x": 1.0, "plan": "basic"}},
            {"entity_id": "b", "features": {"x": 1.1, "plan": "basic"}},
            {"entity_id": "c", "features": {"x": -5.0, "plan": "pro"}},
        ],
        "cust",
        "1",
        implementation_status="HEURISTIC",
        validation_note="hand-made",
    )
    near = store.nearest("cust", entity_id="a", k=2)
    assert [n.entity_id for n in near] == ["b", "c"]
    assert near[0].distance < near[1].distance
    by_emb = store.nearest("cust", embedding=[0.0] * 63 + [1.0], k=1)
    assert len(by_emb) == 1
    (meta,) = store.describe("cust")
    assert meta.implementation_status == "HEURISTIC" and meta.validation_note == "hand-made"
    assert meta.features == ["plan", "x"] and meta.rows == 3 and meta.created


def test_nearest_by_entity_when_chroma_does_not_round_trip_the_time(store: FeatureStore) -> None:
    """Chroma reads this time back one bit off (…2755141 -> …275514); the query row is found by
    Chroma's own record id, not by an id recomputed from the time read back."""
    at = 1796224902.2755141
    store.push_many(
        [
            {"entity_id": "a", "features": {"x": 1.0}, "event_time": at},
            {"entity_id": "b", "features": {"x": 1.1}, "event_time": at},
            {"entity_id": "c", "features": {"x": -5.0}, "event_time": at},
        ],
        "cust",
        "1",
    )
    assert [n.entity_id for n in store.nearest("cust", entity_id="a", k=2)] == ["b", "c"]


def test_bad_input_changes_nothing(store: FeatureStore) -> None:
    store.push_features("a", {"x": 1.0}, "cust")
    for bad in (
        {"x": float("nan")},
        {"x": [1, 2]},
        {},
    ):
        with pytest.raises(InvalidInput):
            store.push_many(
                [{"entity_id": "z", "features": {"y": 1}}, {"entity_id": "q", "features": bad}],
                "cust",
            )
    assert store.get_features(["z", "q"], "cust") == {"z": None, "q": None}
    for view in ("../etc", "a/b", "-x", "x-"):
        with pytest.raises(InvalidInput):
            store.push_features("a", {"x": 1}, view)
    with pytest.raises(InvalidInput):
        store.push_features("a", {"x": 1}, "cust", event_time="yesterday")
    with pytest.raises(NotFound):
        store.get_features(["a"], "no-such-view")


def test_a_second_process_gets_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "chroma"
    fs = FeatureStore(path)
    fs.push_features("a", {"x": 1.0}, "cust")
    code = (
        "import sys\n"
        "from core.features import lock\n"
        "from core.errors import Conflict\n"
        "try:\n"
        f"    lock.acquire(__import__('pathlib').Path({str(path)!r}), timeout_s=0.2)\n"
        "except Conflict as e:\n"
        "    print('conflict', e.message, '|', e.hint); sys.exit(0)\n"
        "print('acquired'); sys.exit(1)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"pid {os.getpid()}" in res.stdout and "chroma run" in res.stdout
    fs.close()
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert res.returncode == 1 and "acquired" in res.stdout


def test_lock_is_reentrant_within_a_process(tmp_path: Path) -> None:
    from core.features import lock

    lock.acquire(tmp_path)
    lock.acquire(tmp_path)
    assert lock.held(tmp_path)
    lock.release(tmp_path)
    assert not lock.held(tmp_path)
    assert isinstance(Conflict("x"), Conflict)


def test_engineering_rejects_the_planted_leak_and_keeps_signal() -> None:
    from core.features.engineering import engineer_features

    report, selected = engineer_features(churn_frame(), "is_churned", exclude=["customer_id"])
    assert "refund_amount" in report.rejected
    assert any("target leakage" in r for r in report.rejected["refund_amount"])
    assert not [f for f in report.selected if "refund" in f]
    assert "tenure_months" in report.selected
    assert set(report.candidates) >= {"base", "temporal", "aggregation", "interaction"}
    assert list(selected.columns) == report.selected
    kinds = {p.name: p.kind for p in report.profile}
    assert kinds["signup_date"] == "datetime" and kinds["customer_id"] == "identifier"
    assert any("skew risk" in w for w in report.warnings)


def test_engineering_bad_input() -> None:
    from core.features.engineering import engineer_features

    frame = churn_frame(100)
    with pytest.raises(InvalidInput, match="label column"):
        engineer_features(frame, "nope")
    with pytest.raises(InvalidInput, match="unknown feature type"):
        engineer_features(frame, "is_churned", feature_types=["magic"])
    with pytest.raises(InvalidInput, match="too few"):
        engineer_features(frame.head(10), "is_churned")


@pytest.mark.slow
def test_feature_engineering_workflow_stores_a_version(home: Path, rt) -> None:
    churn_frame().to_csv("churn.csv", index=False)
    dana = rt.services.policy.human("dana")
    args = {
        "dataset": "churn.csv",
        "label_column": "is_churned",
        "feature_types": ["temporal", "aggregation", "interaction"],
    }
    out = rt.dispatcher.call_or_raise(
        dana, "engineer_features", {**args, "entity_column": "customer_id"}
    )
    stored = out["stored"]
    assert stored["view"] == "churn-features" and stored["version"] == "1"
    assert not [f for f in stored["features"] if "refund" in f]
    again = rt.dispatcher.call_or_raise(dana, "engineer_features", args)
    assert again["stored"]["version"] == "2"
    got = rt.dispatcher.call_or_raise(
        dana, "get_features", {"view": "churn-features", "entity_ids": ["c00001"], "version": "1"}
    )
    assert set(got["rows"]["c00001"]["features"]) == set(stored["features"])
    views = rt.dispatcher.call_or_raise(dana, "describe_features", {"view": "churn-features"})[
        "views"
    ]
    assert [v["version"] for v in views] == ["1", "2"]
    assert (
        "leakage" in views[0]["validation_note"]
        and views[0]["implementation_status"] == "IMPLEMENTED"
    )
    # carol (Architect) holds no features:write.
    carol = rt.services.policy.human("carol")
    denied = rt.dispatcher.call(carol, "engineer_features", args)
    assert denied.error.code == "permission_denied"
    assert json.dumps(denied.model_dump())  # a plain result, no exception
