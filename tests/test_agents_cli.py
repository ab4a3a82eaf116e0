"""`agent run`, `agent chat` and `agent agents list` through the real entry point (exit codes,
output, threads), with the scripted server or the offline planner."""

from __future__ import annotations

import io
import json

import pytest

from agents.cli.main import main
from tests.fakes.openai_server import ScriptedOpenAIServer


def agent(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out, out.err


def test_help_lists_the_agent_commands(capsys) -> None:
    code, out, _ = agent(capsys, "--help")
    assert code == 0
    for command in ("run", "chat", "agents"):
        assert f"  {command} " in out


def test_agents_list(home, capsys) -> None:
    code, out, _ = agent(capsys, "agents", "list", "--json")
    assert code == 0
    profiles = {p["profile"]: p for p in json.loads(out)}
    assert profiles["qa-tester"]["role"] == "QATester"
    assert profiles["qa-tester"]["trust"] == "OBSERVED"
    assert "record_validation" in profiles["qa-tester"]["tools"]
    assert "decide_approval" not in profiles["ml-engineer"]["tools"]
    code, out, _ = agent(capsys, "agents", "list")
    assert code == 0 and "architect" in out and "TRUSTED" in out


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--input", '{"query": "x"'], 2, "is not valid JSON"),
        (["--input", '{"prompt": "x"}'], 2, "unrecognized input keys: prompt"),
        (["--input", '{"workflow": "teleport"}'], 2, "unknown workflow"),
        (["--input", "list approvals", "--as", "mallory"], 3, "not a person listed"),
        (["--input", "list approvals"], 3, "no identity given"),
    ],
)
def test_run_refuses_bad_input_and_unknown_people(
    home, capsys, args: list[str], code: int, message: str
) -> None:
    got, _, err = agent(capsys, "run", "architect", *args)
    assert got == code
    assert message in err


def test_run_offline_exit_codes_follow_the_tool_result(home, capsys) -> None:
    ok, out, _ = agent(capsys, "run", "architect", "--input", "list approvals", "--as", "carol")
    assert ok == 0 and "No approval requests." in out and "offline-planner" in out
    denied, out, _ = agent(
        capsys,
        "run",
        "architect",
        "--as",
        "carol",
        "--input",
        '{"tool": "rollback_deployment", "args": {"name": "m"}}',
    )
    assert denied == 3 and "permission_denied" in out
    missing, out, _ = agent(
        capsys,
        "run",
        "qa-tester",
        "--as",
        "bob",
        "--input",
        '{"tool": "get_approval", "args": {"approval_id": "apr-00000000"}}',
    )
    assert missing == 4 and "not_found" in out
    launch, _, err = agent(capsys, "run", "ml-engineer", "--input", "x", "--as", "carol")
    assert launch == 3 and "more trusted profile" in err


def test_run_offline_says_when_an_llm_is_needed(home, capsys) -> None:
    code, out, _ = agent(
        capsys, "run", "ml-engineer", "--as", "alice", "--input", '{"query": "write a poem"}'
    )
    assert code == 5  # the offline planner did not act (docs/agents.md)
    assert "no LLM endpoint is configured" in out
    assert "OPENAI_BASE_URL" in out and "MODELOPS_LLM_MODEL" in out


def test_run_with_the_llm_and_json_output(home, capsys, scripted_llm: ScriptedOpenAIServer):
    scripted_llm.enqueue_tool_calls([{"name": "list_approvals", "arguments": {}}])
    scripted_llm.enqueue_text("There are no approval requests.")
    code, out, _ = agent(
        capsys,
        "run",
        "qa-tester",
        "--as",
        "bob",
        "--json",
        "--thread",
        "cli-1",
        "--input",
        '{"query": "Any approvals waiting?"}',
    )
    assert code == 0
    result = json.loads(out)
    assert result["status"] == "done"
    assert result["answer"] == "There are no approval requests."
    assert result["thread_id"] == "cli-1"
    assert [c["tool"] for c in result["tool_calls"]] == ["list_approvals"]
    assert result["usage"]["calls"] == 2
    assert scripted_llm.chat_requests[0].body["messages"][-1]["content"] == "Any approvals waiting?"
    # Plain text continues the same thread.
    scripted_llm.enqueue_text("You asked about approvals.")
    code, out, _ = agent(
        capsys, "run", "qa-tester", "--as", "bob", "--thread", "cli-1", "--input", "And now?"
    )
    assert code == 0 and "You asked about approvals." in out
    assert "[1] qa-tester -> list_approvals: ok" not in out  # this run used no tool
    assert len(scripted_llm.chat_requests[-1].body["messages"]) == 6


@pytest.mark.parametrize(
    ("failure", "message"),
    [("http500", "HTTP 500"), ("http429", "HTTP 429"), ("slow", "timed out"), ("down", "refused")],
)
def test_run_reports_endpoint_failures_with_exit_1(
    home, capsys, monkeypatch, scripted_llm: ScriptedOpenAIServer, failure: str, message: str
) -> None:
    scripted_llm.enqueue_tool_calls([{"name": "list_approvals", "arguments": {}}])
    if failure == "http500":
        scripted_llm.enqueue_error(500, "the model crashed")
    elif failure == "http429":
        scripted_llm.enqueue_error(429, "slow down")
    elif failure == "slow":
        scripted_llm.enqueue_delay(2.0, "too late")
    else:
        from tests.fakes.openai_server import unused_local_port

        monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{unused_local_port()}/v1")
    code, out, err = agent(
        capsys,
        "run",
        "qa-tester",
        "--as",
        "bob",
        "--thread",
        "t-fail",
        "--llm-timeout",
        "0.5",
        "--llm-retries",
        "0",
        "--input",
        "list approvals",
    )
    assert code == 1
    assert "llm_error" in out
    assert message in err and "Hint:" in err
    assert "Transcript so far (kept in the thread)" in err
    assert "user: list approvals" in err
    if failure != "down":
        assert "assistant: calls list_approvals" in err


def test_chat_streams_and_keeps_history(
    home, capsys, monkeypatch, scripted_llm: ScriptedOpenAIServer
) -> None:
    scripted_llm.enqueue_stream_text(["Hello ", "Bob."])
    scripted_llm.enqueue_tool_calls([{"name": "list_approvals", "arguments": {}}])
    scripted_llm.enqueue_stream_text(["None ", "pending."])
    monkeypatch.setattr("sys.stdin", io.StringIO("hi\n\nanything pending?\n/exit\n"))
    code, out, _ = agent(capsys, "chat", "qa-tester", "--as", "bob", "--thread", "c-1")
    assert code == 0
    assert "Hello Bob." in out and "None pending." in out
    assert "qa-tester -> list_approvals" in out
    assert out.count("Hello Bob.") == 1  # streamed once, not printed again
    requests = scripted_llm.chat_requests
    assert all(r.body["stream"] is True for r in requests)
    roles = [m["role"] for m in requests[-1].body["messages"]]
    assert roles == ["system", "user", "assistant", "user", "assistant", "tool"]

    # A new session on the same thread continues the conversation.
    scripted_llm.enqueue_stream_text(["Welcome back."])
    monkeypatch.setattr("sys.stdin", io.StringIO("still there?\n"))
    code, out, _ = agent(capsys, "chat", "qa-tester", "--as", "bob", "--thread", "c-1")
    assert code == 0 and "Welcome back." in out
    assert len(scripted_llm.chat_requests[-1].body["messages"]) == 8


def test_chat_offline_and_bad_lines(home, capsys, monkeypatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO('list approvals\n{"tool": \n/exit\n'))
    code, out, _ = agent(capsys, "chat", "architect", "--as", "carol")
    assert code == 0
    assert "offline planner" in out
    assert "No approval requests." in out
    assert "looks like JSON but is not valid" in out


def test_chat_decides_each_line_under_the_policy_in_force(home, capsys, monkeypatch) -> None:
    """A policy applied while a chat runs (by another process) holds from the next line: dana,
    now a QATester, may no longer talk to the Engineer profile."""
    import yaml

    from agents.runtime import build_runtime
    from core.settings import load_settings
    from policies.pinned import apply_policy, load_pinned, parse_texts

    def demote_dana() -> None:
        s = build_runtime(load_settings()).services
        pinned = load_pinned(s.settings.home_dir, audit=s.audit)
        data = yaml.safe_load(pinned.current.texts["roles.yaml"])
        data["people"]["dana"]["role"] = "QATester"
        new = parse_texts({**pinned.current.texts, "roles.yaml": yaml.safe_dump(data)}, "test")
        alice = s.policy.human("alice", authenticated=True)
        apply_policy(
            s.settings.home_dir, new, actor=alice, audit=s.audit, expected_digest=pinned.digest
        )

    class Stdin:
        lines = ["list approvals\n", "list approvals\n", "/exit\n"]

        def readline(self) -> str:
            if len(self.lines) == 2:  # between the first and the second line
                demote_dana()
            return self.lines.pop(0) if self.lines else ""

    monkeypatch.setattr("sys.stdin", Stdin())
    code, out, err = agent(capsys, "chat", "ml-engineer", "--as", "dana")
    assert out.count("No approval requests.") == 1  # the first line, under the old policy
    assert code == 3, (code, out, err)
    assert "ml-engineer" in err and "dana" in err
