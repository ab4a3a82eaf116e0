"""A model version's task (binary, multiclass, regression): detected from the model and its
labels, recorded once on the version by our own code, and checked against the model on every
later read, so a tag changed behind our back cannot re-route a version's metrics or gates."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from core.errors import InvalidInput

Task = Literal["binary", "multiclass", "regression"]
TASKS: tuple[str, ...] = ("binary", "multiclass", "regression")
# The version tag our evaluation writes (reserved: a run's tags never arrive under this name).
TASK_TAG = "model_task"
# The version's label column: written once by our registration code (from the training data
# given, or from the column the tracker's run recorded), reserved like TASK_TAG, and used by
# every later evaluation, QA and promotion call that names none.
LABEL_COLUMN_TAG = "label_column"
DEFAULT_LABEL_COLUMN = "target"


def label_column_for(tags: dict[str, str], given: str | None) -> str:
    """The label column a call uses: the caller's, else the version's recorded one, else
    ``target`` (the quickstart's, for versions registered before the label was recorded)."""
    return given or tags.get(LABEL_COLUMN_TAG) or DEFAULT_LABEL_COLUMN


# What a model alone can tell: a classifier whose class count is unknown is "classification".
ModelKind = Literal["binary", "multiclass", "regression", "classification"]


def evaluation_kind(task: str) -> str:
    """The core.evaluation task that computes a version task's metrics."""
    return "regression" if task == "regression" else "classification"


def arity(n_classes: int) -> Task:
    return "binary" if n_classes <= 2 else "multiclass"


def task_of_model(model: Any) -> ModelKind | None:
    """What a fitted scikit-learn model (or pipeline) says it is; None when it does not say.

    scikit-learn's own estimator type comes first (``is_regressor`` / ``is_classifier`` read
    the estimator tags, pipelines included); a duck-typed model with ``predict_proba`` or
    ``classes_`` counts as a classifier. Binary vs multiclass comes from ``classes_``.
    """
    from sklearn.base import is_classifier, is_regressor

    try:
        regressor, classifier = is_regressor(model), is_classifier(model)
    except (AttributeError, TypeError):  # not an estimator scikit-learn can inspect
        regressor = getattr(model, "_estimator_type", None) == "regressor"
        classifier = getattr(model, "_estimator_type", None) == "classifier"
    if regressor and not classifier:
        return "regression"
    classes = getattr(model, "classes_", None)
    if classifier or hasattr(model, "predict_proba") or classes is not None:
        if classes is not None:
            try:
                return arity(len(classes))
            except TypeError:
                pass
        return "classification"
    return None


def label_arity(y_true: Any, y_pred: Any) -> Task:
    """Binary or multiclass from the distinct labels met (for a classifier of unknown arity)."""
    import numpy as np
    import pandas as pd

    values = pd.unique(np.concatenate([np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()]))
    return arity(len(values))


def _refuse_unknown(ref: str, what: str, value: str | None) -> None:
    if value is not None and value not in TASKS:
        raise InvalidInput(
            f"{ref}: {what} {value!r} is not one of {', '.join(TASKS)}",
            hint="Pass task as binary, multiclass or regression.",
        )


def resolve_task(
    *,
    ref: str,
    kind: ModelKind | None,
    stored: str | None,
    override: str | None,
    labels: Callable[[], Task],
) -> Task:
    """The version's task. What the model says is certain: a recorded task or an override that
    contradicts it is refused. A classifier of unknown arity keeps its recorded task (else the
    override, else the labels' arity); a model that says nothing needs a recorded task or an
    override. ``labels`` is called only when the arity must come from the labels."""
    _refuse_unknown(ref, "recorded task", stored)
    _refuse_unknown(ref, "task", override)
    allowed = {
        None: TASKS,
        "classification": ("binary", "multiclass"),
    }.get(kind, (kind,))
    if stored is not None and stored not in allowed:
        raise InvalidInput(
            f"{ref} is recorded as a {stored} model but its model is a {kind}: the "
            f"{TASK_TAG} tag was changed outside our code",
            hint=f"Remove the {TASK_TAG} tag in MLflow (the next evaluation records it again).",
        )
    if override is not None and override not in allowed:
        raise InvalidInput(
            f"{ref} is a {kind} model; it cannot be evaluated as {override}",
            hint="Drop task from the input (it is detected from the model).",
        )
    if stored is not None and override is not None and override != stored:
        raise InvalidInput(
            f"{ref} was first evaluated as a {stored} model and keeps that task for every "
            f"later call, so it cannot be evaluated as {override}",
            hint="Drop task from the input, or register the model again as a new version.",
        )
    if len(allowed) == 1:
        return allowed[0]  # type: ignore[return-value]
    if stored is not None or override is not None:
        return stored or override  # type: ignore[return-value]
    if kind == "classification":
        return labels()
    raise InvalidInput(
        f"cannot tell whether {ref} is a classifier or a regressor from its model",
        hint='Pass "task": "binary", "multiclass" or "regression" in the evaluation input '
        "(it is recorded on the version for every later call).",
    )
