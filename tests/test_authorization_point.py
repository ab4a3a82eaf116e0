"""One authorization point: a tool that needs deploy:production for some arguments (or a person
as caller) declares it, and the dispatcher refuses before the tool runs, audited as denied.

Before this, advance_rollout / start_rollout / start_gateway / render_deployment refused
inside the tool, after the audit had recorded the call as allowed (outcome permission_denied).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.fakes.models import MODEL

pytestmark = pytest.mark.slow

# (tool, production arguments); "VERSION" is replaced by a registered version.
PRODUCTION_CALLS: list[tuple[str, dict[str, Any]]] = [
    ("advance_rollout", {"name": MODEL, "wait_seconds": 0}),
    ("start_rollout", {"name": MODEL, "version": "VERSION", "strategy": "canary"}),
    ("start_gateway", {"name": MODEL}),
    ("render_deployment", {"name": MODEL, "version": "VERSION"}),
]


def _args(args: dict[str, Any], version: str) -> dict[str, Any]:
    return {k: (version if v == "VERSION" else v) for k, v in args.items()}


def _call(rt: Any, actor: Any, tool: str, args: dict[str, Any]) -> tuple[Any, list[dict]]:
    """The result and every audit row this call wrote for the tool."""
    audit = rt.services.audit
    before = max((e["seq"] for e in audit.entries(limit=1)), default=0)
    res = rt.dispatcher.call(actor, tool, args)
    return res, audit.entries(action=tool, after_seq=before)


def _assert_denied_at_the_door(rt: Any, actor: Any, tool: str, args: dict[str, Any]) -> None:
    res, rows = _call(rt, actor, tool, args)
    assert not res.ok and res.error.code == "permission_denied", (tool, res)
    assert res.error.message.startswith(f"{actor.describe()} may not call {tool}: ")
    assert res.error.hint
    # Exactly one row, the refusal: no intent row, no "allowed" completion after it.
    assert [(r["decision"], r["outcome"]) for r in rows] == [("denied", "permission_denied")]
    assert rows[0]["reason"]


@pytest.mark.parametrize(("tool", "args"), PRODUCTION_CALLS, ids=[t for t, _ in PRODUCTION_CALLS])
def test_an_agent_is_refused_production_by_the_dispatcher(registered, tool, args):
    rt = registered["rt"]
    agent = rt.services.policy.agent("mlops-engineer", "alice")
    _assert_denied_at_the_door(rt, agent, tool, _args(args, registered["versions"][1]))


def test_carol_may_render_the_live_routes_but_not_a_planned_production_version(registered):
    rt = registered["rt"]
    carol = rt.services.policy.human("carol")
    args = _args(dict(PRODUCTION_CALLS)["render_deployment"], registered["versions"][1])
    _assert_denied_at_the_door(rt, carol, "render_deployment", args)
    # Without a version she reaches the tool (nothing is deployed yet: not_found, audited
    # as an allowed call of a read permission).
    res, rows = _call(rt, carol, "render_deployment", {"name": MODEL})
    assert res.error.code == "not_found"
    assert {r["decision"] for r in rows} == {"allowed"}
    # A planned staging render needs no deploy:production either.
    res, rows = _call(rt, carol, "render_deployment", {**args, "source": "staging"})
    assert res.ok and res.output["planned"] is True, res
    assert rows and all(r["decision"] == "allowed" for r in rows)


def _with_a_stager(rt: Any, home: Path, tmp_path: Path) -> Any:
    """Apply a policy with erin, a person who holds deploy:staging but not deploy:production
    (the bundled policy has no such person), and return a runtime on it."""
    from agents.runtime import build_runtime
    from core.settings import load_settings
    from policies.pinned import apply_policy, read_source
    from tests.test_policy_pinning import roles_data, write_policy_dir

    data = roles_data()
    data["roles"]["Stager"] = {
        "grants": "Staging",
        "trust": "OBSERVED",
        "permissions": ["registry:read", "deploy:read", "deploy:staging"],
    }
    data["people"]["erin"] = {"role": "Stager"}
    new = read_source(write_policy_dir(tmp_path / "stager", data))
    s = rt.services
    apply_policy(
        home, new, actor=s.policy.human("alice"), audit=s.audit, expected_digest=s.policy_digest
    )
    return build_runtime(load_settings())


@pytest.mark.parametrize(("tool", "args"), PRODUCTION_CALLS, ids=[t for t, _ in PRODUCTION_CALLS])
def test_a_person_without_deploy_production_is_refused_by_the_dispatcher(
    registered, home, tmp_path, tool, args
):
    rt = _with_a_stager(registered["rt"], home, tmp_path)
    erin = rt.services.policy.human("erin")
    assert rt.services.policy.authorize(erin, "deploy:staging").allowed
    _assert_denied_at_the_door(rt, erin, tool, _args(args, registered["versions"][1]))
    # bob (QATester) holds neither right: refused on the base permission, as before.
    if tool != "render_deployment":
        _assert_denied_at_the_door(rt, rt.services.policy.human("bob"), tool, _args(args, "1"))


EXPECTED_FOR_ALICE = {
    "advance_rollout": "not_found",  # no rollout in progress
    "start_rollout": "approval_required",  # no approval_id
    "start_gateway": "not_found",  # nothing deployed
    "render_deployment": "approval_required",  # no approval_id
}


@pytest.mark.parametrize(("tool", "args"), PRODUCTION_CALLS, ids=[t for t, _ in PRODUCTION_CALLS])
def test_a_person_with_deploy_production_gets_past_authorization(registered, tool, args):
    rt = registered["rt"]
    alice = rt.services.policy.human("alice")
    res, rows = _call(rt, alice, tool, _args(args, registered["versions"][1]))
    assert not res.ok and res.error.code == EXPECTED_FOR_ALICE[tool], res
    assert rows and all(r["decision"] == "allowed" for r in rows)
    assert rows[0]["outcome"] == EXPECTED_FOR_ALICE[tool]
    # The row names the permission the call needed, not only the tool's base one.
    assert rows[0]["permission"] == "deploy:production"


def test_an_agent_on_staging_still_passes_authorization(registered):
    rt = registered["rt"]
    agent = rt.services.policy.agent("mlops-engineer", "alice")
    version = registered["versions"][1]
    staging = {"environment": "staging"}
    res, rows = _call(rt, agent, "advance_rollout", {"name": MODEL, **staging})
    assert res.error.code == "not_found"
    assert rows and all(r["decision"] == "allowed" for r in rows)
    assert rows[0]["permission"] == "deploy:staging"
    start = {"name": MODEL, "version": version, "strategy": "canary", **staging}
    res, rows = _call(rt, agent, "start_rollout", start)
    assert res.error.code == "conflict"  # no baseline on staging yet: the tool ran
    assert rows and all(r["decision"] == "allowed" for r in rows)


def test_start_gateway_is_for_people_on_every_environment(registered):
    rt = registered["rt"]
    policy = rt.services.policy
    staging = {"name": MODEL, "environment": "staging"}
    for actor in (
        policy.agent("mlops-engineer", "alice"),
        policy.workflow("approval-executor", "alice"),
    ):
        if actor.kind == "workflow":
            # The executor does not hold deploy:staging: refused on the base permission.
            res, rows = _call(rt, actor, "start_gateway", staging)
            assert res.error.code == "permission_denied" and rows[0]["decision"] == "denied"
            continue
        _assert_denied_at_the_door(rt, actor, "start_gateway", staging)
    res, rows = _call(rt, policy.human("dana"), "start_gateway", staging)
    assert res.error.code == "not_found" and rows[0]["decision"] == "allowed"


def test_abort_rollout_is_for_people_and_a_workflow_is_refused_at_the_door(registered):
    rt = registered["rt"]
    policy = rt.services.policy
    executor = policy.workflow("approval-executor", "alice")  # holds deploy:rollback
    assert policy.authorize(executor, "deploy:rollback").allowed
    _assert_denied_at_the_door(rt, executor, "abort_rollout", {"name": MODEL})
    res, rows = _call(rt, policy.human("alice"), "abort_rollout", {"name": MODEL})
    assert res.error.code != "permission_denied" and rows[0]["decision"] == "allowed"


def test_llm_listing_goes_by_the_base_permission(rt):
    """An agent is shown the deployment tools (staging is theirs); production is refused at
    the call, with the reason, not hidden."""
    shown = {
        t.name for t in rt.dispatcher.tools_for(rt.services.policy.agent("mlops-engineer", "alice"))
    }
    assert {"start_rollout", "advance_rollout", "render_deployment"} <= shown


def test_the_contract_declares_what_the_tools_used_to_check_inside():
    from tools.base import load_catalog

    catalog = load_catalog()
    for name in ("start_rollout", "advance_rollout", "start_gateway"):
        tool = catalog[name]
        prod = tool.input_model.model_validate(
            {"name": MODEL, "version": "1"} if name == "start_rollout" else {"name": MODEL}
        )
        stag = prod.model_copy(update={"environment": "staging"})
        assert tool.extra_permission(prod) == "deploy:production", name
        assert tool.extra_permission(stag) is None, name
    assert catalog["start_gateway"].people_only and catalog["abort_rollout"].people_only
    render = catalog["render_deployment"]
    assert (
        render.extra_permission(render.input_model(name=MODEL, version="2")) == "deploy:production"
    )
    assert render.extra_permission(render.input_model(name=MODEL)) is None
    assert (
        render.extra_permission(render.input_model(name=MODEL, version="2", source="staging"))
        is None
    )
