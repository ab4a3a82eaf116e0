"""``agent tool list|call``: any typed tool through the same dispatcher agents use."""

from __future__ import annotations

import json

import click

from agents.cli.common import as_option, console, human, parse_json_input, runtime
from core.errors import exit_code_for


@click.group()
def tool() -> None:
    """Call any typed tool with JSON input (scripts)."""


@tool.command("list")
@as_option
@click.option("--all", "show_all", is_flag=True, help="Every tool, not only those you may call.")
@click.pass_context
def list_cmd(ctx: click.Context, as_user: str | None, show_all: bool) -> None:
    """Tools with permission and side-effect class."""
    rt = runtime(ctx)
    tools = (
        rt.dispatcher.catalog.values() if show_all else rt.dispatcher.tools_for(human(ctx, as_user))
    )
    for t in sorted(tools, key=lambda t: t.name):
        console().print(f"{t.name:28} {t.permission:20} {t.side_effect:8} {t.description}")


@tool.command("call")
@click.argument("name")
@click.option("--input", "raw", default="{}", help="Tool arguments as a JSON object.")
@as_option
@click.pass_context
def call_cmd(ctx: click.Context, name: str, raw: str, as_user: str | None) -> None:
    """Call tool NAME; prints the ToolResult as JSON (exit status follows the error code)."""
    args = parse_json_input(raw)
    result = runtime(ctx).dispatcher.call(human(ctx, as_user), name, args)
    click.echo(json.dumps(result.for_model(), indent=2, default=str))
    if not result.ok:
        ctx.exit(exit_code_for(result.error.code))
