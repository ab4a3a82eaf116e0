"""Bring your own model: `agent models register` / the register_own_model tool / the
ml-model-registry seed workflow register skops files, ONNX files, MLflow model directories and
MLflow runs (scikit-learn, XGBoost, LightGBM); pickle, paths outside the roots, models without
an input schema, duplicate version labels and NaN samples are refused; claimed metrics stay
claimed; /predict takes named columns; ONNX exports keep the pyfunc input of their source."""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

NAME = "churn-classifier"
FEATURES = ["tenure", "monthly_charges", "support_calls", "age"]
LABEL = "churned"


# Helpers ------------------------------------------------------------------------------------
def churn_frame(n: int = 240, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "tenure": rng.uniform(1, 72, n),
            "monthly_charges": rng.uniform(20, 120, n),
            "support_calls": rng.poisson(2, n).astype(float),
            "age": rng.uniform(18, 80, n),
        }
    )
    df[LABEL] = ((df.support_calls > 2) & (df.tenure < 30)).astype(int)
    return df


def fitted(kind: str = "sklearn", frame: pd.DataFrame | None = None) -> Any:
    frame = churn_frame() if frame is None else frame
    X, y = frame[FEATURES], frame[LABEL]
    if kind == "xgboost":
        xgboost = pytest.importorskip("xgboost", reason="xgboost not installed (extra: boosting)")
        return xgboost.XGBClassifier(n_estimators=10, max_depth=3).fit(X, y)
    if kind == "lightgbm":
        lightgbm = pytest.importorskip(
            "lightgbm", reason="lightgbm not installed (extra: boosting)"
        )
        return lightgbm.LGBMClassifier(n_estimators=10, verbose=-1).fit(X, y)
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)


def write_skops(model: Any, path: Path) -> Path:
    import skops.io

    skops.io.dump(model, path)
    return path


def write_data(home_dir: Path, frame: pd.DataFrame | None = None) -> Path:
    """The training CSV, under the working directory (the test's tmp dir)."""
    path = Path.cwd() / "data" / "churn.csv"
    path.parent.mkdir(exist_ok=True)
    (churn_frame() if frame is None else frame).to_csv(path, index=False)
    return path


def register(rt: Any, **args: Any) -> Any:
    dana = rt.services.policy.human("dana")
    return rt.dispatcher.call(dana, "register_own_model", {"name": NAME, **args})


def ok(result: Any) -> dict[str, Any]:
    assert result.ok, result.error
    return result.output


def refused(result: Any, code: str, *words: str) -> str:
    assert not result.ok and result.error.code == code, result
    text = f"{result.error.message} {result.error.hint}"
    for w in words:
        assert w in text, (w, text)
    return text


def agent(capsys: Any, *args: str) -> tuple[int, str, str]:
    from agents.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out, out.err


# Registration from each source ---------------------------------------------------------------
@pytest.mark.slow  # the evaluation at the end imports the whole evaluation stack
def test_skops_file_with_training_data_claims_and_label(rt, home) -> None:
    data = write_data(home)
    model = write_skops(fitted(), Path("churn.skops"))
    out = ok(
        register(
            rt,
            source=str(model),
            version_label="2.1.0",
            metrics={"accuracy": 0.99, "f1": 0.97},
            training_data=str(data.relative_to(Path.cwd())),
            framework="sklearn",
        )
    )
    assert out["version"] == "1" and out["version_label"] == "2.1.0"
    assert out["model_format"] == "skops" and out["framework"] == "sklearn"
    assert out["input_columns"] == FEATURES and out["label_column"] == LABEL
    assert out["training_dataset"] == "logged:training"
    assert out["honesty"] == {
        "implementation_status": "HEURISTIC",
        "accuracy_claim": "claimed by the registrant: accuracy=0.99, f1=0.97",
        "validation_method": "none yet: awaiting QA re-evaluation",
        "honesty_warning": "UNVALIDATED",
    }
    assert out["claimed_metrics"] == {"accuracy": 0.99, "f1": 0.97}

    reg = rt.services.registry
    info = reg.get(NAME, "1")
    assert info.version_label == "2.1.0" and info.tags["version_label"] == "2.1.0"
    assert json.loads(info.tags["claimed_metrics"]) == {"accuracy": 0.99, "f1": 0.97}
    assert "Claimed by the registrant, not measured: accuracy=0.99" in info.description
    # Claims are never MLflow run metrics, never a validation verdict.
    assert reg.client.get_run(info.run_id).data.metrics == {}
    verdicts = [k for k in info.tags if k.startswith(("validation_", "validated_"))]
    assert verdicts == ["validation_method"]  # the honesty field; no verdict tag
    # The rows are the version's training dataset: evaluation measures on them.
    assert reg.logged_dataset_path(NAME, "1", "training").is_file()
    dana = rt.services.policy.human("dana")
    ev = rt.dispatcher.call_or_raise(
        dana,
        "evaluate_model",
        {"model_id": f"{NAME}/1", "evaluation_dataset": "logged:training", "label_column": LABEL},
    )
    measured = ev["report"]["metrics"]["accuracy"] if "report" in ev else ev["metrics"]["accuracy"]
    assert 0 < measured <= 1 and measured != 0.99
    # The loader builds the estimator from the verified skops bytes.
    assert reg.load_sklearn(NAME, "1").predict(churn_frame()[FEATURES].head(2)).shape == (2,)


def test_models_show_labels_claims_and_the_version_label(rt, home, capsys) -> None:
    data = write_data(home)
    write_skops(fitted(), Path("churn.skops"))
    code, out, err = agent(
        capsys,
        "models",
        "register",
        NAME,
        "--from-path",
        "churn.skops",
        "--version-label",
        "1.0.0",
        "--metrics-json",
        '{"auc_roc": 0.95}',
        "--training-data",
        str(data),
        "--as",
        "dana",
    )
    assert code == 0, err
    assert "Registered churn-classifier v1 (1.0.0)" in out and "claimed, not measured" in out
    code, out, err = agent(capsys, "models", "show", NAME, "--as", "dana")
    assert code == 0, err
    assert "version label          1.0.0" in out
    assert "auc_roc=0.95 (claimed, not measured)" in out
    assert "not validated" in out
    code, out, _ = agent(capsys, "models", "show", NAME, "--as", "dana", "--json")
    version = json.loads(out)["versions"][0]
    assert version["version_label"] == "1.0.0" and version["claimed_metrics"] == {"auc_roc": 0.95}


def test_from_run_registers_the_run_itself_and_drops_reserved_tags(rt, home) -> None:
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature

    from core.tracking import ensure_experiment

    reg = rt.services.registry
    frame = churn_frame()
    model = fitted(frame=frame)
    exp = ensure_experiment(reg.client, "elsewhere", reg.artifact_root)
    with mlflow.start_run(experiment_id=exp) as run:
        mlflow.set_tags({"validation_status": "PASSED", "version_label": "9.9.9", "team": "x"})
        mlflow.log_metric("val_accuracy", 0.9)  # the trainer's own run metric stays theirs
        mlflow.sklearn.log_model(
            model,
            name="model",
            serialization_format="skops",
            signature=infer_signature(
                frame[FEATURES].head(3), model.predict(frame[FEATURES].head(3))
            ),
            pip_requirements=["scikit-learn"],
        )
    out = ok(register(rt, source=f"runs:/{run.info.run_id}", version_label="3.0.0"))
    assert out["run_id"] == run.info.run_id and out["input_columns"] == FEATURES
    assert {"validation_status", "version_label"} <= set(out["dropped_tags"])
    info = reg.get(NAME, out["version"])
    assert info.tags["team"] == "x" and "validation_status" not in info.tags
    assert info.version_label == "3.0.0" and info.honesty["implementation_status"] == "HEURISTIC"
    # Same label again: Conflict, and nothing new is registered.
    refused(register(rt, source=run.info.run_id, version_label="3.0.0"), "conflict", "3.0.0")
    assert [v.version for v in reg.list_versions(NAME)] == [out["version"]]


def test_from_run_without_signature_takes_one_from_the_sample(rt, home) -> None:
    import mlflow
    import mlflow.sklearn

    from core.tracking import ensure_experiment

    reg = rt.services.registry
    exp = ensure_experiment(reg.client, "elsewhere", reg.artifact_root)
    with mlflow.start_run(experiment_id=exp) as run:
        mlflow.sklearn.log_model(
            fitted(), name="model", serialization_format="skops", pip_requirements=["scikit-learn"]
        )
    refused(register(rt, source=f"runs:/{run.info.run_id}"), "invalid_input", "--sample")
    churn_frame()[FEATURES].head(5).to_csv("sample.csv", index=False)
    out = ok(register(rt, source=f"runs:/{run.info.run_id}", sample="sample.csv"))
    assert out["input_columns"] == FEATURES and out["run_id"] == run.info.run_id
    reg.load_sklearn(NAME, out["version"])  # the manifest covers the MLmodel with its signature


def test_onnx_file_takes_its_columns_from_the_sample(rt, home) -> None:
    import mlflow.pyfunc
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    model = fitted()
    proto = convert_sklearn(
        model, initial_types=[("input", FloatTensorType([None, 4]))], options={"zipmap": False}
    )
    Path("churn.onnx").write_bytes(proto.SerializeToString())
    frame = churn_frame()
    refused(register(rt, source="churn.onnx"), "invalid_input", "input schema")
    frame[FEATURES].head(5).to_csv("sample.csv", index=False)
    out = ok(register(rt, source="churn.onnx", sample="sample.csv", framework="sklearn"))
    assert out["model_format"] == "onnx" and out["framework"] == "sklearn"
    assert out["input_columns"] == FEATURES
    reg = rt.services.registry
    assert type(reg.load(NAME, "1")).__name__ == "OnnxPredictor"
    # A pyfunc consumer sends the named columns (any order) and gets the labels back.
    pyfunc = mlflow.pyfunc.load_model(f"models:/{NAME}/1")
    shuffled = frame[list(reversed(FEATURES))].head(50)
    assert pyfunc.predict(shuffled).tolist() == model.predict(frame[FEATURES].head(50)).tolist()


def test_mlflow_model_directory_keeps_its_signature(rt, home) -> None:
    import mlflow.sklearn
    from mlflow.models import infer_signature

    frame = churn_frame()
    model = fitted(frame=frame)
    sig = infer_signature(frame[FEATURES].head(3), model.predict(frame[FEATURES].head(3)))
    mlflow.sklearn.save_model(
        model, "exported", serialization_format="skops", signature=sig, pip_requirements=["x"]
    )
    out = ok(register(rt, source="exported", version_label="1.2.3"))
    assert out["model_format"] == "skops" and out["input_columns"] == FEATURES
    assert rt.services.registry.get(NAME, "1").tags["registered_from"] == (
        "MLflow model directory exported"
    )


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["xgboost", "lightgbm"])
def test_boosting_models_go_through_skops(rt, home, kind: str) -> None:
    data = write_data(home)
    model = fitted(kind)
    write_skops(model, Path(f"{kind}.skops"))
    out = ok(register(rt, source=f"{kind}.skops", training_data=str(data), framework=kind))
    assert out["framework"] == kind and out["model_format"] == "skops"
    assert out["label_column"] == LABEL and out["input_columns"] == FEATURES
    assert out["reference_profile"].startswith("captured"), out["reference_profile"]
    loaded = rt.services.registry.load_sklearn(NAME, out["version"])
    X = churn_frame()[FEATURES].head(20)
    assert loaded.predict(X).tolist() == model.predict(X).tolist()
    # The framework given must be the one in the file.
    other = "lightgbm" if kind == "xgboost" else "xgboost"
    refused(register(rt, source=f"{kind}.skops", sample=None, framework=other), "invalid_input")


@pytest.mark.slow
def test_xgboost_mlflow_directory_in_its_native_format(rt, home) -> None:
    pytest.importorskip("xgboost", reason="xgboost not installed (extra: boosting)")
    import mlflow.xgboost

    model = fitted("xgboost")
    # UBJ, XGBoost's own format (no pickle); explicit requirements skip MLflow's 7 s inference.
    mlflow.xgboost.save_model(model, "xgb-dir", pip_requirements=["xgboost"])
    churn_frame()[FEATURES].head(5).to_csv("sample.csv", index=False)
    out = ok(register(rt, source="xgb-dir", sample="sample.csv"))
    assert out["framework"] == "xgboost" and out["model_format"] == "skops"
    X = churn_frame()[FEATURES].head(20)
    loaded = rt.services.registry.load_sklearn(NAME, out["version"])
    assert loaded.predict(X).tolist() == model.predict(X).tolist()
    # A run that logged it with mlflow.xgboost: re-logged as skops in a new run, with lineage.
    import mlflow
    from mlflow.models import infer_signature

    from core.tracking import ensure_experiment

    reg = rt.services.registry
    with mlflow.start_run(
        experiment_id=ensure_experiment(reg.client, "elsewhere", reg.artifact_root)
    ) as run:
        mlflow.xgboost.log_model(
            model,
            name="model",
            signature=infer_signature(X.head(3), model.predict(X.head(3))),
            pip_requirements=["xgboost"],
        )
    out = ok(register(rt, source=f"runs:/{run.info.run_id}", version_label="1.0.0"))
    info = rt.services.registry.get(NAME, out["version"])
    assert out["model_format"] == "skops" and info.run_id != run.info.run_id
    assert info.tags["source_run_id"] == run.info.run_id and out["input_columns"] == FEATURES


# Refusals -------------------------------------------------------------------------------------
def test_pickle_and_joblib_are_refused_with_how_to_save_instead(rt, home) -> None:
    model = fitted()
    for name in ("model.pkl", "model.joblib"):
        Path(name).write_bytes(pickle.dumps(model))
        refused(register(rt, source=name), "invalid_input", "pickle", "skops.io.dump", "ONNX")
    Path("model.bin").write_bytes(pickle.dumps(model))  # a pickle by any other name
    refused(register(rt, source="model.bin"), "invalid_input", "pickle", "skops.io.dump")
    # A pickled model inside an MLflow directory is refused too.
    import mlflow.sklearn

    mlflow.sklearn.save_model(
        model, "pickled-dir", serialization_format="cloudpickle", pip_requirements=["x"]
    )
    refused(register(rt, source="pickled-dir"), "invalid_input", "skops")
    assert rt.services.registry.list_models() == []


def test_paths_outside_the_roots_and_missing_files_are_refused(rt, home) -> None:
    outside = Path.cwd().parent / "x.skops"
    write_skops(fitted(), outside)
    try:
        refused(register(rt, source="../x.skops"), "invalid_input", "outside the allowed")
        refused(register(rt, source=str(outside)), "invalid_input", "outside the allowed")
        write_skops(fitted(), Path("m.skops"))
        refused(register(rt, source="m.skops", sample="../x.skops"), "invalid_input", "outside")
        refused(register(rt, source="nope.skops"), "not_found", "does not exist")
    finally:
        outside.unlink()


def test_no_signature_and_no_sample_is_refused_with_a_hint(rt, home) -> None:
    write_skops(fitted(), Path("m.skops"))
    refused(register(rt, source="m.skops"), "invalid_input", "--sample", "--training-data")


def test_duplicate_and_invalid_version_labels(rt, home) -> None:
    write_skops(fitted(), Path("m.skops"))
    churn_frame()[FEATURES].head(5).to_csv("sample.csv", index=False)
    ok(register(rt, source="m.skops", sample="sample.csv", version_label="2.1.0"))
    refused(
        register(rt, source="m.skops", sample="sample.csv", version_label="2.1.0"),
        "conflict",
        "2.1.0",
    )
    for bad in ("2.1", "v2.1.0", "02.1.0", "2.1.0 ", "../1.0.0"):
        res = register(rt, source="m.skops", sample="sample.csv", version_label=bad)
        assert not res.ok and res.error.code == "invalid_input", bad
    ok(register(rt, source="m.skops", sample="sample.csv", version_label="2.1.1-rc.1"))
    assert [v.version_label for v in rt.services.registry.list_versions(NAME)] == [
        "2.1.0",
        "2.1.1-rc.1",
    ]


def test_bad_samples_and_claims_are_refused(rt, home) -> None:
    write_skops(fitted(), Path("m.skops"))
    sample = churn_frame()[FEATURES].head(5)
    nan = sample.copy()
    nan.loc[2, "age"] = math.nan
    nan.to_csv("nan.csv", index=False)
    refused(register(rt, source="m.skops", sample="nan.csv"), "invalid_input", "age", "row 3")
    sample.drop(columns=["age"]).assign(height=1.0).to_csv("cols.csv", index=False)
    refused(register(rt, source="m.skops", sample="cols.csv"), "invalid_input", "age", "height")
    sample.assign(age="old").to_csv("text.csv", index=False)
    refused(register(rt, source="m.skops", sample="text.csv"), "invalid_input", "non-numeric")
    sample.to_csv("sample.csv", index=False)
    res = register(rt, source="m.skops", sample="sample.csv", metrics={"accuracy": "high"})
    assert not res.ok and res.error.code == "invalid_input"
    refused(
        register(rt, source="m.skops", sample="sample.csv", metrics={"bad name": 1.0}),
        "invalid_input",
        "metric name",
    )
    assert rt.services.registry.list_models() == []


def test_a_skops_file_with_an_untrusted_type_is_refused(rt, home) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    # A function outside numpy/scikit-learn is a type skops does not build for us.
    write_skops(
        make_pipeline(FunctionTransformer(math.sqrt), LogisticRegression()), Path("m.skops")
    )
    refused(register(rt, source="m.skops"), "invalid_input", "trusted", "math.sqrt")


def test_supplied_honesty_is_kept_and_claims_never_become_validation(rt, home) -> None:
    write_skops(fitted(), Path("m.skops"))
    churn_frame()[FEATURES].head(5).to_csv("sample.csv", index=False)
    honesty = {
        "implementation_status": "IMPLEMENTED",
        "accuracy_claim": "accuracy 0.93 on our 2k-row holdout",
        "validation_method": "5-fold CV at the vendor",
        "honesty_warning": "VALIDATED",
    }
    out = ok(
        register(rt, source="m.skops", sample="sample.csv", honesty=honesty, metrics={"acc": 0.93})
    )
    assert out["honesty"] == honesty
    info = rt.services.registry.get(NAME, out["version"])
    # No validation record exists for it: the state DB decides, and it holds nothing.
    assert rt.services.validations.for_version(NAME, out["version"]) == []
    assert "validation_status" not in info.tags and info.claimed_metrics == {"acc": 0.93}


# The seed workflow ----------------------------------------------------------------------------
def test_seed_workflow_input_registers_the_model(rt, home, capsys) -> None:
    data = write_data(home)
    write_skops(fitted(), Path("churn.skops"))
    seed = {
        "model_path": "churn.skops",
        "model_name": NAME,
        "version": "2.1.0",
        "metrics": {"accuracy": 0.91},
        "training_data": str(data.relative_to(Path.cwd())),
        "framework": "sklearn",
    }
    args = ("workflow", "run", "ml-model-registry", "--as", "dana", "--input", json.dumps(seed))
    code, out, err = agent(capsys, *args, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["version"] == "1" and result["version_label"] == "2.1.0"
    assert result["claimed_metrics"] == {"accuracy": 0.91}
    assert result["training_dataset"] == "logged:training" and result["label_column"] == LABEL
    code, _, err = agent(capsys, *args)
    assert code == 1 and "already has version label 2.1.0" in err
    run = ("workflow", "run", "ml-model-registry", "--input")
    code, _, err = agent(capsys, *run, json.dumps({**seed, "model_pth": "x"}), "--as", "dana")
    assert code == 2 and "model_pth" in err
    # An architect (read + design) may not register.
    code, _, err = agent(capsys, *run, json.dumps({**seed, "version": "2.2.0"}), "--as", "carol")
    assert code == 3, err


# Serving ------------------------------------------------------------------------------------
def test_parse_features_named_columns_in_process() -> None:
    from core.serving.app import BadRequest, parse_features

    cols = {"a": 0, "b": 1, "c": 2}
    x, single, _ = parse_features({"inputs": {"c": 3, "a": 1, "b": 2}}, 3, np.float64, cols)
    assert single and x.tolist() == [[1, 2, 3]]
    x, single, _ = parse_features({"inputs": [{"b": 2, "c": 3, "a": 1}]}, 3, np.float64, cols)
    assert not single and x.tolist() == [[1, 2, 3]]
    body = {"columns": ["c", "b", "a"], "data": [[3, 2, 1], [6, 5, 4]]}
    x, single, _ = parse_features(body, 3, np.float64, cols)
    assert x.tolist() == [[1, 2, 3], [4, 5, 6]]
    x, _, _ = parse_features({"dataframe_split": body}, 3, np.float64, cols)
    assert x.tolist() == [[1, 2, 3], [4, 5, 6]]
    x, _, _ = parse_features({"features": [1, 2, 3]}, 3, np.float64, cols)
    assert x.tolist() == [[1, 2, 3]]
    for body, words in [
        ({"inputs": [{"a": 1, "b": 2}]}, ["missing columns: c"]),
        ({"inputs": [{"a": 1, "b": 2, "c": 3, "d": 4}]}, ["unknown columns: d"]),
        ({"inputs": [{"a": 1, "b": 2, "x": 3}]}, ["missing columns: c", "unknown columns: x"]),
        ({"columns": ["a", "b"], "data": [[1, 2]]}, ["missing columns: c"]),
        ({"columns": ["a", "b", "c"], "data": [[1, 2]]}, ["3 values"]),
        ({"inputs": [{"a": "1", "b": 2, "c": 3}]}, ["expected a number"]),
        ({"inputs": [{"a": math.nan, "b": 2, "c": 3}]}, ["NaN"]),
        ({"inputs": []}, ['"inputs"']),
    ]:
        with pytest.raises(BadRequest) as exc:
            parse_features(body, 3, np.float64, cols)
        assert exc.value.status == 422
        for w in words:
            assert w in str(exc.value), (body, str(exc.value))
    with pytest.raises(BadRequest, match="declares no input column names"):
        parse_features({"inputs": {"a": 1}}, 3, np.float64, None)


@pytest.mark.slow
def test_predict_accepts_named_columns_and_row_vectors_and_rejects_wrong_columns(rt, home):
    import httpx

    from tests.test_serving_helpers import wait_for_revision

    data = write_data(home)
    model = fitted("xgboost")
    write_skops(model, Path("churn.skops"))
    ok(register(rt, source="churn.skops", training_data=str(data)))
    dana = rt.services.policy.human("dana")
    dep = rt.dispatcher.call_or_raise(dana, "deploy_to_staging", {"name": NAME, "version": "1"})
    url = dep["gateway_url"]
    wait_for_revision(url, dep["revision"])
    frame = churn_frame()[FEATURES].head(2)
    rows = frame.to_numpy().tolist()
    expected = model.predict(frame).tolist()
    records = frame.to_dict(orient="records")
    shuffled = list(reversed(FEATURES))
    with httpx.Client(timeout=30) as client:

        def post(body: Any) -> httpx.Response:
            return client.post(f"{url}/predict", json=body)

        assert post({"features": rows[0]}).json()["prediction"] == expected[0]
        batch = post({"features": rows}).json()
        assert batch["prediction"] == expected and len(batch["probabilities"]) == 2
        assert post({"inputs": records}).json()["prediction"] == expected
        assert post({"inputs": records[0]}).json()["prediction"] == expected[0]
        split = {"columns": shuffled, "data": frame[shuffled].to_numpy().tolist()}
        assert post(split).json()["prediction"] == expected
        r = post({"inputs": [{k: v for k, v in records[0].items() if k != "age"}]})
        assert r.status_code == 422 and "missing columns: age" in r.json()["error"]
        r = post({"inputs": [{**records[0], "zip": 1}]})
        assert r.status_code == 422 and "unknown columns: zip" in r.json()["error"]
        r = post({"columns": ["tenure", "age"], "data": [[1.0, 2.0]]})
        assert r.status_code == 422 and "monthly_charges" in r.json()["error"]
        assert client.get(f"{url}/health").json()["status"] == "ok"


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:X does not have valid feature names")
def test_onnx_export_takes_the_same_pyfunc_input_as_its_source(registered) -> None:
    import mlflow.pyfunc

    rt = registered["rt"]
    name, src = registered["name"], registered["versions"][1]
    dana = rt.services.policy.human("dana")
    out = rt.dispatcher.call_or_raise(
        dana,
        "optimize_model",
        {"model_id": f"{name}/{src}", "dataset": registered["holdout"], "benchmark_seconds": 0.1},
    )
    assert out["registered"], out
    holdout = pd.read_csv(registered["holdout"]).drop(columns=["target"]).head(40)
    sk = mlflow.pyfunc.load_model(f"models:/{name}/{src}")
    onnx = mlflow.pyfunc.load_model(f"models:/{name}/{out['version']}")
    names = sk.metadata.get_input_schema().input_names()
    assert onnx.metadata.get_input_schema().input_names() == names
    frame = holdout[names]
    assert onnx.predict(frame).tolist() == sk.predict(frame).tolist()
    # Columns out of order are put in the signature's order for both.
    assert onnx.predict(frame[names[::-1]]).tolist() == sk.predict(frame).tolist()
    # The gateway and the verifier still load the ONNX version from its manifest.
    info = rt.services.registry.get(name, out["version"])
    assert type(rt.services.registry.load(name, info.version)).__name__ == "OnnxPredictor"
