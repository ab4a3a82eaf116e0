"""The control plane's REST edge without trained models: tokens (401), denials (403, audited),
the person from the token only, evidence hash, expiry, oversized bodies, Idempotency-Key,
concurrent decisions, the chat rate limit, health, metrics and OpenAPI."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import update

from policies.approvals import ROLLBACK, ApprovalStatus
from tests import test_server_support as support
from tests.test_server_support import bearer

# Fixtures shared by the control-plane tests (see tests/test_server_support.py).
app, client, tokens = support.app, support.client, support.tokens

EVIDENCE = {"candidate": {"name": "m", "version": "2", "artifact_sha256": "ab" * 32}}


def _request(rt, requester: str = "dana", **kw):
    s = rt.services
    return s.approvals.create("m", "2", EVIDENCE, s.policy.human(requester), **kw)


def _audit(rt, **kw) -> list[dict]:
    return rt.services.audit.entries(**kw)


# Health, metrics, OpenAPI ------------------------------------------------------------------
def test_health_metrics_and_openapi(client):
    assert client.get("/healthz").json()["status"] == "ok"
    spec = client.get("/openapi.json").json()
    for path in (
        "/models",
        "/models/{name}",
        "/evaluations/{evaluation_id}",
        "/approvals/{approval_id}/approve",
        "/deployments/{name}/rollback",
        "/audit/verify",
        "/workflows/{name}/run",
        "/v1/chat/completions",
        "/v1/models",
    ):
        assert path in spec["paths"], path
    assert "personalToken" in spec["components"]["securitySchemes"]
    client.get("/models")  # a 401, counted
    text = client.get("/metrics").text
    assert 'modelops_api_requests_total{method="GET",route="/models",status="401"}' in text
    assert 'modelops_approvals{state="pending"} 0.0' in text
    assert "modelops_api_request_duration_seconds_bucket" in text


# 401 ---------------------------------------------------------------------------------------
def test_missing_garbage_expired_and_revoked_tokens_are_401(rt, client, tokens):
    from policies.tokens import PersonalToken, hash_token, revoke_token

    cases = {
        "missing": {},
        "not bearer": {"Authorization": f"Basic {tokens['alice']}"},
        "garbage": bearer("not-a-token"),
        "unknown": bearer("mot_" + "x" * 43),
    }
    for what, headers in cases.items():
        r = client.get("/models", headers=headers)
        assert r.status_code == 401, what
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert r.json()["error"]["code"] == "unauthenticated"
    s = rt.services
    with s.engine.begin() as conn:
        conn.execute(
            update(PersonalToken.__table__)
            .where(PersonalToken.__table__.c.token_sha256 == hash_token(tokens["bob"]))
            .values(expires_at="2020-01-01T00:00:00+00:00")
        )
    r = client.get("/models", headers=bearer(tokens["bob"]))
    assert r.status_code == 401 and "expired" in r.json()["error"]["message"]
    carol_id = s.tokens.entries("carol")[0].id
    revoke_token(s.tokens, s.policy, s.audit, s.policy.human("alice"), carol_id)
    r = client.get("/models", headers=bearer(tokens["carol"]))
    assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]
    assert client.get("/models", headers=bearer(tokens["dana"])).status_code == 200


# 403 and the person from the token -----------------------------------------------------
def test_denied_permission_is_403_and_audited_as_the_tokens_person(rt, client, tokens):
    r = client.post(
        "/deployments/m/rollback", json={"reason": "x"}, headers=bearer(tokens["carol"])
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "permission_denied"
    denied = _audit(rt, action="rollback_deployment", decision="denied")
    assert denied[0]["actor"] == "carol" and denied[0]["authenticated"] is True


def test_an_error_from_a_worker_thread_names_its_request(rt, client, tokens):
    """A refusal built off the event loop (a decision, behind the Idempotency-Key store)
    carries the request's id like every other error envelope."""
    req = _request(rt)
    body = {"evidence_hash": req.evidence_hash, "reason": "looks fine"}
    r = client.post(f"/approvals/{req.id}/approve", json=body, headers=bearer(tokens["carol"]))
    assert r.status_code == 403, r.text
    assert r.json()["request_id"] == r.headers["x-request-id"]
    assert r.json()["request_id"].startswith("req-")


def test_a_body_field_never_names_the_actor(rt, client, tokens):
    req = _request(rt)
    body = {"evidence_hash": req.evidence_hash, "decided_by": "alice"}
    r = client.post(f"/approvals/{req.id}/approve", json=body, headers=bearer(tokens["carol"]))
    assert r.status_code == 422  # unknown fields are refused, not read
    body.pop("decided_by")
    r = client.post(f"/approvals/{req.id}/approve", json=body, headers=bearer(tokens["carol"]))
    assert r.status_code == 403 and "not a listed approver" in r.json()["error"]["message"]
    assert rt.services.approvals.get(req.id).status == ApprovalStatus.PENDING
    assert _audit(rt, action="decide_approval")[0]["actor"] == "carol"


def test_requester_cannot_approve_own_request(rt, client, tokens):
    req = _request(rt, requester="alice")
    r = client.post(
        f"/approvals/{req.id}/approve",
        json={"evidence_hash": req.evidence_hash},
        headers=bearer(tokens["alice"]),
    )
    assert r.status_code == 403 and "cannot decide" in r.json()["error"]["message"]


# Evidence hash, expiry, size -----------------------------------------------------------
def test_wrong_evidence_hash_is_422_and_changes_nothing(rt, client, tokens):
    req = _request(rt)
    r = client.post(
        f"/approvals/{req.id}/approve",
        json={"evidence_hash": "0" * 64},
        headers=bearer(tokens["alice"]),
    )
    assert r.status_code == 422 and "not the evidence" in r.json()["error"]["message"]
    after = rt.services.approvals.get(req.id)
    assert after.status == ApprovalStatus.PENDING and after.decided_by is None
    assert _audit(rt, action="approvals.approve")[0]["decision"] == "denied"


def test_expired_request_is_409(rt, client, tokens):
    req = _request(rt, ttl=timedelta(seconds=-1))
    r = client.post(
        f"/approvals/{req.id}/approve",
        json={"evidence_hash": req.evidence_hash},
        headers=bearer(tokens["alice"]),
    )
    assert r.status_code == 409 and "expired" in r.json()["error"]["message"]
    assert rt.services.approvals.get(req.id).decided_by is None


def test_oversized_bodies_are_413_before_anything_runs(rt, client, tokens):
    req = _request(rt)
    big = {"evidence_hash": req.evidence_hash, "reason": "x" * 2_000_000}
    r = client.post(f"/approvals/{req.id}/reject", json=big, headers=bearer(tokens["alice"]))
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
    chat = {"model": "ml-engineer", "messages": [{"role": "user", "content": "y" * 1_100_000}]}
    r = client.post("/v1/chat/completions", json=chat, headers=bearer(tokens["dana"]))
    assert r.status_code == 413
    assert rt.services.approvals.get(req.id).status == ApprovalStatus.PENDING
    assert not _audit(rt, action="approvals.reject")


def test_bad_path_and_query_values_are_422(client, tokens):
    h = bearer(tokens["alice"])
    assert client.get("/approvals/not-an-id", headers=h).status_code == 422
    assert client.get("/models/..%2Fetc", headers=h).status_code in (404, 422)
    assert client.get("/audit/verify?anchor=nope", headers=h).status_code == 422
    assert client.get("/approvals?status=bogus", headers=h).status_code == 422


# Idempotency and concurrency -------------------------------------------------------------
def test_idempotency_key_makes_a_double_submit_act_once(rt, client, tokens):
    req = _request(rt)
    h = {**bearer(tokens["alice"]), "Idempotency-Key": "k-123"}
    body = {"evidence_hash": req.evidence_hash, "reason": "not now"}
    first = client.post(f"/approvals/{req.id}/reject", json=body, headers=h)
    again = client.post(f"/approvals/{req.id}/reject", json=body, headers=h)
    assert first.status_code == again.status_code == 202  # recorded; execution is a job
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.json() == first.json()
    assert len(_audit(rt, action="approvals.reject")) == 1
    other = client.post(f"/approvals/{req.id}/reject", json={**body, "reason": "x"}, headers=h)
    assert other.status_code == 422 and "different request" in other.json()["error"]["message"]
    # Without the key the second submit is a second attempt: refused, the request is decided.
    plain = client.post(f"/approvals/{req.id}/reject", json=body, headers=bearer(tokens["alice"]))
    assert plain.status_code == 409


def test_two_approvers_at_once_exactly_one_decision_counts(rt, client, tokens):
    s = rt.services
    agent = s.policy.agent("mlops-engineer", "dana")
    req = s.approvals.create("m", "1", {"rollback": {"reason": "x"}}, agent, action=ROLLBACK)
    barrier = threading.Barrier(2)
    results: dict[str, int] = {}

    def decide(who: str) -> None:
        barrier.wait()
        r = client.post(
            f"/approvals/{req.id}/approve",
            json={"evidence_hash": req.evidence_hash},
            headers=bearer(tokens[who]),
        )
        results[who] = r.status_code

    threads = [threading.Thread(target=decide, args=(w,)) for w in ("alice", "bob")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(results.values()) == [202, 409], results
    after = s.approvals.get(req.id)
    winner = next(w for w, code in results.items() if code == 202)
    assert after.status != ApprovalStatus.PENDING and after.decided_by == winner
    allowed = _audit(rt, action="approvals.approve", decision="allowed")
    assert [e["actor"] for e in allowed] == [winner]


# Chat edge ---------------------------------------------------------------------------------
def test_chat_rate_limit_per_token_and_profile_checks(rt, tokens):
    from fastapi.testclient import TestClient

    from agents.server.app import create_app
    from agents.server.plane import ServerConfig

    app2 = create_app(rt, ServerConfig(chat_per_minute=1, chat_burst=2))
    with TestClient(app2) as c:
        body = {"model": "architect", "messages": [{"role": "user", "content": "list models"}]}
        codes = [
            c.post("/v1/chat/completions", json=body, headers=bearer(tokens["carol"])).status_code
            for _ in range(3)
        ]
        assert codes == [200, 200, 429]
        r = c.post("/v1/chat/completions", json=body, headers=bearer(tokens["carol"]))
        assert int(r.headers["retry-after"]) >= 1
        # The limit is per token: another person's token is not throttled.
        assert (
            c.post("/v1/chat/completions", json=body, headers=bearer(tokens["bob"])).status_code
            == 200
        )
        unknown = {**body, "model": "no-such-agent"}
        r = c.post("/v1/chat/completions", json=unknown, headers=bearer(tokens["alice"]))
        assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
        # carol (Architect, OBSERVED) may not launch a TRUSTED engineer profile: 403, audited.
        eng = {**body, "model": "ml-engineer"}
        r = c.post("/v1/chat/completions", json=eng, headers=bearer(tokens["alice"]))
        assert r.status_code == 200
    with TestClient(create_app(rt)) as c:
        r = c.post("/v1/chat/completions", json=eng, headers=bearer(tokens["carol"]))
        assert r.status_code == 403
        denied = _audit(rt, action="agent_run", decision="denied")
        assert denied[0]["actor"] == "carol"
        ids = [m["id"] for m in c.get("/v1/models", headers=bearer(tokens["carol"])).json()["data"]]
        assert "architect" in ids and "ml-engineer" not in ids


@pytest.mark.parametrize("path", ["/whoami", "/v1/models"])
def test_whoami_and_models_name_the_tokens_person(client, tokens, path):
    r = client.get(path, headers=bearer(tokens["bob"]))
    assert r.status_code == 200
    if path == "/whoami":
        me = r.json()
        assert me["name"] == "bob" and me["identity"] == "token" and me["approver"] is True


# GitHub webhook (the review bot) ----------------------------------------------------------
def test_github_webhook_is_mounted_and_checks_the_signature(client, monkeypatch):
    import hashlib
    import hmac

    body = b'{"zen": "Keep it logically awesome."}'
    headers = {"X-GitHub-Event": "ping", "Content-Type": "application/json"}
    r = client.post("/webhooks/github", content=body, headers=headers)
    assert r.status_code == 404 and "not configured" in r.json()["error"]["message"]
    monkeypatch.setenv("MODELOPS_GITHUB_WEBHOOK_SECRET", "s3cret")
    r = client.post("/webhooks/github", content=body, headers=headers)
    assert r.status_code == 401  # no signature: nothing else happens
    signature = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    r = client.post(
        "/webhooks/github", content=body, headers={**headers, "X-Hub-Signature-256": signature}
    )
    assert r.status_code == 200 and r.json() == {"status": "pong"}
