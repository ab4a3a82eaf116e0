"""Who may call which tool, for every actor the system knows, computed here from
policies/roles.yaml itself (read with yaml, not through ``Policy``):

- a person holds their role's permissions, plus approvals:decide if marked approver, plus
  policy:admin if listed in ``admins``;
- an agent holds its profile role's permissions intersected with its person's, minus the
  production rights no agent ever holds (``AGENT_NEVER`` below, written out on purpose);
- a workflow principal holds the fixed set written out below, whoever it acts for;
- the internal workflow steps (``tools.base.INTERNAL``) are in no catalog: every person and
  agent gets ``unknown_tool``, even with ``internal=True``; only a workflow principal reaches
  them, and only with the permission.

Every person x profile x catalog tool, every person x tool, every workflow principal x person
x tool are called through the dispatcher with sample arguments. "Allowed" means not refused
by policy: the arguments name objects that do not exist, so an allowed call ends in
not_found (or another tool error), never in permission_denied. Every refusal must be in the
audit log, naming the actor and the person it acted for.

The agent path (the scripted OpenAI-compatible server emits the calls) runs for every profile
and one person of each role: it is the same dispatcher, so the full product adds only time.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fakes.openai_server import ScriptedOpenAIServer
from tests.test_agents_support import agent_system, module_home, sample_args
from tools.base import INTERNAL, Tool, load_catalog

ROOT = Path(__file__).resolve().parent.parent
ROLES = yaml.safe_load((ROOT / "policies" / "roles.yaml").read_text())
CATALOG = dict(load_catalog())
INTERNAL_TOOLS = dict(INTERNAL)
PROFILES = sorted(ROLES["profiles"])
PEOPLE = sorted(ROLES["people"])

# The rights no agent ever holds, whatever its profile or person (the governance rule, kept
# literal here so that a change to policies/rights.py has to be made in this test too).
AGENT_NEVER = frozenset(
    {
        "approvals:decide",
        "policy:admin",
        "deploy:production",
        "deploy:rollback",
        "deploy:stop",
        "validation:automated",
    }
)
# The fixed rights of the automatic workflow steps (literal for the same reason).
WORKFLOWS: dict[str, frozenset[str]] = {
    "promotion-workflow": frozenset(
        {
            "registry:read",
            "evaluation:run",
            "evaluation:read",
            "approvals:read",
            "deploy:read",
            "validation:automated",
            "promotion:open",
        }
    ),
    "approval-executor": frozenset(
        {"registry:read", "approvals:read", "deploy:read", "deploy:production", "deploy:rollback"}
    ),
    "monitoring-policy": frozenset(
        {"registry:read", "approvals:read", "deploy:read", "deploy:rollback"}
    ),
}
# Tools only people call (``@tool(people_only=True)``), and tools that need deploy:production
# on top of their base permission when their arguments name production (``also_requires``):
# literal, so that dropping either declaration has to be made in this test too.
PEOPLE_ONLY = {"start_gateway", "abort_rollout"}
PRODUCTION_TOO = {"start_rollout", "advance_rollout", "start_gateway", "render_deployment"}
# The internal workflow steps there must be (more may be added; none may leave INTERNAL).
KNOWN_INTERNAL = {"open_approval_request", "automated_validation", "monitoring_rollback"}
_TRUST_RANK = {"UNTRUSTED": 0, "OBSERVED": 1, "TRUSTED": 2}


def role_perms(role: str) -> frozenset[str]:
    return frozenset(ROLES["roles"][role].get("permissions") or [])


def person_perms(person: str) -> frozenset[str]:
    spec = ROLES["people"][person]
    perms = set(role_perms(spec["role"]))
    if spec.get("approver") is True:
        perms.add("approvals:decide")
    if person in (ROLES.get("admins") or []):
        perms.add("policy:admin")
    return frozenset(perms)


def agent_perms(profile: str, person: str) -> frozenset[str]:
    return (role_perms(ROLES["profiles"][profile]["role"]) & person_perms(person)) - AGENT_NEVER


def may_launch(person: str, profile: str) -> bool:
    """A person may run a profile no more trusted than their own role."""
    mine = ROLES["roles"][ROLES["people"][person]["role"]].get("trust", "OBSERVED")
    theirs = ROLES["roles"][ROLES["profiles"][profile]["role"]].get("trust", "OBSERVED")
    return _TRUST_RANK[theirs] <= _TRUST_RANK[mine]


# One person of each role for the agent path (the first listed, by name).
PERSON_PER_ROLE = sorted(
    {spec["role"]: name for name, spec in sorted(ROLES["people"].items(), reverse=True)}.values()
)


def _sample_or_none(tool: Tool) -> dict[str, Any] | None:
    try:
        return sample_args(tool)
    except AssertionError:
        return None


# Valid arguments per tool (None: tests/test_agents_support.py cannot build them yet; such a
# tool fails its own tests below, and the others still run).
SAMPLES = {name: _sample_or_none(t) for name, t in {**CATALOG, **INTERNAL_TOOLS}.items()}


def args_for(tool: Tool, *, expected: bool) -> dict[str, Any]:
    args = SAMPLES[tool.name]
    if args is None:
        if expected:
            pytest.fail(
                f"no valid sample arguments for {tool.name}: teach sample_args in "
                "tests/test_agents_support.py its fields, so an allowed call reaches the tool"
            )
        return {}  # a refusal comes before input validation, so any arguments show it
    return args


# Tools whose allowed call does real work with any valid arguments (training two models takes
# seconds). The matrix tests the dispatcher's decision and audit, which come before the body,
# so in this module their body refuses to run once the dispatcher has let the call through.
EXPENSIVE = ("train_reference_models",)


def _not_run(call: Any, args: Any) -> Any:
    from core.errors import Conflict

    raise Conflict("not run by the RBAC matrix (authorized; its body trains models)")


@pytest.fixture(scope="module")
def rt() -> Iterator[Any]:
    import dataclasses

    import tools.base

    with (
        tempfile.TemporaryDirectory() as tmp,
        pytest.MonkeyPatch.context() as mp,
        module_home(Path(tmp)) as runtime,
    ):
        for name in EXPENSIVE:
            if name in tools.base.CATALOG:
                stub = dataclasses.replace(tools.base.CATALOG[name], func=_not_run)
                mp.setitem(tools.base.CATALOG, name, stub)
        # The agent path calls the whole catalog in one run: a policy whose run limit holds it
        # (the bundled 64 is what a real task needs; tests/test_agent_tool_limits.py holds it).
        from tests.helpers.policy import apply_policy_change

        def more_calls(roles: dict) -> None:
            roles["agents"] = {"max_tool_calls_per_reply": 16, "max_tool_calls_per_run": 400}

        apply_policy_change(runtime, roles=more_calls)
        yield runtime


def last_seq(rt: Any) -> int:
    head = rt.services.audit.entries(limit=1)
    return head[0]["seq"] if head else 0


def audited(rt: Any, after: int, actor: Any, tool: str) -> list[dict[str, Any]]:
    """The audit entries for ``tool`` by exactly this actor (and person) since ``after``."""
    return [
        e
        for e in reversed(rt.services.audit.entries(action=tool, after_seq=after, limit=10_000))
        if e["actor"] == actor.name
        and e["actor_kind"] == str(actor.kind)
        and e["on_behalf_of"] == actor.on_behalf_of
    ]


def needs(tool: Tool, args: dict[str, Any]) -> frozenset[str]:
    """Every permission a call of ``tool`` with ``args`` needs: the base one, and the one its
    arguments add (the sample arguments name production wherever a tool has a default)."""
    extra = tool.extra_permission(tool.input_model.model_validate(args)) if args else None
    return frozenset({tool.permission} | ({extra} if extra else set()))


def may_call(actor: Any, tool: Tool, held: frozenset[str]) -> bool:
    """What the dispatcher should decide for ``actor`` holding ``held``."""
    if tool.people_only and str(actor.kind) != "human":
        return False
    return needs(tool, SAMPLES[tool.name] or {}) <= held


def denied_permission(tool: Tool, held: frozenset[str]) -> str:
    """The permission a refusal's audit row names: the base one, else the one added."""
    if tool.permission not in held:
        return tool.permission
    return max(needs(tool, SAMPLES[tool.name] or {}) - {tool.permission}, default=tool.permission)


def check_call(
    rt: Any,
    actor: Any,
    tool: Tool,
    held: frozenset[str],
    *,
    internal: bool = False,
) -> None:
    """Call ``tool`` as ``actor`` holding ``held``; allowed or denied as the rules say, and a
    denial audited (as denied: no tool refuses a permission after the audit said allowed)."""
    expected = may_call(actor, tool, held)
    before = last_seq(rt)
    args = args_for(tool, expected=expected)
    result = rt.dispatcher.call(actor, tool.name, args, internal=internal)
    code = result.error.code if result.error else None
    assert (code != "permission_denied") is expected, (actor.describe(), tool.name, result)
    entries = audited(rt, before, actor, tool.name)
    if expected:
        # The arguments are valid, so the tool itself ran (and found nothing).
        assert code != "invalid_input", result
        assert entries and entries[-1]["decision"] == "allowed", entries
        assert not [e for e in entries if e["decision"] == "denied"], entries
    else:
        assert [(e["decision"], e["outcome"], e["permission"]) for e in entries] == [
            ("denied", "permission_denied", denied_permission(tool, held))
        ], entries
        assert entries[0]["reason"], entries
        # The refusal says nothing about the tool's schema beyond its name.
        assert result.output is None


def check_unknown(rt: Any, actor: Any, name: str, *, internal: bool) -> None:
    before = last_seq(rt)
    result = rt.dispatcher.call(actor, name, SAMPLES[name] or {}, internal=internal)
    assert result.error is not None and result.error.code == "unknown_tool", result
    # Not even the hint (the actor's callable tools) names an internal step.
    for hidden in INTERNAL_TOOLS:
        assert hidden not in result.error.hint, result.error.hint
    entries = audited(rt, before, actor, name)
    assert [(e["decision"], e["outcome"]) for e in entries] == [("denied", "unknown_tool")]


# The rules themselves ---------------------------------------------------------------------
def test_the_engine_computes_the_same_rights_as_roles_yaml(rt) -> None:
    """Policy.permissions agrees with the independent reading for every actor there is."""
    from policies.rbac import WORKFLOW_PRINCIPALS
    from policies.rights import AGENT_NEVER as ENGINE_AGENT_NEVER

    policy = rt.services.policy
    assert ENGINE_AGENT_NEVER == AGENT_NEVER
    assert dict(WORKFLOW_PRINCIPALS) == WORKFLOWS
    for person in PEOPLE:
        assert policy.permissions(policy.human(person)) == person_perms(person), person
        for profile in PROFILES:
            got = policy.permissions(policy.agent(profile, person))
            assert got == agent_perms(profile, person), (profile, person)
        for principal, perms in WORKFLOWS.items():
            assert policy.permissions(policy.workflow(principal, person)) == perms
    # No automatic step decides for people or changes the policy.
    for principal, perms in WORKFLOWS.items():
        assert not perms & {"approvals:decide", "policy:admin"}, principal
    # Only the executor of approved plans moves production forward.
    assert [w for w, perms in WORKFLOWS.items() if "deploy:production" in perms] == [
        "approval-executor"
    ]


def test_the_tools_declare_their_further_rules() -> None:
    assert {n for n, t in CATALOG.items() if t.people_only} == PEOPLE_ONLY

    def on_production(t: Tool) -> dict[str, Any]:
        # The sample arguments, with a version where a tool takes one (a planned render).
        return (
            {"version": "1", **SAMPLES[t.name]}
            if "version" in t.input_model.model_fields
            else SAMPLES[t.name]
        )

    added = {n for n, t in CATALOG.items() if "deploy:production" in needs(t, on_production(t))}
    assert added - {n for n, t in CATALOG.items() if t.permission == "deploy:production"} == (
        PRODUCTION_TOO
    )


def test_every_tool_has_sample_arguments() -> None:
    """The matrix proves an allowed call reaches the tool only with valid arguments."""
    assert not [name for name, args in SAMPLES.items() if args is None]


def test_internal_steps_are_in_no_catalog_an_agent_or_a_person_sees(rt) -> None:
    from agents.profiles import static_catalog

    assert KNOWN_INTERNAL <= set(INTERNAL_TOOLS)
    assert not set(INTERNAL_TOOLS) & set(CATALOG)
    assert not set(INTERNAL_TOOLS) & set(rt.dispatcher.catalog)
    assert not set(INTERNAL_TOOLS) & set(static_catalog())
    policy = rt.services.policy
    actors = [policy.human(p) for p in PEOPLE]
    actors += [policy.agent(prof, p) for prof in PROFILES for p in PEOPLE]
    actors += [policy.workflow(w, p) for w in WORKFLOWS for p in PEOPLE]
    for actor in actors:
        shown = {t.name for t in rt.dispatcher.tools_for(actor)}
        assert not shown & set(INTERNAL_TOOLS), actor.describe()


def test_agent_tool_cli_neither_lists_nor_calls_internal_steps(rt, capsys) -> None:
    from agents.cli.main import main

    def agent(*args: str) -> tuple[int, str]:
        with pytest.raises(SystemExit) as exc:
            main(list(args))
        return int(exc.value.code or 0), capsys.readouterr().out

    code, out = agent("tool", "list", "--all", "--as", "alice")
    assert code == 0 and "list_models" in out
    for name in INTERNAL_TOOLS:
        assert name not in out
    for name in sorted(INTERNAL_TOOLS):
        before = last_seq(rt)
        code, out = agent(
            "tool", "call", name, "--input", json.dumps(SAMPLES[name] or {}), "--as", "alice"
        )
        assert code != 0
        assert json.loads(out)["error"]["code"] == "unknown_tool"
        entries = audited(rt, before, rt.services.policy.human("alice"), name)
        assert [(e["decision"], e["outcome"]) for e in entries] == [("denied", "unknown_tool")]


# Direct calls through the dispatcher --------------------------------------------------------
@pytest.mark.parametrize("tool", sorted(CATALOG))
@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("person", PEOPLE)
def test_direct_call_as_agent(rt, person: str, profile: str, tool: str) -> None:
    actor = rt.services.policy.agent(profile, person)
    check_call(rt, actor, CATALOG[tool], agent_perms(profile, person))


@pytest.mark.parametrize("tool", sorted(CATALOG))
@pytest.mark.parametrize("person", PEOPLE)
def test_direct_call_as_person(rt, person: str, tool: str) -> None:
    actor = rt.services.policy.human(person)
    check_call(rt, actor, CATALOG[tool], person_perms(person))


@pytest.mark.parametrize("tool", sorted(CATALOG))
@pytest.mark.parametrize("person", PEOPLE)
@pytest.mark.parametrize("principal", sorted(WORKFLOWS))
def test_direct_call_as_workflow(rt, principal: str, person: str, tool: str) -> None:
    actor = rt.services.policy.workflow(principal, person)
    check_call(rt, actor, CATALOG[tool], WORKFLOWS[principal])


@pytest.mark.parametrize("internal", [False, True], ids=["plain", "internal"])
@pytest.mark.parametrize("tool", sorted(INTERNAL_TOOLS))
@pytest.mark.parametrize("person", PEOPLE)
def test_internal_step_is_unknown_to_people_and_agents(
    rt, person: str, tool: str, internal: bool
) -> None:
    policy = rt.services.policy
    check_unknown(rt, policy.human(person), tool, internal=internal)
    for profile in PROFILES:
        check_unknown(rt, policy.agent(profile, person), tool, internal=internal)


@pytest.mark.parametrize("tool", sorted(INTERNAL_TOOLS))
@pytest.mark.parametrize("person", PEOPLE)
@pytest.mark.parametrize("principal", sorted(WORKFLOWS))
def test_internal_step_reaches_only_a_workflow_holding_its_permission(
    rt, principal: str, person: str, tool: str
) -> None:
    actor = rt.services.policy.workflow(principal, person)
    # Without internal=True even a workflow principal does not find it.
    check_unknown(rt, actor, tool, internal=False)
    check_call(rt, actor, INTERNAL_TOOLS[tool], WORKFLOWS[principal], internal=True)


# The agent path: the scripted model asks for every tool --------------------------------------
@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("person", PERSON_PER_ROLE)
def test_agent_path(rt, scripted_llm: ScriptedOpenAIServer, person: str, profile: str) -> None:
    """One run per profile and person of each role: the model calls the whole catalog and
    the internal steps (in as few replies as the policy allows); each result is what the
    effective rights say."""
    from core.errors import PermissionDenied

    role = ROLES["profiles"][profile]["role"]
    policy = rt.services.policy
    before = last_seq(rt)
    if not may_launch(person, profile):
        with pytest.raises(PermissionDenied, match="more trusted"):
            agent_system(rt).run(profile, "call everything", user=person)
        runs = audited(rt, before, policy.human(person), "agent_run")
        assert [(e["decision"], e["outcome"]) for e in runs] == [("denied", "permission_denied")]
        assert not scripted_llm.chat_requests
        return
    # Tools without sample arguments fail their own tests; the model calls all the others.
    names = sorted(t for t in {**CATALOG, **INTERNAL_TOOLS} if SAMPLES[t] is not None)
    # In replies the policy's agents: bounds allow (tests/test_agent_tool_limits.py tests
    # them); the whole catalog must fit one run, or this test needs a policy with more.
    bounds = policy.agents
    assert len(names) <= bounds.max_tool_calls_per_run, "raise agents: in this module's policy"
    per_reply = bounds.max_tool_calls_per_reply
    for start in range(0, len(names), per_reply):
        scripted_llm.enqueue_tool_calls(
            [
                {"name": t, "arguments": SAMPLES[t], "id": f"call-{t}"}
                for t in names[start : start + per_reply]
            ]
        )
    scripted_llm.enqueue_text("done")

    result = agent_system(rt).run(profile, "call everything", user=person)

    assert result["status"] == "done", result
    outcome = {c["tool"]: c for c in result["tool_calls"]}
    assert sorted(outcome) == names
    actor = policy.agent(profile, person)
    allowed = agent_perms(profile, person)
    for t in names:
        entries = audited(rt, before, actor, t)
        if t in INTERNAL_TOOLS:
            assert outcome[t]["code"] == "unknown_tool", outcome[t]
            assert [(e["decision"], e["outcome"]) for e in entries] == [("denied", "unknown_tool")]
            continue
        expected = may_call(actor, CATALOG[t], allowed)
        denied = outcome[t]["code"] == "permission_denied"
        assert denied is (not expected), (person, profile, t, outcome[t])
        assert outcome[t]["code"] != "invalid_input", outcome[t]
        if denied:
            assert [(e["decision"], e["outcome"], e["role"]) for e in entries] == [
                ("denied", "permission_denied", role)
            ], entries
        else:
            assert entries and entries[-1]["decision"] == "allowed", entries
    # The model was shown exactly the catalog tools its base permissions allow (plus the
    # hand-off tool; a call the arguments make production is refused when made), and never
    # an internal step.
    shown = {t["function"]["name"] for t in scripted_llm.chat_requests[0].body["tools"]}
    assert shown - {"handoff"} == {t for t in CATALOG if CATALOG[t].permission in allowed}


def test_qa_agent_for_an_architect_cannot_record_a_validation_nor_can_she(rt, capsys) -> None:
    """`agent run qa-tester --as carol`: the profile grants validation:record, carol does
    not hold it, so her agent does not either; and carol calling the tool herself is refused.
    (The model does not exist: were either allowed, the answer would be not_found, exit 4.)"""
    from agents.cli.main import main

    policy = rt.services.policy

    def agent(*args: str) -> tuple[int, str]:
        with pytest.raises(SystemExit) as exc:
            main(list(args))
        return int(exc.value.code or 0), capsys.readouterr().out

    # The offline planner turns this into record_validation (no LLM is configured here).
    request = "validate qa-model v2 on holdout.csv"
    before = last_seq(rt)
    code, out = agent("run", "qa-tester", "--input", request, "--as", "carol", "--json")
    result = json.loads(out)
    assert code == 3, out
    assert [(c["tool"], c["code"]) for c in result["tool_calls"]] == [
        ("record_validation", "permission_denied")
    ]
    entries = audited(rt, before, policy.agent("qa-tester", "carol"), "record_validation")
    assert [(e["decision"], e["outcome"]) for e in entries] == [("denied", "permission_denied")]
    assert "carol (Architect) does not hold validation:record" in entries[0]["reason"]

    args = {"name": "qa-model", "version": "2", "dataset": "holdout.csv"}
    before = last_seq(rt)
    code, out = agent(
        "tool", "call", "record_validation", "--input", json.dumps(args), "--as", "carol"
    )
    assert code == 3, out
    assert json.loads(out)["error"]["code"] == "permission_denied"
    entries = audited(rt, before, policy.human("carol"), "record_validation")
    assert [(e["decision"], e["outcome"]) for e in entries] == [("denied", "permission_denied")]
