"""Evaluation reports: JSON for machines, Markdown for people, PNG plots, and MLflow logging.

Plots are drawn on matplotlib ``Figure`` objects with the Agg canvas directly, so nothing
touches pyplot's global backend or state. MLflow is only reached through an explicit tracking
URI (never the cwd default) and is imported lazily: it costs seconds to import.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from core.errors import InvalidInput, NotFound
from core.evaluation.result import EvaluationResult


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(v).replace("|", "\\|") for v in row) + " |" for row in rows]
    return lines + [""]


def render_markdown(result: EvaluationResult) -> str:
    """A human-readable summary of an evaluation result."""
    r = result
    out = [f"# Evaluation report ({r.task})", "", f"Rows evaluated: {r.n}", ""]
    if r.labels is not None:
        out += [
            f"Classes: {r.labels}"
            + (f"; positive class: {r.pos_label!r}" if r.pos_label is not None else ""),
            "",
        ]
    out += ["## Metrics", ""] + _table(["metric", "value"], [[k, v] for k, v in r.metrics.items()])
    if r.unavailable:
        out += ["## Not computable", ""]
        out += _table(["metric", "reason"], [[k, v] for k, v in r.unavailable.items()])
    if r.per_class:
        names = sorted({m for v in r.per_class.values() for m in v})
        rows = [
            [c] + [int(v[m]) if m == "support" else v.get(m, "n/a") for m in names]
            for c, v in r.per_class.items()
        ]
        out += ["## Per class", ""] + _table(["class", *names], rows)
    if r.confusion_matrix is not None:
        cm = r.confusion_matrix
        out += ["## Confusion matrix (rows: true, columns: predicted)", ""]
        out += _table(
            ["", *map(str, cm.labels)],
            [[str(lab), *row] for lab, row in zip(cm.labels, cm.matrix, strict=True)],
        )
    if r.calibration is not None:
        out += [f"## Calibration ({r.calibration.kind}), ECE = {r.calibration.ece:.4f}", ""]
        c = r.calibration
        out += _table(
            ["mean predicted", "fraction positive", "rows"],
            [list(t) for t in zip(c.mean_predicted, c.fraction_positive, c.counts, strict=True)],
        )
    if r.thresholds is not None:
        out += ["## Thresholds", ""]
        rows = [
            [k, b.threshold, b.value, b.tp, b.fp, b.fn, b.tn] for k, b in r.thresholds.best.items()
        ]
        out += _table(["best by", "threshold", "value", "tp", "fp", "fn", "tn"], rows)
        out += [f"- {k}: {v}" for k, v in r.thresholds.unavailable.items()] + [""]
    if r.fairness is not None:
        f = r.fairness
        out += [f"## Fairness over {', '.join(f.sensitive_columns)}", ""]
        out += _table(["measure", "value"], [[k, v] for k, v in f.metrics.items()])
        out += [f"- {k} not computable: {v}" for k, v in f.unavailable.items()] + [""]
        names = sorted({m for g in f.groups for m in g.metrics})
        out += _table(
            ["group", "rows", *names],
            [[g.group, g.count] + [g.metrics.get(m, "n/a") for m in names] for g in f.groups],
        )
        out += [f"- {note}" for note in f.notes]
    if r.slices is not None:
        s = r.slices
        out += [
            f"## Worst slices ({s.error_measure}; overall {s.overall_error:.4f}; slices under {s.min_slice_size} rows ignored: {s.skipped_small})",
            "",
        ]
        out += _table(
            ["slice", "rows", "error", "lift"],
            [[x.description, x.count, x.error, x.lift] for x in s.slices],
        )
    if r.comparison is not None:
        c = r.comparison
        out += [f"## Comparison with champion: **{c.verdict}**", "", c.reason, ""]
        out += [
            f"Paired bootstrap, {c.n_boot} resamples, {c.confidence:.0%} CI, min effect {c.min_effect:g}, seed {c.seed}.",
            "",
        ]
        rows = [
            [
                m.metric,
                m.candidate,
                m.champion,
                m.difference,
                f"[{m.ci_low:.4f}, {m.ci_high:.4f}]",
                m.verdict,
            ]
            for m in c.per_metric.values()
        ]
        out += _table(["metric", "candidate", "champion", "difference", "CI", "verdict"], rows)
        out += [f"- {k} not compared: {v}" for k, v in c.unavailable.items()] + [""]
    if r.notes:
        out += ["## Notes", ""] + [f"- {n}" for n in r.notes] + [""]
    return "\n".join(out)


def _figure():  # noqa: ANN202 - matplotlib types are imported lazily
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def write_plots(result: EvaluationResult, out_dir: Path) -> dict[str, Path]:
    """ROC, PR, confusion matrix and calibration PNGs (those the result has data for)."""
    files: dict[str, Path] = {}
    for kind, xlabel, ylabel in (
        ("roc", "False positive rate", "True positive rate"),
        ("pr", "Recall", "Precision"),
    ):
        curves = [c for c in result.curves if c.kind == kind]
        if not curves:
            continue
        fig, ax = _figure()
        for c in curves:
            area = "" if c.area is None else f" (area {c.area:.3f})"
            ax.plot(
                c.x,
                c.y,
                label=f"{c.label}{area}",
                drawstyle="steps-post" if kind == "pr" else "default",
            )
        if kind == "roc":
            ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
        ax.set(
            xlabel=xlabel, ylabel=ylabel, title=f"{kind.upper()} curve", xlim=(0, 1), ylim=(0, 1.02)
        )
        ax.legend(loc="lower right" if kind == "roc" else "lower left", fontsize=7)
        files[kind] = out_dir / f"{kind}.png"
        fig.savefig(files[kind])
    if result.confusion_matrix is not None:
        cm = result.confusion_matrix
        fig, ax = _figure()
        image = ax.imshow(cm.matrix, cmap="Blues")
        fig.colorbar(image, ax=ax)
        ticks = list(range(len(cm.labels)))
        ax.set(
            xticks=ticks,
            yticks=ticks,
            xticklabels=[str(x) for x in cm.labels],
            yticklabels=[str(x) for x in cm.labels],
            xlabel="Predicted",
            ylabel="True",
            title="Confusion matrix",
        )
        top = max(max(row) for row in cm.matrix) if cm.matrix else 0
        for i, row in enumerate(cm.matrix):
            for j, v in enumerate(row):
                ax.text(
                    j,
                    i,
                    str(v),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if v > top / 2 else "black",
                )
        files["confusion_matrix"] = out_dir / "confusion_matrix.png"
        fig.savefig(files["confusion_matrix"])
    if result.calibration is not None:
        fig, ax = _figure()
        c = result.calibration
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8, label="perfect")
        ax.plot(c.mean_predicted, c.fraction_positive, marker="o", label=f"all (ECE {c.ece:.3f})")
        for g in result.fairness.groups if result.fairness else []:
            if g.calibration is not None:
                ax.plot(
                    g.calibration.mean_predicted,
                    g.calibration.fraction_positive,
                    marker=".",
                    linewidth=0.8,
                    label=f"{g.group} (ECE {g.calibration.ece:.3f})",
                )
        ax.set(
            xlabel="Mean predicted probability",
            ylabel="Fraction positive" if c.kind == "positive_class" else "Accuracy",
            title="Calibration",
            xlim=(0, 1),
            ylim=(0, 1),
        )
        ax.legend(loc="upper left", fontsize=7)
        files["calibration"] = out_dir / "calibration.png"
        fig.savefig(files["calibration"])
    return files


def write_report(
    result: EvaluationResult, out_dir: str | Path, *, plots: bool = True
) -> dict[str, Path]:
    """Write evaluation.json, evaluation.md and (optionally) PNG plots; returns the paths."""
    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    files = {"json": directory / "evaluation.json", "markdown": directory / "evaluation.md"}
    files["json"].write_text(json.dumps(result.model_dump(mode="json"), indent=2, allow_nan=False))
    files["markdown"].write_text(render_markdown(result))
    if plots:
        files.update(write_plots(result, directory))
    return files


_KEY_OK = re.compile(r"[^A-Za-z0-9_\-./ ]")


def _key(*parts: str) -> str:
    return _KEY_OK.sub("_", ".".join(parts))[:250]


def flatten_metrics(result: EvaluationResult) -> dict[str, float]:
    """Every number of the result worth tracking over time, as MLflow metric keys."""
    out = {_key(k): v for k, v in result.metrics.items()}
    for cls, values in result.per_class.items():
        out.update({_key("per_class", cls, k): v for k, v in values.items()})
    if result.fairness is not None:
        out.update({_key("fairness", k): v for k, v in result.fairness.metrics.items()})
        for g in result.fairness.groups:
            out.update({_key("fairness.group", g.group, k): v for k, v in g.metrics.items()})
    if result.thresholds is not None:
        for name, best in result.thresholds.best.items():
            out[_key("threshold", f"best_{name}")] = best.threshold
            out[_key("threshold", f"best_{name}_value")] = best.value
    if result.comparison is not None:
        for name, m in result.comparison.per_metric.items():
            out.update(
                {
                    _key("comparison", name, k): getattr(m, k)
                    for k in ("difference", "ci_low", "ci_high")
                }
            )
    return out


def _artifact_location(tracking_uri: str, artifact_location: str | None) -> str | None:
    """Artifacts next to a SQLite tracking DB (DESIGN.md layout) unless told otherwise."""
    if artifact_location is not None:
        return artifact_location
    if tracking_uri.startswith("sqlite:///") and ":memory:" not in tracking_uri:
        return (Path(tracking_uri[len("sqlite:///") :]).parent / "artifacts").resolve().as_uri()
    return None  # a tracking server decides where artifacts go


def log_evaluation(
    result: EvaluationResult,
    report_dir: str | Path,
    tracking_uri: str,
    experiment_name: str,
    model_name: str | None = None,
    model_version: str | int | None = None,
    *,
    run_name: str | None = None,
    artifact_location: str | None = None,
) -> str:
    """Log metrics, reasons and the report directory to a new MLflow run; returns its run id."""
    if not tracking_uri or not isinstance(tracking_uri, str):
        raise InvalidInput(
            "an explicit MLflow tracking_uri is required",
            hint="e.g. sqlite:///<MODELOPS_HOME>/mlflow.db; the cwd default is never used.",
        )
    directory = Path(report_dir)
    if not directory.is_dir():
        raise NotFound(
            f"report directory {directory} does not exist", hint="Run write_report first."
        )
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(experiment_name)
    experiment_id = (
        experiment.experiment_id
        if experiment is not None
        else client.create_experiment(
            experiment_name, artifact_location=_artifact_location(tracking_uri, artifact_location)
        )
    )
    tags = {"evaluation.task": result.task}
    if model_name is not None:
        tags["model_name"] = model_name
    if model_version is not None:
        tags["model_version"] = str(model_version)
    if result.comparison is not None:
        tags["evaluation.comparison_verdict"] = result.comparison.verdict
    tags.update({_key("unavailable", k): v[:5000] for k, v in result.unavailable.items()})
    run = client.create_run(experiment_id, run_name=run_name, tags=tags)
    run_id = run.info.run_id
    try:
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, 0) for k, v in flatten_metrics(result).items()]
        params = [Param("n", str(result.n))]
        if result.pos_label is not None:
            params.append(Param("pos_label", str(result.pos_label)))
        for i in range(0, max(len(metrics), 1), 1000):  # MLflow's per-batch limit
            client.log_batch(run_id, metrics=metrics[i : i + 1000], params=params if i == 0 else [])
        client.log_artifacts(run_id, str(directory), artifact_path="evaluation")
    except Exception:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id)
    return run_id
