"""``agent agents list``: the agent profiles with role, trust level, tools and hand-off targets.

Reads roles.yaml and the tool modules' source only (agents.profiles), so it starts fast.
"""

from __future__ import annotations

from typing import Any

import click

from agents.cli.common import console, emit, json_option, table


@click.group("agents")
def agents() -> None:
    """Agent profiles: role, trust level and the tools each may call."""


@agents.command("list")
@json_option
@click.pass_context
def list_cmd(ctx: click.Context, as_json: bool) -> None:
    """Profiles with their role, trust level, tools and hand-off targets."""
    from agents.profiles import list_profiles, read_roles

    roles = read_roles(home=(ctx.find_root().obj or {}).get("home"))
    profiles = [p.as_dict() for p in list_profiles(roles)]

    def render(rows: list[dict[str, Any]]) -> None:
        t = table("profile", "role", "trust", "tools", "hands off to")
        for p in rows:
            t.add_row(
                p["profile"],
                f"{p['role']} ({p['grants']})",
                p["trust"],
                ", ".join(p["tools"]) or "-",
                ", ".join(p["hands_off_to"]) or "-",
            )
        console().print(t)

    emit(profiles, as_json, render)
