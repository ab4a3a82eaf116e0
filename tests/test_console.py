"""The approval console without a browser: token sign-in -> session cookie (HttpOnly,
SameSite=Strict, Secure over https), CSRF on every form, sign-out, revoked tokens, the inbox
and decisions bound to the evidence hash through the CLI's decision path."""

from __future__ import annotations

import re

from policies.approvals import ROLLBACK, ApprovalStatus
from tests import test_server_support as support

# Fixtures shared by the control-plane tests (see tests/test_server_support.py).
app, tokens = support.app, support.tokens


def _client(app, https: bool = False):
    from fastapi.testclient import TestClient

    return TestClient(app, base_url="https://testserver" if https else "http://testserver")


def _csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html)[1]


def sign_in(c, token: str):
    page = c.get("/console/login")
    return c.post(
        "/console/login",
        data={"csrf": _csrf(page.text), "token": token, "next": "/console/"},
        follow_redirects=False,
    )


def _rollback_request(rt):
    s = rt.services
    agent = s.policy.agent("mlops-engineer", "dana")
    evidence = {
        "rollback": {
            "name": "m",
            "from_versions": ["2"],
            "from_revision": 2,
            "to_version": "1",
            "returns_to_approval": None,
            "reason": "errors",
        }
    }
    return s.approvals.create("m", "1", evidence, agent, action=ROLLBACK)


def test_sign_in_sets_a_strict_httponly_session_cookie(app, tokens):
    with _client(app) as c:
        assert c.get("/console/", follow_redirects=False).status_code == 303  # to sign-in
        r = sign_in(c, tokens["alice"])
        assert r.status_code == 303 and r.headers["location"] == "/console/"
        cookie = r.headers["set-cookie"]
        assert "modelops_session=" in cookie and "HttpOnly" in cookie
        assert "SameSite=strict" in cookie.replace("Strict", "strict")
        assert "Secure" not in cookie  # plain http on loopback
        page = c.get("/console/")
        assert page.status_code == 200 and 'id="who">alice<' in page.text
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert page.headers["x-frame-options"] == "DENY"
    with _client(app, https=True) as c:
        assert "Secure" in sign_in(c, tokens["bob"]).headers["set-cookie"]


def test_bad_token_and_missing_login_csrf_are_refused(app, tokens):
    with _client(app) as c:
        page = c.get("/console/login")
        r = c.post("/console/login", data={"csrf": _csrf(page.text), "token": "mot_nope"})
        assert r.status_code == 401 and "not a known personal token" in r.text
        r = c.post("/console/login", data={"token": tokens["alice"]})
        assert r.status_code == 403 and "CSRF" in r.text
        assert "modelops_session" not in c.cookies


def test_a_form_post_without_csrf_is_refused_and_changes_nothing(rt, app, tokens):
    req = _rollback_request(rt)
    with _client(app) as c:
        sign_in(c, tokens["alice"])
        form = {"evidence_hash": req.evidence_hash, "decision": "reject", "reason": "no"}
        r = c.post(f"/console/approvals/{req.id}/decide", data=form)
        assert r.status_code == 403 and "CSRF token is missing or wrong" in r.text
        r = c.post(f"/console/approvals/{req.id}/decide", data={**form, "csrf": "forged"})
        assert r.status_code == 403
    assert rt.services.approvals.get(req.id).status == ApprovalStatus.PENDING
    denied = rt.services.audit.entries(action="console.form", decision="denied")
    assert len(denied) == 2 and denied[0]["actor"] == "alice"


def test_inbox_shows_the_request_and_decides_on_its_evidence_hash(rt, app, tokens):
    req = _rollback_request(rt)
    with _client(app) as c:
        sign_in(c, tokens["bob"])
        inbox = c.get("/console/").text
        assert req.id in inbox and req.evidence_hash in inbox and "roll m back to v1" in inbox
        csrf = _csrf(inbox)
        stale = {"csrf": csrf, "evidence_hash": "0" * 64, "decision": "approve", "reason": ""}
        r = c.post(f"/console/approvals/{req.id}/decide", data=stale)
        assert r.status_code == 422 and "not the evidence" in r.text
        assert rt.services.approvals.get(req.id).status == ApprovalStatus.PENDING
        ok = {
            **stale,
            "evidence_hash": req.evidence_hash,
            "decision": "reject",
            "reason": "fine now",
            "idempotency_key": "form-1",
        }
        r = c.post(f"/console/approvals/{req.id}/decide", data=ok)
        assert r.status_code == 200 and f"Rejected {req.id} as bob" in r.text
        again = c.post(f"/console/approvals/{req.id}/decide", data=ok)  # double submit
        assert again.status_code == 200 and "already submitted" in again.text
    after = rt.services.approvals.get(req.id)
    assert after.status == ApprovalStatus.REJECTED and after.decided_by == "bob"
    assert len(rt.services.audit.entries(action="approvals.reject", decision="allowed")) == 1


def test_non_approver_is_refused(rt, app, tokens):
    req = _rollback_request(rt)
    with _client(app) as c:
        sign_in(c, tokens["carol"])
        csrf = _csrf(c.get(f"/console/approvals/{req.id}").text)
        form = {"csrf": csrf, "evidence_hash": req.evidence_hash, "decision": "approve"}
        r = c.post(f"/console/approvals/{req.id}/decide", data=form)
        assert r.status_code == 403 and "carol" in r.text
    assert rt.services.approvals.get(req.id).status == ApprovalStatus.PENDING


def test_sign_out_and_revocation_end_the_session(rt, app, tokens):
    from policies.tokens import revoke_token

    with _client(app) as c:
        sign_in(c, tokens["dana"])
        page = c.get("/console/models")
        assert page.status_code == 200 and "No registered models" in page.text
        assert c.get("/console/deployments").status_code == 200
        r = c.post("/console/logout", data={"csrf": _csrf(page.text)}, follow_redirects=False)
        assert r.status_code == 303
        assert c.get("/console/models", follow_redirects=False).status_code == 303
    with _client(app) as c:
        sign_in(c, tokens["dana"])
        assert c.get("/console/models").status_code == 200
        s = rt.services
        revoke_token(
            s.tokens, s.policy, s.audit, s.policy.human("alice"), s.tokens.entries("dana")[0].id
        )
        r = c.get("/console/models", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/console/login")


def test_the_approval_page_shows_design_reviews_and_flags_unaudited_ones(rt, app, tokens):
    agent = rt.services.policy.agent("ml-engineer", "dana")
    evidence = {
        "candidate": {"name": "m", "version": "2", "artifact_sha256": "ab" * 32},
        "gates": {"passed": True, "checks": []},
        "design_reviews": [
            {
                "digest": "0123456789abcdef",
                "recommendation": "changes-requested",
                "reviewer": "carol",
                "recorded_at": "2026-12-02T10:00:00+00:00",
                "summary": "Add an <age> slice",
                "findings": ["no drift config"],
                "risks": ["thin holdout"],
            },
            {"digest": "fedcba9876543210", "error": "not recorded by record_design_review"},
        ],
    }
    req = rt.services.approvals.create("m", "2", evidence, agent)
    with _client(app) as c:
        sign_in(c, tokens["alice"])
        page = c.get(f"/console/approvals/{req.id}").text
    assert "Design reviews" in page and "<b>changes-requested</b> by carol" in page
    assert "Add an &lt;age&gt; slice" in page  # escaped, as all evidence text
    assert "findings: no drift config" in page and "risks: thin holdout" in page
    assert 'class="bad">fedcba9876543210: not recorded by record_design_review' in page
