"""Every command that prints data takes --json and prints JSON; piped tables keep ids whole."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from agents.cli.main import cli
from tests.fakes.gateway import LABELS, fake_gateway  # noqa: F401  (fixture)


def agent(*args: str) -> str:
    res = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.stdout


def agent_json(*args: str) -> dict:
    return json.loads(agent(*args, "--json"))


def test_tool_list_json(home):
    mine = agent_json("tool", "list", "--as", "carol")
    names = {t["name"] for t in mine["tools"]}
    assert "list_models" in names and "rollback_deployment" not in names
    assert set(mine["tools"][0]) == {"name", "permission", "side_effect", "description"}
    every = agent_json("tool", "list", "--all", "--as", "carol")
    assert names < {t["name"] for t in every["tools"]}
    assert not {"open_approval_request", "automated_validation"} & {
        t["name"] for t in every["tools"]
    }


def test_tool_call_json(home):
    out = agent_json("tool", "call", "list_models", "--as", "carol")
    assert out == {"ok": True, "tool": "list_models", "output": {"models": []}}


def test_workflow_list_json(home):
    from agents.cli.workflow import WORKFLOWS

    out = agent_json("workflow", "list")
    assert [(w["name"], w["description"]) for w in out["workflows"]] == list(WORKFLOWS.items())
    assert {"ml-model-evaluation", "promotion", "mlops-deployment"} <= set(WORKFLOWS)


def test_predict_json_and_human(home, fake_gateway):  # noqa: F811
    row = json.dumps({"features": [1.0, 2.0, 3.0]})
    out = agent_json("predict", "fake-model", "--input", row, "--as", "alice")
    assert out == {**LABELS, "prediction": 1, "probabilities": [0.25, 0.75]}
    text = agent("predict", "fake-model", "--input", row, "--as", "alice")
    assert "fake-model v3 (revision 7)" in text and "PASSED" in text
    assert "0.2500, 0.7500" in text
    batch = json.dumps({"features": [[1.0, 2.0], [3.0, 4.0]]})
    assert agent_json("predict", "fake-model", "--input", batch, "--as", "alice")["prediction"] == [
        1,
        1,
    ]
    assert fake_gateway.requests[-1] == {"features": [[1.0, 2.0], [3.0, 4.0]]}


@pytest.mark.parametrize(
    "args",
    [("models", "list"), ("approvals", "list"), ("deploy", "status"), ("whoami",)],
)
def test_read_commands_print_json(home, args):
    json.loads(agent(*args, "--as", "carol", "--json"))


def test_piped_tables_keep_long_names_whole(rt):
    long_name = "a-very-long-model-name-" + "x" * 90
    rt.services.registry.client.create_registered_model(long_name)
    text = agent("models", "list", "--as", "carol")
    assert any(long_name in line for line in text.splitlines())
    assert "…" not in text
    listed = agent_json("models", "list", "--as", "carol")["models"]
    assert [m["name"] for m in listed] == [long_name]


def test_chat_json_prints_one_result_per_line_and_nothing_else(home):
    lines = "list approvals\nlist models\n/exit\n"
    res = CliRunner().invoke(
        cli, ["chat", "ml-engineer", "--as", "dana", "--json"], input=lines, catch_exceptions=False
    )
    assert res.exit_code == 0, res.output
    out = [json.loads(line) for line in res.stdout.splitlines()]  # nothing but JSON lines
    assert len(out) == 2
    assert [c["tool"] for c in out[0]["tool_calls"]] == ["list_approvals"]
    assert [c["tool"] for c in out[1]["tool_calls"]] == ["list_models"]
    assert out[0]["thread_id"] == out[1]["thread_id"]  # one conversation


def test_deploy_stop_json_says_what_it_did(home):
    res = CliRunner().invoke(cli, ["deploy", "stop", "nothing-here", "--as", "alice", "--json"])
    assert res.exit_code != 0  # no such deployment: an error, not a claimed success
    assert "stopped" not in res.stdout  # (a real stop's JSON: tests/test_cli.py)
