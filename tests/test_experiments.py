"""ExperimentTracker over MLflow: params, stepped metrics, artifacts, environment, honesty;
compare with paired intervals from logged predictions; the ml-experiment-tracker workflow."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.errors import InvalidInput, NotFound
from tests.helpers.cli import run_agent
from tests.test_features import churn_frame


@pytest.fixture
def tracker(home: Path):
    from core.experiments import ExperimentTracker
    from core.settings import load_settings

    return ExperimentTracker.from_settings(load_settings())


def test_a_run_records_everything(tracker, tmp_path: Path) -> None:
    from core.datasets import Dataset
    from core.honesty import HonestyMetadata

    note = tmp_path / "notes.txt"
    note.write_text("hello")
    honesty = HonestyMetadata(
        implementation_status="IMPLEMENTED",
        accuracy_claim="accuracy 0.9 on 50 rows",
        validation_method="holdout",
        honesty_warning="VALIDATED",
    )
    with tracker.start("churn_v1", honesty=honesty) as run:
        run.log_params({"depth": 3, "layers": [1, 2]})
        for step, loss in enumerate([0.9, 0.5, 0.3]):
            run.log_metric("loss", loss, step=step)
        run.log_artifact(note)
        run.log_dataset(
            Dataset.from_records([{"a": 1, "target": 0}], name="train"), targets="target"
        )
        with pytest.raises(InvalidInput, match="reserved"):
            run.set_tags({"approved_by": "me"})
        with pytest.raises(InvalidInput, match="finite"):
            run.log_metric("bad", float("nan"))
    got = tracker.get_run("churn_v1")
    assert got.status == "FINISHED" and got.params["depth"] == "3"
    assert got.tags["implementation_status"] == "IMPLEMENTED" and "env.python" in got.tags
    assert got.tags["dataset_digest.training"]
    assert [h["value"] for h in tracker.get_metrics("churn_v1")["loss"]] == [0.9, 0.5, 0.3]
    run_obj = tracker.client.get_run(got.run_id)
    assert run_obj.inputs.dataset_inputs[0].dataset.name == "train"
    arts = {a.path for a in tracker.client.list_artifacts(got.run_id)}
    assert {"notes.txt", "environment.json"} <= arts
    with pytest.raises(RuntimeError):
        with tracker.start("churn_fail"):
            raise RuntimeError("boom")
    failed = tracker.get_run("churn_fail")
    assert failed.status == "FAILED" and failed.tags["honesty_warning"] == "UNVALIDATED"


def test_compare_with_and_without_predictions(tracker) -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    for name, acc in (("churn_v1", 0.65), ("churn_v2", 0.9), ("churn_v3", 0.9)):
        with tracker.start(name) as run:
            pred = np.where(rng.random(400) < acc, y, 1 - y)
            run.log_metrics({"accuracy": float((pred == y).mean()), "latency_ms": 3.0})
            if name != "churn_v3":
                run.log_predictions(y, pred)
    c = tracker.compare(["churn_v1", "churn_v2"], metrics=["accuracy", "latency_ms"])
    assert c.best == {"accuracy": "churn_v2", "latency_ms": None}
    assert c.direction == {"accuracy": "higher", "latency_ms": "lower"}
    res = c.uncertainty["churn_v2"]["per_metric"]["accuracy"]
    assert res["verdict"] == "better" and 0 < res["ci_low"] < res["difference"] < res["ci_high"]
    c3 = tracker.compare(["churn_v1", "churn_v3"], metrics=["accuracy"])
    assert not c3.uncertainty and "no per-row predictions" in c3.uncertainty_unavailable["churn_v3"]
    with pytest.raises(NotFound):
        tracker.compare(["churn_v1", "nope"])
    with pytest.raises(InvalidInput):
        tracker.compare(["churn_v1"])


@pytest.mark.slow
def test_experiment_tracker_workflow_and_cli(home: Path, capsys) -> None:
    frame = churn_frame(400).drop(columns=["refund_amount"])
    frame.to_csv("churn.csv", index=False)
    seed_input = {
        "experiment_name": "churn-prediction",
        "model_type": "random_forest",
        "hyperparameters": {"n_estimators": 30, "max_depth": 4},
        "dataset": "churn.csv",
        "label_column": "is_churned",
        "metrics": ["accuracy", "f1", "auc_roc"],
        "run_name": "churn_v1",
    }
    code, out, err = run_agent(
        capsys,
        "workflow",
        "run",
        "ml-experiment-tracker",
        "--input",
        json.dumps(seed_input),
        "--json",
        "--as",
        "dana",
    )
    assert code == 0, err
    first = json.loads(out)
    assert first["task"] == "classification" and list(first["metrics"])[:3] == [
        "accuracy",
        "f1",
        "auc_roc",
    ]
    assert first["dropped_columns"]["customer_id"].startswith("identifier")
    assert first["honesty"]["honesty_warning"] == "VALIDATED"
    second = {
        **seed_input,
        "model_type": "logistic_regression",
        "hyperparameters": {},
        "run_name": "churn_v2",
    }
    code, _, err = run_agent(
        capsys,
        "workflow",
        "run",
        "ml-experiment-tracker",
        "--input",
        json.dumps(second),
        "--as",
        "dana",
    )
    assert code == 0, err
    code, out, _ = run_agent(
        capsys,
        "experiments",
        "compare",
        "churn_v1",
        "churn_v2",
        "--metric",
        "accuracy",
        "--json",
        "--as",
        "dana",
    )
    comp = json.loads(out)["comparison"]
    assert code == 0 and "churn_v2" in comp["uncertainty"]
    code, out, _ = run_agent(capsys, "experiments", "list", "--as", "dana")
    assert code == 0 and "churn_v1" in out and "churn_v2" in out
    bad = {**seed_input, "label_column": "nope"}
    code, _, err = run_agent(
        capsys,
        "workflow",
        "run",
        "ml-experiment-tracker",
        "--input",
        json.dumps(bad),
        "--as",
        "dana",
    )
    assert code == 2 and "label column 'nope'" in err
    code, _, err = run_agent(
        capsys,
        "workflow",
        "run",
        "ml-experiment-tracker",
        "--input",
        json.dumps({**seed_input, "hyperparameters": {"bogus": 1}}),
        "--as",
        "dana",
    )
    assert code == 2 and "unknown hyperparameters" in err


def test_workflow_list_shows_all_seven_with_schemas(home: Path, capsys) -> None:
    code, out, _ = run_agent(capsys, "workflow", "list", "--json")
    assert code == 0
    flows = {w["name"]: w for w in json.loads(out)["workflows"]}
    seven = {
        "ml-experiment-tracker",
        "ml-feature-engineering",
        "ml-model-evaluation",
        "ml-model-registry",
        "mlops-deployment",
        "ml-model-monitoring",
        "ml-ab-testing",
    }
    assert seven <= set(flows)
    for name in seven:
        w = flows[name]
        if w["status"] == "PLANNED":
            assert "example_input" in w
            code, _, err = run_agent(
                capsys,
                "workflow",
                "run",
                name,
                "--input",
                json.dumps(w["example_input"]),
                "--as",
                "dana",
            )
            assert code == 1 and "PLANNED" in err and "nothing was run" in err
        else:
            assert w["input_schema"]["properties"], name
    fe = flows["ml-feature-engineering"]["input_schema"]
    assert {"dataset", "label_column", "feature_types"} <= set(fe["properties"])
