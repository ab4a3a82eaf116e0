"""A decision answers at once and its execution is a job: the server's 202 comes before the
deployment, the status endpoint lists the executor's steps in order, an interrupted job is
resumed and deploys once, the CLI prints JSON Lines, the console page polls the job."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from agents.execution import JobRunner
from tests import test_server_support as support
from tests.test_server_support import bearer

app, tokens = support.app, support.tokens
MODEL = "breast-cancer-classifier"
SERVED_STEPS = [
    "decision recorded",
    "routes written",
    "gateway starting",
    "gateway started",
    "health ok",
]


def _request(registered: dict, version: str = "1") -> str:
    rt = registered["rt"]
    out = rt.dispatcher.call_or_raise(
        rt.services.policy.human("dana"),
        "request_promotion",
        {"name": registered["name"], "version": version, "dataset": registered["holdout"]},
    )
    assert out["status"] == "pending_approval", out
    return out["approval_id"]


def _wait(get, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = get()
        if job["state"] in ("done", "failed") or time.monotonic() > deadline:
            return job
        time.sleep(0.2)


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


# The job record and who counts as its runner (no gateway) ----------------------------------
def test_a_job_is_claimed_once_and_keeps_its_steps_in_order(rt):
    jobs = rt.services.execution_jobs
    jobs.queue("apr-0000000a", "alice")
    assert jobs.claim("apr-0000000a", "me:1")
    # A running job is not taken again unless the caller resumes an orphan.
    assert not jobs.claim("apr-0000000a", "other:2")
    for step in ("routes written", "gateway reused", "health ok"):
        jobs.step("apr-0000000a", step, {"n": 1})
    jobs.finish("apr-0000000a", {"status": "deployed"})
    job = jobs.get("apr-0000000a")
    assert [s["step"] for s in job["steps"]] == [
        "decision recorded",
        "routes written",
        "gateway reused",
        "health ok",
    ]
    assert job["state"] == "done" and job["outcome"] == {"status": "deployed"}
    # A second decision's queue() keeps the first record (a decision runs once).
    assert jobs.queue("apr-0000000a", "bob")["decided_by"] == "alice"
    assert not jobs.claim("apr-0000000a", "me:1", resume=True)  # finished: nothing to resume


def test_only_a_job_nobody_runs_is_an_orphan(rt):
    jobs = rt.services.execution_jobs
    runner = JobRunner(rt)
    host = socket.gethostname()
    cases = {
        "apr-0000000b": (f"{host}:{os.getppid()}", False),  # a live process on this host
        "apr-0000000c": (f"{host}:{_dead_pid()}", True),  # its process is gone
        "apr-0000000d": (runner.owner, True),  # this process's, with no live thread
        "apr-0000000e": ("elsewhere:1", False),  # another host, recently active
    }
    for aid, (owner, _) in cases.items():
        jobs.queue(aid, "alice")
        assert jobs.claim(aid, owner)
    for aid, (_, orphan) in cases.items():
        assert runner.is_orphan(jobs.get(aid)) is orphan, aid


# With a real gateway -------------------------------------------------------------------------
@pytest.mark.slow
def test_server_decision_answers_at_once_then_the_job_shows_its_steps(registered, app, tokens):
    from fastapi.testclient import TestClient

    rt = registered["rt"]
    aid = _request(registered)
    ev = rt.services.approvals.get(aid).evidence_hash
    with TestClient(app) as c:
        t0 = time.monotonic()
        r = c.post(
            f"/approvals/{aid}/approve",
            json={"evidence_hash": ev, "reason": "ok"},
            headers=bearer(tokens["alice"]),
        )
        answered = time.monotonic() - t0
        assert r.status_code == 202, r.text
        # Generous bound for a shared machine; the gateway start alone takes seconds.
        assert answered < 2.0, answered
        body = r.json()
        url = body["execution"]["status_url"]
        assert url == f"/approvals/{aid}/execution"
        assert body["outcome"] is None and body["approval"]["status"] == "approved"
        job = _wait(lambda: c.get(url, headers=bearer(tokens["carol"])).json())
        denied = c.get(url, headers=bearer(tokens["dana"]))
    assert job["state"] == "done", job
    steps = [s["step"] for s in job["steps"]]
    assert steps[: len(SERVED_STEPS)] == SERVED_STEPS and steps[-1] == "champion moved", steps
    assert [s["at"] for s in job["steps"]] == sorted(s["at"] for s in job["steps"])
    assert job["outcome"]["status"] == "deployed"
    assert rt.services.registry.alias_version(MODEL, "champion") == "1"
    assert rt.services.deployments.count_revisions(MODEL) == 1
    # Reading approvals is a permission (dana is an engineer: may she read approvals?).
    allowed = rt.services.policy.authorize(
        rt.services.policy.human("dana"), "approvals:read"
    ).allowed
    assert denied.status_code == (200 if allowed else 403)


@pytest.mark.slow
def test_an_interrupted_job_is_resumed_on_a_status_read_and_deploys_once(registered, app, tokens):
    from fastapi.testclient import TestClient

    rt = registered["rt"]
    aid = _request(registered)
    ev = rt.services.approvals.get(aid).evidence_hash
    # The decision is recorded and its job claimed by a process that then died: nothing ran.
    rt.dispatcher.call_or_raise(
        rt.services.policy.human("alice"),
        "decide_approval",
        {"approval_id": aid, "approve": True, "evidence_hash": ev},
    )
    jobs = rt.services.execution_jobs
    jobs.queue(aid, "alice")
    assert jobs.claim(aid, f"{socket.gethostname()}:{_dead_pid()}")
    assert rt.services.deployments.count_revisions(MODEL) == 0
    url = f"/approvals/{aid}/execution"
    with TestClient(app) as c:
        # The app's start-up already resumes it; a status read would too.
        first = c.get(url, headers=bearer(tokens["alice"])).json()
        job = _wait(lambda: c.get(url, headers=bearer(tokens["alice"])).json())
        again = c.get(url, headers=bearer(tokens["alice"])).json()
    assert first["state"] in ("running", "done"), first
    assert job["state"] == "done" and job["outcome"]["status"] == "deployed", job
    assert again["resumed"] is False  # a finished job is not run again
    assert rt.services.deployments.count_revisions(MODEL) == 1
    assert rt.services.registry.alias_version(MODEL, "champion") == "1"


@pytest.mark.slow
def test_a_status_read_resumes_an_orphan_the_start_up_did_not_see(registered, app, tokens):
    from fastapi.testclient import TestClient

    rt = registered["rt"]
    aid = _request(registered)
    ev = rt.services.approvals.get(aid).evidence_hash
    rt.dispatcher.call_or_raise(
        rt.services.policy.human("alice"),
        "decide_approval",
        {"approval_id": aid, "approve": True, "evidence_hash": ev},
    )
    url = f"/approvals/{aid}/execution"
    with TestClient(app) as c:
        # Orphaned after start-up: this process's own row, whose thread never started.
        jobs = rt.services.execution_jobs
        jobs.queue(aid, "alice")
        assert jobs.claim(aid, app.state.control_plane.jobs.owner)
        first = c.get(url, headers=bearer(tokens["alice"])).json()
        assert first["resumed"] is True, first
        job = _wait(lambda: c.get(url, headers=bearer(tokens["alice"])).json())
    assert job["state"] == "done", job
    assert rt.services.deployments.count_revisions(MODEL) == 1


@pytest.mark.slow
def test_cli_json_lines_are_one_event_per_line_with_the_steps(registered):
    from agents.cli.main import cli

    rt = registered["rt"]
    aid = _request(registered)
    ev = rt.services.approvals.get(aid).evidence_hash
    res = CliRunner().invoke(
        cli,
        ["approvals", "approve", aid, "--as", "alice", "--evidence-hash", ev, "--json"],
        catch_exceptions=False,
    )
    assert res.exit_code == 0, res.output
    events = [json.loads(line) for line in res.stdout.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "decision" and kinds[-1] == "done" and set(kinds[1:-1]) == {"step"}
    assert events[0]["approval"]["status"] == "approved"
    steps = [e["step"] for e in events if e["event"] == "step"]
    assert steps[: len(SERVED_STEPS) - 1] == SERVED_STEPS[1:] and steps[-1] == "champion moved"
    assert events[-1]["status"] == "deployed"
    # The same steps are on the job record (one writer: the executor's reports).
    job = rt.services.execution_jobs.get(aid)
    assert [s["step"] for s in job["steps"]][1:] == steps and job["state"] == "done"


# The console --------------------------------------------------------------------------------
def test_console_decided_page_polls_the_job_under_a_strict_csp(rt, app, tokens):
    from fastapi.testclient import TestClient

    from tests.test_console import _csrf, _rollback_request, sign_in

    req = _rollback_request(rt)  # of a model that does not exist: its execution fails
    with TestClient(app) as c:
        sign_in(c, tokens["alice"])
        csrf = _csrf(c.get(f"/console/approvals/{req.id}").text)
        form = {"csrf": csrf, "evidence_hash": req.evidence_hash, "decision": "approve"}
        r = c.post(f"/console/approvals/{req.id}/decide", data=form)
        assert r.status_code == 200, r.text
        status_url = f"/console/approvals/{req.id}/execution"
        assert f'data-status-url="{status_url}"' in r.text
        assert '<script src="/console/static/decided.js"></script>' in r.text
        assert "<script>" not in r.text  # no inline script: the CSP forbids it
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "connect-src 'self'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        js = c.get("/console/static/decided.js").text
        assert "fetch(url" in js and "setTimeout(poll, 500)" in js and "innerHTML" not in js
        job = _wait(lambda: c.get(status_url).json(), timeout=30)
        c.cookies.clear()
        anonymous = c.get(status_url, follow_redirects=False)
    assert job["state"] == "failed" and job["error"]["message"], job
    assert anonymous.status_code in (303, 401)
    assert re.search(r"decision recorded", r.text)
