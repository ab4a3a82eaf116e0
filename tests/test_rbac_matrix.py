"""Every profile (and person) x every tool in the catalog, called directly through the
dispatcher and through the agent path (the scripted model emits the call): allowed or denied
exactly as policies/roles.yaml says, computed here from the YAML itself, and every denial audited.

"Allowed" means not refused by policy: the sample arguments name objects that do not exist, so
an allowed call ends in not_found (or another tool error), never in permission_denied.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fakes.openai_server import ScriptedOpenAIServer
from tests.test_agents_support import agent_system, module_home, sample_args
from tools.base import load_catalog

ROOT = Path(__file__).resolve().parent.parent
ROLES = yaml.safe_load((ROOT / "policies" / "roles.yaml").read_text())
CATALOG = load_catalog()
PROFILES = sorted(ROLES["profiles"])
PEOPLE = sorted(ROLES["people"])
# Agents run on behalf of alice: an Engineer may launch every profile (none is more trusted).
ON_BEHALF_OF = "alice"


def expected_allowed(role: str, permission: str, *, human_approver: bool | None) -> bool:
    """roles.yaml read literally: a role grants what it lists; approvals:decide is held only
    by people marked approver (agents never)."""
    if permission == "approvals:decide":
        return bool(human_approver)
    return permission in (ROLES["roles"][role].get("permissions") or [])


@pytest.fixture(scope="module")
def rt() -> Iterator[Any]:
    with tempfile.TemporaryDirectory() as tmp, module_home(Path(tmp)) as runtime:
        yield runtime


def denials(rt: Any, actor: str, tool: str) -> list[dict[str, Any]]:
    return [
        e
        for e in rt.services.audit.entries(action=tool, decision="denied", limit=100_000)
        if e["actor"] == actor and e["outcome"] == "permission_denied"
    ]


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("tool", sorted(CATALOG))
def test_direct_call_as_agent(rt, profile: str, tool: str) -> None:
    role = ROLES["profiles"][profile]["role"]
    expected = expected_allowed(role, CATALOG[tool].permission, human_approver=None)
    actor = rt.services.policy.agent(profile, ON_BEHALF_OF)
    before = len(denials(rt, profile, tool))
    result = rt.dispatcher.call(actor, tool, sample_args(CATALOG[tool]))
    denied = result.error is not None and result.error.code == "permission_denied"
    assert denied is (not expected), result
    assert len(denials(rt, profile, tool)) == before + (1 if denied else 0)
    if not denied:
        assert result.error is None or result.error.code != "invalid_input", result


@pytest.mark.parametrize("person", PEOPLE)
@pytest.mark.parametrize("tool", sorted(CATALOG))
def test_direct_call_as_person(rt, person: str, tool: str) -> None:
    spec = ROLES["people"][person]
    expected = expected_allowed(
        spec["role"], CATALOG[tool].permission, human_approver=spec.get("approver", False)
    )
    result = rt.dispatcher.call(rt.services.policy.human(person), tool, sample_args(CATALOG[tool]))
    denied = result.error is not None and result.error.code == "permission_denied"
    assert denied is (not expected), result


@pytest.mark.parametrize("profile", PROFILES)
def test_agent_path(rt, scripted_llm: ScriptedOpenAIServer, profile: str) -> None:
    """One run per profile: the model asks for every tool in the catalog at once."""
    role = ROLES["profiles"][profile]["role"]
    tools = sorted(CATALOG)
    scripted_llm.enqueue_tool_calls(
        [{"name": t, "arguments": sample_args(CATALOG[t]), "id": f"call-{t}"} for t in tools]
    )
    scripted_llm.enqueue_text("done")
    counts = {t: len(denials(rt, profile, t)) for t in tools}

    result = agent_system(rt).run(profile, "call everything", user=ON_BEHALF_OF)

    assert result["status"] == "done"
    outcome = {c["tool"]: c for c in result["tool_calls"]}
    assert sorted(outcome) == tools
    for t in tools:
        expected = expected_allowed(role, CATALOG[t].permission, human_approver=None)
        denied = outcome[t]["code"] == "permission_denied"
        assert denied is (not expected), (profile, t, outcome[t])
        assert outcome[t]["code"] != "invalid_input", outcome[t]
        assert len(denials(rt, profile, t)) == counts[t] + (1 if denied else 0)
        if denied:
            entry = denials(rt, profile, t)[0]
            assert (entry["role"], entry["on_behalf_of"]) == (role, ON_BEHALF_OF)
    # The model was shown exactly the allowed tools (plus the hand-off tool).
    shown = {t["function"]["name"] for t in scripted_llm.chat_requests[0].body["tools"]}
    allowed = {
        t for t in tools if expected_allowed(role, CATALOG[t].permission, human_approver=None)
    }
    assert shown - {"handoff"} == allowed
