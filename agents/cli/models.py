"""``agent models list|show``."""

from __future__ import annotations

from typing import Any

import click

from agents.cli.common import as_option, call, console, emit, human, json_option


@click.group()
def models() -> None:
    """List and show registered models."""


@models.command("list")
@as_option
@json_option
@click.pass_context
def list_cmd(ctx: click.Context, as_user: str | None, as_json: bool) -> None:
    """Registered models with latest version and aliases."""
    out = call(ctx, human(ctx, as_user), "list_models")

    def render(data: dict[str, Any]) -> None:
        from rich.table import Table

        t = Table("model", "versions", "latest", "aliases")
        for m in data["models"]:
            aliases = ", ".join(f"{a}=v{v}" for a, v in sorted(m["aliases"].items()))
            t.add_row(m["name"], str(m["versions"]), str(m["latest_version"]), aliases)
        console().print(t if data["models"] else "No registered models. Try `agent quickstart`.")

    emit(out, as_json, render)


@models.command("show")
@click.argument("name")
@click.option("--version", "-v", help="Version number or alias (champion, challenger).")
@as_option
@json_option
@click.pass_context
def show_cmd(
    ctx: click.Context, name: str, version: str | None, as_user: str | None, as_json: bool
) -> None:
    """A model's versions with honesty metadata, lineage and validation."""
    args = {"name": name, **({"version": version} if version else {})}
    out = call(ctx, human(ctx, as_user), "get_model", args)

    def render(data: dict[str, Any]) -> None:
        c = console()
        for v in data["versions"]:
            tags = v["tags"]
            c.print(
                f"[bold]{v['name']} v{v['version']}[/bold]  aliases: {', '.join(v['aliases']) or '-'}"
            )
            for k in (
                "implementation_status",
                "accuracy_claim",
                "validation_method",
                "honesty_warning",
            ):
                c.print(f"  {k:22} {v['honesty'].get(k, '[red]MISSING[/red]')}")
            c.print(
                f"  {'validation':22} {tags.get('validation_status', 'not validated')} {tags.get('validated_by', '')}"
            )
            c.print(f"  {'artifact sha256':22} {v['artifact_sha256']}")
            for k, val in v["lineage"].items():
                c.print(f"  {k:22} {val}")
            if tags.get("approval_id"):
                c.print(
                    f"  {'promoted':22} {tags['approval_id']} approved by {tags.get('approved_by')}"
                )

    emit(out, as_json, render)
