"""Tracked training on the user's own table: the ``ml-experiment-tracker`` workflow.

A scikit-learn pipeline (median-imputed numbers, one-hot categories) with the chosen model,
fitted on a seeded split and measured on the held-out rows, all recorded in one MLflow run:
params, metrics, the datasets (lineage), per-row predictions (for ``compare``), the
environment, the model (skops) and honesty metadata that states what was measured.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from core.errors import InvalidInput
from core.honesty import HonestyMetadata, HonestyWarning, ImplementationStatus

MODEL_TYPES = (
    "logistic_regression",
    "linear_regression",
    "random_forest",
    "gradient_boosting",
    "xgboost",
    "lightgbm",
)
_ALIASES = {"rf": "random_forest", "hist_gradient_boosting": "gradient_boosting"}
# The boosting libraries' own scikit-learn estimators (never a stand-in: a run that says
# "xgboost" trained XGBoost). They are optional; a missing one is an error naming the package.
_BOOSTING = {
    ("xgboost", "classification"): ("xgboost", "XGBClassifier", "xgboost-cpu"),
    ("xgboost", "regression"): ("xgboost", "XGBRegressor", "xgboost-cpu"),
    ("lightgbm", "classification"): ("lightgbm", "LGBMClassifier", "lightgbm"),
    ("lightgbm", "regression"): ("lightgbm", "LGBMRegressor", "lightgbm"),
}


class TrackedTraining(BaseModel):
    run_id: str
    run_name: str
    experiment: str
    task: str
    model_type: str
    model_note: str
    train_rows: int
    test_rows: int
    features: list[str]
    dropped_columns: dict[str, str]
    metrics: dict[str, float]
    honesty: dict[str, str]
    model_uri: str


def _boosting_class(model_type: str, task: str) -> Any:
    import importlib

    module, name, package = _BOOSTING[(model_type, task)]
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError as exc:
        raise InvalidInput(
            f"model_type {model_type} needs the {package!r} package, which is not installed",
            hint=f"pip install {package}, or train model_type gradient_boosting "
            "(scikit-learn's HistGradientBoosting).",
        ) from exc


def _estimator(model_type: str, task: str, params: dict[str, Any], seed: int) -> Any:
    from sklearn import ensemble, linear_model

    classes = {
        ("logistic_regression", "classification"): linear_model.LogisticRegression,
        ("linear_regression", "regression"): linear_model.LinearRegression,
        ("random_forest", "classification"): ensemble.RandomForestClassifier,
        ("random_forest", "regression"): ensemble.RandomForestRegressor,
        ("gradient_boosting", "classification"): ensemble.HistGradientBoostingClassifier,
        ("gradient_boosting", "regression"): ensemble.HistGradientBoostingRegressor,
    }
    cls = classes.get((model_type, task))
    if (model_type, task) in _BOOSTING:
        cls = _boosting_class(model_type, task)
    if cls is None:
        raise InvalidInput(f"{model_type} does not fit a {task} target")
    valid = cls().get_params()
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise InvalidInput(
            f"unknown hyperparameters for {cls.__name__}: {', '.join(unknown)}",
            hint=f"Valid: {', '.join(sorted(valid))}.",
        )
    extra = {"random_state": seed} if "random_state" in valid else {}
    if cls is linear_model.LogisticRegression:
        extra["max_iter"] = params.get("max_iter", 1000)
    if model_type in ("xgboost", "lightgbm"):
        # One thread: the machine's cores are the gateway's; quiet: LightGBM logs per tree.
        extra["n_jobs"] = 1
        if model_type == "lightgbm":
            extra["verbose"] = -1
    try:
        return cls(**{**extra, **params})
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"invalid hyperparameters for {cls.__name__}: {exc}") from exc


def train_tracked(
    tracker: Any,
    dataset: Any,
    label_column: str,
    *,
    model_type: str = "random_forest",
    hyperparameters: dict[str, Any] | None = None,
    run_name: str = "experiment",
    experiment: str | None = None,
    test_fraction: float = 0.2,
    seed: int = 42,
    description: str | None = None,
    tags: dict[str, str] | None = None,
) -> TrackedTraining:
    """Fit and measure one model on ``dataset`` (a ``core.datasets.Dataset``) in a new run
    (``description`` and ``tags`` are kept on it)."""
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    from core.datasets import Dataset
    from core.evaluation import compute_classification, compute_regression
    from core.features.profile import BOOLEAN, CATEGORICAL, NUMERIC, column_kind

    requested = model_type
    model_type = _ALIASES.get(model_type, model_type)
    if model_type not in MODEL_TYPES:
        raise InvalidInput(
            f"unknown model_type {requested!r}", hint=f"Use one of: {', '.join(MODEL_TYPES)}."
        )
    note = (
        ""
        if requested == model_type
        else f"{requested} is trained as scikit-learn's {model_type} here"
    )
    dataset.require_valid("tabular")
    frame = dataset.to_pandas()
    if label_column not in frame.columns:
        raise InvalidInput(
            f"label column {label_column!r} is not in {dataset.name}",
            hint=f"Columns: {', '.join(frame.columns[:30])}.",
        )
    if frame[label_column].isna().any():
        raise InvalidInput(f"label column {label_column!r} has missing values")
    y = frame[label_column]
    task = "regression" if y.dtype.kind == "f" and y.nunique() > 20 else "classification"
    if model_type == "xgboost" and task == "classification":
        classes = sorted(y.unique().tolist(), key=str)
        if classes != list(range(len(classes))):
            # XGBClassifier fits only labels 0..k-1; re-coding them here would make the
            # registered model answer with codes instead of the user's labels.
            raise InvalidInput(
                f"xgboost classifies labels 0..k-1 only; {label_column!r} has "
                f"{', '.join(map(str, classes[:5]))}",
                hint="Encode the label as 0..k-1, or train model_type lightgbm or "
                "gradient_boosting, which take any labels.",
            )
    dropped: dict[str, str] = {}
    numeric, cats = [], []
    for col in frame.columns:
        if col == label_column:
            continue
        kind = column_kind(frame[col])
        if kind in (NUMERIC, BOOLEAN):
            numeric.append(col)
        elif kind == CATEGORICAL:
            cats.append(col)
        else:
            dropped[col] = f"{kind} column (not a model input)"
    if not numeric and not cats:
        raise InvalidInput(
            "no usable feature columns", hint="Numeric and categorical columns are used."
        )
    X = frame[numeric + cats]
    stratify = y if task == "classification" and y.value_counts().min() >= 2 else None
    X_tr, X_te, y_tr, y_te = train_test_split(
        X, y, test_size=test_fraction, random_state=seed, stratify=stratify
    )
    steps = [("num", SimpleImputer(strategy="median"), numeric)] if numeric else []
    if cats:
        steps.append(
            (
                "cat",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="most_frequent")),
                        ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
                    ]
                ),
                cats,
            )
        )
    params = dict(hyperparameters or {})
    model = Pipeline(
        [("prep", ColumnTransformer(steps)), ("model", _estimator(model_type, task, params, seed))]
    )
    model.fit(X_tr, y_tr)
    pred = model.predict(X_te)
    score = model.predict_proba(X_te) if hasattr(model, "predict_proba") else None
    if task == "classification":
        result = compute_classification(y_te.to_numpy(), pred, score)
    else:
        result = compute_regression(y_te.to_numpy(), pred)
    metrics = {k: float(v) for k, v in result.metrics.items() if v is not None and np.isfinite(v)}
    shown = ", ".join(f"{k} {v:.3f}" for k, v in sorted(metrics.items())[:5])
    honesty = HonestyMetadata(
        implementation_status=ImplementationStatus.IMPLEMENTED,
        accuracy_claim=f"{shown} on a {len(y_te)}-row held-out split",
        validation_method=f"holdout: {test_fraction:.0%} split of {dataset.name} (seed {seed}"
        + (", stratified" if stratify is not None else "")
        + "); metrics by scikit-learn",
        honesty_warning=HonestyWarning.VALIDATED,
    )
    train_ds = Dataset.from_pandas(frame.loc[X_tr.index], name=f"{dataset.name}-train"[:128])
    test_ds = Dataset.from_pandas(frame.loc[X_te.index], name=f"{dataset.name}-test"[:128])
    with tracker.start(
        run_name, experiment=experiment, honesty=honesty, description=description, tags=tags
    ) as run:
        run.log_params(
            {
                "model_type": model_type,
                "task": task,
                "seed": seed,
                "test_fraction": test_fraction,
                **{f"hp.{k}": v for k, v in params.items()},
            }
        )
        run.log_metrics(metrics)
        run.set_label_column(label_column)
        run.log_dataset(train_ds, "training", targets=label_column)
        run.log_dataset(test_ds, "evaluation", targets=label_column)
        # The rows too: registration keeps them as the version's logged:training and
        # logged:evaluation datasets (evaluation, QA and the monitoring reference read them).
        run.log_rows(frame.loc[X_tr.index], "training")
        run.log_rows(frame.loc[X_te.index], "evaluation")
        run.log_predictions(
            y_te.to_numpy(), pred, y_score=score, task=task, row_ids=X_te.index.to_numpy()
        )
        model_uri = run.log_sklearn_model(model, X_tr.head(5))
    return TrackedTraining(
        run_id=run.run_id,
        run_name=run_name,
        experiment=experiment or tracker.experiment,
        task=task,
        model_type=model_type,
        model_note=note,
        train_rows=len(X_tr),
        test_rows=len(X_te),
        features=numeric + cats,
        dropped_columns=dropped,
        metrics=metrics,
        honesty=honesty.as_tags(),
        model_uri=model_uri,
    )
