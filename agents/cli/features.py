"""``agent features push|get|search|views``: the Chroma feature store."""

from __future__ import annotations

import json
from typing import Any

import click

from agents.cli.common import as_option, call, emit, human, json_option, parse_json_input
from agents.cli.progress import working
from core.errors import InvalidInput


@click.group()
def features() -> None:
    """Push and read features (point in time), search neighbours, list views."""


@features.command("push")
@click.argument("view")
@click.argument("entity_id")
@click.option("--features", "raw", required=True, help="JSON object, e.g. '{\"tenure\": 12}'.")
@click.option("--version", default="1", show_default=True)
@click.option("--event-time", default=None, help="ISO 8601 (default now).")
@click.option(
    "--status",
    "status",
    type=click.Choice(["IMPLEMENTED", "HEURISTIC", "PLANNED"]),
    default="IMPLEMENTED",
    show_default=True,
)
@click.option("--note", default="", help="Validation note stored with the features.")
@click.option("--create", is_flag=True, help="Create VIEW if it does not exist.")
@as_option
@json_option
@click.pass_context
def push_cmd(
    ctx, view, entity_id, raw, version, event_time, status, note, create, as_user, as_json
) -> None:  # noqa: ANN001
    """Store ENTITY_ID's features in VIEW."""
    values = parse_json_input(raw, "--features")
    if not isinstance(values, dict):
        raise InvalidInput("--features must be a JSON object")
    args: dict[str, Any] = {
        "view": view,
        "version": version,
        "entity_id": entity_id,
        "features": values,
        "implementation_status": status,
        "validation_note": note,
        "create": create,
    }
    if event_time:
        args["event_time"] = event_time
    with working("storing", as_json):
        out = call(ctx, human(ctx, as_user), "push_features", args)
    emit(
        out,
        as_json,
        lambda o: click.echo(
            f"stored {o['row']['entity_id']} in {view} v{version} at {o['row']['event_time']}"
        ),
    )


@features.command("get")
@click.argument("view")
@click.argument("entity_ids", nargs=-1, required=True)
@click.option("--as-of", default=None, help="Point in time (ISO 8601); default now.")
@click.option("--version", default=None)
@as_option
@json_option
@click.pass_context
def get_cmd(ctx, view, entity_ids, as_of, version, as_user, as_json) -> None:  # noqa: ANN001
    """Each entity's latest features at or before --as-of."""
    args: dict[str, Any] = {"view": view, "entity_ids": list(entity_ids)}
    if as_of:
        args["as_of"] = as_of
    if version:
        args["version"] = version
    with working("reading", as_json):
        out = call(ctx, human(ctx, as_user), "get_features", args)

    def render(o: dict[str, Any]) -> None:
        for entity, row in o["rows"].items():
            if row is None:
                click.echo(f"{entity}: no features at or before {o['as_of'] or 'now'}")
            else:
                click.echo(
                    f"{entity} (v{row['version']}, {row['event_time']}, {row['implementation_status']}): {json.dumps(row['features'])}"
                )

    emit(out, as_json, render)


@features.command("search")
@click.argument("view")
@click.option("--entity", "entity_id", default=None, help="Neighbours of this entity.")
@click.option("--features", "raw", default=None, help="Neighbours of this feature object (JSON).")
@click.option("-k", "k", type=int, default=5, show_default=True)
@click.option("--version", default=None)
@as_option
@json_option
@click.pass_context
def search_cmd(ctx, view, entity_id, raw, k, version, as_user, as_json) -> None:  # noqa: ANN001
    """The K nearest entities in VIEW."""
    args: dict[str, Any] = {"view": view, "k": k}
    if entity_id:
        args["entity_id"] = entity_id
    if raw:
        args["features"] = parse_json_input(raw, "--features")
    if version:
        args["version"] = version
    with working("searching", as_json):
        out = call(ctx, human(ctx, as_user), "search_features", args)
    emit(
        out,
        as_json,
        lambda o: [
            click.echo(
                f"{n['entity_id']:20} distance {n['distance']:.4f}  {json.dumps(n['features'])}"
            )
            for n in o["neighbours"]
        ],
    )


@features.command("views")
@click.argument("view", required=False)
@as_option
@json_option
@click.pass_context
def views_cmd(ctx, view, as_user, as_json) -> None:  # noqa: ANN001
    """Feature views and versions with their quality metadata."""
    with working("reading", as_json):
        out = call(ctx, human(ctx, as_user), "describe_features", {"view": view} if view else {})

    def render(o: dict[str, Any]) -> None:
        if not o["views"]:
            click.echo(
                "no feature views yet (agent workflow run ml-feature-engineering, or agent features push --create)"
            )
        for v in o["views"]:
            click.echo(
                f"{v['view']} v{v['version']}: {v['rows']} rows, {len(v['features'])} features, {v['implementation_status']}, created {v['created']}"
            )
            if v["validation_note"]:
                click.echo(f"  note: {v['validation_note']}")

    emit(out, as_json, render)
