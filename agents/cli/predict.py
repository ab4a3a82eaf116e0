"""``agent predict NAME --input JSON``."""

from __future__ import annotations

from typing import Any

import click

from agents.cli.common import (
    as_option,
    call,
    console,
    emit,
    human,
    json_option,
    parse_json_input,
    table,
)
from core.errors import InvalidInput


def _probabilities(p: Any) -> str:
    return ", ".join(f"{x:.4f}" for x in p) if isinstance(p, list) else "-"


def render_prediction(r: dict[str, Any]) -> None:
    """The answer and the honesty labels it carries (``--json`` prints the gateway's JSON)."""
    from rich.text import Text

    c = console()
    c.print(
        Text(
            f"{r.get('model_name', '?')} v{r.get('model_version', '?')} "
            f"(revision {r.get('revision', '?')})"
        )
    )
    for key in ("implementation_status", "accuracy_claim", "validation_status"):
        c.print(Text(f"  {key:22} {r.get(key) or 'MISSING'}"))
    pred, proba = r.get("prediction"), r.get("probabilities")
    if isinstance(pred, list):
        t = table("row", "prediction", "probabilities")
        for i, p in enumerate(pred):
            t.add_row(str(i), str(p), _probabilities(proba[i] if proba else None))
        c.print(t)
    else:
        c.print(Text(f"  {'prediction':22} {pred}"))
        if proba is not None:
            c.print(Text(f"  {'probabilities':22} {_probabilities(proba)}"))


@click.command()
@click.argument("name")
@click.option(
    "--input", "raw", required=True, help='JSON: {"features": [...]} (one row or a list of rows).'
)
@as_option
@json_option
@click.pass_context
def predict(ctx: click.Context, name: str, raw: str, as_user: str | None, as_json: bool) -> None:
    """Ask a deployed model's gateway for a prediction (answers carry honesty labels)."""
    body = parse_json_input(raw)
    if not isinstance(body, dict) or "features" not in body:
        raise InvalidInput('--input must be a JSON object with a "features" array')
    out = call(ctx, human(ctx, as_user), "predict", {"name": name, "features": body["features"]})
    emit(out["response"], as_json, render_prediction)
