"""Honesty follows the facts: what the gateway serves for a version comes from the latest QA
verdict recorded for its artifact (the registrant's claim kept as claimed), and a tracker run
registered ``--from-run`` keeps its honesty metadata, datasets and label column."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.errors import InvalidInput
from core.honesty import claimed_numbers, contradicted, served_honesty
from tests.helpers.cli import run_agent


# The served labels, from the verdict's facts ------------------------------------------------
def test_no_verdict_serves_unvalidated_with_the_claim_marked_claimed() -> None:
    out = served_honesty("accuracy=0.94", {"accuracy": 0.94})
    assert out.validation_status == "UNVALIDATED"
    assert out.accuracy_claim == "claimed: accuracy=0.94; not yet measured by QA"


def test_a_passed_verdict_serves_the_measurement_beside_the_claim() -> None:
    out = served_honesty(
        "accuracy 0.958, f1 0.950 on a 143-row holdout",
        {},
        verdict="PASSED",
        measured={"accuracy": 0.9650, "f1": 0.9700, "auc_roc": 0.99},
        headline=("accuracy", "f1"),
        dataset="holdout.csv",
        date="2025-06-01",
    )
    assert out.validation_status == "PASSED"
    assert out.accuracy_claim == (
        "claimed: accuracy 0.958, f1 0.950 on a 143-row holdout; measured by QA: "
        "accuracy 0.9650, f1 0.9700 on holdout.csv (2025-06-01)"
    )


def test_a_measurement_far_below_the_claim_says_it_contradicts_it() -> None:
    out = served_honesty(
        "accuracy=0.99",
        {"accuracy": 0.99},
        verdict="PASSED",
        measured={"accuracy": 0.90},
        dataset="holdout.csv",
        date="2025-06-01",
    )
    assert out.validation_status == "PASSED"
    assert "QA contradicts the claim: accuracy 0.9000 vs claimed 0.99" in out.accuracy_claim
    # Within the tolerance is no contradiction; an error metric is compared the other way.
    assert contradicted({"accuracy": 0.94}, {"accuracy": 0.92}) == []
    assert contradicted({"rmse": 10.0}, {"rmse": 20.0}) == ["rmse 20.0000 vs claimed 10"]
    assert contradicted({"rmse": 10.0}, {"rmse": 5.0}) == []


def test_claimed_numbers_come_from_the_claimed_tag_else_the_claim_text() -> None:
    assert claimed_numbers("accuracy=0.5", {"f1": 0.9}) == {"f1": 0.9}
    got = claimed_numbers("accuracy 0.958, f1 0.950, auc_roc 0.99 on a 143-row holdout", {})
    assert got["accuracy"] == 0.958 and got["f1"] == 0.95 and got["auc_roc"] == 0.99


# The whole path: QA verdicts reach the gateway ------------------------------------------------
def _approve_and_deploy(rt, name: str, version: str, holdout: str) -> dict:
    dana, alice = rt.services.policy.human("dana"), rt.services.policy.human("alice")
    out = rt.dispatcher.call_or_raise(
        dana, "request_promotion", {"name": name, "version": version, "dataset": holdout}
    )
    assert out["status"] == "pending_approval", out
    req = rt.services.approvals.get(out["approval_id"])
    rt.dispatcher.call_or_raise(
        alice,
        "decide_approval",
        {"approval_id": req.id, "approve": True, "evidence_hash": req.evidence_hash},
    )
    done = rt.promotion.resume(req.id, alice)
    assert done["status"] == "deployed", done
    return done


@pytest.mark.slow
def test_served_labels_follow_the_automated_qa_verdict(registered) -> None:
    from tools.approved import served_version

    rt, name = registered["rt"], registered["name"]
    info = rt.services.registry.get(name, "1")
    claim = info.honesty["accuracy_claim"]
    before = served_version(rt.services, info)
    assert before.validation_status == "UNVALIDATED"
    assert before.accuracy_claim == f"claimed: {claim}; not yet measured by QA"

    _approve_and_deploy(rt, name, "1", registered["holdout"])
    record = rt.services.validations.latest(name, "1", artifact_sha256=info.artifact_sha256)
    assert record is not None and record.verdict == "PASSED"
    body = rt.dispatcher.call_or_raise(
        rt.services.policy.human("alice"),
        "predict",
        {"name": name, "features": registered["row"]},
    )["response"]
    assert body["validation_status"] == "PASSED"
    today = datetime.now(UTC).date().isoformat()
    measured = f"accuracy {record.metrics['accuracy']:.4f}"
    assert body["accuracy_claim"].startswith(f"claimed: {claim}; measured by QA: {measured}")
    assert f"on holdout.csv ({today})" in body["accuracy_claim"]
    assert "contradicts" not in body["accuracy_claim"]
    # The server's paths never reach a prediction response.
    assert str(Path(registered["holdout"]).parent) not in body["accuracy_claim"]


@pytest.mark.slow
def test_a_failed_qa_verdict_and_a_contradicted_claim_are_served_as_such(
    rt, bc_data, trained
) -> None:
    """A model trained on shuffled labels, registered claiming accuracy 0.94: QA fails it."""
    from sklearn.base import clone

    from core.honesty import HonestyMetadata
    from core.training import write_holdout_csv
    from tools.approved import served_version

    holdout = write_holdout_csv(bc_data, rt.settings.home_dir / "data" / "holdout.csv")
    X = bc_data.train[bc_data.feature_names]
    y = np.random.default_rng(0).permutation(bc_data.train["target"].to_numpy())
    model = clone(trained[0].model).fit(X, y)
    honesty = HonestyMetadata(
        implementation_status="IMPLEMENTED",
        accuracy_claim="accuracy 0.94 on our holdout",
        validation_method="holdout split",
        honesty_warning="VALIDATED",
    )
    run_id = rt.services.registry.log_sklearn_run(
        model, X_sample=X.head(3), honesty=honesty, run_name="shuffled"
    )
    dana, bob = rt.services.policy.human("dana"), rt.services.policy.human("bob")
    reg = rt.dispatcher.call_or_raise(
        dana,
        "register_model",
        {"name": "shuffled", "run_id": run_id, "honesty": honesty.model_dump(mode="json")},
    )
    verdict = rt.dispatcher.call_or_raise(
        bob,
        "record_validation",
        {"name": "shuffled", "version": reg["version"], "dataset": str(holdout)},
    )
    assert verdict["verdict"] == "FAILED", verdict
    served = served_version(rt.services, rt.services.registry.get("shuffled", reg["version"]))
    assert served.validation_status == "FAILED"
    text = served.accuracy_claim
    assert text.startswith("claimed: accuracy 0.94 on our holdout; measured by QA: accuracy ")
    assert f"; QA FAILED: {verdict['reasons'][0]}" in text
    assert f"QA contradicts the claim: accuracy {verdict['metrics']['accuracy']:.4f}" in text


# --from-run on the tracker's own run ---------------------------------------------------------
def _churn_table(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    tenure = rng.integers(1, 72, n)
    charges = rng.normal(70, 20, n).round(2)
    plan = rng.choice(["basic", "plus", "pro"], n)
    logit = 1.5 - 0.06 * tenure + 0.03 * (charges - 70) + np.where(plan == "basic", 1.0, 0.0)
    churned = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame(
        {"tenure_months": tenure, "monthly_charges": charges, "plan": plan, "churned": churned}
    )


@pytest.fixture
def churn_run(rt):
    from core.datasets import Dataset
    from core.experiments import ExperimentTracker
    from core.experiments.train import train_tracked

    tracker = ExperimentTracker.from_settings(rt.settings)
    frame = _churn_table()
    out = train_tracked(
        tracker,
        Dataset.from_pandas(frame, name="customer_data_2024"),
        "churned",
        model_type="logistic_regression",
        run_name="churn_lr",
    )
    return {"rt": rt, "tracker": tracker, "run": out, "frame": frame}


@pytest.mark.slow
def test_from_run_keeps_the_tracker_runs_honesty_datasets_and_label(churn_run, capsys) -> None:
    rt, run = churn_run["rt"], churn_run["run"]
    code, out, err = run_agent(
        capsys, "models", "register", "churn", "--from-run", run.run_id, "--as", "dana", "--json"
    )
    assert code == 0, err
    data = json.loads(out)
    info = rt.services.registry.get("churn", data["version"])
    assert info.honesty == run.honesty  # IMPLEMENTED, its claim, its method
    assert info.honesty["implementation_status"] == "IMPLEMENTED"
    assert info.tags["label_column"] == "churned"
    assert info.lineage["dataset_name"] == "training"
    assert (
        info.lineage["dataset_digest"]
        == churn_run["tracker"].get_run(run.run_id).tags["dataset_digest.training"]
    )
    assert data["reference_profile"].startswith("captured"), data["reference_profile"]

    # A later evaluation without a label column uses the recorded one, on a file or logged rows.
    holdout = Path("holdout_2024q4.csv")
    _churn_table(120, seed=1).to_csv(holdout, index=False)
    dana = rt.services.policy.human("dana")
    for dataset in (str(holdout), "logged:evaluation"):
        ev = rt.dispatcher.call_or_raise(
            dana,
            "evaluate_model",
            {"name": "churn", "version": data["version"], "evaluation_dataset": dataset},
        )
        assert ev["dataset"]["label_column"] == "churned"
        assert ev["n"] == (120 if dataset == str(holdout) else run.test_rows)
    # And the QA verdict, which the gateway serves, measured on that label.
    bob = rt.services.policy.human("bob")
    verdict = rt.dispatcher.call_or_raise(
        bob,
        "record_validation",
        {"name": "churn", "version": data["version"], "dataset": str(holdout)},
    )
    assert verdict["metrics"]["accuracy"] == pytest.approx(
        rt.dispatcher.call_or_raise(
            dana,
            "evaluate_model",
            {
                "name": "churn",
                "version": data["version"],
                "evaluation_dataset": str(holdout),
                "label_column": "churned",
            },
        )["metrics"]["accuracy"]
    )


@pytest.mark.slow
def test_a_run_tag_claiming_validation_does_not_validate_the_version(churn_run) -> None:
    """Tags written behind the tracker's back (validation, honesty, label) are not carried:
    the version keeps the tracker's recorded facts and serves UNVALIDATED until QA."""
    from tools.approved import served_version

    rt, run, tracker = churn_run["rt"], churn_run["run"], churn_run["tracker"]
    for key, value in {
        "validation_status": "VALIDATED",
        "validated_by": "bob",
        "accuracy_claim": "accuracy 0.999 on everything",
        "label_column": "tenure_months",
    }.items():
        tracker.client.set_tag(run.run_id, key, value)
    dana = rt.services.policy.human("dana")
    out = rt.dispatcher.call_or_raise(
        dana, "register_own_model", {"name": "churn", "source": f"runs:/{run.run_id}"}
    )
    info = rt.services.registry.get("churn", out["version"])
    assert "validation_status" not in info.tags and "validated_by" not in info.tags
    assert {"validation_status", "validated_by"} <= set(out["dropped_tags"])
    assert info.honesty["accuracy_claim"] == run.honesty["accuracy_claim"]
    assert info.tags["label_column"] == "churned"
    served = served_version(rt.services, info)
    assert served.validation_status == "UNVALIDATED"
    assert served.accuracy_claim.startswith(f"claimed: {run.honesty['accuracy_claim']};")


@pytest.mark.slow
def test_a_run_without_tracker_honesty_is_not_given_its_tags_honesty(rt) -> None:
    """A run whose honesty exists only as tags (anyone can write those) registers as
    HEURISTIC / UNVALIDATED, as any version without honesty metadata does."""
    from sklearn.linear_model import LogisticRegression

    from core.experiments import ExperimentTracker

    tracker = ExperimentTracker.from_settings(rt.settings)
    frame = _churn_table(80)
    X = frame[["tenure_months", "monthly_charges"]]
    with tracker.start("tagged_only", capture_env=False) as run:
        run.log_sklearn_model(LogisticRegression().fit(X, frame["churned"]), X.head(3))
    for key, value in {
        "implementation_status": "IMPLEMENTED",
        "honesty_warning": "VALIDATED",
        "validation_status": "VALIDATED",
        "label_column": "tenure_months",
    }.items():
        tracker.client.set_tag(run.run_id, key, value)
    out = rt.dispatcher.call_or_raise(
        rt.services.policy.human("dana"),
        "register_own_model",
        {"name": "tagged", "source": f"runs:/{run.run_id}"},
    )
    assert out["honesty"]["implementation_status"] == "HEURISTIC"
    assert out["honesty"]["honesty_warning"] == "UNVALIDATED"
    assert "label_column" not in rt.services.registry.get("tagged", out["version"]).tags


def test_callers_cannot_write_the_trackers_facts(home) -> None:
    from core.experiments import ExperimentTracker
    from core.settings import load_settings

    tracker = ExperimentTracker.from_settings(load_settings())
    with tracker.start("spoof", capture_env=False) as run:
        with pytest.raises(InvalidInput, match="reserved param"):
            run.log_params({"modelops.honesty": '{"honesty_warning": "VALIDATED"}'})
        with pytest.raises(InvalidInput, match="reserved tag"):
            run.set_tags({"label_column": "churned"})
    assert "modelops.honesty" not in tracker.get_run("spoof").params
