"""``agent experiments list|show|compare``: tracked MLflow runs."""

from __future__ import annotations

from typing import Any

import click

from agents.cli.common import as_option, call, console, emit, human, json_option, table
from agents.cli.progress import working


@click.group()
def experiments() -> None:
    """List, show and compare tracked runs (also visible in the MLflow UI)."""


@experiments.command("list")
@click.option("--experiment", default=None)
@click.option("--limit", type=int, default=20, show_default=True)
@as_option
@json_option
@click.pass_context
def list_cmd(ctx, experiment, limit, as_user, as_json) -> None:  # noqa: ANN001
    """Runs, newest first."""
    args: dict[str, Any] = {"limit": limit}
    if experiment:
        args["experiment"] = experiment
    with working("reading runs", as_json):
        out = call(ctx, human(ctx, as_user), "list_experiment_runs", args)

    def render(o: dict[str, Any]) -> None:
        t = table("run", "experiment", "status", "metrics", "run id")
        for r in o["runs"]:
            shown = ", ".join(f"{k} {v:.4g}" for k, v in sorted(r["metrics"].items())[:4])
            t.add_row(r["name"], r["experiment"], r["status"], shown, r["run_id"])
        console().print(t)

    emit(out, as_json, render)


@experiments.command("show")
@click.argument("run")
@as_option
@json_option
@click.pass_context
def show_cmd(ctx, run, as_user, as_json) -> None:  # noqa: ANN001
    """One run's params, tags and metric history."""
    with working("reading run", as_json):
        out = call(ctx, human(ctx, as_user), "get_experiment_run", {"run": run})

    def render(o: dict[str, Any]) -> None:
        r = o["run"]
        click.echo(f"{r['name']} ({r['run_id']}) in {r['experiment']}: {r['status']}")
        for k, v in sorted(r["params"].items()):
            click.echo(f"  param {k} = {v}")
        for k, hist in o["metric_history"].items():
            steps = ", ".join(f"{h['step']}:{h['value']:.4g}" for h in hist[-8:])
            click.echo(f"  metric {k}: {steps}")
        for k in (
            "implementation_status",
            "accuracy_claim",
            "validation_method",
            "honesty_warning",
        ):
            if k in r["tags"]:
                click.echo(f"  {k}: {r['tags'][k]}")

    emit(out, as_json, render)


@experiments.command("compare")
@click.argument("runs", nargs=-1, required=True)
@click.option("--metric", "metrics", multiple=True, help="Metrics to compare (default all).")
@as_option
@json_option
@click.pass_context
def compare_cmd(ctx, runs, metrics, as_user, as_json) -> None:  # noqa: ANN001
    """Compare RUNS (names or ids): which is better per metric, with intervals when possible."""
    with working("comparing", as_json):
        out = call(
            ctx, human(ctx, as_user), "compare_runs", {"runs": list(runs), "metrics": list(metrics)}
        )

    def render(o: dict[str, Any]) -> None:
        c = o["comparison"]
        names = [r["name"] for r in c["runs"]]
        t = table("metric", *names, "better")
        for m in c["metrics"]:
            cells = [
                ("-" if c["table"][m][n] is None else f"{c['table'][m][n]:.4g}") for n in names
            ]
            t.add_row(f"{m} ({c['direction'][m]})", *cells, c["best"][m] or "tie / n/a")
        console().print(t)
        for name, res in c["uncertainty"].items():
            for m, mc in res["per_metric"].items():
                click.echo(
                    f"{name} vs {c['baseline']} {m}: {mc['difference']:+.4g} [{mc['ci_low']:.4g}, {mc['ci_high']:.4g}] -> {mc['verdict']}"
                )
        for name, why in c["uncertainty_unavailable"].items():
            click.echo(f"{name}: no interval ({why})")
        for note in c["notes"]:
            click.echo(f"note: {note}")

    emit(out, as_json, render)
