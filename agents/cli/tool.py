"""``agent tool list|call``: any typed tool through the same dispatcher agents use."""

from __future__ import annotations

import json
from typing import Any

import click

from agents.cli.common import (
    as_option,
    console,
    emit,
    human,
    json_option,
    parse_json_input,
    runtime,
    table,
)
from agents.cli.progress import working
from core.errors import exit_code_for


@click.group()
def tool() -> None:
    """Call any typed tool with JSON input (scripts)."""


@tool.command("list")
@as_option
@click.option("--all", "show_all", is_flag=True, help="Every tool, not only those you may call.")
@click.option(
    "--profile",
    metavar="NAME",
    help="The tools agent profile NAME may call for you (its rights intersected with yours): "
    "what `agent run NAME` and `agent mcp --profile NAME` offer.",
)
@json_option
@click.pass_context
def list_cmd(
    ctx: click.Context, as_user: str | None, show_all: bool, profile: str | None, as_json: bool
) -> None:
    """Tools with permission and side-effect class."""
    rt = runtime(ctx)
    if show_all and profile:
        raise click.UsageError("give --all or --profile, not both")
    if show_all:
        tools = rt.dispatcher.catalog.values()
    elif profile:
        tools = rt.dispatcher.tools_for(profile_actor(rt, profile, human(ctx, as_user)))
    else:
        tools = rt.dispatcher.tools_for(human(ctx, as_user))
    out = {
        "tools": [
            {
                "name": t.name,
                "permission": t.permission,
                "side_effect": t.side_effect,
                "description": t.description,
            }
            for t in sorted(tools, key=lambda t: t.name)
        ]
    }

    def render(data: dict[str, Any]) -> None:
        t = table("tool", "permission", "side effect", "description")
        for row in data["tools"]:
            t.add_row(row["name"], row["permission"], row["side_effect"], row["description"])
        console().print(t if data["tools"] else "No tools you may call.")

    emit(out, as_json, render)


def profile_actor(rt, profile: str, person):  # noqa: ANN001, ANN201
    """The agent actor ``agent run`` would launch for this person (not audited: a listing);
    refused for a profile more trusted than the person, as the launch is."""
    from agents.supervisor import launchable_profiles
    from core.errors import PermissionDenied

    policy = rt.services.policy
    allowed = launchable_profiles(policy, person)
    if profile not in allowed:
        raise PermissionDenied(
            f"{person.name} may not launch profile {profile!r}",
            hint=f"Profiles you may run: {', '.join(allowed)}.",
        )
    return policy.agent(profile, person)


@tool.command("call")
@click.argument("name")
@click.option(
    "--input", "raw", default="{}", help="Tool arguments as a JSON object; @FILE or - (stdin)."
)
@as_option
@json_option
@click.pass_context
def call_cmd(ctx: click.Context, name: str, raw: str, as_user: str | None, as_json: bool) -> None:
    """Call tool NAME; prints the ToolResult as JSON, with or without --json (exit status
    follows the error code)."""
    args = parse_json_input(raw)
    with working(f"running {name}", as_json):
        result = runtime(ctx).dispatcher.call(human(ctx, as_user), name, args)
    click.echo(json.dumps(result.for_model(), indent=2, default=str))
    if not result.ok:
        ctx.exit(exit_code_for(result.error.code))
