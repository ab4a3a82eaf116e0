"""``agent predict NAME --input JSON|@FILE|- [--environment E]``: rows by position or by
column name, one or a batch, sent to the gateway as given."""

from __future__ import annotations

from typing import Any

import click

from agents.cli.common import (
    as_option,
    call,
    console,
    emit,
    environment_option,
    human,
    json_option,
    null_numbers,
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


# The request bodies the gateway takes (core/serving/named_input.py), passed through as given.
FORMS = ("features", "inputs", "dataframe_records", "columns", "dataframe_split")
FORMS_HELP = (
    'JSON: {"features": [...]} (one row in the signature\'s order, or a list of rows), '
    '{"inputs": [{"col": value, ...}, ...]} (named rows, or one object), '
    '{"columns": [...], "data": [[...], ...]}, or dataframe_records / dataframe_split; '
    "@FILE reads it from a file, - from stdin."
)


def request_body(body: Any) -> dict[str, Any]:
    """The gateway body from ``--input``: one of FORMS (``data`` with ``columns``), checked
    here so a mistake is a usage error that names the field (exit 2)."""
    if not isinstance(body, dict):
        raise InvalidInput("--input must be a JSON object", hint=f"e.g. {FORMS_HELP}")
    forms = [k for k in FORMS if k in body]
    extra = sorted(set(body) - set(FORMS) - {"data"})
    if len(forms) != 1 or extra:
        got = f" (got: {', '.join(sorted(body))})" if body else ""
        raise InvalidInput(
            "--input takes exactly one of " + ", ".join(FORMS) + " (data goes with columns)" + got,
            hint=FORMS_HELP,
        )
    if forms == ["features"]:
        null_numbers(body["features"], "features")
    return body


@click.command()
@click.argument("name")
@click.option("--input", "raw", required=True, metavar="JSON|@FILE|-", help=FORMS_HELP)
@environment_option(help="Whose gateway answers: production or staging.")
@click.option(
    "--routing-key", default=None, help="Sticky routing (A/B unit): the same key, the same version."
)
@as_option
@json_option
@click.pass_context
def predict(
    ctx: click.Context,
    name: str,
    raw: str,
    environment: str,
    routing_key: str | None,
    as_user: str | None,
    as_json: bool,
) -> None:
    """Ask a deployed model's gateway for a prediction (answers carry honesty labels)."""
    body = request_body(parse_json_input(raw))
    args = {"name": name, "environment": environment, **body}
    if routing_key:
        args["routing_key"] = routing_key
    out = call(ctx, human(ctx, as_user), "predict", args)
    emit(out["response"], as_json, render_prediction)
