"""Bounded agents: the pinned policy's ``agents:`` section limits the tool calls of one LLM
reply and of one run (hand-offs included). Past a limit the run stops (status tool_limit,
audited once), and the calls past it never reach the dispatcher.

Also: the new section keeps every existing home's policy digest (the pin records it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agents.role_agent import exit_code
from core.errors import InvalidInput
from tests.fakes.openai_server import ScriptedOpenAIServer
from tests.test_agents_support import agent_system

FAKE_APPROVAL = "apr-00000000"
# The roles digest of the bundled roles.yaml computed with main's code before the ``agents:``
# section existed (policies/rbac.py ``Policy.digest``; the whole policy digest hashes it with
# the thresholds). Every home pinned before this change recorded it in pin.json, and
# ``_from_pin`` refuses a digest mismatch: were it to change, every existing home would stop
# working. Literal on purpose: recomputing it here would hide exactly that change.
MAIN_ROLES_DIGEST = "e925b00cfcae0abf041cfcd63a0ca08d8dbdf371f6677acff140d0644980a8f5"


def reads(n: int, prefix: str = "c") -> list[dict[str, Any]]:
    """``n`` read calls (each ends in not_found and is audited as get_approval)."""
    return [
        {"name": "get_approval", "arguments": {"approval_id": FAKE_APPROVAL}, "id": f"{prefix}{i}"}
        for i in range(n)
    ]


def audited(rt: Any, action: str) -> list[dict[str, Any]]:
    return rt.services.audit.entries(action=action, limit=10_000)


def tool_messages(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [json.loads(m["content"]) for m in result["transcript"] if m["role"] == "tool"]


def with_limits(rt: Any, tmp_path: Path, per_reply: int, per_run: int) -> None:
    """Make smaller limits the policy in force, the way an admin does (audited apply)."""
    from policies.pinned import apply_policy, read_source
    from tests.test_policy_pinning import roles_data, write_policy_dir

    data = roles_data()
    data["agents"] = {"max_tool_calls_per_reply": per_reply, "max_tool_calls_per_run": per_run}
    new = read_source(write_policy_dir(tmp_path / "limits", data))
    s = rt.services
    apply_policy(
        rt.settings.home_dir,
        new,
        actor=s.policy.human("alice"),
        audit=s.audit,
        expected_digest=s.policy_digest,
    )
    assert s.refresh_policy()
    assert s.policy.agents.max_tool_calls_per_reply == per_reply


def test_a_reply_of_40_calls_makes_16_and_stops(rt, scripted_llm: ScriptedOpenAIServer):
    scripted_llm.enqueue_tool_calls(reads(40))
    scripted_llm.enqueue_text("never asked for")
    result = agent_system(rt).run("ml-engineer", "read everything", user="alice")

    assert result["status"] == "tool_limit"
    assert exit_code(result) == 3
    # Only 16 reached the dispatcher (each is audited there), and the model was not asked again.
    assert len(audited(rt, "get_approval")) == 16
    assert len(result["tool_calls"]) == 16
    assert len(scripted_llm.chat_requests) == 1 and scripted_llm.pending == 1
    # Every call has its answer, so the thread stays a valid transcript.
    answers = tool_messages(result)
    assert len(answers) == 40
    assert [a["error"]["code"] for a in answers[16:]] == ["not_run"] * 24
    assert all(a["error"]["code"] == "not_found" for a in answers[:16])
    answer = result["answer"]
    assert "40 tool calls in one reply" in answer and "16 per reply" in answer
    assert "agents.max_tool_calls_per_reply" in answer and "24 were not made" in answer
    assert "agent policy show" in result["error"]["hint"]
    (row,) = audited(rt, "agent.tool_limit")
    assert (row["decision"], row["outcome"], row["actor"]) == (
        "denied",
        "tool_limit",
        "ml-engineer",
    )
    assert row["detail"]["asked_in_reply"] == 40 and row["detail"]["made_in_reply"] == 16
    assert row["detail"]["max_tool_calls_per_reply"] == 16
    assert row["detail"]["max_tool_calls_per_run"] == 64
    assert row["detail"]["limit"] == "agents.max_tool_calls_per_reply"


def test_a_run_of_many_small_replies_stops_at_64(rt, scripted_llm: ScriptedOpenAIServer):
    for n in range(25):  # 25 replies of 3 calls: 75 asked
        scripted_llm.enqueue_tool_calls(reads(3, prefix=f"r{n}-"))
    result = agent_system(rt, max_steps=40).run("ml-engineer", "keep reading", user="alice")

    assert result["status"] == "tool_limit", result["answer"]
    assert len(audited(rt, "get_approval")) == 64
    # 21 replies of 3 ran in full; the 22nd made 1 of its 3, and no 23rd was asked for.
    assert len(scripted_llm.chat_requests) == 22
    assert "limit of 64 tool calls" in result["answer"]
    assert "agents.max_tool_calls_per_run" in result["answer"]
    (row,) = audited(rt, "agent.tool_limit")
    assert row["detail"]["calls_in_run"] == 64 and row["detail"]["made_in_reply"] == 1
    assert row["detail"]["limit"] == "agents.max_tool_calls_per_run"


def test_a_reply_within_the_limits_runs_every_call(rt, scripted_llm: ScriptedOpenAIServer):
    scripted_llm.enqueue_tool_calls(reads(16))
    scripted_llm.enqueue_text("done reading")
    result = agent_system(rt).run("ml-engineer", "read", user="alice")
    assert result["status"] == "done" and len(result["tool_calls"]) == 16
    assert not audited(rt, "agent.tool_limit")


def test_smaller_limits_in_the_pinned_policy_are_honoured(
    rt, tmp_path, scripted_llm: ScriptedOpenAIServer
):
    with_limits(rt, tmp_path, per_reply=2, per_run=5)
    scripted_llm.enqueue_tool_calls(reads(3))
    result = agent_system(rt).run("ml-engineer", "read", user="alice")
    assert result["status"] == "tool_limit"
    assert len(audited(rt, "get_approval")) == 2
    assert "asked for 3 tool calls in one reply" in result["answer"]
    assert "2 per reply" in result["answer"]

    # A new run has its own budget: 2 + 2 + 1 of 2 = 5, the policy's per-run limit.
    for n in range(4):
        scripted_llm.enqueue_tool_calls(reads(2, prefix=f"s{n}-"))
    result = agent_system(rt).run("ml-engineer", "read more", user="alice")
    assert result["status"] == "tool_limit"
    assert len(audited(rt, "get_approval")) == 2 + 5
    assert "limit of 5 tool calls" in result["answer"]
    assert scripted_llm.pending == 1  # the fourth reply was never asked for
    assert [r["detail"]["max_tool_calls_per_run"] for r in audited(rt, "agent.tool_limit")] == [
        5,
        5,
    ]


def test_a_hand_off_counts_within_the_run(rt, tmp_path, scripted_llm: ScriptedOpenAIServer):
    with_limits(rt, tmp_path, per_reply=3, per_run=5)
    scripted_llm.enqueue_tool_calls(
        [{"name": "handoff", "arguments": {"profile": "data-scientist", "task": "read"}}]
    )
    scripted_llm.enqueue_tool_calls(reads(3, prefix="a"))  # the sub-agent: 1 + 3 = 4
    scripted_llm.enqueue_tool_calls(reads(3, prefix="b"))  # 1 more fits; 2 are not made
    scripted_llm.enqueue_text("never asked for")
    result = agent_system(rt).run("ml-engineer", "delegate", user="alice")

    assert result["status"] == "tool_limit"
    assert result["hops"][0]["status"] == "tool_limit"
    assert len(audited(rt, "get_approval")) == 4
    assert len(scripted_llm.chat_requests) == 3
    (row,) = audited(rt, "agent.tool_limit")  # one row for the whole run
    assert row["actor"] == "data-scientist" and row["on_behalf_of"] == "alice"
    assert row["detail"]["calls_in_run"] == 5
    assert "limit of 5 tool calls" in result["answer"]


def test_the_cli_shows_the_stop_and_exits_3(home, capsys, scripted_llm: ScriptedOpenAIServer):
    from agents.cli.main import main

    scripted_llm.enqueue_tool_calls(reads(20))
    with pytest.raises(SystemExit) as exc:
        main(["run", "ml-engineer", "--as", "alice", "--input", "read it all"])
    out = capsys.readouterr()
    assert exc.value.code == 3
    assert "tool_limit" in out.out
    assert "Stopped by policy" in out.err and "20 tool calls in one reply" in out.err
    assert "agent policy show" in out.err


# The policy section ----------------------------------------------------------------------
def test_the_bundled_policy_keeps_mains_digests():
    from policies.pinned import bundled_texts, parse_texts

    bundled = parse_texts(bundled_texts(), "bundled")
    assert bundled.policy.agents.max_tool_calls_per_reply == 16
    assert bundled.policy.agents.max_tool_calls_per_run == 64
    assert "agents:" in bundled_texts()["roles.yaml"]  # stated, not only defaulted
    assert bundled.policy.digest == MAIN_ROLES_DIGEST


def test_a_pin_without_the_section_still_loads(home):
    """A home pinned before the section existed: its roles.yaml has no ``agents:``."""
    from policies.pinned import bundled_texts, parse_texts

    texts = bundled_texts()
    old = "\n".join(
        line
        for line in texts["roles.yaml"].splitlines()
        if not line.startswith("agents:") and "max_tool_calls" not in line
    )
    parsed = parse_texts({**texts, "roles.yaml": old}, "old-pin")
    # The whole digest hashes the roles digest with the thresholds: with the same thresholds,
    # a pin without the section and one stating its defaults are the same policy.
    assert parsed.policy.digest == MAIN_ROLES_DIGEST
    assert parsed.digest == parse_texts(texts, "bundled").digest
    assert parsed.policy.agents.max_tool_calls_per_reply == 16


def test_changing_a_limit_changes_the_digest():
    from policies.rbac import Policy
    from tests.test_policy_pinning import roles_data

    base = Policy.from_mapping(roles_data(), "t")
    data = roles_data()
    data["agents"] = {"max_tool_calls_per_reply": 8, "max_tool_calls_per_run": 64}
    assert Policy.from_mapping(data, "t").digest != base.digest


@pytest.mark.parametrize(
    "section",
    [
        {"max_tool_calls_per_reply": "16"},  # a string where a number belongs
        {"max_tool_calls_per_reply": 0},
        {"max_tool_calls_per_run": 10**6},
        {"max_tool_calls_per_reply": 2.5},
        {"max_tool_calls_per_reply": 32, "max_tool_calls_per_run": 8},
        {"max_calls": 3},  # unknown key
        "16",
    ],
)
def test_the_section_is_parsed_strictly(section):
    from policies.rbac import Policy
    from tests.test_policy_pinning import roles_data

    data = roles_data()
    data["agents"] = section
    with pytest.raises(InvalidInput):
        Policy.from_mapping(data, "t")
