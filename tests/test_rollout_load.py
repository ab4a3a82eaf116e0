"""Canary 10 -> 50 -> 100 and a rollback under a bounded loopback load: no failed request,
and each revision's observed split within 3 points of its weights, with one gateway process
and with two worker processes (each switching on its own, the health check waiting for all)."""

from __future__ import annotations

import httpx
import orjson
import pytest

from tests.test_serving_helpers import (
    MODEL,
    LoadGenerator,
    approve,
    env,
    serving_env,
    split,
    wait_for_revision,
)

__all__ = ["env", "serving_env"]
pytestmark = pytest.mark.slow
PER_PHASE = 2600


@pytest.mark.parametrize("workers", [1, 2])
def test_canary_steps_and_rollback_under_load_fail_no_request(env, workers):
    rt = env.runtime(f"load-{workers}", workers=workers)
    alice = rt.services.policy.human("alice")
    base, cand = env.versions["lr_onnx"], env.versions["rf_onnx"]

    # Production baseline through the approved executor, then an approved canary.
    promoted = rt.dispatcher.call_or_raise(
        alice, "promote_model", {"approval_id": approve(rt, MODEL, base, "bob")}
    )
    url = promoted["gateway_url"]
    wait_for_revision(url, promoted["revision"])
    load = LoadGenerator(
        url,
        orjson.dumps({"features": env.row}),
        connections=4,
        # Bounded in count and time, with room for a busy machine's slower phases and for
        # a quiet machine's fast gateway, which answers many requests while a step switches.
        max_requests=5 * PER_PHASE + 200_000,
        max_seconds=240,
    ).start()
    try:
        load.wait_count(promoted["revision"], 200)
        out = rt.dispatcher.call_or_raise(
            alice,
            "start_rollout",
            {
                "name": MODEL,
                "version": cand,
                "strategy": "canary",
                "traffic_percentage": 10,
                "approval_id": approve(
                    rt, MODEL, cand, "bob", plan={"strategy": "canary", "steps": [10, 50, 100]}
                ),
            },
        )
        phases = [(out["revision"], {base: 90.0, cand: 10.0})]
        wait_for_revision(url, out["revision"])
        load.wait_count(out["revision"], PER_PHASE)
        for weight in (50.0, 100.0):
            out = rt.dispatcher.call_or_raise(
                alice, "advance_rollout", {"name": MODEL, "min_requests": 100}
            )
            assert out["rollout"]["weight"] == weight
            phases.append((out["revision"], {base: 100.0 - weight, cand: weight}))
            wait_for_revision(url, out["revision"])
            load.wait_count(out["revision"], PER_PHASE)
        assert out["rollout"]["state"] == "completed"
        assert rt.services.registry.alias_version(MODEL, "champion") == cand
        back = rt.dispatcher.call_or_raise(
            alice, "rollback_deployment", {"name": MODEL, "reason": "load test"}
        )
        assert back["live_versions"] == [base]
        phases.append((back["revision"], {base: 100.0}))
        wait_for_revision(url, back["revision"])
        load.wait_count(back["revision"], PER_PHASE)
    finally:
        load.stop()

    assert load.failures == []
    assert len(load.results) >= 10_000
    assert all(status == 200 for status, _, _ in load.results)
    for revision, weights in phases:
        observed = split(load.results, revision)
        for version, weight in weights.items():
            if weight == 0:
                assert version not in observed
                continue
            assert abs(observed.get(version, 0.0) - weight) <= 3.0, (revision, observed, weights)
    assert rt.services.registry.alias_version(MODEL, "champion") == base
    # Micro-batching (on by default) served this load: concurrent rows shared model calls.
    batching = httpx.get(f"{url}/health", timeout=10).json()["batching"]
    assert batching["enabled"] and batching["rows"] > batching["batches"] > 0, batching
    health = httpx.get(f"{url}/health", timeout=10).json()
    assert len({w["pid"] for w in health.get("workers", [{"pid": health["pid"]}])}) == workers
