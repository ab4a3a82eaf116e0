"""run_deployment_workflow on the issue's seed inputs: a production canary waits for an
approved promotion, starts at the requested share, and a rollback input rolls back."""

from __future__ import annotations

import pytest
import yaml

from agents.deployment_workflow import run_deployment_workflow
from core.errors import ApprovalRequired, InvalidInput
from tests.test_serving_helpers import MODEL, approve, env, serving_env, wait_for_revision

__all__ = ["env", "serving_env"]
pytestmark = pytest.mark.slow


def test_seed_canary_and_rollback_inputs(env, tmp_path):
    rt = env.runtime("workflow")
    dana = rt.services.policy.human("dana")
    base, cand = env.versions["lr_onnx"], env.versions["rf_onnx"]
    seed = {
        "model_name": MODEL,
        "version": cand,
        "deployment_target": "local",
        "rollout_strategy": "canary",
        "traffic_percentage": 10,
    }
    with pytest.raises(ApprovalRequired, match="approved promotion"):
        run_deployment_workflow(
            rt.dispatcher, dana, {**seed, "version": base, "rollout_strategy": "direct"}
        )
    approve(rt, MODEL, base)
    first = run_deployment_workflow(
        rt.dispatcher, dana, {**seed, "version": base, "rollout_strategy": "direct"}
    )
    assert first["status"] == "deployed" and first["steps"][0] == "list_approvals: ok"

    with pytest.raises(ApprovalRequired):
        run_deployment_workflow(rt.dispatcher, dana, seed)
    approval = approve(rt, MODEL, cand)
    out = run_deployment_workflow(rt.dispatcher, dana, seed)
    assert out["status"] == "rolling_out" and out["rollout"]["approval_id"] == approval
    assert {r["version"]: r["weight"] for r in out["routes"]} == {base: 90.0, cand: 10.0}
    assert "advance" in out["next"]
    wait_for_revision(out["gateway_url"], out["rollout"]["last_revision"])

    back = run_deployment_workflow(
        rt.dispatcher, dana, {"model_name": MODEL, "action": "rollback", "target_version": base}
    )
    assert back["status"] == "rolled_back" and back["live_versions"] == [base]

    rendered = run_deployment_workflow(
        rt.dispatcher,
        dana,
        {**seed, "deployment_target": "kubernetes", "output_dir": str(tmp_path / "k8s")},
    )
    assert rendered["status"] == "rendered" and rendered["applied"] is False
    isvc = yaml.safe_load((tmp_path / "k8s" / "k8s" / "inferenceservice.yaml").read_text())
    assert isvc["spec"]["predictor"]["canaryTrafficPercent"] == 10
    assert "cluster" in rendered["note"]

    with pytest.raises(InvalidInput, match="rollout_strategy"):
        run_deployment_workflow(rt.dispatcher, dana, {**seed, "rollout_strategy": "yolo"})


def test_auto_advance_walks_every_step_on_staging(env):
    rt = env.runtime("workflow-auto")
    dana = rt.services.policy.human("dana")
    base, cand = env.versions["lr_onnx"], env.versions["rf_onnx"]
    run_deployment_workflow(
        rt.dispatcher, dana, {"model_name": MODEL, "version": base, "deployment_target": "staging"}
    )
    out = run_deployment_workflow(
        rt.dispatcher,
        dana,
        {
            "model_name": MODEL,
            "version": cand,
            "deployment_target": "staging",
            "rollout_strategy": "canary",
            "steps": [20, 60, 100],
            "auto_advance": True,
            "step_interval_seconds": 0,
        },
    )
    assert out["status"] == "completed", out
    assert [s for s in out["steps"] if s.startswith("rollout #")] == [
        f"rollout #1: v{cand} takes 20% of traffic",
        f"rollout #1: v{cand} takes 60% of traffic",
        f"rollout #1: v{cand} takes 100% of traffic",
    ]
    assert out["routes"] == [{"version": cand, "weight": 100.0, "role": "primary", "slot": None}]
