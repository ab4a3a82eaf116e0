"""``ExperimentTracker``: MLflow runs with params, stepped metrics, artifacts, datasets,
per-row predictions, the environment and honesty metadata; list, read and compare runs.

Everything is a plain MLflow run in an explicit tracking store, so the MLflow UI shows it.
"""

from __future__ import annotations

import functools
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from core.errors import InvalidInput, NotFound
from core.experiments.environment import capture_environment, environment_tags
from core.honesty import HonestyMetadata, HonestyWarning
from core.names import is_reserved_tag, validate_name
from core.tracking import DEFAULT_EXPERIMENT, configure_mlflow, ensure_experiment

# MLflow draws a progress bar on every artifact download; the CLI has its own progress.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
PREDICTIONS_ARTIFACT = "predictions/predictions.parquet"
PREDICTIONS_TAG = "predictions_task"
_RUN_ID = r"[0-9a-f]{32}"
# Facts the tracker itself records as run params (write-once in MLflow: a later call cannot
# change them, unlike a tag). Registration from the run carries them to the version
# (core.registry.register_from_run); callers cannot log params under this prefix.
TRACKER_PARAM_PREFIX = "modelops."
HONESTY_PARAM = "modelops.honesty"  # the run's HonestyMetadata as JSON, when it ended
LABEL_PARAM = "modelops.label_column"  # the label column the run trained on


class RunSummary(BaseModel):
    run_id: str
    name: str
    experiment: str
    status: str
    start_time_ms: int
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]
    predictions_logged: bool


class TrackedRun:
    """The run ``ExperimentTracker.start`` began: log to it, then leave the ``with`` (or
    call ``end()``)."""

    def __init__(self, tracker: ExperimentTracker, run_id: str, name: str) -> None:
        self.tracker = tracker
        self.run_id = run_id
        self.name = name
        self.honesty: HonestyMetadata | None = None
        self.ended = False

    def __enter__(self) -> TrackedRun:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.end("FAILED" if exc_type is not None else "FINISHED")

    def end(self, status: str = "FINISHED") -> None:
        """End the run (once): FINISHED, FAILED or KILLED."""
        if self.ended:
            return
        self.ended = True
        if self.honesty is not None:  # the final honesty, written once (params are immutable)
            self.client.log_param(self.run_id, HONESTY_PARAM, self.honesty.model_dump_json()[:6000])
        else:
            self.client.set_tag(self.run_id, "honesty_warning", HonestyWarning.UNVALIDATED.value)
            self.client.set_tag(
                self.run_id,
                "honesty_note",
                "no honesty metadata was given for this run: its numbers are unvalidated",
            )
        import mlflow

        active = mlflow.active_run()
        if active is not None and active.info.run_id == self.run_id:
            mlflow.end_run(status)
        else:  # another run became the active one meanwhile: end ours by id
            self.client.set_terminated(self.run_id, status)

    @property
    def client(self) -> Any:
        return self.tracker.client

    def log_params(self, params: dict[str, Any]) -> None:
        reserved = sorted(str(k) for k in params if str(k).startswith(TRACKER_PARAM_PREFIX))
        if reserved:
            raise InvalidInput(
                f"reserved param names: {', '.join(reserved)}",
                hint="The tracker records honesty (set_honesty) and the label column "
                "(set_label_column) itself.",
            )
        for key, value in params.items():
            text = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
            self.client.log_param(self.run_id, str(key)[:250], text[:6000])

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        value = float(value)
        if not math.isfinite(value):
            raise InvalidInput(f"metric {key!r} is {value}: only finite values are logged")
        self.client.log_metric(self.run_id, key, value, step=step or 0)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        for key, value in metrics.items():
            self.log_metric(key, value, step)

    def set_tags(self, tags: dict[str, str]) -> None:
        """Caller tags; reserved names (verdicts, approvals, honesty) are refused here: use
        ``set_honesty`` for honesty metadata."""
        reserved = sorted(k for k in tags if is_reserved_tag(k))
        if reserved:
            raise InvalidInput(
                f"reserved tag names: {', '.join(reserved)}",
                hint="Only the system writes verdicts and approvals; honesty goes through "
                "set_honesty.",
            )
        for key, value in tags.items():
            self.client.set_tag(self.run_id, key, str(value))

    def set_honesty(self, honesty: HonestyMetadata) -> None:
        self.honesty = honesty
        for key, value in honesty.as_tags().items():
            self.client.set_tag(self.run_id, key, value)

    def set_label_column(self, label_column: str) -> None:
        """Record the label column the run's model was trained on (once per run)."""
        if not label_column or len(label_column) > 256:
            raise InvalidInput("label column must be 1-256 characters")
        self.client.log_param(self.run_id, LABEL_PARAM, label_column)

    def log_rows(self, frame: Any, name: str) -> None:
        """Keep a table's rows as ``datasets/NAME.parquet`` (MLflow's dataset input records
        only schema and digest): what ``logged:NAME`` evaluates on after registration."""
        validate_name("dataset", name)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{name}.parquet"
            frame.to_parquet(path, index=False)
            self.log_artifact(path, "datasets")

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_dict(self, data: Any, name: str) -> None:
        self.client.log_dict(self.run_id, data, name)

    def log_text(self, text: str, name: str) -> None:
        self.client.log_text(self.run_id, text, name)

    def log_dataset(
        self, dataset: Any, context: str = "training", *, targets: str | None = None
    ) -> None:
        """A ``core.datasets.Dataset`` as an input of this run (lineage: schema, digest,
        source), with its content digest as a tag ``dataset_digest.<context>``."""
        import mlflow

        mlflow.log_input(dataset.mlflow_dataset(targets=targets), context=context)
        self.client.set_tag(self.run_id, f"dataset_digest.{context}", dataset.digest)

    def log_predictions(
        self,
        y_true: Any,
        y_pred: Any,
        *,
        y_score: Any = None,
        task: str = "classification",
        row_ids: Any = None,
    ) -> None:
        """Per-row predictions on the evaluation rows: what ``compare`` needs to put a
        confidence interval on a difference between runs."""
        import numpy as np
        import pandas as pd

        if task not in ("classification", "regression"):
            raise InvalidInput("task must be classification or regression")
        n = len(y_true)
        if len(y_pred) != n or (row_ids is not None and len(row_ids) != n):
            raise InvalidInput("y_true, y_pred and row_ids must have the same length")
        frame = pd.DataFrame(
            {
                "row_id": list(row_ids) if row_ids is not None else list(range(n)),
                "y_true": list(y_true),
                "y_pred": list(y_pred),
            }
        )
        if y_score is not None:
            score = np.asarray(y_score, dtype=float)
            if score.ndim == 2 and score.shape[1] == 2:
                score = score[:, 1]
            if score.ndim == 1:
                frame["y_score"] = score
            else:
                for j in range(score.shape[1]):
                    frame[f"y_score_{j}"] = score[:, j]
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "predictions.parquet"
            frame.to_parquet(path, index=False)
            self.log_artifact(path, "predictions")
        self.client.set_tag(self.run_id, PREDICTIONS_TAG, task)

    def log_sklearn_model(self, model: Any, X_sample: Any) -> str:
        """Log a fitted scikit-learn model (skops format, explicit requirements) to this run;
        register it later with ``ModelRegistry.register_from_run``. Returns the model URI."""
        import mlflow
        import mlflow.sklearn
        from mlflow.models import infer_signature

        from core.artifacts import SKOPS_TRUSTED_TYPES

        info = mlflow.sklearn.log_model(
            model,
            name="model",
            pip_requirements=["scikit-learn", "numpy", "pandas", "skops"],
            serialization_format="skops",
            skops_trusted_types=list(SKOPS_TRUSTED_TYPES),
            signature=infer_signature(X_sample, model.predict(X_sample)),
        )
        return info.model_uri


# MLflow shows this tag as the run's description.
DESCRIPTION_TAG = "mlflow.note.content"


def _home_tracker_method(fn: Any) -> Any:
    """A method that also works on the class: ``ExperimentTracker.start("x")`` runs it on
    ``ExperimentTracker()``, the home's tracker (the seed's spelling)."""

    class Method:
        def __get__(self, obj: Any, owner: type) -> Any:
            target = obj if obj is not None else owner()
            return functools.partial(fn, target)

    m = Method()
    m.__doc__ = fn.__doc__
    return m


class ExperimentTracker:
    """Runs in one MLflow store. ``with tracker.start("churn_v1") as run: ...``."""

    def __init__(
        self,
        tracking_uri: str | None = None,
        artifact_root: str | None = None,
        *,
        experiment: str = DEFAULT_EXPERIMENT,
    ) -> None:
        if tracking_uri is None or artifact_root is None:
            # ``ExperimentTracker()``: the home's tracking URI and artifact store.
            from core.settings import load_settings

            settings = load_settings()
            tracking_uri = tracking_uri or settings.resolved_tracking_uri
            artifact_root = artifact_root or settings.resolved_artifact_root
        self.tracking_uri = tracking_uri
        self.artifact_root = artifact_root
        self.experiment = experiment
        self.client = configure_mlflow(tracking_uri)

    @classmethod
    def from_settings(cls, settings: Any, **kwargs: Any) -> ExperimentTracker:
        return cls(settings.resolved_tracking_uri, settings.resolved_artifact_root, **kwargs)

    @_home_tracker_method
    def start(
        self,
        name: str,
        *,
        experiment: str | None = None,
        honesty: HonestyMetadata | None = None,
        tags: dict[str, str] | None = None,
        description: str | None = None,
        capture_env: bool = True,
    ) -> TrackedRun:
        """A new run named ``name``, started now. As ``with tracker.start(...) as run:`` it
        ends FINISHED when the block ends, FAILED if it raises; without ``with``, call
        ``run.end()``. A run that never received honesty metadata is tagged UNVALIDATED,
        with no claim. ``ExperimentTracker.start(...)`` uses the home's tracker."""
        validate_name("dataset", name)  # run names appear in paths and filters
        exp_name = experiment or self.experiment
        validate_name("dataset", exp_name)
        exp_id = ensure_experiment(self.client, exp_name, self.artifact_root)
        import mlflow

        nested = mlflow.active_run() is not None
        # The fluent run stays active until it ends, so mlflow.log_* and log_model land in it.
        run = mlflow.start_run(experiment_id=exp_id, run_name=name, nested=nested)
        tracked = TrackedRun(self, run.info.run_id, name)
        try:
            if tags:
                tracked.set_tags(tags)
            if description:
                self.client.set_tag(tracked.run_id, DESCRIPTION_TAG, description)
            if capture_env:
                env = capture_environment()
                tracked.log_dict(env, "environment.json")
                for k, v in environment_tags(env).items():
                    self.client.set_tag(tracked.run_id, k, v)
            if honesty is not None:
                tracked.set_honesty(honesty)
        except BaseException:
            tracked.end("FAILED")
            raise
        return tracked

    # Reading ----------------------------------------------------------------------------
    def resolve(self, ref: str, *, experiment: str | None = None) -> str:
        """A run id, or the latest run with that run name (in ``experiment`` if given)."""
        import re

        from mlflow.exceptions import MlflowException

        if re.fullmatch(_RUN_ID, ref):
            try:
                return self.client.get_run(ref).info.run_id
            except MlflowException as exc:
                raise NotFound(f"no MLflow run {ref}") from exc
        validate_name("dataset", ref)
        exps = self._experiment_ids(experiment)
        runs = (
            self.client.search_runs(
                exps,
                filter_string=f"attributes.run_name = '{ref}'",
                order_by=["start_time DESC"],
                max_results=1,
            )
            if exps
            else []
        )
        if not runs:
            raise NotFound(
                f"no run named {ref!r}", hint="See `agent experiments list` for the runs."
            )
        return runs[0].info.run_id

    def _experiment_ids(self, experiment: str | None) -> list[str]:
        if experiment is not None:
            validate_name("dataset", experiment)
            exp = self.client.get_experiment_by_name(experiment)
            if exp is None:
                raise NotFound(f"no experiment named {experiment!r}")
            return [exp.experiment_id]
        return [e.experiment_id for e in self.client.search_experiments()]

    def get_run(self, ref: str) -> RunSummary:
        run = self.client.get_run(self.resolve(ref))
        exp = self.client.get_experiment(run.info.experiment_id)
        return RunSummary(
            run_id=run.info.run_id,
            name=run.info.run_name or "",
            experiment=exp.name,
            status=run.info.status,
            start_time_ms=int(run.info.start_time or 0),
            params=dict(run.data.params),
            metrics=dict(run.data.metrics),
            tags={k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")},
            predictions_logged=PREDICTIONS_TAG in run.data.tags,
        )

    def list_runs(self, experiment: str | None = None, *, limit: int = 50) -> list[RunSummary]:
        exps = self._experiment_ids(experiment)
        if not exps:
            return []
        runs = self.client.search_runs(exps, order_by=["start_time DESC"], max_results=limit)
        return [self.get_run(r.info.run_id) for r in runs]

    def get_metrics(self, ref: str) -> dict[str, list[dict[str, float]]]:
        """Every logged value of every metric of a run: ``{name: [{step, value, timestamp}]}``."""
        run = self.client.get_run(self.resolve(ref))
        return {
            key: [
                {"step": m.step, "value": m.value, "timestamp": m.timestamp}
                for m in sorted(
                    self.client.get_metric_history(run.info.run_id, key),
                    key=lambda m: (m.step, m.timestamp),
                )
            ]
            for key in sorted(run.data.metrics)
        }

    def load_predictions(self, ref: str) -> Any | None:
        """The per-row predictions a run logged (a DataFrame), or None."""
        import pandas as pd

        run_id = self.resolve(ref)
        if PREDICTIONS_TAG not in self.client.get_run(run_id).data.tags:
            return None
        with tempfile.TemporaryDirectory() as tmp:
            local = self.client.download_artifacts(run_id, PREDICTIONS_ARTIFACT, tmp)
            return pd.read_parquet(local)

    def compare(self, refs: list[str], metrics: list[str] | None = None, **kwargs: Any) -> Any:
        """See ``core.experiments.compare.compare_runs``."""
        from core.experiments.compare import compare_runs

        return compare_runs(self, refs, metrics, **kwargs)


def tracker_honesty(params: dict[str, str]) -> HonestyMetadata | None:
    """The honesty metadata the tracker recorded for a run (its write-once param), or None:
    a run's honesty *tags* are never read back, since anyone can change a tag later."""
    raw = params.get(HONESTY_PARAM)
    if not raw:
        return None
    try:
        return HonestyMetadata.model_validate_json(raw)
    except ValueError:  # truncated or not ours: no honesty rather than a guessed one
        return None


def tracker_label_column(params: dict[str, str]) -> str | None:
    """The label column the tracker recorded for a run, or None."""
    return params.get(LABEL_PARAM) or None
