"""Reports (JSON, Markdown, PNG), MLflow logging to an explicit tracking URI, and dataset
loading with path confinement and clear errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from core.errors import InvalidInput, NotFound
from core.evaluation import EvaluationResult, evaluate, load_dataset, log_evaluation, write_report

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def cancer_result() -> EvaluationResult:
    data = load_breast_cancer(as_frame=True)
    X, y = data.data, data.target.to_numpy()
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(X[::2], y[::2])
    X_te, y_te = X[1::2].reset_index(drop=True), y[1::2]
    group = np.where(X_te["mean radius"] > X_te["mean radius"].median(), "large", "small")
    return evaluate(
        "classification",
        y_te,
        model.predict(X_te),
        model.predict_proba(X_te)[:, 1],
        sensitive_features=group,
        features_df=X_te,
        cost_fp=1.0,
        cost_fn=3.0,
        min_slice_size=20,
    )


def test_write_report_json_markdown_and_plots(cancer_result, tmp_path) -> None:  # noqa: ANN001
    files = write_report(cancer_result, tmp_path / "report")
    assert set(files) == {"json", "markdown", "roc", "pr", "confusion_matrix", "calibration"}
    loaded = json.loads(files["json"].read_text())
    assert loaded == cancer_result.model_dump(mode="json")
    assert EvaluationResult.model_validate(loaded) == cancer_result
    md = files["markdown"].read_text()
    assert f"Rows evaluated: {cancer_result.n}" in md
    assert f"| accuracy | {cancer_result.metrics['accuracy']:.4f} |" in md
    assert "## Fairness over sensitive_feature" in md and "## Worst slices" in md
    for name in ("roc", "pr", "confusion_matrix", "calibration"):
        content = files[name].read_bytes()
        assert content.startswith(PNG) and len(content) > 5000, name


def test_report_without_plots_and_multiclass_plots(tmp_path) -> None:
    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=1000).fit(X, y)
    result = evaluate("classification", y, model.predict(X), model.predict_proba(X))
    assert {c.label for c in result.curves if c.kind == "roc"} == {"0", "1", "2"}
    files = write_report(result, tmp_path / "plain", plots=False)
    assert set(files) == {"json", "markdown"}
    assert sorted(p.name for p in (tmp_path / "plain").iterdir()) == [
        "evaluation.json",
        "evaluation.md",
    ]
    files = write_report(result, tmp_path / "plots")
    assert files["roc"].read_bytes().startswith(PNG)


def test_unavailable_metrics_never_reach_json_as_numbers(tmp_path) -> None:
    result = evaluate("classification", [0, 0, 0], [0, 0, 1], [0.1, 0.2, 0.7])
    files = write_report(result, tmp_path)
    data = json.loads(files["json"].read_text())
    assert "auc_roc" not in data["metrics"] and "one class" in data["unavailable"]["auc_roc"]
    assert "recall" not in data["metrics"]
    assert "NaN" not in files["json"].read_text()


@pytest.mark.slow
def test_log_evaluation_to_explicit_sqlite_uri(cancer_result, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    report_dir = tmp_path / "report"
    write_report(cancer_result, report_dir)
    uri = f"sqlite:///{tmp_path / 'home' / 'mlflow.db'}"
    (tmp_path / "home").mkdir()
    run_id = log_evaluation(
        cancer_result, report_dir, uri, "qa-evaluations", model_name="cancer", model_version=3
    )

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["accuracy"] == pytest.approx(cancer_result.metrics["accuracy"])
    assert run.data.metrics["fairness.demographic_parity_difference"] == pytest.approx(
        cancer_result.fairness.metrics["demographic_parity_difference"]
    )
    assert run.data.tags["model_name"] == "cancer" and run.data.tags["model_version"] == "3"
    artifacts = {Path(a.path).name for a in client.list_artifacts(run_id, "evaluation")}
    assert {"evaluation.json", "evaluation.md", "roc.png"} <= artifacts
    assert (tmp_path / "home" / "artifacts").is_dir()
    assert list(cwd.iterdir()) == []  # nothing written into the working directory
    with pytest.raises(InvalidInput, match="tracking_uri"):
        log_evaluation(cancer_result, report_dir, "", "x")
    with pytest.raises(NotFound):
        log_evaluation(cancer_result, tmp_path / "nope", uri, "x")


# --- data loading ------------------------------------------------------------------------------


@pytest.fixture
def data_root(tmp_path) -> Path:  # noqa: ANN001
    root = tmp_path / "data"
    root.mkdir()
    frame = load_breast_cancer(as_frame=True).frame.head(50)
    frame.to_csv(root / "cancer.csv", index=False)
    frame.to_parquet(root / "cancer.parquet")
    frame.to_json(root / "cancer.jsonl", orient="records", lines=True)
    return root


@pytest.mark.parametrize("name", ["cancer.csv", "cancer.parquet", "cancer.jsonl"])
def test_load_dataset_formats(data_root, name) -> None:  # noqa: ANN001
    X, y = load_dataset(data_root / name, label_column="target", allowed_roots=[data_root])
    expected = load_breast_cancer(as_frame=True).frame.head(50)
    assert list(y) == list(expected["target"]) and "target" not in X.columns
    pd.testing.assert_frame_equal(
        X.reset_index(drop=True), expected.drop(columns="target"), check_dtype=False, atol=1e-12
    )
    X2, _ = load_dataset(
        data_root / name, label_column="target", allowed_roots=[data_root], columns=["mean radius"]
    )
    assert list(X2.columns) == ["mean radius"]


def test_load_dataset_refuses_paths_outside_roots(data_root, tmp_path) -> None:  # noqa: ANN001
    with pytest.raises(InvalidInput, match="outside the allowed directories") as exc:
        load_dataset(
            data_root / ".." / ".." / "etc" / "passwd", label_column="t", allowed_roots=[data_root]
        )
    assert str(data_root) in exc.value.hint
    with pytest.raises(InvalidInput, match="outside"):
        load_dataset("../../etc/passwd", label_column="t", allowed_roots=[data_root])
    secret = tmp_path / "secret.csv"
    secret.write_text("target,x\n1,2\n")
    os.symlink(secret, data_root / "innocent.csv")
    with pytest.raises(InvalidInput, match="outside"):
        load_dataset(data_root / "innocent.csv", label_column="target", allowed_roots=[data_root])
    os.symlink(tmp_path, data_root / "escape_dir")
    with pytest.raises(InvalidInput, match="outside"):
        load_dataset(
            data_root / "escape_dir" / "secret.csv",
            label_column="target",
            allowed_roots=[data_root],
        )
    with pytest.raises(InvalidInput, match="no allowed_roots"):
        load_dataset(data_root / "cancer.csv", label_column="target", allowed_roots=[])


def test_load_dataset_errors_name_the_problem(data_root) -> None:  # noqa: ANN001
    with pytest.raises(NotFound, match="missing.csv"):
        load_dataset(data_root / "missing.csv", label_column="target", allowed_roots=[data_root])
    with pytest.raises(InvalidInput, match="label column 'label' is not in cancer.csv") as exc:
        load_dataset(data_root / "cancer.csv", label_column="label", allowed_roots=[data_root])
    assert "'target'" in exc.value.hint and "'mean radius'" in exc.value.hint
    with pytest.raises(InvalidInput, match=r"unknown feature column\(s\) \['radius'\]"):
        load_dataset(
            data_root / "cancer.csv",
            label_column="target",
            allowed_roots=[data_root],
            columns=["radius"],
        )
    bad = data_root / "bad.jsonl"
    bad.write_text('{"target": 1, "x": 2}\n\n{"target": 0, "x": 3\n{"target": 1}\n')
    with pytest.raises(InvalidInput, match="bad.jsonl: line 3 is not valid JSON"):
        load_dataset(bad, label_column="target", allowed_roots=[data_root])
    (data_root / "list.jsonl").write_text('{"target": 1}\n[1, 2]\n')
    with pytest.raises(InvalidInput, match="line 2 is a JSON list"):
        load_dataset(data_root / "list.jsonl", label_column="target", allowed_roots=[data_root])
    (data_root / "gaps.csv").write_text("target,x\n1,2\n,3\n0,4\n")
    with pytest.raises(InvalidInput, match="missing values in 1 row .*positions 1"):
        load_dataset(data_root / "gaps.csv", label_column="target", allowed_roots=[data_root])
    (data_root / "data.xlsx").write_text("x")
    with pytest.raises(InvalidInput, match="unsupported file type"):
        load_dataset(data_root / "data.xlsx", label_column="target", allowed_roots=[data_root])
    (data_root / "broken.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(InvalidInput, match="cannot read broken.parquet"):
        load_dataset(data_root / "broken.parquet", label_column="target", allowed_roots=[data_root])
