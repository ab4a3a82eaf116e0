"""Shared CLI pieces: runtime, identity, JSON input and rendering."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import click

from core.errors import InvalidInput

as_option = click.option(
    "--as",
    "as_user",
    metavar="NAME",
    envvar="MODELOPS_USER",
    help="Who you are (a person in roles.yaml); default $MODELOPS_USER. A claim: with a "
    "personal token ($MODELOPS_TOKEN) you are its owner, and `identity: token` refuses it.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def runtime(ctx: click.Context):  # noqa: ANN201
    obj = ctx.find_root().obj
    if "runtime" not in obj:
        from agents.runtime import build_runtime
        from core.settings import load_settings

        obj["runtime"] = build_runtime(load_settings(home=obj.get("home")))
    return obj["runtime"]


def human(ctx: click.Context, name: str | None):  # noqa: ANN201
    """The acting person: from a personal token when there is one (MODELOPS_TOKEN or the
    token file; authenticated), else the claimed name, if the policy's identity mode allows."""
    from agents.cli.identity import resolve_cli_human

    rt = runtime(ctx)
    return resolve_cli_human(rt.services, name or rt.settings.user)[0]


def call(
    ctx: click.Context, actor, tool: str, args: dict[str, Any] | None = None
) -> dict[str, Any]:  # noqa: ANN001
    return runtime(ctx).dispatcher.call_or_raise(actor, tool, args)


def parse_json_input(raw: str, what: str = "--input") -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"{what} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
            hint="""Quote the JSON for your shell, e.g. --input '{"name": "m"}'.""",
        ) from exc


def emit(data: Any, as_json: bool, render: Callable[[Any], None]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        render(data)


def console():  # noqa: ANN201
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def is_interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()
