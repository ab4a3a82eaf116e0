"""Evaluation tools: measure a registered version on a dataset (full report, fairness,
champion comparison) and show stored evaluations. QA verdicts: tools.validation_tools."""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, model_validator

from core.errors import InvalidInput, NotFound
from core.names import ModelName, parse_model_ref
from core.tasks import (
    TASK_TAG,
    ModelKind,
    Task,
    evaluation_kind,
    label_arity,
    label_column_for,
    resolve_task,
)
from policies.gates import comparison_params, limits_for_task
from tools.base import ToolInput, tool
from tools.context import CallContext, Services, is_dataset_name
from tools.registry_tools import VERSION_PATTERN

EVAL_EXPERIMENT = "modelops-evaluations"
LOGGED = "logged:"
# What a one-line verdict shows (classification, then regression names); the full set stays
# in the evaluation report.
HEADLINE_METRICS = ("accuracy", "precision", "recall", "f1", "auc_roc", "r2", "rmse", "mae")


def parse_model_id(model_id: str) -> tuple[str, str]:
    """``name@alias``, ``name/version`` or ``name@2.1.0`` -> (name, version, alias or label);
    a seed-style id (``name-v1``) is refused with its exact form (``core.names``)."""
    ref = parse_model_ref(model_id)
    return ref.name, ref.selector  # type: ignore[return-value]


@dataclass
class LoadedEvaluationSet:
    frame: Any  # the whole table: model features, label and any extra (sensitive) columns
    source: dict[str, Any]


def load_evaluation_set(
    services: Services, name: str, version: str, dataset: str, label_column: str
) -> LoadedEvaluationSet:
    """A file under the working directory / MODELOPS_HOME, or ``logged:NAME`` from the version's run."""
    from core.evaluation.data import load_dataset

    if dataset.startswith(LOGGED):
        path = services.registry.logged_dataset_path(name, version, dataset[len(LOGGED) :])
        roots = [path.parent]
    elif is_dataset_name(dataset) and not (Path.cwd() / dataset).exists():
        # A registered name (`agent data register NAME FILE`), checked against its digest.
        path, roots = services.resolve_data_path(dataset), services.allowed_roots()
    else:
        path, roots = Path(dataset), services.allowed_roots()
    X, y = load_dataset(path, label_column=label_column, allowed_roots=roots)
    resolved = path if path.is_absolute() else (Path.cwd() / path).resolve()
    source = {
        "path": dataset if dataset.startswith(LOGGED) else str(resolved),
        "sha256": hashlib.sha256(resolved.read_bytes()).hexdigest(),
        "rows": len(y),
    }
    return LoadedEvaluationSet(X.assign(**{label_column: y}), source)


@dataclass
class Scorer:
    """A loaded version that predicts on a table: column order and runtime resolved once."""

    features: list[str] | None  # None: every non-label column, in file order
    predict_rows: Any  # (X: np.ndarray | DataFrame) -> (labels, probabilities | None)
    kind: ModelKind | None = None  # what the model says it is (core.tasks.task_of_model)
    classes: list[Any] | None = None  # a classifier's classes_, in its probability order
    # Columns the version's input schema declares as strings: fed as they are (a pipeline
    # that one-hot encodes them); every other feature column must be numeric.
    string_columns: frozenset[str] = frozenset()

    def predict(self, frame: Any, label_column: str) -> tuple[Any, Any]:
        import pandas as pd

        features = self.features or [c for c in frame.columns if c != label_column]
        missing = [c for c in features if c not in frame.columns]
        if missing:
            raise InvalidInput(
                f"the dataset lacks feature columns the model needs: {', '.join(map(str, missing[:10]))}"
            )
        X = frame[features]
        non_numeric = [
            c
            for c in features
            if not pd.api.types.is_numeric_dtype(X[c]) and c not in self.string_columns
        ]
        if non_numeric:
            raise InvalidInput(
                f"non-numeric feature columns: {', '.join(map(str, non_numeric[:10]))}",
                hint="The version's input schema declares these columns as numbers; "
                "see `agent models show NAME --version VERSION` for its input columns.",
            )
        nan_rows = X.isna().any(axis=1).to_numpy().nonzero()[0]
        if len(nan_rows):
            cols = X.columns[X.isna().any()].tolist()
            raise InvalidInput(
                f"missing values in {', '.join(map(str, cols[:10]))} (first at data row {nan_rows[0] + 1})"
            )
        labels, score = self.predict_rows(X)
        if self.kind == "regression":
            return labels, None
        if score is not None and score.ndim == 2 and score.shape[1] == 2:
            score = score[:, 1]
        return labels, score


def load_scorer(services: Services, name: str, version: str) -> Scorer:
    """A version's model, deserialized from its digest-checked bytes (read once): skops for
    scikit-learn versions; ONNX Runtime for ONNX versions (from optimize_model), with the
    feature order of the version they came from."""
    from core.artifacts import artifact_runtime, input_columns

    reg = services.registry
    info = reg.get(name, version)
    files = reg.verified_files(info)
    if artifact_runtime(files) == "onnxruntime":
        from core.artifacts import onnx_bytes
        from core.optimizer.predictor import OnnxPredictor

        predictor = OnnxPredictor(onnx_bytes(files, ref=info.ref))
        source = info.tags.get("optimized_from")
        # The signature's columns (registered ONNX files, newer exports), else the source's.
        features = list(input_columns(files) or []) or None
        if features is None and source:
            src = reg.load_sklearn(info.name, source)
            features = list(getattr(src, "feature_names_in_", [])) or None
        return Scorer(
            features,
            lambda X: predictor.predict(X.to_numpy(dtype="float32")),
            kind=predictor.task,  # classification (arity from the labels) or regression
        )
    from core.artifacts import input_schema, sklearn_from_bytes
    from core.tasks import task_of_model

    model = sklearn_from_bytes(files, ref=info.ref)
    kind = task_of_model(model)
    has_proba = kind != "regression" and hasattr(model, "predict_proba")
    classes = getattr(model, "classes_", None) if kind != "regression" else None
    strings = frozenset(n for n, t in input_schema(files) or () if t == "string")
    return Scorer(
        list(getattr(model, "feature_names_in_", [])) or list(input_columns(files) or []) or None,
        lambda X: (model.predict(X), model.predict_proba(X) if has_proba else None),
        kind=kind,
        classes=None if classes is None else list(classes),
        string_columns=strings,
    )


def version_task(
    info: Any, scorer: Scorer, y_true: Any, y_pred: Any, override: str | None = None
) -> Task:
    """The version's task (core.tasks.resolve_task): what its model says, else the task
    recorded at its first evaluation, else the caller's ``task``, else the labels' arity."""
    return resolve_task(
        ref=info.ref,
        kind=scorer.kind,
        stored=info.tags.get(TASK_TAG),
        override=override,
        labels=lambda: label_arity(y_true, y_pred),
    )


class EvaluationRun(BaseModel):
    name: str
    version: str
    task: str  # binary | multiclass | regression (core.tasks)
    dataset: dict[str, Any]
    n: int
    metrics: dict[str, float]
    unavailable: dict[str, str]
    champion_version: str | None = None
    comparison: dict[str, Any] | None = None
    fairness: dict[str, Any] | None = None
    worst_slices: list[dict[str, Any]] = []
    best_thresholds: dict[str, Any] = {}
    evaluation_id: str | None = None
    report_files: list[str] = []


def production_champion(services: Services, name: str) -> str | None:
    """The version production serves (most traffic), from the routing record. The MLflow
    ``champion`` alias only mirrors it: an alias moved around the executor (MLflow's client,
    its UI) does not change what a candidate is compared with."""
    from core.deployment import PRODUCTION

    current = services.deployments.current(name, PRODUCTION)
    if current is not None and current.primary is not None:
        return current.primary.version
    return None


def evaluate_version(
    services: Services,
    name: str,
    version: str,
    dataset: str,
    label_column: str | None = None,
    *,
    metrics: list[str] | None = None,
    sensitive_features: list[str] | None = None,
    compare: bool = True,
    log_run: bool = True,
    task: str | None = None,
) -> EvaluationRun:
    """Load the version (digest-checked), predict on the dataset, evaluate like a reviewer,
    with its task's metrics (``task`` overrides detection only where the model is silent).
    A logged evaluation records the version's task the first time."""
    from core.evaluation import Predictions, evaluate

    reg = services.registry
    info = reg.get(name, version)
    label_column = label_column_for(info.tags, label_column)
    data = load_evaluation_set(services, info.name, info.version, dataset, label_column)
    frame = data.frame
    for col in sensitive_features or []:
        if col not in frame.columns or col == label_column:
            raise InvalidInput(
                f"sensitive feature column {col!r} is not in the dataset",
                hint=f"Columns: {', '.join(map(str, frame.columns[:30]))}.",
            )
    scorer = load_scorer(services, info.name, info.version)
    y_pred, y_score = scorer.predict(frame, label_column)
    y_true = frame[label_column].to_numpy()
    version_kind = version_task(info, scorer, y_true, y_pred, task)
    if log_run and TASK_TAG not in info.tags:
        # Recorded once, by our code (a reserved tag): every later call reads it back and
        # checks it against the model (core.tasks.resolve_task).
        reg.set_tags(info.name, info.version, {TASK_TAG: version_kind})
    champion, champ_v = None, production_champion(services, info.name) if compare else None
    limits = None
    if champ_v and champ_v != info.version:
        champ_info = reg.get(info.name, champ_v)
        champ_scorer = load_scorer(services, info.name, champ_v)
        champion = Predictions(*champ_scorer.predict(frame, label_column))
        champ_kind = version_task(champ_info, champ_scorer, y_true, champion.y_pred)
        if champ_kind != version_kind:
            raise InvalidInput(
                f"{info.ref} is a {version_kind} model but the production champion "
                f"{champ_info.ref} is {champ_kind}: they share no metric to compare on",
                hint="Register the new model under its own name, or pass "
                '"compare_with_champion": false to evaluate it alone.',
            )
        # The task's primary metric and bootstrap settings; a policy with none for this task
        # is an explicit error (policies.gates.policy_gap), never a comparison on a guess.
        limits = limits_for_task(services.thresholds, info.name, version_kind)
    kind = evaluation_kind(version_kind)
    result = evaluate(
        kind,
        y_true,
        y_pred,
        y_score if kind == "classification" else None,
        metrics=metrics,
        labels=scorer.classes if version_kind == "multiclass" and scorer.classes else None,
        sensitive_features=list(sensitive_features) if sensitive_features else None,
        features_df=frame.drop(columns=[label_column]),
        champion=champion,
        comparison_params=comparison_params(limits) if limits is not None else None,
    )
    run = EvaluationRun(
        name=info.name,
        version=info.version,
        task=version_kind,
        dataset={**data.source, "label_column": label_column},
        n=result.n,
        metrics=result.metrics,
        unavailable=result.unavailable,
        champion_version=champ_v if champion is not None else None,
        comparison=_comparison_summary(result.comparison),
        fairness=result.fairness.model_dump(
            mode="json",
            include={"sensitive_columns", "metrics", "unavailable", "groups"},
            exclude={"groups": {"__all__": {"calibration"}}},
        )
        if result.fairness
        else None,
        worst_slices=[
            s.model_dump(mode="json") for s in (result.slices.slices[:5] if result.slices else [])
        ],
        best_thresholds={
            k: v.model_dump(mode="json")
            for k, v in (result.thresholds.best.items() if result.thresholds else [])
        },
    )
    if log_run:
        _log(services, run, result)
    return run


def _comparison_summary(comp: Any) -> dict[str, Any] | None:
    if comp is None:
        return None
    return {
        "verdict": comp.verdict,
        "reason": comp.reason,
        "primary_metric": comp.primary_metric,
        "primary_higher_is_better": (
            comp.per_metric[comp.primary_metric].higher_is_better
            if comp.primary_metric in comp.per_metric
            else None
        ),
        "confidence": comp.confidence,
        "n_boot": comp.n_boot,
        "per_metric": {
            k: {
                "difference": m.difference,
                "ci_low": m.ci_low,
                "ci_high": m.ci_high,
                "verdict": m.verdict,
                "higher_is_better": m.higher_is_better,
            }
            for k, m in comp.per_metric.items()
        },
    }


def _log(services: Services, run: EvaluationRun, result: Any) -> None:
    from core.evaluation import log_evaluation, write_report
    from core.tracking import ensure_experiment

    reg = services.registry
    ensure_experiment(reg.client, EVAL_EXPERIMENT, services.settings.resolved_artifact_root)
    with tempfile.TemporaryDirectory() as tmp:
        files = write_report(result, tmp)
        run.evaluation_id = log_evaluation(
            result,
            tmp,
            services.settings.resolved_tracking_uri,
            EVAL_EXPERIMENT,
            run.name,
            run.version,
            run_name=f"eval-{run.name}-v{run.version}",
        )
        run.report_files = sorted(f"evaluation/{p.name}" for p in files.values())
    reg.client.set_tag(run.evaluation_id, "dataset_sha256", run.dataset["sha256"])
    reg.client.set_tag(run.evaluation_id, "dataset_path", Path(run.dataset["path"]).name)


class EvaluateModelInput(ToolInput):
    renamed_fields = {"target": "label_column"}
    model_id: str | None = Field(
        default=None,
        max_length=256,
        description="NAME@champion, NAME@challenger, NAME/VERSION or NAME@2.1.0 (version label).",
    )
    name: ModelName | None = None
    version: str | None = Field(default=None, pattern=VERSION_PATTERN)
    evaluation_dataset: str = Field(
        min_length=1,
        max_length=1024,
        description="CSV/Parquet/JSONL path, or logged:NAME for a dataset logged with the model's run.",
    )
    label_column: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="The label column; omit for the one recorded on the version (else target).",
    )
    metrics: list[str] | None = Field(default=None, max_length=50)
    include_fairness: bool = False
    sensitive_features: list[str] = Field(default_factory=list, max_length=5)
    compare_with_champion: bool = True
    task: Task | None = Field(
        default=None,
        description="binary, multiclass or regression; only where the model does not say "
        "(it is detected from the model and recorded on the version at its first evaluation).",
    )

    @model_validator(mode="after")
    def _one_model(self) -> EvaluateModelInput:
        if bool(self.model_id) == bool(self.name and self.version):
            raise ValueError("give either model_id, or both name and version")
        if self.include_fairness and not self.sensitive_features:
            raise ValueError("include_fairness needs sensitive_features (column names)")
        return self

    def ref(self) -> tuple[str, str]:
        return parse_model_id(self.model_id) if self.model_id else (self.name, self.version)  # type: ignore[return-value]


@tool(permission="evaluation:run", side_effect="write")
def evaluate_model(call: CallContext, args: EvaluateModelInput) -> EvaluationRun:
    """Evaluate a model version on a dataset: metrics, calibration, thresholds, worst slices, fairness, champion comparison; logs a report to MLflow."""
    name, version = args.ref()
    return evaluate_version(
        call.services,
        name,
        version,
        args.evaluation_dataset,
        args.label_column,
        metrics=args.metrics,
        sensitive_features=args.sensitive_features if args.include_fairness else None,
        compare=args.compare_with_champion,
        task=args.task,
    )


class GetEvaluationInput(ToolInput):
    evaluation_id: str = Field(pattern=r"^[0-9a-f]{32}$")


class GetEvaluationOutput(BaseModel):
    evaluation_id: str
    model_name: str | None
    model_version: str | None
    report: dict[str, Any]
    markdown: str
    artifacts: list[str]


@tool(permission="evaluation:read", side_effect="read")
def get_evaluation(call: CallContext, args: GetEvaluationInput) -> GetEvaluationOutput:
    """Show a stored evaluation report (JSON + Markdown + plot artifact names) by its id."""
    from mlflow.exceptions import MlflowException

    from core.registry import local_path

    client = call.services.registry.client
    try:
        run = client.get_run(args.evaluation_id)
    except MlflowException as exc:
        raise NotFound(f"no evaluation {args.evaluation_id}") from exc
    base = local_path(f"{run.info.artifact_uri}/evaluation")
    if not (base / "evaluation.json").is_file():
        raise NotFound(f"run {args.evaluation_id} is not an evaluation (no evaluation report)")
    return GetEvaluationOutput(
        evaluation_id=args.evaluation_id,
        model_name=run.data.tags.get("model_name"),
        model_version=run.data.tags.get("model_version"),
        report=json.loads((base / "evaluation.json").read_text()),
        markdown=(base / "evaluation.md").read_text(),
        artifacts=sorted(str(base / p.name) for p in base.iterdir()),
    )


class ListEvaluationsInput(ToolInput):
    name: ModelName
    version: str | None = Field(default=None, pattern=r"^[0-9]{1,9}$")
    limit: int = Field(default=20, ge=1, le=200)


class ListEvaluationsOutput(BaseModel):
    evaluations: list[dict[str, Any]]


@tool(permission="evaluation:read", side_effect="read")
def list_evaluations(call: CallContext, args: ListEvaluationsInput) -> ListEvaluationsOutput:
    """The evaluator's stored evaluations of a model (or one version), newest first: measured headline metrics, dataset digest and evaluation id."""
    client = call.services.registry.client
    experiment = client.get_experiment_by_name(EVAL_EXPERIMENT)
    if experiment is None:
        return ListEvaluationsOutput(evaluations=[])
    # Names and versions are pattern-checked above, so they cannot break out of the quotes.
    where = f"tags.model_name = '{args.name}'"
    if args.version:
        where += f" and tags.model_version = '{args.version}'"
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=where,
        order_by=["attributes.start_time DESC"],
        max_results=args.limit,
    )
    return ListEvaluationsOutput(
        evaluations=[
            {
                "evaluation_id": r.info.run_id,
                "version": r.data.tags.get("model_version"),
                "status": r.info.status,
                "started_at_ms": r.info.start_time,
                "metrics": {k: r.data.metrics[k] for k in HEADLINE_METRICS if k in r.data.metrics},
                "n": r.data.params.get("n"),
                "dataset_sha256": r.data.tags.get("dataset_sha256"),
                "dataset_path": r.data.tags.get("dataset_path"),
                "comparison_verdict": r.data.tags.get("evaluation.comparison_verdict"),
            }
            for r in runs
            if r.info.status == "FINISHED"
        ]
    )
