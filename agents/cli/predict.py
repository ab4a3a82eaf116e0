"""``agent predict NAME --input JSON``."""

from __future__ import annotations

import json

import click

from agents.cli.common import as_option, call, human, parse_json_input
from core.errors import InvalidInput


@click.command()
@click.argument("name")
@click.option(
    "--input", "raw", required=True, help='JSON: {"features": [...]} (one row or a list of rows).'
)
@as_option
@click.pass_context
def predict(ctx: click.Context, name: str, raw: str, as_user: str | None) -> None:
    """Ask a deployed model's gateway for a prediction (answers carry honesty labels)."""
    body = parse_json_input(raw)
    if not isinstance(body, dict) or "features" not in body:
        raise InvalidInput('--input must be a JSON object with a "features" array')
    out = call(ctx, human(ctx, as_user), "predict", {"name": name, "features": body["features"]})
    click.echo(json.dumps(out["response"], indent=2))
