"""The evaluator behind the tools: seed-shaped input, reports in MLflow, bad input, gates."""

from __future__ import annotations

from pathlib import Path

import pytest

from policies.gates import check_promotion, load_thresholds


def _qa(rt):
    return rt.services.policy.agent("qa-tester", on_behalf_of="bob")


def test_seed_input_with_fairness_logs_a_report_that_eval_show_reads(registered):
    import pandas as pd

    rt = registered["rt"]
    frame = pd.read_csv(registered["holdout"])
    frame["gender"] = ["f" if i % 3 else "m" for i in range(len(frame))]
    path = Path(registered["holdout"]).with_name("holdout_groups.csv")
    frame.to_csv(path, index=False)
    rt.dispatcher.call_or_raise(
        rt.services.policy.human("dana"),
        "set_challenger",
        {"name": registered["name"], "version": "2"},
    )
    out = rt.dispatcher.call_or_raise(
        _qa(rt),
        "evaluate_model",
        {
            "model_id": f"{registered['name']}@challenger",
            "evaluation_dataset": str(path),
            "metrics": ["accuracy", "precision", "recall", "f1", "auc_roc"],
            "include_fairness": True,
            "sensitive_features": ["gender"],
        },
    )
    assert out["version"] == "2"
    assert set(out["metrics"]) == {"accuracy", "precision", "recall", "f1", "auc_roc"}
    assert out["fairness"]["sensitive_columns"] == ["gender"]
    assert {g["group"] for g in out["fairness"]["groups"]} == {"f", "m"}
    assert "demographic_parity_difference" in out["fairness"]["metrics"]
    shown = rt.dispatcher.call_or_raise(
        rt.services.policy.human("carol"), "get_evaluation", {"evaluation_id": out["evaluation_id"]}
    )
    assert shown["model_version"] == "2" and shown["report"]["n"] == len(frame)
    names = {Path(a).name for a in shown["artifacts"]}
    assert {
        "evaluation.json",
        "evaluation.md",
        "roc.png",
        "pr.png",
        "confusion_matrix.png",
        "calibration.png",
    } <= names
    assert "Evaluation report" in shown["markdown"]


def test_logged_dataset_from_the_registry(registered):
    rt = registered["rt"]
    out = rt.dispatcher.call_or_raise(
        _qa(rt),
        "evaluate_model",
        {"model_id": f"{registered['name']}/1", "evaluation_dataset": "logged:holdout"},
    )
    assert out["n"] == 143 and out["dataset"]["path"] == "logged:holdout"
    res = rt.dispatcher.call(
        _qa(rt),
        "evaluate_model",
        {"model_id": f"{registered['name']}/1", "evaluation_dataset": "logged:nope"},
    )
    assert res.error.code == "not_found" and "holdout" in res.error.hint


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        ({"include_fairness": True}, "invalid_input", "needs sensitive_features"),
        (
            {"include_fairness": True, "sensitive_features": ["ethnicity"]},
            "invalid_input",
            "'ethnicity'",
        ),
        ({"evaluation_dataset": "../../etc/passwd"}, "invalid_input", "outside the allowed"),
        ({"evaluation_dataset": "missing.csv"}, "not_found", "missing.csv"),
        ({"label_column": "label"}, "invalid_input", "'label'"),
        ({"model_id": "nope/1"}, "not_found", "nope"),
        ({"model_id": "x@prod"}, "invalid_input", "model_id"),
    ],
)
def test_bad_input_gets_a_clear_error(registered, args, code, text):
    rt = registered["rt"]
    base = {"model_id": f"{registered['name']}/1", "evaluation_dataset": registered["holdout"]}
    res = rt.dispatcher.call(_qa(rt), "evaluate_model", {**base, **args})
    assert not res.ok and res.error.code == code, res.error
    assert text in res.error.message


def test_malformed_jsonl_names_the_line(registered, tmp_path):
    rt = registered["rt"]
    bad = Path.cwd() / "eval.jsonl"
    bad.write_text('{"target": 1}\n{"target": 0,\n')
    res = rt.dispatcher.call(
        _qa(rt),
        "evaluate_model",
        {"model_id": f"{registered['name']}/1", "evaluation_dataset": str(bad)},
    )
    assert res.error.code == "invalid_input" and "line 2" in res.error.message


def _evidence(verdict: str | None) -> dict:
    return {
        "candidate": {
            "name": "m",
            "version": "2",
            "artifact_sha256": "a" * 64,
            "honesty": {
                "implementation_status": "IMPLEMENTED",
                "accuracy_claim": "x",
                "validation_method": "y",
                "honesty_warning": "VALIDATED",
            },
        },
        "metrics": {"accuracy": 0.95, "f1": 0.95, "auc_roc": 0.97},
        "unavailable": {},
        "champion": {
            "version": "1",
            "comparison": None
            if verdict is None
            else {"verdict": verdict, "reason": f"f1 is {verdict}"},
        },
    }


def test_gates_consume_the_champion_comparison_verdict():
    from core.settings import load_settings

    thresholds = load_thresholds(load_settings().resolved_policies_dir)
    assert check_promotion(_evidence("better"), thresholds).passed
    worse = check_promotion(_evidence("worse"), thresholds)
    assert not worse.passed and "worse" in worse.summary()
    inconclusive = check_promotion(_evidence("inconclusive"), thresholds)
    assert inconclusive.passed and inconclusive.warnings
    strict = {**thresholds, "default": {**thresholds["default"], "block_inconclusive": True}}
    assert not check_promotion(_evidence("inconclusive"), strict).passed
    assert not check_promotion(_evidence(None), thresholds).passed
