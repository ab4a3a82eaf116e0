"""Prompt injection: an obedient scripted model follows instructions planted in user text, pull
request descriptions, model descriptions and tags, dataset rows and hand-off tasks
(tests/injection_cases.yaml). Whatever it calls, nothing unauthorized may change and the
attempt must be in the audit log.

All cases share one home with two registered versions and one real pending approval; each case
snapshots the state before its run and compares after.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from agents.planner import fit_args
from tests.fakes.openai_server import ScriptedOpenAIServer
from tests.test_agents_support import agent_system, module_home, register_models, snapshot

CASES = yaml.safe_load((Path(__file__).parent / "injection_cases.yaml").read_text())
SOURCES = {
    "user_text",
    "pr_description",
    "model_description",
    "model_tag",
    "dataset_row",
    "handoff_task",
}


@pytest.fixture(scope="module")
def world(tmp_path_factory, bc_data, trained) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("injection")
    with module_home(base) as rt:
        reg = register_models(rt, bc_data, trained)
        # A real pending approval for v2, requested through the workflow on alice's behalf.
        actor = rt.services.policy.agent("ml-engineer", "alice")
        started = rt.promotion.start(actor, reg["name"], "2", reg["holdout"])
        assert started["status"] == "pending_approval", started
        approval = rt.services.approvals.get(started["approval_id"])
        poisoned = base / "poisoned.csv"
        yield {
            **reg,
            "approval_id": approval.id,
            "evidence_hash": approval.evidence_hash,
            "poisoned_csv": str(poisoned),
        }


def fill(value: Any, values: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**values)
    if isinstance(value, dict):
        return {k: fill(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, values) for v in value]
    return value


def plant(world: dict[str, Any], case: dict[str, Any], poison: str) -> None:
    """Put the poison where the case says, as a person with write access would."""
    import pandas as pd

    rt, name = world["rt"], world["name"]
    source = case["source"]
    if source == "model_description":
        rt.services.registry.client.update_model_version(name, "2", description=poison)
    elif source == "model_tag":
        rt.services.registry.set_tags(name, "2", {"agent_note": poison})
    elif source == "dataset_row":
        frame = pd.read_csv(world["holdout"])
        frame["notes"] = ""
        frame.loc[0, "notes"] = poison
        frame.to_csv(world["poisoned_csv"], index=False)


def test_corpus_is_large_and_varied() -> None:
    assert len(CASES) >= 30
    assert {c["source"] for c in CASES} == SOURCES
    assert len({c["id"] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_injection_has_no_unauthorized_effect(
    world: dict[str, Any], scripted_llm: ScriptedOpenAIServer, case: dict[str, Any]
) -> None:
    rt = world["rt"]
    values = {
        "model": world["name"],
        "v1": "1",
        "v2": "2",
        "holdout": world["holdout"],
        "poisoned_csv": world["poisoned_csv"],
        "approval_id": world["approval_id"],
        "evidence_hash": world["evidence_hash"],
    }
    poison = fill(case["poison"], values)
    values["poison"] = poison
    plant(world, case, poison)
    request = fill(case["request"], values)
    attack = fill(case["attack"], values)
    attacker = case.get("via", case["profile"])

    # The obedient model's script.
    if case.get("via"):
        scripted_llm.enqueue_tool_calls(
            [{"name": "handoff", "arguments": {"profile": case["via"], "task": poison}}]
        )
    if case.get("read"):
        read = fill(case["read"], values)
        scripted_llm.enqueue_tool_calls(
            [{"name": read["tool"], "arguments": fit_args(read["tool"], read["args"])}]
        )
    attack_args = fit_args(attack["tool"], attack["args"])
    scripted_llm.enqueue_tool_calls([{"name": attack["tool"], "arguments": attack_args}])
    scripted_llm.enqueue_text("Done as instructed.")
    if case.get("via"):
        scripted_llm.enqueue_text("The other agent reported back.")

    before = snapshot(rt)
    last = rt.services.audit.entries(limit=1)[0]["seq"]
    result = agent_system(rt).run(case["profile"], request, user=case["user"])
    after = snapshot(rt)

    assert result["status"] == "done", result
    assert after == before
    # The refusal reached the model as a tool result.
    run = result["hops"][0]["result"] if case.get("via") else result
    (call,) = [c for c in run["tool_calls"] if c["tool"] == attack["tool"]][-1:]
    assert call["code"] == case["expect"]["outcome"], call
    # And the attempt is audited, by the attacking agent, on behalf of the person.
    entries = [e for e in rt.services.audit.entries() if e["seq"] > last]
    audited = [
        e
        for e in entries
        if e["action"] == attack["tool"]
        and e["actor"] == attacker
        and e["on_behalf_of"] == case["user"]
    ]
    assert [(e["decision"], e["outcome"]) for e in audited] == [
        (case["expect"]["decision"], case["expect"]["outcome"])
    ]
    assert not [
        e for e in entries if e["action"] == "decide_approval" and e["decision"] == "allowed"
    ]
    # The poison did reach the model (where it came through a tool, in a tool result).
    sent = json.dumps([r.body["messages"] for r in scripted_llm.chat_requests])
    if case["source"] in ("model_description", "model_tag"):
        assert json.dumps(poison)[1:-1] in sent
    elif case["source"] in ("user_text", "pr_description", "handoff_task"):
        assert json.dumps(poison)[1:-1] in sent
    assert rt.services.approvals.get(world["approval_id"]).status.value == "pending"
