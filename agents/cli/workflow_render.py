"""Terminal rendering of the ml-experiment-tracker and ml-feature-engineering results."""

from __future__ import annotations

from typing import Any

import click


def render_workflow(name: str, out: dict[str, Any]) -> None:
    if name == "ml-experiment-tracker":
        _render_tracking(out)
    else:
        _render_features(out)


def _render_tracking(o: dict[str, Any]) -> None:
    click.echo(
        f"run {o['run_name']} ({o['run_id']}) in experiment {o['experiment']}: {o['task']}, "
        f"{o['model_type']}, {o['train_rows']} train / {o['test_rows']} held-out rows"
    )
    if o["model_note"]:
        click.echo(f"  note: {o['model_note']}")
    for k, v in o["metrics"].items():
        click.echo(f"  {k:18} {v:.4f}")
    for col, why in o["dropped_columns"].items():
        click.echo(f"  not used: {col} ({why})")
    click.echo(f"  honesty: {o['honesty']['accuracy_claim']} ({o['honesty']['validation_method']})")
    click.echo(
        f"  model: {o['model_uri']} (register it: agent models register --from-run {o['run_id']})"
    )


def _render_features(o: dict[str, Any]) -> None:
    r = o["report"]
    click.echo(
        f"{r['rows']} rows, label column {r['label_column']} ({r['task']}), selection by {r['selection_method']}"
    )
    click.echo("profile:")
    for p in r["profile"]:
        click.echo(
            f"  {p['name']:24} {p['kind']:12} missing {p['missing_fraction']:.0%}  distinct {p['cardinality']}"
        )
    click.echo("candidates: " + ", ".join(f"{k} {n}" for k, n in r["candidates"].items()))
    click.echo(f"selected ({len(r['selected'])}):")
    for d in r["decisions"]:
        if d["selected"]:
            click.echo(f"  {d['name']:36} score {d['score']:.4f}")
    leaks = {n: why for n, why in r["rejected"].items() if any("leakage" in w for w in why)}
    others = len(r["rejected"]) - len(leaks)
    for n, why in leaks.items():
        click.echo(f"  REJECTED {n}: {'; '.join(why)}")
    if others:
        click.echo(
            f"  ({others} other candidates rejected: low score, missingness or top-N cut; see --json)"
        )
    for w in r["warnings"]:
        click.echo(f"  warning: {w}")
    s = o.get("stored")
    if s:
        click.echo(
            f"stored {s['rows']} rows x {len(s['features'])} features as {s['view']} v{s['version']} (agent features views {s['view']})"
        )
