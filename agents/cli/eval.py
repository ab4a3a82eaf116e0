"""``agent eval run|show``: QATester-grade evaluations stored as MLflow runs."""

from __future__ import annotations

from typing import Any

import click

from agents.cli.common import as_option, call, console, emit, human, json_option, parse_json_input
from agents.cli.progress import working


@click.group("eval")
def eval_group() -> None:
    """Evaluate model versions and show stored evaluation reports."""


def render_evaluation(out: dict[str, Any]) -> None:
    c = console()
    c.print(
        f"[bold]{out['name']} v{out['version']}[/bold] ({out.get('task', 'binary')}) on "
        f"{out['dataset']['path']} ({out['n']} rows)"
    )
    for k, v in sorted(out["metrics"].items()):
        c.print(f"  {k:22} {v:.4f}")
    for k, why in sorted(out["unavailable"].items()):
        c.print(f"  {k:22} unavailable: {why}")
    if out.get("comparison"):
        comp = out["comparison"]
        c.print(
            f"  vs champion v{out['champion_version']} on {comp['primary_metric']}: "
            f"[bold]{comp['verdict']}[/bold] ({comp['reason']})"
        )
    if out.get("fairness"):
        f = out["fairness"]
        c.print(f"  fairness by {', '.join(f['sensitive_columns'])}:")
        for k, v in sorted(f["metrics"].items()):
            c.print(f"    {k:32} {v:.4f}")
        for g in f["groups"]:
            shown = ", ".join(
                f"{k} {v:.3f}"
                for k, v in sorted(g["metrics"].items())
                if k in ("accuracy", "f1", "selection_rate")
            )
            c.print(f"    group {g['group']!s:12} n={g['count']:<6} {shown}")
    for s in out.get("worst_slices", [])[:3]:
        c.print(
            f"  worst slice: {s['description']}: {s['count']} rows, error {s['error']:.3f} (+{s['lift']:.3f})"
        )
    if out.get("evaluation_id"):
        c.print(f"Report: agent eval show {out['evaluation_id']}")


@eval_group.command("run")
@click.option(
    "--input",
    "raw",
    required=True,
    help='JSON like {"model_id": "NAME@challenger", "evaluation_dataset": "data/holdout.csv", '
    '"include_fairness": true, "sensitive_features": ["gender"]}; @FILE or - (stdin).',
)
@as_option
@json_option
@click.pass_context
def run_cmd(ctx: click.Context, raw: str, as_user: str | None, as_json: bool) -> None:
    """Evaluate a version (metrics, thresholds, slices, fairness, champion comparison)."""
    args = parse_json_input(raw)
    with working("evaluating (metrics, bootstrap CIs, fairness, champion comparison)", as_json):
        out = call(ctx, human(ctx, as_user), "evaluate_model", args)
    emit(out, as_json, render_evaluation)


@eval_group.command("show")
@click.argument("evaluation_id")
@as_option
@json_option
@click.pass_context
def show_cmd(ctx: click.Context, evaluation_id: str, as_user: str | None, as_json: bool) -> None:
    """A stored evaluation: the Markdown report (or the JSON report with --json)."""
    out = call(ctx, human(ctx, as_user), "get_evaluation", {"evaluation_id": evaluation_id})

    def render(data: dict[str, Any]) -> None:
        from rich.markdown import Markdown

        console().print(Markdown(data["markdown"]))
        console().print("Artifacts:\n  " + "\n  ".join(data["artifacts"]))

    emit(out if not as_json else out["report"] | {"evaluation_id": evaluation_id}, as_json, render)
