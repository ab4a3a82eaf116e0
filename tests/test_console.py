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


# The pages tell the truth ------------------------------------------------------------------
def _report_output() -> dict:
    """A monitor_report tool output (its schema), with values that must each show rounded."""
    t0 = 1_767_000_000.0
    slo = {
        "version": "2", "requests": 412, "errors": 7, "server_errors": 7, "timeouts": 3,
        "refused_at_edge": 19, "batch_requests": 5, "error_rate": 0.016990291262,
        "p50_ms": 3.14159, "p95_ms": 12.71828, "p99_ms": 301.234567, "throughput_rps": 0.114,
    }  # fmt: skip
    timeline = [
        {"start": t0 + 300 * i, "end": t0 + 300 * (i + 1), "requests": 30 + i, "errors": i % 2,
         "error_rate": (i % 2) / (30 + i), "p50_ms": 3.0, "p95_ms": 10.0 + i, "p99_ms": 200.0 + 20 * i}
        for i in range(12)
    ]  # fmt: skip
    perf = [
        {"start": b["start"], "end": b["end"], "predictions": 30, "estimated_accuracy": 0.93,
         "labels": 5, "realized_accuracy": 0.8}
        for b in timeline
    ]  # fmt: skip
    version = {
        "version": "2",
        "served_earlier": False,
        "answered_requests": 405,
        "problems": [],
        "slo": slo,
        "timeline": timeline,
        "performance_timeline": perf,
        "data_drift": {
            "status": "measured",
            "current_rows": 405,
            "drifted": 1,
            "evaluated": 2,
            "dataset_drift": True,
            "drift_share": 0.5,
            "columns": [
                {
                    "column": "mean radius",
                    "status": "drift",
                    "method": "ks",
                    "score": 1.23456e-9,
                    "threshold": 0.05,
                    "drifted": True,
                    "psi": 2.71828,
                },
                {
                    "column": "mean texture",
                    "status": "ok",
                    "method": "ks",
                    "score": 0.61803,
                    "threshold": 0.05,
                    "drifted": False,
                    "psi": 0.0123,
                },
            ],
        },  # fmt: skip
        "prediction_drift": {"status": "ok", "method": "ks", "score": 0.4, "threshold": 0.05},
        "estimated_performance": {
            "status": "estimated",
            "rows": 405,
            "metrics": {"accuracy": 0.9387143117545749},
        },  # fmt: skip
        "realized_performance": {"status": "measured", "rows": 60, "metrics": {"accuracy": 0.8}},
        "reference_profile": {"description": "captured at registration"},
    }
    earlier = {**version, "version": "1", "served_earlier": True,
               "slo": {**slo, "version": "1", "requests": 77}}  # fmt: skip
    report = {
        "model_name": "m",
        "environment": "production",
        "window": {
            "from": "2026-01-01T10:00:00+00:00",
            "to": "2026-01-01T11:00:00+00:00",
            "seconds": 3600,
            "rows": 500,
            "truncated": False,
        },  # fmt: skip
        "notes": [],
        "versions": [version, earlier],
        "policy": {
            "digest": "ab" * 32,
            "slo": {"latency_p99_ms": 250.0, "error_rate": 0.05},
            "overrides": {},
        },  # fmt: skip
    }
    stored = [
        {"id": 9, "created_at": "2026-01-01T10:55:00+00:00", "severity": "critical",
         "kind": "latency_p99", "version": "2", "message": "p99 too slow", "value": 301.2,
         "threshold": 250.0, "action": "alert", "delivery": "stored"},
        {"id": 4, "created_at": "2026-01-01T10:20:00+00:00", "severity": "warning",
         "kind": "data_drift", "version": "2", "message": "1 of 2 features drifted",
         "value": 0.5, "threshold": 0.5, "action": "alert", "delivery": "webhook HTTP 200"},
    ]  # fmt: skip
    return {"name": "m", "report": report, "alerts": [], "stored_alerts": stored}


def _render_monitoring(out: dict) -> str:
    from agents.server.console import _env
    from agents.server.console_monitoring import monitoring_view

    return _env.get_template("monitoring.html").render(
        request_id="req-x", who="alice", csrf="c", name="m", m=monitoring_view(out)
    )


def test_the_monitoring_page_shows_every_field_of_the_report_rounded():
    out = _report_output()
    page = _render_monitoring(out)
    slo = out["report"]["versions"][0]["slo"]
    for field, shown in {
        "requests": "412", "errors": "7", "server_errors": "7", "timeouts": "3",
        "refused_at_edge": "19", "batch_requests": "5", "error_rate": "1.70 %",
        "p50_ms": "3.1 ms", "p95_ms": "12.7 ms", "p99_ms": "301.2 ms",
    }.items():  # fmt: skip
        assert f'class="slo-{field}">{shown}<' in page, (field, slo[field])
    assert "– / – / –" not in page and "0.9387143117545749" not in page
    assert "accuracy 0.939 on 405 predictions" in page
    # The stored alerts of the window, newest first, with their state.
    assert page.index("p99 too slow") < page.index("1 of 2 features drifted")
    assert "webhook HTTP 200" in page and "No alert was stored" not in page
    # A version that served earlier in the window is shown, and said to be not live.
    assert 'id="version-1"' in page and "served earlier in the window, not live now" in page
    # Drifted features are marked; inline SVG plots with the SLO line, no external resources.
    assert 'class="drifted"' in page and 'mean radius <b class="bad">DRIFT</b>' in page
    for plot in ("latency", "errors", "volume", "drift", "performance"):
        assert f'id="plot-{plot}-2"' in page
    assert (
        "p99 SLO 250 ms" in page
        and "<script" not in page
        and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    )
    assert 'style="' not in page  # the CSP allows no inline style


def test_the_monitoring_page_says_when_no_alert_was_stored():
    out = {**_report_output(), "stored_alerts": []}
    assert "No alert was stored in this window" in _render_monitoring(out)


def test_a_heuristic_pass_reads_as_a_warning_and_the_honesty_line_adds_up():
    from agents.server.views import approval_view

    evidence = {
        "candidate": {
            "honesty": {
                "implementation_status": "HEURISTIC",
                "honesty_warning": "UNVALIDATED",
                "accuracy_claim": "about 0.95",
            }
        },  # fmt: skip
        "metrics": {"accuracy": 0.9612},
        "dataset": {"rows": 114},
        "gates": {
            "passed": True,
            "checks": [
                {"name": "honesty", "passed": True, "warning": True, "message": "HEURISTIC"},
                {"name": "accuracy", "passed": True, "message": "ok"},
            ],
        },  # fmt: skip
        "validation": {"verdict": "PASSED", "evaluation_id": None},
    }
    a = {"id": "apr-00000001", "requested_by": "dana", "action": "promote_to_production",
         "status": "pending", "evidence": evidence, "plan": {}}  # fmt: skip
    v = approval_view(a, approvers=["alice", "bob"], require_human=True, policy_digest="",
                      qa_evaluation=None, refusals={"approve": "x", "reject": None})  # fmt: skip
    assert [g["state"] for g in v["gates"]] == ["pass with warning", "pass"]
    assert v["gates"][0]["css"] == "warn" and v["gates_warned"]
    line = v["honesty_line"]
    assert line["css"] == "warn"
    assert "automated QA PASSED" in line["text"] and "approval waits" in line["text"]
    assert "registered as HEURISTIC / UNVALIDATED (labels the registrant set" in line["text"]
    assert "claimed: about 0.95" in line["text"] and "accuracy 0.9612" in line["text"]
    assert not v["may_approve"] and v["may_reject"]


def test_no_approve_control_for_anyone_the_server_would_refuse(rt, app, tokens):
    """dana asked (through an agent) for the rollback; carol is no approver; alice may.
    The page draws the control from ApprovalService.refusal, the rule decide applies."""
    req = _rollback_request(rt)
    with _client(app) as c:
        for who, may in (("dana", False), ("carol", False), ("alice", True)):
            c.cookies.clear()
            sign_in(c, tokens[who])
            page = c.get(f"/console/approvals/{req.id}").text
            assert (f'id="approve-{req.id}"' in page) is may, who
            assert (f'id="reject-{req.id}"' in page) is may, who
            if not may:
                assert f'id="cannot-approve-{req.id}"' in page
        # What the page hid, the server refuses: dana posting the form anyway gets a 403.
        c.cookies.clear()
        sign_in(c, tokens["dana"])
        page = c.get(f"/console/approvals/{req.id}").text
        why = re.search(
            rf'id="cannot-approve-{req.id}">You cannot approve this request: ([^<]+)<', page
        )[1]
        form = {"csrf": _csrf(page), "evidence_hash": req.evidence_hash, "decision": "approve"}
        r = c.post(f"/console/approvals/{req.id}/decide", data=form)
        assert "not a listed approver" in why
        assert r.status_code == 403 and "dana" in r.text and "approver" in r.text
    assert rt.services.approvals.get(req.id).status == ApprovalStatus.PENDING


def test_refusal_is_the_rule_decide_applies_and_changes_nothing(rt):
    from core.errors import PermissionDenied

    s = rt.services
    evidence = {"rollback": {"name": "m", "from_versions": ["2"], "to_version": "1"}}
    req = s.approvals.create("m", "1", evidence, s.policy.human("bob"), action=ROLLBACK)
    agent = s.policy.agent("mlops-engineer", "alice")
    for actor, words in (
        (s.policy.human("bob"), "cannot decide it"),  # an approver, but the requester
        (s.policy.human("carol"), "may not decide approvals"),
        (agent, "only people can"),
    ):
        exc = s.approvals.refusal(req, actor, approve=True)
        assert isinstance(exc, PermissionDenied) and words in exc.message
        try:
            s.approvals.decide(req.id, actor, approve=True, seen_evidence_hash=req.evidence_hash)
        except PermissionDenied as raised:
            assert raised.message == exc.message
        else:
            raise AssertionError(f"{actor.name} decided")
    assert s.approvals.refusal(req, s.policy.human("alice"), approve=True) is None
    assert s.approvals.get(req.id).status == ApprovalStatus.PENDING


def test_the_outcome_of_a_canary_approval_reads_from_its_rollout():
    from agents.server.views import outcome_view

    a = {"id": "apr-0000000a", "status": "executed", "version": "2", "decided_by": "alice",
         "executed_by": "workflow approval-executor for alice",
         "execution": {"strategy": "canary", "rollout_id": 3, "revision": 5}}  # fmt: skip
    dep = {"weights": {"1": 90.0, "2": 10.0},
           "rollouts": [{"id": 3, "approval_id": "apr-0000000a", "strategy": "canary", "step": 1,
                         "steps": [10.0, 50.0, 100.0], "weight": 10.0, "state": "active",
                         "now": "v2 takes 10% of traffic"}]}  # fmt: skip
    out = outcome_view(a, dep)
    assert out["state"] == "rollout step 1 at 10 %"
    assert "canary rollout #3 step 1/3 at 10 %" in out["text"] and "v1 90 %, v2 10 %" in out["text"]
    failed = outcome_view({**a, "status": "approved"}, dep, {"reason": "gateway did not start"})
    assert failed["state"] == "failed" and "gateway did not start" in failed["text"]
    rejected = outcome_view({**a, "status": "rejected", "reason": "no"}, None)
    assert "nothing was deployed" in rejected["text"]


def test_the_html_report_prints_rounded_metrics_not_raw_dicts():
    from core.monitoring.html import render_html

    report = {**_report_output()["report"], "alerts": []}
    html = render_html(report, {})
    assert "{'" not in html and "0.9387143117545749" not in html
    assert "estimated: accuracy 0.9387 (on 405 predictions)" in html
    assert "measured: accuracy 0.8 (on 60 labels)" in html
