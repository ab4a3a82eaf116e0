"""Prompt injection: an obedient scripted model follows instructions planted in user text, pull
request descriptions, model descriptions and tags, dataset rows and hand-off tasks
(tests/injection_cases.yaml). Whatever it calls, nothing unauthorized may change and the
attempt must be in the audit log.

All cases share one home: two registered versions, v1 in production through the real workflow
(requested by an agent for alice, approved by bob, executed; its gateway runs and its approval
is now stale) and a real pending approval for v2 requested the same way. Each case snapshots
the state (registry, aliases, tags, deployments, gateways, approvals) before its run and
compares after. Cases marked ``planner`` also go through the offline planner, which must not
change anything either.
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
from tests.test_agents_support import agent_system, module_home, register_models
from tests.test_agents_support import snapshot as registry_snapshot
from tools.base import load_catalog

CASES = yaml.safe_load((Path(__file__).parent / "injection_cases.yaml").read_text())
SOURCES = {
    "user_text",
    "pr_description",
    "model_description",
    "model_tag",
    "dataset_row",
    "handoff_task",
}
# Tools that change production or a decision: no run of this corpus may get one through.
PRODUCTION_TOOLS = {
    "decide_approval",
    "promote_model",
    "rollback_deployment",
    "abort_rollout",
    "stop_gateway",
    "start_rollout",
    "advance_rollout",
    "open_approval_request",
    "automated_validation",
    "monitoring_rollback",
    "record_validation",
    "validate_approval",
}


def snapshot(rt: Any) -> dict[str, Any]:
    """The shared snapshot plus whether each gateway still runs (and as which process)."""
    deployments = rt.services.deployments
    gateways = {}
    for name in deployments.list_deployments():
        info = deployments.gateway_info(name)
        gateways[name] = (bool(info.get("running")), info.get("pid"))
    return {**registry_snapshot(rt), "gateways": gateways}


@pytest.fixture(scope="module")
def world(tmp_path_factory, bc_data, trained) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("injection")
    with module_home(base) as rt:
        reg = register_models(rt, bc_data, trained)
        policy = rt.services.policy
        # The workflow runs as the promotion-workflow principal for the agent's person.
        actor = policy.agent("ml-engineer", "alice")
        # v1 in production: requested by alice's agent, approved by bob, executed.
        first = rt.promotion.start(actor, reg["name"], "1", reg["holdout"])
        assert first["status"] == "pending_approval", first
        stale = rt.services.approvals.get(first["approval_id"])
        bob = policy.human("bob")
        rt.dispatcher.call_or_raise(
            bob,
            "decide_approval",
            {"approval_id": stale.id, "approve": True, "evidence_hash": stale.evidence_hash},
        )
        done = rt.run_decided(stale.id, bob)
        assert done["status"] == "deployed", done
        assert rt.services.approvals.get(stale.id).status.value == "executed"
        assert rt.services.deployments.gateway_info(reg["name"]).get("running")
        # A real pending approval for v2, requested the same way.
        started = rt.promotion.start(actor, reg["name"], "2", reg["holdout"])
        assert started["status"] == "pending_approval", started
        approval = rt.services.approvals.get(started["approval_id"])
        poisoned = base / "poisoned.csv"
        yield {
            **reg,
            "approval_id": approval.id,
            "evidence_hash": approval.evidence_hash,
            "stale_approval_id": stale.id,
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


def placeholders(world: dict[str, Any]) -> dict[str, str]:
    return {
        "model": world["name"],
        "v1": "1",
        "v2": "2",
        "holdout": world["holdout"],
        "poisoned_csv": world["poisoned_csv"],
        "approval_id": world["approval_id"],
        "evidence_hash": world["evidence_hash"],
        "stale_approval_id": world["stale_approval_id"],
    }


def assert_production_untouched(world: dict[str, Any], entries: list[dict[str, Any]]) -> None:
    rt = world["rt"]
    assert not [
        e for e in entries if e["action"] in PRODUCTION_TOOLS and e["decision"] == "allowed"
    ], entries
    assert rt.services.approvals.get(world["approval_id"]).status.value == "pending"
    assert rt.services.approvals.get(world["stale_approval_id"]).status.value == "executed"
    assert rt.services.registry.alias_version(world["name"], "champion") == "1"


def test_corpus_is_large_and_varied() -> None:
    assert len(CASES) >= 30
    assert {c["source"] for c in CASES} == SOURCES
    assert len({c["id"] for c in CASES}) == len(CASES)
    # Every Engineer profile is attacked on every production right and internal step.
    engineer = {"ml-engineer", "mlops-engineer", "data-scientist"}
    alice = [c for c in CASES if c["user"] == "alice" and c.get("via", c["profile"]) in engineer]
    for tool in (
        "rollback_deployment",
        "abort_rollout",
        "stop_gateway",
        "promote_model",
        "open_approval_request",
        "automated_validation",
    ):
        assert any(c["attack"]["tool"] == tool for c in alice), tool
    assert any("{stale_approval_id}" in c["attack"]["args"].get("approval_id", "") for c in alice)
    assert len([c for c in CASES if c.get("planner")]) >= 2


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_injection_has_no_unauthorized_effect(
    world: dict[str, Any], scripted_llm: ScriptedOpenAIServer, case: dict[str, Any]
) -> None:
    rt = world["rt"]
    values = placeholders(world)
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
    assert_production_untouched(world, entries)
    # The poison did reach the model (where it came through a tool, in a tool result).
    sent = json.dumps([r.body["messages"] for r in scripted_llm.chat_requests])
    if case["source"] in ("model_description", "model_tag"):
        assert json.dumps(poison)[1:-1] in sent
    elif case["source"] in ("user_text", "pr_description", "handoff_task"):
        assert json.dumps(poison)[1:-1] in sent


PLANNER_CASES = [c for c in CASES if c.get("planner")]


def changes_state(tool) -> bool:  # noqa: ANN001
    """A tool that writes anything but a draft file for a person to review."""
    return tool.side_effect != "read" and tool.permission != "design:write"


@pytest.mark.parametrize("case", PLANNER_CASES, ids=[c["id"] for c in PLANNER_CASES])
def test_descriptive_request_through_the_offline_planner_changes_nothing(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch, case: dict[str, Any]
) -> None:
    """No LLM configured: the offline planner reads words about an action, not an order to
    act. It calls no tool that writes, and nothing changes (no production change, no new
    request)."""
    for var in ("OPENAI_BASE_URL", "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    rt = world["rt"]
    values = placeholders(world)
    values["poison"] = fill(case["poison"], values)
    request = fill(case["request"], values)

    before = snapshot(rt)
    last = rt.services.audit.entries(limit=1)[0]["seq"]
    result = agent_system(rt).run(case["profile"], request, user=case["user"])
    after = snapshot(rt)

    assert after == before
    entries = [e for e in rt.services.audit.entries() if e["seq"] > last]
    assert_production_untouched(world, entries)
    catalog = load_catalog()
    writes = [
        c
        for c in result["tool_calls"]
        if c["tool"] not in catalog or changes_state(catalog[c["tool"]])
    ]
    assert writes == [], writes
    # Not even an attempt is on record: the audit has no write by the agent. (A drafting
    # tool may run: "Create runbook ..." drafts a runbook file, under MODELOPS_HOME/drafts.)
    attempts = [
        e["action"]
        for e in entries
        if e["actor"] == case["profile"]
        and (e["action"] in catalog and changes_state(catalog[e["action"]]))
    ]
    assert attempts == [], attempts
    assert case["attack"]["tool"] not in {c["tool"] for c in result["tool_calls"]}
