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


def environment_option(default: str | None = "production", help: str | None = None):  # noqa: ANN201, A002
    """``--environment production|staging``, plus the old ``--target`` (hidden) and the old
    value ``local`` (production), each accepted for one release with a warning on stderr."""

    def warn(message: str) -> None:
        click.echo(f"warning: {message} (accepted for one release)", err=True)

    def old_flag(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
        if value is not None:
            warn("--target is now --environment")
            ctx.meta["environment.old_flag"] = value

    def normalize(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
        old = ctx.meta.pop("environment.old_flag", None)
        if old is not None and value is not None:
            raise click.UsageError("give --environment only (--target is its old name)")
        value = value if value is not None else (old if old is not None else default)
        if value == "local":
            warn("environment 'local' is now 'production'")
            value = "production"
        return value

    choice = click.Choice(["production", "staging", "local"])

    def decorate(f):  # noqa: ANN001, ANN202
        f = click.option(
            "--environment",
            type=choice,
            default=None,
            callback=normalize,
            help=(help or "production is approval-gated; staging needs no approval.")
            + (f" [default: {default}]" if default else ""),
        )(f)
        # Declared after, so click parses it first and ``normalize`` sees it.
        return click.option(
            "--target", type=choice, hidden=True, expose_value=False, callback=old_flag
        )(f)

    return decorate


def server_client(ctx: click.Context):  # noqa: ANN201
    """Server mode (--server URL / MODELOPS_SERVER): the control-plane client, else None."""
    obj = ctx.find_root().obj
    if not obj.get("server"):
        return None
    if "remote" not in obj:
        from agents.server.client import RemoteClient

        obj["remote"] = RemoteClient.from_cli(obj["server"])
        ctx.find_root().call_on_close(obj["remote"].close)
    return obj["remote"]


def runtime(ctx: click.Context):  # noqa: ANN201
    obj = ctx.find_root().obj
    if obj.get("server"):
        return server_client(ctx)  # stands in for the few direct runtime uses (run_decided)
    if "runtime" not in obj:
        from agents.runtime import build_runtime
        from core.settings import load_settings

        obj["runtime"] = build_runtime(load_settings(home=obj.get("home")))
    return obj["runtime"]


def human(ctx: click.Context, name: str | None):  # noqa: ANN201
    """The acting person: from a personal token when there is one (MODELOPS_TOKEN or the
    token file; authenticated), else the claimed name, if the policy's identity mode allows."""
    from agents.cli.identity import resolve_cli_human

    if (remote := server_client(ctx)) is not None:
        return remote.human(name)  # the server resolves the person from the token
    rt = runtime(ctx)
    return resolve_cli_human(rt.services, name or rt.settings.user)[0]


def call(
    ctx: click.Context, actor, tool: str, args: dict[str, Any] | None = None
) -> dict[str, Any]:  # noqa: ANN001
    if (remote := server_client(ctx)) is not None:
        return remote.call_tool(tool, args or {})
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


# Lines as long as a table needs when stdout is a pipe or a file: never an id cut to fit.
PIPE_WIDTH = 4000


def console():  # noqa: ANN201
    """A terminal gets its own width; a pipe gets whole rows (scripts and grep read them)."""
    from rich.console import Console

    return Console(
        highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else PIPE_WIDTH
    )


def table(*columns: str):  # noqa: ANN201
    """A rich table whose cells fold onto more lines in a narrow terminal, never cut to '…'."""
    from rich.table import Table

    t = Table()
    for name in columns:
        t.add_column(name, overflow="fold")
    return t


def is_interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()
