"""The offline planner: input shapes, the documented plain requests, the rule that it never
acts on a description, dry runs, and runs without an LLM on a fresh MODELOPS_HOME."""

from __future__ import annotations

import json

import pytest

from agents.cli.main import main
from agents.planner import (
    NEEDS_LLM,
    OPTIMIZE_NEEDS_MODEL,
    OPTIMIZE_UNAVAILABLE,
    OfflinePlanner,
    fit_args,
    needs_llm,
    parse_request,
    plan_text,
)
from agents.role_agent import NEEDS_LLM_EXIT, exit_code
from core.errors import InvalidInput
from tests.test_agents_support import agent_system, snapshot

D = "data/holdout.csv"
MODEL = "breast-cancer-classifier"

# Requests that describe, ask or draft: none may call a tool that writes, whatever they name.
DESCRIPTIVE = [
    f"Draft a runbook: how to roll back {MODEL}",
    "Create runbook for model rollback procedure",
    f"How do I roll back {MODEL} to v1?",
    f"how to promote {MODEL} v2 on the holdout",
    f"What is a rollback of {MODEL}?",
    f"Explain how to evaluate {MODEL} v2 on the holdout",
    f"Describe how you would validate {MODEL} v2 on logged:holdout",
    f"Write a plan to compare {MODEL} v1 and v2 on the holdout",
    f"Can you roll back {MODEL} to v1?",
    f"Roll back {MODEL} to v1?",
    f"Create a doc about promoting {MODEL} v2 on the holdout",
    f"Document the rollback of {MODEL}",
    f"Tell me about {MODEL} v2 and how to roll back",
]


def _writes() -> set[str]:
    """Tools that change state. The drafting tools (design:write) only write draft files
    for a person to review, and a drafting request may call them (tests below check which)."""
    from tools.base import load_catalog

    return {
        n
        for n, t in load_catalog().items()
        if t.side_effect != "read" and t.permission != "design:write"
    }


def allowed_writes(rt, after: int = 0) -> list[dict]:
    """Audit entries of write tools that the dispatcher let through (after ``after``)."""
    writes = _writes()
    return [
        e
        for e in rt.services.audit.entries(decision="allowed")
        if e["action"] in writes and e["seq"] > after
    ]


def last_seq(rt) -> int:
    entries = rt.services.audit.entries(limit=1)
    return entries[0]["seq"] if entries else 0


def agent(capsys, *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    return int(exc.value.code or 0), capsys.readouterr().out


# Input shapes ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "kind", "message"),
    [
        ('{"query": "list models"}', "text", "list models"),
        ("  list models ", "text", "list models"),
        ({"query": "x"}, "text", "x"),
        ('{"tool": "list_models"}', "tool", '{"tool": "list_models", "args": {}}'),
        (
            '{"workflow": "promotion", "input": {"name": "m"}}',
            "workflow",
            '{"workflow": "promotion", "input": {"name": "m"}}',
        ),
    ],
)
def test_parse_request_shapes(raw, kind: str, message: str) -> None:
    request = parse_request(raw)
    assert (request.kind, request.message) == (kind, message)


@pytest.mark.parametrize(
    "raw",
    ["", "{not json", '{"query": ""}', '{"tool": 3}', '{"tool": "x", "args": []}', "{}"],
)
def test_parse_request_refuses(raw: str) -> None:
    with pytest.raises(InvalidInput):
        parse_request(raw)


# Plans ----------------------------------------------------------------------------------------
_STATUS = [
    ("get_model", {"name": "churn"}),
    ("list_deployments", {}),
    ("list_approvals", {"status": "pending"}),
]


@pytest.mark.parametrize(
    ("text", "calls"),
    [
        ("list models", [("list_models", {})]),
        ("Show all registered models", [("list_models", {})]),
        ("show model churn v2", [("get_model", {"name": "churn", "version": "2"})]),
        ("describe churn-classifier", [("get_model", {"name": "churn-classifier"})]),
        (
            "Review churn v2",
            [("get_model", {"name": "churn", "version": "2"}), ("list_approvals", {})],
        ),
        (
            f"evaluate churn v2 on {D}",
            [("evaluate_model", {"name": "churn", "version": "2", "dataset": D})],
        ),
        (
            f"Evaluate churn-classifier v2 on {D} and promote it if it beats the champion",
            # The promotion is a later turn, taken only if the evaluation says "better".
            [("evaluate_model", {"name": "churn-classifier", "version": "2", "dataset": D})],
        ),
        (
            "Compare churn v1 and v2 on the holdout",
            [
                ("evaluate_model", {"name": "churn", "dataset": "logged:holdout", "version": "1"}),
                ("evaluate_model", {"name": "churn", "dataset": "logged:holdout", "version": "2"}),
            ],
        ),
        (
            f"validate churn v2 on {D} target label",
            [
                (
                    "record_validation",
                    {"name": "churn", "version": "2", "dataset": D, "label_column": "label"},
                )
            ],
        ),
        (
            f"request promotion of churn v2 on {D}",
            [("request_promotion", {"name": "churn", "version": "2", "dataset": D})],
        ),
        (
            f"promote churn v2 on {D} as a canary 10, 50, 100",
            [
                (
                    "request_promotion",
                    {
                        "name": "churn",
                        "version": "2",
                        "dataset": D,
                        "plan": {"strategy": "canary", "steps": [10.0, 50.0, 100.0]},
                    },
                )
            ],
        ),
        ("deployment status of churn", _STATUS),
        ("Show the deployment status of churn", _STATUS),
        ("what is the status of churn?", _STATUS),
        ("is churn deployed", _STATUS),
        (
            "Roll back churn to v1 because latency is high",
            # Agents request; people decide. Never rollback_deployment.
            [
                (
                    "request_rollback",
                    {"name": "churn", "reason": "latency is high", "to_version": "1"},
                )
            ],
        ),
        (
            "please roll back churn",
            [
                (
                    "request_rollback",
                    {"name": "churn", "reason": "requested: please roll back churn"},
                )
            ],
        ),
        ("list pending approvals", [("list_approvals", {"status": "pending"})]),
    ],
)
def test_documented_plain_requests(text: str, calls: list) -> None:
    assert plan_text(text, available=set()).calls == calls


def test_a_write_plan_names_the_model_and_versions_to_check_first() -> None:
    plan = plan_text("Compare churn v1 and v2 on the holdout", available=set())
    assert (plan.model, plan.versions, plan.production) == ("churn", ("1", "2"), False)
    plan = plan_text("Roll back churn to v1 because latency is high", available=set())
    assert (plan.model, plan.versions, plan.production) == ("churn", ("1",), True)


@pytest.mark.parametrize("text", DESCRIPTIVE)
def test_descriptions_questions_and_drafts_plan_no_write(text: str) -> None:
    writes = _writes()
    plan = plan_text(text, available=set())
    assert not [name for name, _ in plan.calls if name in writes]
    assert plan.promote_if_better is None


@pytest.mark.parametrize(
    ("text", "verb"),
    [
        (f"evaluate churn on {D}", "evaluate churn vN"),
        (f"validate churn on {D}", "validate churn vN"),
        (f"promote churn on {D}", "promote churn vN"),
        ("evaluate churn v2", "evaluate churn v2 on PATH"),
        ("compare churn v1 and v2", "compare churn v1 and v2 on PATH"),
    ],
)
def test_a_write_without_its_version_or_data_says_how_to_ask(text: str, verb: str) -> None:
    plan = plan_text(text, available=set())
    assert plan.calls == [] and verb in plan.message and "Nothing was run" in plan.message


def test_drafting_needs_the_design_tools_or_an_llm_and_invents_no_tool() -> None:
    plan = plan_text(
        "Create runbook for model rollback procedure", available=set(), design_tools=[]
    )
    assert plan.calls == []
    assert "design tools" in plan.message and "LLM" in plan.message
    assert "this build has none" in plan.message
    with_tool = plan_text("Draft a runbook for churn", design_tools=["write_design_doc"])
    assert "write_design_doc" in with_tool.message and with_tool.calls == []


def test_needs_llm_lists_the_phrasings_for_the_profile() -> None:
    architect = needs_llm({"list_models", "get_model", "get_deployment", "list_approvals"})
    assert "'review NAME [vN]'" in architect and "'list models'" in architect
    assert "roll back" not in architect and "evaluate NAME" not in architect
    assert "'roll back NAME [to vN] because REASON'" in NEEDS_LLM


def test_optimize_is_planned_only_when_the_tool_exists() -> None:
    seed = "Optimize model inference latency to under 50ms"
    assert plan_text(seed, available=set()).message == OPTIMIZE_UNAVAILABLE
    assert "#4" in OPTIMIZE_UNAVAILABLE
    assert plan_text(seed, available={"optimize_model"}).message == OPTIMIZE_NEEDS_MODEL
    plan = plan_text(f"optimize churn v3 for size on {D}", available={"optimize_model"})
    assert plan.calls == [
        ("optimize_model", {"name": "churn", "version": "3", "goal": "size", "dataset": D})
    ]


@pytest.mark.parametrize("text", ["show me everything", "delete all models"])
def test_anything_else_needs_an_llm(text: str) -> None:
    plan = plan_text(text, available=set())
    assert plan.calls == [] and plan.message == NEEDS_LLM


def test_fit_args_follows_the_tool_schema() -> None:
    from tools.base import load_catalog

    props = load_catalog()["evaluate_model"].json_schema()["properties"]
    fitted = fit_args("evaluate_model", {"name": "m", "version": "1", "dataset": D})
    name = "dataset" if "dataset" in props else "evaluation_dataset"
    assert fitted[name] == D
    assert fit_args("no_such_tool", {"dataset": D}) == {"dataset": D}


# The planner's turns (no home) ----------------------------------------------------------------
def _turn(phase: str, name: str, result: dict, i: int = 0) -> list[dict]:
    call_id = f"plan_0_{phase}_{i}"
    call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": "{}"}}
    return [
        {"role": "assistant", "content": "Plan", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call_id, "content": json.dumps(result)},
    ]


def _evaluated(comparison: dict | None) -> list[dict]:
    output = {
        "name": "churn",
        "version": "2",
        "n": 10,
        "metrics": {"f1": 0.9},
        "dataset": {"path": "h.csv"},
        "champion_version": "1" if comparison else None,
        "comparison": comparison,
    }
    return [
        {
            "role": "user",
            "content": f"Evaluate churn v2 on {D} and promote it if it beats the champion",
        },
        *_turn("check", "get_model", {"ok": True, "output": {"name": "churn", "versions": []}}),
        *_turn("do", "evaluate_model", {"ok": True, "output": output}),
    ]


def test_the_first_turn_checks_the_model_before_any_write() -> None:
    reply = OfflinePlanner().respond(
        [{"role": "user", "content": "Roll back churn to v1 because latency is high"}], []
    )
    assert [c.name for c in reply.tool_calls] == ["get_model", "get_deployment"]
    assert "request_rollback" in reply.content and "check before any write" in reply.content


def test_an_unknown_model_gets_the_known_models_and_nothing_else() -> None:
    missing = {"ok": False, "error": {"code": "not_found", "message": "no model named 'x'"}}
    known = {
        "ok": True,
        "output": {"models": [{"name": "churn", "latest_version": 2, "versions": 2}]},
    }
    messages = [
        {"role": "user", "content": "evaluate x v1 on the holdout"},
        *_turn("check", "get_model", missing),
    ]
    reply = OfflinePlanner().respond(messages, [])
    assert [c.name for c in reply.tool_calls] == ["list_models"]
    reply = OfflinePlanner().respond([*messages, *_turn("known", "list_models", known)], [])
    assert reply.tool_calls == [] and "Known models: churn" in reply.content


@pytest.mark.parametrize(
    ("comparison", "promotes"),
    [
        (None, True),  # no champion yet: nothing to beat
        ({"verdict": "better", "reason": "f1 CI above 0"}, True),
        ({"verdict": "inconclusive", "reason": "f1 CI includes 0"}, False),
        ({"verdict": "worse", "reason": "f1 CI below 0"}, False),
    ],
)
def test_promote_if_it_beats_the_champion_follows_the_comparison_verdict(comparison, promotes):
    plan = plan_text(
        f"Evaluate churn v2 on {D} and promote it if it beats the champion", available=set()
    )
    assert plan.promote_if_better == {"name": "churn", "version": "2", "dataset": D}
    reply = OfflinePlanner().respond(_evaluated(comparison), [])
    if promotes:
        assert [c.name for c in reply.tool_calls] == ["request_promotion"]
        assert "request_promotion" in reply.content  # the plan line comes before the write
    else:
        assert reply.tool_calls == [] and "Not requesting promotion" in reply.content
        assert comparison["verdict"] in reply.content


# Runs on a fresh home (no LLM configured) -------------------------------------------------------
def test_structured_tool_runs_through_the_dispatcher(rt) -> None:
    result = agent_system(rt).run("qa-tester", {"tool": "list_approvals"}, user="bob")
    assert result["model"] == "offline-planner"
    assert result["status"] == "done" and result["answer"] == "No approval requests."
    (entry,) = rt.services.audit.entries(action="list_approvals")
    assert (entry["actor"], entry["on_behalf_of"]) == ("qa-tester", "bob")


def test_structured_input_never_reaches_the_llm(rt, scripted_llm) -> None:
    result = agent_system(rt).run(
        "architect",
        '{"tool": "promote_model", "args": {"approval_id": "apr-00000000"}}',
        user="carol",
    )
    assert result["tool_calls"][0]["code"] == "permission_denied"
    assert scripted_llm.chat_requests == []


def test_unsupported_request_runs_nothing(rt) -> None:
    result = agent_system(rt).run("ml-engineer", "delete all models", user="alice")
    assert result["status"] == "unsupported" and exit_code(result) == NEEDS_LLM_EXIT
    assert result["tool_calls"] == [] and "OPENAI_BASE_URL" in result["answer"]
    assert "Offline you can ask:" in result["answer"]
    assert rt.services.audit.entries(decision="allowed")[0]["action"] == "agent_run"


def test_descriptive_phrasings_call_no_write_tool(registered) -> None:
    rt = registered["rt"]
    system = agent_system(rt)
    before, state = last_seq(rt), snapshot(rt)
    for text in DESCRIPTIVE:
        for profile, user in (("mlops-engineer", "alice"), ("architect", "carol")):
            result = system.run(profile, text, user=user)
            assert not [c for c in result["tool_calls"] if c["tool"] in _writes()], text
            assert exit_code(result) in (0, NEEDS_LLM_EXIT), (text, result["answer"])
    assert allowed_writes(rt, before) == []
    assert snapshot(rt) == state


def test_the_runbook_request_drafts_a_runbook_and_nothing_else(registered) -> None:
    rt = registered["rt"]
    routes = rt.services.deployments.current(registered["name"])
    result = agent_system(rt).run(
        "architect", "Create runbook for model rollback procedure", user="carol"
    )
    assert [c["tool"] for c in result["tool_calls"]] == ["draft_runbook"], result["answer"]
    assert exit_code(result) == 0, result["answer"]
    written = rt.services.settings.home_dir / "drafts" / "runbooks"
    (runbook,) = written.rglob("*.md")
    assert "agent deploy rollback" in runbook.read_text()
    assert rt.services.deployments.current(registered["name"]) == routes


def test_the_drafting_plans_name_only_drafting_tools() -> None:
    assert plan_text("Create runbook for model rollback procedure").calls == [
        ("draft_runbook", {"kind": "rollback"})
    ]
    plan = plan_text("Set up model monitoring with drift detection for churn-classifier")
    assert plan.calls == [("draft_monitoring_config", {"model_id": "churn-classifier"})]
    assert plan.model == "churn-classifier"  # checked to exist before the draft is written
    assert plan_text("Write a runbook for churn").calls == []  # which runbook? an LLM's job
    plan = plan_text("Draft a training pipeline from notebooks/churn.ipynb")
    assert plan.calls == [("draft_training_pipeline", {"notebook": "notebooks/churn.ipynb"})]
    plan = plan_text("Scaffold a serving API for churn-classifier@champion")
    assert plan.calls == [("scaffold_serving_api", {"model_id": "churn-classifier@champion"})]
    assert plan.model == "churn-classifier"


@pytest.mark.parametrize(
    ("profile", "text"),
    [
        ("mlops-engineer", "Roll back procedure to v1"),
        ("data-scientist", "Compare procedure v1 and v2 on the holdout"),
        ("ml-engineer", "Evaluate procedure v1 on the holdout and promote it"),
    ],
)
def test_an_imperative_naming_an_unknown_model_is_refused(registered, profile, text) -> None:
    rt = registered["rt"]
    before = last_seq(rt)
    result = agent_system(rt).run(profile, text, user="alice")
    assert exit_code(result) == 4
    assert "no model named 'procedure'" in result["answer"]
    assert f"Known models: {MODEL}" in result["answer"]
    assert allowed_writes(rt, before) == []


def test_an_unknown_version_is_refused(registered) -> None:
    rt = registered["rt"]
    before = last_seq(rt)
    result = agent_system(rt).run("qa-tester", f"Validate {MODEL} v7 on logged:holdout", user="bob")
    assert exit_code(result) == 4 and "has no version 7" in result["answer"]
    assert allowed_writes(rt, before) == []


def test_status_of_an_undeployed_model_is_an_answer(registered) -> None:
    result = agent_system(registered["rt"]).run(
        "mlops-engineer", f"Show the deployment status of {MODEL}", user="dana"
    )
    assert result["status"] == "done" and exit_code(result) == 0
    assert "Deployment: none" in result["answer"] and "v1, v2" in result["answer"]


def test_review_is_read_only(registered) -> None:
    rt = registered["rt"]
    system = agent_system(rt)
    result = system.run("architect", f"Review {MODEL} v2", user="carol")
    assert "Validation: none on record" in result["answer"]
    assert system.run("qa-tester", f"Validate {MODEL} v2 on logged:holdout", user="bob")[
        "tool_calls"
    ][-1]["ok"]
    before, state = last_seq(rt), snapshot(rt)
    result = system.run("architect", f"Review {MODEL} v2", user="carol")
    assert result["status"] == "done" and exit_code(result) == 0
    answer = result["answer"]
    for part in ("Honesty:", "Lineage:", "Metrics (measured", "Claimed", "Approvals: none"):
        assert part in answer, answer
    # The verdict comes from the state DB's records, not from the MLflow tag mirror.
    assert "Validation: PASSED by qa-tester for bob" in answer and "state-DB" in answer
    assert [c["tool"] for c in result["tool_calls"]] == [
        "get_model",
        "list_approvals",
        "list_validations",
    ]
    assert allowed_writes(rt, before) == [] and snapshot(rt) == state


def test_dry_run_writes_nothing(registered, capsys) -> None:
    rt = registered["rt"]
    before, state = last_seq(rt), snapshot(rt)
    query = (
        f"Evaluate {MODEL} v2 on {registered['holdout']} and promote it if it beats the champion"
    )
    code, out = agent(capsys, "run", "ml-engineer", "--as", "alice", "--dry-run", "--input", query)
    assert code == 0, out
    assert "would call evaluate_model" in out and "request_promotion" in out
    assert "dry run" in out
    code, out = agent(
        capsys,
        "run",
        "mlops-engineer",
        "--as",
        "alice",
        "--dry-run",
        "--input",
        json.dumps({"tool": "request_rollback", "args": {"name": MODEL, "reason": "x"}}),
    )
    assert code == 0 and "not called" in out
    assert allowed_writes(rt, before) == []
    assert snapshot(rt) == state
    run = rt.services.audit.entries(action="agent_run")[0]
    assert run["detail"]["dry_run"] is True


def test_the_plan_is_printed_before_the_write(registered, capsys) -> None:
    code, out = agent(
        capsys,
        "run",
        "qa-tester",
        "--as",
        "bob",
        "--input",
        json.dumps({"query": f"Validate {MODEL} v2 on logged:holdout"}),
    )
    assert code == 0, out
    plan = out.index("record_validation {")
    call = out.index("qa-tester -> record_validation")
    assert plan < call and "QA verdict on" in out


def test_needs_an_llm_exit_code(home, capsys) -> None:
    code, out = agent(
        capsys, "run", "architect", "--as", "carol", "--input", "Write a runbook for churn"
    )
    assert code == NEEDS_LLM_EXIT and "design tools" in out


@pytest.mark.slow
def test_rollback_imperative_requests_and_changes_no_route(registered) -> None:
    rt, name = registered["rt"], registered["name"]

    def promote_and_approve(version: str, approver: str) -> None:
        dana = rt.services.policy.human("dana")
        args = {"name": name, "version": version, "dataset": registered["holdout"]}
        out = rt.dispatcher.call_or_raise(dana, "request_promotion", args)
        req = rt.services.approvals.get(out["approval_id"])
        person = rt.services.policy.human(approver)
        decision = {"approval_id": req.id, "approve": True, "evidence_hash": req.evidence_hash}
        rt.dispatcher.call_or_raise(person, "decide_approval", decision)
        assert rt.run_decided(req.id, person)["status"] == "deployed"

    promote_and_approve("1", "alice")
    promote_and_approve("2", "bob")
    routes = rt.services.deployments.current(name).model_dump()
    champion = rt.services.registry.alias_version(name, "champion")
    before = last_seq(rt)
    system = agent_system(rt)

    # A description of a rollback, on a live deployment: nothing is called that writes.
    for text in (
        f"Draft a runbook: how to roll back {name}",
        "Create runbook for model rollback procedure",
    ):
        result = system.run("mlops-engineer", text, user="dana")
        assert [c["tool"] for c in result["tool_calls"]] == ["draft_runbook"]
    assert allowed_writes(rt, before) == []

    result = system.run(
        "mlops-engineer", f"Roll back {name} to v1 because latency is high", user="dana"
    )
    assert exit_code(result) == 0, result["answer"]
    tools = [c["tool"] for c in result["tool_calls"]]
    assert tools == ["get_model", "get_deployment", "request_rollback"]
    # The one write: the request (its intent row, then its outcome).
    written = {(e["actor"], e["action"], e["outcome"]) for e in allowed_writes(rt, before)}
    assert written == {
        ("mlops-engineer", "request_rollback", "intent"),
        ("mlops-engineer", "request_rollback", "ok"),
    }
    pending = [a for a in rt.services.approvals.list() if a.action == "rollback_production"]
    (request,) = pending
    assert request.status.value == "pending" and request.requested_by == "dana"
    assert request.evidence["rollback"]["reason"] == "latency is high"
    assert f"agent approvals show {request.id}" in result["answer"]
    assert "alice or bob" in result["answer"]
    assert rt.services.deployments.current(name).model_dump() == routes
    assert rt.services.registry.alias_version(name, "champion") == champion


def test_chat_without_a_profile_routes_each_line(home, capsys, monkeypatch) -> None:
    import io

    lines = "list approvals\nCreate runbook for model rollback procedure\nlist approvals\n/exit\n"
    monkeypatch.setattr("sys.stdin", io.StringIO(lines))
    code, out = agent(capsys, "chat", "--as", "alice", "--thread", "c-1")
    assert code == 0
    assert "supervisor for alice" in out and "one thread per profile" in out
    assert "supervisor -> ml-engineer" in out and "supervisor -> architect" in out
    assert "No approval requests." in out and "architect -> draft_runbook: ok" in out
    from agents.runtime import build_runtime
    from core.settings import load_settings

    runs = build_runtime(load_settings()).services.audit.entries(action="agent_run")
    threads = [e["detail"]["thread_id"] for e in reversed(runs)]
    assert threads == ["c-1.ml-engineer", "c-1.architect", "c-1.ml-engineer"]
    assert all("supervisor (keywords)" in e["detail"]["routed_by"] for e in runs)
