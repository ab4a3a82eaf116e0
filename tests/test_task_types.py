"""Task types end to end: a version's task (binary, multiclass, regression) is detected from its
model, recorded once, and picks the metrics, the policy's thresholds and the champion metric."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from core.errors import GateFailed, InvalidInput
from core.honesty import HonestyMetadata, HonestyWarning, ImplementationStatus
from core.tasks import TASK_TAG, resolve_task
from policies.gates import check_promotion
from policies.thresholds_schema import validate_thresholds
from tests.helpers.cli import run_agent

REG = "diabetes-regressor"
HONEST = HonestyMetadata(
    implementation_status=ImplementationStatus.IMPLEMENTED,
    accuracy_claim="r2 0.37 on a 30% holdout",
    validation_method="holdout split",
    honesty_warning=HonestyWarning.VALIDATED,
)


# --- helpers ------------------------------------------------------------------------------


def _split(loader: Any) -> tuple[Any, Any, list[str]]:
    from sklearn.model_selection import train_test_split

    frame = loader(as_frame=True).frame
    features = [c for c in frame.columns if c != "target"]
    train, holdout = train_test_split(frame, test_size=0.3, random_state=0)
    return train, holdout, features


def _register(rt: Any, name: str, model: Any, train: Any, holdout: Any, features: list[str]) -> str:
    """Log the fitted model the product's way and register it through the register_model tool."""
    run_id = rt.services.registry.log_sklearn_run(
        model,
        X_sample=train[features].head(3),
        honesty=HONEST,
        run_name=type(model).__name__,
        dataset=train,
        eval_datasets={"holdout": holdout},
    )
    out = rt.dispatcher.call_or_raise(
        rt.services.policy.human("dana"),
        "register_model",
        {"name": name, "run_id": run_id, "honesty": HONEST.model_dump(mode="json")},
    )
    return out["version"]


def _csv(rt: Any, frame: Any, name: str) -> str:
    path = rt.settings.home_dir / "data" / f"{name}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return str(path)


def _apply_thresholds(rt: Any, change: Any) -> None:
    """Make a changed thresholds.yaml the policy in force, as `agent policy apply` does."""
    from policies.pinned import apply_policy, load_pinned, parse_texts

    s = rt.services
    pinned = load_pinned(s.settings.home_dir, audit=s.audit)
    data = yaml.safe_load(pinned.current.texts["thresholds.yaml"])
    change(data)
    new = parse_texts({**pinned.current.texts, "thresholds.yaml": yaml.safe_dump(data)}, "test")
    alice = s.policy.human("alice", authenticated=True)
    apply_policy(
        s.settings.home_dir, new, actor=alice, audit=s.audit, expected_digest=pinned.digest
    )
    s.forget_policy()


def _evaluate(rt: Any, name: str, version: str, dataset: str, **extra: Any) -> dict:
    return rt.dispatcher.call_or_raise(
        rt.services.policy.human("dana"),
        "evaluate_model",
        {"name": name, "version": version, "evaluation_dataset": dataset, **extra},
    )


def _evidence(rt: Any, name: str, version: str, dataset: str) -> dict:
    return rt.dispatcher.call_or_raise(
        rt.services.policy.human("dana"),
        "collect_promotion_evidence",
        {"name": name, "version": version, "dataset": dataset},
    )["evidence"]


def _gates(evidence: dict) -> dict[str, dict]:
    return {c["name"]: c for c in evidence["gates"]["checks"]}


@pytest.fixture(scope="module")
def diabetes() -> dict:
    from sklearn.datasets import load_diabetes
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.linear_model import LinearRegression

    train, holdout, features = _split(load_diabetes)
    gbr = GradientBoostingRegressor(
        n_estimators=100, max_depth=2, learning_rate=0.05, random_state=0
    ).fit(train[features], train["target"])
    linear = LinearRegression().fit(train[features], train["target"])
    return {"train": train, "holdout": holdout, "features": features, "gbr": gbr, "lin": linear}


# --- regression, the whole path -----------------------------------------------------------


@pytest.mark.slow
def test_regression_evaluated_gated_compared_approved_deployed_and_served(rt, diabetes, capsys):
    from sklearn import metrics as skm

    d, f = diabetes, diabetes["features"]
    v1 = _register(rt, REG, d["gbr"], d["train"], d["holdout"], f)
    holdout = _csv(rt, d["holdout"], "diabetes_holdout")

    ev = _evaluate(rt, REG, v1, holdout)
    assert ev["task"] == "regression"
    # The metrics are scikit-learn's on the same rows (the CSV read back, as the tool does).
    import pandas as pd

    rows = pd.read_csv(holdout)
    y, pred = rows["target"].to_numpy(), d["gbr"].predict(rows[f])
    assert ev["metrics"]["mae"] == pytest.approx(skm.mean_absolute_error(y, pred), rel=1e-12)
    assert ev["metrics"]["rmse"] == pytest.approx(skm.root_mean_squared_error(y, pred), rel=1e-12)
    assert ev["metrics"]["r2"] == pytest.approx(skm.r2_score(y, pred), rel=1e-12)
    assert ev["metrics"]["mape"] == pytest.approx(
        skm.mean_absolute_percentage_error(y, pred), rel=1e-12
    )
    assert not {"accuracy", "f1", "auc_roc"} & set(ev["metrics"]) | set(ev["unavailable"])
    # Residual slices: each slice's error is its mean absolute error, the lift over the MAE.
    worst = ev["worst_slices"][0]
    assert worst["error"] == pytest.approx(ev["metrics"]["mae"] + worst["lift"], rel=1e-9)
    # Recorded once, by the evaluation; read back by every later call.
    assert rt.services.registry.get(REG, v1).tags[TASK_TAG] == "regression"

    # The bundled policy's regression minimum (r2 >= 0.40) judges it: r2 0.37 is blocked.
    gates = _gates(_evidence(rt, REG, v1, holdout))
    assert not gates["min_r2"]["passed"] and "< minimum 0.4" in gates["min_r2"]["message"]
    assert "min_accuracy" not in gates and "min_f1" not in gates

    # This model's own bounds in the pinned policy: a floor on r2, a ceiling on rmse.
    def model_bounds(rmse_max: float):  # noqa: ANN202
        def change(data: dict) -> None:
            data["models"] = {
                REG: {
                    "regression": {
                        "minimums": {"IMPLEMENTED": {"r2": 0.30}},
                        "maximums": {"IMPLEMENTED": {"rmse": rmse_max}},
                    }
                }
            }

        return change

    _apply_thresholds(rt, model_bounds(50.0))
    gates = _gates(_evidence(rt, REG, v1, holdout))
    assert gates["min_r2"]["passed"]
    assert not gates["max_rmse"]["passed"] and "> maximum 50.0" in gates["max_rmse"]["message"]
    _apply_thresholds(rt, model_bounds(60.0))
    evidence = _evidence(rt, REG, v1, holdout)
    assert evidence["gates"]["passed"], evidence["gates"]
    assert evidence["candidate"]["task"] == "regression"
    assert _gates(evidence)["max_rmse"]["message"].startswith("rmse 56.")

    dana, alice = rt.services.policy.human("dana"), rt.services.policy.human("alice")
    out = rt.dispatcher.call_or_raise(
        dana, "request_promotion", {"name": REG, "version": v1, "dataset": holdout}
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
    row = d["holdout"][f].iloc[[5]]
    served = rt.dispatcher.call_or_raise(
        alice, "predict", {"name": REG, "features": row.iloc[0].tolist()}
    )["response"]
    assert served["prediction"] == pytest.approx(float(d["gbr"].predict(row)[0]), rel=1e-9)
    assert served["model_version"] == v1

    # A challenger is compared with the champion by a paired bootstrap on rmse (lower wins).
    v2 = _register(rt, REG, d["lin"], d["train"], d["holdout"], f)
    ev2 = _evaluate(rt, REG, v2, holdout)
    comp = ev2["comparison"]
    assert ev2["champion_version"] == v1 and comp["primary_metric"] == "rmse"
    assert comp["primary_higher_is_better"] is False
    rmse = comp["per_metric"]["rmse"]
    lin_rmse = skm.root_mean_squared_error(y, d["lin"].predict(rows[f]))
    assert rmse["difference"] == pytest.approx(lin_rmse - ev["metrics"]["rmse"], rel=1e-9)
    assert rmse["ci_low"] <= rmse["difference"] <= rmse["ci_high"]
    evidence2 = _evidence(rt, REG, v2, holdout)
    vs = _gates(evidence2)["vs_champion"]
    assert f"vs champion v{v1} (rmse, paired bootstrap)" in vs["message"]

    shown = rt.services.approvals.create(REG, v2, evidence2, dana)
    code, text, err = run_agent(capsys, "approvals", "show", shown.id, "--as", "alice")
    assert code == 0, err
    assert "task         regression" in text
    assert f"vs champion v{v1} on rmse (lower is better)" in text
    assert re.search(r"rmse\s+[+-][0-9.]+\s+CI \[.*\]\s+\w+ \(lower is better\)", text)
    assert re.search(r"r2\s+[+-][0-9.]+\s+CI \[.*\]\s+\w+ \(higher is better\)", text)


@pytest.mark.slow
def test_regression_never_encodes_targets_as_classes(rt, diabetes, monkeypatch):
    """Every distinct target value as a class is what made regression slow and wrong."""
    import core.evaluation.classification as classification

    d = diabetes
    v1 = _register(rt, REG, d["lin"], d["train"], d["holdout"], d["features"])
    holdout = _csv(rt, d["holdout"], "diabetes_holdout")

    def no_classes(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("regression targets were encoded as classes")

    monkeypatch.setattr(classification, "encode_labels", no_classes)
    ev = _evaluate(rt, REG, v1, holdout)
    assert ev["task"] == "regression" and "r2" in ev["metrics"]


# --- the recorded task ----------------------------------------------------------------------


@pytest.mark.slow
def test_the_task_tag_is_ours_checked_against_the_model_and_not_overridable(rt, diabetes):
    d, f = diabetes, diabetes["features"]
    holdout = _csv(rt, d["holdout"], "diabetes_holdout")
    # A run's own model_task tag is caller data: registration drops it.
    run_id = rt.services.registry.log_sklearn_run(
        d["lin"],
        X_sample=d["train"][f].head(3),
        honesty=HONEST,
        run_name="tagged",
        extra_tags={TASK_TAG: "binary"},
    )
    out = rt.dispatcher.call_or_raise(
        rt.services.policy.human("dana"),
        "register_model",
        {"name": REG, "run_id": run_id, "honesty": HONEST.model_dump(mode="json")},
    )
    assert TASK_TAG in out["dropped_tags"]
    v = out["version"]
    assert TASK_TAG not in rt.services.registry.get(REG, v).tags

    # An override the model contradicts is refused, and nothing is recorded.
    with pytest.raises(InvalidInput, match="is a regression model; it cannot be evaluated as"):
        rt.dispatcher.call_or_raise(
            rt.services.policy.human("dana"),
            "evaluate_model",
            {"name": REG, "version": v, "evaluation_dataset": holdout, "task": "binary"},
        )
    assert TASK_TAG not in rt.services.registry.get(REG, v).tags

    # A tag changed behind our back (MLflow's client) is caught against the model.
    rt.services.registry.client.set_model_version_tag(REG, v, TASK_TAG, "binary")
    with pytest.raises(InvalidInput, match="changed outside our code"):
        _evaluate(rt, REG, v, holdout)


def test_resolve_task_prefers_the_model_then_the_record_then_the_override() -> None:
    def labels() -> str:
        return "multiclass"

    assert resolve_task(
        ref="m/1", kind="regression", stored=None, override=None, labels=labels
    ) == ("regression")
    # A classifier of unknown arity: the record wins, then the override, then the labels.
    kw = {"ref": "m/1", "kind": "classification", "labels": labels}
    assert resolve_task(stored="binary", override=None, **kw) == "binary"
    assert resolve_task(stored=None, override="binary", **kw) == "binary"
    assert resolve_task(stored=None, override=None, **kw) == "multiclass"
    with pytest.raises(InvalidInput, match="keeps that task for every later call"):
        resolve_task(stored="binary", override="multiclass", **kw)
    with pytest.raises(InvalidInput, match="changed outside our code"):
        resolve_task(stored="regression", override=None, **kw)
    # A model that says nothing: the override decides; without one, a clear refusal.
    kw = {"ref": "m/1", "kind": None, "labels": labels}
    assert resolve_task(stored=None, override="regression", **kw) == "regression"
    with pytest.raises(InvalidInput, match="cannot tell whether m/1 is a classifier"):
        resolve_task(stored=None, override=None, **kw)
    with pytest.raises(InvalidInput, match="not one of"):
        resolve_task(stored="ranking", override=None, **kw)


# --- multiclass -------------------------------------------------------------------------------


@pytest.mark.slow
def test_multiclass_wine_is_evaluated_as_multiclass_and_gated(rt):
    from sklearn import metrics as skm
    from sklearn.datasets import load_wine
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train, holdout, f = _split(load_wine)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(
        train[f], train["target"]
    )
    v = _register(rt, "wine-classifier", model, train, holdout, f)
    path = _csv(rt, holdout, "wine_holdout")
    ev = _evaluate(rt, "wine-classifier", v, path)
    assert ev["task"] == "multiclass"
    import pandas as pd

    rows = pd.read_csv(path)
    y, pred, proba = rows["target"], model.predict(rows[f]), model.predict_proba(rows[f])
    assert ev["metrics"]["accuracy"] == pytest.approx(skm.accuracy_score(y, pred), rel=1e-12)
    assert ev["metrics"]["f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"), rel=1e-12)
    assert ev["metrics"]["auc_roc"] == pytest.approx(
        skm.roc_auc_score(y, proba, multi_class="ovr"), rel=1e-9
    )
    assert ev["metrics"]["log_loss"] == pytest.approx(skm.log_loss(y, proba), rel=1e-9)
    assert rt.services.registry.get("wine-classifier", v).tags[TASK_TAG] == "multiclass"

    evidence = _evidence(rt, "wine-classifier", v, path)
    gates = _gates(evidence)
    assert evidence["candidate"]["task"] == "multiclass"
    assert {"min_accuracy", "min_f1", "min_auc_roc"} <= set(gates)
    assert evidence["gates"]["passed"], evidence["gates"]
    # A multiclass section overrides the classification keys for multiclass models only.
    _apply_thresholds(
        rt,
        lambda data: data["default"].update(
            multiclass={"minimums": {"IMPLEMENTED": {"f1_macro": 1.01}, "HEURISTIC": {}}}
        ),
    )
    gates = _gates(_evidence(rt, "wine-classifier", v, path))
    assert not gates["min_f1_macro"]["passed"] and "min_accuracy" not in gates


# --- probabilities as they come --------------------------------------------------------------


def _float32_softmax(n: int, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, k)).astype(np.float32) * np.float32(3)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    proba = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
    y = np.array([rng.choice(k, p=p / p.sum(dtype=np.float64)) for p in proba.astype(np.float64)])
    return y, proba


def test_float32_probability_rows_are_accepted() -> None:
    from sklearn import metrics as skm

    from core.evaluation import evaluate

    y, proba = _float32_softmax(3000, 4)
    # The rows really are off 1 in float64 by more than float64's tolerance (the old check).
    off = np.abs(proba.astype(np.float64).sum(axis=1) - 1.0)
    assert off.max() > np.sqrt(np.finfo(np.float64).eps)
    result = evaluate("classification", y, proba.argmax(axis=1), proba)
    for name in ("log_loss", "brier", "ece"):
        assert name in result.metrics, result.unavailable.get(name)
    assert result.metrics["log_loss"] == pytest.approx(skm.log_loss(y, proba), rel=1e-6)


def test_rows_that_do_not_sum_to_1_are_refused_with_a_sum_that_is_not_1() -> None:
    from core.evaluation import evaluate

    y, proba = _float32_softmax(200, 3)
    proba[7] *= np.float32(1.001)  # a row 0.1 % off: not a rounding error
    result = evaluate("classification", y, proba.argmax(axis=1), proba)
    reason = result.unavailable["log_loss"]
    assert "do not sum to 1" in reason and "row 7 sums to" in reason
    shown = float(re.search(r"row 7 sums to ([0-9.e+-]+)\)", reason).group(1))
    assert shown != 1.0 and shown == pytest.approx(1.001, rel=1e-6)


# --- the pinned policy ------------------------------------------------------------------------


def _old_pin(data: dict) -> None:
    """A policy pinned before regression thresholds existed."""
    del data["default"]["regression"]


@pytest.mark.slow
def test_a_pin_without_regression_thresholds_is_an_explicit_policy_error(rt, diabetes):
    d = diabetes
    v = _register(rt, REG, d["lin"], d["train"], d["holdout"], d["features"])
    holdout = _csv(rt, d["holdout"], "diabetes_holdout")
    _apply_thresholds(rt, _old_pin)
    # Measuring still works: no threshold is needed to compute metrics.
    assert "rmse" in _evaluate(rt, REG, v, holdout)["metrics"]
    evidence = _evidence(rt, REG, v, holdout)
    gate = _gates(evidence)["policy_thresholds"]
    assert not evidence["gates"]["passed"] and not gate["passed"]
    for part in ("no thresholds for regression models", "default.regression.primary_metric"):
        assert part in gate["message"]
    assert "agent policy apply" in gate["message"]
    # The QA step refuses too, naming the key and the fix.
    with pytest.raises(GateFailed, match="default.regression.minimums") as exc:
        rt.dispatcher.call_or_raise(
            rt.services.policy.human("bob"),  # QATester
            "record_validation",
            {"name": REG, "version": v, "dataset": holdout},
        )
    assert "agent policy apply" in exc.value.hint
    out = rt.dispatcher.call_or_raise(
        rt.services.policy.human("dana"),
        "request_promotion",
        {"name": REG, "version": v, "dataset": holdout},
    )
    assert out["status"] == "blocked" and "default.regression.primary_metric" in out["message"]


THRESHOLDS = validate_thresholds(
    yaml.safe_load((Path(__file__).parent.parent / "policies" / "thresholds.yaml").read_text())
)


def _reg_evidence(metrics: dict, status: str = "IMPLEMENTED") -> dict:
    honesty = {**HONEST.as_tags(), "implementation_status": status}
    return {
        "candidate": {
            "name": "m",
            "version": "1",
            "task": "regression",
            "honesty": honesty,
            "artifact_sha256": "ab" * 32,
        },
        "metrics": metrics,
        "champion": None,
    }


def test_regression_gates_read_the_regression_section() -> None:
    assert check_promotion(_reg_evidence({"r2": 0.5, "rmse": 3.0}), THRESHOLDS).passed
    report = check_promotion(_reg_evidence({"r2": 0.3, "rmse": 3.0}), THRESHOLDS)
    assert [c.name for c in report.failures] == ["min_r2"]
    # Heuristic models meet their own, lower floor.
    assert check_promotion(_reg_evidence({"r2": 0.3}, "HEURISTIC"), THRESHOLDS).passed
    # A ceiling is a ceiling: above it fails, an unmeasured metric fails.
    ceiling = {
        **THRESHOLDS,
        "models": {"m": {"regression": {"maximums": {"IMPLEMENTED": {"rmse": 2.0, "mape": 0.2}}}}},
    }
    report = check_promotion(_reg_evidence({"r2": 0.5, "rmse": 3.0}), ceiling)
    failed = {c.name: c.message for c in report.failures}
    assert failed["max_rmse"] == "rmse 3.0000 > maximum 2.0"
    assert failed["max_mape"].startswith("mape unavailable")
    # A gated status with no bound for the task is an error naming the key, not a pass.
    no_heuristic = yaml.safe_load(yaml.safe_dump(THRESHOLDS))
    del no_heuristic["default"]["regression"]["minimums"]["HEURISTIC"]
    report = check_promotion(_reg_evidence({"r2": 0.9}, "HEURISTIC"), no_heuristic)
    assert [c.name for c in report.failures] == ["policy_thresholds"]
    assert "default.regression.minimums.HEURISTIC" in report.failures[0].message
    # Evidence from before versions had a task is a classifier's: gated on the top level.
    legacy = _reg_evidence({"accuracy": 0.95, "f1": 0.95, "auc_roc": 0.95})
    del legacy["candidate"]["task"]
    assert check_promotion(legacy, THRESHOLDS).passed


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda d: d["default"].update(maximum={"IMPLEMENTED": {"ece": 0.1}}), "unknown keys"),
        (lambda d: d["default"]["regression"].update(minimum={}), "default.regression: unknown"),
        (lambda d: d["default"]["regression"].pop("primary_metric"), "primary_metric is required"),
        (
            lambda d: d["default"]["regression"]["minimums"].update(IMPLEMENTD={"r2": 0.5}),
            "not an implementation status",
        ),
        (
            lambda d: d["default"]["regression"].update(maximums={"IMPLEMENTED": {"rmse": "5"}}),
            "must map metric names to numbers",
        ),
        (lambda d: d["default"].update(regression=[]), "default.regression must be a mapping"),
    ],
)
def test_the_schema_refuses_typos_in_task_thresholds(change: Any, problem: str) -> None:
    data = yaml.safe_load(yaml.safe_dump(THRESHOLDS))
    change(data)
    with pytest.raises(InvalidInput, match=re.escape(problem)):
        validate_thresholds(data)


def test_the_review_bot_flags_loosened_regression_bounds() -> None:
    from types import SimpleNamespace

    from agents.review.checks_policy import _threshold_loosening

    old = yaml.safe_load(yaml.safe_dump(THRESHOLDS))
    old["models"] = {"m": {"regression": {"maximums": {"IMPLEMENTED": {"rmse": 50.0}}}}}
    new = yaml.safe_load(yaml.safe_dump(old))
    new["default"]["regression"]["minimums"]["IMPLEMENTED"]["r2"] = 0.1
    new["default"]["regression"]["minimums"]["HEURISTIC"]["r2"] = 0.3  # tightened: fine
    new["models"]["m"]["regression"]["maximums"]["IMPLEMENTED"]["rmse"] = 80.0
    found = _threshold_loosening(
        SimpleNamespace(thresholds=old),
        SimpleNamespace(thresholds=new),
        [
            "thresholds.default.regression.minimums.IMPLEMENTED.r2",
            "thresholds.models.m.regression.maximums.IMPLEMENTED.rmse",
        ],
    )
    assert (
        "default (regression): minimum IMPLEMENTED.r2 lowered 0.4 -> 0.1",
        "default.regression.minimums.IMPLEMENTED.r2",
    ) in found
    assert (
        "model m (regression): maximum IMPLEMENTED.rmse raised 50.0 -> 80.0",
        "models.m.regression.maximums.IMPLEMENTED.rmse",
    ) in found
    assert not [m for m, _ in found if "HEURISTIC" in m]
