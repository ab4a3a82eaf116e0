"""Compare runs: a metric table, which run is better per metric, and, when the runs logged
per-row predictions on the same rows, a paired bootstrap confidence interval of each
difference against the first run (``core.evaluation.compare_with_champion``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from core.errors import InvalidInput

# Defaults when the caller gives none (the tools pass the policy's comparison parameters).
DEFAULT_N_BOOT = 1000
DEFAULT_CONFIDENCE = 0.95
_PREFIXES = ("holdout_", "test_", "validation_", "val_", "eval_", "train_")
_LOWER_WORDS = ("loss", "error", "rmse", "mae", "mse", "mape", "latency", "brier", "ece", "time")


class RunComparison(BaseModel):
    runs: list[dict[str, str]]
    baseline: str = Field(description="The first run: every interval is 'run minus baseline'.")
    metrics: list[str]
    table: dict[str, dict[str, float | None]]
    direction: dict[str, str]
    best: dict[str, str | None]
    uncertainty: dict[str, Any] = Field(
        default_factory=dict, description="run name -> paired bootstrap result vs the baseline"
    )
    uncertainty_unavailable: dict[str, str] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)


def _base(metric: str) -> str:
    for p in _PREFIXES:
        if metric.startswith(p):
            return metric[len(p) :]
    return metric


def direction_of(metric: str, task: str | None) -> tuple[bool, bool]:
    """(higher is better, known from the metric registry rather than guessed from the name)."""
    from core.evaluation.registry import get_metric

    for kind in [task] if task else ["classification", "regression"]:
        try:
            spec = get_metric(_base(metric), kind)  # type: ignore[arg-type]
        except Exception:  # not a known metric of this kind
            continue
        if spec.higher_is_better is not None:
            return bool(spec.higher_is_better), True
    return not any(w in metric.lower() for w in _LOWER_WORDS), False


def compare_runs(
    tracker: Any,
    refs: list[str],
    metrics: list[str] | None = None,
    *,
    n_boot: int = DEFAULT_N_BOOT,
    confidence: float = DEFAULT_CONFIDENCE,
    min_effect: float = 0.0,
    seed: int = 0,
) -> RunComparison:
    """``refs``: run names or ids (two or more); ``metrics``: default every metric any run logged."""
    if len(refs) < 2:
        raise InvalidInput("compare needs at least two runs")
    runs = [tracker.get_run(r) for r in refs]
    if len({r.run_id for r in runs}) != len(runs):
        raise InvalidInput("the same run is listed twice")
    names = metrics or sorted({m for r in runs for m in r.metrics})
    if not names:
        raise InvalidInput("none of these runs logged a metric")
    labels = _labels(runs)
    tasks = {r.tags.get("predictions_task") for r in runs}
    task = next(iter(tasks)) if len(tasks) == 1 else None
    table = {m: {labels[i]: r.metrics.get(m) for i, r in enumerate(runs)} for m in names}
    direction, best, notes = {}, {}, []
    for m in names:
        higher, known = direction_of(m, task)
        direction[m] = "higher" if higher else "lower"
        if not known:
            notes.append(f"{m}: direction assumed from its name ({direction[m]} is better)")
        values = {k: v for k, v in table[m].items() if v is not None}
        if not values:
            best[m] = None
            continue
        top = (max if higher else min)(values.values())
        winners = [k for k, v in values.items() if v == top]
        best[m] = winners[0] if len(winners) == 1 else None
        if len(values) < len(runs):
            missing = [k for k in table[m] if table[m][k] is None]
            notes.append(f"{m}: not logged by {', '.join(missing)}")
    out = RunComparison(
        runs=[{"name": labels[i], "run_id": r.run_id} for i, r in enumerate(runs)],
        baseline=labels[0],
        metrics=names,
        table=table,
        direction=direction,
        best=best,
        notes=notes,
    )
    _uncertainty(tracker, runs, labels, names, task, out, n_boot, confidence, min_effect, seed)
    return out


def _labels(runs: list[Any]) -> list[str]:
    names = [r.name or r.run_id[:8] for r in runs]
    return [
        n if names.count(n) == 1 else f"{n}@{r.run_id[:8]}"
        for n, r in zip(names, runs, strict=True)
    ]


def _uncertainty(
    tracker: Any,
    runs: list[Any],
    labels: list[str],
    names: list[str],
    task: str | None,
    out: RunComparison,
    n_boot: int,
    confidence: float,
    min_effect: float,
    seed: int,
) -> None:
    from core.evaluation.comparison import ComparisonParams, Predictions, compare_with_champion
    from core.evaluation.registry import known_metrics

    missing = [labels[i] for i, r in enumerate(runs) if not r.predictions_logged]
    if missing:
        for label in labels[1:]:
            out.uncertainty_unavailable[label] = (
                f"no per-row predictions logged by {', '.join(missing)} "
                "(TrackedRun.log_predictions): differences are shown without an interval"
            )
        return
    if task is None:
        for label in labels[1:]:
            out.uncertainty_unavailable[label] = "the runs logged predictions for different tasks"
        return
    known = set(known_metrics(task))  # type: ignore[arg-type]
    chosen = sorted({_base(m) for m in names if _base(m) in known})
    if not chosen:
        for label in labels[1:]:
            out.uncertainty_unavailable[label] = (
                f"none of {', '.join(names)} is a {task} metric computable from predictions"
            )
        return
    base = tracker.load_predictions(runs[0].run_id)
    params = ComparisonParams(
        n_boot=n_boot,
        confidence=confidence,
        min_effect=min_effect,
        primary_metric=chosen[0],
        seed=seed,
    )
    for i in range(1, len(runs)):
        other = tracker.load_predictions(runs[i].run_id)
        if list(other["row_id"]) != list(base["row_id"]) or list(other["y_true"]) != list(
            base["y_true"]
        ):
            out.uncertainty_unavailable[labels[i]] = (
                f"{labels[i]} and {labels[0]} were scored on different rows: no paired interval"
            )
            continue
        result = compare_with_champion(
            task,
            base["y_true"].to_numpy(),
            Predictions(other["y_pred"].to_numpy(), _score(other)),
            Predictions(base["y_pred"].to_numpy(), _score(base)),
            params=params,
            metrics=chosen,
        )
        out.uncertainty[labels[i]] = result.model_dump()


def _score(frame: Any) -> Any:
    if "y_score" in frame:
        return frame["y_score"].to_numpy()
    cols = sorted(c for c in frame.columns if c.startswith("y_score_"))
    return frame[cols].to_numpy() if cols else None
