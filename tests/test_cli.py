"""The `agent` CLI: fast help, exit codes, messages without tracebacks, the demo path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent


def agent(*args: str, env: dict | None = None, timeout: int = 180) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "agents.cli.main", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def test_help_does_not_import_heavy_libraries():
    code = (
        "import sys; from agents.cli.main import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
        "heavy = [m for m in ('mlflow', 'sklearn', 'langgraph', 'openai', 'pandas') if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy))"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert res.returncode == 0, res.stderr
    assert "HEAVY=\n" in res.stdout or res.stdout.strip().endswith("HEAVY=")
    assert "quickstart" in res.stdout and "approvals" in res.stdout


def test_unknown_model_and_version_exit_4_with_hint_and_no_traceback(registered):
    res = agent("models", "show", "no-such-model", "--as", "carol")
    assert res.returncode == 4
    assert "no registered model named 'no-such-model'" in res.stderr
    assert "Hint:" in res.stderr and "Traceback" not in res.stderr
    res = agent("models", "show", registered["name"], "--version", "champion", "--as", "carol")
    assert res.returncode == 4 and "has no champion yet" in res.stderr, res.stderr
    res = agent("models", "show", registered["name"], "--version", "99", "--as", "carol")
    assert res.returncode == 4, res.stderr
    assert (
        "has no version 99" in res.stderr
        and "Hint:" in res.stderr
        and "Traceback" not in res.stderr
    )


def test_malformed_input_json_exits_2(home):
    res = agent("tool", "call", "list_models", "--input", "{not json", "--as", "carol")
    assert res.returncode == 2
    assert "not valid JSON" in res.stderr and "line 1, column 2" in res.stderr
    assert "Traceback" not in res.stderr
    res = agent("predict", "m", "--input", '{"features": [1, 2', "--as", "alice")
    assert res.returncode == 2 and "Traceback" not in res.stderr


def test_identity_is_required_and_unknown_people_are_denied(home):
    res = agent("models", "list")
    assert res.returncode == 3 and "--as NAME" in res.stderr
    res = agent("models", "list", "--as", "mallory")
    assert res.returncode == 3 and "not a person listed" in res.stderr


def test_debug_shows_the_traceback(home):
    res = agent("--debug", "models", "show", "no-such-model", "--as", "carol")
    assert res.returncode != 0 and "Traceback" in res.stderr


def test_tool_call_denied_exit_3_and_audited(home):
    res = agent("tool", "call", "rollback_deployment", "--input", '{"name": "m"}', "--as", "carol")
    assert res.returncode == 3
    out = json.loads(res.stdout)
    assert out["error"]["code"] == "permission_denied"
    from agents.runtime import build_runtime
    from core.settings import load_settings

    denied = build_runtime(load_settings()).services.audit.entries(decision="denied")
    assert denied[0]["action"] == "rollback_deployment" and denied[0]["actor"] == "carol"


@pytest.mark.slow
def test_quickstart_non_interactive_then_approve_command_deploys_and_predict_answers(home):
    res = agent("quickstart", "--as", "dana", timeout=300)
    assert res.returncode == 0, res.stderr
    line = next(
        ln.strip()
        for ln in res.stdout.splitlines()
        if ln.strip().startswith("agent approvals approve")
    )
    assert " --as alice --evidence-hash " in line
    show = next(
        ln.strip()
        for ln in res.stdout.splitlines()
        if ln.strip().startswith("agent approvals show")
    )
    shown = agent(*show.split()[1:], "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["evidence_hash"] == line.split()[-1]
    args = line.split()[1:]
    # Without a terminal, an approval needs the hash of the evidence that was reviewed.
    bare = agent(*args[:-2], "--json")
    assert bare.returncode == 2 and "evidence hash" in bare.stderr
    res = agent(*args, "--json", timeout=300)
    try:
        assert res.returncode == 0, res.stderr
        # --json is JSON Lines: the decision, each step, then the outcome ("done").
        events = [json.loads(line) for line in res.stdout.splitlines() if line.strip()]
        assert events[0]["event"] == "decision" and events[-1]["event"] == "done", events
        url = events[-1]["execution"]["gateway_url"]
        import csv

        row = [
            float(v)
            for v in list(csv.reader(open(home / "data" / "breast_cancer_holdout.csv")))[1][:-1]
        ]
        body = httpx.post(f"{url}/predict", json={"features": row}, timeout=10).json()
        assert body["model_version"] == "1" and body["prediction"] in (0, 1)
        for field in ("implementation_status", "accuracy_claim", "validation_status"):
            assert body[field]
        bad = httpx.post(f"{url}/predict", json={"features": [1, 2]}, timeout=10)
        assert bad.status_code == 422 and "expected 30 features" in bad.json()["error"]
        status = agent("deploy", "status", "--as", "carol", "--json")
        assert json.loads(status.stdout)["deployments"][0]["live_versions"] == ["1"]
    finally:
        stop = agent("deploy", "stop", "breast-cancer-classifier", "--as", "alice", "--json")
    assert json.loads(stop.stdout) == {"name": "breast-cancer-classifier", "stopped": True}
    again = agent("deploy", "stop", "breast-cancer-classifier", "--as", "alice", "--json")
    assert json.loads(again.stdout) == {"name": "breast-cancer-classifier", "stopped": False}


def test_deploy_commands_go_through_audited_tools(home):
    res = agent("deploy", "stop", "no-such-model", "--as", "alice")
    assert res.returncode == 4 and "no deployment" in res.stderr
    res = agent("deploy", "stop", "no-such-model", "--as", "carol")
    assert res.returncode == 3 and "deploy:stop" in res.stderr
    res = agent("deploy", "status", "--as", "carol", "--json")
    assert res.returncode == 0 and json.loads(res.stdout) == {"deployments": []}
    from agents.runtime import build_runtime
    from core.settings import load_settings

    entries = [
        e
        for e in build_runtime(load_settings()).services.audit.entries()
        # The home's own first rows (anchor started, policy pinned) are not commands.
        if e["outcome"] != "intent" and e["actor"] not in ("audit-anchor", "policy-pin")
    ]
    assert [(e["action"], e["actor"], e["decision"]) for e in reversed(entries)] == [
        ("stop_gateway", "alice", "allowed"),
        ("stop_gateway", "carol", "denied"),
        ("list_deployments", "carol", "allowed"),
    ]


def test_a_bad_setting_is_named_as_the_user_wrote_it(home):
    """A value in the environment that does not fit is a usage error naming the variable,
    and nothing runs (no state DB is created)."""
    for var, value, words in (
        ("MODELOPS_GATEWAY_WORKERS", "-1", "greater than or equal to 0"),
        ("MODELOPS_GATEWAY_PORT", "abc", "valid integer"),
    ):
        res = agent("models", "list", "--as", "carol", env={var: value})
        assert res.returncode == 2, res.stderr
        assert var in res.stderr and words in res.stderr and repr(value) in res.stderr
        assert "Traceback" not in res.stderr and "pydantic.dev" not in res.stderr
    assert not (home / "state.db").exists()
