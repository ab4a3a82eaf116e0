"""A promotion through the control plane with real models: request over REST, two approvers
at once (exactly one decision counts, deployed once), and the CLI in server mode printing the
same output as embedded mode for models, approvals, deploy status and audit."""

from __future__ import annotations

import json
import threading
import time

import pytest
from click.testing import CliRunner

from agents.cli.main import cli
from policies.approvals import ApprovalStatus
from tests import test_server_support as support
from tests.test_server_support import bearer

# Fixtures shared by the control-plane tests (see tests/test_server_support.py).
app, live, tokens = support.app, support.live, support.tokens

pytestmark = pytest.mark.slow
MODEL = "breast-cancer-classifier"


def agent(monkeypatch, token: str, *args: str, server: str | None = None) -> str:
    monkeypatch.setenv("MODELOPS_TOKEN", token)
    argv = [*(["--server", server] if server else []), *args]
    res = CliRunner().invoke(cli, argv, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.stdout


def test_promotion_over_rest_two_approvers_at_once_and_cli_server_mode(
    live, tokens, registered, monkeypatch
):
    import httpx

    rt = registered["rt"]
    http = httpx.Client(base_url=live.url, timeout=120)
    run = http.post(
        "/workflows/promotion/run",
        json={"input": {"name": MODEL, "version": "1", "dataset": registered["holdout"]}},
        headers={**bearer(tokens["dana"]), "Idempotency-Key": "promo-1"},
    )
    assert run.status_code == 200 and run.json()["status"] == "pending_approval", run.text
    aid = run.json()["approval_id"]
    shown = http.get(f"/approvals/{aid}", headers=bearer(tokens["alice"])).json()["approval"]
    assert shown["evidence"]["candidate"]["version"] == "1" and shown["status"] == "pending"

    # The CLI in server mode prints what embedded mode prints (same token, same person).
    for args in (
        ("models", "list", "--json"),
        ("models", "show", MODEL, "--json"),
        ("approvals", "list", "--json"),
        ("approvals", "show", aid, "--json"),
        ("audit", "verify", "--json"),
    ):
        embedded = agent(monkeypatch, tokens["bob"], *args)
        remote = agent(monkeypatch, tokens["bob"], *args, server=live.url)
        assert json.loads(remote) == json.loads(embedded), args
    table = agent(monkeypatch, tokens["bob"], "approvals", "list", server=live.url)
    assert aid in table and "pending" in table

    # Two approvers post at once: exactly one decision counts; the plan runs once.
    barrier = threading.Barrier(2)
    codes: dict[str, int] = {}

    def approve(who: str) -> None:
        barrier.wait()
        r = http.post(
            f"/approvals/{aid}/approve",
            json={"evidence_hash": shown["evidence_hash"], "reason": f"ok by {who}"},
            headers=bearer(tokens[who]),
        )
        codes[who] = r.status_code

    threads = [threading.Thread(target=approve, args=(w,)) for w in ("alice", "bob")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=240)
    # The decision is answered once recorded (202); its execution is a job to follow.
    assert sorted(codes.values()) == [202, 409], codes
    winner = next(w for w, c in codes.items() if c == 202)
    deadline = time.monotonic() + 120
    while (job := http.get(f"/approvals/{aid}/execution", headers=bearer(tokens["carol"])).json())[
        "state"
    ] not in ("done", "failed") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert job["state"] == "done", job
    req = rt.services.approvals.get(aid)
    assert req.status == ApprovalStatus.EXECUTED and req.decided_by == winner
    assert rt.services.deployments.count_revisions(MODEL) == 1
    assert rt.services.registry.alias_version(MODEL, "champion") == "1"
    allowed = rt.services.audit.entries(action="approvals.approve", decision="allowed")
    assert [e["actor"] for e in allowed] == [winner]

    status = json.loads(
        agent(monkeypatch, tokens["carol"], "deploy", "status", MODEL, "--json", server=live.url)
    )
    assert status["deployments"][0]["live_versions"] == ["1"]
    shown_model = http.get(f"/models/{MODEL}", headers=bearer(tokens["carol"])).json()
    assert shown_model["alias_history"][-1]["alias"] == "champion"
    assert shown_model["alias_history"][-1]["approval_id"] == aid
    embedded_trail = json.loads(
        agent(monkeypatch, tokens["carol"], "audit", "trail", MODEL, "1", "--json")
    )
    remote_trail = json.loads(
        agent(monkeypatch, tokens["carol"], "audit", "trail", MODEL, "1", "--json", server=live.url)
    )
    assert remote_trail["approvals"] == embedded_trail["approvals"]
    assert [e["action"] for e in remote_trail["events"]] == [
        e["action"] for e in embedded_trail["events"]
    ]

    # Server mode decides through the same path: v2 requested, bob approves from the CLI.
    second = http.post(
        "/workflows/promotion/run",
        json={"input": {"name": MODEL, "version": "2", "dataset": registered["holdout"]}},
        headers=bearer(tokens["dana"]),
    ).json()
    ev_hash = rt.services.approvals.get(second["approval_id"]).evidence_hash
    lines = agent(
        monkeypatch,
        tokens["bob"],
        "approvals",
        "approve",
        second["approval_id"],
        "--evidence-hash",
        ev_hash,
        "--json",
        server=live.url,
    ).splitlines()
    # JSON Lines in server mode too: the decision, the job's steps, then its outcome.
    events = [json.loads(line) for line in lines]
    assert events[0]["event"] == "decision" and events[-1]["event"] == "done", events
    assert "routes written" in [e.get("step") for e in events]
    out = events[-1]
    assert out["status"] == "deployed", out
    assert rt.services.approvals.get(second["approval_id"]).decided_by == "bob"
    # A claim that contradicts the token is refused in server mode too.
    monkeypatch.setenv("MODELOPS_TOKEN", tokens["bob"])
    res = CliRunner().invoke(cli, ["--server", live.url, "models", "list", "--as", "alice"])
    assert res.exit_code != 0 and "belongs to bob" in str(res.exception)
