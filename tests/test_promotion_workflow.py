"""The promotion workflow end to end: gates, QA validation, human approval, idempotent executor."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.honesty import HonestyMetadata, HonestyWarning, ImplementationStatus
from policies.approvals import ApprovalStatus

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent


def _request(reg: dict, version: str) -> dict:
    rt = reg["rt"]
    dana = rt.services.policy.human("dana")
    return rt.dispatcher.call_or_raise(
        dana,
        "request_promotion",
        {"name": reg["name"], "version": version, "dataset": reg["holdout"]},
    )


def _approve(rt, approval_id: str, who: str = "alice") -> None:
    req = rt.services.approvals.get(approval_id)
    rt.dispatcher.call_or_raise(
        rt.services.policy.human(who),
        "decide_approval",
        {"approval_id": approval_id, "approve": True, "evidence_hash": req.evidence_hash},
    )


def test_promotion_stops_at_approval_then_deploys_and_serves_honest_predictions(registered):
    rt = registered["rt"]
    out = _request(registered, "1")
    assert out["status"] == "pending_approval", out
    aid = out["approval_id"]
    assert out["approve_command"].startswith(
        f"agent approvals approve {aid} --as alice --evidence-hash "
    )
    # Nothing production-facing happened before the approval.
    assert rt.services.registry.alias_version(registered["name"], "champion") is None
    assert rt.services.deployments.count_revisions(registered["name"]) == 0
    assert rt.promotion.state(out["thread_id"])["next"] == ["await_approval"]

    _approve(rt, aid)
    done = rt.promotion.resume(aid, rt.services.policy.human("alice"))
    assert done["status"] == "deployed", done
    assert rt.services.registry.alias_version(registered["name"], "champion") == "1"
    tags = rt.services.registry.get(registered["name"], "1").tags
    assert tags["approval_id"] == aid and tags["approved_by"] == "alice"

    alice = rt.services.policy.human("alice")
    resp = rt.dispatcher.call_or_raise(
        alice, "predict", {"name": registered["name"], "features": registered["row"]}
    )
    body = resp["response"]
    for field in (
        "prediction",
        "model_version",
        "implementation_status",
        "accuracy_claim",
        "validation_status",
    ):
        assert body[field] not in (None, ""), field
    assert body["model_version"] == "1" and body["implementation_status"] == "IMPLEMENTED"
    assert body["validation_status"] == "PASSED"

    # Replaying the finished thread deploys nothing more.
    again = rt.promotion.resume(aid, rt.services.policy.human("alice"))
    assert again["status"] == "finished (deployed)"
    assert again["current"] == {
        "approval_status": "executed",
        "live_versions": ["1"],
        "revision": 1,
        "champion": "1",
    }
    assert rt.services.deployments.count_revisions(registered["name"]) == 1


def test_rejected_promotion_changes_nothing(registered):
    rt = registered["rt"]
    out = _request(registered, "2")
    req = rt.services.approvals.get(out["approval_id"])
    rt.dispatcher.call_or_raise(
        rt.services.policy.human("bob"),
        "decide_approval",
        {
            "approval_id": req.id,
            "approve": False,
            "evidence_hash": req.evidence_hash,
            "reason": "no",
        },
    )
    done = rt.promotion.resume(req.id, rt.services.policy.human("alice"))
    assert done["status"] == "rejected"
    assert rt.services.registry.alias_version(registered["name"], "champion") is None
    assert rt.services.deployments.count_revisions(registered["name"]) == 0


def _register(rt, trained, bc_data, honesty) -> str:
    run_id = rt.services.registry.log_sklearn_run(
        trained[0].model,
        X_sample=bc_data.train[bc_data.feature_names].head(3),
        honesty=honesty,
        run_name="x",
    )
    return rt.services.registry.register_from_run("gated-model", run_id, honesty=honesty).version


@pytest.mark.parametrize("case", ["missing", "planned"])
def test_gates_block_missing_or_planned_honesty_before_the_approval_node(
    rt, trained, bc_data, case
):
    from core.training import write_holdout_csv

    holdout = write_holdout_csv(bc_data, rt.settings.home_dir / "holdout.csv")
    honesty = (
        None
        if case == "missing"
        else HonestyMetadata(
            implementation_status=ImplementationStatus.PLANNED,
            accuracy_claim="none yet",
            validation_method="not validated",
            honesty_warning=HonestyWarning.UNVALIDATED,
        )
    )
    version = _register(rt, trained, bc_data, honesty)
    dana = rt.services.policy.human("dana")
    out = rt.dispatcher.call_or_raise(
        dana,
        "request_promotion",
        {"name": "gated-model", "version": version, "dataset": str(holdout)},
    )
    assert out["status"] == "blocked"
    if case == "missing":
        for field in (
            "implementation_status",
            "accuracy_claim",
            "validation_method",
            "honesty_warning",
        ):
            assert field in out["message"]
    else:
        assert "PLANNED" in out["message"]
    assert rt.services.approvals.list() == []
    assert rt.promotion.state(out["thread_id"])["next"] == []
    # The internal step is in no catalog: an agent calling it by name finds no such tool.
    res = rt.dispatcher.call(
        rt.services.policy.agent("ml-engineer", "dana"),
        "open_approval_request",
        {"name": "gated-model", "version": version, "dataset": str(holdout), "thread_id": "x"},
    )
    assert not res.ok and res.error.code == "unknown_tool"
    # The workflow principal reaching it directly is refused by the gates.
    res = rt.dispatcher.call(
        rt.services.policy.workflow("promotion-workflow", "dana"),
        "open_approval_request",
        {
            "name": "gated-model",
            "version": version,
            "dataset": str(holdout),
            "thread_id": "x",
            "requester": "dana",
        },
        internal=True,
    )
    assert not res.ok and res.error.code == "gate_failed"
    assert rt.services.approvals.list() == []


@pytest.mark.parametrize("point", ["after_alias", "after_revision"])
def test_killed_executor_deploys_exactly_once_on_rerun(registered, point):
    rt = registered["rt"]
    out = _request(registered, "1")
    aid = out["approval_id"]
    env = {**os.environ, "CRASH_AT": point, "PYTHONPATH": str(ROOT)}
    crashed = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tests/helpers/crash_during_deploy.py"),
            "approvals",
            "approve",
            aid,
            "--as",
            "alice",
            "--evidence-hash",
            rt.services.approvals.get(aid).evidence_hash,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert crashed.returncode == 137, crashed.stderr
    # The revision and the approval's execution commit together; the alias only follows a
    # gateway that serves the new revision.
    assert rt.services.approvals.get(aid).status == ApprovalStatus.EXECUTED
    assert rt.services.deployments.count_revisions(registered["name"]) == 1
    champion = rt.services.registry.alias_version(registered["name"], "champion")
    assert champion == (None if point == "after_revision" else "1")

    rerun = subprocess.run(
        [
            sys.executable,
            "-m",
            "agents.cli.main",
            "approvals",
            "resume",
            aid,
            "--as",
            "alice",
            "--json",
        ],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["status"] == "deployed"
    assert rt.services.registry.alias_version(registered["name"], "champion") == "1"
    assert rt.services.deployments.count_revisions(registered["name"]) == 1
    assert rt.services.deployments.revision_for_approval(aid).revision == 1
    # A third run is a no-op as well.
    subprocess.run(
        [sys.executable, "-m", "agents.cli.main", "approvals", "resume", aid, "--as", "alice"],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert rt.services.deployments.count_revisions(registered["name"]) == 1


def test_mlflow_loads_the_promoted_champion_in_a_separate_process(registered):
    rt = registered["rt"]
    out = _request(registered, "2")
    _approve(rt, out["approval_id"], who="bob")
    assert (
        rt.promotion.resume(out["approval_id"], rt.services.policy.human("alice"))["status"]
        == "deployed"
    )
    code = (
        "import mlflow, json, sys; import pandas as pd;"
        f"m = mlflow.pyfunc.load_model('models:/{registered['name']}@champion');"
        f"row = {registered['row']!r};"
        "names = m.metadata.get_input_schema().input_names();"
        "print(json.dumps({'run_id': m.metadata.run_id, 'pred': int(m.predict(pd.DataFrame([row], columns=names))[0])}))"
    )
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": rt.settings.resolved_tracking_uri,
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    res = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout.strip().splitlines()[-1])
    info = rt.services.registry.get(registered["name"], "2")
    assert got["run_id"] == info.run_id
    assert got["pred"] in (0, 1)
