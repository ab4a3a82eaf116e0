"""Mixed-type tabular models: a Pipeline(ColumnTransformer(OneHotEncoder on strings,
StandardScaler on numbers), LogisticRegression) on a generated churn table registers,
evaluates, is promoted, serves named rows with strings through a real gateway, refuses unknown
categories and missing columns with a 422 naming the column, and its drift counts new
categories. The optimizer keeps it on skops and says why."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from core.serving.app import BadRequest, parse_features
from core.serving.mixed_input import MixedSchema, build_schema

NAME = "churn-mixed"
STRINGS = ["plan", "gender", "region"]
NUMBERS = ["tenure", "charges"]
LABEL = "churned"


def churn_table(n: int = 600, seed: int = 7) -> pd.DataFrame:
    """A churn-like table: string plan/gender/region, numeric tenure/charges (fixed seed)."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "plan": rng.choice(["basic", "standard", "pro"], n),
            "gender": rng.choice(["female", "male"], n),
            "region": rng.choice(["north", "south", "east", "west"], n),
            "tenure": rng.integers(1, 73, n),
            "charges": rng.uniform(20, 120, n).round(2),
        }
    )
    risk = (df.plan == "basic") * 1.5 + (df.region == "south") * 1.0 - df.tenure / 24
    flip = rng.random(n) < 0.05
    df[LABEL] = ((risk > 0) ^ flip).astype(int)
    return df


def churn_pipeline(frame: pd.DataFrame, handle_unknown: str = "error") -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    prep = ColumnTransformer(
        [
            ("cat", OneHotEncoder(handle_unknown=handle_unknown), STRINGS),
            ("num", StandardScaler(), NUMBERS),
        ]
    )
    model = Pipeline([("prep", prep), ("model", LogisticRegression(max_iter=1000))])
    return model.fit(frame[STRINGS + NUMBERS], frame[LABEL])


SCHEMA = (
    ("plan", "string"),
    ("gender", "string"),
    ("region", "string"),
    ("tenure", "long"),
    ("charges", "double"),
)


# In process: the edge checks ----------------------------------------------------------------
def test_mixed_rows_keep_strings_and_refuse_what_the_model_cannot_take() -> None:
    frame = churn_table(200)
    schema = build_schema(churn_pipeline(frame), SCHEMA)
    assert schema.strict[0] == {"basic", "standard", "pro"}
    row = {"plan": "pro", "gender": "male", "region": "east", "tenure": 12, "charges": 50.5}
    x, single, logged = parse_features({"inputs": row}, 5, object, None, schema)
    assert single and x.dtype == object and x.tolist() == [["pro", "male", "east", 12, 50.5]]
    assert logged == row  # the log keeps names: monitoring reads columns by name
    x, single, logged = parse_features({"inputs": [row, row]}, 5, object, None, schema)
    assert not single and x.shape == (2, 5) and logged == [row, row]

    def refused(body: dict, *words: str) -> str:
        with pytest.raises(BadRequest) as exc:
            parse_features(body, 5, object, None, schema)
        assert exc.value.status == 422, exc.value
        for w in words:
            assert w in str(exc.value), (w, str(exc.value))
        return str(exc.value)

    refused({"inputs": {**row, "plan": "platinum"}}, "'plan'", "unknown category 'platinum'")
    refused({"inputs": {**row, "region": 3}}, "'region'", "expected a string")
    refused({"inputs": {**row, "tenure": "12"}}, "'tenure'", "expected a finite number")
    refused({"inputs": {**row, "charges": None}}, "'charges'")
    refused({"inputs": {k: v for k, v in row.items() if k != "gender"}}, "missing columns: gender")
    # Row vectors are for all-numeric versions only.
    refused({"features": ["pro", "male", "east", 12, 50.5]}, "string columns", "plan")


def test_an_encoder_that_ignores_unknown_categories_is_not_checked_at_the_edge() -> None:
    frame = churn_table(200)
    schema = build_schema(churn_pipeline(frame, handle_unknown="ignore"), SCHEMA)
    assert schema.strict == {} and schema.known[0] == ("basic", "pro", "standard")
    row = {"plan": "platinum", "gender": "male", "region": "east", "tenure": 1, "charges": 2.0}
    x, _, _ = parse_features({"inputs": row}, 5, object, None, schema)
    assert x[0, 0] == "platinum"  # the model ignores it, as its author chose


def test_the_numeric_fast_path_is_untouched_by_a_mixed_schema() -> None:
    x, single, feats = parse_features({"features": [1, 2.5, 3]}, 3, np.float64, None, None)
    assert x.dtype == np.float64 and single and feats == [1, 2.5, 3]
    assert isinstance(MixedSchema(("a",), ("number",)).warmup_row(), np.ndarray)


# The whole path through the tools and a real gateway ------------------------------------------
def _post(url: str, body: Any) -> Any:
    import httpx

    return httpx.post(f"{url}/predict", json=body, timeout=30)


@pytest.mark.slow
def test_churn_pipeline_registers_evaluates_promotes_and_serves_named_rows(rt, home) -> None:
    import skops.io

    from tests.test_serving_helpers import approve, wait_for_revision

    frame = churn_table()
    train, hold = frame.iloc[:450], frame.iloc[450:]
    model = churn_pipeline(train)
    Path("data").mkdir()
    train.to_csv("data/churn-train.csv", index=False)
    hold.to_csv("data/churn-holdout.csv", index=False)
    skops.io.dump(model, "churn.skops")
    dana, alice = (rt.services.policy.human(n) for n in ("dana", "alice"))
    call = rt.dispatcher.call_or_raise
    out = call(
        dana,
        "register_own_model",
        {"name": NAME, "source": "churn.skops", "training_data": "data/churn-train.csv"},
    )
    assert out["input_columns"] == STRINGS + NUMBERS and out["label_column"] == LABEL
    version = out["version"]

    # Evaluation feeds the table with its dtypes (strings stay strings).
    ev = call(
        dana,
        "evaluate_model",
        {
            "name": NAME,
            "version": version,
            "evaluation_dataset": "data/churn-holdout.csv",
            "label_column": LABEL,
        },
    )
    expected_acc = float((model.predict(hold[STRINGS + NUMBERS]) == hold[LABEL]).mean())
    assert ev["metrics"]["accuracy"] == pytest.approx(expected_acc) and expected_acc > 0.8

    req = call(
        dana,
        "request_promotion",
        {
            "name": NAME,
            "version": version,
            "dataset": "data/churn-holdout.csv",
            "label_column": LABEL,
        },
    )
    assert req["status"] in ("pending_approval", "pending_validation"), req
    promoted = call(alice, "promote_model", {"approval_id": approve(rt, NAME, version)})
    url = promoted["gateway_url"]
    try:
        wait_for_revision(url, promoted["revision"])
        rows = hold[STRINGS + NUMBERS].head(20)
        records = [
            {k: (int(v) if k == "tenure" else v) for k, v in r.items()}
            for r in rows.to_dict(orient="records")
        ]
        r = _post(url, {"inputs": records})
        assert r.status_code == 200, r.text
        assert r.json()["prediction"] == model.predict(rows).tolist()
        assert np.allclose(r.json()["probabilities"], model.predict_proba(rows))
        one = _post(url, {"inputs": records[0]}).json()
        assert one["prediction"] == int(model.predict(rows.head(1))[0])

        bad = _post(url, {"inputs": [{**records[0], "plan": "platinum"}]})
        assert bad.status_code == 422 and "'plan'" in bad.json()["error"], bad.text
        assert "unknown category 'platinum'" in bad.json()["error"]
        gone = _post(url, {"inputs": [{k: v for k, v in records[0].items() if k != "region"}]})
        assert gone.status_code == 422 and "missing columns: region" in gone.json()["error"]
        vec = _post(url, {"features": list(records[0].values())})
        assert vec.status_code == 422 and "string columns" in vec.json()["error"]

    finally:
        rt.services.deployments.stop_gateway(NAME)


@pytest.mark.slow
def test_drift_report_counts_a_new_category_in_served_traffic(rt, home) -> None:
    """An encoder that ignores unknown categories serves them; drift names them."""
    import skops.io

    from tests.test_serving_helpers import wait_for_revision

    frame = churn_table()
    model = churn_pipeline(frame, handle_unknown="ignore")
    Path("data").mkdir()
    frame.to_csv("data/churn.csv", index=False)
    skops.io.dump(model, "churn.skops")
    dana = rt.services.policy.human("dana")
    call = rt.dispatcher.call_or_raise
    v = call(
        dana,
        "register_own_model",
        {"name": NAME, "source": "churn.skops", "training_data": "data/churn.csv"},
    )["version"]
    dep = call(dana, "deploy_to_staging", {"name": NAME, "version": v})
    url = dep["gateway_url"]
    try:
        wait_for_revision(url, dep["revision"])
        rows = frame[STRINGS + NUMBERS].head(60).copy()
        rows.loc[rows.index[:30], "plan"] = "platinum"
        records = [
            {k: (int(x) if k == "tenure" else x) for k, x in r.items()}
            for r in rows.to_dict(orient="records")
        ]
        r = _post(url, {"inputs": records})
        assert r.status_code == 200 and r.json()["prediction"] == model.predict(rows).tolist()
        deadline = time.monotonic() + 30
        while True:  # the gateway writes its log off the request path, in batches
            report = call(
                dana, "monitor_report", {"model_id": f"{NAME}/{v}", "environment": "staging"}
            )["report"]
            plan = _column(report, "plan")
            if plan is not None and plan.get("n_current", 0) >= 60 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert plan is not None, report
        assert plan["kind"] == "categorical" and plan["new_categories"] == ["platinum"], plan
        assert plan["method"] in ("chisquare", "jensenshannon") and plan["drifted"] is True
        assert _column(report, "gender")["new_categories"] == []
    finally:
        rt.services.deployments.stop_gateway(NAME)


def _column(report: dict, name: str) -> dict | None:
    """The drift entry of one column, wherever the report nests it."""
    stack: list[Any] = [report]
    while stack:
        obj = stack.pop()
        if isinstance(obj, dict):
            if obj.get("column") == name and "new_categories" in obj:
                return obj
            stack.extend(obj.values())
        elif isinstance(obj, list):
            stack.extend(obj)
    return None


def test_optimizer_keeps_a_string_input_version_on_skops_and_says_why(rt, home) -> None:
    import json

    import skops.io

    frame = churn_table(200)
    Path("data").mkdir()
    frame.to_csv("data/churn.csv", index=False)
    skops.io.dump(churn_pipeline(frame), "churn.skops")
    dana = rt.services.policy.human("dana")
    call = rt.dispatcher.call_or_raise
    v = call(
        dana,
        "register_own_model",
        {"name": NAME, "source": "churn.skops", "training_data": "data/churn.csv"},
    )["version"]
    out = call(dana, "optimize_model", {"model_id": f"{NAME}/{v}", "label_column": LABEL})
    assert not out["registered"] and out["adopted"] == "sklearn", out
    assert "string columns (plan, gender, region)" in out["reason"]
    assert json.loads(Path(out["report"]).read_text())["reason"] == out["reason"]
    assert [x.version for x in rt.services.registry.list_versions(NAME)] == [v]
