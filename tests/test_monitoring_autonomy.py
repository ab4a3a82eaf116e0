"""The monitoring policy acts alone only on evidence no client chooses, only for a person who
holds deploy:rollback, and only to a version a human approved that is not breaching.

Prediction-log rows are written the way the gateway writes them (no gateway process here; the
end-to-end flood through a real gateway is in test_monitoring_incident.py). Each test fails
if its rule is removed: 4xx counted as a version's errors, a QATester's or an agent's check
acting, a rollback target picked without looking at the breaching set.
"""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy.orm import Session

from core.serving.prediction_log import PredictionLog
from tests.helpers.policy import enable_auto_rollback
from tests.test_serving_helpers import approve

pytestmark = pytest.mark.slow  # trains and registers two models (about 10 s)


def _log(rt, name: str, version: str, n: int, row, *, status=200, role="primary", batch=1) -> None:  # noqa: ANN001
    """``n`` log rows of ``version`` as the gateway writes them."""
    log = PredictionLog(rt.services.engine, name, "production", gateway_id="0000abcd")
    now = time.time()
    feats = row if batch == 1 else [row] * batch
    for i in range(n):
        out = {"prediction": 1, "probabilities": [0.1, 0.9]} if status == 200 else None
        err = None if status == 200 else "refused or failed"
        log.record(
            (now - 1, int(now * 1000) % 10**9 + i, 1, version, role, status, 0.002, feats, out, err)
        )
    log.flush()


def _execute(rt, name: str, version: str, plan: dict | None = None) -> str:  # noqa: ANN001
    """An approved promotion executed as the executor does (routes + executed mark), without
    starting a gateway; a canary plan starts its rollout at the first step."""
    from tools.approved import served_version

    services = rt.services
    apr = approve(rt, name, version, plan=plan)
    info = services.registry.get(name, version)
    served = served_version(services, info)
    executor = services.policy.workflow("approval-executor", "alice")
    with Session(services.engine) as s, s.begin():
        if plan is None:
            services.deployments.deploy(name, served, actor="test", approval_id=apr, session=s)
        else:
            services.deployments.rollouts.start(
                name,
                served.model_copy(update={"weight": 0}),
                strategy=plan["strategy"],
                actor="test",
                steps=plan["steps"],
                approval_id=apr,
                environment="production",
                session=s,
            )
        services.approvals.mark_executed(s, apr, executor, {"strategy": "test"})
    return apr


def _check(rt, who, name: str) -> dict:  # noqa: ANN001
    return rt.dispatcher.call_or_raise(who, "check_monitoring", {"model_id": name})["rollback"]


def _live(rt, name: str) -> dict[str, float]:  # noqa: ANN001
    return rt.services.deployments.current(name, "production").weights()


def test_edge_refusals_never_count_and_only_a_person_with_the_right_acts(registered) -> None:
    rt = registered["rt"]
    name, (v1, v2) = registered["name"], registered["versions"]
    row = registered["row"]
    policy = rt.services.policy
    alice, bob = policy.human("alice"), policy.human("bob")
    _execute(rt, name, v1)
    _execute(rt, name, v2)

    # Off in the bundled policy: a real breach orders nothing until an admin enables it.
    _log(rt, name, v2, 150, row, status=500)
    rb = _check(rt, alice, name)
    assert rb["ordered"] is False and "off in the pinned policy" in rb["message"], rb
    enable_auto_rollback(rt)

    # 600 requests any client can send, refused at the edge but logged with v2 (wrong width,
    # a value outside its input range): none is a request, an error or a latency of v2.
    _log(rt, name, v2, 600, row[:-1], status=422)
    _log(rt, name, v2, 100, row, status=401)
    _log(rt, name, v2, 150, row)
    slo = rt.dispatcher.call_or_raise(alice, "monitor_report", {"model_id": f"{name}/{v2}"})[
        "report"
    ]["versions"][0]["slo"]
    assert slo["refused_at_edge"] == 700 and slo["requests"] == 300, slo
    assert slo["errors"] == slo["server_errors"] == 150

    # The 150 model failures are a breach. A QATester's check (no deploy:rollback) and an
    # agent's check report what the policy would do and change nothing.
    for who in (bob, policy.agent("mlops-engineer", "alice"), policy.agent("qa-tester", "bob")):
        rb = _check(rt, who, name)
        assert rb["ordered"] is True and rb["acted"] is False and rb["executed"] is False, rb
        assert rb["to_version"] == v1 and "would roll" in rb["message"]
        assert _live(rt, name) == {v2: 100.0}
    assert not rt.services.audit.entries(action="deploy.rollback")
    assert not rt.services.audit.entries(action="monitoring.rollback_ordered")

    # A person who holds deploy:rollback: the policy acts as monitoring-policy for her.
    rb = _check(rt, alice, name)
    assert rb["executed"] is True and (rb["from_versions"], rb["to_version"]) == ([v2], v1), rb
    assert _live(rt, name) == {v1: 100.0}
    ordered = rt.services.audit.entries(action="monitoring.rollback_ordered")[0]
    assert (ordered["actor"], ordered["on_behalf_of"]) == ("monitoring-policy", "alice")
    assert ordered["detail"]["evidence_source"].startswith("server outcomes")
    assert rt.services.audit.entries(action="deploy.rollback")[0]["actor"] == "monitoring-policy"
    assert rt.services.audit.check().ok


def test_a_flood_of_edge_refusals_alone_orders_nothing(registered) -> None:
    rt = registered["rt"]
    name, (v1, v2) = registered["name"], registered["versions"]
    alice = rt.services.policy.human("alice")
    _execute(rt, name, v1)
    _execute(rt, name, v2)
    enable_auto_rollback(rt)
    for status in (400, 413, 422, 429):
        _log(rt, name, v2, 300, registered["row"][:-1], status=status)
    rb = _check(rt, alice, name)
    assert rb["ordered"] is False and "0 server outcomes" in rb["message"], rb
    assert _live(rt, name) == {v2: 100.0}


def test_a_canary_rollback_goes_to_the_approved_side_that_is_not_breaching(registered) -> None:
    rt = registered["rt"]
    name, (v1, v2) = registered["name"], registered["versions"]
    row = registered["row"]
    alice = rt.services.policy.human("alice")
    _execute(rt, name, v1)
    _execute(rt, name, v2, plan={"strategy": "canary", "steps": [50.0, 100.0]})
    assert _live(rt, name) == {v1: 50.0, v2: 50.0}
    enable_auto_rollback(rt)

    # Only the stable side breaches: the candidate's canary never reached 100 %, so it is
    # no version a human approved for production; nothing moves, and the alert says why.
    _log(rt, name, v1, 120, row, status=500)
    _log(rt, name, v2, 120, row)
    rb = _check(rt, alice, name)
    assert rb["ordered"] is True and rb["executed"] is False and rb["to_version"] is None, rb
    assert "nothing moves" in rb["message"] and f"v{v1}" in rb["message"]
    assert _live(rt, name) == {v1: 50.0, v2: 50.0}
    alert = rt.dispatcher.call_or_raise(
        alice, "list_monitoring_alerts", {"name": name, "kind": "rollback"}
    )["alerts"][0]
    assert alert["action"] == "rollback_refused" and "nothing moves" in alert["message"]


def test_a_canary_rollback_never_returns_to_the_breaching_version(registered) -> None:
    rt = registered["rt"]
    name, (v1, v2) = registered["name"], registered["versions"]
    row = registered["row"]
    alice = rt.services.policy.human("alice")
    _execute(rt, name, v1)
    _execute(rt, name, v2, plan={"strategy": "canary", "steps": [50.0, 100.0]})
    enable_auto_rollback(rt)

    # Only the candidate breaches: production goes to the stable side, alone.
    _log(rt, name, v2, 120, row, status=500)
    _log(rt, name, v1, 120, row)
    rb = _check(rt, alice, name)
    assert rb["executed"] is True and (rb["from_versions"], rb["to_version"]) == ([v2], v1), rb
    assert _live(rt, name) == {v1: 100.0}

    # Now v1 breaches while it serves alone: the only approved version is the breaching one,
    # so nothing moves ("rolled back from v1 to v1" is never an answer).
    _log(rt, name, v1, 200, row, status=500)
    rb = _check(rt, alice, name)
    assert rb["ordered"] is True and rb["executed"] is False and rb["to_version"] is None, rb
    assert _live(rt, name) == {v1: 100.0}


def test_latency_counts_single_row_answers_and_load_on_every_version_moves_nothing(
    registered,
) -> None:
    from core.monitoring.evaluate import choose_rollback_target

    rt = registered["rt"]
    name, (v1, v2) = registered["name"], registered["versions"]
    row = registered["row"]
    alice = rt.services.policy.human("alice")
    _execute(rt, name, v1)
    _execute(rt, name, v2)
    enable_auto_rollback(rt, triggers=["error_rate", "latency_p99"])
    log = PredictionLog(rt.services.engine, name, "production", gateway_id="0000beef")
    now = time.time()
    for i in range(200):  # a client's 20-row batches are slow by its own choice
        log.record(
            (
                now - 1,
                10**6 + i,
                1,
                v2,
                "primary",
                200,
                5.0,
                [row] * 20,
                {"prediction": [1] * 20},
                None,
            )
        )
    for i in range(200):
        log.record(
            (now - 1, 2 * 10**6 + i, 1, v2, "primary", 200, 0.002, row, {"prediction": 1}, None)
        )
    log.flush()
    rb = _check(rt, alice, name)
    assert rb["ordered"] is False, rb
    slo = rb["evidence"][0]["slo"]
    assert slo["batch_requests"] == 200 and slo["p99_ms"] < 10, slo

    # Every live version of a split breaching latency alone is load, not a version.
    choice = choose_rollback_target(
        [v1, v2],
        {v1: ["latency_p99"], v2: ["latency_p99"]},
        [{"version": "0", "approval_id": "apr-00000000", "recent_breaches": []}],
    )
    assert choice["target"] is None and "load" in choice["reason"]
    # One version's own error breach with a healthy approved version: that one.
    choice = choose_rollback_target(
        [v2], {v2: ["error_rate"]}, [{"version": v1, "approval_id": "a", "recent_breaches": []}]
    )
    assert choice["target"] == v1
    # An approved version that itself breached recently is no safe target.
    choice = choose_rollback_target(
        [v2],
        {v2: ["error_rate"]},
        [{"version": v1, "approval_id": "a", "recent_breaches": ["error_rate"]}],
    )
    assert choice["target"] is None


def test_a_qa_tester_chat_turn_cannot_roll_production_back(registered, scripted_llm) -> None:
    """The same attack through /v1/chat/completions: bob's qa-tester agent runs the check on a
    breaching deployment; the policy's rollback is reported, never run."""
    import openai

    from agents.server.app import create_app
    from tests.test_server_support import LiveServer, make_tokens

    rt = registered["rt"]
    name, (v1, v2) = registered["name"], registered["versions"]
    _execute(rt, name, v1)
    _execute(rt, name, v2)
    enable_auto_rollback(rt)
    _log(rt, name, v2, 150, registered["row"], status=500)
    tokens = make_tokens(rt)
    scripted_llm.enqueue_tool_calls([{"name": "check_monitoring", "arguments": {"model_id": name}}])
    scripted_llm.enqueue_text("v2 breaches its error SLO; a person must act.")
    with LiveServer(create_app(rt)) as live:
        client = openai.OpenAI(base_url=f"{live.url}/v1", api_key=tokens["bob"], max_retries=0)
        resp = client.chat.completions.create(
            model="qa-tester",
            messages=[{"role": "user", "content": f"Check {name} and roll it back if needed."}],
        )
    mo = resp.model_extra["modelops"]
    assert mo["tool_calls"] == [{"tool": "check_monitoring", "ok": True, "code": None}]
    reply = json.loads(scripted_llm.chat_requests[-1].body["messages"][-1]["content"])
    rb = reply["output"]["rollback"]
    assert rb["ordered"] is True and rb["acted"] is False and rb["executed"] is False, rb
    assert _live(rt, name) == {v2: 100.0}
    assert not rt.services.audit.entries(action="deploy.rollback")
