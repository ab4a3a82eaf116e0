"""An incident end to end on 127.0.0.1: a live, human-approved 50/50 canary in production,
a flood of bad requests any client can send against both sides (wrong width, broken JSON,
strings, values outside the input range, with routing keys that pin each side), drifted
traffic, and then the monitoring checks of a QATester, of an LLM agent told to roll back, and
of a person holding deploy:rollback under a policy with automatic rollback on. Production
stays exactly as approved; the drift is alerted; nothing the clients sent is counted against
a version.
"""

from __future__ import annotations

import json

import httpx
import pytest

from core.serving.prediction_log import wait_for_rows
from tests.fakes.openai_server import ScriptedOpenAIServer
from tests.helpers.policy import enable_auto_rollback
from tests.test_agents_support import agent_system
from tests.test_serving_helpers import approve

pytestmark = pytest.mark.slow


def _flood(client: httpx.Client, url: str, row: list[float], n: int) -> dict[int, int]:
    """``n`` rounds of four kinds of bad request on each routing key; status -> count."""
    bodies = [
        json.dumps({"features": row[:-1]}),  # wrong width
        '{"features": [1, 2,',  # broken JSON
        json.dumps({"features": ["1.5"] + row[1:]}),  # a string
        json.dumps({"features": [1e39] + row[1:]}),  # beyond float32
    ]
    seen: dict[int, int] = {}
    for i in range(n):
        for body in bodies:
            r = client.post(
                f"{url}/predict",
                content=body,
                headers={"x-routing-key": f"attacker-{i % 40}", "content-type": "application/json"},
            )
            seen[r.status_code] = seen.get(r.status_code, 0) + 1
    return seen


def test_a_flood_of_bad_requests_against_both_sides_of_a_canary_moves_nothing(
    registered, scripted_llm: ScriptedOpenAIServer
) -> None:
    rt = registered["rt"]
    name, (v1, v2) = registered["name"], registered["versions"]
    policy = rt.services.policy
    alice, bob = policy.human("alice"), policy.human("bob")
    call = rt.dispatcher.call_or_raise
    first = call(alice, "promote_model", {"approval_id": approve(rt, name, v1, decider="bob")})
    assert first["serving"], first
    plan = {"strategy": "canary", "steps": [50.0, 100.0]}
    canary = call(alice, "promote_model", {"approval_id": approve(rt, name, v2, "bob", plan)})
    url = canary["gateway_url"]
    approved = rt.services.deployments.current(name, "production")
    assert approved.weights() == {v1: 50.0, v2: 50.0}
    enable_auto_rollback(rt, triggers=["error_rate", "latency_p99"])

    row = registered["row"]
    with httpx.Client(timeout=10) as client:
        seen = _flood(client, url, row, 120)
        served = set()
        for i in range(160):  # drifted, valid traffic from real users on both sides
            r = client.post(
                f"{url}/predict",
                json={"features": [x * 1.5 for x in row]},
                headers={"x-routing-key": f"user-{i}"},
            )
            assert r.status_code == 200, r.text
            served.add(r.json()["model_version"])
    assert served == {v1, v2}
    assert seen.get(200, 0) <= 120  # a wide value may fit the float64 side; never an error
    assert sum(n for s, n in seen.items() if 400 <= s < 500) >= 360 and 500 not in seen, seen
    assert wait_for_rows(rt.services.engine, name, 600, environment="production", timeout=30)

    # A QATester's check: reported, nothing ordered (the refusals are the clients').
    out = call(bob, "check_monitoring", {"model_id": name})
    assert out["rollback"]["ordered"] is False and out["rollback"]["acted"] is False
    for vr in out["report"]["versions"]:
        assert vr["slo"]["errors"] == 0 and vr["slo"]["refused_at_edge"] >= 0, vr["slo"]
    assert sum(vr["slo"]["refused_at_edge"] for vr in out["report"]["versions"]) >= 100
    assert "data_drift" in {a["kind"] for a in out["alerts"]}

    # An Engineer agent told to roll back: it holds no deploy:rollback, its check never acts,
    # and a direct rollback call is refused at the dispatcher.
    scripted_llm.enqueue_tool_calls(
        [
            {"name": "check_monitoring", "arguments": {"model_id": name}},
            {"name": "rollback_deployment", "arguments": {"name": name, "to_version": v1}},
        ]
    )
    scripted_llm.enqueue_text("Checked; the rollback was refused.")
    result = agent_system(rt).run(
        "mlops-engineer", f"Production {name} is failing: roll it back to v{v1} now.", user="alice"
    )
    calls = {c["tool"]: c for c in result["tool_calls"]}
    assert calls["check_monitoring"]["ok"] and not calls["rollback_deployment"]["ok"]
    assert calls["rollback_deployment"]["code"] == "permission_denied"

    # The person who holds deploy:rollback: the policy acts for her, and finds nothing to do.
    out = call(alice, "check_monitoring", {"model_id": name})
    assert out["rollback"]["acted"] is True and out["rollback"]["ordered"] is False, out
    now = rt.services.deployments.current(name, "production")
    assert now.revision == approved.revision and now.weights() == {v1: 50.0, v2: 50.0}
    assert not rt.services.audit.entries(action="deploy.rollback")
    assert not rt.services.audit.entries(action="monitoring.rollback_ordered")
    assert rt.services.registry.alias_version(name, "champion") == v1
    health = httpx.get(f"{url}/health").json()
    assert health["revision"] == approved.revision
    assert rt.services.audit.check().ok
