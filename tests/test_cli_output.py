"""CLI output and command symmetry: every exit code is documented, prose wraps in a pipe while
tables keep whole ids, and ``deploy stop`` / ``deploy start`` default to the same environment."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.helpers.cli import run_agent

ROOT = Path(__file__).resolve().parents[1]


def _exit_codes_used() -> set[int]:
    """Every status the CLI can exit with: the error classes', `agent run`'s and each literal
    ``ctx.exit(N)`` in agents/cli."""
    from agents.role_agent import NEEDS_LLM_EXIT
    from core.errors import ERROR_CLASSES, ModelOpsError

    codes = {ModelOpsError.exit_code, NEEDS_LLM_EXIT, 0}
    codes |= {cls.exit_code for cls in ERROR_CLASSES.values()}
    for path in (ROOT / "agents" / "cli").glob("*.py"):
        codes |= {int(n) for n in re.findall(r"ctx\.exit\((\d+)\)", path.read_text())}
    return codes


def test_the_readme_lists_every_exit_code():
    text = (ROOT / "README.md").read_text()
    start = text.index("Exit codes:")
    paragraph = text[start : text.index("\n\n", start)]
    listed = {int(n) for n in re.findall(r"(?:: |; )(\d) ", paragraph)}
    used = _exit_codes_used()
    assert {1, 2, 3, 4, 5} <= used  # the collector sees them (a broken walk would pass)
    assert used <= listed, f"undocumented exit codes: {sorted(used - listed)}"


def test_piped_eval_show_wraps_long_text(home, capsys, monkeypatch):
    words = " ".join(f"word{i}" for i in range(800))
    report = {"markdown": f"# Evaluation\n\n{words}\n", "artifacts": ["a.json"], "report": {}}
    monkeypatch.setattr("agents.cli.eval.call", lambda *a, **k: report)
    code, out, err = run_agent(capsys, "eval", "show", "ev-1", "--as", "bob")
    assert code == 0, err
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 100, max(len(line) for line in lines)
    assert " ".join(" ".join(lines).split()).count("word799") == 1  # nothing cut


def test_piped_tables_keep_whole_ids(capsys):
    from agents.cli.common import console, table

    long_id = "run-" + "0123456789abcdef" * 12
    t = table("id", "note")
    t.add_row(long_id, "x")
    console().print(t)
    out = capsys.readouterr().out
    assert any(long_id in line for line in out.splitlines()), out


@pytest.fixture
def stop_calls(monkeypatch):
    calls: list[dict] = []

    def fake(_ctx, _actor, tool, args=None):  # noqa: ANN001, ANN202
        calls.append({"tool": tool, **(args or {})})
        return {"name": args["name"], "stopped": True}

    monkeypatch.setattr("agents.cli.deploy.call", fake)
    monkeypatch.setattr("agents.cli.deploy.human", lambda _ctx, name: name)
    return calls


def test_deploy_stop_defaults_to_production_like_start(home, capsys, stop_calls):
    from agents.cli.deploy import start_cmd, stop_cmd

    def default(cmd):  # noqa: ANN001, ANN202
        return next(p for p in cmd.params if p.name == "environment").callback(
            type("Ctx", (), {"meta": {}})(), None, None
        )

    assert default(stop_cmd) == default(start_cmd) == "production"
    assert run_agent(capsys, "deploy", "stop", "m", "--as", "alice")[0] == 0
    assert run_agent(capsys, "deploy", "stop", "m", "--all", "--as", "alice")[0] == 0
    code, _, err = run_agent(
        capsys, "deploy", "stop", "m", "--all", "--environment", "staging", "--as", "alice"
    )
    assert code == 2 and "not both" in err
    assert [c["environment"] for c in stop_calls] == ["production", "all"]


def test_stop_gateway_tool_defaults_to_production():
    from tools.deployment_tools import StopGatewayInput

    assert StopGatewayInput(name="m").environment == "production"
    assert StopGatewayInput(name="m", environment="all").environment == "all"


@pytest.mark.slow
def test_deploy_stop_leaves_staging_running_unless_asked(registered, capsys):
    rt, name = registered["rt"], registered["name"]
    dana = rt.services.policy.human("dana")
    rt.dispatcher.call_or_raise(
        dana, "deploy_to_staging", {"name": name, "version": registered["versions"][0]}
    )
    deployments = rt.services.deployments
    assert deployments.gateway_info(name, "staging").get("running")
    code, _, err = run_agent(capsys, "deploy", "stop", name, "--as", "alice")
    assert code == 4 and "no deployment on production" in err, err
    assert deployments.gateway_info(name, "staging").get("running")
    code, out, err = run_agent(capsys, "deploy", "stop", name, "--all", "--as", "alice", "--json")
    assert code == 0 and json.loads(out)["stopped"] is True, err
    assert not deployments.gateway_info(name, "staging").get("running")
